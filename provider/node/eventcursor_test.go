package node

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// TestEventCursor reads device events from the simulator over HTTP, as
// the poller does: each event once, only those after the checkpoint, and
// a read that cannot be trusted leaves the cursor needing a full listing.
func TestEventCursor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim := emptySim(t)
	c := simClient(t, sim)
	// settle waits until the simulated worker and agents have done
	// everything due, so that the events a change causes (the agent's
	// first report comes after the creation) are all recorded before the
	// cursor reads.
	settle := func(s *flightctlsim.Sim) {
		t.Helper()
		if err := s.WaitIdle(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	add := func(name string) {
		t.Helper()
		if err := sim.AddDevice(flightctlsim.DeviceConfig{Name: name, CPU: 1, Memory: "1Gi"}); err != nil {
			t.Fatal(err)
		}
		settle(sim)
	}
	read := func(cur *eventCursor) []string {
		t.Helper()
		named, err := cur.read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return slices.Sorted(maps.Keys(named))
	}

	cur := &eventCursor{events: c}
	if _, err := cur.read(ctx); !errors.Is(err, errEventGap) {
		t.Fatalf("read before prime: %v, want errEventGap (a full listing first)", err)
	}
	add("before")
	if err := cur.prime(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(cur); len(got) != 0 {
		t.Errorf("after prime: %v, want nothing (older events are covered by the full listing)", got)
	}
	add("new-1")
	add("new-2")
	if got := read(cur); !slices.Equal(got, []string{"new-1", "new-2"}) {
		t.Errorf("after two creations: %v, want [new-1 new-2]", got)
	}
	if got := read(cur); len(got) != 0 {
		t.Errorf("read again: %v, want nothing (>= returns the checkpoint's own events, which are skipped)", got)
	}
	if err := sim.Disconnect("new-1"); err != nil {
		t.Fatal(err)
	}
	settle(sim)
	if got := read(cur); !slices.Equal(got, []string{"new-1"}) {
		t.Errorf("after a disconnection: %v, want [new-1]", got)
	}

	// A fresh cursor with no event recorded yet starts at the beginning.
	empty := emptySim(t)
	fresh := &eventCursor{events: simClient(t, empty)}
	if err := fresh.prime(ctx); err != nil {
		t.Fatal(err)
	}
	if err := empty.AddDevice(flightctlsim.DeviceConfig{Name: "first", CPU: 1, Memory: "1Gi"}); err != nil {
		t.Fatal(err)
	}
	settle(empty)
	if got := read(fresh); !slices.Equal(got, []string{"first"}) {
		t.Errorf("first events ever: %v, want [first]", got)
	}
}

// emptySim starts a simulator with no device, stopped when the test ends.
func emptySim(t *testing.T) *flightctlsim.Sim {
	t.Helper()
	sim := flightctlsim.New(flightctlsim.Options{Config: &flightctlsim.Config{}})
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// simClient is a client of sim that does not retry, so a failure the
// test injects is the answer it sees.
func simClient(t *testing.T, sim *flightctlsim.Sim) *flightctl.Client {
	t.Helper()
	c, err := flightctl.New(flightctl.Config{Server: sim.URL(), Token: sim.Token(), Retry: flightctl.RetryConfig{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
