package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPctAndMedian(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := pct(v, 50); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := pct(v, 99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}

func TestParseStatTicks(t *testing.T) {
	// The command name may contain spaces and parentheses.
	stat := "4242 (vk (flight) ctl) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	got, err := parseStatTicks(stat)
	if err != nil || got != 325 {
		t.Fatalf("parseStatTicks = %d, %v; want 325", got, err)
	}
	if _, err := parseStatTicks("garbage"); err == nil {
		t.Error("parseStatTicks(garbage) succeeded")
	}
	// Our own process has a stat file the parser understands.
	raw, err := os.ReadFile("/proc/self/stat")
	if err == nil {
		if _, err := parseStatTicks(string(raw)); err != nil {
			t.Errorf("/proc/self/stat: %v", err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	st := parseStatus("Name:\tx\nVmHWM:\t  131072 kB\nVmRSS:\t   65536 kB\nRssAnon:\t   40960 kB\nRssFile:\t   24576 kB\nThreads:\t12\n")
	if st["VmHWM"] != 131072 || st["VmRSS"] != 65536 || st["RssAnon"] != 40960 || st["RssFile"] != 24576 || len(st) != 4 {
		t.Errorf("parseStatus = %v", st)
	}
}

const metricsText = `# TYPE vk_flightctl_status_loop_duration_seconds histogram
vk_flightctl_status_loop_duration_seconds_bucket{fleet="a",le="0.01"} 5
vk_flightctl_status_loop_duration_seconds_bucket{fleet="a",le="0.02"} 9
vk_flightctl_status_loop_duration_seconds_bucket{fleet="a",le="+Inf"} 10
vk_flightctl_status_loop_duration_seconds_sum{fleet="a"} 0.2
vk_flightctl_status_loop_duration_seconds_count{fleet="a"} 10
vk_flightctl_status_loop_duration_seconds_bucket{fleet="b",le="0.01"} 0
vk_flightctl_status_loop_duration_seconds_bucket{fleet="b",le="0.02"} 10
vk_flightctl_status_loop_duration_seconds_bucket{fleet="b",le="+Inf"} 10
vk_flightctl_status_loop_duration_seconds_sum{fleet="b"} 0.15
vk_flightctl_status_loop_duration_seconds_count{fleet="b"} 10
# TYPE flightctl_client_requests_total counter
flightctl_client_requests_total{code="200",operation="list_devices"} 7
flightctl_client_requests_total{code="500",operation="list_devices"} 1
flightctl_client_requests_total{code="200",operation="replace_device"} 3
`

func TestParseMetricsAndDeltas(t *testing.T) {
	after, err := parseMetrics(strings.NewReader(metricsText))
	if err != nil {
		t.Fatal(err)
	}
	if got := after.requests["list_devices"]; got != 8 {
		t.Errorf("list_devices = %v, want 8 (codes summed)", got)
	}
	before := metricsSnapshot{loop: map[string]histogram{}, requests: map[string]float64{"list_devices": 2}}
	ls := loopDelta(before, after, []string{"a", "b"})
	if ls.Loops != 20 || math.Abs(ls.MeanSeconds-0.0175) > 1e-9 || ls.P99UpperSeconds != 0.02 {
		t.Errorf("loopDelta = %+v, want 20 loops, mean 0.0175, p99 <= 0.02", ls)
	}
	if ls := loopDelta(after, after, []string{"a"}); ls.Loops != 0 || ls.MeanSeconds != 0 {
		t.Errorf("loopDelta of equal snapshots = %+v", ls)
	}
	d, total := requestDelta(before, after)
	if total != 9 || d["list_devices"] != 6 {
		t.Errorf("requestDelta = %v, %v", d, total)
	}
}

func TestScaleSimConfigSpreadsDevices(t *testing.T) {
	conf, per := scaleSimConfig(23, 5)
	sum := 0
	for _, n := range per {
		sum += n
	}
	if sum != 23 || per[0] != 5 || per[4] != 4 {
		t.Errorf("per binding = %v", per)
	}
	if !strings.Contains(conf, "{prefix: scale-4-, count: 4, labels: {fleet: scale-4}") {
		t.Errorf("config:\n%s", conf)
	}
}

func TestWriteChart(t *testing.T) {
	rep := &report{Config: config{Pods: 3, Reps: 1}, Runs: []phaseResult{
		{Target: "vk", Kind: "bare", Latencies: []float64{0.3, 0.1, 0.2}},
		{Target: "kwok", Kind: "bare", Latencies: []float64{0.05, 0.07, 0.06}},
		{Target: "vk", Kind: "deployment", Latencies: []float64{0.5, 0.4, 0.9}},
	}}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := writeChart(path, rep); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
		t.Errorf("chart is %v", b)
	}
}

func TestCDF(t *testing.T) {
	xys := cdf([]float64{1, 2, 4})
	if len(xys) != 4 || xys[0].Y != 0 || xys[3].Y != 1 || xys[1].X != 1 {
		t.Errorf("cdf = %v", xys)
	}
}
