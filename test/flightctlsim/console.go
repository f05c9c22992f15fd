package flightctlsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/streaming/pkg/httpstream/wsstream"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The device console: GET /ws/v1/devices/{name}/console upgraded to a
// WebSocket with the v5.channel.k8s.io subprotocol, as on the real server.
// The real agent runs the command in a shell on the device; the simulator
// runs a few commands against its simulated containers so tests are
// deterministic:
//
//	echo ARGS...                    prints ARGS
//	sh -c 'exit N'                  exits N
//	podman logs [--tail N] [-f] [--timestamps] NAME
//	                                three lines "NAME line K", and with -f a
//	                                new line every followInterval
//	podman exec [-i] [-t] NAME CMD  runs CMD as above
//	podman attach [opts] NAME       the container's output from now on: a
//	                                new line every followInterval
//
// Anything else exits 127 with "command not found" on stderr.

// followInterval is how often a followed simulated log gets a line.
const followInterval = 200 * time.Millisecond

// simLogEpoch is when simulated containers wrote their first line.
var simLogEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// consoleChannels are the v5 channels: stdin, stdout, stderr, error, resize.
var consoleChannels = []wsstream.ChannelType{
	wsstream.ReadChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.WriteChannel, wsstream.ReadChannel,
}

// console serves the device console endpoint.
func (s *Sim) console(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) {
		return
	}
	name := r.PathValue("name")
	var md flightctl.ConsoleMetadata
	if err := json.Unmarshal([]byte(r.URL.Query().Get("metadata")), &md); err != nil {
		writeStatus(w, http.StatusBadRequest, "invalid metadata: "+err.Error())
		return
	}
	s.mu.RLock()
	d := s.devices[name]
	online := d != nil && d.agent != nil && d.agent.connected
	refusal := 0
	if d != nil {
		refusal = d.consoleRefusal
	}
	s.mu.RUnlock()
	if d == nil {
		notFound(w, flightctl.KindDevice, name)
		return
	}
	switch refusal {
	case http.StatusForbidden:
		writeStatus(w, http.StatusForbidden, "Forbidden")
		return
	case http.StatusConflict:
		writeStatus(w, http.StatusConflict, "device is paused, decommissioned or awaiting reconnection")
		return
	}
	if !online {
		// The real server waits a minute for the agent, then gives up.
		writeStatus(w, http.StatusGatewayTimeout, "timed out waiting for the device agent to connect the console session")
		return
	}
	if !wsstream.IsWebSocketRequest(r) {
		writeStatus(w, http.StatusBadRequest, "expected a websocket upgrade")
		return
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: consoleChannels},
	})
	_, ch, err := conn.Open(w, r)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	var argv []string
	if md.Command != nil {
		argv = append([]string{md.Command.Command}, md.Command.Args...)
	}
	code := runSimCommand(r, argv, ch[1], ch[2])
	st := metav1.Status{Status: metav1.StatusSuccess}
	if code != 0 {
		st = metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(code),
			}}},
		}
	}
	raw, _ := json.Marshal(st)
	_, _ = ch[3].Write(raw)
}

// runSimCommand runs one simulated command and returns its exit code.
func runSimCommand(r *http.Request, argv []string, stdout, stderr io.Writer) int {
	if len(argv) == 0 {
		_, _ = fmt.Fprintln(stderr, "the simulator has no login shell; give a command")
		return 1
	}
	switch argv[0] {
	case "echo":
		_, _ = fmt.Fprintln(stdout, strings.Join(argv[1:], " "))
		return 0
	case "sh":
		if len(argv) == 3 && argv[1] == "-c" {
			if n, ok := strings.CutPrefix(argv[2], "exit "); ok {
				if code, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
					return code
				}
			}
			return runSimCommand(r, strings.Fields(argv[2]), stdout, stderr)
		}
	case "podman":
		if len(argv) >= 2 && argv[1] == "logs" {
			return simLogs(r, argv[2:], stdout, stderr)
		}
		if len(argv) >= 3 && argv[1] == "attach" {
			return simLogs(r, []string{"--follow", "--tail", "0", argv[len(argv)-1]}, stdout, stderr)
		}
		if len(argv) >= 2 && argv[1] == "exec" {
			rest := argv[2:]
			for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
				rest = rest[1:]
			}
			if len(rest) < 2 {
				_, _ = fmt.Fprintln(stderr, "Error: exec requires a container and a command")
				return 125
			}
			return runSimCommand(r, rest[1:], stdout, stderr)
		}
	}
	_, _ = fmt.Fprintf(stderr, "sh: %s: command not found\n", argv[0])
	return 127
}

// simLogs is `podman logs` of a simulated container.
func simLogs(r *http.Request, args []string, stdout, stderr io.Writer) int {
	tail, follow, stamps, name := -1, false, false, ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-f" || a == "--follow":
			follow = true
		case a == "-t" || a == "--timestamps":
			stamps = true
		case a == "--tail" && i+1 < len(args):
			i++
			n, err := strconv.Atoi(args[i])
			if err != nil {
				_, _ = fmt.Fprintf(stderr, "Error: invalid --tail %q\n", args[i])
				return 125
			}
			tail = n
		case a == "--since" && i+1 < len(args):
			i++
		case strings.HasPrefix(a, "-"):
		default:
			name = a
		}
	}
	if name == "" {
		_, _ = fmt.Fprintln(stderr, "Error: logs requires a container name")
		return 125
	}
	line := func(k int) error {
		txt := fmt.Sprintf("%s line %d", name, k)
		if stamps {
			txt = simLogEpoch.Add(time.Duration(k)*time.Second).Format(time.RFC3339Nano) + " " + txt
		}
		_, err := fmt.Fprintln(stdout, txt)
		return err
	}
	const written = 3
	first := 1
	if tail >= 0 && tail < written {
		first = written - tail + 1
	}
	for k := first; k <= written; k++ {
		_ = line(k)
	}
	if !follow {
		return 0
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for k := written + 1; ; k++ {
		select {
		case <-r.Context().Done():
			return 0
		case <-t.C:
			// A hijacked connection's context does not end when the
			// client leaves; the failed write says so.
			if line(k) != nil {
				return 0
			}
		}
	}
}

// RefuseConsole makes the console endpoint answer code for device name
// instead of opening a session, as the real server does: 403 when the
// caller lacks `get` on devices/console, 409 for a paused, decommissioned
// or awaiting-reconnect device. 0 opens sessions again.
func (s *Sim) RefuseConsole(name string, code int) error {
	if code != 0 && code != http.StatusForbidden && code != http.StatusConflict {
		return fmt.Errorf("RefuseConsole: status %d is not one the console answers (403, 409)", code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return fmt.Errorf("device %q: %w", name, ErrNotFound)
	}
	d.consoleRefusal = code
	return nil
}
