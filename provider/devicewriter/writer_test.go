package devicewriter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

func owned(name string) bool { return strings.HasPrefix(name, "vk-") }

func quadlet(name, image string) *flightctl.ApplicationSpec {
	return &flightctl.ApplicationSpec{Name: name, AppType: flightctl.AppTypeQuadlet, Inline: []flightctl.InlineFile{
		{Path: name + ".container", Content: "[Container]\nImage=" + image + "\n"}}}
}

// setup starts a simulator with device-1 carrying a user's own application
// and an os spec, and returns a writer and a client on it.
func setup(t *testing.T, faults flightctlsim.Faults) (*flightctlsim.Sim, *flightctl.Client, *devicewriter.Writer) {
	t.Helper()
	cfg := flightctlsim.DefaultConfig()
	cfg.Devices[0].Spec = json.RawMessage(`{"os":{"image":"quay.io/example/os:1"},"applications":[{"name":"user-app","appType":"quadlet","inline":[{"path":"user.container","content":"[Container]\nImage=quay.io/example/user:1\n"}]}]}`)
	sim := flightctlsim.New(flightctlsim.Options{Config: cfg, Faults: faults, FaultSeed: 7})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	c, err := flightctl.New(flightctl.Config{Server: sim.URL(), Token: sim.Token()})
	if err != nil {
		t.Fatal(err)
	}
	return sim, c, devicewriter.New(c, owned, logr.Discard())
}

func appNames(t *testing.T, c *flightctl.Client, device string) []string {
	t.Helper()
	d, err := c.GetDevice(context.Background(), device)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range d.Spec.Applications {
		out = append(out, a.Name)
	}
	return out
}

func TestApplyKeepsWhatItDoesNotOwn(t *testing.T) {
	ctx := context.Background()
	_, c, w := setup(t, flightctlsim.Faults{})
	res, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine")})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.LiveAt < 1 {
		t.Errorf("result = %+v, want a change live at a rendered version >= 1", res)
	}
	d, err := c.GetDevice(ctx, "device-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a]" {
		t.Errorf("applications = %s, want the user's app kept and vk-a added", got)
	}
	if _, ok := d.Spec.Extra["os"]; !ok {
		t.Errorf("spec.os was dropped by the read-modify-write: %v", d.Spec.Extra)
	}

	// Writing the same content again changes nothing on the server.
	res, err = w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine")})
	if err != nil || res.Changed {
		t.Errorf("idempotent apply = %+v, %v; want no change", res, err)
	}

	// Removing it leaves the user's app.
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a"}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app]" {
		t.Errorf("after removal applications = %s", got)
	}
}

func TestApplyRefusesApplicationsItDoesNotOwn(t *testing.T) {
	_, c, w := setup(t, flightctlsim.Faults{})
	_, err := w.Apply(context.Background(), "device-1", devicewriter.Change{Name: "user-app"})
	if err == nil || !strings.Contains(err.Error(), "only manages applications it owns") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app]" {
		t.Errorf("applications = %s, want user-app untouched", got)
	}
}

func TestConcurrentChangesAreBatched(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	sim.ResetStats()
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("vk-p%02d", i)
			_, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: name, App: quadlet(name, "docker.io/library/nginx:alpine")})
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(appNames(t, c, "device-1")); got != n+1 {
		t.Fatalf("device has %d applications, want %d", got, n+1)
	}
	writes := sim.Stats().Requests["replaceDevice"] + sim.Stats().Requests["patchDevice"]
	t.Logf("%d changes took %d writes", n, writes)
	if writes >= n {
		t.Errorf("%d changes took %d writes: concurrent changes to one device must be batched", n, writes)
	}
}

func TestConflictsAreRetriedWithoutLoss(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{ConflictCount: 3})
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine")}); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().InjectedConflicts; got != 3 {
		t.Errorf("injected conflicts = %d, want 3", got)
	}
	// The simulated agent's status reports bump the device's
	// resourceVersion too, so a stale-version 409 may come on top of the
	// injected ones: the writer must have seen every 409 the server sent.
	if got, sent := w.Stats().Conflicts, sim.Stats().Responses["409"]; got != sent || got < 3 {
		t.Errorf("writer saw %d conflicts, server answered %d with 409 (3 injected)", got, sent)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a]" {
		t.Errorf("applications = %s", got)
	}
}

