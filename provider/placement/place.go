package placement

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Decision is where a pod goes.
type Decision struct {
	// Device is the chosen device's name, for the flightctl.io/device
	// annotation and label.
	Device string
	// PodKey is the pod's key in the Ledger.
	PodKey string
	// Requests is what the pod holds on the device.
	Requests corev1.ResourceList
	// Existing is true when the pod already held the device (in the ledger
	// or by its flightctl.io/device annotation) and nothing new was chosen.
	Existing bool
}

// ownedHint explains why owned devices are skipped, once per message.
const ownedHint = "per-device workloads need devices that no fleet owns"

// Place chooses the device for pod among devices and reserves the pod's
// requests on it in ledger.
//
// A pod that already holds a device, in the ledger or by the
// flightctl.io/device annotation (the durable record, adopted into the
// ledger without a room check), keeps it: a pod is placed once, and its
// targeting is not re-read, so editing annotations never moves a running
// pod. Otherwise the candidates are the devices matching the pod's
// targeting (see TargetingFor) that no Flightctl fleet owns and that are
// online; among those with room, Place picks the one whose busier resource
// (cpu or memory, as a fraction of allocatable) is lowest after adding the
// pod, then the one with fewer pods, then the first by name. Spreading
// keeps room for large pods on every device less well than packing would,
// but a fleet of edge devices loses fewer pods to one failure this way.
//
// Choosing and reserving happen under the ledger's lock, with the same
// room check as Ledger.Reserve, so concurrent placements neither overcommit
// a device nor spread by stale figures, and need no retry.
// Devices without a name are ignored. Errors are *NoFitError; see the
// package doc for what Permanent means for the caller.
func Place(pod *corev1.Pod, devices []Device, ledger *Ledger) (Decision, error) {
	if pod == nil || ledger == nil {
		return Decision{}, errors.New("placement: Place needs a pod and a ledger")
	}
	key := PodKey(pod)
	req := PodRequests(pod)
	if a, ok := ledger.Lookup(key); ok {
		return existing(a), nil
	}
	if dev := pod.Annotations[v1alpha1.AnnotationDevice]; dev != "" {
		return existing(ledger.adopt(key, dev, req)), nil
	}

	t, err := TargetingFor(pod)
	if err != nil {
		return Decision{}, err
	}
	// One pass and two slices: this runs for every pod placed, over every
	// device of the fleet, so the lists the error messages need (every
	// named device, the matching ones) are built only when there is an
	// error to explain.
	all := sortedByName(devices)
	usable := make([]Device, 0, len(all))
	matched := 0
	for _, d := range all {
		if d.Name == "" || !t.Matches(d) {
			continue
		}
		matched++
		if d.usable() {
			usable = append(usable, d)
		}
	}
	online := make([]Device, 0, len(usable))
	for _, d := range usable {
		if d.Online {
			online = append(online, d)
		}
	}
	if matched == 0 {
		return Decision{}, noMatch(t, named(all))
	}
	if len(usable) == 0 {
		all = named(all)
		return Decision{}, ownedOnly(t, all, slices.DeleteFunc(slices.Clone(all), func(d Device) bool { return !t.Matches(d) }))
	}

	a, held, used, ok := ledger.reserveBest(key, online, usable, req)
	switch {
	case held:
		// The same pod was placed concurrently; one placement is the
		// answer for both calls.
		return existing(a), nil
	case ok:
		return Decision{Device: a.Device, PodKey: key, Requests: req}, nil
	}
	return Decision{}, noRoom(t, named(all), usable, used, req)
}

// named drops the devices without a name, which placement ignores.
func named(devices []Device) []Device {
	return slices.DeleteFunc(slices.Clone(devices), func(d Device) bool { return d.Name == "" })
}

func existing(a Assignment) Decision {
	return Decision{Device: a.Device, PodKey: a.PodKey, Requests: a.Requests, Existing: true}
}

// best returns the device with room for need that spreads best: the
// lowest busier-resource fraction after adding need, then the fewest
// pods, then the first by name; ok is false when none has room. A linear
// scan, not a sort: only the winner is used, and this runs under the
// ledger's lock for every pod placed.
func best(devices []Device, used []usage, need amount) (winner Device, ok bool) {
	var bestScore float64
	bestPods := 0
	for i, d := range devices {
		if !fits(d, used[i], need) {
			continue
		}
		alloc := d.allocatable()
		after := used[i].amount.plus(need)
		score := max(fraction(after.cpu, alloc.cpu), fraction(after.mem, alloc.mem))
		pods := used[i].pods
		if !ok || score < bestScore || (score == bestScore && (pods < bestPods || (pods == bestPods && d.Name < winner.Name))) {
			winner, bestScore, bestPods, ok = d, score, pods, true
		}
	}
	return winner, ok
}

