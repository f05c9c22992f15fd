package flightctl

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type seenRequest struct {
	method, path, rawPath, query, contentType, accept, apiVersion, auth, userAgent string
	body                                                                           []byte
}

// recorder answers every call plausibly and remembers what it got.
type recorder struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seenRequest{
		method: r.Method, path: r.URL.Path, rawPath: r.URL.EscapedPath(), query: r.URL.RawQuery,
		contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"),
		apiVersion: r.Header.Get("Flightctl-API-Version"), auth: r.Header.Get("Authorization"),
		userAgent: r.Header.Get("User-Agent"), body: body,
	})
	rec.mu.Unlock()
	p := strings.TrimPrefix(r.URL.Path, "/api/v1")
	switch {
	case r.Method == http.MethodDelete:
		writeJSON(w, 200, Status{Kind: KindStatus, Code: 200, Status: "Success"})
	case strings.HasSuffix(p, "/lastseen"):
		w.WriteHeader(http.StatusNoContent)
	case p == "/devices":
		if r.Method == http.MethodPost {
			writeJSON(w, 201, json.RawMessage(body))
			return
		}
		writeJSON(w, 200, DeviceList{APIVersion: APIVersion, Kind: KindDeviceList, Items: []Device{}})
	case p == "/fleets":
		if r.Method == http.MethodPost {
			writeJSON(w, 201, json.RawMessage(body))
			return
		}
		writeJSON(w, 200, FleetList{APIVersion: APIVersion, Kind: KindFleetList})
	case p == "/events":
		writeJSON(w, 200, EventList{APIVersion: APIVersion, Kind: KindEventList})
	case strings.HasPrefix(p, "/fleets/"):
		if r.Method == http.MethodPut {
			writeJSON(w, 200, json.RawMessage(body))
			return
		}
		writeJSON(w, 200, Fleet{APIVersion: APIVersion, Kind: KindFleet})
	default:
		if r.Method == http.MethodPut {
			writeJSON(w, 200, json.RawMessage(body))
			return
		}
		d := testDevice("x")
		writeJSON(w, 200, &d)
	}
}

