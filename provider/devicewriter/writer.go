// Package devicewriter writes vk-flightctl's applications into Flightctl
// device specs. Every write is a read-modify-write of one device with its
// resourceVersion, so concurrent writers (people, fleets, another manager)
// are never overwritten; changes queued for the same device while a write
// is in flight are batched into the next single write; and only
// applications (and inline config entries) that vk-flightctl owns are ever
// added, replaced or removed.
//
// A write starts from a device read by someone else when one is offered
// (Observe: the poller's by-name reads of the devices being changed) and
// is newer than anything the writer itself saw, instead of reading the
// device again; the write's resourceVersion check turns a copy that
// turned out stale into a 409, after which the device is read afresh.
package devicewriter

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Client is the part of the Flightctl client the writer uses.
type Client interface {
	GetDevice(ctx context.Context, name string) (*flightctl.Device, error)
	PatchDeviceMetadata(ctx context.Context, name string, ops []flightctl.PatchOperation) (*flightctl.ObjectMeta, error)
}

// OwnedFunc says whether an application or config entry name belongs to
// vk-flightctl. Entries it rejects are never touched.
type OwnedFunc func(name string) bool

// Change is the desired state of one owned application on one device.
type Change struct {
	// Name is the application name.
	Name string
	// App is the application to write; nil removes it.
	App *flightctl.ApplicationSpec
	// Config is an inline config provider entry (files written outside the
	// application, e.g. ConfigMap volumes), stored under spec.config with
	// the same name; nil removes any such entry.
	Config json.RawMessage
}

// Result tells a waiter how its change landed.
type Result struct {
	// LiveAt is the rendered version the device must report in
	// status.config.renderedVersion for the change to be running. Flightctl
	// renders a changed spec about a second after the write and bumps the
	// device-controller/renderedVersion annotation by one, and a write
	// response still shows the annotation from before that render.
	LiveAt int64
	// Changed is false when the device already had the desired content.
	Changed bool
}

// Stats count what the writer did, for tests and benchmarks.
type Stats struct {
	// Changes is how many changes were queued.
	Changes int64
	// Reads and Writes are device GETs and PUTs.
	Reads  int64
	Writes int64
	// Conflicts is how many writes met a stale resourceVersion.
	Conflicts int64
	// Superseded counts changes replaced by a newer change for the same
	// application before they were written.
	Superseded int64
	// Observed counts write attempts that started from an observed read
	// (Observe) instead of a GET; ObservedStale those of them that met a
	// 409 and read the device again.
	Observed      int64
	ObservedStale int64
}

// ObservedTTL is how long an observed device is trusted as the starting
// point of a write. A copy is only ever a guess at the current version
// (the write's resourceVersion check decides), so the bound is about
// memory: observed copies of devices nobody writes to are dropped.
const ObservedTTL = time.Minute

// known is what the writer knows of a device's version: the newest
// resourceVersion it saw (its own reads and writes, and observed reads)
// and, when an observed read is that newest, the device's JSON as read.
// JSON rather than a decoded Device: it is a third of the memory, and a
// copy no write uses is never decoded.
type known struct {
	rv  int64
	raw json.RawMessage
	at  time.Time
}

// Writer serialises writes per device.
type Writer struct {
	client Client
	owned  OwnedFunc
	log    logr.Logger
	// backoff bounds retries after a 409 on a stale resourceVersion.
	backoff wait.Backoff

	now func() time.Time

	mu      sync.Mutex
	devices map[string]*deviceQueue
	stats   Stats
	// known is kept per device for ObservedTTL; swept from Observe.
	known     map[string]known
	lastSweep time.Time
}

type pending struct {
	change Change
	done   chan outcome
}

type outcome struct {
	res Result
	err error
}

type deviceQueue struct {
	// queued maps application name to the newest desired change; older
	// waiters for the same name get the newer outcome.
	queued  map[string][]*pending
	order   []string
	running bool
}

// New returns a Writer.
func New(c Client, owned OwnedFunc, log logr.Logger) *Writer {
	return &Writer{
		client:  c,
		owned:   owned,
		log:     log,
		devices: map[string]*deviceQueue{},
		known:   map[string]known{},
		now:     time.Now,
		backoff: wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 8, Cap: 2 * time.Second},
	}
}

