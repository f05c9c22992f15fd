package contract

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// testListDevicesSelectors covers label selectors (equality, set syntax,
// existence) and field selectors, metadata.owner!= included: the provider
// finds the devices it may use with exactly these queries.
func testListDevicesSelectors(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	fleet := f.name("fleet")
	f.createFleet(fleet, map[string]string{"vkct-own": f.set}, specOf())
	a, b, c := f.name("a"), f.name("b"), f.name("c")
	f.createDevice(a, specOf(), "role", "web", "tier", "front")
	f.createDevice(b, specOf(), "role", "db")
	f.createDevice(c, specOf(), "role", "cache", "vkct-own", f.set)
	ownerRef := "Fleet/" + fleet
	waitOwner(f, c, ownerRef)

	cases := []struct {
		name  string
		label string // added to the case's own selector
		field string
		want  []string
	}{
		{name: "label equality", label: "role=web", want: []string{a}},
		{name: "label inequality", label: "role!=web", want: []string{b, c}},
		{name: "set in", label: "role in (web,db)", want: []string{a, b}},
		{name: "set notin", label: "role notin (web)", want: []string{b, c}},
		{name: "label exists", label: "tier", want: []string{a}},
		{name: "label does not exist", label: "!tier", want: []string{b, c}},
		{name: "set syntax combined", label: "role in (web,db),!tier", want: []string{b}},
		{name: "no match", label: "role=none", want: []string{}},
		{name: "field metadata.name", field: "metadata.name=" + a, want: []string{a}},
		{name: "field metadata.name in set", field: fmt.Sprintf("metadata.name in (%s,%s)", a, c), want: []string{a, c}},
		{name: "field metadata.owner", field: "metadata.owner=" + ownerRef, want: []string{c}},
		{name: "field metadata.owner!= matches unowned devices", field: "metadata.owner!=" + ownerRef, want: []string{a, b}},
		{name: "label and field together", label: "role notin (web)", field: "metadata.owner!=" + ownerRef, want: []string{b}},
		// The poller's hot reads: a name set ANDed with the binding's
		// owner selector, and the unhealthy-summary listings. Devices
		// that never reported are Unknown on both.
		{name: "field metadata.name set and owner together", field: fmt.Sprintf("metadata.owner!=%s,metadata.name in (%s,%s)", ownerRef, a, c), want: []string{a}},
		{name: "field status.summary.status!=Online", field: "status.summary.status!=Online", want: []string{a, b, c}},
		{name: "field status.applicationsSummary.status in set", field: "status.applicationsSummary.status in (Degraded,Error)", want: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel := f.selector()
			if tc.label != "" {
				sel += "," + tc.label
			}
			list, err := f.c.ListDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, FieldSelector: tc.field})
			if err != nil {
				t.Fatalf("ListDevices(label %q, field %q): %v", sel, tc.field, err)
			}
			if got := names(list.Items); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if list.Kind != flightctl.KindDeviceList {
				t.Errorf("kind = %q", list.Kind)
			}
			if list.Summary == nil || list.Summary.Total != int64(len(list.Items)) {
				t.Errorf("summary = %+v, want total %d (it counts the page)", list.Summary, len(list.Items))
			}
		})
	}
}

