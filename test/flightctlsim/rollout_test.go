package flightctlsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// batchedSetup makes Fleet batched (one device, then the rest) owning b-1,
// b-2 and b-3 with running agents.
func batchedSetup(t *testing.T) (*Sim, *testClient) {
	t.Helper()
	// Agents take a moment per phase, so a batch is visibly in progress.
	s := startSim(t, Options{RenderDelay: 20 * time.Millisecond, Agent: AgentDelays{Fetch: 100 * time.Millisecond, Preparing: 300 * time.Millisecond, Starting: 100 * time.Millisecond}})
	c := newClient(t, s)
	for _, n := range []string{"b-1", "b-2", "b-3"} {
		if err := s.AddDevice(DeviceConfig{Name: n, Labels: map[string]string{"batched": "yes"}}); err != nil {
			t.Fatal(err)
		}
	}
	fleet := map[string]any{
		"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet", "metadata": map[string]any{"name": "batched"},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]string{"batched": "yes"}},
			"template": map[string]any{"spec": json.RawMessage(appTemplate("quay.io/example/app:1"))},
			"rolloutPolicy": map[string]any{"deviceSelection": map[string]any{"strategy": "BatchSequence",
				"sequence": []any{map[string]any{"limit": 1}}}, "successThreshold": "100%"},
		},
	}
	if r := c.do("POST", "/api/v1/fleets", fleet, ""); r.code != 201 {
		t.Fatalf("create fleet: %d %s", r.code, r.body)
	}
	return s, c
}

func appTemplate(image string) string {
	return `{"applications":[{"name":"app","appType":"quadlet","inline":[{"path":"app.container","content":"[Container]\nImage=` + image + `\n"}]}]}`
}

// imageOn is the image in a device's spec.
func imageOn(t *testing.T, c *testClient, device string) string {
	d := c.do("GET", "/api/v1/devices/"+device, nil, "").json(t)
	content := str(d, "spec.applications.0.inline.0.content")
	return strings.TrimSpace(strings.TrimPrefix(content, "[Container]\nImage="))
}

func setTemplate(t *testing.T, c *testClient, image string) {
	f := c.do("GET", "/api/v1/fleets/batched", nil, "").json(t)
	spec := f["spec"].(map[string]any)
	spec["template"].(map[string]any)["spec"] = json.RawMessage(appTemplate(image))
	if r := c.do("PUT", "/api/v1/fleets/batched", map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet",
		"metadata": map[string]any{"name": "batched", "resourceVersion": str(f, "metadata.resourceVersion")}, "spec": spec}, ""); r.code != 200 {
		t.Fatalf("replace fleet: %d %s", r.code, r.body)
	}
}

func TestBatchedRolloutGoesBatchByBatch(t *testing.T) {
	s, c := batchedSetup(t)
	waitFor(t, "version 1 on every device", 10*time.Second, func() bool {
		return imageOn(t, c, "b-1") == "quay.io/example/app:1" && imageOn(t, c, "b-2") == "quay.io/example/app:1" && imageOn(t, c, "b-3") == "quay.io/example/app:1"
	})
	settle(t, s, time.Second)
	setTemplate(t, c, "quay.io/example/app:2")
	waitFor(t, "the first batch to get version 2", 10*time.Second, func() bool { return imageOn(t, c, "b-1") == "quay.io/example/app:2" })
	if imageOn(t, c, "b-2") != "quay.io/example/app:1" || imageOn(t, c, "b-3") != "quay.io/example/app:1" {
		t.Fatalf("the second batch got the version with the first: b-2 %s, b-3 %s", imageOn(t, c, "b-2"), imageOn(t, c, "b-3"))
	}
	f := c.do("GET", "/api/v1/fleets/batched", nil, "").json(t)
	if got := str(f, "metadata.annotations.fleet-controller/batchNumber"); got != "0" {
		t.Errorf("batchNumber = %q during the first batch, want 0", got)
	}
	waitFor(t, "the last batch to get version 2", 15*time.Second, func() bool {
		return imageOn(t, c, "b-2") == "quay.io/example/app:2" && imageOn(t, c, "b-3") == "quay.io/example/app:2"
	})
	waitFor(t, "FleetRolloutCompleted", 10*time.Second, func() bool { return hasFleetEvent(s, "FleetRolloutCompleted") })
}

func TestBatchedRolloutStopsBelowTheSuccessThreshold(t *testing.T) {
	s, c := batchedSetup(t)
	waitFor(t, "version 1 on every device", 10*time.Second, func() bool { return imageOn(t, c, "b-3") == "quay.io/example/app:1" })
	settle(t, s, time.Second)
	// The first batch (b-1) cannot prepare the new version.
	setTemplate(t, c, "quay.io/example/app:fail-prepare")
	waitFor(t, "FleetRolloutFailed", 15*time.Second, func() bool { return hasFleetEvent(s, "FleetRolloutFailed") })
	settle(t, s, time.Second)
	if imageOn(t, c, "b-2") != "quay.io/example/app:1" || imageOn(t, c, "b-3") != "quay.io/example/app:1" {
		t.Fatalf("a failed batch let the rollout go on: b-2 %s, b-3 %s", imageOn(t, c, "b-2"), imageOn(t, c, "b-3"))
	}
}

func hasFleetEvent(s *Sim, reason string) bool {
	for _, e := range s.Events() {
		if e.InvolvedObject.Kind == "Fleet" && e.Reason == reason {
			return true
		}
	}
	return false
}

func TestControlAddsDevices(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	cfg := map[string]any{"name": "added-1", "labels": map[string]string{"x": "y"}, "cpu": 2, "memory": "4Gi", "failApplications": true}
	if r := c.do("POST", "/sim/v1/devices", cfg, ""); r.code != 200 {
		t.Fatalf("add: %d %s", r.code, r.body)
	}
	if r := c.do("POST", "/sim/v1/devices", cfg, ""); r.code != 409 {
		t.Fatalf("adding it again: %d %s, want 409", r.code, r.body)
	}
	if r := c.do("POST", "/sim/v1/devices", map[string]any{"name": "added-2", "bogus": 1}, ""); r.code != 400 {
		t.Fatalf("unknown field: %d %s, want 400", r.code, r.body)
	}
	d := c.do("GET", "/api/v1/devices/added-1", nil, "").json(t)
	if str(d, "metadata.labels.x") != "y" || str(d, "status.systemInfo.cpuCores") != "2" {
		t.Fatalf("added device: %s", js(d))
	}
}
