package contract

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// testCreateGetDeleteDevice covers POST (201, the created object back),
// GET, the duplicate-name conflict and DELETE with its 404 afterwards. A
// second DELETE succeeds: Flightctl v1.2.0 deletes idempotently (200
// Status Success for a missing device).
func testCreateGetDeleteDevice(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c, rec := f.recordingClient()
	name := f.name("dev")
	app := quadletApp("web", testImage)
	created, err := c.CreateDevice(f.ctx(), f.newDevice(name, specOf(app), "role", "web"))
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	f.cleanupDevice(name)
	if got := rec.last(); got.method != http.MethodPost || got.code != http.StatusCreated {
		t.Errorf("create answered %+v, want POST 201", got)
	}

	t.Run("create returns the stored device", func(t *testing.T) {
		if created.APIVersion != flightctl.APIVersion || created.Kind != flightctl.KindDevice {
			t.Errorf("apiVersion/kind = %q/%q", created.APIVersion, created.Kind)
		}
		if created.Metadata.Name != name || created.Metadata.Labels["role"] != "web" {
			t.Errorf("metadata = %+v", created.Metadata)
		}
		rv(t, created)
		if g := generation(t, created); g != 1 {
			t.Errorf("generation = %d, want 1", g)
		}
		if created.Metadata.CreationTimestamp == nil {
			t.Error("no creationTimestamp")
		}
		if o := owner(created); o != "" {
			t.Errorf("owner = %q for a device no fleet selects", o)
		}
		checkApp(t, created.Spec, app)
	})

	t.Run("get returns spec and status", func(t *testing.T) {
		got, err := c.GetDevice(f.at(t).ctx(), name)
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		if got.Metadata.Name != name || rv(t, got) < rv(t, created) {
			t.Errorf("got %s rv %s after create rv %s", got.Metadata.Name, got.Metadata.ResourceVersion, created.Metadata.ResourceVersion)
		}
		checkApp(t, got.Spec, app)
		if got.Status == nil {
			t.Error("no status: the server always reports one")
		}
	})

	t.Run("duplicate create is a conflict", func(t *testing.T) {
		_, err := c.CreateDevice(f.at(t).ctx(), f.newDevice(name, specOf()))
		expectAPIError(t, tg, err, apiErr{code: http.StatusConflict, is: []class{conflict, alreadyExists}, msg: "already exists"})
	})

	t.Run("delete then 404, delete again 200", func(t *testing.T) {
		ctx := f.at(t).ctx()
		if err := c.DeleteDevice(ctx, name); err != nil {
			t.Fatalf("DeleteDevice: %v", err)
		}
		_, err := c.GetDevice(ctx, name)
		expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}, msg: "not found"})
		if err := c.DeleteDevice(ctx, name); err != nil {
			t.Errorf("second DeleteDevice: %v, want success (v1.2.0 deletes idempotently)", err)
		}
		if got := rec.last(); got.method != http.MethodDelete || got.code != http.StatusOK {
			t.Errorf("second delete answered %+v, want DELETE 200", got)
		}
	})
}

// checkApp checks that spec holds exactly want, as written.
func checkApp(t *testing.T, spec *flightctl.DeviceSpec, want flightctl.ApplicationSpec) {
	t.Helper()
	if spec == nil || len(spec.Applications) != 1 {
		t.Fatalf("spec applications = %v, want [%s]", appNames(spec), want.Name)
	}
	got := spec.Applications[0]
	if got.Name != want.Name || got.AppType != want.AppType || !slices.Equal(got.Inline, want.Inline) {
		t.Errorf("application = %+v, want %+v", got, want)
	}
}

