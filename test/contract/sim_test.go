package contract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// The cases in this file need the simulator's controls: a reporting agent
// that can be cut off, and fault injection. They check the client's side
// of failures a real server shows only by accident.

// testDisconnectEvents covers what the provider sees when a device drops
// off: DeviceDisconnected warnings, the Unknown status with the server's
// info text, a frozen lastSeen, and DeviceConnected on return.
func testDisconnectEvents(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	sim := tg.Sim()
	name := f.name("agent")
	if err := sim.AddDevice(flightctlsim.DeviceConfig{Name: name, Labels: f.labels(), CPU: 2, Memory: "4Gi"}); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	f.cleanupDevice(name)
	waitSummary(f, name, flightctl.DeviceSummaryOnline)
	if err := sim.Disconnect(name); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}

	var frozen time.Time
	t.Run("DeviceDisconnected is recorded", func(t *testing.T) {
		events := waitEvents(f.at(t), name, flightctl.EventReasonDeviceDisconnected)
		for _, e := range events {
			if e.Reason != flightctl.EventReasonDeviceDisconnected || e.Type != "Warning" ||
				e.InvolvedObject.Kind != flightctl.KindDevice || e.InvolvedObject.Name != name {
				t.Errorf("unexpected event %+v", e)
			}
		}
	})

	t.Run("status shows the device disconnected", func(t *testing.T) {
		d, err := f.c.GetDevice(f.at(t).ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		if s := d.Status.Summary; s.Status != flightctl.DeviceSummaryUnknown || !strings.Contains(s.Info, "disconnected") {
			t.Errorf("summary = %+v, want Unknown, disconnected", s)
		}
	})

	t.Run("lastSeen is frozen", func(t *testing.T) {
		ctx := f.at(t).ctx()
		first, err := f.c.GetLastSeen(ctx, name)
		if err != nil || first == nil {
			t.Fatalf("GetLastSeen = %v, %v; want the time of the last report", first, err)
		}
		time.Sleep(50 * time.Millisecond)
		second, err := f.c.GetLastSeen(ctx, name)
		if err != nil || second == nil || !second.Equal(*first) {
			t.Errorf("lastSeen moved from %v to %v (%v) while disconnected", first, second, err)
		}
		frozen = *first
	})

	t.Run("reconnect records DeviceConnected", func(t *testing.T) {
		f := f.at(t)
		if err := sim.Reconnect(name); err != nil {
			t.Fatalf("Reconnect: %v", err)
		}
		waitEvents(f, name, flightctl.EventReasonDeviceConnected)
		waitSummary(f, name, flightctl.DeviceSummaryOnline)
		ls, err := f.c.GetLastSeen(f.ctx(), name)
		if err != nil || ls == nil || !ls.After(frozen) {
			t.Errorf("lastSeen = %v (%v) after reconnecting, want later than %v", ls, err, frozen)
		}
	})
}

// waitSummary polls until the device's status.summary.status is want.
func waitSummary(f *fixture, name, want string) {
	f.t.Helper()
	f.eventually(10*time.Second, name+" summary "+want, func() (bool, string) {
		d, err := f.c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		return d.Status != nil && d.Status.Summary.Status == want, fmt.Sprintf("summary %+v", d.Status.Summary)
	})
}

// waitEvents polls until the device has at least one event with reason.
func waitEvents(f *fixture, name, reason string) []flightctl.Event {
	f.t.Helper()
	var items []flightctl.Event
	sel := flightctl.DeviceEventsSelector(name, reason)
	f.eventually(10*time.Second, reason+" event for "+name, func() (bool, string) {
		list, err := f.c.ListEvents(f.ctx(), flightctl.ListOptions{FieldSelector: sel})
		if err != nil {
			return false, err.Error()
		}
		items = list.Items
		return len(items) > 0, "no event yet"
	})
	return items
}