// TestEveryCallSendsHeadersAndOrg runs each client method once and checks
// method, path, escaping, content type and the headers every call carries.
func TestEveryCallSendsHeadersAndOrg(t *testing.T) {
	rec := &recorder{}
	srv := newServer(t, rec.ServeHTTP)
	c := newTestClient(t, srv.URL, func(c *Config) { c.OrgID = "org-7"; c.UserAgent = "vk-test/1" })
	ctx := context.Background()
	dev := testDevice("dev 1/ä")
	dev.Status = &DeviceStatus{Summary: StatusWithInfo{Status: "Online"}}
	dev.APIVersion, dev.Kind = "", ""
	fleet := &Fleet{Metadata: ObjectMeta{Name: "f1"}, Status: &FleetStatus{}}

	type call struct {
		name                       string
		run                        func() error
		method, rawPath, ct, query string
	}
	calls := []call{
		{"ListDevices", func() error {
			_, err := c.ListDevices(ctx, ListOptions{LabelSelector: "a in (b),!c", FieldSelector: "metadata.owner!=Fleet/x", Limit: 5, Continue: "tok=="})
			return err
		}, "GET", "/api/v1/devices", "", "continue=tok%3D%3D&fieldSelector=metadata.owner%21%3DFleet%2Fx&labelSelector=a+in+%28b%29%2C%21c&limit=5&org_id=org-7"},
		{"GetDevice", func() error { _, err := c.GetDevice(ctx, "dev 1/ä"); return err }, "GET", "/api/v1/devices/dev%201%2F%C3%A4", "", "org_id=org-7"},
		{"GetDeviceStatus", func() error { _, err := c.GetDeviceStatus(ctx, "d1"); return err }, "GET", "/api/v1/devices/d1/status", "", "org_id=org-7"},
		{"CreateDevice", func() error { _, err := c.CreateDevice(ctx, &dev); return err }, "POST", "/api/v1/devices", "application/json", "org_id=org-7"},
		{"ReplaceDevice", func() error { _, err := c.ReplaceDevice(ctx, &dev); return err }, "PUT", "/api/v1/devices/dev%201%2F%C3%A4", "application/json", "org_id=org-7"},
		{"ReplaceDeviceStatus", func() error { _, err := c.ReplaceDeviceStatus(ctx, &dev); return err }, "PUT", "/api/v1/devices/dev%201%2F%C3%A4/status", "application/json", "org_id=org-7"},
		{"PatchDevice", func() error {
			_, err := c.PatchDevice(ctx, "d1", []PatchOperation{{Op: "test", Path: "/metadata/resourceVersion", Value: "3"}, {Op: "remove", Path: "/metadata/labels/a"}})
			return err
		}, "PATCH", "/api/v1/devices/d1", "application/json-patch+json", "org_id=org-7"},
		{"PatchDeviceStatus", func() error { _, err := c.PatchDeviceStatus(ctx, "d1", nil); return err }, "PATCH", "/api/v1/devices/d1/status", "application/json-patch+json", "org_id=org-7"},
		{"DeleteDevice", func() error { return c.DeleteDevice(ctx, "d1") }, "DELETE", "/api/v1/devices/d1", "", "org_id=org-7"},
		{"GetLastSeen", func() error { _, err := c.GetLastSeen(ctx, "d1"); return err }, "GET", "/api/v1/devices/d1/lastseen", "", "org_id=org-7"},
		{"ListFleets", func() error { _, err := c.ListFleets(ctx, FleetListOptions{AddDevicesSummary: true}); return err }, "GET", "/api/v1/fleets", "", "addDevicesSummary=true&org_id=org-7"},
		{"GetFleet", func() error { _, err := c.GetFleet(ctx, "f1"); return err }, "GET", "/api/v1/fleets/f1", "", "org_id=org-7"},
		{"CreateFleet", func() error { _, err := c.CreateFleet(ctx, fleet); return err }, "POST", "/api/v1/fleets", "application/json", "org_id=org-7"},
		{"ReplaceFleet", func() error { _, err := c.ReplaceFleet(ctx, fleet); return err }, "PUT", "/api/v1/fleets/f1", "application/json", "org_id=org-7"},
		{"DeleteFleet", func() error { return c.DeleteFleet(ctx, "f1") }, "DELETE", "/api/v1/fleets/f1", "", "org_id=org-7"},
		{"ListEvents", func() error {
			_, err := c.ListEvents(ctx, ListOptions{FieldSelector: DeviceEventsSelector("d1", "")})
			return err
		}, "GET", "/api/v1/events", "", "fieldSelector=involvedObject.kind%3DDevice%2CinvolvedObject.name%3Dd1&org_id=org-7"},
	}
	for i, cl := range calls {
		if err := cl.run(); err != nil {
			t.Errorf("%s: %v", cl.name, err)
			continue
		}
		if len(rec.reqs) != i+1 {
			t.Fatalf("%s: %d requests recorded", cl.name, len(rec.reqs))
		}
		got := rec.reqs[i]
		if got.method != cl.method || got.rawPath != cl.rawPath || got.query != cl.query || got.contentType != cl.ct {
			t.Errorf("%s: sent %s %s?%s (%q), want %s %s?%s (%q)", cl.name, got.method, got.rawPath, got.query, got.contentType,
				cl.method, cl.rawPath, cl.query, cl.ct)
		}
		if got.accept != "application/json" || got.apiVersion != "v1beta1" || got.auth != "Bearer "+testToken || got.userAgent != "vk-test/1" {
			t.Errorf("%s: headers %+v", cl.name, got)
		}
	}

	// Bodies: writes fill apiVersion/kind, drop status except on /status,
	// and leave the caller's object alone.
	var body map[string]any
	for _, i := range []int{3, 4} {
		_ = json.Unmarshal(rec.reqs[i].body, &body)
		if body["apiVersion"] != APIVersion || body["kind"] != KindDevice || body["status"] != nil {
			t.Errorf("%s body %s", calls[i].name, rec.reqs[i].body)
		}
	}
	body = nil
	_ = json.Unmarshal(rec.reqs[5].body, &body)
	if body["status"] == nil {
		t.Errorf("ReplaceDeviceStatus dropped the status: %s", rec.reqs[5].body)
	}
	if dev.Status == nil || dev.APIVersion != "" {
		t.Error("caller's device was modified")
	}
	if fleet.Status == nil {
		t.Error("caller's fleet was modified")
	}
	if string(rec.reqs[7].body) != "[]" {
		t.Errorf("nil patch sent as %s", rec.reqs[7].body)
	}
	if want := `[{"op":"test","path":"/metadata/resourceVersion","value":"3"},{"op":"remove","path":"/metadata/labels/a"}]`; string(rec.reqs[6].body) != want {
		t.Errorf("patch body %s", rec.reqs[6].body)
	}

	st := c.Stats()
	if st.TotalRequests() != int64(len(calls)) || st.Retries != 0 || len(st.Failures) != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, op := range []string{OpListDevices, OpGetDevice, OpCreateDevice, OpReplaceDevice, OpPatchDevice, OpDeleteDevice,
		OpGetDeviceStatus, OpReplaceDeviceStatus, OpPatchDeviceStatus, OpGetLastSeen, OpListFleets, OpGetFleet,
		OpCreateFleet, OpReplaceFleet, OpDeleteFleet, OpListEvents} {
		if st.Calls[op] != 1 || st.Requests[op] != 1 {
			t.Errorf("op %s: calls %d requests %d", op, st.Calls[op], st.Requests[op])
		}
	}
	c.ResetStats()
	if c.Stats().TotalRequests() != 0 {
		t.Error("ResetStats did not reset")
	}

	bare := &Device{Metadata: ObjectMeta{Name: "bare"}}
	if _, err := c.CreateDevice(ctx, bare); err != nil {
		t.Fatal(err)
	}
	if last := rec.reqs[len(rec.reqs)-1].body; !strings.Contains(string(last), `"spec":{}`) {
		t.Errorf("device without spec sent as %s", last)
	}
	if bare.Spec != nil {
		t.Error("caller's device got a spec")
	}
}

