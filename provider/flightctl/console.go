package flightctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/streaming/pkg/httpstream"

	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// ConsoleSubprotocol is the WebSocket subprotocol of Flightctl's device
// console: Kubernetes remotecommand v5 framing (0 stdin, 1 stdout, 2
// stderr, 3 error status, 4 resize, 255 close).
const ConsoleSubprotocol = remotecommand.StreamProtocolV5Name

// ConsoleCommand is the command a console session runs on the device.
type ConsoleCommand struct {
	// Command is the program; the agent runs it as its console user.
	Command string `json:"command"`
	// Args are its arguments.
	Args []string `json:"args"`
}

// ConsoleSize is a terminal size.
type ConsoleSize struct {
	// Width in columns.
	Width uint16 `json:"width"`
	// Height in rows.
	Height uint16 `json:"height"`
}

// ConsoleMetadata is the console endpoint's `metadata` query parameter
// (DeviceConsoleSessionMetadata in Flightctl's v1beta1 API).
type ConsoleMetadata struct {
	// Term is the TERM of a TTY session.
	Term string `json:"term,omitempty"`
	// InitialDimensions is the TTY's size at start.
	InitialDimensions *ConsoleSize `json:"initialDimensions,omitempty"`
	// Command runs instead of a login shell.
	Command *ConsoleCommand `json:"command,omitempty"`
	// TTY asks for a terminal.
	TTY bool `json:"tty"`
	// Protocols are the subprotocols the client speaks.
	Protocols []string `json:"protocols"`
}

// ConsoleStreams are the caller's ends of a console session. Nil streams
// are not opened.
type ConsoleStreams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Resize delivers terminal size changes of a TTY session; nil for none.
	Resize clientremotecommand.TerminalSizeQueue
}

// ExitError is a command that ran on the device and exited non-zero.
type ExitError struct {
	// Code is the exit status.
	Code int
	// Message is the agent's message.
	Message string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("command exited with status %d: %s", e.Code, e.Message)
}

// ConsoleRefusedError is a console session the server did not open: Code
// is its HTTP status (403 no permission, 404 no device, 409 paused or
// decommissioned, 504 the agent did not connect in time), 0 if unknown.
type ConsoleRefusedError struct {
	Device  string
	Code    int
	Message string
}

func (e *ConsoleRefusedError) Error() string {
	return fmt.Sprintf("flightctl: console of device %s refused: %s", e.Device, e.Message)
}

// handshakeStatus finds the HTTP status client-go puts in a failed
// WebSocket handshake's message ("bad handshake (409 Conflict)").
var handshakeStatus = regexp.MustCompile(`\((\d{3}) [^)]*\)`)

// consoleURL is the WebSocket endpoint of one device's console. It lives
// beside the user API: /ws/v1 instead of /api/v1.
func (c *Client) consoleURL(device string, md ConsoleMetadata) (string, error) {
	p, err := objectPath("devices", device, "console")
	if err != nil {
		return "", err
	}
	raw, err := json.Marshal(md)
	if err != nil {
		return "", err
	}
	u := *c.base
	u.Path = u.Path[:len(u.Path)-len("/api/v1")] + "/ws/v1" + p
	q := url.Values{"metadata": {string(raw)}}
	if c.orgID != "" {
		q.Set("org_id", c.orgID)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Console runs cmd on a device through Flightctl's device console and
// streams its input and output until it exits or ctx ends. It uses
// client-go's WebSocket executor (as the flightctl CLI does) with the
// client's server verification and token. A non-zero exit is an
// *ExitError; a refused session is an *APIError with the server's status.
func (c *Client) Console(ctx context.Context, device string, cmd ConsoleCommand, tty bool, s ConsoleStreams) error {
	if c.rest == nil {
		return errors.New("flightctl: console needs a client built from a Config without a custom Transport")
	}
	md := ConsoleMetadata{Command: &cmd, TTY: tty, Protocols: []string{ConsoleSubprotocol}}
	if tty {
		md.Term = "xterm"
	}
	u, err := c.consoleURL(device, md)
	if err != nil {
		return err
	}
	// The token of this moment: refreshing credentials change it.
	bearer, err := c.bearer()
	if err != nil {
		return err
	}
	rc := rest.CopyConfig(c.rest)
	rc.BearerToken = bearer
	ex, err := clientremotecommand.NewWebSocketExecutorForProtocols(rc, "GET", u, ConsoleSubprotocol)
	if err != nil {
		return c.scrub(fmt.Errorf("flightctl: console of device %s: %w", device, err))
	}
	err = ex.StreamWithContext(ctx, clientremotecommand.StreamOptions{
		Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Tty: tty, TerminalSizeQueue: s.Resize,
	})
	if err == nil {
		return nil
	}
	var ce exec.CodeExitError
	if errors.As(err, &ce) {
		return &ExitError{Code: ce.Code, Message: ce.Err.Error()}
	}
	// A refused handshake: client-go decodes the refusal's Status body
	// (Flightctl's has the same fields as Kubernetes') or, failing that,
	// keeps the HTTP status in the error's text.
	var ue *httpstream.UpgradeFailureError
	if errors.As(err, &ue) {
		var se *apierrors.StatusError
		if errors.As(ue.Cause, &se) {
			return &ConsoleRefusedError{Device: device, Code: int(se.ErrStatus.Code), Message: c.scrubString(se.ErrStatus.Message)}
		}
		code := 0
		if m := handshakeStatus.FindStringSubmatch(ue.Error()); m != nil {
			code, _ = strconv.Atoi(m[1])
		}
		return &ConsoleRefusedError{Device: device, Code: code, Message: c.scrubString(ue.Cause.Error())}
	}
	return c.scrub(fmt.Errorf("flightctl: console of device %s: %w", device, err))
}

// restConfig is the console's connection: the REST client's server,
// verification and token in client-go's form.
func restConfig(cfg Config, base string, token string) *rest.Config {
	return &rest.Config{
		Host:        base,
		BearerToken: token,
		UserAgent:   cfg.UserAgent,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:     cfg.CAData,
			ServerName: cfg.TLSServerName,
			Insecure:   cfg.InsecureSkipVerify,
		},
	}
}
