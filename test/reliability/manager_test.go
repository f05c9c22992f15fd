package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// managerCtl kills the manager with SIGKILL and starts it again.
//
// test/quickstart.Stack starts the first manager but exports no way to
// restart it, so a restart repeats the Stack's command line: the same
// binary (Stack.ManagerBin), the ServiceAccount kubeconfig Stack.Up wrote to
// <StateDir>/manager.kubeconfig, namespace and kubelet address, fresh
// metrics and health ports, the log appended to Stack.ManagerLog, and the
// pid written to <StateDir>/manager.pid so the Stack's reaper still finds
// the running manager should this test process be killed.
type managerCtl struct {
	bin, stateDir, logPath string

	mu sync.Mutex
	// cur is the running manager this test started; nil while it is the
	// Stack's own process (pid in manager.pid, reaped by the Stack).
	cur  *managerProc
	all  []*managerProc
	pids []int
}

type managerProc struct {
	cmd       *exec.Cmd
	exited    chan struct{}
	healthURL string
}

func newManagerCtl(s *quickstart.Stack, stateDir string) *managerCtl {
	return &managerCtl{bin: s.ManagerBin, stateDir: stateDir, logPath: s.ManagerLog}
}

func (m *managerCtl) pidFile() string { return filepath.Join(m.stateDir, "manager.pid") }

// pid is the running manager's pid.
func (m *managerCtl) pid() (int, error) {
	m.mu.Lock()
	cur := m.cur
	m.mu.Unlock()
	if cur != nil {
		return cur.cmd.Process.Pid, nil
	}
	raw, err := os.ReadFile(m.pidFile())
	if err != nil {
		return 0, fmt.Errorf("the Stack's manager pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.pidFile(), err)
	}
	// Only a process running our binary: the pid could have been reused.
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil &&
		!strings.HasPrefix(string(cmdline), m.bin) {
		return 0, fmt.Errorf("pid %d (from %s) does not run %s", pid, m.pidFile(), m.bin)
	}
	return pid, nil
}

// kill sends SIGKILL to the running manager and waits until it is gone.
func (m *managerCtl) kill() (int, error) {
	pid, err := m.pid()
	if err != nil {
		return 0, err
	}
	m.mark(fmt.Sprintf("SIGKILL manager pid %d", pid))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return pid, fmt.Errorf("kill -9 %d: %w", pid, err)
	}
	m.mu.Lock()
	cur := m.cur
	m.cur = nil
	m.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		gone := false
		if cur != nil {
			select {
			case <-cur.exited:
				gone = true
			default:
			}
		} else {
			// The Stack reaps its own process; until then kill(pid, 0)
			// still finds the zombie.
			gone = errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
		}
		if gone {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return pid, fmt.Errorf("manager pid %d still there 15s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start starts a manager as the Stack does and waits for its /readyz. It
// returns the log offset at which the new process's lines begin.
func (m *managerCtl) start(ctx context.Context) (int64, error) {
	logOffset := fileSize(m.logPath)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		metrics, err := freePort()
		if err != nil {
			return 0, err
		}
		health, err := freePort()
		if err != nil {
			return 0, err
		}
		p, err := m.spawn(metrics, health)
		if err != nil {
			return 0, err
		}
		lastErr = waitReady(ctx, p, 60*time.Second)
		if lastErr == nil {
			return logOffset, nil
		}
		m.stop(p)
		if !strings.Contains(readFrom(m.logPath, logOffset), "address already in use") {
			break
		}
	}
	return 0, lastErr
}

func (m *managerCtl) spawn(metrics, health int) (*managerProc, error) {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(m.bin,
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(metrics),
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(health),
		"--namespace", quickstart.DefaultBindingNamespace,
		"--kubelet-listen-address", "127.0.0.1:0")
	cmd.Dir = m.stateDir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(m.stateDir, "manager.kubeconfig"),
		"POD_NAMESPACE="+quickstart.DefaultBindingNamespace)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", m.bin, err)
	}
	p := &managerProc{cmd: cmd, exited: make(chan struct{}),
		healthURL: "http://127.0.0.1:" + strconv.Itoa(health) + "/readyz"}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	m.mu.Lock()
	m.cur = p
	m.all = append(m.all, p)
	m.pids = append(m.pids, cmd.Process.Pid)
	m.mu.Unlock()
	m.mark(fmt.Sprintf("started manager pid %d", cmd.Process.Pid))
	return p, os.WriteFile(m.pidFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
}

func waitReady(ctx context.Context, p *managerProc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.healthURL, nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("manager pid %d exited (%s) before %s answered", p.cmd.Process.Pid, p.cmd.ProcessState, p.healthURL)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s (last: %s)", p.healthURL, timeout, last)
		}
	}
}

// stop ends one manager this test started: SIGTERM, SIGKILL after 15 s.
func (m *managerCtl) stop(p *managerProc) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(15 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
}

// stopAll stops every manager this test started (the Stack stops its own).
func (m *managerCtl) stopAll() {
	m.mu.Lock()
	all := append([]*managerProc(nil), m.all...)
	m.cur = nil
	m.mu.Unlock()
	for _, p := range all {
		m.stop(p)
	}
}

// mark writes a line into the manager log so a reader sees where a process
// was killed or started (not JSON: log readers skip it).
func (m *managerCtl) mark(msg string) {
	f, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	fmt.Fprintf(f, "### reliability test %s: %s\n", time.Now().UTC().Format("15:04:05.000"), msg)
}

// waitLogLine waits until the manager log has, after offset, a JSON line
// whose msg is msg, and returns that line's timestamp (or now when it has
// none).
func waitLogLine(ctx context.Context, path string, offset int64, msg string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if ts, ok := findLogLine(path, offset, msg); ok {
			return ts, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the manager did not log %q within %s", msg, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func findLogLine(path string, offset int64, msg string) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return time.Time{}, false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry struct {
			Msg string `json:"msg"`
			TS  any    `json:"ts"`
		}
		if json.Unmarshal(line, &entry) != nil || entry.Msg != msg {
			continue
		}
		return logTime(entry.TS), true
	}
	return time.Time{}, false
}

// logTime reads zap's ts field (RFC 3339 text or epoch seconds).
func logTime(v any) time.Time {
	switch ts := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return t
		}
	case float64:
		sec := int64(ts)
		return time.Unix(sec, int64((ts-float64(sec))*1e9))
	}
	return time.Now()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 16<<20))
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
