package contract

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// testImage is registry-qualified: compose and quadlet applications must
// name a registry host, so short names are refused (see the Validation case).
const testImage = "quay.io/flightctl-tests/alpine:v1"

// setLabel scopes one case's objects within a run, so that a case's lists
// see only what it created even though earlier cases' objects still exist.
const setLabel = "vkct-set"

// setSeq numbers fixtures across the whole package run.
var setSeq atomic.Int64

// fixture is one case's view of a target: a client, a label value unique to
// the case, and cleanup of what the case creates.
type fixture struct {
	t   *testing.T
	tg  Target
	c   *flightctl.Client
	set string
}

// newFixture prepares a case on tg.
func newFixture(t *testing.T, tg Target) *fixture {
	t.Helper()
	return &fixture{t: t, tg: tg, c: newClient(t, tg), set: fmt.Sprintf("s%d", setSeq.Add(1))}
}

// at is the fixture seen from a subtest: failures, cleanups and the
// context belong to t. Subtests must not fail their parent's t.
func (f *fixture) at(t *testing.T) *fixture {
	g := *f
	g.t = t
	return &g
}

// ctx is the case's context; it ends when the case does.
func (f *fixture) ctx() context.Context { return f.t.Context() }

// name is a unique object name: <prefix>-<set>-<base>.
func (f *fixture) name(base string) string {
	return f.tg.Prefix() + "-" + f.set + "-" + base
}

// labels are the run and set labels plus key/value pairs.
func (f *fixture) labels(kv ...string) map[string]string {
	l := map[string]string{runLabel: f.tg.Prefix(), setLabel: f.set}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// selector selects the case's objects, narrowed by extra terms.
func (f *fixture) selector(extra ...string) string {
	terms := append([]string{runLabel + "=" + f.tg.Prefix(), setLabel + "=" + f.set}, extra...)
	return strings.Join(terms, ",")
}

// poll is how often eventually re-checks: a real server's worker acts
// about a second after a write, the simulator's within milliseconds.
func (f *fixture) poll() time.Duration {
	if f.tg.Sim() != nil {
		return 10 * time.Millisecond
	}
	return 250 * time.Millisecond
}

// eventually re-evaluates cond until it holds or timeout passes, then
// fails with cond's last explanation. Flightctl has no watch: clients poll,
// and so does the suite for what the server's worker does asynchronously.
func (f *fixture) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not true after %s: %s", what, timeout, why)
		}
		select {
		case <-f.ctx().Done():
			f.t.Fatalf("%s: %v", what, f.ctx().Err())
		case <-time.After(f.poll()):
		}
	}
}

// settle waits for the simulator's worker to finish what earlier writes
// started, so that a following conditional write does not race a render.
// On a real server there is nothing to wait on; cases use readModifyWrite,
// which retries a stale write as the IsConflict contract promises.
func (f *fixture) settle() {
	f.t.Helper()
	if sim := f.tg.Sim(); sim != nil {
		if err := sim.WaitIdle(f.ctx(), time.Second); err != nil {
			f.t.Fatalf("simulator did not settle: %v", err)
		}
	}
}

// settleDevice waits until the server's worker has rendered a device and
// stopped writing to it. On a real server the render of an agent-less
// device also resets its status to "disconnected" (Flightctl v1.2.0), so a
// case that writes status and reads it back must let that render happen
// first or it races it.
func (f *fixture) settleDevice(name string) {
	f.t.Helper()
	if f.tg.Sim() != nil {
		f.settle()
		return
	}
	last := ""
	f.eventually(15*time.Second, "device "+name+" rendered and quiet", func() (bool, string) {
		d, err := f.c.GetDevice(f.ctx(), name)
		if err != nil {
			return false, err.Error()
		}
		if d.Metadata.Annotations["device-controller/renderedVersion"] == "" {
			return false, "not rendered yet"
		}
		rv := d.Metadata.ResourceVersion
		quiet := rv == last
		last = rv
		return quiet, "resourceVersion still moving: " + rv
	})
}

