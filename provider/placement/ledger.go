package placement

import (
	"fmt"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// Assignment is one pod's hold on one device.
type Assignment struct {
	// PodKey is PodKey(pod).
	PodKey string
	// Device is the device name.
	Device string
	// Requests is PodRequests(pod) at placement time; only cpu and memory
	// are accounted. An Assignment the ledger returns has both, as held:
	// millicores and bytes, rounded up.
	Requests corev1.ResourceList
}

// Allocation is what the pods placed on one device hold.
type Allocation struct {
	// Requests has the summed cpu and memory requests; both keys are
	// always present.
	Requests corev1.ResourceList
	// Pods counts the pods placed on the device.
	Pods int
}

// DeviceAllocation is one device's line in a Snapshot.
type DeviceAllocation struct {
	// Device is the device name.
	Device string
	Allocation
}

// Ledger records which pod holds what on which device. It is the only
// shared state of placement and is safe for concurrent use: Reserve checks
// and records under one lock, so concurrent placements cannot together
// exceed a device. The zero value is an empty ledger ready to use.
//
// The ledger lives in memory; the flightctl.io/device annotation on each pod
// is the durable record, and Rebuild restores the ledger from it after a
// restart.
type Ledger struct {
	mu   sync.Mutex
	pods map[string]entry // by pod key
	used map[string]usage // by device name; absent means nothing placed
}

// entry is one pod's hold. It keeps the amount, not the pod's request
// list: a ResourceList is a map of Quantities, ~750 bytes a pod, and a
// ledger holds every pod of its node.
type entry struct {
	device string
	req    amount
}

type usage struct {
	amount
	pods int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{} }

// init makes the maps; the caller holds mu.
func (l *Ledger) init() {
	if l.pods == nil {
		l.pods = map[string]entry{}
		l.used = map[string]usage{}
	}
}

// Reserve records that podKey holds requests on dev if the device has room:
// its allocatable cpu and memory minus what is already held must cover the
// requests, and it must run fewer than its MaxPods. Check and record are
// atomic. Reserve looks only at room; Place is what also checks targeting,
// ownership and connectivity.
//
// Reserving again on the device the pod already holds is a no-op that
// returns nil, so a retried reconcile is harmless. If the pod holds another
// device the error wraps ErrAlreadyReserved. If the device has no room the
// error is a *NoFitError (ReasonInsufficientResources or
// ReasonTooManyPods), permanent when even the empty device is too small.
func (l *Ledger) Reserve(podKey string, dev Device, requests corev1.ResourceList) error {
	if podKey == "" || dev.Name == "" {
		return fmt.Errorf("placement: Reserve needs a pod key and a device name (got %q, %q)", podKey, dev.Name)
	}
	req := amountOf(requests)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if e, ok := l.pods[podKey]; ok {
		if e.device == dev.Name {
			return nil
		}
		return fmt.Errorf("%w: pod %s holds device %s, asked for %s", ErrAlreadyReserved, podKey, e.device, dev.Name)
	}
	u := l.used[dev.Name]
	if v, bad := verdict(dev, u, req); bad {
		return &NoFitError{
			Reason: v.Reason,
			Message: fmt.Sprintf("Device %s cannot take pod %s: requested cpu=%s, memory=%s; %s",
				dev.Name, podKey, requests.Cpu().String(), requests.Memory().String(), v.Message),
			permanent: !dev.allocatable().covers(req),
		}
	}
	l.add(podKey, dev.Name, req)
	return nil
}

// verdict says why dev, holding u, cannot take req; bad is false if it can.
func verdict(dev Device, u usage, req amount) (v DeviceVerdict, bad bool) {
	if fits(dev, u, req) {
		return DeviceVerdict{}, false
	}
	alloc := dev.allocatable()
	free := alloc.minus(u.amount)
	if !free.covers(req) {
		return DeviceVerdict{
			Device:  dev.Name,
			Reason:  ReasonInsufficientResources,
			Message: fmt.Sprintf("free %s of allocatable %s", free.floor(), alloc),
		}, true
	}
	if u.pods >= dev.maxPods() {
		return DeviceVerdict{
			Device:  dev.Name,
			Reason:  ReasonTooManyPods,
			Message: fmt.Sprintf("runs %d pods, its maximum", u.pods),
		}, true
	}
	return DeviceVerdict{}, false
}

// fits is verdict without the message: whether dev, with u already
// held, takes req.
func fits(dev Device, u usage, req amount) bool {
	return dev.allocatable().minus(u.amount).covers(req) && u.pods < dev.maxPods()
}

// add records a hold without checking room; the caller holds mu and has
// made sure podKey holds nothing.
func (l *Ledger) add(podKey, device string, req amount) {
	l.pods[podKey] = entry{device: device, req: req}
	u := l.used[device]
	u.amount = u.amount.plus(req)
	u.pods++
	l.used[device] = u
}

// adopt records a hold that already exists outside the ledger (a
// persisted annotation) without checking room, unless the pod already
// holds something, and returns what the pod holds afterwards.
func (l *Ledger) adopt(podKey, device string, requests corev1.ResourceList) Assignment {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if _, ok := l.pods[podKey]; !ok {
		l.add(podKey, device, amountOf(requests))
	}
	return l.pods[podKey].assignment(podKey)
}

// Release drops the pod's hold and returns it; false if it held nothing.
// Call it when the pod is deleted or finishes, or before moving it.
func (l *Ledger) Release(podKey string) (Assignment, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.pods[podKey]
	if !ok {
		return Assignment{}, false
	}
	delete(l.pods, podKey)
	u := l.used[e.device]
	u.amount = u.amount.minus(e.req)
	u.pods--
	if u.pods <= 0 {
		delete(l.used, e.device)
	} else {
		l.used[e.device] = u
	}
	return e.assignment(podKey), true
}

// Rebuild replaces the whole ledger with the given assignments, typically
// AssignmentFromPod over the node's pods after a restart. Room is not
// checked: these pods already run, and a device that shrank since is
// reported overcommitted rather than having pods silently forgotten. An
// assignment without pod key or device is skipped; a repeated pod key
// keeps its last assignment.
func (l *Ledger) Rebuild(assignments []Assignment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods, l.used = nil, nil
	l.init()
	last := map[string]Assignment{}
	for _, a := range assignments {
		if a.PodKey != "" && a.Device != "" {
			last[a.PodKey] = a
		}
	}
	for key, a := range last {
		l.add(key, a.Device, amountOf(a.Requests))
	}
}

// Lookup returns the pod's hold; false if it holds nothing.
func (l *Ledger) Lookup(podKey string) (Assignment, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.pods[podKey]
	if !ok {
		return Assignment{}, false
	}
	return e.assignment(podKey), true
}

// Allocated returns what the pods on the device hold (zero if none).
func (l *Ledger) Allocated(device string) Allocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used[device].allocation()
}

