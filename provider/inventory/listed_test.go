package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// realListings are device listings a real Flightctl v1.2.0 sent: the
// DeviceList responses of the client's transcripts, and the device a real
// agent left after a failed prepare, as a one-device list.
func realListings(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	files, err := filepath.Glob(filepath.Join("..", "flightctl", "testdata", "transcripts", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, resp, _ := bytes.Cut(raw, []byte("\n=== RESPONSE (status 200)"))
		_, body, _ := bytes.Cut(resp, []byte("\n\n"))
		if bytes.Contains(body, []byte(`"kind": "DeviceList"`)) {
			out[filepath.Base(f)] = bytes.TrimSpace(body)
		}
	}
	dev, err := os.ReadFile(filepath.Join("testdata", "real-agent-failed-prepare.json"))
	if err != nil {
		t.Fatal(err)
	}
	out["real-agent-failed-prepare.json"] = append(append([]byte(`{"kind":"DeviceList","items":[`), dev...), "]}"...)
	if len(out) < 6 {
		t.Fatalf("only %d listings found", len(out))
	}
	return out
}

// The inventory built from the lean, streamed decode of a listing equals
// the one built from its full decode, field by field, in per-device and
// fleet-wide mode (where spec digests come from each application's
// inline files).
func TestLeanListingBuildsTheSameInventory(t *testing.T) {
	now := time.Now()
	modes := map[string]Options{
		"per-device": OptionsFor(&vkv1.FleetBinding{}),
		"fleet-wide": OptionsFor(&vkv1.FleetBinding{Spec: vkv1.FleetBindingSpec{FlightctlFleet: "owned-fleet"}}),
	}
	digested := 0
	for name, body := range realListings(t) {
		for mode, o := range modes {
			var list flightctl.DeviceList
			if err := json.Unmarshal(body, &list); err != nil {
				t.Fatalf("%s: full decode: %v", name, err)
			}
			full := Build(list.Items, o, now)

			var devs []Device
			if _, err := flightctl.ReadDeviceList(bytes.NewReader(body), o.Digests(), func(d *flightctl.ListedDevice) error {
				devs = append(devs, FromListed(d, o))
				return nil
			}); err != nil {
				t.Fatalf("%s: lean decode: %v", name, err)
			}
			lean := Assemble(devs, now, nil)

			if len(full.Devices) != len(list.Items) || len(lean.Devices) != len(full.Devices) {
				t.Fatalf("%s %s: %d devices listed, full %d, lean %d", name, mode, len(list.Items), len(full.Devices), len(lean.Devices))
			}
			for i := range full.Devices {
				if !equality.Semantic.DeepEqual(full.Devices[i], lean.Devices[i]) {
					t.Errorf("%s %s: device %s differs\nfull %+v\nlean %+v", name, mode, full.Devices[i].Name, full.Devices[i], lean.Devices[i])
				}
				if mode == "fleet-wide" {
					digested += len(lean.Devices[i].SpecDigests)
				}
			}
			// Fleet's lookup index is unexported; its exported sums are
			// what the node reports.
			for what, pair := range map[string][2]any{
				"summary":     {full.Summary, lean.Summary},
				"unusable":    {full.Unusable, lean.Unusable},
				"capacity":    {full.Capacity, lean.Capacity},
				"allocatable": {full.Allocatable, lean.Allocatable},
			} {
				if !equality.Semantic.DeepEqual(pair[0], pair[1]) {
					t.Errorf("%s %s: %s differs: full %+v, lean %+v", name, mode, what, pair[0], pair[1])
				}
			}
		}
	}
	if digested == 0 {
		t.Error("no spec application was digested: the fleet-wide comparison proves nothing")
	}
}

// A spec digest from a lean listing is AppDigest of the full application,
// so fleet-wide mode can compare it with the template's.
func TestLeanDigestIsAppDigest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "real-agent-failed-prepare.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d flightctl.Device
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	o := Options{FleetWide: "f"}
	var got Device
	body := append(append([]byte(`{"items":[`), raw...), "]}"...)
	if _, err := flightctl.ReadDeviceList(bytes.NewReader(body), o.Digests(), func(l *flightctl.ListedDevice) error {
		got = FromListed(l, o)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	app := d.Spec.Applications[0]
	if want := AppDigest(app); got.SpecDigests[app.Name] != want || want == "" {
		t.Errorf("digest %q, want AppDigest %q", got.SpecDigests[app.Name], want)
	}
	if (Options{}).Digests() != nil {
		t.Error("per-device mode must not digest: it would decode every inline file")
	}
}