// newDevice is a device with the case's labels (plus kv) and spec.
func (f *fixture) newDevice(name string, spec *flightctl.DeviceSpec, kv ...string) *flightctl.Device {
	return &flightctl.Device{Metadata: flightctl.ObjectMeta{Name: name, Labels: f.labels(kv...)}, Spec: spec}
}

// createDevice creates a device and deletes it when the case ends.
func (f *fixture) createDevice(name string, spec *flightctl.DeviceSpec, kv ...string) *flightctl.Device {
	f.t.Helper()
	d, err := f.c.CreateDevice(f.ctx(), f.newDevice(name, spec, kv...))
	if err != nil {
		f.t.Fatalf("create device %s: %v", name, err)
	}
	f.cleanupDevice(name)
	return d
}

// newFleet is a fleet with the case's labels, selecting devices labelled
// with selector, rolling out template.
func (f *fixture) newFleet(name string, selector map[string]string, template *flightctl.DeviceSpec) *flightctl.Fleet {
	fl := &flightctl.Fleet{Metadata: flightctl.ObjectMeta{Name: name, Labels: f.labels()}}
	fl.Spec.Selector = &flightctl.LabelSelector{MatchLabels: selector}
	if template != nil {
		fl.Spec.Template.Spec = *template
	}
	return fl
}

// createFleet creates a fleet and deletes it when the case ends.
func (f *fixture) createFleet(name string, selector map[string]string, template *flightctl.DeviceSpec) *flightctl.Fleet {
	f.t.Helper()
	fl, err := f.c.CreateFleet(f.ctx(), f.newFleet(name, selector, template))
	if err != nil {
		f.t.Fatalf("create fleet %s: %v", name, err)
	}
	f.cleanupFleet(name)
	return fl
}

// cleanupDevice deletes a device when the case ends. It uses a fresh
// client and context: the case's client may be the one being tested
// (wrong token, no CA), and the case's context is over by then.
func (f *fixture) cleanupDevice(name string) {
	f.t.Cleanup(func() {
		f.deleteLeftover("device", name, func(ctx context.Context, c *flightctl.Client) error { return c.DeleteDevice(ctx, name) })
	})
}

// cleanupFleet deletes a fleet when the case ends.
func (f *fixture) cleanupFleet(name string) {
	f.t.Cleanup(func() {
		f.deleteLeftover("fleet", name, func(ctx context.Context, c *flightctl.Client) error { return c.DeleteFleet(ctx, name) })
	})
}

// deleteLeftover deletes one object, tolerating that the case already did.
// A failure matters on a real server (it would leave litter behind), so it
// fails the case.
func (f *fixture) deleteLeftover(kind, name string, del func(context.Context, *flightctl.Client) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := flightctl.New(f.tg.Config())
	if err != nil {
		f.t.Errorf("cleanup client: %v", err)
		return
	}
	if err := del(ctx, c); err != nil && !flightctl.IsNotFound(err) {
		f.t.Errorf("cleanup: delete %s %s: %v", kind, name, err)
	}
}

// readModifyWrite reads a device, applies mutate, and writes it back
// conditionally, re-reading after a stale resourceVersion. That loop is
// what IsConflict promises callers: the server's worker writes devices on
// its own (renders, ownership), so even a lone writer can lose a race.
// It returns the state it read last and the server's answer.
func (f *fixture) readModifyWrite(c *flightctl.Client, name string, attempts int, mutate func(*flightctl.Device)) (before, after *flightctl.Device, err error) {
	f.t.Helper()
	for range attempts {
		before, err = c.GetDevice(f.ctx(), name)
		if err != nil {
			f.t.Fatalf("get device %s: %v", name, err)
		}
		next := *before
		next.Metadata.Labels = maps.Clone(before.Metadata.Labels)
		mutate(&next)
		after, err = c.ReplaceDevice(f.ctx(), &next)
		if !flightctl.IsConflict(err) {
			return before, after, err
		}
	}
	return before, after, err
}