func TestOwnedDeviceIsReported(t *testing.T) {
	cfg := flightctlsim.DefaultConfig()
	cfg.Fleets = append(cfg.Fleets, flightctlsim.FleetConfig{Name: "f1", Selector: map[string]string{"owned": "yes"}})
	cfg.Devices = append(cfg.Devices, flightctlsim.DeviceConfig{Name: "device-3", CPU: 4, Memory: "8Gi", OwnedBy: "f1"})
	sim := flightctlsim.New(flightctlsim.Options{Config: cfg})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c, err := flightctl.New(flightctl.Config{Server: sim.URL(), Token: sim.Token()})
	if err != nil {
		t.Fatal(err)
	}
	w := devicewriter.New(c, owned, logr.Discard())
	_, err = w.Apply(context.Background(), "device-3", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine")})
	if err == nil || !flightctl.IsOwnedByFleet(err) || !strings.Contains(err.Error(), "no fleet owns") {
		t.Fatalf("err = %v, want an owned-by-fleet error that says what to do", err)
	}
}

func TestInlineConfigEntriesAreManagedByName(t *testing.T) {
	ctx := context.Background()
	_, c, w := setup(t, flightctlsim.Faults{})
	cfg := json.RawMessage(`{"name":"vk-a","inline":[{"path":"/var/lib/vk-flightctl/vk-a/volumes/cfg/app.conf","content":"x=1"}]}`)
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine"), Config: cfg}); err != nil {
		t.Fatal(err)
	}
	d, _ := c.GetDevice(ctx, "device-1")
	if !strings.Contains(string(d.Spec.Extra["config"]), "app.conf") {
		t.Fatalf("spec.config = %s, want the inline entry", d.Spec.Extra["config"])
	}
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a"}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.GetDevice(ctx, "device-1")
	if _, ok := d.Spec.Extra["config"]; ok {
		t.Fatalf("spec.config = %s, want it removed with the application", d.Spec.Extra["config"])
	}
}

func TestRemovalFromDeletedDeviceIsDone(t *testing.T) {
	ctx := context.Background()
	_, c, w := setup(t, flightctlsim.Faults{})
	if err := c.DeleteDevice(ctx, "device-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Apply(ctx, "device-2", devicewriter.Change{Name: "vk-gone"}); err != nil {
		t.Fatalf("removing from a deleted device: %v, want success", err)
	}
	_, err := w.Apply(ctx, "device-2", devicewriter.Change{Name: "vk-new", App: quadlet("vk-new", "docker.io/library/nginx:alpine")})
	if !flightctl.IsNotFound(err) {
		t.Fatalf("writing to a deleted device: %v, want NotFound", err)
	}
}

func TestRefusedChangeDoesNotBlockItsBatch(t *testing.T) {
	ctx := context.Background()
	// Latency keeps the first write in flight while the others queue, so
	// the refused change is batched with good ones.
	_, c, w := setup(t, flightctlsim.Faults{Latency: flightctlsim.Duration(100 * time.Millisecond)})
	// A path over Flightctl's length limit: the server answers 400.
	bad := &flightctl.ApplicationSpec{Name: "vk-bad", AppType: flightctl.AppTypeQuadlet, Inline: []flightctl.InlineFile{
		{Path: strings.Repeat("x", 300) + ".container", Content: "[Container]\nImage=docker.io/library/nginx:alpine\n"}}}
	const n = 10
	var wg sync.WaitGroup
	errs := make(map[string]error, n+1)
	var mu sync.Mutex
	apply := func(name string, app *flightctl.ApplicationSpec) {
		defer wg.Done()
		_, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: name, App: app})
		mu.Lock()
		errs[name] = err
		mu.Unlock()
	}
	wg.Add(n + 1)
	go apply("vk-good00", quadlet("vk-good00", "docker.io/library/nginx:alpine"))
	time.Sleep(50 * time.Millisecond)
	go apply("vk-bad", bad)
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("vk-good%02d", i)
		go apply(name, quadlet(name, "docker.io/library/nginx:alpine"))
	}
	wg.Wait()
	if err := errs["vk-bad"]; !flightctl.IsInvalid(err) {
		t.Fatalf("the refused change got %v, want the server's 400", err)
	}
	for name, err := range errs {
		if name != "vk-bad" && err != nil {
			t.Errorf("%s failed with its batch: %v", name, err)
		}
	}
	got := appNames(t, c, "device-1")
	if len(got) != n+1 || slices.Contains(got, "vk-bad") {
		t.Fatalf("device has %v, want user-app and the %d good applications", got, n)
	}
}