// testListInvalidQuery covers list requests the server refuses: each is a
// 400 that IsInvalid recognises and that the client does not retry.
func testListInvalidQuery(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	sel := f.selector()
	const unknownField = "unknown or unsupported selector"
	cases := []struct {
		name string
		op   string
		call func(*flightctl.Client, *fixture) error
		msg  string
	}{
		{"malformed label selector", flightctl.OpListDevices, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListDevices(f.ctx(), flightctl.ListOptions{LabelSelector: "role in web"})
			return err
		}, "failed to parse label selector"},
		{"unknown device field selector", flightctl.OpListDevices, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListDevices(f.ctx(), flightctl.ListOptions{LabelSelector: sel, FieldSelector: "spec.foo=bar"})
			return err
		}, unknownField},
		{"unknown fleet field selector", flightctl.OpListFleets, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListFleets(f.ctx(), flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: sel, FieldSelector: "spec.foo=bar"}})
			return err
		}, unknownField},
		{"unknown event field selector", flightctl.OpListEvents, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: "foo=bar"})
			return err
		}, unknownField},
		{"limit above 1000", flightctl.OpListDevices, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListDevices(f.ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: flightctl.MaxPageSize + 1})
			return err
		}, "number must be at most 1000"},
		{"garbage continue token", flightctl.OpListDevices, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListDevices(f.ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: 1, Continue: "garbage"})
			return err
		}, "failed to parse continue parameter"},
		{"garbage continue token on fleets", flightctl.OpListFleets, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListFleets(f.ctx(), flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: sel, Limit: 1, Continue: "garbage"}})
			return err
		}, "failed to parse continue parameter"},
		{"events: unknown order", flightctl.OpListEvents, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: "involvedObject.kind=Device", Order: "sideways"})
			return err
		}, `parameter "order" in query has an error`},
		{"events: a date without a time", flightctl.OpListEvents, func(c *flightctl.Client, f *fixture) error {
			_, err := c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: "metadata.creationTimestamp>=2026-12-02"})
			return err
		}, "failed to parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tg)
			err := tc.call(c, f.at(t))
			expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: tc.msg})
			if n := c.Stats().Requests[tc.op]; n != 1 {
				t.Errorf("%d requests for a 400, want 1 (never retried)", n)
			}
		})
	}

	t.Run("paging helpers clamp the page size", func(t *testing.T) {
		// The server refuses limit > 1000, so ForEachDevice must not
		// pass a larger one through.
		c := newClient(t, tg)
		if _, err := c.ListAllDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: 5000}); err != nil {
			t.Fatalf("ListAllDevices with Limit 5000: %v", err)
		}
	})
}

// testDevicePaging covers ForEachDevice and ListAllDevices across several
// pages: every device once, in name order, with one request per page.
func testDevicePaging(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	var want []string
	for i := 1; i <= 7; i++ {
		name := f.name(fmt.Sprintf("dev-%02d", i))
		f.createDevice(name, specOf())
		want = append(want, name)
	}
	sel := f.selector()

	for _, size := range []int{1, 2, 3, 6, 7, 8, 1000} {
		t.Run(fmt.Sprintf("ListAllDevices page size %d", size), func(t *testing.T) {
			c := newClient(t, tg)
			all, err := c.ListAllDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: size})
			if err != nil {
				t.Fatalf("ListAllDevices: %v", err)
			}
			if got := names(all); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			pages := int64((len(want) + size - 1) / size)
			if n := c.Stats().Calls[flightctl.OpListDevices]; n != pages {
				t.Errorf("%d list calls, want %d pages of %d", n, pages, size)
			}
		})
	}

	t.Run("ForEachListedDevice reads what the full listing reads", func(t *testing.T) {
		c := newClient(t, tg)
		full, err := c.ListAllDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel})
		if err != nil {
			t.Fatalf("ListAllDevices: %v", err)
		}
		var got []flightctl.ListedDevice
		err = c.ForEachListedDevice(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: 3}, nil,
			func(d *flightctl.ListedDevice) error { got = append(got, *d); return nil })
		if err != nil {
			t.Fatalf("ForEachListedDevice: %v", err)
		}
		if len(got) != len(full) {
			t.Fatalf("%d listed devices, want %d", len(got), len(full))
		}
		// Status and resourceVersion may move between the two reads (a
		// simulated agent reports); names, labels and spec do not.
		for i := range full {
			want := full[i].Listed(nil)
			if got[i].Metadata.Name != want.Metadata.Name || !reflect.DeepEqual(got[i].Metadata.Labels, want.Metadata.Labels) ||
				!reflect.DeepEqual(got[i].Spec, want.Spec) {
				t.Errorf("device %d: lean %+v %+v, full %+v %+v", i, got[i].Metadata, got[i].Spec, want.Metadata, want.Spec)
			}
		}
	})

	t.Run("ForEachDevice with a field selector", func(t *testing.T) {
		c := newClient(t, tg)
		var got []string
		err := c.ForEachDevice(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, FieldSelector: "metadata.name!=" + want[3], Limit: 2},
			func(d *flightctl.Device) error { got = append(got, d.Metadata.Name); return nil })
		if err != nil {
			t.Fatalf("ForEachDevice: %v", err)
		}
		if exp := slices.Delete(slices.Clone(want), 3, 4); !slices.Equal(got, exp) {
			t.Errorf("got %v, want %v", got, exp)
		}
	})

	t.Run("ErrStopIteration ends the walk early", func(t *testing.T) {
		c := newClient(t, tg)
		var got []string
		err := c.ForEachDevice(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: 2}, func(d *flightctl.Device) error {
			got = append(got, d.Metadata.Name)
			if len(got) == 3 {
				return flightctl.ErrStopIteration
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ForEachDevice: %v, want nil after ErrStopIteration", err)
		}
		if !slices.Equal(got, want[:3]) {
			t.Errorf("got %v, want %v", got, want[:3])
		}
		if n := c.Stats().Calls[flightctl.OpListDevices]; n != 2 {
			t.Errorf("%d list calls, want 2: pages after the stop must not be fetched", n)
		}
	})

	t.Run("a callback error is returned as is", func(t *testing.T) {
		c := newClient(t, tg)
		boom := errors.New("callback failed")
		err := c.ForEachDevice(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: sel, Limit: 2}, func(*flightctl.Device) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("err = %v, want the callback's error", err)
		}
		if n := c.Stats().Calls[flightctl.OpListDevices]; n != 1 {
			t.Errorf("%d list calls, want 1", n)
		}
	})
}

