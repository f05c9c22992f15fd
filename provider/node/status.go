package node

import (
	"context"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// updatePodStatuses maps every deployed pod's application status to a pod
// status and tells virtual-kubelet about the pods whose status changed.
func (rt *Runtime) updatePodStatuses() {
	fleet := rt.currentFleet()
	now := rt.cfg.opts.Now()
	type change struct {
		st     *podState
		pod    *corev1.Pod
		prev   corev1.PodStatus
		next   corev1.PodStatus
		events []translate.Event
	}
	var changes []change
	rt.mu.Lock()
	for _, st := range rt.pods {
		if st.phase != phaseDeployed {
			continue
		}
		next, ok := rt.statusFor(st, fleet, now)
		if !ok || sameStatus(st.status, next) {
			continue
		}
		prev := st.status
		st.status = next
		changes = append(changes, change{st: st, pod: st.pod, prev: prev, next: next})
	}
	rt.mu.Unlock()
	for _, c := range changes {
		for _, e := range translate.Events(c.prev, c.next) {
			rt.cfg.recorder.Event(c.pod, e.Type, e.Reason, e.Message)
		}
		rt.notify(c.st)
	}
}

// statusFor computes a deployed pod's status; rt.mu is held. The second
// result is false when the pod should keep its current status.
func (rt *Runtime) statusFor(st *podState, fleet *inventory.Fleet, now time.Time) (corev1.PodStatus, bool) {
	// The mapping keeps timestamps from the status last reported.
	pod := st.pod.DeepCopy()
	pod.Status = *st.status.DeepCopy()
	dev, ok := fleet.Get(st.device)
	if d, disconnected := rt.disconnects.get(st.device); disconnected || !ok {
		since := now
		info := translate.DeviceInfo{Name: st.device}
		if disconnected {
			since = d.since
		}
		if ok {
			info = translate.DeviceInfo{Name: dev.Name, IP: dev.IP, SummaryStatus: dev.SummaryStatus, Info: dev.SummaryInfo}
		}
		return translate.DisconnectedStatus(pod, info, since), true
	}
	var app *flightctl.ApplicationStatus
	// Until the device runs the rendered version that carries the newest
	// write, its application status describes the old content.
	// Another pod's write makes the whole device OutOfDate for a moment;
	// that must not touch this pod, so only its own liveAt counts.
	if dev.AppliedVersion >= st.liveAt {
		if a, found := dev.Applications[st.app]; found {
			app = &a
		}
	}
	info := translate.DeviceInfo{Name: dev.Name, IP: dev.IP, Online: dev.Online, SummaryStatus: dev.SummaryStatus, Info: dev.SummaryInfo}
	return translate.PodStatus(pod, app, info, now), true
}

// sameStatus compares statuses ignoring condition timestamps, so a
// recomputed but unchanged status is not written again.
func sameStatus(a, b corev1.PodStatus) bool {
	strip := func(s corev1.PodStatus) corev1.PodStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastTransitionTime = metav1.Time{}
			s.Conditions[i].LastProbeTime = metav1.Time{}
		}
		return s
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// retryPods deploys again, oldest first, the pods that found no room and
// the pods whose last change did not reach Flightctl, and writes again the
// workloads a device's spec lost (a device deleted and registered again,
// an application removed by hand). Room that appears goes to the pod that
// waited longest. It runs only after a successful poll, so placement sees
// the current devices.
func (rt *Runtime) retryPods(ctx context.Context) {
	fleet := rt.currentFleet()
	rt.mu.Lock()
	listedFrom := rt.listedFrom
	var todo []*podState
	var removals []*corev1.Pod
	for _, st := range rt.pods {
		switch {
		case st.removed && st.removalOwed:
			removals = append(removals, st.pod)
		case st.removed || st.phase == phaseFailed:
		case st.phase == phaseWaiting:
			todo = append(todo, st)
		case st.phase == phaseDeployed && !writable(fleet, st.device):
			// Unknown while its device is away; written when it is back.
		case st.owed:
			todo = append(todo, st)
		case st.phase == phaseDeployed && lostApp(fleet, st, listedFrom):
			rt.log.Info("Workload missing from the device's spec; writing it again", "pod", podKey(st.pod.Namespace, st.pod.Name), "device", st.device, "application", st.app)
			todo = append(todo, st)
		}
	}
	rt.mu.Unlock()
	for _, p := range removals {
		if err := rt.DeletePod(ctx, p); err == nil {
			rt.log.Info("Deferred workload removal succeeded", "pod", podKey(p.Namespace, p.Name))
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		a, b := todo[i].pod.CreationTimestamp, todo[j].pod.CreationTimestamp
		if !a.Equal(&b) {
			return a.Before(&b)
		}
		return todo[i].pod.Name < todo[j].pod.Name
	})
	for _, st := range todo {
		rt.mu.Lock()
		deployed := st.phase == phaseDeployed
		rt.mu.Unlock()
		var err error
		if deployed {
			// Not an update: write even when the content hash is the one
			// last written, since that write failed or was lost.
			err = rt.write(ctx, st, false)
		} else {
			err = rt.deploy(ctx, st)
		}
		_ = rt.owe(st, err)
	}
}

// writable reports whether a device is listed and no Flightctl fleet owns
// it, so a write to it can succeed.
func writable(fleet *inventory.Fleet, device string) bool {
	dev, ok := fleet.Get(device)
	return ok && dev.OwnedBy == ""
}

// lostApp reports a deployed pod whose application is missing from its
// device's spec in a listing that started after the pod's last write;
// rt.mu is held.
func lostApp(fleet *inventory.Fleet, st *podState, listedFrom time.Time) bool {
	if st.writtenAt.IsZero() || !st.writtenAt.Before(listedFrom) {
		return false
	}
	dev, ok := fleet.Get(st.device)
	if !ok {
		return false
	}
	return !slices.Contains(dev.SpecApplications, st.app)
}

// orphanSweepEvery spaces out orphan sweeps. Orphans are rare (a pod
// deleted while the manager was down, a failed removal) and deletions
// remove their own workloads, while a sweep compares every pod of every
// node of the manager with every device: at 10,000 pods it was the largest
// share of a poll's CPU.
const orphanSweepEvery = 5 * time.Second

// removeOrphans removes owned applications whose pod is gone, e.g. deleted
// while the manager was down, or rescheduled after a device timeout. A
// device that comes back then does not run a second copy.
func (rt *Runtime) removeOrphans(ctx context.Context) {
	expected := rt.expectedApps()
	if expected == nil {
		return
	}
	if rt.cfg.expectedElsewhere != nil {
		for dev, apps := range rt.cfg.expectedElsewhere() {
			for app := range apps {
				if expected[dev] == nil {
					expected[dev] = map[string]bool{}
				}
				expected[dev][app] = true
			}
		}
	}
	for _, dev := range rt.currentFleet().Devices {
		for _, name := range dev.SpecApplications {
			if !translate.IsOwnedAppName(name) || expected[dev.Name][name] {
				continue
			}
			if _, err := rt.cfg.writer.Apply(ctx, dev.Name, devicewriter.Change{Name: name}); err != nil {
				rt.log.Error(err, "Removing an orphaned workload failed", "device", dev.Name, "application", name)
				continue
			}
			rt.log.Info("Removed orphaned workload", "device", dev.Name, "application", name)
			orphansRemoved.WithLabelValues(rt.cfg.binding.Spec.Fleet).Inc()
		}
	}
}

// expectedApps is every application this node should have, by device: the
// pods in the API server (their recorded device) plus those being deployed
// right now (whose annotation may not have reached the informer yet).
// Nil means "not known yet", and nothing is removed.
func (rt *Runtime) expectedApps() map[string]map[string]bool {
	rt.mu.Lock()
	lister := rt.podLister
	out := map[string]map[string]bool{}
	add := func(dev, app string) {
		if out[dev] == nil {
			out[dev] = map[string]bool{}
		}
		out[dev][app] = true
	}
	// Application names are a hash of the pod's name: reuse the ones
	// already computed rather than hash every pod on every sweep.
	known := make(map[types.UID]string, len(rt.pods))
	for _, st := range rt.pods {
		if st.device == "" {
			continue
		}
		app := st.app
		if app == "" {
			app = translate.AppName(st.pod)
		}
		known[st.pod.UID] = app
		add(st.device, app)
	}
	rt.mu.Unlock()
	if lister == nil {
		return nil
	}
	pods, err := lister.List(everything)
	if err != nil {
		return nil
	}
	for _, p := range pods {
		if dev := p.Annotations[vkv1.AnnotationDevice]; dev != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			app, ok := known[p.UID]
			if !ok {
				app = translate.AppName(p)
			}
			add(dev, app)
		}
	}
	return out
}

// RemoveAllApplications removes every owned application from the binding's
// devices; used when the binding is deleted.
func (rt *Runtime) RemoveAllApplications(ctx context.Context) error {
	devs, err := rt.cfg.flight.ListAllDevices(ctx, listOptions(rt.cfg.binding))
	if err != nil {
		return err
	}
	for i := range devs {
		if devs[i].Metadata.Owner != nil {
			continue
		}
		for _, name := range devicewriter.OwnedApplications(&devs[i], translate.IsOwnedAppName) {
			if _, err := rt.cfg.writer.Apply(ctx, devs[i].Metadata.Name, devicewriter.Change{Name: name}); err != nil {
				return err
			}
		}
	}
	return nil
}
