package flightctlsim

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CostModel is the server time a request costs, spent before the answer
// leaves, so that a client sees a real server's latency instead of the
// simulator's in-memory speed. The zero value costs nothing.
type CostModel struct {
	// ListBase is the fixed time of a list call (devices, fleets, events).
	ListBase time.Duration `json:"listBase,omitempty"`
	// ListPerDevice is added for every device a device list returns.
	ListPerDevice time.Duration `json:"listPerDevice,omitempty"`
	// ListPerByte is added for every byte of a list's response body;
	// fractional nanoseconds are allowed because real values are a few
	// nanoseconds per byte.
	ListPerByte float64 `json:"listPerByteNs,omitempty"`
	// Get is the time of a single-object read.
	Get time.Duration `json:"get,omitempty"`
	// Write is the time of a create, replace, patch or delete.
	Write time.Duration `json:"write,omitempty"`
	// RenderDelay, when set, replaces Options.RenderDelay: the real
	// worker re-renders a device within about 20 ms of a spec write.
	RenderDelay time.Duration `json:"renderDelay,omitempty"`
}

// CostModelRealV12 is the name of the preset calibrated on a real
// Flightctl v1.2.0 (see README.md, "Cost model").
const CostModelRealV12 = "real-v1.2"

// CostModelByName returns a named preset: "off" (or empty) and
// CostModelRealV12.
func CostModelByName(name string) (CostModel, error) {
	switch name {
	case "", "off":
		return CostModel{}, nil
	case CostModelRealV12:
		// Fitted to lists of 100 and 1,000 devices of ~13.4 KB each
		// (39 ms / 1.34 MB and 367 ms / 13.4 MB of server time); the
		// per-device and per-byte parts cannot be told apart from those
		// runs, so the split is a choice that keeps both in play.
		return CostModel{
			ListBase:      5 * time.Millisecond,
			ListPerDevice: 200 * time.Microsecond,
			ListPerByte:   12,
			Get:           5 * time.Millisecond,
			Write:         15 * time.Millisecond,
			RenderDelay:   20 * time.Millisecond,
		}, nil
	}
	return CostModel{}, fmt.Errorf("unknown cost model %q (want off or %s)", name, CostModelRealV12)
}

// enabled reports whether any request costs time.
func (c CostModel) enabled() bool {
	return c.ListBase > 0 || c.ListPerDevice > 0 || c.ListPerByte > 0 || c.Get > 0 || c.Write > 0
}

// check rejects values that cannot describe a server.
func (c CostModel) check() error {
	if c.ListBase < 0 || c.ListPerDevice < 0 || c.ListPerByte < 0 || c.Get < 0 || c.Write < 0 || c.RenderDelay < 0 {
		return fmt.Errorf("cost model: durations must not be negative: %+v", c)
	}
	return nil
}

// cost is the server time of one answered request.
func (c CostModel) cost(method, op string, devices int, bodyBytes int) time.Duration {
	switch {
	case strings.HasPrefix(op, "list"):
		return c.ListBase + time.Duration(devices)*c.ListPerDevice + time.Duration(c.ListPerByte*float64(bodyBytes))
	case method == http.MethodGet:
		return c.Get
	default:
		return c.Write
	}
}

// listedKey carries a counter of the devices a list handler returned.
type listedKey struct{}

// noteListed tells the cost model how many devices a list returned.
func noteListed(r *http.Request, n int) {
	if p, ok := r.Context().Value(listedKey{}).(*int); ok {
		*p = n
	}
}

// bufferedWriter holds an answer back until its cost has been spent: the
// per-byte cost is only known once the whole body exists, and a client
// must not see the first bytes earlier than a real server would send them.
type bufferedWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

// WriteHeader records the status code.
func (b *bufferedWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

// Write buffers body bytes.
func (b *bufferedWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// flush sends what was buffered.
func (b *bufferedWriter) flush() {
	if b.code == 0 {
		return
	}
	b.ResponseWriter.WriteHeader(b.code)
	_, _ = b.ResponseWriter.Write(b.body.Bytes())
}

// serveWithCost runs h and spends the modelled server time before the
// answer goes out. A client that gives up stops the wait, as it would
// stop a real server's work.
func (s *Sim) serveWithCost(op string, w http.ResponseWriter, r *http.Request, h http.HandlerFunc) {
	var listed int
	bw := &bufferedWriter{ResponseWriter: w}
	h(bw, r.WithContext(context.WithValue(r.Context(), listedKey{}, &listed)))
	t := time.NewTimer(s.opts.Cost.cost(r.Method, op, listed, bw.body.Len()))
	defer t.Stop()
	select {
	case <-t.C:
		bw.flush()
	case <-r.Context().Done():
	}
}