// fraction is used/total; a resource the device lacks is fully used as
// soon as anything asks for it.
func fraction(used, total int64) float64 {
	if total <= 0 {
		if used <= 0 {
			return 0
		}
		return math.Inf(1)
	}
	return float64(used) / float64(total)
}

// state is how a device is listed in a message.
func state(d Device, hinted *bool) string {
	switch {
	case d.OwnedBy == "" && d.Unavailable != "":
		return d.Unavailable
	case !d.usable():
		s := "owned by Flightctl fleet " + d.OwnedBy
		if !*hinted {
			*hinted = true
			s += " — " + ownedHint
		}
		return s
	case d.Online:
		return "online"
	default:
		return "offline"
	}
}

// basicVerdicts gives every device the reason that needs no ledger:
// mismatch, ownership, connectivity. Online usable devices get none.
func basicVerdicts(t Targeting, all []Device) []DeviceVerdict {
	var out []DeviceVerdict
	for _, d := range all {
		switch {
		case !t.Matches(d):
			out = append(out, DeviceVerdict{Device: d.Name, Reason: ReasonNoMatchingDevice, Message: "does not match " + t.String()})
		case d.OwnedBy == "" && d.Unavailable != "":
			out = append(out, DeviceVerdict{Device: d.Name, Reason: ReasonDeviceUnavailable, Message: d.Unavailable})
		case !d.usable():
			out = append(out, DeviceVerdict{Device: d.Name, Reason: ReasonDeviceOwnedByFleet, Message: "owned by Flightctl fleet " + d.OwnedBy})
		case !d.Online:
			out = append(out, DeviceVerdict{Device: d.Name, Reason: ReasonDeviceOffline, Message: "offline"})
		}
	}
	return out
}

// noMatch: the targeting names nothing that exists. Permanent, because
// only enrolling or relabelling a device can change that.
func noMatch(t Targeting, all []Device) *NoFitError {
	msg := "No device matches: asked " + t.String()
	if len(all) == 0 {
		msg += "; the fleet has no devices"
	} else {
		hinted := false
		items := make([]string, len(all))
		for i, d := range all {
			items[i] = fmt.Sprintf("%s (%s)", d.Name, state(d, &hinted))
		}
		msg += "; devices: " + listNames(items)
	}
	return &NoFitError{Reason: ReasonNoMatchingDevice, Message: msg, Devices: basicVerdicts(t, all), permanent: true}
}

// ownedOnly: every matching device belongs to a Flightctl fleet.
func ownedOnly(t Targeting, all, matching []Device) *NoFitError {
	if !slices.ContainsFunc(matching, func(d Device) bool { return d.OwnedBy != "" }) {
		return unavailableOnly(t, all, matching)
	}
	items := make([]string, len(matching))
	for i, d := range matching {
		items[i] = fmt.Sprintf("%s (fleet %s)", d.Name, d.OwnedBy)
	}
	msg := fmt.Sprintf("Device owned by a Flightctl fleet: asked %s; matching devices: %s; %s: remove the device from its fleet or target another device",
		t.String(), listNames(items), ownedHint)
	return &NoFitError{Reason: ReasonDeviceOwnedByFleet, Message: msg, Devices: basicVerdicts(t, all), permanent: true}
}