func TestEmptyNamesRejected(t *testing.T) {
	rec := &recorder{}
	c := newTestClient(t, newServer(t, rec.ServeHTTP).URL)
	ctx := context.Background()
	errs := []error{}
	_, err := c.GetDevice(ctx, "")
	errs = append(errs, err)
	_, err = c.ReplaceDevice(ctx, &Device{})
	errs = append(errs, err)
	_, err = c.ReplaceDevice(ctx, nil)
	errs = append(errs, err)
	_, err = c.GetLastSeen(ctx, "")
	errs = append(errs, err)
	errs = append(errs, c.DeleteFleet(ctx, ""))
	for i, err := range errs {
		if err == nil {
			t.Errorf("call %d accepted an empty name", i)
		}
	}
	if len(rec.reqs) != 0 {
		t.Errorf("%d requests sent", len(rec.reqs))
	}
	if f := c.Stats().Failures[OpGetDevice]; f != 1 {
		t.Errorf("failures %d", f)
	}
}

func TestResponseTypeChecks(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		ct      string
		wantErr string
	}{
		{"full", `{"apiVersion":"flightctl.io/v1beta1","kind":"Device","metadata":{"name":"d"}}`, "application/json", ""},
		{"no apiVersion or kind", `{"metadata":{"name":"d"}}`, "application/json", ""},
		{"future version", `{"apiVersion":"flightctl.io/v1","kind":"Device","metadata":{"name":"d"}}`, "application/json", ""},
		{"wrong kind", `{"apiVersion":"flightctl.io/v1beta1","kind":"Fleet"}`, "application/json", `kind "Fleet"`},
		{"status with 200", `{"apiVersion":"flightctl.io/v1beta1","kind":"Status","code":200}`, "application/json", `kind "Status"`},
		{"foreign apiVersion", `{"apiVersion":"v1","kind":"Device"}`, "application/json", `apiVersion "v1"`},
		{"HTML login page", `<html><body>Please log in</body></html>`, "text/html", "text/html"},
		{"empty", ``, "application/json", "empty body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ct)
				_, _ = io.WriteString(w, tc.body)
			})
			c := newTestClient(t, srv.URL)
			d, err := c.GetDevice(context.Background(), "d")
			if tc.wantErr == "" {
				if err != nil || d.Metadata.Name != "d" {
					t.Fatalf("err=%v d=%+v", err, d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("want error with %q, got %v", tc.wantErr, err)
			}
			if IsRetryable(err) || c.Stats().TotalRequests() != 1 {
				t.Errorf("decode failures must not be retried: %v", err)
			}
		})
	}
}