// observe hands d to the writer as the poller's listing would: its JSON.
func observe(t *testing.T, w *devicewriter.Writer, d *flightctl.Device) {
	t.Helper()
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	w.Observe(d.Metadata.Name, d.Metadata.ResourceVersion, raw)
}

// settledCopy waits for the simulator's worker to render the device and
// returns it as read then, the way the poller's by-name read hands it to
// Observe.
func settledCopy(t *testing.T, sim *flightctlsim.Sim, c *flightctl.Client, device string) *flightctl.Device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sim.WaitIdle(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := c.GetDevice(ctx, device)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestWriteStartsFromAnObservedRead(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	observe(t, w, settledCopy(t, sim, c, "device-1"))
	before := w.Stats()
	sim.ResetStats()
	res, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-b", App: quadlet("vk-b", "docker.io/library/nginx:1")})
	if err != nil {
		t.Fatal(err)
	}
	after := w.Stats()
	if reads := after.Reads - before.Reads; reads != 0 || sim.Stats().Requests["getDevice"] != 0 {
		t.Errorf("the write read the device %d times (server saw %d GETs); it had a current copy", reads, sim.Stats().Requests["getDevice"])
	}
	if after.Observed-before.Observed != 1 || after.Writes-before.Writes != 1 || !res.Changed {
		t.Errorf("stats %+v -> %+v, result %+v: want one write from the observed copy", before, after, res)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a vk-b]" {
		t.Errorf("applications = %s", got)
	}
	// The copy was used up: the next write reads the device.
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-c", App: quadlet("vk-c", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Reads - after.Reads; got != 1 {
		t.Errorf("write after the copy was used: %d reads, want 1", got)
	}
}

func TestStaleObservedReadMeetsAConflictAndIsReadAgain(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	observe(t, w, settledCopy(t, sim, c, "device-1"))
	// Someone else changes the device after the copy was taken.
	other := settledCopy(t, sim, c, "device-1")
	other.Metadata.Labels["owner-team"] = "edge"
	if _, err := c.ReplaceDevice(ctx, other); err != nil {
		t.Fatal(err)
	}
	before := w.Stats()
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	after := w.Stats()
	if after.ObservedStale-before.ObservedStale != 1 || after.Conflicts-before.Conflicts != 1 || after.Reads-before.Reads != 1 || after.Writes-before.Writes != 2 {
		t.Errorf("stats %+v -> %+v: want the stale copy's write refused (409), one GET, one write that lands", before, after)
	}
	d := settledCopy(t, sim, c, "device-1")
	if d.Metadata.Labels["owner-team"] != "edge" {
		t.Errorf("the other writer's label was lost: %v", d.Metadata.Labels)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a]" {
		t.Errorf("applications = %s", got)
	}
}

