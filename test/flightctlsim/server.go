package flightctlsim

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The HTTP layer: routing, the real server's headers and error bodies,
// authentication, request accounting and fault injection.

// maxBodyBytes bounds request bodies; device specs with inline files are
// at most a few megabytes.
const maxBodyBytes = 16 << 20

// routes builds the request router.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern, op string, h http.HandlerFunc) { mux.Handle(pattern, s.apiHandler(op, h)) }
	api("GET /api/v1/devices", "listDevices", s.listDevices)
	api("POST /api/v1/devices", "createDevice", s.createDeviceHandler)
	api("GET /api/v1/devices/{name}", "getDevice", s.getDevice)
	api("PUT /api/v1/devices/{name}", "replaceDevice", s.replaceDevice)
	api("PATCH /api/v1/devices/{name}", "patchDevice", s.patchDevice)
	api("DELETE /api/v1/devices/{name}", "deleteDevice", s.deleteDevice)
	api("GET /api/v1/devices/{name}/status", "getDeviceStatus", s.getDevice)
	api("PUT /api/v1/devices/{name}/status", "replaceDeviceStatus", s.replaceDeviceStatus)
	api("PATCH /api/v1/devices/{name}/status", "patchDeviceStatus", s.patchDeviceStatus)
	api("GET /api/v1/devices/{name}/lastseen", "getDeviceLastSeen", s.getDeviceLastSeen)
	api("GET /api/v1/devices/{name}/rendered", "getRenderedDevice", s.getRenderedDevice)
	api("PUT /api/v1/devices/{name}/decommission", "decommissionDevice", s.decommissionDevice)
	api("GET /api/v1/fleets", "listFleets", s.listFleets)
	api("POST /api/v1/fleets", "createFleet", s.createFleetHandler)
	api("GET /api/v1/fleets/{name}", "getFleet", s.getFleet)
	api("PUT /api/v1/fleets/{name}", "replaceFleet", s.replaceFleet)
	api("DELETE /api/v1/fleets/{name}", "deleteFleet", s.deleteFleet)
	api("GET /api/v1/events", "listEvents", s.listEvents)

	// The console hijacks the connection, so it bypasses the counting
	// wrapper; it still authenticates like every API call.
	mux.HandleFunc("GET /ws/v1/devices/{name}/console", s.console)

	ctl := func(pattern, op string, h http.HandlerFunc) { mux.Handle(pattern, s.controlHandler(op, h)) }
	ctl("POST /sim/v1/devices", "sim.addDevice", s.simAddDevice)
	ctl("GET /sim/v1/devices/{name}", "sim.getDevice", s.simGetDevice)
	ctl("POST /sim/v1/devices/{name}/disconnect", "sim.disconnect", s.simDisconnect)
	ctl("POST /sim/v1/devices/{name}/reconnect", "sim.reconnect", s.simReconnect)
	ctl("GET /sim/v1/stats", "sim.stats", s.simStats)
	ctl("POST /sim/v1/stats/reset", "sim.resetStats", s.simResetStats)
	ctl("GET /sim/v1/faults", "sim.getFaults", s.simGetFaults)
	ctl("POST /sim/v1/faults", "sim.setFaults", s.simSetFaults)
	return mux
}

// requestIDKey carries the request ID to handlers (events record it).
type requestIDKey struct{}

// requestID returns the current request's ID.
func requestID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

// apiHandler wraps a Flightctl API handler: accounting, faults, auth.
func (s *Sim) apiHandler(op string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		cr := &countingReader{rc: r.Body}
		r.Body = cr
		start := time.Now()
		defer func() {
			s.stats.request(op, cw.code, cr.n, cw.n)
			s.log.Debug("request", "op", op, "method", r.Method, "path", r.URL.Path, "code", cw.code,
				"bytes", cw.n, "duration", time.Since(start).String())
		}()
		drop, delay, code := s.faults.request()
		if drop {
			s.stats.fault("drop")
			// Abort without a response: the client sees the connection
			// close, as with a dead server or a broken network path.
			panic(http.ErrAbortHandler)
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		id := fmt.Sprintf("%s-%06d", s.reqTag, s.reqSeq.Add(1))
		cw.Header().Set("X-Request-Id", id)
		if code != 0 {
			s.stats.fault("error")
			writeStatus(cw, code, "simulated fault: "+strings.ToLower(http.StatusText(code)))
			return
		}
		if !s.authorize(cw, r) {
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		if s.opts.Cost.enabled() {
			s.serveWithCost(op, cw, r, h)
			return
		}
		h(cw, r)
	})
}

