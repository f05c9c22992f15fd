package flightctlsim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// consoleClient is the provider's Flightctl client for a TLS simulator
// with one connected device "dev-1".
func consoleClient(t *testing.T, token string) (*Sim, *flightctl.Client) {
	t.Helper()
	s := startSim(t, Options{TLS: true, Config: &Config{Devices: []DeviceConfig{{Name: "dev-1"}}}})
	if token == "" {
		token = s.Token()
	}
	c, err := flightctl.New(flightctl.Config{Server: s.URL(), Token: token, CAData: s.CACertPEM()})
	if err != nil {
		t.Fatalf("flightctl.New: %v", err)
	}
	return s, c
}

func TestConsoleEcho(t *testing.T) {
	_, c := consoleClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := c.Console(ctx, "dev-1", flightctl.ConsoleCommand{Command: "echo", Args: []string{"hi", "there"}}, false,
		flightctl.ConsoleStreams{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("Console: %v (stderr %q)", err, errOut.String())
	}
	if out.String() != "hi there\n" {
		t.Fatalf("stdout %q, want %q", out.String(), "hi there\n")
	}
}

func TestConsoleExitCode(t *testing.T) {
	_, c := consoleClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Console(ctx, "dev-1", flightctl.ConsoleCommand{Command: "sh", Args: []string{"-c", "exit 3"}}, false,
		flightctl.ConsoleStreams{Stdout: io.Discard, Stderr: io.Discard})
	var ee *flightctl.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Console: %v, want an ExitError with code 3", err)
	}
}

func TestConsoleLogsTail(t *testing.T) {
	_, c := consoleClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := c.Console(ctx, "dev-1", flightctl.ConsoleCommand{Command: "podman", Args: []string{"logs", "--tail", "2", "app-c"}}, false,
		flightctl.ConsoleStreams{Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatalf("Console: %v", err)
	}
	if want := "app-c line 2\napp-c line 3\n"; out.String() != want {
		t.Fatalf("stdout %q, want %q", out.String(), want)
	}
}

// lockedBuffer is a buffer a test reads while a session writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestConsoleLogsFollowEndsWithContext(t *testing.T) {
	_, c := consoleClient(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- c.Console(ctx, "dev-1", flightctl.ConsoleCommand{Command: "podman", Args: []string{"logs", "-f", "app-c"}}, false,
			flightctl.ConsoleStreams{Stdout: out, Stderr: io.Discard})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "app-c line 5\n") {
		if time.Now().After(deadline) {
			t.Fatalf("followed logs did not reach line 5 in 5s: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		// Ending the session from our side is not a failure of the command.
		t.Logf("Console after cancel: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Console did not return after its context ended")
	}
}

func TestConsoleRefusals(t *testing.T) {
	s, c := consoleClient(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echo := flightctl.ConsoleCommand{Command: "echo", Args: []string{"x"}}
	streams := flightctl.ConsoleStreams{Stdout: io.Discard, Stderr: io.Discard}

	var re *flightctl.ConsoleRefusedError
	if err := c.Console(ctx, "no-such-device", echo, false, streams); !errors.As(err, &re) || re.Code != 404 {
		t.Fatalf("unknown device: %v, want a ConsoleRefusedError with code 404", err)
	}
	if err := s.Disconnect("dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Console(ctx, "dev-1", echo, false, streams); !errors.As(err, &re) || re.Code != 504 {
		t.Fatalf("offline device: %v, want a ConsoleRefusedError with code 504", err)
	}

	_, bad := consoleClient(t, "wrong-token")
	err := bad.Console(ctx, "dev-1", echo, false, streams)
	if !errors.As(err, &re) || re.Code != 401 {
		t.Fatalf("bad token: %v, want a ConsoleRefusedError with code 401", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Fatalf("the error shows the token: %v", err)
	}
}