// testReplaceDevice covers PUT: conditional writes and how resourceVersion
// and generation move, stale and malformed versions, unconditional
// overwrites and the upsert of a new name.
func testReplaceDevice(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c, rec := f.recordingClient()
	name := f.name("dev")
	f.createDevice(name, specOf())
	f.settle()

	t.Run("conditional spec change", func(t *testing.T) {
		f := f.at(t)
		app := quadletApp("web", testImage)
		before, after, err := f.readModifyWrite(c, name, 5, func(d *flightctl.Device) { d.Spec = specOf(app) })
		if err != nil {
			t.Fatalf("ReplaceDevice: %v", err)
		}
		if got := rec.last().code; got != http.StatusOK {
			t.Errorf("replace of an existing device answered %d, want 200", got)
		}
		if g0, g1 := generation(t, before), generation(t, after); g1 != g0+1 {
			t.Errorf("generation %d -> %d on a spec change, want +1", g0, g1)
		}
		if r0, r1 := rv(t, before), rv(t, after); r1 <= r0 {
			t.Errorf("resourceVersion %d -> %d, want it to grow", r0, r1)
		}
		checkApp(t, after.Spec, app)
	})

	t.Run("label change keeps generation", func(t *testing.T) {
		f := f.at(t)
		before, after, err := f.readModifyWrite(c, name, 5, func(d *flightctl.Device) { d.Metadata.Labels["tier"] = "front" })
		if err != nil {
			t.Fatalf("ReplaceDevice: %v", err)
		}
		if g0, g1 := generation(t, before), generation(t, after); g1 != g0 {
			t.Errorf("generation %d -> %d on a label change, want unchanged", g0, g1)
		}
		if after.Metadata.Labels["tier"] != "front" {
			t.Errorf("labels = %v", after.Metadata.Labels)
		}
	})

	t.Run("identical write still moves resourceVersion", func(t *testing.T) {
		f := f.at(t)
		before, after, err := f.readModifyWrite(c, name, 5, func(*flightctl.Device) {})
		if err != nil {
			t.Fatalf("ReplaceDevice: %v", err)
		}
		if r0, r1 := rv(t, before), rv(t, after); r1 <= r0 {
			t.Errorf("resourceVersion %d -> %d on a no-op write, want it to grow", r0, r1)
		}
		if g0, g1 := generation(t, before), generation(t, after); g1 != g0 {
			t.Errorf("generation %d -> %d on a no-op write", g0, g1)
		}
	})

	t.Run("stale or future resourceVersion is a conflict", func(t *testing.T) {
		f := f.at(t)
		cur, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		// Another writer gets in first: cur's version is now stale.
		other := *cur
		other.Metadata.ResourceVersion = ""
		if _, err := c.ReplaceDevice(f.ctx(), &other); err != nil {
			t.Fatalf("unconditional ReplaceDevice: %v", err)
		}
		cur.Spec = specOf(quadletApp("late", testImage))
		_, err = c.ReplaceDevice(f.ctx(), cur)
		want := apiErr{code: http.StatusConflict, is: []class{conflict, stale}, msg: "the object has been modified"}
		expectAPIError(t, tg, err, want)

		future := *cur
		future.Metadata.ResourceVersion = strconv.FormatInt(rv(t, cur)+1000, 10)
		_, err = c.ReplaceDevice(f.ctx(), &future)
		expectAPIError(t, tg, err, want)
	})

	t.Run("non-numeric resourceVersion is invalid", func(t *testing.T) {
		f := f.at(t)
		d := f.newDevice(name, specOf())
		d.Metadata.ResourceVersion = "abc"
		_, err := c.ReplaceDevice(f.ctx(), d)
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: "resource version does not match the required integer format"})
	})

	t.Run("unconditional write overwrites", func(t *testing.T) {
		f := f.at(t)
		app := quadletApp("api", testImage)
		d := f.newDevice(name, specOf(app))
		out, err := c.ReplaceDevice(f.ctx(), d)
		if err != nil {
			t.Fatalf("ReplaceDevice without resourceVersion: %v", err)
		}
		checkApp(t, out.Spec, app)
		if out.Metadata.Labels["tier"] != "" {
			t.Errorf("labels not replaced: %v", out.Metadata.Labels)
		}
	})

	t.Run("server-owned metadata in the body is ignored", func(t *testing.T) {
		// Owner, annotations and generation belong to the server: a
		// provider that echoes a device back must not be able to take
		// it from its fleet or forge a rendered version.
		f := f.at(t)
		cur, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		forged := f.newDevice(name, cur.Spec)
		forgedOwner, forgedGen := "Fleet/forged", int64(999)
		forged.Metadata.Owner = &forgedOwner
		forged.Metadata.Generation = &forgedGen
		forged.Metadata.Annotations = map[string]string{"vkct/forged": "yes", flightctl.AnnotationRenderedVersion: "999"}
		out, err := c.ReplaceDevice(f.ctx(), forged)
		if err != nil {
			t.Fatalf("ReplaceDevice: %v", err)
		}
		if owner(out) != "" || generation(t, out) == forgedGen || out.Metadata.Annotations["vkct/forged"] != "" ||
			out.Metadata.Annotations[flightctl.AnnotationRenderedVersion] == "999" {
			t.Errorf("server took client-set metadata: owner %q generation %d annotations %v",
				owner(out), generation(t, out), out.Metadata.Annotations)
		}
	})

	t.Run("upsert creates a new name", func(t *testing.T) {
		f := f.at(t)
		for _, withRV := range []bool{false, true} {
			fresh := f.name("upsert-" + strconv.FormatBool(withRV))
			d := f.newDevice(fresh, specOf())
			if withRV {
				// A version on a name that does not exist yet does
				// not make the write fail: it still creates.
				d.Metadata.ResourceVersion = "5"
			}
			out, err := c.ReplaceDevice(f.ctx(), d)
			if err != nil {
				t.Fatalf("ReplaceDevice of new name (resourceVersion sent: %t): %v", withRV, err)
			}
			f.cleanupDevice(fresh)
			if got := rec.last().code; got != http.StatusCreated {
				t.Errorf("upsert of a new name answered %d, want 201", got)
			}
			if g := generation(t, out); g != 1 {
				t.Errorf("generation of an upserted device = %d, want 1", g)
			}
		}
	})
}

