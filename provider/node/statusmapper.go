package node

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// statusMapper turns the latest device listing into the statuses of the
// node's deployed pods and tells virtual-kubelet about the ones that
// changed. The mapping itself is provider/translate's; this type picks
// each pod's application and device out of the listing.
type statusMapper struct {
	store       *podStore
	kubePods    *kubePods
	poller      *poller
	reconnector *reconnector
	recorder    record.EventRecorder
	now         func() time.Time
	// deployDeadline is how long a written pod may take to start; zero
	// means no deadline.
	deployDeadline time.Duration
}

// firstStatusGrace is how long after its write a new pod's first status
// may wait while it only says the pod is starting: a pod that runs within
// it gets one status write (Running), not ContainerCreating and then
// Running; one that takes longer shows ContainerCreating after it. Any
// other status (an error, a disconnection) is shown at once. A deploy
// deadline shorter than twice the grace halves it instead, so that the pod
// shows it was starting before it shows it was too slow.
const firstStatusGrace = 5 * time.Second

// holdBack reports whether next, a new pod's first status since its write
// at writtenAt, is held back: it only says the pod is starting, within the
// grace.
func (m *statusMapper) holdBack(next corev1.PodStatus, writtenAt, now time.Time) bool {
	grace := firstStatusGrace
	if m.deployDeadline > 0 {
		grace = min(grace, m.deployDeadline/2)
	}
	return translate.Starting(next) && now.Sub(writtenAt) < grace
}

// update maps deployed pods' application statuses to pod statuses: all
// of them, or those on a changed device, on a device that is away, or not
// settled (their deploy deadline runs). A settled pod on an unchanged
// device would map to the same status.
func (m *statusMapper) update(changed map[string]bool, all bool) {
	fleet := m.poller.current()
	away := m.reconnector.since()
	now := m.now()
	type change struct {
		st   *podState
		pod  *corev1.Pod
		prev corev1.PodStatus
		next corev1.PodStatus
	}
	var changes []change
	m.store.each(func(st *podState) {
		if st.phase != phaseDeployed {
			return
		}
		if _, isAway := away[st.device]; !all && !changed[st.device] && !isAway && podSettled(st.status) {
			return
		}
		next := statusFor(st, fleet, away, now, m.deployDeadline)
		if st.unshown {
			if m.holdBack(next, st.writtenAt, now) {
				// Kubernetes shows the pod Pending already; the next pass
				// maps it again, usually to Running.
				return
			}
			st.unshown = false
		}
		if sameStatus(st.status, next) {
			return
		}
		prev := st.status
		st.status = next
		changes = append(changes, change{st: st, pod: st.pod, prev: prev, next: next})
	})
	for _, c := range changes {
		for _, e := range translate.Events(c.prev, c.next) {
			m.recorder.Event(c.pod, e.Type, e.Reason, e.Message)
		}
		m.kubePods.notify(m.store.view(c.st))
	}
}

// statusFor computes a deployed pod's status from its device in fleet;
// away maps disconnected devices to when they went away. The store's lock
// is held.
func statusFor(st *podState, fleet *inventory.Fleet, away map[string]time.Time, now time.Time, deadline time.Duration) corev1.PodStatus {
	// The mapping keeps timestamps from the status last reported. It
	// reads its pod and builds a new status, so the pod is a view of the
	// record, not a copy: copying every deployed pod's spec each pass was
	// garbage for the collector to chase.
	pod := &corev1.Pod{TypeMeta: st.pod.TypeMeta, ObjectMeta: st.pod.ObjectMeta, Spec: st.pod.Spec, Status: st.status}
	dev, listed := fleet.Get(st.device)
	// A decommissioned device's going quiet is no disconnection: the
	// pod says it is decommissioned.
	if since, disconnected := away[st.device]; !listed || (disconnected && dev.Unavailable == "") {
		info := translate.DeviceInfo{Name: st.device}
		if !disconnected {
			since = now
		}
		if listed {
			info = translate.DeviceInfo{Name: dev.Name, IP: dev.IP, SummaryStatus: dev.SummaryStatus, Info: dev.SummaryInfo}
		}
		return translate.DisconnectedStatus(pod, info, since)
	}
	var app *flightctl.ApplicationStatus
	// Until the device runs the rendered version that carries the newest
	// write, its application status describes the old content.
	// Another pod's write makes the whole device OutOfDate for a moment;
	// that must not touch this pod, so only its own liveAt counts.
	info := translate.DeviceInfo{Name: dev.Name, IP: dev.IP, Online: dev.Online, SummaryStatus: dev.SummaryStatus, Info: dev.SummaryInfo, Unavailable: dev.Unavailable}
	if deadline > 0 && !st.writtenAt.IsZero() && now.Sub(st.writtenAt) > deadline {
		info.DeployDeadlineExceeded = deadline
	}
	live := dev.AppliedVersion >= st.liveAt
	// The agent failed (or is rolling back) a version at or after this
	// pod's write: the pod's content will not run until a later write.
	// The old version's application status is still the truth of what
	// runs, so it is kept.
	failed := !live && dev.UpdateFailure != "" && dev.RenderedVersion >= st.liveAt
	if failed {
		info.UpdateFailure = dev.UpdateFailure
	}
	if a, found := dev.Applications[st.app]; found {
		// An application Preparing before the version is applied is the
		// agent working on this write (whatever it replaces is no longer
		// running), so it is shown too.
		if live || failed || a.Status == flightctl.ApplicationStatusPreparing {
			app = &a
		}
	}
	return translate.PodStatus(pod, app, info, now)
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
