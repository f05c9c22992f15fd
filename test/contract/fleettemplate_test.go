package contract

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/fleetwriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// testFleetTemplateWrites covers what fleet-wide mode (provider/fleetwriter)
// relies on: a read-modify-write of a Fleet's template with its
// resourceVersion keeps the selector and the applications it does not
// own, a stale resourceVersion is a 409 the writer retries, the server
// renders the new template onto the devices the Fleet owns and annotates
// them with the template version, removing the application takes it off
// the devices again, the rollout policy is stored as sent, and under a
// batch policy a change still reaches the device.
func testFleetTemplateWrites(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	fleet := f.name("fw")
	f.createFleet(fleet, map[string]string{"vkct-fw": f.set}, specOf(quadletApp("user-app", testImage)))
	dev := f.name("fw-dev")
	f.createDevice(dev, specOf(), "vkct-fw", f.set)
	waitOwner(f, dev, "Fleet/"+fleet)
	owned := func(name string) bool { return strings.HasPrefix(name, "vk-") }
	w := fleetwriter.New(f.c, owned)
	ours := quadletApp("vk-contract", testImage)

	t.Run("upsert keeps what the writer does not own", func(t *testing.T) {
		f := f.at(t)
		res, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{ours}})
		if err != nil || !res.Changed {
			t.Fatalf("Apply = %+v, %v", res, err)
		}
		got, err := f.c.GetFleet(f.ctx(), fleet)
		if err != nil {
			t.Fatal(err)
		}
		if names := appNames(&got.Spec.Template.Spec); !slices.Equal(names, []string{"user-app", "vk-contract"}) {
			t.Errorf("template applications = %v", names)
		}
		if sel := got.Spec.Selector; sel == nil || sel.MatchLabels["vkct-fw"] != f.set {
			t.Errorf("selector changed: %+v", sel)
		}
	})

	t.Run("the server renders it onto the owned device", func(t *testing.T) {
		f := f.at(t)
		f.eventually(30*time.Second, "device spec carries the template's applications", func() (bool, string) {
			d, err := f.c.GetDevice(f.ctx(), dev)
			if err != nil {
				return false, err.Error()
			}
			fl, err := f.c.GetFleet(f.ctx(), fleet)
			if err != nil {
				return false, err.Error()
			}
			names := appNames(d.Spec)
			want := fl.Metadata.Annotations["fleet-controller/templateVersion"]
			got := d.Metadata.Annotations["fleet-controller/templateVersion"]
			return slices.Equal(names, []string{"user-app", "vk-contract"}) && want != "" && got == want,
				"device applications " + strings.Join(names, ",") + ", device template version " + got + ", fleet's " + want
		})
		// The node tells which version of its application a device was
		// given by this digest (provider/inventory); the server's rendering
		// (it adds runAs) must not change it.
		d, err := f.c.GetDevice(f.ctx(), dev)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range d.Spec.Applications {
			if a.Name == ours.Name && inventory.AppDigest(a) != inventory.AppDigest(ours) {
				t.Errorf("the device's copy of %s digests differently from what was written: %+v", a.Name, a)
			}
		}
	})

	t.Run("the same content again writes nothing", func(t *testing.T) {
		f := f.at(t)
		before, _ := f.c.GetFleet(f.ctx(), fleet)
		res, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{ours}})
		if err != nil || res.Changed {
			t.Fatalf("Apply = %+v, %v; want no write (the server adds runAs; the writer must see through it)", res, err)
		}
		after, _ := f.c.GetFleet(f.ctx(), fleet)
		if before.Metadata.Generation != nil && after.Metadata.Generation != nil && *before.Metadata.Generation != *after.Metadata.Generation {
			t.Errorf("generation moved %d -> %d", *before.Metadata.Generation, *after.Metadata.Generation)
		}
	})

	t.Run("stale resourceVersion is a conflict", func(t *testing.T) {
		f := f.at(t)
		old, err := f.c.GetFleet(f.ctx(), fleet)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{quadletApp("vk-other", testImage)}}); err != nil {
			t.Fatal(err)
		}
		old.Spec.Template.Spec.Applications = nil
		_, err = f.c.ReplaceFleet(f.ctx(), old)
		expectAPIError(t, tg, err, apiErr{code: http.StatusConflict, is: []class{conflict, stale}, msg: "the object has been modified"})
	})

	t.Run("removing the owned applications keeps the user's", func(t *testing.T) {
		f := f.at(t)
		if _, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{RemoveAllOwned: true}); err != nil {
			t.Fatal(err)
		}
		got, _ := f.c.GetFleet(f.ctx(), fleet)
		if names := appNames(&got.Spec.Template.Spec); !slices.Equal(names, []string{"user-app"}) {
			t.Errorf("template applications = %v", names)
		}
		f.eventually(30*time.Second, "the device drops the removed applications", func() (bool, string) {
			d, err := f.c.GetDevice(f.ctx(), dev)
			if err != nil {
				return false, err.Error()
			}
			names := appNames(d.Spec)
			return slices.Equal(names, []string{"user-app"}), "device applications " + strings.Join(names, ",")
		})
	})
	t.Run("rollout policy is stored as sent", func(t *testing.T) {
		f := f.at(t)
		one := int32(1)
		policy := fleetwriter.RolloutPolicyJSON(&vkv1.RolloutPolicy{
			Batches: []vkv1.RolloutBatch{{Limit: "1"}}, SuccessThreshold: "90%", DisruptionBudget: &vkv1.DisruptionBudget{MaxUnavailable: &one},
		})
		if _, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{RolloutPolicy: policy}); err != nil {
			t.Fatal(err)
		}
		got, err := f.c.GetFleet(f.ctx(), fleet)
		if err != nil {
			t.Fatal(err)
		}
		var want, have any
		_ = json.Unmarshal(policy, &want)
		if err := json.Unmarshal(got.Spec.RolloutPolicy, &have); err != nil {
			t.Fatalf("stored rolloutPolicy %s: %v", got.Spec.RolloutPolicy, err)
		}
		wj, _ := json.Marshal(want)
		hj, _ := json.Marshal(have)
		if string(wj) != string(hj) {
			t.Errorf("stored rolloutPolicy %s, sent %s", hj, wj)
		}
		res, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{RolloutPolicy: policy})
		if err != nil || res.Changed {
			t.Errorf("the same policy again = %+v, %v; want no write", res, err)
		}
	})

	t.Run("under a batch policy a template change still reaches the device", func(t *testing.T) {
		f := f.at(t)
		if _, err := w.Apply(f.ctx(), fleet, fleetwriter.Change{Upsert: []flightctl.ApplicationSpec{ours}}); err != nil {
			t.Fatal(err)
		}
		// Flightctl v1.2 selects a batched rollout's devices every 30 s
		// (RolloutDeviceSelectionInterval), so this takes up to a minute
		// or two there.
		f.eventually(150*time.Second, "the batched rollout gives the device the new version", func() (bool, string) {
			d, err := f.c.GetDevice(f.ctx(), dev)
			if err != nil {
				return false, err.Error()
			}
			names := appNames(d.Spec)
			return slices.Equal(names, []string{"user-app", "vk-contract"}), "device applications " + strings.Join(names, ",")
		})
	})
}