// testReplaceDeviceOwnedByFleet covers fleet ownership: spec changes to an
// owned device are refused with a 409 the provider must not retry, label
// changes are accepted, and deleting the fleet releases the device.
func testReplaceDeviceOwnedByFleet(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	fleet := f.name("fleet")
	f.createFleet(fleet, map[string]string{"vkct-own": f.set}, specOf())
	name := f.name("owned")
	f.createDevice(name, specOf(), "vkct-own", f.set)
	waitOwner(f, name, "Fleet/"+fleet)
	ownedErr := apiErr{code: http.StatusConflict, is: []class{ownedByFleet}, msg: "updating the resource is not allowed because it has an owner"}

	t.Run("spec change is refused", func(t *testing.T) {
		f := f.at(t)
		d, err := f.c.GetDevice(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		// Unconditional, so that the answer cannot be a stale version.
		d.Metadata.ResourceVersion = ""
		d.Spec = specOf(quadletApp("mine", testImage))
		_, err = f.c.ReplaceDevice(f.ctx(), d)
		expectAPIError(t, tg, err, ownedErr)
	})

	t.Run("spec patch is refused", func(t *testing.T) {
		f := f.at(t)
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{
			{Op: "add", Path: "/spec/applications", Value: []flightctl.ApplicationSpec{quadletApp("mine", testImage)}},
		})
		expectAPIError(t, tg, err, ownedErr)
	})

	t.Run("label-only change is accepted", func(t *testing.T) {
		f := f.at(t)
		_, after, err := f.readModifyWrite(f.c, name, 5, func(d *flightctl.Device) { d.Metadata.Labels["note"] = "kept" })
		if err != nil {
			t.Fatalf("label change on an owned device: %v", err)
		}
		if after.Metadata.Labels["note"] != "kept" || owner(after) != "Fleet/"+fleet {
			t.Errorf("labels %v owner %q", after.Metadata.Labels, owner(after))
		}
	})

	t.Run("label patch is accepted", func(t *testing.T) {
		f := f.at(t)
		out, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/patched", Value: "yes"}})
		if err != nil {
			t.Fatalf("label patch on an owned device: %v", err)
		}
		if out.Metadata.Labels["patched"] != "yes" {
			t.Errorf("labels = %v", out.Metadata.Labels)
		}
	})

	t.Run("deleting the fleet releases the device", func(t *testing.T) {
		f := f.at(t)
		if err := f.c.DeleteFleet(f.ctx(), fleet); err != nil {
			t.Fatalf("DeleteFleet: %v", err)
		}
		waitOwner(f, name, "")
		_, _, err := f.readModifyWrite(f.c, name, 5, func(d *flightctl.Device) { d.Spec = specOf(quadletApp("mine", testImage)) })
		if err != nil {
			t.Fatalf("spec change after the owner left: %v", err)
		}
	})
}

// waitOwner polls until the device's owner is want: the server's worker
// sets and clears owners shortly after the labels or fleets change.
func waitOwner(f *fixture, name, want string) {
	f.t.Helper()
	f.eventually(30*time.Second, "owner of "+name+" becomes "+strconv.Quote(want), func() (bool, string) {
		d, err := f.c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		return owner(d) == want, "owner is " + strconv.Quote(owner(d))
	})
}

