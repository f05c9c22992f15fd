package flightctlsim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// podSpec is a quadlet application with a .pod and n .container files.
func podSpec(name string, images ...string) map[string]any {
	files := []any{map[string]any{"path": name + ".pod", "content": "[Pod]\n"}}
	for i, img := range images {
		files = append(files, map[string]any{
			"path":    fmt.Sprintf("%s-%d.container", name, i),
			"content": "[Container]\nImage=" + img + "\nPod=" + name + ".pod\n",
		})
	}
	return map[string]any{"name": name, "appType": "quadlet", "inline": files}
}

// appStatus returns a device's status for one application.
func appStatus(s *Sim, dev, app string) (flightctl.ApplicationStatus, bool) {
	snap, _ := s.GetDevice(dev)
	for _, a := range snap.Status.Applications {
		if a.Name == app {
			return a, true
		}
	}
	return flightctl.ApplicationStatus{}, false
}

func TestAgentAppliesSpec(t *testing.T) {
	phase := 150 * time.Millisecond
	s := startSim(t, Options{Agent: AgentDelays{Preparing: phase, Starting: phase}})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "dev", Labels: map[string]string{"fleet": "edge"}, CPU: 4, Memory: "8Gi", IP: "192.0.2.11"}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, time.Second)
	snap, _ := s.GetDevice("dev")
	st := snap.Status
	if st.Summary.Status != "Online" || st.ApplicationsSummary.Status != "NoApplications" || st.Updated.Status != "UpToDate" {
		t.Fatalf("fresh device status: %+v %+v %+v", st.Summary, st.ApplicationsSummary, st.Updated)
	}
	for k, want := range map[string]string{"cpuCores": "4", "memoryTotalKb": "8388608", "netIpDefault": "192.0.2.11/24", "hostname": "dev", "architecture": "amd64", "operatingSystem": "linux", "agentVersion": SimAgentVersion} {
		if st.SystemInfo[k] != want {
			t.Errorf("systemInfo[%s] = %q, want %q", k, st.SystemInfo[k], want)
		}
	}
	if st.SystemInfo["bootID"] == "" {
		t.Error("no bootID")
	}
	if r := c.do("GET", "/api/v1/devices/dev/lastseen", nil, ""); r.code != 200 || !strings.Contains(string(r.body), "lastSeen") {
		t.Errorf("lastseen of a reporting device: %d %s", r.code, r.body)
	}

	spec := specWith(
		podSpec("web", "docker.io/library/nginx:latest", "quay.io/example/sidecar:1"),
		inline("cmp", "compose", "podman-compose.yaml", "services:\n  a:\n    image: quay.io/a/a:1\n  b:\n    image: quay.io/b/b:1\n  c:\n    image: quay.io/c/c:1\n"),
		map[string]any{"name": "bad", "appType": "container", "image": "quay.io/example/does-not-exist:1"},
	)
	if r := c.do("PUT", "/api/v1/devices/dev", deviceDoc("dev", map[string]string{"fleet": "edge"}, spec), ""); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	waitFor(t, "Preparing", 2*time.Second, func() bool {
		a, ok := appStatus(s, "dev", "web")
		return ok && a.Status == "Preparing"
	})
	snap, _ = s.GetDevice("dev")
	if snap.Status.Updated.Status != "Updating" || snap.Status.Updated.Info != "Device is updating to the latest device spec." {
		t.Errorf("while preparing, updated = %+v", snap.Status.Updated)
	}
	if snap.Status.ApplicationsSummary.Status != "Degraded" || !strings.Contains(snap.Status.ApplicationsSummary.Info, "Not started: web") {
		t.Errorf("while preparing, applicationsSummary = %+v", snap.Status.ApplicationsSummary)
	}
	if a, _ := appStatus(s, "dev", "web"); a.Ready != "0/2" || a.AppType != "quadlet" {
		t.Errorf("web while preparing: %+v", a)
	}
	waitFor(t, "Starting", 2*time.Second, func() bool {
		a, _ := appStatus(s, "dev", "web")
		return a.Status == "Starting"
	})
	snap, _ = s.GetDevice("dev")
	if snap.Status.Config.RenderedVersion != snap.Annotations[flightctl.AnnotationRenderedVersion] || snap.Status.Updated.Status != "UpToDate" {
		t.Errorf("after preparing: renderedVersion %q vs annotation %q, updated %+v",
			snap.Status.Config.RenderedVersion, snap.Annotations[flightctl.AnnotationRenderedVersion], snap.Status.Updated)
	}
	if a, _ := appStatus(s, "dev", "bad"); a.Status != "Error" || a.Ready != "0/1" {
		t.Errorf("failing image: %+v", a)
	}
	waitFor(t, "Running", 2*time.Second, func() bool {
		a, _ := appStatus(s, "dev", "web")
		return a.Status == "Running"
	})
	for name, ready := range map[string]string{"web": "2/2", "cmp": "3/3"} {
		if a, _ := appStatus(s, "dev", name); a.Status != "Running" || a.Ready != ready {
			t.Errorf("%s: %+v, want Running %s", name, a, ready)
		}
	}
	snap, _ = s.GetDevice("dev")
	if snap.Status.ApplicationsSummary.Status != "Error" || snap.Status.ApplicationsSummary.Info != "bad is in status Error" {
		t.Errorf("summary with a failed app: %+v", snap.Status.ApplicationsSummary)
	}

	// Removing the failing application: it leaves the status, the rest keep
	// running (not restarted), and the summary turns Healthy.
	before, _ := appStatus(s, "dev", "web")
	spec = specWith(spec["applications"].([]any)[0], spec["applications"].([]any)[1])
	if r := c.do("PUT", "/api/v1/devices/dev", deviceDoc("dev", map[string]string{"fleet": "edge"}, spec), ""); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	waitFor(t, "bad removed", 2*time.Second, func() bool {
		_, ok := appStatus(s, "dev", "bad")
		return !ok
	})
	settle(t, s, time.Second)
	snap, _ = s.GetDevice("dev")
	if after, _ := appStatus(s, "dev", "web"); after != before {
		t.Errorf("unchanged app restarted: %+v -> %+v", before, after)
	}
	if snap.Status.ApplicationsSummary.Status != "Healthy" || snap.Status.ApplicationsSummary.Info != infoAppsHealthy {
		t.Errorf("summary: %+v", snap.Status.ApplicationsSummary)
	}
	reasons := map[string]int{}
	for _, e := range s.Events() {
		if e.InvolvedObject.Name == "dev" {
			reasons[e.Reason]++
		}
	}
	for _, r := range []string{reasonContentUpdating, reasonContentUpToDate, reasonAppDegraded, reasonAppError, reasonAppHealthy, reasonDeviceConnected} {
		if reasons[r] == 0 {
			t.Errorf("no %s event (have %v)", r, reasons)
		}
	}
}