// testRetryServerErrors covers retries of injected 5xx answers: which
// codes are retried, that only calls safe to repeat are, that the budget
// is MaxAttempts, and that a GET rides out an outage shorter than it.
func testRetryServerErrors(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	sim := tg.Sim()
	name := f.name("dev")
	f.createDevice(name, specOf())
	f.settle()

	t.Run("GET succeeds once faults lift within the retry budget", func(t *testing.T) {
		f := f.at(t)
		c := newClient(t, tg, withRetry(flightctl.RetryConfig{MaxAttempts: 8, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Jitter: -1}))
		before := sim.Stats().InjectedErrors
		f.setFaults(flightctlsim.Faults{ErrorRate: 1})
		type result struct {
			d   *flightctl.Device
			err error
		}
		done := make(chan result, 1)
		go func() {
			d, err := c.GetDevice(f.ctx(), name)
			done <- result{d, err}
		}()
		f.eventually(5*time.Second, "first injected error", func() (bool, string) {
			return sim.Stats().InjectedErrors > before, "no injected error yet"
		})
		if err := sim.SetFaults(flightctlsim.Faults{}); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("GetDevice after the outage: %v", r.err)
		}
		if r.d.Metadata.Name != name {
			t.Errorf("got device %q", r.d.Metadata.Name)
		}
		st := c.Stats()
		if st.Retries < 1 || st.Requests[flightctl.OpGetDevice] != st.Retries+1 {
			t.Errorf("retries %d, requests %d: want at least one retry, and one request more than retries", st.Retries, st.Requests[flightctl.OpGetDevice])
		}
	})

	codes := []struct {
		code    int
		retried bool
	}{
		{http.StatusInternalServerError, true},
		{http.StatusNotImplemented, false},
		{http.StatusBadGateway, true},
		{http.StatusServiceUnavailable, true},
		{http.StatusGatewayTimeout, true},
	}
	for _, tc := range codes {
		t.Run(fmt.Sprintf("GET answered %d", tc.code), func(t *testing.T) {
			f := f.at(t)
			c := newClient(t, tg)
			f.setFaults(flightctlsim.Faults{ErrorRate: 1, ErrorCode: tc.code})
			_, err := c.GetDevice(f.ctx(), name)
			want, attempts := apiErr{code: tc.code, msg: "simulated fault"}, 1
			if tc.retried {
				want.is, attempts = []class{retryable}, suiteRetry.MaxAttempts
			}
			expectAPIError(t, tg, err, want)
			if n := c.Stats().Requests[flightctl.OpGetDevice]; n != int64(attempts) {
				t.Errorf("%d requests, want %d", n, attempts)
			}
			if tc.retried && !strings.Contains(err.Error(), fmt.Sprintf("after %d attempts", attempts)) {
				t.Errorf("error does not say how often it tried: %v", err)
			}
		})
	}

	// Under a 503 every call fails; what differs is how often it was
	// sent. A POST or PATCH that reached the server may have been applied,
	// so repeating it is not safe; PUT, DELETE and GET are.
	writes := []struct {
		name     string
		op       string
		attempts int
		do       func(context.Context, *flightctl.Client, *fixture) error
	}{
		{"POST is not repeated", flightctl.OpCreateDevice, 1, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			_, err := c.CreateDevice(ctx, f.newDevice(f.name("never"), specOf()))
			return err
		}},
		{"PATCH is not repeated", flightctl.OpPatchDevice, 1, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			_, err := c.PatchDevice(ctx, name, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/x", Value: "y"}})
			return err
		}},
		{"PUT is repeated", flightctl.OpReplaceDevice, suiteRetry.MaxAttempts, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			_, err := c.ReplaceDevice(ctx, f.newDevice(name, specOf()))
			return err
		}},
		{"PUT status is repeated", flightctl.OpReplaceDeviceStatus, suiteRetry.MaxAttempts, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			d := f.newDevice(name, specOf())
			d.Status = unknownStatus()
			_, err := c.ReplaceDeviceStatus(ctx, d)
			return err
		}},
		{"DELETE is repeated", flightctl.OpDeleteDevice, suiteRetry.MaxAttempts, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			return c.DeleteDevice(ctx, f.name("never"))
		}},
		{"fleet PUT is repeated", flightctl.OpReplaceFleet, suiteRetry.MaxAttempts, func(ctx context.Context, c *flightctl.Client, f *fixture) error {
			_, err := c.ReplaceFleet(ctx, f.newFleet(f.name("never"), map[string]string{"vkct-none": f.set}, specOf()))
			return err
		}},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			f := f.at(t)
			f.cleanupDevice(f.name("never"))
			f.cleanupFleet(f.name("never"))
			c := newClient(t, tg)
			f.setFaults(flightctlsim.Faults{ErrorRate: 1})
			err := tc.do(f.ctx(), c, f)
			expectAPIError(t, tg, err, apiErr{code: http.StatusServiceUnavailable, is: []class{retryable}, msg: "simulated fault"})
			if n := c.Stats().Requests[tc.op]; n != int64(tc.attempts) {
				t.Errorf("%d requests, want %d", n, tc.attempts)
			}
		})
	}
}

