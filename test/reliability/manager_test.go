package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// managers kills and starts manager processes through the Stack
// (quickstart.Stack.KillManager and StartManager) and marks each event in
// the process's log, so a reader of the log sees where a process was
// killed or started.
type managers struct {
	stack *quickstart.Stack
}

// kill sends SIGKILL to the manager process named name and waits until it
// is gone.
func (m managers) kill(name string) (int, error) {
	pid, err := m.stack.KillManager(name)
	if err == nil {
		m.mark(name, fmt.Sprintf("SIGKILLed %s pid %d", orDefault(name), pid))
	}
	return pid, err
}

// start starts a manager process as the Stack does and waits for its
// /readyz. It returns the offset in the process's log at which the new
// process's lines begin.
func (m managers) start(ctx context.Context, o quickstart.ManagerOptions) (offset int64, pid int, err error) {
	offset = fileSize(m.stack.ManagerLogOf(o.Name))
	pid, err = m.stack.StartManager(ctx, o)
	if err == nil {
		m.mark(o.Name, fmt.Sprintf("started %s pid %d (leader election %t)", orDefault(o.Name), pid, o.LeaderElect))
	}
	return offset, pid, err
}

func orDefault(name string) string {
	if name == "" {
		return quickstart.DefaultManager
	}
	return name
}

// mark writes a line into a manager's log (not JSON: log readers skip it).
func (m managers) mark(name, msg string) {
	f, err := os.OpenFile(m.stack.ManagerLogOf(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
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