// testPatchDevice covers JSON patch: labels and spec, guarding with a test
// of resourceVersion (a failed test is 400, not 409), immutability of
// status, and validation of the patched result.
func testPatchDevice(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	name := f.name("dev")
	created := f.createDevice(name, specOf(), "role", "web")

	t.Run("add a label", func(t *testing.T) {
		f := f.at(t)
		out, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/tier", Value: "front"}})
		if err != nil {
			t.Fatalf("PatchDevice: %v", err)
		}
		if out.Metadata.Labels["tier"] != "front" || out.Metadata.Labels["role"] != "web" {
			t.Errorf("labels = %v", out.Metadata.Labels)
		}
		if rv(t, out) <= rv(t, created) {
			t.Errorf("resourceVersion %s after %s", out.Metadata.ResourceVersion, created.Metadata.ResourceVersion)
		}
	})

	t.Run("guarded spec change", func(t *testing.T) {
		f := f.at(t)
		f.settle()
		app := quadletApp("web", testImage)
		var out, cur *flightctl.Device
		var err error
		// The guard fails when the server's worker wrote in between;
		// re-reading and re-guarding is what IsStale asks for.
		for range 5 {
			if cur, err = f.c.GetDevice(f.ctx(), name); err != nil {
				t.Fatal(err)
			}
			out, err = f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{
				{Op: "test", Path: "/metadata/resourceVersion", Value: cur.Metadata.ResourceVersion},
				{Op: "add", Path: "/spec/applications", Value: []flightctl.ApplicationSpec{app}},
			})
			if !flightctl.IsStale(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("guarded PatchDevice: %v", err)
		}
		checkApp(t, out.Spec, app)
		if g0, g1 := generation(t, cur), generation(t, out); g1 != g0+1 {
			t.Errorf("generation %d -> %d on a spec patch", g0, g1)
		}
	})

	t.Run("guarded patch of the whole spec", func(t *testing.T) {
		f := f.at(t)
		f.settle()
		app := quadletApp("whole", testImage)
		var out *flightctl.Device
		var err error
		for range 5 {
			cur, gerr := f.c.GetDevice(f.ctx(), name)
			if gerr != nil {
				t.Fatal(gerr)
			}
			spec := cur.Spec
			spec.Applications = []flightctl.ApplicationSpec{app}
			out, err = f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{
				{Op: "test", Path: "/metadata/resourceVersion", Value: cur.Metadata.ResourceVersion},
				{Op: "add", Path: "/spec", Value: spec},
			})
			if !flightctl.IsStale(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("guarded PatchDevice of /spec: %v", err)
		}
		checkApp(t, out.Spec, app)
		if len(out.Spec.Applications) != 1 {
			t.Errorf("applications after replacing the spec: %d, want 1", len(out.Spec.Applications))
		}
	})

	// The device writer decodes only the metadata of its patches'
	// answers: the same call, the same guard, the answer's new version.
	t.Run("guarded patch answered with metadata only", func(t *testing.T) {
		f := f.at(t)
		f.settle()
		var cur *flightctl.Device
		var meta *flightctl.ObjectMeta
		var err error
		for range 5 {
			if cur, err = f.c.GetDevice(f.ctx(), name); err != nil {
				t.Fatal(err)
			}
			meta, err = f.c.PatchDeviceMetadata(f.ctx(), name, []flightctl.PatchOperation{
				{Op: "test", Path: "/metadata/resourceVersion", Value: cur.Metadata.ResourceVersion},
				{Op: "add", Path: "/metadata/labels/meta-only", Value: "yes"},
			})
			if !flightctl.IsStale(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("guarded PatchDeviceMetadata: %v", err)
		}
		if meta.Name != name || meta.Labels["meta-only"] != "yes" {
			t.Errorf("answer's metadata: name %q, labels %v", meta.Name, meta.Labels)
		}
		if rv(t, &flightctl.Device{Metadata: *meta}) <= rv(t, cur) {
			t.Errorf("resourceVersion %s after %s", meta.ResourceVersion, cur.Metadata.ResourceVersion)
		}
		_, err = f.c.PatchDeviceMetadata(f.ctx(), name, []flightctl.PatchOperation{
			{Op: "test", Path: "/metadata/resourceVersion", Value: cur.Metadata.ResourceVersion},
			{Op: "add", Path: "/metadata/labels/meta-only", Value: "again"},
		})
		if !flightctl.IsStale(err) {
			t.Errorf("patch guarded by a version already replaced: %v, want a stale error", err)
		}
	})

	// Unlike PUT (an upsert, 201 on a new name), a patch never creates:
	// the device writer relies on it when it writes from a listed copy.
	t.Run("patch of a missing device is 404 and creates nothing", func(t *testing.T) {
		f := f.at(t)
		missing := f.name("missing")
		_, err := f.c.PatchDevice(f.ctx(), missing, []flightctl.PatchOperation{
			{Op: "test", Path: "/metadata/resourceVersion", Value: "5"},
			{Op: "add", Path: "/spec", Value: specOf()},
		})
		expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}, msg: "not found"})
		if _, err := f.c.GetDevice(f.ctx(), missing); !flightctl.IsNotFound(err) {
			t.Errorf("GET after the patch: %v, want NotFound", err)
		}
	})

	t.Run("failed resourceVersion test is 400 and stale", func(t *testing.T) {
		f := f.at(t)
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{
			{Op: "test", Path: "/metadata/resourceVersion", Value: created.Metadata.ResourceVersion},
			{Op: "replace", Path: "/spec/applications", Value: []flightctl.ApplicationSpec{}},
		})
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid, stale}, msg: "testing value /metadata/resourceVersion failed"})
	})

	t.Run("failed test of another value is invalid but not stale", func(t *testing.T) {
		f := f.at(t)
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "test", Path: "/metadata/labels/role", Value: "db"}})
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: "test failed"})
	})

	t.Run("status is immutable here", func(t *testing.T) {
		f := f.at(t)
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "replace", Path: "/status/summary/status", Value: "Online"}})
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: "status is immutable"})
	})

	t.Run("patched spec is validated", func(t *testing.T) {
		f := f.at(t)
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{
			{Op: "add", Path: "/spec/applications/-", Value: quadletApp("Bad Name!", testImage)},
		})
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: `Invalid value: "Bad Name!"`})
	})

	t.Run("remove a label", func(t *testing.T) {
		f := f.at(t)
		out, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "remove", Path: "/metadata/labels/tier"}})
		if err != nil {
			t.Fatalf("PatchDevice remove: %v", err)
		}
		if _, ok := out.Metadata.Labels["tier"]; ok {
			t.Errorf("label tier still there: %v", out.Metadata.Labels)
		}
	})
}