// Stats returns a snapshot of the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Observe offers a device read elsewhere, its JSON as listed, as the
// starting point of the next write to it. It is kept only when it is newer
// than every version of the device the writer has seen; the writer keeps
// raw, which the caller must not change. Reads taken while a write was in
// flight are thus ignored once that write returns a newer version.
func (w *Writer) Observe(name, resourceVersion string, raw json.RawMessage) {
	if name == "" || raw == nil {
		return
	}
	rv, err := strconv.ParseInt(resourceVersion, 10, 64)
	if err != nil {
		return
	}
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep(now)
	if k, ok := w.known[name]; ok && rv <= k.rv {
		return
	}
	w.known[name] = known{rv: rv, raw: raw, at: now}
}

// sweep drops what is known of devices not seen for ObservedTTL, at most
// once per ObservedTTL/4. Called with mu held.
func (w *Writer) sweep(now time.Time) {
	if now.Sub(w.lastSweep) < ObservedTTL/4 {
		return
	}
	w.lastSweep = now
	for name, k := range w.known {
		if now.Sub(k.at) >= ObservedTTL {
			delete(w.known, name)
		}
	}
}

// takeObserved returns the observed copy of a device, decoded, if one is
// fresh, and forgets it: after the write it is stale whatever the outcome.
func (w *Writer) takeObserved(device string) *flightctl.Device {
	w.mu.Lock()
	k, ok := w.known[device]
	if !ok || k.raw == nil || w.now().Sub(k.at) >= ObservedTTL {
		w.mu.Unlock()
		return nil
	}
	raw := k.raw
	k.raw = nil
	w.known[device] = k
	w.mu.Unlock()
	var d flightctl.Device
	if err := json.Unmarshal(raw, &d); err != nil || d.Metadata.Name != device {
		// Not a device after all: a GET will say what it is.
		return nil
	}
	return &d
}

// saw records a version of a device the writer read or wrote itself:
// observed reads at or below it are older than what the writer knows.
func (w *Writer) saw(m *flightctl.ObjectMeta) {
	if m == nil {
		return
	}
	rv, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if k, ok := w.known[m.Name]; ok && k.rv >= rv {
		return
	}
	w.known[m.Name] = known{rv: rv, at: w.now()}
}

// Apply queues a change for a device and waits until it is written (or
// failed, or ctx ends). Changes to one device that arrive while a write is
// in flight are written together by the next write.
func (w *Writer) Apply(ctx context.Context, device string, ch Change) (Result, error) {
	if !w.owned(ch.Name) {
		return Result{}, fmt.Errorf("refusing to write application %q on device %s: vk-flightctl only manages applications it owns", ch.Name, device)
	}
	p := &pending{change: ch, done: make(chan outcome, 1)}
	w.mu.Lock()
	q := w.devices[device]
	if q == nil {
		q = &deviceQueue{queued: map[string][]*pending{}}
		w.devices[device] = q
	}
	w.stats.Changes++
	if _, ok := q.queued[ch.Name]; !ok {
		q.order = append(q.order, ch.Name)
	} else {
		w.stats.Superseded++
	}
	q.queued[ch.Name] = append(q.queued[ch.Name], p)
	if !q.running {
		q.running = true
		go w.drain(device, q)
	}
	w.mu.Unlock()

	select {
	case o := <-p.done:
		return o.res, o.err
	case <-ctx.Done():
		// The change stays queued: a later write still applies it, which
		// is what the caller wants since the change is the desired state.
		return Result{}, ctx.Err()
	}
}

// drain writes batches for one device until its queue is empty.
func (w *Writer) drain(device string, q *deviceQueue) {
	for {
		w.mu.Lock()
		if len(q.order) == 0 {
			q.running = false
			delete(w.devices, device)
			w.mu.Unlock()
			return
		}
		batch := make([]*pending, 0, len(q.order))
		waiters := map[string][]*pending{}
		for _, name := range q.order {
			ps := q.queued[name]
			batch = append(batch, ps[len(ps)-1])
			waiters[name] = ps
		}
		q.order = nil
		q.queued = map[string][]*pending{}
		w.mu.Unlock()

		outcomes := w.writeIsolating(device, batch)
		for name, ps := range waiters {
			for _, p := range ps {
				p.done <- outcomes[name]
			}
		}
	}
}

