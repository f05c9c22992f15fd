package flightctlsim

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
)

func TestAuthentication(t *testing.T) {
	s := startSim(t, Options{Token: "secret"})
	c := newClient(t, s)
	tests := []struct {
		name, auth string
		code       int
		msg        string
		version    bool
	}{
		{"no header", "", 400, "failed to get auth token", false},
		{"not bearer", "Basic dXNlcjpwYXNz", 400, "failed to get auth token", false},
		{"empty bearer", "Bearer ", 400, "failed to get auth token", false},
		{"wrong token", "Bearer nope", 401, "failed to validate token", false},
		{"right token", "Bearer secret", 200, "", true},
	}
	for _, tc := range tests {
		for _, path := range []string{"/api/v1/devices", "/sim/v1/stats"} {
			t.Run(tc.name+path, func(t *testing.T) {
				r := c.doToken("GET", path, nil, "", tc.auth)
				if r.code != tc.code {
					t.Fatalf("status %d, want %d", r.code, tc.code)
				}
				if tc.msg != "" && r.message(t) != tc.msg {
					t.Errorf("message %q", r.message(t))
				}
				if strings.HasPrefix(path, "/api") && (r.header.Get("Flightctl-Api-Version") != "") != tc.version {
					t.Errorf("Flightctl-Api-Version %q", r.header.Get("Flightctl-Api-Version"))
				}
			})
		}
	}
	if s.Token() != "secret" {
		t.Errorf("Token() = %q", s.Token())
	}
	if New(Options{}).Token() == "" {
		t.Error("no random token")
	}
}

func TestDeviceCRUD(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	r := c.do("POST", "/api/v1/devices", deviceDoc("d1", map[string]string{"a": "b"}, nil), "")
	if r.code != 201 || r.header.Get("Flightctl-Api-Version") != "v1beta1" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("create: %d %v %s", r.code, r.header, r.body)
	}
	m := r.json(t)
	if str(m, "metadata.resourceVersion") != "1" || js(m["spec"]) != "{}" || js(get(m, "metadata.annotations")) != "{}" {
		t.Errorf("created: %s", r.body)
	}
	if r := c.do("POST", "/api/v1/devices", deviceDoc("d1", nil, nil), ""); r.code != 409 || r.message(t) != msgExists {
		t.Errorf("duplicate: %d %s", r.code, r.body)
	}
	if r := c.do("PUT", "/api/v1/devices/d2", deviceDoc("d1", nil, nil), ""); r.code != 400 || r.message(t) != msgNameMismatch {
		t.Errorf("mismatch: %d %s", r.code, r.body)
	}
	// Managed fields in a body are ignored.
	doc := deviceDoc("d3", nil, map[string]any{})
	meta := doc["metadata"].(map[string]any)
	meta["owner"], meta["generation"], meta["annotations"] = "Fleet/x", 42, map[string]any{"device-controller/renderedVersion": "77"}
	m = c.do("POST", "/api/v1/devices", doc, "").json(t)
	if get(m, "metadata.owner") != nil || get(m, "metadata.generation") != float64(1) || js(get(m, "metadata.annotations")) != "{}" {
		t.Errorf("managed metadata accepted: %s", js(m["metadata"]))
	}
	if r := c.do("DELETE", "/api/v1/devices/d1", nil, ""); r.code != 200 || str(r.json(t), "status") != "Success" || get(r.json(t), "code") != float64(200) {
		t.Errorf("delete: %d %s", r.code, r.body)
	}
	if r := c.do("GET", "/api/v1/devices/d1", nil, ""); r.code != 404 || r.message(t) != `Device of name "d1" not found` {
		t.Errorf("GET after delete: %d %s", r.code, r.body)
	}
	// Flightctl v1.2.0 deletes idempotently: a second DELETE is 200 too.
	if r := c.do("DELETE", "/api/v1/devices/d1", nil, ""); r.code != 200 || str(r.json(t), "status") != "Success" || get(r.json(t), "code") != float64(200) {
		t.Errorf("DELETE after delete: %d %s", r.code, r.body)
	}
}