// testDeviceStatus covers GET and PUT of /status, and PATCH of /status
// as the v1.2 server answers it.
func testDeviceStatus(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	name := f.name("dev")
	f.createDevice(name, specOf())

	t.Run("get status", func(t *testing.T) {
		d, err := f.c.GetDeviceStatus(f.at(t).ctx(), name)
		if err != nil {
			t.Fatalf("GetDeviceStatus: %v", err)
		}
		if d.Metadata.Name != name || d.Status == nil {
			t.Fatalf("got %s with status %v", d.Metadata.Name, d.Status)
		}
		if d.Status.Summary.Status == "" || d.Status.Updated.Status == "" || d.Status.ApplicationsSummary.Status == "" {
			t.Errorf("status misses summary, updated or applicationsSummary: %+v", d.Status)
		}
	})

	t.Run("replace status", func(t *testing.T) {
		f := f.at(t)
		f.settleDevice(name)
		d, err := f.c.GetDeviceStatus(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		st := *d.Status
		st.Applications = []flightctl.ApplicationStatus{{
			Name: "reported", AppType: flightctl.AppTypeCompose, Ready: "1/1", Status: flightctl.ApplicationStatusRunning,
		}}
		st.ApplicationsSummary = flightctl.ApplicationsSummaryStatus{Status: flightctl.ApplicationsSummaryHealthy, Info: "reported by the contract suite"}
		d.Status = &st
		out, err := f.c.ReplaceDeviceStatus(f.ctx(), d)
		if err != nil {
			t.Fatalf("ReplaceDeviceStatus: %v", err)
		}
		checkReported := func(where string, got *flightctl.Device) {
			t.Helper()
			if got.Status == nil || len(got.Status.Applications) != 1 || got.Status.Applications[0].Name != "reported" ||
				got.Status.Applications[0].Status != flightctl.ApplicationStatusRunning {
				t.Errorf("%s: applications = %+v, want the reported one Running", where, got.Status)
			}
		}
		checkReported("PUT answer", out)
		if got := out.Status.ApplicationsSummary.Status; got != flightctl.ApplicationsSummaryHealthy {
			t.Errorf("applicationsSummary = %q, want the reported Healthy", got)
		}
		if rv(t, out) <= rv(t, d) {
			t.Errorf("resourceVersion %s after %s", out.Metadata.ResourceVersion, d.Metadata.ResourceVersion)
		}
		if generation(t, out) != generation(t, d) {
			t.Errorf("a status write moved generation %d -> %d", generation(t, d), generation(t, out))
		}
		again, err := f.c.GetDeviceStatus(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		checkReported("GET after PUT", again)
	})

	t.Run("status built by the caller is accepted", func(t *testing.T) {
		// A status the caller builds rather than reads back, with every
		// field the client's DeviceStatus does not mark optional. The
		// v1beta1 schema also requires status.integrity and status.os,
		// which DeviceStatus marks omitempty and its MarshalJSON does not
		// default (it does default applications, conditions, systemInfo),
		// so they are never sent unless non-empty and the server answers
		// 400 'property "integrity" is missing'.
		f := f.at(t)
		d := f.newDevice(name, specOf())
		d.Status = minimalStatus()
		if _, err := f.c.ReplaceDeviceStatus(f.ctx(), d); err != nil {
			t.Errorf("CLIENT BUG (provider/flightctl: DeviceStatus.Integrity and .OS are omitempty and not defaulted by "+
				"DeviceStatus.MarshalJSON, but the v1beta1 schema requires both): ReplaceDeviceStatus of a status built "+
				"without them failed: %v", err)
		}
		d.Status = unknownStatus()
		if _, err := f.c.ReplaceDeviceStatus(f.ctx(), d); err != nil {
			t.Errorf("the same status with integrity and os set: %v", err)
		}
	})

	t.Run("patch status of a device without applications is accepted", func(t *testing.T) {
		f := f.at(t)
		spare := f.name("noapps")
		f.createDevice(spare, specOf())
		if _, err := f.c.PatchDeviceStatus(f.ctx(), spare, []flightctl.PatchOperation{
			{Op: "replace", Path: "/status/applicationsSummary/info", Value: "patched by the contract suite"},
		}); err != nil {
			t.Fatalf("PatchDeviceStatus: %v", err)
		}
	})

	t.Run("patch status of a device with applications is refused", func(t *testing.T) {
		// What Flightctl v1.2 answers (transcript 19): the provider must
		// report status with PUT, never with PATCH.
		f := f.at(t)
		withApps := f.name("apps")
		f.createDevice(withApps, specOf(quadletApp("web", testImage)))
		_, err := f.c.PatchDeviceStatus(f.ctx(), withApps, []flightctl.PatchOperation{
			{Op: "replace", Path: "/status/applicationsSummary/info", Value: "patched by the contract suite"},
		})
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: "spec is immutable"})
	})
}