// controlHandler wraps a control API handler: accounting and auth only,
// so that faults can always be switched off again.
func (s *Sim) controlHandler(op string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w}
		cr := &countingReader{rc: r.Body}
		r.Body = cr
		defer func() { s.stats.request(op, cw.code, cr.n, cw.n) }()
		if !s.authorize(cw, r) {
			return
		}
		h(cw, r)
	})
}

// authorize checks the bearer token with the real server's answers: no
// token is a 400, a wrong one a 401. These answers carry no
// Flightctl-Api-Version header, as on the real server.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		writeStatusNoVersion(w, http.StatusBadRequest, "failed to get auth token")
		return false
	}
	tok = strings.TrimSpace(tok)
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) != 1 && (s.opts.TokenVerifier == nil || !s.opts.TokenVerifier(tok)) {
		writeStatusNoVersion(w, http.StatusUnauthorized, "failed to validate token")
		return false
	}
	return true
}

// setHeaders sets the headers every real API response carries.
func setHeaders(w http.ResponseWriter, withVersion bool) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if withVersion {
		h.Set("Flightctl-Api-Version", "v1beta1")
		h.Set("Vary", "Flightctl-API-Version")
	}
}

// writeJSON writes a JSON body.
func writeJSON(w http.ResponseWriter, code int, body []byte) {
	setHeaders(w, true)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// writeNoContent writes a 204.
func writeNoContent(w http.ResponseWriter) {
	setHeaders(w, true)
	w.WriteHeader(http.StatusNoContent)
}

// statusBody is an error (or success) Status document.
func statusBody(code int, message string) []byte {
	st := "Failure"
	if code < 400 {
		st = "Success"
	}
	return mustMarshal(flightctl.Status{
		APIVersion: flightctl.APIVersion, Kind: flightctl.KindStatus, Code: int32(code),
		Reason: http.StatusText(code), Status: st, Message: message,
	})
}

// writeStatus writes a Status body.
func writeStatus(w http.ResponseWriter, code int, message string) {
	writeJSON(w, code, statusBody(code, message))
}

// writeStatusNoVersion writes a Status body without the API version
// headers (authentication failures).
func writeStatusNoVersion(w http.ResponseWriter, code int, message string) {
	setHeaders(w, false)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(statusBody(code, message))
}

// notFound writes the real server's 404 for an object.
func notFound(w http.ResponseWriter, kind, name string) {
	writeStatus(w, http.StatusNotFound, fmt.Sprintf("%s of name %q not found", kind, name))
}

// Messages the real server uses for conflicts.
const (
	msgConflict      = "the object has been modified; please apply your changes to the latest version and try again"
	msgExists        = "a resource with this name already exists"
	msgOwned         = "updating the resource is not allowed because it has an owner"
	msgNameMismatch  = "resource name specified in metadata does not match name in path"
	msgBadRV         = "resource version does not match the required integer format"
	msgStatusImmut   = "status is immutable"
	msgSpecImmutable = "spec is immutable"
)

// readBody reads a request body, bounded.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeStatus(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeStatus(w, http.StatusBadRequest, "API Error: request body has an error: failed to read request body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// countingWriter remembers the status code and counts body bytes.
type countingWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

// WriteHeader records the status code.
func (c *countingWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

// Write counts body bytes.
func (c *countingWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// countingReader counts request body bytes.
type countingReader struct {
	rc io.ReadCloser
	n  int64
}

// Read counts body bytes.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.n += int64(n)
	return n, err
}

// Close closes the body.
func (c *countingReader) Close() error { return c.rc.Close() }