func TestPatchDevice(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	c.do("POST", "/api/v1/devices", deviceDoc("d", nil, nil), "")
	settle(t, s, 0)
	tests := []struct {
		name, body, ctype string
		code              int
		msg               string
	}{
		{"wrong content type", `[]`, "application/json", 400, `API Error: request body has an error: header Content-Type has unexpected value "application/json"`},
		{"no content type", `[]`, "", 400, `API Error: request body has an error: header Content-Type has unexpected value ""`},
		{"failed test", `[{"op":"test","path":"/metadata/resourceVersion","value":"1"}]`, patchContentType, 400, "failed to apply JSON patch: testing value /metadata/resourceVersion failed: test failed"},
		{"status", `[{"op":"replace","path":"/status/summary/status","value":"Online"}]`, patchContentType, 400, msgStatusImmut},
		{"name", `[{"op":"replace","path":"/metadata/name","value":"x"}]`, patchContentType, 400, "metadata.name is immutable"},
		{"move op", `[{"op":"move","from":"/a","path":"/b"}]`, patchContentType, 400, `API Error: request body has an error: doesn't match schema #/components/schemas/PatchRequest: Error at "/0/op": value is not one of the allowed values ["add","replace","remove","test"]`},
		{"missing key", `[{"op":"remove","path":"/metadata/labels/nope"}]`, patchContentType, 400, "failed to apply JSON patch: error in remove for path: '/metadata/labels/nope': unable to remove nonexistent key: nope: missing value"},
		{"app without appType", `[{"op":"add","path":"/spec/applications","value":[{"name":"x","image":"y"}]}]`, patchContentType, 400, "app type must be defined"},
		{"label on a device without labels", `[{"op":"add","path":"/metadata/labels/new","value":"v"}]`, patchContentType, 200, ""},
		{"test current version then add app", `[{"op":"test","path":"/metadata/resourceVersion","value":"5"},{"op":"add","path":"/spec/applications","value":[{"name":"a","appType":"container","image":"nginx"}]}]`, patchContentType, 200, ""},
		{"append app", `[{"op":"add","path":"/spec/applications/-","value":{"name":"b","appType":"container","image":"nginx"}}]`, patchContentType, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do("PATCH", "/api/v1/devices/d", tc.body, tc.ctype)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.msg != "" && r.message(t) != tc.msg {
				t.Errorf("message %q, want %q", r.message(t), tc.msg)
			}
			settle(t, s, 0)
		})
	}
	snap, _ := s.GetDevice("d")
	if !strings.Contains(string(snap.Spec), `"name":"b"`) || snap.Labels["new"] != "v" {
		t.Errorf("patched device: %s %v", snap.Spec, snap.Labels)
	}
	if r := c.do("PATCH", "/api/v1/devices/nope", `[]`, patchContentType); r.code != 404 {
		t.Errorf("unknown device: %d", r.code)
	}
	// PATCH on .../status: "spec is immutable" once the spec has apps.
	if r := c.do("PATCH", "/api/v1/devices/d/status", `[{"op":"test","path":"/metadata/name","value":"d"}]`, patchContentType); r.code != 400 || r.message(t) != msgSpecImmutable {
		t.Errorf("status patch: %d %s", r.code, r.body)
	}
}

func TestRenderedEndpoint(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	c.do("POST", "/api/v1/devices", deviceDoc("d", nil, nil), "")
	settle(t, s, 0)
	m := c.do("GET", "/api/v1/devices/d/rendered", nil, "").json(t)
	if js(m["spec"]) != `{"applications":[],"config":[],"consoles":[]}` {
		t.Errorf("rendered spec %s", js(m["spec"]))
	}
	if r := c.do("GET", "/api/v1/devices/d/rendered?knownRenderedVersion=1", nil, ""); r.code != 204 {
		t.Errorf("known version: %d", r.code)
	}
}

func TestTLS(t *testing.T) {
	s := startSim(t, Options{TLS: true})
	if !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", s.URL())
	}
	block, _ := pem.Decode(s.CACertPEM())
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA: %v", err)
	}
	c := newClient(t, s)
	if r := c.do("GET", "/api/v1/devices", nil, ""); r.code != 200 {
		t.Errorf("with CA: %d", r.code)
	}
	// HTTP/2 is offered, and the Unreachable fault also works on it.
	req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/devices", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("protocol %s", resp.Proto)
	}
	if err := s.SetFaults(Faults{Unreachable: true}); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.hc.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("unreachable over HTTP/2 answered %d", resp.StatusCode)
	}
	if err := s.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	// Without the CA the server is not trusted.
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	resp, err = (&http.Client{Transport: tr}).Get(s.URL() + "/api/v1/devices")
	if err == nil {
		_ = resp.Body.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted CA accepted: %v", err)
	}
	// localhost is in the certificate too.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM())
	tr2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr2.CloseIdleConnections()
	port := s.URL()[strings.LastIndex(s.URL(), ":"):]
	resp, err = (&http.Client{Transport: tr2}).Get("https://localhost" + port + "/api/v1/devices")
	if err != nil {
		t.Fatalf("localhost: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("localhost without token: %d", resp.StatusCode)
	}
}

func TestListenAddress(t *testing.T) {
	tests := []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"", false, true},
		{"127.0.0.1:0", false, true},
		{"localhost:0", false, true},
		{"[::1]:0", false, true},
		{"0.0.0.0:0", false, false},
		{":0", false, false},
		{"192.0.2.1:0", false, false},
		{"0.0.0.0:0", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			s := New(Options{Addr: tc.addr, AllowNonLoopback: tc.allow})
			err := s.Start()
			defer s.Close()
			if tc.ok && err != nil && !strings.Contains(err.Error(), "cannot assign") && !strings.Contains(err.Error(), "address family") {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "not a loopback address")) {
				t.Errorf("accepted: %v", err)
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	s := New(Options{})
	if err := s.Close(); err != nil {
		t.Errorf("close before start: %v", err)
	}
	s = New(Options{})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start accepted")
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}