// testGetLastSeen covers the lastseen answers the server gives for devices
// created through the API: 204 (never reported) and 404.
func testGetLastSeen(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c, rec := f.recordingClient()
	name := f.name("silent")
	f.createDevice(name, specOf())

	t.Run("never reported is 204 and nil", func(t *testing.T) {
		ls, err := c.GetLastSeen(f.at(t).ctx(), name)
		if err != nil {
			t.Fatalf("GetLastSeen: %v", err)
		}
		if ls != nil {
			t.Errorf("lastSeen = %v for a device no agent ever reported for", ls)
		}
		if got := rec.last().code; got != http.StatusNoContent {
			t.Errorf("answered %d, want 204", got)
		}
	})

	t.Run("unknown device is 404", func(t *testing.T) {
		_, err := c.GetLastSeen(f.at(t).ctx(), f.name("missing"))
		expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}, msg: "not found"})
	})
}

// testGetLastSeenReporting covers the 200 answer, which needs a device
// whose agent reports: only the simulator can seed one.
func testGetLastSeenReporting(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c, rec := f.recordingClient()
	name := f.name("agent")
	start := time.Now()
	f.cleanupDevice(name)
	tg.AddReportingDevice(t, flightctlsim.DeviceConfig{Name: name, Labels: f.labels(), CPU: 2, Memory: "4Gi", IP: "192.0.2.50"})

	// A real server writes lastSeen in batches (every 15 s in v1.2.0),
	// so the first one can take that long to appear; the simulator has
	// it at once.
	var ls *time.Time
	f.eventually(lastSeenLag(tg)+2*time.Second, "lastSeen of a reporting device", func() (bool, string) {
		var err error
		ls, err = c.GetLastSeen(f.ctx(), name)
		if err != nil {
			t.Fatalf("GetLastSeen: %v", err)
		}
		return ls != nil, fmt.Sprintf("answered %d", rec.last().code)
	})
	if got := rec.last().code; got != http.StatusOK {
		t.Errorf("answered %d, want 200", got)
	}
	if ls == nil || ls.Before(start.Add(-time.Second)) || ls.After(time.Now().Add(time.Second)) {
		t.Errorf("lastSeen = %v, want between the start (%v) and now", ls, start)
	}
	f.eventually(10*time.Second, "device reports its system info", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		info := d.Status.SystemInfo
		ok := info[flightctl.SystemInfoCPUCores] == "2" && info[flightctl.SystemInfoMemoryTotalKb] == "4194304" &&
			d.Status.Summary.Status == flightctl.DeviceSummaryOnline
		return ok, "systemInfo " + strconv.Quote(info[flightctl.SystemInfoCPUCores]) + "/" +
			strconv.Quote(info[flightctl.SystemInfoMemoryTotalKb]) + ", summary " + d.Status.Summary.Status
	})
}