// writeIsolating writes a batch and returns each change's outcome by
// application name. When the server refuses the batch as invalid, each
// change is written alone, so one pod Flightctl refuses cannot keep the
// other pods of its device from running.
func (w *Writer) writeIsolating(device string, batch []*pending) map[string]outcome {
	out := make(map[string]outcome, len(batch))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	res, err := w.write(ctx, device, batch)
	cancel()
	if flightctl.IsInvalid(err) && len(batch) > 1 {
		w.log.V(1).Info("Flightctl refused a batched write; writing its changes one by one", "device", device, "changes", len(batch))
		for _, p := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			r, e := w.write(ctx, device, []*pending{p})
			cancel()
			out[p.change.Name] = outcome{res: r, err: e}
		}
		return out
	}
	for _, p := range batch {
		out[p.change.Name] = outcome{res: res, err: err}
	}
	return out
}

// write applies a batch with read-modify-write, retrying on conflict. An
// attempt starts from the observed copy of the device when there is a
// fresh one, else from a GET.
func (w *Writer) write(ctx context.Context, device string, batch []*pending) (Result, error) {
	var res Result
	attempt := 0
	err := wait.ExponentialBackoffWithContext(ctx, w.backoff, func(ctx context.Context) (bool, error) {
		attempt++
		d := w.takeObserved(device)
		if d != nil {
			w.count(func(s *Stats) { s.Observed++ })
		}
		for {
			observed := d != nil
			if !observed {
				var done bool
				var err error
				if d, done, err = w.read(ctx, device, batch); d == nil {
					return done, err
				}
			}
			if !apply(d, batch, w.owned) {
				if observed {
					// The copy may predate a change that undid ours (a
					// person removing the application): only a fresh read
					// can say there is nothing to write.
					d = nil
					continue
				}
				res = Result{LiveAt: renderedVersion(&d.Metadata)}
				return true, nil
			}
			w.count(func(s *Stats) { s.Writes++ })
			out, err := w.send(ctx, d)
			switch {
			case err == nil:
				w.saw(out)
				res = Result{LiveAt: renderedVersion(out) + 1, Changed: true}
				return true, nil
			case flightctl.IsOwnedByFleet(err):
				return false, fmt.Errorf("device %s is owned by a Flightctl fleet; per-device workloads need devices that no fleet owns: %w", device, err)
			case observed && (flightctl.IsStale(err) || flightctl.IsConflict(err) || flightctl.IsNotFound(err)):
				// The copy was older than the device: read it now, no
				// need to back off from a writer that may not exist. A
				// device deleted since the copy was taken is read too, so
				// that the write ends as a write to a missing device does.
				w.count(func(s *Stats) { s.Conflicts++; s.ObservedStale++ })
				d = nil
				continue
			case flightctl.IsConflict(err) || flightctl.IsStale(err) || flightctl.IsNotFound(err):
				// Changed or deleted since the GET: the next attempt reads
				// it again (a missing device then ends the write as such).
				w.count(func(s *Stats) { s.Conflicts++ })
				w.log.V(1).Info("Device changed under us; re-reading", "device", device, "attempt", attempt)
				return false, nil
			default:
				return false, fmt.Errorf("writing device %s: %w", device, err)
			}
		}
	})
	if wait.Interrupted(err) {
		err = fmt.Errorf("writing device %s: still conflicting after %d attempts", device, attempt)
	}
	return res, err
}

