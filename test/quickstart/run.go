package quickstart

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// kubectlTimeout bounds one kubectl call so a wedged API server fails a
// check instead of hanging the demo.
const kubectlTimeout = 60 * time.Second

// run is one scenario's narration and verdicts. Checks that fail are
// recorded and the scenario goes on where that still makes sense, so one
// report lists everything that is wrong; helpers that make the rest
// meaningless return an error that the scenario returns at once.
type run struct {
	ctx      context.Context //nolint:containedctx // a run lives for one scenario call, and every helper of it works under that call's context
	e        *Env
	w        *lockedWriter
	failures []string
}

func newRun(ctx context.Context, e *Env) *run {
	return &run{ctx: ctx, e: e, w: &lockedWriter{w: e.out()}}
}

// lockedWriter serializes whole writes: a background kubectl --watch prints
// while the scenario polls.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (r *run) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

// step starts a numbered step, like the quickstart's bold step headings.
func (r *run) step(format string, args ...any) {
	r.printf("\n--- %s\n", fmt.Sprintf(format, args...))
}

// note explains something to the reader, typically where this project
// differs from the seed quickstart.
func (r *run) note(msg string) {
	r.printf("%s\n", indent(msg, "    # "))
}

func (r *run) ok(format string, args ...any) {
	r.printf("  [ok]   %s\n", fmt.Sprintf(format, args...))
}

func (r *run) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.failures = append(r.failures, msg)
	r.printf("  [FAIL] %s\n", msg)
}

// check records a verdict and reports whether it passed.
func (r *run) check(pass bool, okMsg, failMsg string) bool {
	if pass {
		r.ok("%s", okMsg)
	} else {
		r.fail("%s", failMsg)
	}
	return pass
}

// abort records a failure that makes the rest of the scenario pointless
// and returns the scenario's error.
func (r *run) abort(format string, args ...any) error {
	r.fail(format, args...)
	return r.err()
}

// err is every failed check, or nil.
func (r *run) err() error {
	if len(r.failures) == 0 {
		return nil
	}
	return errors.New(strings.Join(r.failures, "\n"))
}

// ---------------------------------------------------------------- kubectl

// kubectl runs kubectl as the reader would type it, printing the command
// and its output (stdout and stderr, as a terminal shows them).
func (r *run) kubectl(args ...string) (string, error) {
	return r.kubectlIn("", args...)
}