// A PUT is an upsert: a write from a copy taken before the device was
// deleted must not create it again (the reliability suite's device-deleted
// phase found one doing so). From a copy the write is a guarded patch; the
// server's 404 sends it to a read, which ends it as for any missing device.
func TestObservedCopyOfADeletedDeviceDoesNotCreateIt(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	for dev, ch := range map[string]devicewriter.Change{
		"device-1": {Name: "vk-new", App: quadlet("vk-new", "docker.io/library/nginx:alpine")},
		"device-2": {Name: "vk-old"}, // a removal: done, since the device is gone
	} {
		if ch.App == nil {
			if _, err := w.Apply(ctx, dev, devicewriter.Change{Name: ch.Name, App: quadlet(ch.Name, "docker.io/library/nginx:1")}); err != nil {
				t.Fatal(err)
			}
		}
		observe(t, w, settledCopy(t, sim, c, dev))
		if err := c.DeleteDevice(ctx, dev); err != nil {
			t.Fatal(err)
		}
		before := w.Stats()
		_, err := w.Apply(ctx, dev, ch)
		if ch.App != nil && !flightctl.IsNotFound(err) {
			t.Errorf("writing %s from a copy of deleted %s: %v, want NotFound", ch.Name, dev, err)
		}
		if ch.App == nil && err != nil {
			t.Errorf("removing %s from deleted %s, from a copy: %v, want success", ch.Name, dev, err)
		}
		if after := w.Stats(); after.Observed-before.Observed != 1 || after.Reads-before.Reads != 1 {
			t.Errorf("%s: stats %+v -> %+v: want the copy used, then one read", dev, before, after)
		}
		if _, err := c.GetDevice(ctx, dev); !flightctl.IsNotFound(err) {
			t.Errorf("after writing %s from a copy: %s exists again (%v)", ch.Name, dev, err)
		}
	}
}

func TestObservedReadOlderThanOwnWriteIsIgnored(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	old := settledCopy(t, sim, c, "device-1")
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	// A poll that read the device before that write finished hands it
	// over afterwards: it must not be used.
	observe(t, w, old)
	before := w.Stats()
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-b", App: quadlet("vk-b", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	after := w.Stats()
	if after.Observed != before.Observed || after.Reads-before.Reads != 1 || after.Conflicts != before.Conflicts {
		t.Errorf("stats %+v -> %+v: want the old copy ignored and the device read", before, after)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a vk-b]" {
		t.Errorf("applications = %s", got)
	}
}

func TestObservedReadThatNeedsNoWriteIsConfirmedByARead(t *testing.T) {
	ctx := context.Background()
	sim, c, w := setup(t, flightctlsim.Faults{})
	if _, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:1")}); err != nil {
		t.Fatal(err)
	}
	withApp := settledCopy(t, sim, c, "device-1")
	observe(t, w, withApp)
	// A person removes the application by hand after the copy was taken.
	d := settledCopy(t, sim, c, "device-1")
	d.Spec.Applications = d.Spec.Applications[:1]
	if _, err := c.ReplaceDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	res, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:1")})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Errorf("result %+v: the copy said nothing was missing, but the device lost vk-a", res)
	}
	if got := fmt.Sprint(appNames(t, c, "device-1")); got != "[user-app vk-a]" {
		t.Errorf("applications = %s, want vk-a written again", got)
	}
}

// deletingClient deletes a device right after the writer's GET of it
// returned: the window between a read and its write.
type deletingClient struct {
	*flightctl.Client
}

func (c deletingClient) GetDevice(ctx context.Context, name string) (*flightctl.Device, error) {
	d, err := c.Client.GetDevice(ctx, name)
	if err == nil {
		err = c.DeleteDevice(ctx, name)
	}
	return d, err
}

// A device deleted between the writer's GET and its write is not created
// again: the write is a guarded patch, which a missing device answers with
// 404, never an upsert.
func TestDeviceDeletedAfterTheReadIsNotCreated(t *testing.T) {
	ctx := context.Background()
	sim, c, _ := setup(t, flightctlsim.Faults{})
	w := devicewriter.New(deletingClient{c}, owned, logr.Discard())
	_, err := w.Apply(ctx, "device-1", devicewriter.Change{Name: "vk-a", App: quadlet("vk-a", "docker.io/library/nginx:alpine")})
	if !flightctl.IsNotFound(err) {
		t.Errorf("writing to a device deleted after its read: %v, want NotFound", err)
	}
	if _, err := c.GetDevice(ctx, "device-1"); !flightctl.IsNotFound(err) {
		t.Errorf("device-1 exists again after the write (%v)", err)
	}
	if st := sim.Stats(); st.Requests["replaceDevice"] != 0 || st.Requests["patchDevice"] != 1 {
		t.Errorf("writes: %d PUTs and %d patches, want one patch and no PUT", st.Requests["replaceDevice"], st.Requests["patchDevice"])
	}
}
