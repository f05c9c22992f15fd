package flightctl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
)

// pagingServer serves n devices named d0000... in pages, like the real
// server: continue is opaque, the last page has metadata {}, a garbage
// continue is a 400.
type pagingServer struct {
	mu     sync.Mutex
	n      int
	limits []string // the limit parameter of every request, "" if absent
	// sameToken makes every page hand back the continue it was given.
	sameToken bool
	// emptyLastPage adds a final page with no items.
	emptyLastPage bool
}

func (p *pagingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.limits = append(p.limits, q.Get("limit"))
	p.mu.Unlock()
	limit := p.n + 1
	if l := q.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		switch {
		case err != nil:
			writeStatus(w, 400, "bad limit")
			return
		case v > MaxPageSize:
			writeStatus(w, 400, `API Error: parameter "limit" in query has an error: number must be at most 1000`)
			return
		case v > 0:
			limit = v
		}
	}
	start := 0
	if c := q.Get("continue"); c != "" {
		raw, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			writeStatus(w, 400, "failed to parse continue parameter: "+err.Error())
			return
		}
		if start, err = strconv.Atoi(string(raw)); err != nil {
			writeStatus(w, 400, "failed to parse continue parameter")
			return
		}
	}
	list := DeviceList{APIVersion: APIVersion, Kind: KindDeviceList, Items: []Device{}}
	end := min(start+limit, p.n)
	for i := start; i < end; i++ {
		list.Items = append(list.Items, testDevice(fmt.Sprintf("d%04d", i)))
	}
	remaining := int64(p.n - end)
	switch {
	case p.sameToken:
		list.Metadata.Continue = q.Get("continue")
		if list.Metadata.Continue == "" {
			list.Metadata.Continue = base64.StdEncoding.EncodeToString([]byte("0"))
		}
	case remaining > 0 || (p.emptyLastPage && start < p.n):
		list.Metadata.Continue = base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		list.Metadata.RemainingItemCount = &remaining
	}
	writeJSON(w, http.StatusOK, &list)
}