// testRetrySeededErrorRate sends a series of lists through a server that
// fails half of all requests, with a fixed seed so that a failure
// reproduces. It runs on a simulator of its own: the seed only fixes the
// outcome if no other request draws from the same random source.
func testRetrySeededErrorRate(t *testing.T, tg Target) {
	opts := simOptions(isHTTPS(tg))
	opts.FaultSeed = 42
	opts.Faults = flightctlsim.Faults{ErrorRate: 0.5}
	sim := startSim(t, opts)
	own := &simTarget{name: "seeded simulator", sim: sim, prefix: tg.Prefix()}
	c := newClient(t, own, withRetry(flightctl.RetryConfig{MaxAttempts: 10, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}))
	const calls = 20
	for i := range calls {
		if _, err := c.ListDevices(t.Context(), flightctl.ListOptions{Limit: 1}); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	cs, ss := c.Stats(), sim.Stats()
	if cs.Retries == 0 {
		t.Fatal("no retries at an error rate of 0.5")
	}
	// Every injected error cost exactly one retry, and nothing else did.
	if ss.InjectedErrors != cs.Retries {
		t.Errorf("simulator injected %d errors, client retried %d times", ss.InjectedErrors, cs.Retries)
	}
	if n := cs.Requests[flightctl.OpListDevices]; n != calls+cs.Retries {
		t.Errorf("%d requests for %d calls and %d retries", n, calls, cs.Retries)
	}
	t.Logf("%d calls at error rate 0.5 (seed %d) took %d retries", calls, opts.FaultSeed, cs.Retries)
}

// testForcedConflicts covers 409s a concurrent writer would cause: they
// are IsConflict and IsStale, the client does not retry them by itself
// (only a re-read can), and a read-modify-write loop gets through.
func testForcedConflicts(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	sim := tg.Sim()
	name := f.name("dev")
	f.createDevice(name, specOf())
	fleet := f.name("fleet")
	f.createFleet(fleet, map[string]string{"vkct-none": f.set}, specOf())
	f.settle()
	staleErr := apiErr{code: http.StatusConflict, is: []class{conflict, stale}, msg: "the object has been modified"}

	t.Run("device PUT", func(t *testing.T) {
		f := f.at(t)
		c := newClient(t, tg)
		cur, err := c.GetDevice(f.ctx(), name)
		if err != nil {
			t.Fatal(err)
		}
		before := sim.Stats().InjectedConflicts
		f.setFaults(flightctlsim.Faults{ConflictCount: 2})
		for i := range 2 {
			_, err := c.ReplaceDevice(f.ctx(), cur)
			expectAPIError(t, tg, err, staleErr)
			if n := c.Stats().Requests[flightctl.OpReplaceDevice]; n != int64(i+1) {
				t.Errorf("%d requests after %d conflicts: a 409 must not be retried blindly", n, i+1)
			}
		}
		if _, err := c.ReplaceDevice(f.ctx(), cur); err != nil {
			t.Errorf("third PUT, after the forced conflicts: %v", err)
		}
		if n := sim.Stats().InjectedConflicts - before; n != 2 {
			t.Errorf("simulator injected %d conflicts, want 2", n)
		}
	})

	t.Run("read-modify-write gets through", func(t *testing.T) {
		f := f.at(t)
		c := newClient(t, tg)
		f.setFaults(flightctlsim.Faults{ConflictCount: 3})
		_, after, err := f.readModifyWrite(c, name, 5, func(d *flightctl.Device) { d.Metadata.Labels["rmw"] = "done" })
		if err != nil {
			t.Fatalf("read-modify-write: %v", err)
		}
		if after.Metadata.Labels["rmw"] != "done" {
			t.Errorf("labels = %v", after.Metadata.Labels)
		}
		if n := c.Stats().Requests[flightctl.OpReplaceDevice]; n != 4 {
			t.Errorf("%d PUTs, want 3 refused and 1 accepted", n)
		}
	})

	t.Run("device PATCH", func(t *testing.T) {
		f := f.at(t)
		f.setFaults(flightctlsim.Faults{ConflictCount: 1})
		_, err := f.c.PatchDevice(f.ctx(), name, []flightctl.PatchOperation{{Op: "add", Path: "/metadata/labels/x", Value: "y"}})
		expectAPIError(t, tg, err, staleErr)
	})

	t.Run("fleet PUT", func(t *testing.T) {
		f := f.at(t)
		cur, err := f.c.GetFleet(f.ctx(), fleet)
		if err != nil {
			t.Fatal(err)
		}
		f.setFaults(flightctlsim.Faults{ConflictCount: 1})
		_, err = f.c.ReplaceFleet(f.ctx(), cur)
		expectAPIError(t, tg, err, staleErr)
	})
}

// testUnreachable covers a server that drops connections without an
// answer: a GET is retried then fails as a retryable transport error, a
// POST is not repeated once it may have arrived, and service resumes.
func testUnreachable(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	sim := tg.Sim()
	name := f.name("dev")
	f.createDevice(name, specOf())
	never := f.name("never")
	f.cleanupDevice(never)
	f.settle()
	before := sim.Stats().DroppedRequests
	f.setFaults(flightctlsim.Faults{Unreachable: true})

	t.Run("GET is retried, then fails as retryable", func(t *testing.T) {
		c := newClient(t, tg)
		_, err := c.GetDevice(f.at(t).ctx(), name)
		expectTransportError(t, tg, err)
		checkClasses(t, err, retryable)
		if n := c.Stats().Requests[flightctl.OpGetDevice]; n != int64(suiteRetry.MaxAttempts) {
			t.Errorf("%d requests, want %d", n, suiteRetry.MaxAttempts)
		}
		if n := sim.Stats().DroppedRequests - before; n < int64(suiteRetry.MaxAttempts) {
			t.Errorf("simulator dropped %d requests, want at least %d", n, suiteRetry.MaxAttempts)
		}
	})

	t.Run("POST is not repeated", func(t *testing.T) {
		c := newClient(t, tg)
		_, err := c.CreateDevice(f.at(t).ctx(), f.newDevice(never, specOf()))
		expectTransportError(t, tg, err)
		if n := c.Stats().Requests[flightctl.OpCreateDevice]; n != 1 {
			t.Errorf("%d requests, want 1: the POST may have arrived", n)
		}
	})

	t.Run("service resumes", func(t *testing.T) {
		if err := sim.SetFaults(flightctlsim.Faults{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.c.GetDevice(f.at(t).ctx(), name); err != nil {
			t.Errorf("GetDevice after the server is back: %v", err)
		}
	})
}

// expectTransportError checks a failure that got no HTTP answer: not an
// *APIError, and without the token.
func expectTransportError(t *testing.T, tg Target, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want a transport error, got success")
	}
	var ae *flightctl.APIError
	if errors.As(err, &ae) {
		t.Fatalf("want a transport error, got an answer: %v", err)
	}
	expectNoToken(t, err, tg.Config().Token)
}

// testSlowServer covers the two clocks of a call: Config.Timeout bounds
// each attempt (and a timed-out attempt is retried), the caller's context
// bounds the whole call (and ends retrying).
func testSlowServer(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	f.setFaults(flightctlsim.Faults{Latency: flightctlsim.Duration(2 * time.Second)})

	t.Run("attempt timeout", func(t *testing.T) {
		c := newClient(t, tg, func(cfg *flightctl.Config) {
			cfg.Timeout = 100 * time.Millisecond
			cfg.Retry = flightctl.RetryConfig{MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
		})
		start := time.Now()
		_, err := c.ListDevices(f.at(t).ctx(), flightctl.ListOptions{Limit: 1})
		expectTransportError(t, tg, err)
		checkClasses(t, err, retryable)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 100ms") {
			t.Errorf("err = %v, want a deadline saying how long the client waited", err)
		}
		if n := c.Stats().Requests[flightctl.OpListDevices]; n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("took %s: the attempt timeout did not cut the wait", d)
		}
	})

	t.Run("caller's context ends retrying", func(t *testing.T) {
		c := newClient(t, tg)
		ctx, cancel := context.WithTimeout(f.at(t).ctx(), 150*time.Millisecond)
		defer cancel()
		_, err := c.ListDevices(ctx, flightctl.ListOptions{Limit: 1})
		expectTransportError(t, tg, err)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the context's deadline", err)
		}
		if n := c.Stats().Requests[flightctl.OpListDevices]; n != 1 {
			t.Errorf("%d requests, want 1: nothing is retried once the caller gave up", n)
		}
	})
}