// testDevicePagingEdgeCases pins the paging boundaries page by page: what
// metadata each page carries and how many requests the helpers make.
func testDevicePagingEdgeCases(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	var devs []string
	for i := 1; i <= 3; i++ {
		name := f.name(fmt.Sprintf("p-%d", i))
		f.createDevice(name, specOf())
		devs = append(devs, name)
	}

	cases := []struct {
		name  string
		label string // narrows the case's selector
		limit int
		// pages are the expected pages as indexes into devs.
		pages [][]int
		// remaining is remainingItemCount of each page but the last,
		// which must carry `metadata: {}`.
		remaining []int64
	}{
		{name: "empty result", label: "role=none", limit: 2, pages: [][]int{{}}},
		{name: "exactly one full page", limit: 3, pages: [][]int{{0, 1, 2}}},
		{name: "last page has metadata {}", limit: 2, pages: [][]int{{0, 1}, {2}}, remaining: []int64{1}},
		{name: "page size 1 over 3 devices", limit: 1, pages: [][]int{{0}, {1}, {2}}, remaining: []int64{2, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := f.at(t).ctx()
			sel := f.selector()
			if tc.label != "" {
				sel += "," + tc.label
			}
			c := newClient(t, tg)
			var cont string
			var flat []string
			for i, page := range tc.pages {
				list, err := c.ListDevices(ctx, flightctl.ListOptions{LabelSelector: sel, Limit: tc.limit, Continue: cont})
				if err != nil {
					t.Fatalf("page %d: %v", i+1, err)
				}
				want := []string{}
				for _, j := range page {
					want = append(want, devs[j])
				}
				flat = append(flat, want...)
				if got := names(list.Items); !slices.Equal(got, want) {
					t.Errorf("page %d: got %v, want %v", i+1, got, want)
				}
				m := list.Metadata
				if i == len(tc.pages)-1 {
					if m.Continue != "" || m.RemainingItemCount != nil {
						t.Errorf("last page %d: metadata = %+v, want {}", i+1, m)
					}
					break
				}
				if m.Continue == "" || m.RemainingItemCount == nil || *m.RemainingItemCount != tc.remaining[i] {
					t.Errorf("page %d: continue %q remainingItemCount %v, want a token and %d", i+1, m.Continue, m.RemainingItemCount, tc.remaining[i])
				}
				cont = m.Continue
			}

			// The helpers walk the same pages.
			c.ResetStats()
			all, err := c.ListAllDevices(ctx, flightctl.ListOptions{LabelSelector: sel, Limit: tc.limit})
			if err != nil {
				t.Fatalf("ListAllDevices: %v", err)
			}
			if got := names(all); !slices.Equal(got, flat) {
				t.Errorf("ListAllDevices: got %v, want %v", got, flat)
			}
			if n := c.Stats().Calls[flightctl.OpListDevices]; n != int64(len(tc.pages)) {
				t.Errorf("ListAllDevices made %d list calls, want %d", n, len(tc.pages))
			}
		})
	}
}

