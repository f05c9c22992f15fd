package placement

import (
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// DefaultMaxPods is the pod limit of a Device whose MaxPods is zero. It is
// the FleetBinding's spec.maxPods default and the Kubernetes default for a
// node, so a device the caller knows nothing more about behaves like one
// node would.
const DefaultMaxPods = 110

// Device is what placement needs to know about one Flightctl device. The
// caller builds it from the Flightctl device and the FleetBinding (reserve,
// default capacity, maxPods); placement never reads Flightctl itself.
type Device struct {
	// Name is the Flightctl device name, which flightctl.io/device-id
	// targets. Names are unique within one call.
	Name string
	// Labels are the Flightctl device labels, which
	// flightctl.io/device-selector is matched against.
	Labels map[string]string
	// Online is false while the device does not report to Flightctl. An
	// offline device takes no new pods but still counts for capacity,
	// because the pods bound to it stay on the node until the reconnect
	// timeout removes them.
	Online bool
	// Unavailable says why the device runs no workloads any more (it is
	// being decommissioned), "" if it does. Such a device takes no pods
	// and counts for no capacity.
	Unavailable string
	// OwnedBy names the Flightctl fleet that owns the device, "" if none.
	// Flightctl refuses per-device spec changes on owned devices, so they
	// never take pods.
	OwnedBy string
	// Capacity is the device's cpu and memory. A resource missing here
	// falls back to Allocatable.
	Capacity corev1.ResourceList
	// Allocatable is Capacity minus the reserve for the OS and agent; it
	// is what pods may request. A resource missing here falls back to
	// Capacity, as a node without allocatable does.
	Allocatable corev1.ResourceList
	// MaxPods is the most pods the device takes; zero means DefaultMaxPods.
	MaxPods int
}

// usable reports whether the device may ever take pods: ownership and
// decommissioning rule a device out, being offline is temporary.
func (d Device) usable() bool { return d.OwnedBy == "" && d.Unavailable == "" }

// allocatable is the device's cpu and memory room when empty.
func (d Device) allocatable() amount {
	return amount{
		cpu: milliCPU(*pick(d.Allocatable, d.Capacity, corev1.ResourceCPU)),
		mem: bytesOf(*pick(d.Allocatable, d.Capacity, corev1.ResourceMemory)),
	}
}

// capacity is the device's cpu and memory before the reserve.
func (d Device) capacity() amount {
	return amount{
		cpu: milliCPU(*pick(d.Capacity, d.Allocatable, corev1.ResourceCPU)),
		mem: bytesOf(*pick(d.Capacity, d.Allocatable, corev1.ResourceMemory)),
	}
}

// maxPods applies DefaultMaxPods.
func (d Device) maxPods() int {
	if d.MaxPods <= 0 {
		return DefaultMaxPods
	}
	return d.MaxPods
}

// pick returns name from first, else from second, else zero.
func pick(first, second corev1.ResourceList, name corev1.ResourceName) *resource.Quantity {
	if q, ok := first[name]; ok {
		return &q
	}
	if q, ok := second[name]; ok {
		return &q
	}
	return &resource.Quantity{}
}

// Summary is the fleet as the virtual node and FleetBinding status show it.
type Summary struct {
	// Capacity is the cpu and memory of every device no fleet owns,
	// online or not.
	Capacity corev1.ResourceList
	// Allocatable is the allocatable cpu and memory of the same devices.
	// Offline devices are included on purpose: the pods bound to them stay
	// on the node (Unknown) until the reconnect timeout, and the node must
	// keep room for them, otherwise the node would look overcommitted and
	// its allocatable would flap with every short disconnection. A pod the
	// scheduler binds because of an offline device's room waits Pending
	// (Place returns a temporary error) until the device returns.
	//
	// Neither list has "pods": the node's pod capacity is the
	// FleetBinding's spec.maxPods, not a sum over devices.
	Allocatable corev1.ResourceList
	// Total counts every device given; Total = Online + Offline + Owned +
	// Unavailable.
	Total int
	// Online counts devices no fleet owns that report to Flightctl.
	Online int
	// Offline counts devices no fleet owns that do not report
	// (status.devices.disconnected).
	Offline int
	// Owned counts devices owned by a Flightctl fleet, online or not; they
	// never take pods.
	Owned int
	// Unavailable counts devices no fleet owns that run no workloads any
	// more (decommissioning); they take no pods and add no capacity.
	Unavailable int
}

// Summarize adds up the devices for the node and FleetBinding status.
func Summarize(devices []Device) Summary {
	var s Summary
	var capSum, allocSum amount
	for _, d := range devices {
		s.Total++
		switch {
		case d.OwnedBy != "":
			s.Owned++
			continue
		case !d.usable():
			s.Unavailable++
			continue
		case d.Online:
			s.Online++
		default:
			s.Offline++
		}
		capSum = capSum.plus(d.capacity())
		allocSum = allocSum.plus(d.allocatable())
	}
	s.Capacity = capSum.resourceList()
	s.Allocatable = allocSum.resourceList()
	return s
}

// sortedByName returns devices in name order (a sorted copy unless they
// already are), so every result and message is deterministic whatever
// order the caller listed them in. Callers must not change the result.
func sortedByName(devices []Device) []Device {
	byName := func(a, b Device) int { return strings.Compare(a.Name, b.Name) }
	if slices.IsSortedFunc(devices, byName) {
		// The inventory hands devices over in name order already; no
		// copy is needed then, as nothing here changes the slice.
		return devices
	}
	out := append([]Device(nil), devices...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// amount is cpu in millicores and memory in bytes. Integers keep the
// ledger's arithmetic exact and cheap under its lock.
type amount struct {
	cpu, mem int64
}

// amountOf reads cpu and memory from a request or allocatable list,
// rounding up like the scheduler does.
func amountOf(rl corev1.ResourceList) amount {
	return amount{cpu: milliCPU(*rl.Cpu()), mem: bytesOf(*rl.Memory())}
}

// maxAmount bounds each resource of one request or one device: 2^52
// millicores (4.5e12 CPUs) and 2^52 bytes (4 PiB) exceed any device, so
// a larger request still fits nowhere. Quantity.MilliValue and Value do
// not saturate (a request of "1e16" CPUs reads as 0 millicores, one of
// "1e19" bytes as 0), and int64 sums of several huge requests would wrap;
// the bound keeps every ledger sum of up to 2048 pods exact.
const maxAmount = int64(1) << 52

var (
	maxCPUQuantity = *resource.NewMilliQuantity(maxAmount, resource.DecimalSI)
	maxMemQuantity = *resource.NewQuantity(maxAmount, resource.BinarySI)
)

// milliCPU is q in millicores, rounded up, within [0, maxAmount]. The API
// server refuses negative requests; in pods built in code they count as
// nothing.
func milliCPU(q resource.Quantity) int64 {
	switch {
	case q.Sign() <= 0:
		return 0
	case q.Cmp(maxCPUQuantity) >= 0:
		return maxAmount
	}
	return q.MilliValue()
}

// bytesOf is q in bytes, rounded up, within [0, maxAmount].
func bytesOf(q resource.Quantity) int64 {
	switch {
	case q.Sign() <= 0:
		return 0
	case q.Cmp(maxMemQuantity) >= 0:
		return maxAmount
	}
	return q.Value()
}

func (a amount) plus(b amount) amount  { return amount{cpu: a.cpu + b.cpu, mem: a.mem + b.mem} }
func (a amount) minus(b amount) amount { return amount{cpu: a.cpu - b.cpu, mem: a.mem - b.mem} }

// covers reports whether a has room for need. A resource the pod does not
// request never blocks it, even on an overcommitted device, as in the
// scheduler's NodeResourcesFit.
func (a amount) covers(need amount) bool {
	return (need.cpu <= 0 || need.cpu <= a.cpu) && (need.mem <= 0 || need.mem <= a.mem)
}

// floor clamps negative room (an overcommitted device after Rebuild) to 0.
func (a amount) floor() amount {
	return amount{cpu: max(a.cpu, 0), mem: max(a.mem, 0)}
}

// resourceList renders cpu as a decimal and memory as a binary quantity,
// the forms kubectl shows ("7500m", "15Gi").
func (a amount) resourceList() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(a.cpu, resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(a.mem, resource.BinarySI),
	}
}

// String is "cpu=7500m, memory=15Gi", the form messages use.
func (a amount) String() string {
	return "cpu=" + resource.NewMilliQuantity(a.cpu, resource.DecimalSI).String() +
		", memory=" + resource.NewQuantity(a.mem, resource.BinarySI).String()
}