func TestForEachDevicePaging(t *testing.T) {
	cases := []struct {
		name       string
		n          int
		opts       ListOptions
		emptyLast  bool
		wantLimits []string
	}{
		{"empty list", 0, ListOptions{}, false, []string{"1000"}},
		{"one short page", 3, ListOptions{}, false, []string{"1000"}},
		{"pages of two", 5, ListOptions{Limit: 2}, false, []string{"2", "2", "2"}},
		{"exact multiple", 4, ListOptions{Limit: 2}, false, []string{"2", "2"}},
		{"trailing empty page", 4, ListOptions{Limit: 2}, true, []string{"2", "2", "2"}},
		{"default page size", 2500, ListOptions{}, false, []string{"1000", "1000", "1000"}},
		{"limit above max is clamped", 1500, ListOptions{Limit: 5000}, false, []string{"1000", "1000"}},
		{"negative limit", 1, ListOptions{Limit: -3}, false, []string{"1000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps := &pagingServer{n: tc.n, emptyLastPage: tc.emptyLast}
			srv := newServer(t, ps.ServeHTTP)
			c := newTestClient(t, srv.URL)
			all, err := c.ListAllDevices(context.Background(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != tc.n {
				t.Fatalf("got %d devices, want %d", len(all), tc.n)
			}
			for i, d := range all {
				if want := fmt.Sprintf("d%04d", i); d.Metadata.Name != want {
					t.Fatalf("device %d is %s, want %s", i, d.Metadata.Name, want)
				}
			}
			if fmt.Sprint(ps.limits) != fmt.Sprint(tc.wantLimits) {
				t.Errorf("limits sent %q, want %q", ps.limits, tc.wantLimits)
			}
			if got := c.Stats().Calls[OpListDevices]; got != int64(len(tc.wantLimits)) {
				t.Errorf("Stats counted %d list calls", got)
			}
		})
	}
}

func TestForEachDeviceErrors(t *testing.T) {
	t.Run("invalid continue", func(t *testing.T) {
		ps := &pagingServer{n: 3}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		err := c.ForEachDevice(context.Background(), ListOptions{Continue: "!!garbage"}, func(*Device) error { return nil })
		if !IsInvalid(err) {
			t.Fatalf("want invalid, got %v", err)
		}
	})
	t.Run("server repeats its continue token", func(t *testing.T) {
		ps := &pagingServer{n: 3, sameToken: true}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		err := c.ForEachDevice(context.Background(), ListOptions{Limit: 1}, func(*Device) error { return nil })
		if err == nil || len(ps.limits) > 3 {
			t.Fatalf("loop not detected: %v after %d pages", err, len(ps.limits))
		}
	})
	t.Run("callback error stops the walk", func(t *testing.T) {
		ps := &pagingServer{n: 10}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		boom := errors.New("boom")
		seen := 0
		err := c.ForEachDevice(context.Background(), ListOptions{Limit: 2}, func(*Device) error {
			seen++
			if seen == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || seen != 3 || len(ps.limits) != 2 {
			t.Fatalf("err=%v seen=%d pages=%d", err, seen, len(ps.limits))
		}
	})
	t.Run("ErrStopIteration ends early without error", func(t *testing.T) {
		ps := &pagingServer{n: 10}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		seen := 0
		err := c.ForEachDevice(context.Background(), ListOptions{Limit: 2}, func(*Device) error {
			seen++
			if seen == 3 {
				return ErrStopIteration
			}
			return nil
		})
		if err != nil || len(ps.limits) != 2 {
			t.Fatalf("err=%v pages=%d", err, len(ps.limits))
		}
	})
	t.Run("context cancelled between pages", func(t *testing.T) {
		ps := &pagingServer{n: 10}
		c := newTestClient(t, newServer(t, ps.ServeHTTP).URL)
		ctx, cancel := context.WithCancel(context.Background())
		err := c.ForEachDevice(ctx, ListOptions{Limit: 2}, func(*Device) error { cancel(); return nil })
		if !errors.Is(err, context.Canceled) || len(ps.limits) != 1 {
			t.Fatalf("err=%v pages=%d", err, len(ps.limits))
		}
	})
}

func TestForEachEventAndFleet(t *testing.T) {
	var pages []string
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		pages = append(pages, r.URL.Path+" "+q.Get("limit")+" "+q.Get("continue")+" "+q.Get("fieldSelector")+" "+q.Get("addDevicesSummary"))
		switch r.URL.Path {
		case "/api/v1/events":
			l := EventList{APIVersion: APIVersion, Kind: KindEventList}
			if q.Get("continue") == "" {
				l.Items = []Event{{Reason: "a"}, {Reason: "b"}}
				l.Metadata.Continue = "next"
			} else {
				l.Items = []Event{{Reason: "c"}}
			}
			writeJSON(w, 200, &l)
		case "/api/v1/fleets":
			l := FleetList{APIVersion: APIVersion, Kind: KindFleetList, Items: []Fleet{{Metadata: ObjectMeta{Name: "f"}}}}
			writeJSON(w, 200, &l)
		}
	})
	c := newTestClient(t, srv.URL)
	var reasons string
	err := c.ForEachEvent(context.Background(), ListOptions{FieldSelector: DeviceEventsSelector("dev1", EventReasonDeviceDisconnected), Limit: 2},
		func(e *Event) error { reasons += e.Reason; return nil })
	if err != nil || reasons != "abc" {
		t.Fatalf("err=%v reasons=%q", err, reasons)
	}
	var fleets int
	if err := c.ForEachFleet(context.Background(), FleetListOptions{AddDevicesSummary: true}, func(*Fleet) error { fleets++; return nil }); err != nil || fleets != 1 {
		t.Fatalf("err=%v fleets=%d", err, fleets)
	}
	want := []string{
		"/api/v1/events 2  involvedObject.kind=Device,involvedObject.name=dev1,reason=DeviceDisconnected ",
		"/api/v1/events 2 next involvedObject.kind=Device,involvedObject.name=dev1,reason=DeviceDisconnected ",
		"/api/v1/fleets 1000   true",
	}
	if fmt.Sprintf("%q", pages) != fmt.Sprintf("%q", want) {
		t.Errorf("requests\n%q\nwant\n%q", pages, want)
	}
}