// testAgentAppliesSpec follows a spec through a reporting device's agent:
// the application goes Running, status.config.renderedVersion catches up
// with the rendered annotation and status.updated is UpToDate; then the
// agent is cut off and lastSeen stops moving (the server declares the
// device disconnected only minutes later), and moves again after it
// reconnects. Against a real server the agent is a remote agent speaking
// the real agent protocol.
func testAgentAppliesSpec(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c := f.c
	name := f.name("applier")
	f.cleanupDevice(name)
	disconnect, reconnect := tg.AddReportingDevice(t, flightctlsim.DeviceConfig{Name: name, Labels: f.labels(), CPU: 1, Memory: "1Gi", IP: "192.0.2.51"})
	f.eventually(20*time.Second, "device enrolled and rendered", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		return d.Metadata.Annotations["device-controller/renderedVersion"] != "", "no rendered version yet"
	})
	app := quadletApp("applied", testImage)
	_, _, err := f.readModifyWrite(c, name, 10, func(d *flightctl.Device) { d.Spec = specOf(app) })
	if err != nil {
		t.Fatalf("writing the spec: %v", err)
	}
	f.eventually(30*time.Second, "application Running and spec applied", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		want := d.Metadata.Annotations["device-controller/renderedVersion"]
		st := d.Status
		running := len(st.Applications) == 1 && st.Applications[0].Name == app.Name &&
			st.Applications[0].Status == flightctl.ApplicationStatusRunning && st.Applications[0].Ready == "1/1"
		ok := running && st.Config.RenderedVersion == want && st.Updated.Status == "UpToDate" &&
			st.ApplicationsSummary.Status == flightctl.ApplicationsSummaryHealthy && st.Summary.Status == flightctl.DeviceSummaryOnline
		return ok, fmt.Sprintf("applications %+v, renderedVersion %q (annotation %q), updated %s, summary %s/%s",
			st.Applications, st.Config.RenderedVersion, want, st.Updated.Status, st.ApplicationsSummary.Status, st.Summary.Status)
	})

	lastSeen := func() time.Time {
		t.Helper()
		ls, err := c.GetLastSeen(f.ctx(), name)
		if err != nil {
			t.Fatalf("GetLastSeen: %v", err)
		}
		if ls == nil {
			return time.Time{}
		}
		return *ls
	}
	// The simulator keeps lastSeen at "now" while the agent is
	// connected; a real server saves agent contacts in batches, so
	// lastSeen moves in steps of its save interval.
	gap := lastSeenLag(tg) + time.Second
	before := lastSeen()
	f.eventually(2*gap, "lastSeen moves while the agent reports", func() (bool, string) {
		now := lastSeen()
		return now.After(before), "lastSeen still " + now.String()
	})
	disconnect()
	time.Sleep(gap) // contacts made before the cut may still be saved
	frozen := lastSeen()
	time.Sleep(gap)
	if now := lastSeen(); !now.Equal(frozen) {
		t.Errorf("lastSeen moved from %s to %s after the agent was cut off", frozen, now)
	}
	reconnect()
	f.eventually(2*gap, "lastSeen moves again after the agent reconnects", func() (bool, string) {
		now := lastSeen()
		return now.After(frozen), "lastSeen still " + now.String()
	})
}

// lastSeenLag is how far behind the agent's contacts lastSeen may be.
// Flightctl v1.2.0 records contacts in memory and saves them every 15 s
// (internal/healthchecker); the simulator (HeartbeatInterval 0) answers
// "now" for a connected agent. This is a deliberate difference: the
// simulator is not slowed down to the real batching.
func lastSeenLag(tg Target) time.Duration {
	if tg.Sim() != nil {
		return 300 * time.Millisecond
	}
	return 15 * time.Second
}

// testAgentlessStatusAfterSpecWrite covers a device whose status comes
// only through the user API (no agent contact, so no lastSeen): Flightctl
// v1.2.0's worker declares it disconnected when it renders the next spec
// write (summary Unknown, "Device is disconnected (last seen more than 5
// minutes ago)."). The simulator reaches the same state through its
// disconnect detection (200 ms in this suite; on a real server only
// lastSeen counts, and the render checks it at once). Either way a
// client must not read a user-API status report as a connected agent.
func testAgentlessStatusAfterSpecWrite(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c := f.c
	name := f.name("noagent")
	f.createDevice(name, specOf())
	f.settleDevice(name)
	d, err := c.GetDeviceStatus(f.ctx(), name)
	if err != nil {
		t.Fatal(err)
	}
	st := *d.Status
	st.Summary = flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryOnline}
	st.Resources = flightctl.DeviceResourceStatus{CPU: "Healthy", Disk: "Healthy", Memory: "Healthy"}
	d.Status = &st
	out, err := c.ReplaceDeviceStatus(f.ctx(), d)
	if err != nil {
		t.Fatalf("ReplaceDeviceStatus: %v", err)
	}
	if got := out.Status.Summary.Status; got != flightctl.DeviceSummaryOnline {
		t.Fatalf("summary after the status PUT = %q, want Online", got)
	}
	if _, _, err := f.readModifyWrite(c, name, 10, func(d *flightctl.Device) { d.Spec = specOf(quadletApp("noagent", testImage)) }); err != nil {
		t.Fatalf("spec write: %v", err)
	}
	f.eventually(15*time.Second, "the agent-less device is declared disconnected", func() (bool, string) {
		got, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		s := got.Status.Summary
		return s.Status == flightctl.DeviceSummaryUnknown && strings.Contains(s.Info, "disconnected"), "summary " + s.Status + ": " + s.Info
	})
}