// kubectlIn is kubectl with stdin; the command is shown as a here-document.
func (r *run) kubectlIn(stdin string, args ...string) (string, error) {
	if stdin != "" {
		r.printf("$ kubectl %s <<EOF\n%s\nEOF\n", shellJoin(args), strings.TrimRight(stdin, "\n"))
	} else {
		r.printf("$ kubectl %s\n", shellJoin(args))
	}
	stdout, stderr, err := r.exec(stdin, args...)
	out := strings.TrimRight(stdout+stderr, "\n")
	if out != "" {
		r.printf("%s\n", indent(out, "    "))
	}
	if err != nil {
		return stdout + stderr, fmt.Errorf("kubectl %s: %w: %s", shellJoin(args), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

// kubectlQuiet runs kubectl without narration, for polling; it returns
// stdout and an error carrying stderr.
func (r *run) kubectlQuiet(args ...string) (string, error) {
	stdout, stderr, err := r.exec("", args...)
	if err != nil {
		return stdout, fmt.Errorf("kubectl %s: %w: %s", shellJoin(args), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

func (r *run) exec(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(r.ctx, kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.e.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+r.e.Kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// apply is `kubectl apply -f -` with the manifest shown.
func (r *run) apply(manifest string) error {
	_, err := r.kubectlIn(manifest, "apply", "-f", "-")
	return err
}

// getJSON reads an object or list quietly; found is false on NotFound.
func (r *run) getJSON(into any, args ...string) (found bool, err error) {
	out, err := r.kubectlQuiet(append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		if strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "not found") {
			return false, nil
		}
		return false, err
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		return false, fmt.Errorf("kubectl get %s: decoding: %w", strings.Join(args, " "), err)
	}
	return true, nil
}

// watch runs `kubectl get ... --watch` in the background, its lines shown
// as they come, like the quickstart's "watch pod status" steps. The
// returned function stops it once the scenario saw what it waited for.
func (r *run) watch(args ...string) (stop func()) {
	args = append(args, "--watch")
	r.printf("$ kubectl %s\n", shellJoin(args))
	ctx, cancel := context.WithCancel(r.ctx)
	cmd := exec.CommandContext(ctx, r.e.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+r.e.Kubeconfig)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.printf("    %s\n", sc.Text())
		}
	}()
	if err := cmd.Start(); err != nil {
		r.printf("    (watch could not start: %v)\n", err)
		_ = pw.Close()
		cancel()
		<-done
		return func() {}
	}
	go func() { _ = cmd.Wait(); _ = pw.Close() }()
	return func() {
		// Let the line for the state just observed reach the screen.
		time.Sleep(700 * time.Millisecond)
		cancel()
		<-done
		r.printf("    ^C\n")
	}
}

// ---------------------------------------------------------------- waiting

// poll is a wait condition: done, a short description of what it saw, and
// an error that is remembered and polled again.
type poll func() (done bool, state string, err error)

// waitFor polls cond every interval until it is done or timeout passes.
// Errors from cond are remembered as the state and polled again: the API
// server or Flightctl may be briefly busy. It returns the time it took.
func (r *run) waitFor(desc string, timeout, interval time.Duration, cond poll) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	last := ""
	for {
		done, state, err := cond()
		if err != nil {
			state = "error: " + err.Error()
		}
		if state != "" {
			last = state
		}
		if done && err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("%s: not done after %s (last seen: %s)", desc, timeout, orNothing(last))
		}
		select {
		case <-r.ctx.Done():
			return time.Since(start), fmt.Errorf("%s: %w (last seen: %s)", desc, r.ctx.Err(), orNothing(last))
		case <-time.After(interval):
		}
	}
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// ---------------------------------------------------------------- manager log

// logMark is the manager log's current size: lines after it are new.
func (r *run) logMark() int64 {
	fi, err := os.Stat(r.e.ManagerLog)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logEntry is one JSON line of the manager's log.
type logEntry struct {
	raw    string
	fields map[string]any
}

// str is a field as text: strings as they are, other JSON values (bools,
// numbers) as fmt prints them, "" when absent.
func (l logEntry) str(key string) string {
	switch v := l.fields[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// logSince returns the manager's JSON log lines written after mark.
func (r *run) logSince(mark int64) ([]logEntry, error) {
	f, err := os.Open(r.e.ManagerLog)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(mark, io.SeekStart); err != nil {
		return nil, err
	}
	var out []logEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		out = append(out, logEntry{raw: line, fields: m})
	}
	return out, sc.Err()
}

// logWant describes a manager log line a scenario expects.
type logWant struct {
	msg    string
	fields map[string]string
}

func (w logWant) matches(l logEntry) bool {
	if l.str("msg") != w.msg {
		return false
	}
	for k, v := range w.fields {
		if l.str(k) != v {
			return false
		}
	}
	return true
}

func (w logWant) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q", w.msg)
	keys := make([]string, 0, len(w.fields))
	for k := range w.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, w.fields[k])
	}
	return b.String()
}

// showLog waits until every wanted line appeared after mark, then prints
// the matching lines in log order, as grep on the log file would, and
// checks each.
func (r *run) showLog(mark int64, timeout time.Duration, wants ...logWant) {
	msgs := make([]string, len(wants))
	for i, w := range wants {
		msgs[i] = w.msg
	}
	var entries []logEntry
	hits := make([]bool, len(wants))
	_, _ = r.waitFor("manager log lines", timeout, 250*time.Millisecond, func() (bool, string, error) {
		var err error
		if entries, err = r.logSince(mark); err != nil {
			return false, "", err
		}
		n := 0
		for i, w := range wants {
			hits[i] = false
			for _, l := range entries {
				if w.matches(l) {
					hits[i] = true
				}
			}
			if hits[i] {
				n++
			}
		}
		return n == len(wants), fmt.Sprintf("%d of %d lines", n, len(wants)), nil
	})
	r.printf("$ grep -E '%s' %s\n", strings.Join(msgs, "|"), r.e.ManagerLog)
	for _, l := range entries {
		for _, w := range wants {
			if w.matches(l) {
				r.printf("    %s\n", l.raw)
				break
			}
		}
	}
	for i, w := range wants {
		r.check(hits[i], "manager logged "+w.String(), "manager did not log "+w.String()+" within "+timeout.String())
	}
}

// ---------------------------------------------------------------- helpers

// shellJoin quotes args the way a shell user would type them.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("-_./=:,@%+", c) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
