package flightctlsim

import (
	"strings"
	"testing"
	"time"
)

// costConfig generates n devices so that a list has a known size.
func costConfig(n int) *Config {
	return &Config{Generate: []GenerateConfig{{Prefix: "dev-", Count: n, Labels: map[string]string{"fleet": "f"}, CPU: 2, Memory: "4Gi"}}}
}

// timed runs one request and returns its answer and wall time.
func timed(c *testClient, method, path string, body any) (response, time.Duration) {
	c.t.Helper()
	start := time.Now()
	r := c.do(method, path, body, "application/json")
	return r, time.Since(start)
}

func TestCostModelListTakesModelledTime(t *testing.T) {
	const n = 50
	model := CostModel{ListBase: 30 * time.Millisecond, ListPerDevice: 2 * time.Millisecond, ListPerByte: 100, Get: 40 * time.Millisecond, Write: 60 * time.Millisecond}
	s := startSim(t, Options{Cost: model, Config: costConfig(n)})
	c := newClient(t, s)

	r, took := timed(c, "GET", "/api/v1/devices", nil)
	if r.code != 200 {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	if got := strings.Count(string(r.body), `"kind":"Device"`); got != n {
		t.Fatalf("list returned %d devices, want %d", got, n)
	}
	want := model.ListBase + n*model.ListPerDevice + time.Duration(model.ListPerByte*float64(len(r.body)))
	if took < want {
		t.Errorf("list of %d devices (%d bytes) took %v, want at least the modelled %v", n, len(r.body), took, want)
	}

	if _, took := timed(c, "GET", "/api/v1/devices/dev-01", nil); took < model.Get {
		t.Errorf("get took %v, want at least %v", took, model.Get)
	}
	r, took = timed(c, "PATCH", "/api/v1/devices/dev-01", `[{"op":"add","path":"/metadata/labels/x","value":"y"}]`)
	if took < model.Write {
		t.Errorf("patch (%d) took %v, want at least %v", r.code, took, model.Write)
	}
}

func TestCostModelOffStaysFast(t *testing.T) {
	s := startSim(t, Options{Config: costConfig(50)})
	c := newClient(t, s)
	// The modelled list above costs 130 ms plus bytes; without the model
	// the same list must not come near it, even on a loaded machine.
	if r, took := timed(c, "GET", "/api/v1/devices", nil); r.code != 200 || took > 100*time.Millisecond {
		t.Errorf("list without a cost model: %d in %v, want 200 well under 100ms", r.code, took)
	}
}

func TestCostModelPresetsAndValidation(t *testing.T) {
	real, err := CostModelByName(CostModelRealV12)
	if err != nil || !real.enabled() || real.RenderDelay != 20*time.Millisecond {
		t.Fatalf("%s: %+v, %v", CostModelRealV12, real, err)
	}
	// The preset must reproduce the measured 367 ms for 1,000 devices of
	// 13.4 KB within 10%.
	if got := real.cost("GET", "listDevices", 1000, 13_400_000); got < 330*time.Millisecond || got > 404*time.Millisecond {
		t.Errorf("preset list of 1,000 devices costs %v, want about 367ms", got)
	}
	if off, err := CostModelByName("off"); err != nil || off.enabled() {
		t.Errorf("off: %+v, %v", off, err)
	}
	if _, err := CostModelByName("fast"); err == nil || !strings.Contains(err.Error(), "unknown cost model") {
		t.Errorf("unknown name: %v", err)
	}
	s := New(Options{Cost: CostModel{Get: -time.Millisecond}})
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		_ = s.Close()
		t.Errorf("negative cost: %v", err)
	}
}

func TestCostModelRenderDelayOverrides(t *testing.T) {
	s := New(Options{RenderDelay: time.Second, Cost: CostModel{RenderDelay: 20 * time.Millisecond}})
	if s.opts.RenderDelay != 20*time.Millisecond {
		t.Errorf("render delay %v, want the cost model's 20ms", s.opts.RenderDelay)
	}
}
