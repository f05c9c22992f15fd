package flightctlsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// startSim starts a simulator for a test and closes it at the end.
func startSim(t testing.TB, opts Options) *Sim {
	t.Helper()
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// testClient talks to a simulator the way a provider would.
type testClient struct {
	t   testing.TB
	sim *Sim
	hc  *http.Client
}

func newClient(t testing.TB, s *Sim) *testClient {
	hc := s.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	return &testClient{t: t, sim: s, hc: hc}
}

// response is a decoded answer.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return m
}

// message returns a Status body's message.
func (r response) message(t testing.TB) string {
	t.Helper()
	m, _ := r.json(t)["message"].(string)
	return m
}

// do sends a request with the simulator's token. body may be nil, a
// []byte, a string or a value to encode as JSON.
func (c *testClient) do(method, path string, body any, contentType string) response {
	c.t.Helper()
	return c.doToken(method, path, body, contentType, "Bearer "+c.sim.Token())
}

// doToken sends a request with an explicit Authorization header ("" for
// none).
func (c *testClient) doToken(method, path string, body any, contentType, auth string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
		if contentType == "" {
			contentType = "application/json"
		}
	}
	req, err := http.NewRequest(method, c.sim.URL()+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: raw}
}

// settle waits until the simulator has no work due within horizon.
func settle(t testing.TB, s *Sim, horizon time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitIdle(ctx, horizon); err != nil {
		t.Fatalf("WaitIdle: %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// device builds a Device request body.
func deviceDoc(name string, labels map[string]string, spec any) map[string]any {
	meta := map[string]any{"name": name}
	if labels != nil {
		meta["labels"] = labels
	}
	doc := map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Device", "metadata": meta}
	if spec != nil {
		doc["spec"] = spec
	}
	return doc
}

// get follows a dotted path through decoded JSON ("metadata.name",
// "items.0.metadata.name").
func get(v any, path string) any {
	for _, part := range splitPath(path) {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			i := 0
			for _, c := range part {
				if c < '0' || c > '9' {
					return nil
				}
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return append(out, p[start:])
}

// str returns get(...) as a string.
func str(v any, path string) string {
	s, _ := get(v, path).(string)
	return s
}

// jsonUnmarshal is json.Unmarshal (named for use in table helpers).
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