// send writes d's spec as a JSON patch guarded by the resourceVersion of
// the read it started from, a GET or an observed copy (a failed guard is a
// 400 that IsStale reports). Never a PUT: PUT is an upsert even with a
// resourceVersion (Flightctl v1.2 answers 201 for a missing name), so a
// device deleted between the read and the write would be created again
// with our applications, where a patch of a missing device is a 404. The
// guard also makes the patch safe for the client to repeat.
func (w *Writer) send(ctx context.Context, d *flightctl.Device) (*flightctl.ObjectMeta, error) {
	return w.client.PatchDeviceMetadata(ctx, d.Metadata.Name, []flightctl.PatchOperation{
		{Op: "test", Path: "/metadata/resourceVersion", Value: d.Metadata.ResourceVersion},
		// add, not replace: it also holds when the device has no spec.
		{Op: "add", Path: "/spec", Value: d.Spec},
	})
}

// read GETs the device for a write. Without a device it says whether the
// write is done anyway (removals from a deleted device) or failed.
func (w *Writer) read(ctx context.Context, device string, batch []*pending) (*flightctl.Device, bool, error) {
	w.count(func(s *Stats) { s.Reads++ })
	d, err := w.client.GetDevice(ctx, device)
	if flightctl.IsNotFound(err) && onlyRemovals(batch) {
		// A device deleted from Flightctl runs nothing: removing an
		// application from it is done, not an error to retry forever.
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading device %s: %w", device, err)
	}
	w.saw(&d.Metadata)
	return d, false, nil
}

func onlyRemovals(batch []*pending) bool {
	for _, p := range batch {
		if p.change.App != nil || p.change.Config != nil {
			return false
		}
	}
	return true
}

func (w *Writer) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

func renderedVersion(m *flightctl.ObjectMeta) int64 {
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m.Annotations[flightctl.AnnotationRenderedVersion], 10, 64)
	return v
}

// apply edits d's spec in place and reports whether anything changed.
func apply(d *flightctl.Device, batch []*pending, owned OwnedFunc) bool {
	if d.Spec == nil {
		d.Spec = &flightctl.DeviceSpec{}
	}
	spec := d.Spec
	changed := false
	for _, p := range batch {
		ch := p.change
		if !owned(ch.Name) {
			continue
		}
		if applyApp(spec, ch) {
			changed = true
		}
		if applyConfig(spec, ch) {
			changed = true
		}
	}
	return changed
}

func applyApp(spec *flightctl.DeviceSpec, ch Change) bool {
	idx := -1
	for i := range spec.Applications {
		if spec.Applications[i].Name == ch.Name {
			idx = i
			break
		}
	}
	switch {
	case ch.App == nil && idx < 0:
		return false
	case ch.App == nil:
		spec.Applications = append(spec.Applications[:idx], spec.Applications[idx+1:]...)
		return true
	case idx < 0:
		spec.Applications = append(spec.Applications, *ch.App)
		return true
	default:
		if sameJSON(spec.Applications[idx], *ch.App) {
			return false
		}
		spec.Applications[idx] = *ch.App
		return true
	}
}

// applyConfig edits spec.config, a list of config providers kept as raw
// JSON so entries vk-flightctl does not own survive untouched.
func applyConfig(spec *flightctl.DeviceSpec, ch Change) bool {
	var entries []json.RawMessage
	if raw, ok := spec.Extra["config"]; ok {
		if err := json.Unmarshal(raw, &entries); err != nil {
			// Unknown shape: leave it alone rather than risk clobbering it.
			return false
		}
	}
	idx := -1
	for i, e := range entries {
		var named struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(e, &named) == nil && named.Name == ch.Name {
			idx = i
			break
		}
	}
	switch {
	case ch.Config == nil && idx < 0:
		return false
	case ch.Config == nil:
		entries = append(entries[:idx], entries[idx+1:]...)
	case idx < 0:
		entries = append(entries, ch.Config)
	default:
		if sameJSON(entries[idx], ch.Config) {
			return false
		}
		entries[idx] = ch.Config
	}
	if spec.Extra == nil {
		spec.Extra = map[string]json.RawMessage{}
	}
	if len(entries) == 0 {
		delete(spec.Extra, "config")
		return true
	}
	raw, _ := json.Marshal(entries)
	spec.Extra["config"] = raw
	return true
}

// sameJSON compares two values by their canonical JSON.
func sameJSON(a, b any) bool {
	ja, errA := canonical(a)
	jb, errB := canonical(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

func canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic) // map keys are sorted by encoding/json
}