func TestAPIErrorFromOddBodies(t *testing.T) {
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name      string
		code      int
		ct, body  string
		notStatus bool
		msg       string
	}{
		{"status body", 409, "application/json", `{"apiVersion":"flightctl.io/v1beta1","kind":"Status","code":409,"reason":"Conflict","status":"Failure","message":"updating the resource is not allowed because it has an owner"}`, false, "because it has an owner"},
		{"status without kind", 404, "application/json", `{"code":404,"message":"nope"}`, false, "nope"},
		{"html", 502, "text/html", "<html>Bad gateway</html>", true, "non-Status body (text/html): <html>Bad gateway</html>"},
		{"long text is truncated", 500, "text/plain", long, true, "... (5000 bytes)"},
		{"empty", 503, "", "", true, ""},
		{"json but not a status", 400, "application/json", `{"error":"bad"}`, true, `{"error":"bad"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				}
				w.Header().Set("X-Request-Id", "req-1")
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			})
			c := newTestClient(t, srv.URL, func(c *Config) { c.Retry.MaxAttempts = 1 })
			_, err := c.GetDevice(context.Background(), "d")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("not an APIError: %v", err)
			}
			if ae.Code != tc.code || ae.NotStatus != tc.notStatus || ae.RequestID != "req-1" || ae.Operation != OpGetDevice ||
				ae.Method != http.MethodGet || ae.Path != "/api/v1/devices/d" {
				t.Errorf("APIError %+v", ae)
			}
			if !strings.Contains(ae.Message, tc.msg) || len(ae.Message) > 700 {
				t.Errorf("message %q (len %d), want it to contain %q", ae.Message, len(ae.Message), tc.msg)
			}
			if !strings.Contains(err.Error(), "req-1") || !strings.Contains(err.Error(), http.StatusText(tc.code)) {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

func TestErrorPredicates(t *testing.T) {
	mk := func(code int, msg string) error { return &APIError{Code: code, Message: msg} }
	wrapped := func(err error) error { return &redactingError{err: err, msg: err.Error()} }
	type preds struct{ notFound, conflict, stale, exists, owned, unauth, forbidden, invalid, retry bool }
	cases := []struct {
		name string
		err  error
		want preds
	}{
		{"404", mk(404, `Device of name "x" not found`), preds{notFound: true}},
		{"409 stale", mk(409, "the object has been modified; please apply your changes to the latest version and try again"), preds{conflict: true, stale: true}},
		{"409 duplicate", mk(409, "a resource with this name already exists"), preds{conflict: true, exists: true}},
		{"409 owned", mk(409, "updating the resource is not allowed because it has an owner"), preds{owned: true}},
		{"400 patch test failed", mk(400, "failed to apply JSON patch: testing value /metadata/resourceVersion failed: test failed"), preds{stale: true, invalid: true}},
		{"400 validation", mk(400, "spec.applications[].name: Invalid value"), preds{invalid: true}},
		{"400 no token", mk(400, "failed to get auth token"), preds{unauth: true}},
		{"401", mk(401, "failed to validate token"), preds{unauth: true}},
		{"403", mk(403, "Forbidden"), preds{forbidden: true}},
		{"429", mk(429, ""), preds{retry: true}},
		{"500", mk(500, ""), preds{retry: true}},
		{"503 wrapped", wrapped(mk(503, "")), preds{retry: true}},
		{"404 wrapped", wrapped(mk(404, "")), preds{notFound: true}},
		{"plain error", errors.New("x"), preds{retry: true}},
		{"nil", nil, preds{}},
		{"decode", errDecode, preds{}},
	}
	for _, tc := range cases {
		got := preds{IsNotFound(tc.err), IsConflict(tc.err), IsStale(tc.err), IsAlreadyExists(tc.err), IsOwnedByFleet(tc.err),
			IsUnauthorized(tc.err), IsForbidden(tc.err), IsInvalid(tc.err), IsRetryable(tc.err)}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	if m.Histogram != nil {
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := RegisterMetrics(reg); err != nil {
		t.Fatalf("second registration: %v", err)
	}
	n, url := scripted(t, 503, 200)
	c := newTestClient(t, url)
	ok := map[string]string{"operation": OpGetDevice, "code": "200"}
	unavailable := map[string]string{"operation": OpGetDevice, "code": "503"}
	dur := map[string]string{"operation": OpGetDevice}
	before := []float64{
		counterValue(t, reg, "flightctl_client_requests_total", ok),
		counterValue(t, reg, "flightctl_client_requests_total", unavailable),
		counterValue(t, reg, "flightctl_client_request_duration_seconds", dur),
	}
	if _, err := c.GetDevice(context.Background(), "d1"); err != nil {
		t.Fatal(err)
	}
	after := []float64{
		counterValue(t, reg, "flightctl_client_requests_total", ok),
		counterValue(t, reg, "flightctl_client_requests_total", unavailable),
		counterValue(t, reg, "flightctl_client_request_duration_seconds", dur),
	}
	if after[0]-before[0] != 1 || after[1]-before[1] != 1 || after[2]-before[2] != 2 || n.Load() != 2 {
		t.Errorf("metrics before %v after %v", before, after)
	}

	// Transport failures are counted with code "error".
	c = newTestClient(t, "http://"+closedAddr(t), func(c *Config) { c.Retry.MaxAttempts = 1 })
	errLabels := map[string]string{"operation": OpListEvents, "code": "error"}
	b := counterValue(t, reg, "flightctl_client_requests_total", errLabels)
	_, _ = c.ListEvents(context.Background(), ListOptions{})
	if counterValue(t, reg, "flightctl_client_requests_total", errLabels)-b != 1 {
		t.Error("transport failure not counted")
	}
}

func TestLoggerV1(t *testing.T) {
	var lines []string
	mk := func(v int) *Client {
		lines = nil
		logger := funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: v})
		rec := &recorder{}
		return newTestClient(t, newServer(t, rec.ServeHTTP).URL, func(c *Config) { c.Logger = logger })
	}
	c := mk(0)
	_, _ = c.GetDevice(context.Background(), "d1")
	if len(lines) != 0 {
		t.Errorf("logged at V(0): %v", lines)
	}
	c = mk(1)
	_, _ = c.GetDevice(context.Background(), "d1")
	if len(lines) != 1 {
		t.Fatalf("want one line, got %v", lines)
	}
	for _, want := range []string{`"method"="GET"`, `"path"="/api/v1/devices/d1"`, `"code"=200`, `"duration"=`, `"op"="get_device"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %s lacks %s", lines[0], want)
		}
	}
	// The zero logger is fine too.
	c = newTestClient(t, newServer(t, (&recorder{}).ServeHTTP).URL)
	if _, err := c.GetDevice(context.Background(), "d1"); err != nil {
		t.Fatal(err)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("  short  ", 10); got != "short" {
		t.Errorf("%q", got)
	}
	got := truncate(strings.Repeat("ä", 10), 5) // 20 bytes, cut inside a rune
	if got != "ää... (20 bytes)" {
		t.Errorf("%q", got)
	}
}