func TestAgentAppSummaryStates(t *testing.T) {
	s := startSim(t, Options{})
	tests := []struct {
		name    string
		spec    map[string]any
		summary string
		info    string
	}{
		{"no applications", map[string]any{}, "NoApplications", infoAppsUndefined},
		{"all running", specWith(map[string]any{"name": "a", "appType": "container", "image": "nginx"}), "Healthy", infoAppsHealthy},
		{"fail-pull tag", specWith(map[string]any{"name": "a", "appType": "container", "image": "quay.io/x/y:fail-pull"}), "Error", "a is in status Error"},
		{"failing image inside compose", specWith(inline("c", "compose", "docker-compose.yaml", "services:\n  a:\n    image: quay.io/x/ok:1\n  b:\n    image: quay.io/does-not-exist/b:1\n")), "Error", "c is in status Error"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("d%d", i)
			raw := []byte(js(tc.spec))
			if err := s.AddDevice(DeviceConfig{Name: name, Spec: raw}); err != nil {
				t.Fatal(err)
			}
			settle(t, s, 0)
			snap, _ := s.GetDevice(name)
			if snap.Status.ApplicationsSummary.Status != tc.summary || snap.Status.ApplicationsSummary.Info != tc.info {
				t.Errorf("applicationsSummary %+v, want %s %q", snap.Status.ApplicationsSummary, tc.summary, tc.info)
			}
			if snap.Status.Updated.Status != "UpToDate" || snap.Status.Summary.Status != "Online" {
				t.Errorf("updated %+v summary %+v", snap.Status.Updated, snap.Status.Summary)
			}
		})
	}
}

func TestWriteResponsesShowPreRenderState(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "dev", NoAgent: true}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	d := c.do("GET", "/api/v1/devices/dev", nil, "").json(t)
	if str(d, "metadata.resourceVersion") != "4" || get(d, "metadata.generation") != float64(1) {
		t.Fatalf("after creation and render: rv %s gen %v", str(d, "metadata.resourceVersion"), get(d, "metadata.generation"))
	}
	ann := get(d, "metadata.annotations").(map[string]any)
	if ann[flightctl.AnnotationRenderedVersion] != "1" || ann[flightctl.AnnotationRenderedSpecHash] != "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("render annotations %v", ann)
	}
	spec := specWith(map[string]any{"name": "a", "appType": "container", "image": "nginx"})
	r := c.do("PUT", "/api/v1/devices/dev", deviceDoc("dev", nil, spec), "").json(t)
	if str(r, "metadata.resourceVersion") != "5" || get(r, "metadata.generation") != float64(2) {
		t.Errorf("PUT response rv %s gen %v, want 5 and 2", str(r, "metadata.resourceVersion"), get(r, "metadata.generation"))
	}
	if get(r, "metadata.annotations").(map[string]any)[flightctl.AnnotationRenderedVersion] != "1" {
		t.Errorf("PUT response must show the pre-render annotation")
	}
	settle(t, s, 0)
	d = c.do("GET", "/api/v1/devices/dev", nil, "").json(t)
	if str(d, "metadata.resourceVersion") != "7" || get(d, "metadata.annotations").(map[string]any)[flightctl.AnnotationRenderedVersion] != "2" {
		t.Errorf("after render: rv %s annotations %v", str(d, "metadata.resourceVersion"), get(d, "metadata.annotations"))
	}
	// An identical PUT is still a write.
	r = c.do("PUT", "/api/v1/devices/dev", deviceDoc("dev", nil, spec), "").json(t)
	if str(r, "metadata.resourceVersion") != "8" || get(r, "metadata.generation") != float64(2) {
		t.Errorf("no-op PUT: rv %s gen %v", str(r, "metadata.resourceVersion"), get(r, "metadata.generation"))
	}
	// Conditional PUTs.
	stale := deviceDoc("dev", nil, spec)
	stale["metadata"].(map[string]any)["resourceVersion"] = "7"
	if r := c.do("PUT", "/api/v1/devices/dev", stale, ""); r.code != 409 || r.message(t) != msgConflict {
		t.Errorf("stale: %d %s", r.code, r.body)
	}
	stale["metadata"].(map[string]any)["resourceVersion"] = "8"
	if r := c.do("PUT", "/api/v1/devices/dev", stale, ""); r.code != 200 {
		t.Errorf("current: %d %s", r.code, r.body)
	}
	stale["metadata"].(map[string]any)["resourceVersion"] = "x1"
	if r := c.do("PUT", "/api/v1/devices/dev", stale, ""); r.code != 400 || r.message(t) != msgBadRV {
		t.Errorf("non-numeric: %d %s", r.code, r.body)
	}
}