// setFaults injects faults into the target's simulator and lifts them when
// the case ends, so that no later case inherits them.
func (f *fixture) setFaults(faults flightctlsim.Faults) {
	f.t.Helper()
	sim := f.tg.Sim()
	if err := sim.SetFaults(faults); err != nil {
		f.t.Fatalf("set faults: %v", err)
	}
	f.t.Cleanup(func() {
		if err := sim.SetFaults(flightctlsim.Faults{}); err != nil {
			f.t.Errorf("clear faults: %v", err)
		}
	})
}

// clientOpt adjusts a client configuration for one case.
type clientOpt func(*flightctl.Config)

// newClient builds a client for tg with the case's adjustments.
func newClient(t *testing.T, tg Target, opts ...clientOpt) *flightctl.Client {
	t.Helper()
	cfg := tg.Config()
	for _, o := range opts {
		o(&cfg)
	}
	c, err := flightctl.New(cfg)
	if err != nil {
		t.Fatalf("flightctl.New(%v): %v", cfg, err)
	}
	return c
}

// withRetry replaces the retry settings.
func withRetry(r flightctl.RetryConfig) clientOpt { return func(c *flightctl.Config) { c.Retry = r } }

// exchange is one HTTP answer seen by a recorder.
type exchange struct {
	method, path string
	code         int
}

// recorder is a RoundTripper that notes status codes. The client hides
// them (a 201 and a 200 both return the object), but the contract names
// them: a create answers 201, an upsert of a new name too, a lastseen of
// a device that never reported 204.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []exchange
}

// RoundTrip forwards the request and notes the answer's status code.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, exchange{method: req.Method, path: req.URL.Path, code: resp.StatusCode})
		r.mu.Unlock()
	}
	return resp, err
}

// last is the most recent answer.
func (r *recorder) last() exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return exchange{}
	}
	return r.seen[len(r.seen)-1]
}

// recordingClient is a client whose answers the recorder sees. Setting
// Config.Transport makes the client ignore CAData and friends, so the
// recorder's transport applies the target's TLS settings itself.
func (f *fixture) recordingClient() (*flightctl.Client, *recorder) {
	f.t.Helper()
	cfg := f.tg.Config()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // mirrors the target's own setting
	if len(cfg.CAData) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			f.t.Fatal("target CA holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	tr.TLSClientConfig = tc
	f.t.Cleanup(tr.CloseIdleConnections)
	rec := &recorder{next: tr}
	return newClient(f.t, f.tg, func(c *flightctl.Config) { c.Transport = rec }), rec
}

// class names one of the client's error predicates.
type class string

const (
	notFound      class = "IsNotFound"
	conflict      class = "IsConflict"
	stale         class = "IsStale"
	alreadyExists class = "IsAlreadyExists"
	ownedByFleet  class = "IsOwnedByFleet"
	unauthorized  class = "IsUnauthorized"
	forbidden     class = "IsForbidden"
	invalid       class = "IsInvalid"
	retryable     class = "IsRetryable"
)

// classifiers are checked together on every expected error: a 409 from a
// fleet-owned device must not also pass for a conflict a retry can fix,
// and a missing token must not pass for an invalid request. The provider
// branches on these, so a wrong extra "true" is as bad as a missing one.
var classifiers = []struct {
	class class
	is    func(error) bool
}{
	{notFound, flightctl.IsNotFound},
	{conflict, flightctl.IsConflict},
	{stale, flightctl.IsStale},
	{alreadyExists, flightctl.IsAlreadyExists},
	{ownedByFleet, flightctl.IsOwnedByFleet},
	{unauthorized, flightctl.IsUnauthorized},
	{forbidden, flightctl.IsForbidden},
	{invalid, flightctl.IsInvalid},
	{retryable, flightctl.IsRetryable},
}

// apiErr is an expected *flightctl.APIError.
type apiErr struct {
	// code is the HTTP status.
	code int
	// is lists the classifiers that must hold; all others must not.
	is []class
	// msg is a fragment of the server's message; empty skips the check.
	msg string
}

// checkClasses checks err against every classifier.
func checkClasses(t *testing.T, err error, want ...class) {
	t.Helper()
	for _, c := range classifiers {
		if got, exp := c.is(err), slices.Contains(want, c.class); got != exp {
			t.Errorf("%s = %t, want %t for: %v", c.class, got, exp, err)
		}
	}
}

// expectAPIError checks an error answer of the server: its code, its
// classification, its message, and that no form of it shows the token.
func expectAPIError(t *testing.T, tg Target, err error, want apiErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %d error, got success", want.code)
	}
	var ae *flightctl.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want an *flightctl.APIError with code %d, got %T: %v", want.code, err, err)
	}
	if ae.Code != want.code {
		t.Errorf("code = %d, want %d: %v", ae.Code, want.code, err)
	}
	if ae.NotStatus {
		t.Errorf("the server's error body was not a Status: %v", err)
	}
	if want.msg != "" && !strings.Contains(ae.Message, want.msg) {
		t.Errorf("message %q does not contain %q", ae.Message, want.msg)
	}
	checkClasses(t, err, want.is...)
	expectNoToken(t, err, tg.Config().Token)
}