// TestByteMetrics checks that the byte counters add exactly the body
// bytes of each exchange: a buffered GET, a streamed listing (read to its
// end even though the decoder stops at the closing brace), and a PUT's
// request body.
func TestByteMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	dev, _ := json.Marshal(testDevice("d1"))
	list, _ := json.Marshal(DeviceList{APIVersion: APIVersion, Kind: KindDeviceList, Items: []Device{testDevice("d1"), testDevice("d2")}})
	// Trailing bytes a decoder never asks for: more than it buffers.
	list = append(list, strings.Repeat("\n", 256<<10)...)
	var gotPut atomic.Int64
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/devices":
			_, _ = w.Write(list)
		case r.Method == http.MethodPut:
			b, _ := io.ReadAll(r.Body)
			gotPut.Add(int64(len(b)))
			_, _ = w.Write(dev)
		default:
			_, _ = w.Write(dev)
		}
	})
	c := newTestClient(t, srv.URL)
	get := map[string]string{"operation": OpGetDevice}
	lst := map[string]string{"operation": OpListDevices}
	put := map[string]string{"operation": OpReplaceDevice}
	val := func(name string, l map[string]string) float64 { return counterValue(t, reg, name, l) }
	g0, l0, p0, s0 := val("flightctl_client_response_bytes_total", get), val("flightctl_client_response_bytes_total", lst),
		val("flightctl_client_response_bytes_total", put), val("flightctl_client_request_bytes_total", put)
	ctx := context.Background()
	d, err := c.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ForEachListedDevice(ctx, ListOptions{}, nil, func(*ListedDevice) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReplaceDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := val("flightctl_client_response_bytes_total", get) - g0; got != float64(len(dev)) {
		t.Errorf("get_device response bytes = %v, want %d", got, len(dev))
	}
	if got := val("flightctl_client_response_bytes_total", lst) - l0; got != float64(len(list)) {
		t.Errorf("list_devices response bytes = %v, want %d", got, len(list))
	}
	if got := val("flightctl_client_response_bytes_total", put) - p0; got != float64(len(dev)) {
		t.Errorf("replace_device response bytes = %v, want %d", got, len(dev))
	}
	if got, want := val("flightctl_client_request_bytes_total", put)-s0, float64(gotPut.Load()); got != want || want == 0 {
		t.Errorf("replace_device request bytes = %v, server read %v", got, want)
	}
}
