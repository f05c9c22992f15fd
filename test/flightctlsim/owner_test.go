package flightctlsim

import (
	"encoding/json"
	"strings"
	"testing"
)

const ownedTemplate = `{"applications":[{"name":"fleet-q","appType":"quadlet","inline":[{"path":"q.container","content":"[Container]\nImage=quay.io/flightctl-tests/alpine:v2\n"}]}]}`

// ownedSetup creates a fleet owning device "owned" and a free device.
func ownedSetup(t *testing.T) (*Sim, *testClient) {
	t.Helper()
	s := startSim(t, Options{})
	c := newClient(t, s)
	if err := s.AddFleet(FleetConfig{Name: "owned-fleet", Selector: map[string]string{"owned": "yes"}, Template: json.RawMessage(ownedTemplate)}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(DeviceConfig{Name: "owned", Labels: map[string]string{"owned": "yes"}, NoAgent: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(DeviceConfig{Name: "free", Labels: map[string]string{"fleet": "edge"}, NoAgent: true}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	return s, c
}

func TestFleetOwnership(t *testing.T) {
	s, c := ownedSetup(t)
	d := c.do("GET", "/api/v1/devices/owned", nil, "").json(t)
	if str(d, "metadata.owner") != "Fleet/owned-fleet" {
		t.Fatalf("owner %q", str(d, "metadata.owner"))
	}
	// The rollout copied the template, adding runAs "" like the real server.
	if str(d, "spec.applications.0.name") != "fleet-q" || get(d, "spec.applications.0.runAs") != "" {
		t.Errorf("spec not rolled out: %s", js(d["spec"]))
	}
	ann := get(d, "metadata.annotations").(map[string]any)
	if ann["fleet-controller/templateVersion"] != "v1" || ann["fleet-controller/renderedTemplateVersion"] != "v1" {
		t.Errorf("annotations %v", ann)
	}
	spec := d["spec"]
	rv := str(d, "metadata.resourceVersion")

	tests := []struct {
		name   string
		method string
		body   any
		ctype  string
		code   int
		msg    string
	}{
		{"PUT changing the spec", "PUT", deviceDoc("owned", map[string]string{"owned": "yes"}, map[string]any{"applications": []any{}}), "", 409, msgOwned},
		{"PATCH changing the spec", "PATCH", `[{"op":"replace","path":"/spec/applications","value":[]}]`, patchContentType, 409, msgOwned},
		{"PUT with the same spec and new labels", "PUT", deviceDoc("owned", map[string]string{"owned": "yes", "x": "1"}, spec), "", 200, ""},
		{"PATCH labels only", "PATCH", `[{"op":"add","path":"/metadata/labels/y","value":"2"}]`, patchContentType, 200, ""},
		{"PATCH trying to set the owner is ignored", "PATCH", `[{"op":"replace","path":"/metadata/owner","value":"Fleet/other"}]`, patchContentType, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, "/api/v1/devices/owned", tc.body, tc.ctype)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.msg != "" && r.message(t) != tc.msg {
				t.Errorf("message %q, want %q", r.message(t), tc.msg)
			}
			if r.code == 200 && str(r.json(t), "metadata.owner") != "Fleet/owned-fleet" {
				t.Errorf("owner changed: %s", r.body)
			}
		})
	}
	settle(t, s, 0)
	if snap, _ := s.GetDevice("owned"); snap.Generation != 2 || snap.ResourceVersion <= mustInt(t, rv) {
		t.Errorf("generation %d rv %d after label-only writes", snap.Generation, snap.ResourceVersion)
	}

	// Releasing: without the selector label the worker clears the owner
	// and the device takes per-device specs again.
	r := c.do("PATCH", "/api/v1/devices/owned", `[{"op":"remove","path":"/metadata/labels/owned"}]`, patchContentType)
	if r.code != 200 || str(r.json(t), "metadata.owner") != "Fleet/owned-fleet" {
		t.Fatalf("write response must still show the owner: %d %s", r.code, r.body)
	}
	settle(t, s, 0)
	d = c.do("GET", "/api/v1/devices/owned", nil, "").json(t)
	if _, has := d["metadata"].(map[string]any)["owner"]; has {
		t.Fatalf("still owned: %s", js(d["metadata"]))
	}
	r = c.do("PUT", "/api/v1/devices/owned", deviceDoc("owned", nil, map[string]any{"applications": []any{}}), "")
	if r.code != 200 {
		t.Fatalf("released device refused a spec: %d %s", r.code, r.body)
	}
	events := c.do("GET", "/api/v1/events?fieldSelector=involvedObject.name%3Downed,reason%3DResourceUpdated", nil, "").json(t)["items"].([]any)
	found := false
	for _, e := range events {
		if fields := js(get(e, "details.updatedFields")); fields == `["owner"]` && get(e, "details.previousOwner") == "Fleet/owned-fleet" {
			found = true
		}
	}
	if !found {
		t.Errorf("no owner-change event: %s", js(events))
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFleetRolloutAndDelete(t *testing.T) {
	s, c := ownedSetup(t)
	f := c.do("GET", "/api/v1/fleets/owned-fleet", nil, "").json(t)
	if str(f, "metadata.resourceVersion") != "3" || get(f, "metadata.annotations").(map[string]any)["fleet-controller/templateVersion"] != "v1" {
		t.Fatalf("fleet after creation: %s", js(f["metadata"]))
	}
	// A new template is rolled out to the owned device only.
	newTemplate := `{"applications":[{"name":"fleet-c","appType":"container","image":"quay.io/x/y:2"}]}`
	body := map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet", "metadata": map[string]any{"name": "owned-fleet"},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"owned": "yes"}}, "template": map[string]any{"spec": json.RawMessage(newTemplate)}}}
	r := c.do("PUT", "/api/v1/fleets/owned-fleet", body, "")
	if r.code != 200 || get(r.json(t), "metadata.generation") != float64(2) {
		t.Fatalf("fleet PUT: %d %s", r.code, r.body)
	}
	settle(t, s, 0)
	owned, _ := s.GetDevice("owned")
	if !strings.Contains(string(owned.Spec), "fleet-c") || owned.Annotations["fleet-controller/templateVersion"] != "v2" {
		t.Errorf("not rolled out: %s %v", owned.Spec, owned.Annotations)
	}
	free, _ := s.GetDevice("free")
	if string(free.Spec) != "{}" || free.Owner != "" {
		t.Errorf("free device touched: %s %q", free.Spec, free.Owner)
	}
	// Devices summary on the fleet counts its devices.
	f = c.do("GET", "/api/v1/fleets?addDevicesSummary=true", nil, "").json(t)
	if get(f, "items.0.status.devicesSummary.total") != float64(1) {
		t.Errorf("devicesSummary: %s", js(get(f, "items.0.status")))
	}
	// Deleting the fleet releases its devices.
	if r := c.do("DELETE", "/api/v1/fleets/owned-fleet", nil, ""); r.code != 200 || str(r.json(t), "status") != "Success" {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
	settle(t, s, 0)
	if owned, _ := s.GetDevice("owned"); owned.Owner != "" {
		t.Errorf("owner %q after fleet deletion", owned.Owner)
	}
	if r := c.do("GET", "/api/v1/fleets/owned-fleet", nil, ""); r.code != 404 || r.message(t) != `Fleet of name "owned-fleet" not found` {
		t.Errorf("deleted fleet: %d %s", r.code, r.body)
	}
}

func TestTwoFleetsMatchingLeaveDeviceUnowned(t *testing.T) {
	s := startSim(t, Options{})
	for _, f := range []FleetConfig{
		{Name: "a", Selector: map[string]string{"site": "lab"}},
		{Name: "b", Selector: map[string]string{"tier": "edge"}},
	} {
		if err := s.AddFleet(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddDevice(DeviceConfig{Name: "both", Labels: map[string]string{"site": "lab", "tier": "edge"}, NoAgent: true}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	if d, _ := s.GetDevice("both"); d.Owner != "" {
		t.Errorf("owner %q, want none", d.Owner)
	}
	var warned bool
	for _, e := range s.Events() {
		if e.Reason == reasonMultipleOwnersDetected && e.InvolvedObject.Name == "both" && e.Type == "Warning" && e.Message == "Device matches multiple fleets: a, b." {
			warned = true
		}
	}
	if !warned {
		t.Error("no DeviceMultipleOwnersDetected warning")
	}
}

func TestFleetAPIErrors(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	fleet := func(name string, spec any) map[string]any {
		return map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet", "metadata": map[string]any{"name": name}, "spec": spec}
	}
	okSpec := map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"a": "b"}}, "template": map[string]any{"spec": map[string]any{}}}
	if r := c.do("POST", "/api/v1/fleets", fleet("f1", okSpec), ""); r.code != 201 || str(r.json(t), "metadata.resourceVersion") != "1" {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	tests := []struct {
		name, method, path string
		body               any
		code               int
		msg                string
	}{
		{"duplicate", "POST", "/api/v1/fleets", fleet("f1", okSpec), 409, msgExists},
		{"name mismatch", "PUT", "/api/v1/fleets/other", fleet("f1", okSpec), 400, msgNameMismatch},
		{"missing template", "POST", "/api/v1/fleets", fleet("f2", map[string]any{}), 400,
			`API Error: request body has an error: doesn't match schema #/components/schemas/Fleet: Error at "/spec/template": property "template" is missing`},
		{"missing spec", "POST", "/api/v1/fleets", map[string]any{"apiVersion": "v1beta1", "kind": "Fleet", "metadata": map[string]any{"name": "f3"}}, 400,
			`API Error: request body has an error: doesn't match schema #/components/schemas/Fleet: Error at "/spec": property "spec" is missing`},
		{"bad template app", "POST", "/api/v1/fleets", fleet("f4", map[string]any{"template": map[string]any{"spec": map[string]any{"applications": []any{map[string]any{"name": "x"}}}}}), 400,
			`API Error: request body has an error: doesn't match schema #/components/schemas/Fleet: Error at "/spec/template/spec/applications/0": input does not contain the discriminator property "appType"`},
		{"stale resourceVersion", "PUT", "/api/v1/fleets/f1", func() map[string]any {
			f := fleet("f1", okSpec)
			f["metadata"].(map[string]any)["resourceVersion"] = "1"
			return f
		}(), 409, msgConflict},
		{"unknown fleet", "GET", "/api/v1/fleets/nope", nil, 404, `Fleet of name "nope" not found`},
		{"unknown fleet delete is idempotent (v1.2.0)", "DELETE", "/api/v1/fleets/nope", nil, 200, ``},
	}
	settle(t, s, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, tc.path, tc.body, "")
			if r.code != tc.code || r.message(t) != tc.msg {
				t.Errorf("got %d %q, want %d %q", r.code, r.message(t), tc.code, tc.msg)
			}
		})
	}
	if r := c.do("PUT", "/api/v1/fleets/f5", fleet("f5", okSpec), ""); r.code != 201 {
		t.Errorf("PUT upsert: %d %s", r.code, r.body)
	}
}
