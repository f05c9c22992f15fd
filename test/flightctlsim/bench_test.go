package flightctlsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Scale: the simulator must hold 10,000 devices running 100,000
// applications and still answer a 1,000-device list page quickly, because
// the provider polls whole fleets that way.

const (
	scaleDevices       = 10000
	scaleAppsPerDevice = 10
)

// scaleSpec is a device spec with ten applications of all kinds.
func scaleSpec() json.RawMessage {
	var apps []any
	for i := range 4 {
		apps = append(apps, podSpec(fmt.Sprintf("vk-ns-pod%d-0123456789", i), "docker.io/library/nginx:1.27", "quay.io/example/sidecar:1"))
	}
	for i := range 3 {
		apps = append(apps, inline(fmt.Sprintf("vk-ns-cmp%d-0123456789", i), "compose", "podman-compose.yaml",
			"services:\n  a:\n    image: quay.io/a/a:1\n  b:\n    image: quay.io/b/b:1\n"))
	}
	for i := range 3 {
		apps = append(apps, map[string]any{"name": fmt.Sprintf("vk-ns-ctr%d-0123456789", i), "appType": "container", "image": "nginx:latest", "ports": []any{"8080:80"}})
	}
	return json.RawMessage(js(specWith(apps...)))
}

// scaleSim starts a simulator with scaleDevices connected devices, each
// running scaleAppsPerDevice applications.
func scaleSim(tb testing.TB) *Sim {
	tb.Helper()
	start := time.Now()
	s := startSim(tb, Options{})
	spec := scaleSpec()
	for i := range scaleDevices {
		cfg := DeviceConfig{Name: fmt.Sprintf("scale-%05d", i), Labels: map[string]string{"fleet": "bench"}, CPU: 4, Memory: "8Gi", Spec: spec}
		if err := s.AddDevice(cfg); err != nil {
			tb.Fatal(err)
		}
	}
	settle(tb, s, 0)
	apps := 0
	s.mu.RLock()
	for _, d := range s.devices {
		for _, a := range d.status.Applications {
			if a.Status == "Running" {
				apps++
			}
		}
	}
	s.mu.RUnlock()
	if apps != scaleDevices*scaleAppsPerDevice {
		tb.Fatalf("%d applications running, want %d", apps, scaleDevices*scaleAppsPerDevice)
	}
	tb.Logf("seeded %d devices / %d running applications in %v", scaleDevices, apps, time.Since(start).Round(time.Millisecond))
	return s
}

// dropCaches forgets every device's cached JSON, so that the next list
// encodes everything (the worst case: every device changed since the last
// poll).
func dropCaches(s *Sim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		d.enc.Store(nil)
	}
}

// fetchPage lists one page and returns its byte size and continue token.
func fetchPage(tb testing.TB, hc *http.Client, s *Sim, cont string) (int, string) {
	tb.Helper()
	u := s.URL() + "/api/v1/devices?limit=1000&labelSelector=fleet%3Dbench"
	if cont != "" {
		u += "&continue=" + url.QueryEscape(cont)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+s.Token())
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("%d %v", resp.StatusCode, err)
	}
	var page struct {
		Items    []json.RawMessage `json:"items"`
		Metadata struct {
			Continue string `json:"continue"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &page); err != nil || len(page.Items) != 1000 {
		tb.Fatalf("page of %d items: %v", len(page.Items), err)
	}
	return len(body), page.Metadata.Continue
}

func TestScaleListPage(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 10,000 devices")
	}
	s := scaleSim(t)
	c := newClient(t, s)
	dropCaches(s)
	start := time.Now()
	size, cont := fetchPage(t, c.hc, s, "")
	cold := time.Since(start)
	start = time.Now()
	fetchPage(t, c.hc, s, "")
	warm := time.Since(start)
	// Times are printed, not asserted: under the race detector on a busy
	// machine they vary tenfold (BenchmarkListDevicesPage measures them).
	t.Logf("1000-device page: %d bytes, cold %v, warm %v", size, cold, warm)
	// Walk every page.
	pages := 1
	for cont != "" {
		_, cont = fetchPage(t, c.hc, s, cont)
		pages++
	}
	if pages != scaleDevices/1000 {
		t.Errorf("%d pages", pages)
	}
}

// BenchmarkListDevicesPage measures one 1000-device page (labelSelector,
// limit=1000) over loopback HTTP against 10,000 devices running 100,000
// applications. "warm" reuses cached device JSON (devices unchanged since
// the last poll), "cold" re-encodes every device on the page.
func BenchmarkListDevicesPage(b *testing.B) {
	s := scaleSim(b)
	hc := s.HTTPClient()
	defer hc.CloseIdleConnections()
	b.Run("warm", func(b *testing.B) {
		fetchPage(b, hc, s, "")
		b.ResetTimer()
		for b.Loop() {
			size, _ := fetchPage(b, hc, s, "")
			b.SetBytes(int64(size))
		}
	})
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dropCaches(s)
			b.StartTimer()
			size, _ := fetchPage(b, hc, s, "")
			b.SetBytes(int64(size))
		}
	})
}
