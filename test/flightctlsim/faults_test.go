package flightctlsim

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	s := startSim(t, Options{FaultSeed: 1})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "d", NoAgent: true}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	put := func() response { return c.do("PUT", "/api/v1/devices/d", deviceDoc("d", nil, map[string]any{}), "") }

	t.Run("error rate 1 answers every request with a Status", func(t *testing.T) {
		if err := s.SetFaults(Faults{ErrorRate: 1, ErrorCode: 500}); err != nil {
			t.Fatal(err)
		}
		r := c.do("GET", "/api/v1/devices", nil, "")
		if r.code != 500 || str(r.json(t), "kind") != "Status" || str(r.json(t), "reason") != "Internal Server Error" {
			t.Errorf("%d %s", r.code, r.body)
		}
		// The control API is never faulted.
		if r := c.do("GET", "/sim/v1/stats", nil, ""); r.code != 200 {
			t.Errorf("control API faulted: %d", r.code)
		}
	})
	t.Run("error rate 0.5 fails some", func(t *testing.T) {
		if err := s.SetFaults(Faults{ErrorRate: 0.5}); err != nil {
			t.Fatal(err)
		}
		fails := 0
		for range 100 {
			if r := c.do("GET", "/api/v1/devices/d", nil, ""); r.code == 503 {
				fails++
			}
		}
		if fails < 20 || fails > 80 {
			t.Errorf("%d of 100 failed at rate 0.5", fails)
		}
	})
	t.Run("conflict count", func(t *testing.T) {
		if err := s.SetFaults(Faults{ConflictCount: 2}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if r := put(); r.code != 409 || r.message(t) != msgConflict {
				t.Fatalf("write %d: %d %s", i, r.code, r.body)
			}
		}
		if r := put(); r.code != 200 {
			t.Fatalf("third write: %d %s", r.code, r.body)
		}
		if f := s.Faults(); f.ConflictCount != 0 {
			t.Errorf("conflicts left: %d", f.ConflictCount)
		}
	})
	t.Run("conflict rate applies to PATCH too", func(t *testing.T) {
		if err := s.SetFaults(Faults{ConflictRate: 1}); err != nil {
			t.Fatal(err)
		}
		r := c.do("PATCH", "/api/v1/devices/d", `[{"op":"add","path":"/metadata/labels/a","value":"b"}]`, patchContentType)
		if r.code != 409 {
			t.Errorf("%d %s", r.code, r.body)
		}
		if r := c.do("GET", "/api/v1/devices/d", nil, ""); r.code != 200 {
			t.Errorf("reads must not conflict: %d", r.code)
		}
	})
	t.Run("rejected image refused by PUT and PATCH alike", func(t *testing.T) {
		const img = "quay.io/example/refused:1"
		if err := s.SetFaults(Faults{RejectImage: img}); err != nil {
			t.Fatal(err)
		}
		app := map[string]any{"name": "a", "appType": "quadlet", "inline": []any{map[string]any{"path": "a.container", "content": "[Container]\nImage=" + img + "\n"}}}
		spec := map[string]any{"applications": []any{app}}
		if r := c.do("PUT", "/api/v1/devices/d", deviceDoc("d", nil, spec), ""); r.code != 400 {
			t.Errorf("PUT: %d %s", r.code, r.body)
		}
		r := c.do("PATCH", "/api/v1/devices/d", `[{"op":"add","path":"/spec","value":`+string(mustMarshal(spec))+`}]`, patchContentType)
		if r.code != 400 || !strings.Contains(r.message(t), "injected fault") {
			t.Errorf("PATCH: %d %s", r.code, r.body)
		}
		if err := s.SetFaults(Faults{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("latency", func(t *testing.T) {
		if err := s.SetFaults(Faults{Latency: Duration(150 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.do("GET", "/api/v1/devices/d", nil, "")
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("request took %v", d)
		}
	})
	t.Run("unreachable drops connections", func(t *testing.T) {
		if err := s.SetFaults(Faults{Unreachable: true}); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/api/v1/devices", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token())
		resp, err := c.hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got a response (%d) from an unreachable server", resp.StatusCode)
		}
	})
	t.Run("faults over the control API", func(t *testing.T) {
		r := c.do("POST", "/sim/v1/faults", `{"errorRate":1,"latency":"10ms"}`, "application/json")
		if r.code != 200 || get(r.json(t), "latency") != "10ms" {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if r := c.do("GET", "/api/v1/devices", nil, ""); r.code != 503 {
			t.Errorf("fault not applied: %d", r.code)
		}
		for _, bad := range []string{`{"errorRate":2}`, `{"errorCode":404,"errorRate":1}`, `{"nonsense":true}`, `{"latency":"soon"}`} {
			if r := c.do("POST", "/sim/v1/faults", bad, "application/json"); r.code != 400 {
				t.Errorf("%s accepted: %d", bad, r.code)
			}
		}
		if r := c.do("POST", "/sim/v1/faults", `{}`, "application/json"); r.code != 200 {
			t.Fatalf("clear: %d", r.code)
		}
		if r := c.do("GET", "/api/v1/devices", nil, ""); r.code != 200 {
			t.Errorf("after clearing: %d", r.code)
		}
	})
	st := s.Stats()
	if st.InjectedErrors == 0 || st.InjectedConflicts < 3 || st.DroppedRequests == 0 {
		t.Errorf("fault counters: %+v", st)
	}
}

func TestFaultsFromStart(t *testing.T) {
	s := startSim(t, Options{Faults: Faults{ErrorRate: 1, ErrorCode: 502}})
	c := newClient(t, s)
	if r := c.do("GET", "/api/v1/devices", nil, ""); r.code != 502 {
		t.Errorf("%d", r.code)
	}
	bad := New(Options{Faults: Faults{ErrorRate: 3}})
	if err := bad.Start(); err == nil {
		bad.Close()
		t.Error("invalid start faults accepted")
	}
}

func TestStats(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	c.do("GET", "/api/v1/devices", nil, "")
	c.do("GET", "/api/v1/devices", nil, "")
	c.do("POST", "/api/v1/devices", deviceDoc("d", nil, map[string]any{}), "")
	c.do("GET", "/api/v1/devices/nope", nil, "")
	r := c.do("GET", "/sim/v1/stats", nil, "")
	m := r.json(t)
	if get(m, "requests.listDevices") != float64(2) || get(m, "requests.createDevice") != float64(1) || get(m, "requests.getDevice") != float64(1) {
		t.Errorf("requests: %s", js(m["requests"]))
	}
	if get(m, "responses.404") != float64(1) || get(m, "responses.201") != float64(1) {
		t.Errorf("responses: %s", js(m["responses"]))
	}
	if get(m, "bytesIn").(float64) == 0 || get(m, "bytesOut").(float64) == 0 {
		t.Errorf("bytes: %s", r.body)
	}
	c.do("POST", "/sim/v1/stats/reset", nil, "")
	if st := s.Stats(); st.Requests["listDevices"] != 0 {
		t.Errorf("after reset: %+v", st)
	}
}