// expectNoToken checks every way an error may be printed for the bearer
// tokens given: errors end up in logs, events and pod conditions.
func expectNoToken(t *testing.T, err error, tokens ...string) {
	t.Helper()
	if err == nil {
		return
	}
	forms := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	for _, tok := range tokens {
		if tok == "" {
			continue
		}
		for _, s := range forms {
			if strings.Contains(s, tok) {
				t.Errorf("error text contains the bearer token: %s", strings.ReplaceAll(s, tok, "<TOKEN>"))
				return
			}
		}
	}
}

// rv parses a resourceVersion; the contract says it is an integer.
func rv(t *testing.T, d *flightctl.Device) int64 {
	t.Helper()
	n, err := strconv.ParseInt(d.Metadata.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatalf("device %s: resourceVersion %q is not an integer", d.Metadata.Name, d.Metadata.ResourceVersion)
	}
	return n
}

// generation is metadata.generation, failing when the server left it out.
func generation(t *testing.T, d *flightctl.Device) int64 {
	t.Helper()
	if d.Metadata.Generation == nil {
		t.Fatalf("device %s has no metadata.generation", d.Metadata.Name)
	}
	return *d.Metadata.Generation
}

// owner is metadata.owner, "" when unowned.
func owner(d *flightctl.Device) string {
	if d.Metadata.Owner == nil {
		return ""
	}
	return *d.Metadata.Owner
}

// names lists device names in answer order.
func names(items []flightctl.Device) []string {
	out := make([]string, 0, len(items))
	for _, d := range items {
		out = append(out, d.Metadata.Name)
	}
	return out
}

// appNames lists a spec's application names.
func appNames(s *flightctl.DeviceSpec) []string {
	if s == nil {
		return nil
	}
	out := []string{}
	for _, a := range s.Applications {
		out = append(out, a.Name)
	}
	return out
}

// quadletApp is a one-container quadlet application running image.
func quadletApp(name, image string) flightctl.ApplicationSpec {
	return flightctl.ApplicationSpec{
		Name:    name,
		AppType: flightctl.AppTypeQuadlet,
		Inline:  []flightctl.InlineFile{{Path: name + ".container", Content: "[Container]\nImage=" + image + "\n"}},
	}
}

// composeApp is a one-service compose application running image.
func composeApp(name, image string) flightctl.ApplicationSpec {
	return flightctl.ApplicationSpec{
		Name:    name,
		AppType: flightctl.AppTypeCompose,
		Inline:  []flightctl.InlineFile{{Path: "docker-compose.yaml", Content: "services:\n  web:\n    image: " + image + "\n"}},
	}
}

// specOf is a device spec with apps. No apps gives the empty spec {},
// which is also what an empty fleet template renders to.
func specOf(apps ...flightctl.ApplicationSpec) *flightctl.DeviceSpec {
	return &flightctl.DeviceSpec{Applications: apps}
}
