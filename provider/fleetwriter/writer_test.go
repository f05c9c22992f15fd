package fleetwriter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/fleetwriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

func owned(name string) bool { return strings.HasPrefix(name, "vk-") }

func quadlet(name, image string) flightctl.ApplicationSpec {
	return flightctl.ApplicationSpec{Name: name, AppType: flightctl.AppTypeQuadlet, Inline: []flightctl.InlineFile{
		{Path: name + ".container", Content: "[Container]\nImage=" + image + "\n"}}}
}

// setup starts a simulator with Fleet edge carrying a user's application
// and an os spec, and returns a client and a writer on it.
func setup(t *testing.T, faults flightctlsim.Faults) (*flightctl.Client, *fleetwriter.Writer) {
	t.Helper()
	cfg := flightctlsim.DefaultConfig()
	cfg.Fleets = append(cfg.Fleets, flightctlsim.FleetConfig{Name: "edge", Selector: map[string]string{"site": "a"},
		Template: json.RawMessage(`{"os":{"image":"quay.io/example/os:1"},"applications":[{"name":"user-app","appType":"quadlet","inline":[{"path":"user.container","content":"[Container]\nImage=quay.io/example/user:1\n"}]}]}`)})
	sim := flightctlsim.New(flightctlsim.Options{Config: cfg, Faults: faults})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	c, err := flightctl.New(flightctl.Config{Server: sim.URL(), Token: sim.Token()})
	if err != nil {
		t.Fatal(err)
	}
	return c, fleetwriter.New(c, owned)
}

func appNames(f *flightctl.Fleet) []string {
	var out []string
	for _, a := range f.Spec.Template.Spec.Applications {
		out = append(out, a.Name)
	}
	return out
}

func TestApplyKeepsWhatItDoesNotOwn(t *testing.T) {
	ctx := context.Background()
	c, w := setup(t, flightctlsim.Faults{})
	res, err := w.Apply(ctx, "edge", fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{quadlet("vk-a", "quay.io/example/a:1")}})
	if err != nil || !res.Changed {
		t.Fatalf("Apply = %+v, %v; want a write", res, err)
	}
	f, err := c.GetFleet(ctx, "edge")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(appNames(f), ","); got != "user-app,vk-a" {
		t.Fatalf("template applications = %s, want user-app,vk-a", got)
	}
	if _, ok := f.Spec.Template.Spec.Extra["os"]; !ok {
		t.Fatalf("the template's os field was dropped: %+v", f.Spec.Template.Spec.Extra)
	}
	if f.Spec.Selector == nil || f.Spec.Selector.MatchLabels["site"] != "a" {
		t.Fatalf("the Fleet's selector changed: %+v", f.Spec.Selector)
	}

	rv := f.Metadata.ResourceVersion
	res, err = w.Apply(ctx, "edge", fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{quadlet("vk-a", "quay.io/example/a:1")}})
	if err != nil || res.Changed {
		t.Fatalf("Apply of the same application = %+v, %v; want no write", res, err)
	}
	if f, _ = c.GetFleet(ctx, "edge"); f.Metadata.ResourceVersion != rv {
		t.Fatalf("a no-op change wrote the Fleet (resourceVersion %s -> %s): it would start a rollout", rv, f.Metadata.ResourceVersion)
	}

	if _, err := w.Apply(ctx, "edge", fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{quadlet("vk-a", "quay.io/example/a:2")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Apply(ctx, "edge", fleetwriter.Change{Remove: []string{"vk-a"}}); err != nil {
		t.Fatal(err)
	}
	f, _ = c.GetFleet(ctx, "edge")
	if got := strings.Join(appNames(f), ","); got != "user-app" || fleetwriter.Owned(f, owned) != nil {
		t.Fatalf("after removal the template holds %s, want user-app only", got)
	}
}

func TestApplyRefusesApplicationsItDoesNotOwn(t *testing.T) {
	_, w := setup(t, flightctlsim.Faults{})
	if _, err := w.Apply(context.Background(), "edge", fleetwriter.Change{Remove: []string{"user-app"}}); err == nil || !strings.Contains(err.Error(), "only manages applications it owns") {
		t.Fatalf("removing user-app: err = %v, want a refusal", err)
	}
}

func TestApplyRetriesStaleResourceVersion(t *testing.T) {
	c, w := setup(t, flightctlsim.Faults{ConflictCount: 3})
	if _, err := w.Apply(context.Background(), "edge", fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{quadlet("vk-a", "quay.io/example/a:1")}}); err != nil {
		t.Fatalf("three 409s then success: %v", err)
	}
	f, _ := c.GetFleet(context.Background(), "edge")
	if got := strings.Join(appNames(f), ","); got != "user-app,vk-a" {
		t.Fatalf("template applications = %s", got)
	}
}

func TestApplyWritesTheRolloutPolicy(t *testing.T) {
	ctx := context.Background()
	c, w := setup(t, flightctlsim.Faults{})
	one := int32(1)
	policy := fleetwriter.RolloutPolicyJSON(&vkv1.RolloutPolicy{
		Batches:          []vkv1.RolloutBatch{{Limit: "1"}, {Limit: "50%", Selector: map[string]string{"site": "a"}}},
		SuccessThreshold: "90%", DisruptionBudget: &vkv1.DisruptionBudget{MaxUnavailable: &one},
	})
	want := `{"deviceSelection":{"strategy":"BatchSequence","sequence":[{"limit":1},{"selector":{"matchLabels":{"site":"a"}},"limit":"50%"}]},"successThreshold":"90%","disruptionBudget":{"maxUnavailable":1}}`
	if string(policy) != want {
		t.Fatalf("policy = %s\nwant     %s", policy, want)
	}
	if _, err := w.Apply(ctx, "edge", fleetwriter.Change{RolloutPolicy: policy}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.GetFleet(ctx, "edge")
	if string(f.Spec.RolloutPolicy) != want {
		t.Fatalf("stored policy = %s", f.Spec.RolloutPolicy)
	}
	res, err := w.Apply(ctx, "edge", fleetwriter.Change{RolloutPolicy: policy})
	if err != nil || res.Changed {
		t.Fatalf("the same policy again = %+v, %v; want no write", res, err)
	}
}