// prepareFailureMessage is the real v1.2 agent's message for an
// application whose images it could not fetch, as its StructuredError
// formats it (internal/agent/device/errors): the failure's time, the
// phase, the component and the application.
var prepareFailureMessage = regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] While Preparing: prefetch failed for (\S+): .+$`)

// testAgentFailedPrepare states the fields a failed update leaves on a
// device, as a real flightctl-agent v1.2.0 fills them when it cannot
// prepare an application (no skopeo or podman 5 on the machine; recorded
// in provider/inventory/testdata/real-agent-failed-prepare.json, and
// provoked for real by test/e2e's real-agent spec, since only a machine
// without those tools makes the real agent fail): condition Updating
// False, reason Error, with the agent's message; status.updated OutOfDate
// with the server's "Device has not been updated to the latest device
// spec: " and that message; status.config.renderedVersion left at the
// version before (the agent rolled back) while the rendered annotation is
// ahead; the application not reported. The simulated agent fails the same
// way on an image tagged ":fail-prepare"; against a real server that
// agent is a remote one over the agent endpoint, so the server's own
// derivation of status.updated is what is checked. A later good spec
// clears it all.
func testAgentFailedPrepare(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c := f.c
	name := f.name("failprep")
	f.cleanupDevice(name)
	tg.AddReportingDevice(t, flightctlsim.DeviceConfig{Name: name, Labels: f.labels(), CPU: 1, Memory: "1Gi", IP: "192.0.2.52"})
	f.eventually(20*time.Second, "device enrolled and rendered", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		return d.Metadata.Annotations["device-controller/renderedVersion"] != "", "no rendered version yet"
	})
	before, err := c.GetDevice(f.ctx(), name)
	if err != nil {
		t.Fatal(err)
	}
	applied := before.Status.Config.RenderedVersion
	repo, _, _ := strings.Cut(testImage, ":")
	bad := quadletApp("failing", repo+":fail-prepare")
	if _, _, err := f.readModifyWrite(c, name, 10, func(d *flightctl.Device) { d.Spec = specOf(bad) }); err != nil {
		t.Fatalf("writing the spec: %v", err)
	}
	f.eventually(30*time.Second, "the update fails in Prepare and rolls back", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		var cond flightctl.Condition
		for _, cd := range st.Conditions {
			if cd.Type == "Updating" {
				cond = cd
			}
		}
		rendered := d.Metadata.Annotations["device-controller/renderedVersion"]
		m := prepareFailureMessage.FindStringSubmatch(cond.Message)
		ok := cond.Status == "False" && cond.Reason == "Error" && m != nil && m[1] == bad.Name &&
			st.Updated.Status == "OutOfDate" && st.Updated.Info == "Device has not been updated to the latest device spec: "+cond.Message &&
			st.Config.RenderedVersion == applied && rendered != applied && len(st.Applications) == 0
		return ok, fmt.Sprintf("Updating %s/%s %q; updated %s %q; renderedVersion %q (before %q, annotation %q); applications %+v",
			cond.Status, cond.Reason, cond.Message, st.Updated.Status, st.Updated.Info, st.Config.RenderedVersion, applied, rendered, st.Applications)
	})

	good := quadletApp("recovered", testImage)
	if _, _, err := f.readModifyWrite(c, name, 10, func(d *flightctl.Device) { d.Spec = specOf(good) }); err != nil {
		t.Fatalf("writing the good spec: %v", err)
	}
	f.eventually(30*time.Second, "a later good spec clears the failure", func() (bool, string) {
		d, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		st := d.Status
		reason := ""
		for _, cd := range st.Conditions {
			if cd.Type == "Updating" {
				reason = cd.Status + "/" + cd.Reason
			}
		}
		running := len(st.Applications) == 1 && st.Applications[0].Name == good.Name && st.Applications[0].Status == flightctl.ApplicationStatusRunning
		ok := running && reason == "False/Updated" && st.Updated.Status == "UpToDate" &&
			st.Config.RenderedVersion == d.Metadata.Annotations["device-controller/renderedVersion"]
		return ok, fmt.Sprintf("Updating %s; updated %s %q; renderedVersion %q; applications %+v", reason, st.Updated.Status, st.Updated.Info, st.Config.RenderedVersion, st.Applications)
	})
}