// testFleets covers every fleet call: create (201, duplicate 409), get,
// list with selectors, paging and the devices summary, conditional and
// stale replace, upsert, validation and delete.
func testFleets(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c, rec := f.recordingClient()
	fa, fb := f.name("fleet-a"), f.name("fleet-b")
	tmpl := specOf(quadletApp("web", testImage))
	// Selectors that match no device: this case is about fleets, and
	// on a real server a fleet must not take over anyone's devices.
	in := f.newFleet(fa, map[string]string{"vkct-none": f.set}, tmpl)
	created, err := c.CreateFleet(f.ctx(), in)
	if err != nil {
		t.Fatalf("CreateFleet: %v", err)
	}
	f.cleanupFleet(fa)
	if got := rec.last(); got.method != http.MethodPost || got.code != http.StatusCreated {
		t.Errorf("create answered %+v, want POST 201", got)
	}
	f.createFleet(fb, map[string]string{"vkct-none": f.set + "-b"}, specOf())

	t.Run("create returns the stored fleet", func(t *testing.T) {
		if created.Kind != flightctl.KindFleet || created.Metadata.Name != fa {
			t.Errorf("kind %q name %q", created.Kind, created.Metadata.Name)
		}
		if g := created.Metadata.Generation; g == nil || *g != 1 {
			t.Errorf("generation = %v, want 1", g)
		}
		if sel := created.Spec.Selector; sel == nil || sel.MatchLabels["vkct-none"] != f.set {
			t.Errorf("selector = %+v", sel)
		}
		checkApp(t, &created.Spec.Template.Spec, tmpl.Applications[0])
	})

	t.Run("duplicate create is a conflict", func(t *testing.T) {
		_, err := c.CreateFleet(f.at(t).ctx(), in)
		expectAPIError(t, tg, err, apiErr{code: http.StatusConflict, is: []class{conflict, alreadyExists}, msg: "already exists"})
	})

	t.Run("get", func(t *testing.T) {
		got, err := c.GetFleet(f.at(t).ctx(), fa)
		if err != nil {
			t.Fatalf("GetFleet: %v", err)
		}
		checkApp(t, &got.Spec.Template.Spec, tmpl.Applications[0])
	})

	listCases := []struct {
		name string
		opts flightctl.FleetListOptions
		want []string
	}{
		{"by label", flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: f.selector()}}, []string{fa, fb}},
		{"by field metadata.name", flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: f.selector(), FieldSelector: "metadata.name=" + fb}}, []string{fb}},
		{"with devices summary", flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: f.selector()}, AddDevicesSummary: true}, []string{fa, fb}},
	}
	for _, tc := range listCases {
		t.Run("list "+tc.name, func(t *testing.T) {
			list, err := c.ListFleets(f.at(t).ctx(), tc.opts)
			if err != nil {
				t.Fatalf("ListFleets: %v", err)
			}
			var got []string
			for _, fl := range list.Items {
				got = append(got, fl.Metadata.Name)
				if tc.opts.AddDevicesSummary && (fl.Status == nil || fl.Status.DevicesSummary["total"] == nil) {
					t.Errorf("fleet %s: no status.devicesSummary.total with addDevicesSummary", fl.Metadata.Name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("ForEachFleet pages", func(t *testing.T) {
		c := newClient(t, tg)
		var got []string
		err := c.ForEachFleet(f.at(t).ctx(), flightctl.FleetListOptions{ListOptions: flightctl.ListOptions{LabelSelector: f.selector(), Limit: 1}},
			func(fl *flightctl.Fleet) error { got = append(got, fl.Metadata.Name); return nil })
		if err != nil {
			t.Fatalf("ForEachFleet: %v", err)
		}
		if !slices.Equal(got, []string{fa, fb}) {
			t.Errorf("got %v", got)
		}
		if n := c.Stats().Calls[flightctl.OpListFleets]; n != 2 {
			t.Errorf("%d list calls, want 2 pages of 1", n)
		}
	})

	t.Run("conditional replace", func(t *testing.T) {
		f := f.at(t)
		var before, after *flightctl.Fleet
		var err error
		// The fleet controller writes fleets too; a stale version is
		// re-read, as IsConflict promises.
		for range 5 {
			if before, err = c.GetFleet(f.ctx(), fa); err != nil {
				t.Fatal(err)
			}
			next := *before
			next.Spec.Template.Spec = *specOf(quadletApp("web", testImage), quadletApp("api", testImage))
			if after, err = c.ReplaceFleet(f.ctx(), &next); !flightctl.IsConflict(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("ReplaceFleet: %v", err)
		}
		if got := appNames(&after.Spec.Template.Spec); !slices.Equal(got, []string{"web", "api"}) {
			t.Errorf("template apps = %v", got)
		}
		if g0, g1 := before.Metadata.Generation, after.Metadata.Generation; g0 == nil || g1 == nil || *g1 != *g0+1 {
			t.Errorf("generation %v -> %v on a template change, want +1", g0, g1)
		}
	})

	t.Run("stale replace is a conflict", func(t *testing.T) {
		f := f.at(t)
		cur, err := c.GetFleet(f.ctx(), fb)
		if err != nil {
			t.Fatal(err)
		}
		other := *cur
		other.Metadata.ResourceVersion = ""
		other.Metadata.Labels = f.labels("touched", "yes")
		if _, err := c.ReplaceFleet(f.ctx(), &other); err != nil {
			t.Fatalf("unconditional ReplaceFleet: %v", err)
		}
		_, err = c.ReplaceFleet(f.ctx(), cur)
		expectAPIError(t, tg, err, apiErr{code: http.StatusConflict, is: []class{conflict, stale}, msg: "the object has been modified"})
	})

	t.Run("replace of a new name creates it", func(t *testing.T) {
		f := f.at(t)
		fc := f.name("fleet-c")
		if _, err := c.ReplaceFleet(f.ctx(), f.newFleet(fc, map[string]string{"vkct-none": f.set + "-c"}, specOf())); err != nil {
			t.Fatalf("ReplaceFleet of a new name: %v", err)
		}
		f.cleanupFleet(fc)
		if got := rec.last().code; got != http.StatusCreated {
			t.Errorf("answered %d, want 201", got)
		}
	})

	t.Run("invalid template is refused", func(t *testing.T) {
		f := f.at(t)
		bad := f.name("fleet-bad")
		f.cleanupFleet(bad)
		_, err := c.CreateFleet(f.ctx(), f.newFleet(bad, map[string]string{"vkct-none": f.set}, specOf(quadletApp("Bad Name!", testImage))))
		expectAPIError(t, tg, err, apiErr{code: http.StatusBadRequest, is: []class{invalid}, msg: `Invalid value: "Bad Name!"`})
	})

	t.Run("delete then 404, delete again 200", func(t *testing.T) {
		ctx := f.at(t).ctx()
		if err := c.DeleteFleet(ctx, fb); err != nil {
			t.Fatalf("DeleteFleet: %v", err)
		}
		_, err := c.GetFleet(ctx, fb)
		expectAPIError(t, tg, err, apiErr{code: http.StatusNotFound, is: []class{notFound}, msg: fmt.Sprintf("Fleet of name %q not found", fb)})
		if err := c.DeleteFleet(ctx, fb); err != nil {
			t.Errorf("second DeleteFleet: %v, want success (v1.2.0 deletes idempotently)", err)
		}
	})
}

// testListEvents covers the events endpoint: the per-device field
// selector, narrowing by reason and type, newest-first order and paging.
func testListEvents(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	name := f.name("dev")
	f.createDevice(name, specOf())
	for _, v := range []string{"one", "two"} {
		if _, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/step", Value: v}}); err != nil {
			t.Fatalf("PatchDevice: %v", err)
		}
	}
	f.settle()
	all := flightctl.DeviceEventsSelector(name, "")
	var events []flightctl.Event
	f.eventually(30*time.Second, "events of "+name, func() (bool, string) {
		list, err := f.c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: all})
		if err != nil {
			return false, err.Error()
		}
		events = list.Items
		return len(events) >= 3 && slices.ContainsFunc(events, func(e flightctl.Event) bool { return e.Reason == "ResourceCreated" }),
			fmt.Sprintf("%d events", len(events))
	})

	t.Run("field selector of one device, newest first", func(t *testing.T) {
		for i, e := range events {
			if e.InvolvedObject.Kind != flightctl.KindDevice || e.InvolvedObject.Name != name {
				t.Errorf("event %s is about %s/%s", e.Metadata.Name, e.InvolvedObject.Kind, e.InvolvedObject.Name)
			}
			if e.Metadata.CreationTimestamp == nil {
				t.Fatalf("event %s has no creationTimestamp", e.Metadata.Name)
			}
			if i > 0 && events[i-1].Metadata.CreationTimestamp.Before(*e.Metadata.CreationTimestamp) {
				t.Errorf("event %d is newer than event %d: the list must be newest first", i, i-1)
			}
		}
	})

	cases := []struct {
		name  string
		field string
		check func(flightctl.Event) bool
	}{
		{"by reason", flightctl.DeviceEventsSelector(name, "ResourceUpdated"), func(e flightctl.Event) bool { return e.Reason == "ResourceUpdated" }},
		{"by type", "type=Normal,involvedObject.name=" + name, func(e flightctl.Event) bool { return e.Type == "Normal" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			list, err := f.c.ListEvents(f.at(t).ctx(), flightctl.ListOptions{FieldSelector: tc.field})
			if err != nil {
				t.Fatalf("ListEvents(%q): %v", tc.field, err)
			}
			if len(list.Items) == 0 {
				t.Fatalf("no events for %q", tc.field)
			}
			for _, e := range list.Items {
				if !tc.check(e) || e.InvolvedObject.Name != name {
					t.Errorf("event %+v does not match %q", e, tc.field)
				}
			}
		})
	}

	t.Run("a walk with page size 1 sees the same events as one list", func(t *testing.T) {
		// Event continue tokens carry a timestamp and a name; events
		// written in the same instant must neither repeat nor vanish at
		// a page boundary. The server may still be adding events for the
		// device, so the comparison is retried until both reads agree.
		f := f.at(t)
		f.eventually(30*time.Second, "paged walk equals the list", func() (bool, string) {
			list, err := f.c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: all})
			if err != nil {
				return false, err.Error()
			}
			var walked []string
			err = f.c.ForEachEvent(f.ctx(), flightctl.ListOptions{FieldSelector: all, Limit: 1}, func(e *flightctl.Event) error {
				walked = append(walked, e.Metadata.Name)
				return nil
			})
			if err != nil {
				return false, err.Error()
			}
			var listed []string
			for _, e := range list.Items {
				listed = append(listed, e.Metadata.Name)
			}
			return slices.Equal(walked, listed), fmt.Sprintf("walk %v, list %v", walked, listed)
		})
	})

	t.Run("ForEachEvent pages and stops", func(t *testing.T) {
		c := newClient(t, tg)
		var got []flightctl.Event
		err := c.ForEachEvent(f.at(t).ctx(), flightctl.ListOptions{FieldSelector: all, Limit: 1}, func(e *flightctl.Event) error {
			got = append(got, *e)
			if len(got) == 2 {
				return flightctl.ErrStopIteration
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ForEachEvent: %v", err)
		}
		if len(got) != 2 || got[0].Metadata.CreationTimestamp == nil || got[1].Metadata.CreationTimestamp == nil ||
			got[0].Metadata.CreationTimestamp.Before(*got[1].Metadata.CreationTimestamp) {
			t.Errorf("got %d events, want the 2 newest, newest first", len(got))
		}
		if n := c.Stats().Calls[flightctl.OpListEvents]; n != 2 {
			t.Errorf("%d list calls, want 2 pages of 1", n)
		}
	})

	t.Run("since a checkpoint, oldest first, paged", func(t *testing.T) {
		// The poller's event read: involvedObject.kind=Device,
		// metadata.creationTimestamp>=<newest seen>, order=asc.
		if len(events) < 2 {
			t.Fatalf("need 2 events, have %d", len(events))
		}
		checkpoint := *events[len(events)-2].Metadata.CreationTimestamp
		sel := "involvedObject.kind=Device,involvedObject.name=" + name + ",metadata.creationTimestamp>=" + checkpoint.UTC().Format(time.RFC3339Nano)
		var walked []flightctl.Event
		err := f.c.ForEachEvent(f.at(t).ctx(), flightctl.ListOptions{FieldSelector: sel, Order: "asc", Limit: 1}, func(e *flightctl.Event) error {
			walked = append(walked, *e)
			return nil
		})
		if err != nil {
			t.Fatalf("ForEachEvent(%q, asc): %v", sel, err)
		}
		if len(walked) < 2 {
			t.Fatalf("got %d events at or after the second oldest, want at least 2", len(walked))
		}
		for i, e := range walked {
			if e.Metadata.CreationTimestamp.Before(checkpoint) {
				t.Errorf("event %s at %s is before the checkpoint %s", e.Metadata.Name, e.Metadata.CreationTimestamp, checkpoint)
			}
			if i > 0 && e.Metadata.CreationTimestamp.Before(*walked[i-1].Metadata.CreationTimestamp) {
				t.Errorf("event %d is older than event %d: order=asc must be oldest first", i, i-1)
			}
		}
		own := events[len(events)-2].Metadata.Name
		if !slices.ContainsFunc(walked, func(e flightctl.Event) bool { return e.Metadata.Name == own }) {
			t.Errorf("the checkpoint's own event %s is missing: >= includes it", own)
		}
	})
}
