package node

import (
	"context"
	"encoding/json"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// namesPerHotList bounds the metadata.name set of one hot listing, so the
// request line stays a few kilobytes whatever the number of hot devices.
const namesPerHotList = 100

// Poll kinds, the values of vk_flightctl_device_polls_total's kind label.
const (
	pollFull      = "full"
	pollHot       = "hot"
	pollEvents    = "events"
	pollUnhealthy = "unhealthy"
)

// flightctlClient is what a node needs from Flightctl.
type flightctlClient interface {
	devicewriter.Client
	ForEachListedDevice(ctx context.Context, opts flightctl.ListOptions, digest flightctl.AppDigestFunc, fn func(*flightctl.ListedDevice) error) error
	ForEachListedDeviceFull(ctx context.Context, opts flightctl.ListOptions, digest flightctl.AppDigestFunc, full func(string) bool, fn func(*flightctl.ListedDevice, json.RawMessage) error) error
	eventLister
}

// cachedDevice is one device as last read.
type cachedDevice struct {
	dev inventory.Device
	// settled: the device reported nothing in progress (see settled);
	// an unsettled device is read by name at every poll.
	settled bool
}

// pollTiming is how often each kind of read runs.
type pollTiming struct {
	// resync is the full listing's period.
	resync time.Duration
	// unhealthy is the period of the listing of devices whose summaries
	// are not healthy: the backstop for an event the cursor missed.
	unhealthy time.Duration
	// slack is half a status poll interval.
	slack time.Duration
}

// timingFor derives the periods from the binding's settings: the
// unhealthy listing runs four times per resync, never more often than
// the status poll.
func timingFor(s settings.Effective) pollTiming {
	interval := s.StatusPollInterval
	if interval <= 0 {
		interval = settings.DefaultStatusPollInterval
	}
	resync := s.FullResyncInterval
	if resync <= 0 {
		resync = settings.DefaultFullResyncInterval
	}
	resync = max(resync, interval)
	return pollTiming{resync: resync, unhealthy: min(resync, max(resync/4, interval)), slack: interval / 2}
}

// poller keeps the binding's devices known at a cost that follows what
// changes: every poll reads by name only the hot devices (a write in
// flight, a pod not settled, a status not settled, a recent event) and
// the device events since its checkpoint; devices with unhealthy
// summaries are listed at a middle period; everything is listed at the
// resync period, at start, after an error and when events may have been
// missed (docs/polling.md). It owns the device cache (touched by poll
// only, which one goroutine calls at a time), and the inventory built from
// it with its lock; everything else reads the inventory through current.
type poller struct {
	flight  flightctlClient
	binding *vkv1.FleetBinding
	invOpts inventory.Options
	now     func() time.Time
	timing  pollTiming
	// claimedElsewhere returns devices older bindings of this manager
	// already use, with the binding's name; this binding leaves them alone.
	claimedElsewhere func() map[string]string
	// kick asks the status loop to poll now (after a write).
	kick chan struct{}
	// marks are devices written to or named by events lately.
	marks *hotMarks
	// observe, when set, is handed each hot device as read, spec in full
	// (the device writer's Observe): the hot devices are the ones being
	// written to, and a write that starts from that read needs no GET of
	// its own. Every read decodes its hot devices in full (the rest lean),
	// whichever kind of read it is: in a burst most devices are hot and
	// the by-name read becomes a full listing.
	observe func(name, resourceVersion string, raw json.RawMessage)

	// Touched by poll only.
	cache         map[string]cachedDevice
	cursor        eventSource
	claimed       map[string]string
	lastFull      time.Time
	lastUnhealthy time.Time
	needFull      bool

	mu    sync.Mutex
	fleet *inventory.Fleet
	// listedFrom is when the last full listing started: writes that
	// finished before it show in fleet (devices read since are newer).
	listedFrom time.Time
	err        error
	// changed are the devices whose entry changed since the status mapper
	// last took them; allChanged stands for every device.
	changed    map[string]bool
	allChanged bool
	// version counts inventory rebuilds and full listings.
	version uint64
}

func newPoller(flight flightctlClient, b *vkv1.FleetBinding, now func() time.Time, claimedElsewhere func() map[string]string, timing pollTiming, marks *hotMarks, events eventSource) *poller {
	if marks == nil {
		marks = newHotMarks(0, now)
	}
	if events == nil {
		events = &eventCursor{events: flight}
	}
	return &poller{
		flight: flight, binding: b, invOpts: inventory.OptionsFor(b), now: now, timing: timing,
		claimedElsewhere: claimedElsewhere, kick: make(chan struct{}, 1), marks: marks,
		cursor: events, allChanged: true,
	}
}

// poll reads what may have changed: everything when a full listing is
// due, else events, unhealthy devices when due, and the hot devices,
// which are podHot (devices whose pods are not settled) plus the marked
// and unsettled ones.
func (p *poller) poll(ctx context.Context, podHot map[string]bool) error {
	started := time.Now()
	if p.fullDue(started) {
		return p.pollFull(ctx, started, p.hotSet(podHot))
	}
	named, err := p.cursor.read(ctx)
	devicePolls.WithLabelValues(p.binding.Spec.Fleet, pollEvents).Inc()
	if err != nil {
		// Events may have been missed: only a full listing is sure.
		return p.pollFull(ctx, started, p.hotSet(podHot))
	}
	for name := range named {
		p.marks.mark(name)
	}
	changed := map[string]bool{}
	read := map[string]bool{}
	hot := p.hotSet(podHot)
	if started.Sub(p.lastUnhealthy) >= p.timing.unhealthy-p.timing.slack {
		if err := p.pollUnhealthy(ctx, changed, read, hot); err != nil {
			return p.failed(err)
		}
		p.lastUnhealthy = started
	}
	names := unread(hot, read)
	hotDevices.WithLabelValues(p.binding.Spec.Fleet).Set(float64(len(names)))
	if 2*len(names) > len(p.cache) {
		// Reading most devices by name costs more than listing them.
		return p.pollFull(ctx, started, hot)
	}
	for len(names) > 0 {
		chunk := names[:min(len(names), namesPerHotList)]
		names = names[len(chunk):]
		if err := p.pollNames(ctx, chunk, changed); err != nil {
			return p.failed(err)
		}
	}
	p.publish(changed, false)
	return nil
}

// list reads the devices opts selects, handing each to fn. With an
// observer, the devices in hot are decoded in full as well and offered to
// it; the others, and every device without one, are decoded lean.
func (p *poller) list(ctx context.Context, opts flightctl.ListOptions, hot map[string]bool, fn func(*flightctl.ListedDevice)) error {
	if p.observe == nil || len(hot) == 0 {
		return p.flight.ForEachListedDevice(ctx, opts, p.invOpts.Digests(), func(d *flightctl.ListedDevice) error {
			fn(d)
			return nil
		})
	}
	return p.flight.ForEachListedDeviceFull(ctx, opts, p.invOpts.Digests(), func(name string) bool { return hot[name] },
		func(d *flightctl.ListedDevice, raw json.RawMessage) error {
			fn(d)
			if raw != nil {
				p.observe(d.Metadata.Name, d.Metadata.ResourceVersion, raw)
			}
			return nil
		})
}

// fullDue says whether this poll must list every device.
func (p *poller) fullDue(now time.Time) bool {
	// A Flightctl Fleet's template write changes all its devices at once.
	// Polls come on the status loop's ticks: half a tick of slack keeps
	// the period at the resync interval rather than one tick more.
	return p.cache == nil || p.needFull || p.binding.Spec.FlightctlFleet != "" ||
		now.Sub(p.lastFull) >= p.timing.resync-p.timing.slack
}

// pollFull lists every device, replacing the cache. The event checkpoint
// is taken first, so an event recorded during the listing is read again
// rather than lost.
func (p *poller) pollFull(ctx context.Context, started time.Time, hot map[string]bool) error {
	devicePolls.WithLabelValues(p.binding.Spec.Fleet, pollFull).Inc()
	primeErr := p.cursor.prime(ctx)
	fresh := make(map[string]cachedDevice, len(p.cache))
	changed := map[string]bool{}
	err := p.list(ctx, nodeapi.ListOptions(p.binding), hot, func(d *flightctl.ListedDevice) {
		p.put(fresh, d, changed)
	})
	if err != nil {
		return p.failed(err)
	}
	for name := range p.cache {
		if _, ok := fresh[name]; !ok {
			changed[name] = true
		}
	}
	first := p.cache == nil
	p.cache = fresh
	p.lastFull, p.lastUnhealthy = started, started
	// Without a checkpoint the next poll lists everything again.
	p.needFull = primeErr != nil
	p.mu.Lock()
	p.listedFrom = started
	p.version++
	p.mu.Unlock()
	p.publish(changed, first)
	return nil
}

// pollUnhealthy lists the devices whose device or applications summary
// is not healthy (two calls: field selectors are ANDed).
func (p *poller) pollUnhealthy(ctx context.Context, changed, read, hot map[string]bool) error {
	devicePolls.WithLabelValues(p.binding.Spec.Fleet, pollUnhealthy).Inc()
	for _, sel := range []string{
		"status.summary.status!=" + flightctl.DeviceSummaryOnline,
		"status.applicationsSummary.status in (" + flightctl.ApplicationsSummaryDegraded + "," + flightctl.ApplicationsSummaryError + ")",
	} {
		opts := nodeapi.ListOptions(p.binding)
		opts.FieldSelector = joinSelectors(opts.FieldSelector, sel)
		err := p.list(ctx, opts, hot, func(d *flightctl.ListedDevice) {
			p.put(p.cache, d, changed)
			read[d.Metadata.Name] = true
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// pollNames reads the named devices, all hot; one the listing no longer
// returns was deleted or left the selector.
func (p *poller) pollNames(ctx context.Context, names []string, changed map[string]bool) error {
	devicePolls.WithLabelValues(p.binding.Spec.Fleet, pollHot).Inc()
	opts := nodeapi.ListOptions(p.binding)
	opts.FieldSelector = joinSelectors(opts.FieldSelector, "metadata.name in ("+strings.Join(names, ",")+")")
	seen := make(map[string]bool, len(names))
	hot := make(map[string]bool, len(names))
	for _, name := range names {
		hot[name] = true
	}
	err := p.list(ctx, opts, hot, func(d *flightctl.ListedDevice) {
		p.put(p.cache, d, changed)
		seen[d.Metadata.Name] = true
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, cached := p.cache[name]; cached && !seen[name] {
			delete(p.cache, name)
			changed[name] = true
		}
	}
	return nil
}

// put converts d into cache, noting it in changed when it differs from
// what was known.
func (p *poller) put(cache map[string]cachedDevice, d *flightctl.ListedDevice, changed map[string]bool) {
	next := cachedDevice{dev: inventory.FromListed(d, p.invOpts), settled: settled(d)}
	name := d.Metadata.Name
	if prev, ok := p.cache[name]; !ok || prev.settled != next.settled || !equality.Semantic.DeepEqual(prev.dev, next.dev) {
		changed[name] = true
	}
	cache[name] = next
}

// settled says the device reports nothing in progress: online, its
// applications healthy (or none), up to date, running the newest rendered
// version. Anything else may change without an event naming the
// application, so the device is read by name until it settles.
func settled(d *flightctl.ListedDevice) bool {
	if d.Status == nil {
		return false
	}
	st := d.Status
	if st.Summary.Status != flightctl.DeviceSummaryOnline || st.Updated.Status != flightctl.DeviceUpdatedUpToDate {
		return false
	}
	if a := st.ApplicationsSummary.Status; a != flightctl.ApplicationsSummaryHealthy && a != flightctl.ApplicationsSummaryNoApplications {
		return false
	}
	return d.Metadata.Annotations[flightctl.AnnotationRenderedVersion] == "" ||
		d.Metadata.Annotations[flightctl.AnnotationRenderedVersion] == st.Config.RenderedVersion
}

// hotSet is the devices to read by name this poll: podHot plus the
// marked and the unsettled ones.
func (p *poller) hotSet(podHot map[string]bool) map[string]bool {
	set := make(map[string]bool, len(podHot))
	for name := range podHot {
		set[name] = true
	}
	for _, name := range p.marks.active() {
		set[name] = true
	}
	for name, c := range p.cache {
		if !c.settled {
			set[name] = true
		}
	}
	return set
}

// unread is hot without the devices already read, sorted.
func unread(hot, read map[string]bool) []string {
	out := make([]string, 0, len(hot))
	for name := range hot {
		if !read[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// failed records a read error; the next poll lists everything.
func (p *poller) failed(err error) error {
	p.needFull = true
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	return err
}

// publish rebuilds the inventory when a device changed (or the devices
// claimed by other bindings did) and hands the changes to the mapper.
func (p *poller) publish(changed map[string]bool, all bool) {
	var claimed map[string]string
	if p.claimedElsewhere != nil {
		claimed = p.claimedElsewhere()
	}
	claimedMoved := !maps.Equal(claimed, p.claimed)
	p.claimed = claimed
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = nil
	if len(changed) == 0 && !all && !claimedMoved && p.fleet != nil {
		return
	}
	devs := make([]inventory.Device, 0, len(p.cache))
	for _, c := range p.cache {
		devs = append(devs, c.dev)
	}
	p.fleet = inventory.Assemble(devs, p.now(), claimed)
	p.version++
	if all || claimedMoved {
		p.allChanged = true
	}
	if p.changed == nil {
		p.changed = map[string]bool{}
	}
	for name := range changed {
		p.changed[name] = true
	}
}

// takeChanged returns the devices changed since the last call (all: every
// device) and forgets them.
func (p *poller) takeChanged() (changed map[string]bool, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed, all = p.changed, p.allChanged
	p.changed, p.allChanged = nil, false
	return changed, all
}

// inventoryVersion moves whenever the inventory was rebuilt or every
// device was listed again.
func (p *poller) inventoryVersion() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.version
}

// current is the latest inventory (empty before the first listing).
func (p *poller) current() *inventory.Fleet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fleet == nil {
		return &inventory.Fleet{}
	}
	return p.fleet
}

// state is the latest inventory (nil before the first listing), when its
// last full listing started, and the last read's error.
func (p *poller) state() (*inventory.Fleet, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fleet, p.listedFrom, p.err
}

// pollNow asks the status loop for an early poll.
func (p *poller) pollNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// deviceNames are the devices this node uses (claimed ones excluded).
func (p *poller) deviceNames() []string {
	f := p.current()
	out := make([]string, 0, len(f.Devices))
	for _, d := range f.Devices {
		out = append(out, d.Name)
	}
	return out
}

// joinSelectors ANDs two field selectors.
func joinSelectors(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}