// Snapshot returns every device that holds at least one pod, in name
// order, for status and metrics.
func (l *Ledger) Snapshot() []DeviceAllocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]DeviceAllocation, 0, len(l.used))
	for name, u := range l.used {
		out = append(out, DeviceAllocation{Device: name, Allocation: u.allocation()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// reserveBest is Place's atomic step: under one lock it ranks the online
// candidates against the current holds and reserves the pod on the best
// one with room. held reports that the pod already held a device (a is
// that hold). When no candidate has room, ok is false and used is the
// usage of the usable devices at that same moment, so the explanation
// describes exactly the state that refused the pod.
func (l *Ledger) reserveBest(podKey string, online, usable []Device, requests corev1.ResourceList) (a Assignment, held bool, used []usage, ok bool) {
	need := amountOf(requests)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if e, found := l.pods[podKey]; found {
		return e.assignment(podKey), true, nil, true
	}
	if d, ok := best(online, l.usageOf(online), need); ok {
		l.add(podKey, d.Name, need)
		return l.pods[podKey].assignment(podKey), false, nil, true
	}
	return Assignment{}, false, l.usageOf(usable), false
}

// usageOf lists the devices' usage in order; the caller holds mu.
func (l *Ledger) usageOf(devices []Device) []usage {
	out := make([]usage, len(devices))
	for i, d := range devices {
		out[i] = l.used[d.Name]
	}
	return out
}

func (e entry) assignment(podKey string) Assignment {
	return Assignment{PodKey: podKey, Device: e.device, Requests: e.req.resourceList()}
}

func (u usage) allocation() Allocation {
	return Allocation{Requests: u.amount.resourceList(), Pods: u.pods}
}