// noRoom explains why no usable matching device took the pod, from the
// usage (parallel to usable) read under the same lock that refused it.
func noRoom(t Targeting, all, usable []Device, used []usage, req corev1.ResourceList) *NoFitError {
	need := amountOf(req)
	verdicts := basicVerdicts(t, all)
	var (
		total            amount
		fitsEmptyOnline  []string // would fit if placed pods left
		fitsEmptyOffline []string // would fit once back, if empty
		fitsNowOffline   []string // would fit once back, as it is
		atPodLimit       []string
		tooSmall         []string
		best             = -1
		bestRatio        float64
		bestFree         amount
	)
	for i, d := range usable {
		alloc := d.allocatable()
		total = total.plus(alloc)
		free := alloc.minus(used[i].amount).floor()
		empty := alloc.covers(need)
		v, bad := verdict(d, used[i], need)
		switch {
		case !empty:
			tooSmall = append(tooSmall, fmt.Sprintf("%s (allocatable %s)", d.Name, alloc))
		case d.Online:
			fitsEmptyOnline = append(fitsEmptyOnline, d.Name)
			if v.Reason == ReasonTooManyPods {
				atPodLimit = append(atPodLimit, d.Name)
			}
		default:
			fitsEmptyOffline = append(fitsEmptyOffline, d.Name)
			if !bad {
				fitsNowOffline = append(fitsNowOffline, d.Name)
			}
		}
		if d.Online && bad {
			verdicts = append(verdicts, v)
		}
		// "Largest free" is about now, so an online device is named
		// whenever there is one; offline ones are listed apart.
		r := closeness(free, need)
		switch {
		case best < 0,
			d.Online && !usable[best].Online,
			d.Online == usable[best].Online && (r > bestRatio || (r == bestRatio && greater(free, bestFree))):
			best, bestRatio, bestFree = i, r, free
		}
	}
	sort.SliceStable(verdicts, func(i, j int) bool { return verdicts[i].Device < verdicts[j].Device })

	var owned []string
	for _, d := range all {
		if !d.usable() && t.Matches(d) {
			owned = append(owned, fmt.Sprintf("%s (owned by Flightctl fleet %s)", d.Name, d.OwnedBy))
		}
	}
	notUsable := ""
	if len(owned) > 0 {
		notUsable = "; not usable: " + listNames(owned) + ", as " + ownedHint
	}

	if len(fitsEmptyOnline) == 0 && len(fitsEmptyOffline) > 0 {
		msg := fmt.Sprintf("Device offline: asked %s; the devices that could hold the pod are offline: %s; it stays Pending until one reconnects",
			t.String(), listNames(fitsEmptyOffline))
		if len(tooSmall) > 0 {
			msg += "; too small: " + listNames(tooSmall)
		}
		return &NoFitError{Reason: ReasonDeviceOffline, Message: msg + notUsable, Devices: verdicts}
	}

	scope := "fleet-wide allocatable"
	switch {
	case t.DeviceID != "" && len(usable) == 1:
		scope = "allocatable of " + usable[0].Name
	case !t.IsZero():
		scope = fmt.Sprintf("allocatable of the %d devices matching %s", len(usable), t.String())
	}
	b := usable[best]
	where := b.Name
	if !b.Online {
		where += ", offline"
	}
	largest := "largest free on one device"
	if len(usable) == 1 {
		largest = "free now"
	}
	msg := fmt.Sprintf("Insufficient resources: requested cpu=%s, memory=%s; available %s (%s); %s: %s (%s)",
		req.Cpu().String(), req.Memory().String(), total, scope, largest, bestFree, where)

	permanent := len(fitsEmptyOnline) == 0 && len(fitsEmptyOffline) == 0
	if permanent {
		anyDevice, fix := "no device", "lower its requests"
		if !t.IsZero() {
			anyDevice, fix = "no matching device", "lower its requests or target a larger device"
		}
		msg += fmt.Sprintf("; a pod runs on exactly one device and %s has that much allocatable, so it cannot be placed: %s", anyDevice, fix)
	} else {
		msg += fmt.Sprintf("; it fits on %s when placed pods leave room, so it stays Pending until then", listNames(fitsEmptyOnline))
		if len(atPodLimit) > 0 {
			msg += "; at their pod limit: " + listNames(atPodLimit)
		}
		if len(fitsNowOffline) > 0 {
			msg += "; could take it once reconnected: " + listNames(fitsNowOffline)
		}
	}
	return &NoFitError{Reason: ReasonInsufficientResources, Message: msg + notUsable, Devices: verdicts, permanent: permanent}
}

// closeness is how near free comes to covering need: the smallest
// free/need ratio over the resources the pod requests, so the device named
// "largest free" is the one closest to fitting this pod.
func closeness(free, need amount) float64 {
	r := math.Inf(1)
	if need.cpu > 0 {
		r = min(r, float64(free.cpu)/float64(need.cpu))
	}
	if need.mem > 0 {
		r = min(r, float64(free.mem)/float64(need.mem))
	}
	return r
}

// greater breaks closeness ties by more free cpu, then memory.
func greater(a, b amount) bool {
	if a.cpu != b.cpu {
		return a.cpu > b.cpu
	}
	return a.mem > b.mem
}

// unavailableOnly: every matching device is being decommissioned.
// Permanent, like ownership: only another device can take the pod.
func unavailableOnly(t Targeting, all, matching []Device) *NoFitError {
	items := make([]string, len(matching))
	for i, d := range matching {
		items[i] = fmt.Sprintf("%s (%s)", d.Name, d.Unavailable)
	}
	msg := fmt.Sprintf("No device can run workloads: asked %s; matching devices: %s; target another device", t.String(), listNames(items))
	return &NoFitError{Reason: ReasonDeviceUnavailable, Message: msg, Devices: basicVerdicts(t, all), permanent: true}
}
