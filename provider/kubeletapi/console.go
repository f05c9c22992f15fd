package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// Logs and exec run `podman logs` and `podman exec` on the pod's device
// through Flightctl's device console (one console session per call).

// target finds the podman container of a pod's container, or says why
// there is none.
func (s *Server) target(ns, pod, container string) (nodeapi.Placement, string, error) {
	p, ok := s.opts.Pods.PodPlacement(ns, pod)
	if !ok {
		return p, "", errdefs.NotFoundf("pod %s/%s is not on a vk-flightctl node served here", ns, pod)
	}
	if p.Device == "" {
		return p, "", errdefs.InvalidInput(fmt.Sprintf("pod %s/%s is not running on a device yet: see its status and events", ns, pod))
	}
	if p.Compose {
		return p, "", errdefs.InvalidInput(fmt.Sprintf("pod %s/%s runs as a compose application on device %s, whose containers Flightctl gives no known name; "+
			"use the quadlet application format (FleetBinding spec.applicationFormat) for kubectl logs and exec", ns, pod, p.Device))
	}
	if p.Console == nil {
		return p, "", errdefs.InvalidInput(fmt.Sprintf(NotSupported, "logs or exec sessions for this node"))
	}
	if container == "" {
		return p, "", errdefs.InvalidInput("a container name is required")
	}
	if !slices.Contains(p.Containers, container) {
		return p, "", errdefs.NotFoundf("pod %s/%s has no container %q; its containers are %s (kubectl -c NAME)", ns, pod, container, strings.Join(p.Containers, ", "))
	}
	return p, translate.PodmanContainerName(p.App, container), nil
}

// logsArgs turns kubectl's log options into podman's.
func logsArgs(name string, o api.ContainerLogOpts) ([]string, error) {
	if o.Previous {
		return nil, errdefs.InvalidInput("--previous is not supported: podman keeps no logs of a container's earlier runs once its unit restarts it")
	}
	args := []string{"logs"}
	if o.Follow {
		args = append(args, "--follow")
	}
	if o.Timestamps {
		args = append(args, "--timestamps")
	}
	if o.Tail > 0 {
		args = append(args, "--tail", strconv.Itoa(o.Tail))
	}
	switch {
	case o.SinceSeconds > 0:
		args = append(args, "--since", strconv.Itoa(o.SinceSeconds)+"s")
	case !o.SinceTime.IsZero():
		args = append(args, "--since", o.SinceTime.UTC().Format(time.RFC3339))
	}
	return append(args, name), nil
}

// logs serves GetContainerLogs: the session's stdout is the body.
func (s *Server) logs(ctx context.Context, ns, pod, container string, o api.ContainerLogOpts) (io.ReadCloser, error) {
	p, name, err := s.target(ns, pod, container)
	if err != nil {
		return nil, err
	}
	args, err := logsArgs(name, o)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	var out io.Writer = pw
	if o.LimitBytes > 0 {
		out = &limitWriter{w: pw, left: o.LimitBytes}
	}
	go func() {
		err := p.Console.Console(ctx, p.Device, flightctl.ConsoleCommand{Command: "podman", Args: args}, false,
			flightctl.ConsoleStreams{Stdout: out, Stderr: out})
		if errors.Is(err, errLimit) {
			err = nil
		}
		_ = pw.CloseWithError(s.consoleError(p.Device, err))
	}()
	return pr, nil
}

// errLimit ends a session once --limit-bytes were written.
var errLimit = errors.New("limit reached")

// limitWriter passes on at most left bytes.
type limitWriter struct {
	w    io.Writer
	left int
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.left <= 0 {
		return 0, errLimit
	}
	n := len(b)
	if n > l.left {
		b = b[:l.left]
	}
	k, err := l.w.Write(b)
	l.left -= k
	if err == nil && k < n {
		err = errLimit
	}
	return k, err
}

// exec serves RunInContainer: `podman exec` in a console session.
func (s *Server) exec(ctx context.Context, ns, pod, container string, cmd []string, aio api.AttachIO) error {
	p, name, err := s.target(ns, pod, container)
	if err != nil {
		return err
	}
	args := []string{"exec"}
	if aio.Stdin() != nil {
		args = append(args, "--interactive")
	}
	if aio.TTY() {
		args = append(args, "--tty")
	}
	return s.session(ctx, p, append(append(args, name), cmd...), aio)
}

// attach serves AttachToContainer: `podman attach` to the container's main
// process in a console session. podman forwards no signals from a console
// session that ends (--sig-proxy=false), so leaving does not stop the
// container.
func (s *Server) attach(ctx context.Context, ns, pod, container string, aio api.AttachIO) error {
	p, name, err := s.target(ns, pod, container)
	if err != nil {
		return err
	}
	args := []string{"attach", "--sig-proxy=false"}
	if aio.Stdin() == nil {
		args = append(args, "--no-stdin")
	}
	return s.session(ctx, p, append(args, name), aio)
}

// session runs `podman ARGS` on the pod's device with the caller's streams.
func (s *Server) session(ctx context.Context, p nodeapi.Placement, args []string, aio api.AttachIO) error {
	streams := flightctl.ConsoleStreams{Stdin: aio.Stdin(), Stdout: aio.Stdout(), Stderr: aio.Stderr()}
	if aio.TTY() && aio.Resize() != nil {
		streams.Resize = &resizeQueue{ctx: ctx, c: aio.Resize()}
	}
	if streams.Stderr == nil && !aio.TTY() {
		streams.Stderr = streams.Stdout
	}
	cerr := p.Console.Console(ctx, p.Device, flightctl.ConsoleCommand{Command: "podman", Args: args}, aio.TTY(), streams)
	return s.consoleError(p.Device, cerr)
}

// resizeQueue hands kubectl's terminal sizes to the console session. It
// keeps the session's context because client-go's TerminalSizeQueue.Next
// takes none and must return nil when the session ends.
type resizeQueue struct {
	ctx context.Context //nolint:containedctx // see above
	c   <-chan api.TermSize
}

func (q *resizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case <-q.ctx.Done():
		return nil
	case t, ok := <-q.c:
		if !ok {
			return nil
		}
		return &remotecommand.TerminalSize{Width: t.Width, Height: t.Height}
	}
}

// consoleError turns a console failure into what kubectl shows: the exit
// code as an exit code, a refusal as a message saying what to do.
func (s *Server) consoleError(device string, err error) error {
	if err == nil {
		return nil
	}
	var ee *flightctl.ExitError
	if errors.As(err, &ee) {
		return exec.CodeExitError{Err: errors.New(ee.Message), Code: ee.Code}
	}
	var re *flightctl.ConsoleRefusedError
	if errors.As(err, &re) {
		switch re.Code {
		case http.StatusGatewayTimeout:
			return fmt.Errorf("device %s did not open the console in time (Flightctl answered 504): the device is probably offline; check its status with `flightctl get device/%s`", device, device)
		case http.StatusConflict:
			return fmt.Errorf("flightctl refused a console on device %s (409): the device is paused, decommissioned or awaiting reconnection: %s", device, re.Message)
		case http.StatusForbidden:
			return errdefs.AsInvalidInput(fmt.Errorf("the Flightctl identity of this binding may not open consoles (403): grant it `get` on `devices/console` in Flightctl's RBAC"))
		case http.StatusNotFound:
			return errdefs.NotFoundf("device %s is not in Flightctl any more (404)", device)
		}
	}
	s.opts.Log.Error(err, "console session failed", "device", device)
	return err
}
