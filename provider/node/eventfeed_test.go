package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// TestEventFeed shares one event reader between two nodes of one
// connection, against the simulator over HTTP: a read made for one node
// answers the other while it is younger than maxAge, every node still gets
// every device named, a failed read sends every node of the feed to a
// full listing, and another connection keeps a feed of its own.
func TestEventFeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim := emptySim(t)
	client := func() *flightctl.Client { return simClient(t, sim) }
	var mu sync.Mutex
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	add := func(name string) {
		t.Helper()
		if err := sim.AddDevice(flightctlsim.DeviceConfig{Name: name, CPU: 1, Memory: "1Gi"}); err != nil {
			t.Fatal(err)
		}
		if err := sim.WaitIdle(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	eventCalls := func() int64 { return sim.Stats().Requests["listEvents"] }
	// read returns what r's read names and how many event calls it made.
	read := func(r *feedReader) ([]string, int64) {
		t.Helper()
		before := eventCalls()
		named, err := r.read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return slices.Sorted(maps.Keys(named)), eventCalls() - before
	}
	const maxAge = 2 * time.Second

	feeds := newEventFeeds(clock)
	a := feeds.subscribe("conn-1", client(), maxAge)
	b := feeds.subscribe("conn-1", client(), maxAge)
	if _, err := a.read(ctx); !errors.Is(err, errEventGap) {
		t.Fatalf("read before prime: %v, want errEventGap (a full listing first)", err)
	}
	for _, r := range []*feedReader{a, b} {
		if err := r.prime(ctx); err != nil {
			t.Fatal(err)
		}
	}

	add("d1")
	if got, calls := read(a); !slices.Equal(got, []string{"d1"}) || calls != 1 {
		t.Errorf("a after d1: %v with %d event calls, want [d1] with 1", got, calls)
	}
	if got, calls := read(b); !slices.Equal(got, []string{"d1"}) || calls != 0 {
		t.Errorf("b right after a: %v with %d event calls, want [d1] from a's read, no call", got, calls)
	}
	if got, calls := read(b); len(got) != 0 || calls != 0 {
		t.Errorf("b again: %v with %d calls, want nothing and no call", got, calls)
	}

	add("d2")
	advance(maxAge + time.Millisecond)
	if got, calls := read(b); !slices.Equal(got, []string{"d2"}) || calls != 1 {
		t.Errorf("b after maxAge: %v with %d event calls, want [d2] with 1", got, calls)
	}
	if got, calls := read(a); !slices.Equal(got, []string{"d2"}) || calls != 0 {
		t.Errorf("a after b: %v with %d event calls, want [d2], no call", got, calls)
	}

	// Another connection reads for itself.
	other := feeds.subscribe("conn-2", client(), maxAge)
	if err := other.prime(ctx); err != nil {
		t.Fatal(err)
	}
	add("d3")
	if got, calls := read(other); !slices.Equal(got, []string{"d3"}) || calls != 1 {
		t.Errorf("other connection: %v with %d event calls, want [d3] with its own call", got, calls)
	}
	if n := feeds.count(); n != 2 {
		t.Errorf("%d feeds, want 2", n)
	}

	// A read its caller gave up on loses nothing for the others.
	gone, stop := context.WithCancel(ctx)
	stop()
	advance(maxAge + time.Millisecond)
	if _, err := a.read(gone); err == nil {
		t.Fatal("read with a cancelled context succeeded")
	}
	if got, _ := read(b); !slices.Equal(got, []string{"d3"}) {
		t.Errorf("b after a's cancelled read: %v, want [d3]", got)
	}
	if got, _ := read(a); !slices.Equal(got, []string{"d3"}) {
		t.Errorf("a after b's read: %v, want [d3]", got)
	}

	// A failed read: both nodes must list everything.
	if err := sim.SetFaults(flightctlsim.Faults{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	advance(maxAge + time.Millisecond)
	if _, err := a.read(ctx); err == nil {
		t.Fatal("read against a failing server succeeded")
	}
	if err := sim.SetFaults(flightctlsim.Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.read(ctx); !errors.Is(err, errEventGap) {
		t.Fatalf("b after a's failed read: %v, want errEventGap", err)
	}
	before := eventCalls()
	if err := b.prime(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.read(ctx); !errors.Is(err, errEventGap) {
		t.Fatalf("a after b primed the feed again: %v, want errEventGap (a's own listing is still due)", err)
	}
	if err := a.prime(ctx); err != nil {
		t.Fatal(err)
	}
	if calls := eventCalls() - before; calls != 1 {
		t.Errorf("priming twice after the failure made %d event calls, want 1", calls)
	}
	add("d4")
	advance(maxAge + time.Millisecond)
	if got, _ := read(a); !slices.Equal(got, []string{"d4"}) {
		t.Errorf("a after recovery: %v, want [d4]", got)
	}
	if got, _ := read(b); !slices.Equal(got, []string{"d4"}) {
		t.Errorf("b after recovery: %v, want [d4]", got)
	}

	a.close()
	b.close()
	if n := feeds.count(); n != 1 {
		t.Errorf("%d feeds after both readers of conn-1 closed, want 1", n)
	}
	other.close()
	if n := feeds.count(); n != 0 {
		t.Errorf("%d feeds after every reader closed, want 0", n)
	}
}
