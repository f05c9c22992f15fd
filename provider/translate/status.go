package translate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Reasons this package puts on pod conditions and container states. The
// Kubernetes-standard ones (ContainerCreating, Error, Completed,
// ContainersNotReady, PodCompleted) keep kubectl output familiar.
const (
	// ReasonDeviceDisconnected marks pods whose device stopped reporting.
	ReasonDeviceDisconnected = "DeviceDisconnected"
	// ReasonApplicationUnknown marks pods whose application status the
	// agent reports as Unknown (or as a value this version does not know)
	// while the device itself is online.
	ReasonApplicationUnknown = "ApplicationStatusUnknown"
	// ReasonContainerCreating is the kubelet's waiting reason while images
	// are pulled and containers are created.
	ReasonContainerCreating = "ContainerCreating"
	// ReasonError is used for failed containers; Flightctl does not report
	// exit codes, so terminated containers get exit code 1.
	ReasonError = "Error"
	// ReasonCompleted is the kubelet's reason for a container that exited 0.
	ReasonCompleted = "Completed"
	// ReasonStopped marks containers the device agent stopped.
	ReasonStopped = "Stopped"
	// ReasonContainersNotReady is the kubelet's reason on ContainersReady
	// and Ready conditions.
	ReasonContainersNotReady = "ContainersNotReady"
	// ReasonReadinessGatesNotReady is used when containers are ready but a
	// pod readiness gate is not.
	ReasonReadinessGatesNotReady = "ReadinessGatesNotReady"
	// ReasonPodCompleted is the kubelet's Ready reason for finished pods.
	ReasonPodCompleted = "PodCompleted"
	// ReasonErrImagePull is the kubelet's waiting reason when an image
	// cannot be pulled; used when the device's failed update names a
	// pull or prefetch.
	ReasonErrImagePull = "ErrImagePull"
	// ReasonCreateContainerError is the kubelet's waiting reason when a
	// container cannot be created; used for the device's other update
	// failures.
	ReasonCreateContainerError = "CreateContainerError"
	// ReasonDeployDeadlineExceeded is the waiting reason of a pod whose
	// application did not start within the binding's deploy deadline.
	ReasonDeployDeadlineExceeded = "DeployDeadlineExceeded"
	// ReasonCrashLoopBackOff is the kubelet's waiting reason for a
	// container that keeps failing and is restarted.
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
)

// DeviceInfo is what PodStatus needs to know about the device a pod runs on.
type DeviceInfo struct {
	// Name of the Flightctl device.
	Name string
	// IP becomes the pod's PodIP and HostIP (containers publish ports on
	// the device). Empty keeps the previous addresses.
	IP string
	// Online is the caller's verdict that the device reports status; when
	// false the application status is stale and is not used.
	Online bool
	// SummaryStatus and Info are status.summary of the device; they only
	// feed messages.
	SummaryStatus string
	Info          string
	// UpdateFailure is the agent's message when the device failed to
	// apply (or rolled back) the rendered version carrying the pod's
	// workload; "" when the pod's write is live or still being applied.
	UpdateFailure string
	// Unavailable says why the device runs no workloads any more (being
	// decommissioned), "" if it does. The pod is then not ready with
	// reason DeviceDecommissioning and that message.
	Unavailable string
	// DeployDeadlineExceeded is the deploy deadline when the pod's write is
	// older than it; zero while within it. A pod still waiting then says
	// DeployDeadlineExceeded with what the device last reported.
	DeployDeadlineExceeded time.Duration
}

// PodStatus maps the status Flightctl reports for a pod's application onto a
// Kubernetes pod status. It is pure and deterministic: given the same pod
// (including its current status), application status, device and time it
// returns the same result, and timestamps (StartTime, condition transition
// times, container start and finish times) are carried over from
// pod.Status whenever the corresponding state did not change, so a caller
// can compare the result with pod.Status to skip no-op updates.
//
// Flightctl reports one status per application, not per container; with
// "h/t" ready the first h containers in spec order are reported ready, and
// the restart count is attributed to the first container. Probes are not
// evaluated: readiness is what the agent reports.
//
// While device.Online is false the pod keeps its phase and is marked not
// ready with reason DeviceDisconnected; once the caller decides the device
// is gone for good it should switch to DisconnectedStatus and keep using it
// until the device reports again.
//
// Mapping: no application status yet, Preparing and Starting give Pending
// with containers waiting in ContainerCreating; Running gives Running,
// Ready when all containers are; Error gives Failed with terminated
// containers under restartPolicy Never, else containers waiting with reason
// Error (CrashLoopBackOff once the device restarted it); restarts become
// the first container's restartCount and lastState; Completed gives Succeeded under Never/OnFailure, else Running with
// terminated, unready containers; Unknown statuses or an offline device
// keep the phase and mark the pod not ready. Phases never move back
// from Running to Pending, and Succeeded/Failed pods are returned unchanged.
//
// device.UpdateFailure (the device could not apply the version carrying the
// pod) adds condition vk.flightctl.io/DeviceUpdate False with the agent's
// message; containers not running on an older version wait with reason
// ErrImagePull or CreateContainerError and that message. Past
// device.DeployDeadlineExceeded, containers still ContainerCreating wait
// with reason DeployDeadlineExceeded instead.
func PodStatus(pod *corev1.Pod, app *flightctl.ApplicationStatus, device DeviceInfo, now time.Time) corev1.PodStatus {
	return overdue(podStatus(pod, app, device, now), device)
}

func podStatus(pod *corev1.Pod, app *flightctl.ApplicationStatus, device DeviceInfo, now time.Time) corev1.PodStatus {
	prev := pod.Status.DeepCopy()
	if isTerminal(prev.Phase) {
		return *prev
	}
	ts := metav1.NewTime(now).Rfc3339Copy()
	if device.Unavailable != "" {
		// Whatever the application last reported, the device is going
		// away and will not run it: say so, whatever else is true.
		msg := fmt.Sprintf("Flightctl device %s is %s; it runs no workloads any more: delete the pod, or recreate it to place it on another device", device.Name, device.Unavailable)
		return notReady(pod, device, vkv1.ReasonDeviceDecommissioning, msg, ts, keepPhase(prev.Phase))
	}
	if !device.Online {
		return notReady(pod, device, ReasonDeviceDisconnected, disconnectedMessage(device), ts, keepPhase(prev.Phase))
	}
	if device.UpdateFailure != "" && (app == nil || app.Status != flightctl.ApplicationStatusRunning) {
		// The agent will not run this version: say so the way a kubelet
		// says an image or container cannot be created, in its words.
		b := newStatusBuilder(pod, device, ts)
		b.allWaiting(updateFailureReason(device.UpdateFailure), fmt.Sprintf("device %s: %s", device.Name, device.UpdateFailure))
		return b.finish(corev1.PodPending)
	}
	if app == nil {
		b := newStatusBuilder(pod, device, ts)
		b.allWaiting(ReasonContainerCreating, fmt.Sprintf("waiting for the Flightctl agent on device %s to report the application", device.Name))
		return b.finish(corev1.PodPending)
	}
	b := newStatusBuilder(pod, device, ts)
	b.restarts = max(app.Restarts, 0)
	policy := pod.Spec.RestartPolicy
	appMsg := fmt.Sprintf("application %s on device %s is %s (ready %s, restarts %d)", app.Name, device.Name, app.Status, app.Ready, app.Restarts)
	switch app.Status {
	case flightctl.ApplicationStatusPreparing:
		b.allWaiting(ReasonContainerCreating, "preparing: pulling images on the device")
		return b.finish(corev1.PodPending)
	case flightctl.ApplicationStatusStarting:
		b.allWaiting(ReasonContainerCreating, "starting containers on the device")
		return b.finish(corev1.PodPending)
	case flightctl.ApplicationStatusRunning:
		b.running(readyCount(app.Ready, len(pod.Spec.Containers)))
		return b.finish(corev1.PodRunning)
	case flightctl.ApplicationStatusStopping:
		b.running(0)
		return b.finish(corev1.PodRunning)
	case flightctl.ApplicationStatusError:
		if policy == corev1.RestartPolicyNever {
			b.allTerminated(ReasonError, 1, appMsg)
			return b.finish(corev1.PodFailed)
		}
		if b.restarts > 0 {
			// The device restarts it and it fails again: what a kubelet
			// shows as CrashLoopBackOff.
			b.allWaiting(ReasonCrashLoopBackOff, "back-off restarting failed container: "+appMsg)
			return b.finish(corev1.PodPending)
		}
		b.allWaiting(ReasonError, appMsg)
		return b.finish(corev1.PodPending)
	case flightctl.ApplicationStatusCompleted:
		b.allTerminated(ReasonCompleted, 0, "")
		if policy == corev1.RestartPolicyNever || policy == corev1.RestartPolicyOnFailure {
			return b.finish(corev1.PodSucceeded)
		}
		return b.finish(corev1.PodRunning)
	case flightctl.ApplicationStatusStopped:
		b.allTerminated(ReasonStopped, 1, appMsg)
		if policy == corev1.RestartPolicyAlways || policy == "" {
			return b.finish(corev1.PodRunning)
		}
		return b.finish(corev1.PodFailed)
	}
	return notReady(pod, device, ReasonApplicationUnknown, appMsg, ts, keepPhase(prev.Phase))
}

// overdue replaces ContainerCreating waiting states with
// DeployDeadlineExceeded once the deploy deadline has passed, keeping
// what the device reported in the message.
func overdue(st corev1.PodStatus, device DeviceInfo) corev1.PodStatus {
	if device.DeployDeadlineExceeded <= 0 || st.Phase != corev1.PodPending {
		return st
	}
	for i := range st.ContainerStatuses {
		w := st.ContainerStatuses[i].State.Waiting
		if w == nil || w.Reason != ReasonContainerCreating {
			continue
		}
		last := w.Message
		w.Reason = ReasonDeployDeadlineExceeded
		w.Message = fmt.Sprintf("the application did not start on device %s within the deploy deadline (%s); the device last reported: %s",
			device.Name, device.DeployDeadlineExceeded, last)
	}
	return st
}

// DisconnectedStatus is the status of a pod whose device has been
// unreachable for longer than the caller tolerates: phase Unknown (kubectl
// shows STATUS Unknown), Ready and ContainersReady False with reason
// DeviceDisconnected and a message naming the device, and containers marked
// not ready. since is when the device was last seen; it becomes the
// transition time of the conditions that change. Succeeded and Failed pods
// are returned unchanged.
func DisconnectedStatus(pod *corev1.Pod, device DeviceInfo, since time.Time) corev1.PodStatus {
	if isTerminal(pod.Status.Phase) {
		return *pod.Status.DeepCopy()
	}
	ts := metav1.NewTime(since).Rfc3339Copy()
	msg := disconnectedMessage(device) + "; last seen " + ts.UTC().Format(time.RFC3339)
	st := notReady(pod, device, ReasonDeviceDisconnected, msg, ts, corev1.PodUnknown)
	for i := range st.ContainerStatuses {
		// A waiting reason would replace "Unknown" in kubectl's STATUS
		// column; the message keeps the information.
		if w := st.ContainerStatuses[i].State.Waiting; w != nil {
			w.Reason = ""
			w.Message = msg
		}
	}
	return st
}

func disconnectedMessage(d DeviceInfo) string {
	msg := fmt.Sprintf("Flightctl device %s is disconnected", d.Name)
	if d.SummaryStatus != "" {
		msg += " (status " + d.SummaryStatus
		if d.Info != "" {
			msg += ": " + d.Info
		}
		msg += ")"
	}
	return msg
}

func isTerminal(p corev1.PodPhase) bool {
	return p == corev1.PodSucceeded || p == corev1.PodFailed
}

// keepPhase is the phase to keep while the device's report is not usable;
// anything but a live phase (e.g. a value written by another client)
// becomes Pending.
func keepPhase(p corev1.PodPhase) corev1.PodPhase {
	switch p {
	case corev1.PodRunning, corev1.PodUnknown:
		return p
	}
	return corev1.PodPending
}

// readyCount parses "<healthy>/<total>". The agent may count containers
// differently from the pod spec, so "all healthy" maps to all containers
// and partial counts are capped.
func readyCount(ready string, containers int) int {
	h, t, ok := strings.Cut(ready, "/")
	healthy, err1 := strconv.Atoi(h)
	total, err2 := strconv.Atoi(t)
	if !ok || err1 != nil || err2 != nil || healthy < 0 || total <= 0 {
		return 0
	}
	if healthy >= total {
		return containers
	}
	return min(healthy, containers-1)
}

// notReady keeps what is known about a pod but marks it and its containers
// not ready, for states in which the device's report cannot be trusted.
func notReady(pod *corev1.Pod, device DeviceInfo, reason, message string, ts metav1.Time, phase corev1.PodPhase) corev1.PodStatus {
	b := newStatusBuilder(pod, device, ts)
	b.keepContainers()
	st := b.finish(phase)
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		setCondition(&st, &pod.Status, t, corev1.ConditionFalse, reason, message, ts, pod.Generation)
	}
	return st
}

type statusBuilder struct {
	pod      *corev1.Pod
	prev     map[string]*corev1.ContainerStatus
	device   DeviceInfo
	ts       metav1.Time
	restarts int32
	out      []corev1.ContainerStatus
}

func newStatusBuilder(pod *corev1.Pod, device DeviceInfo, ts metav1.Time) *statusBuilder {
	b := &statusBuilder{pod: pod, device: device, ts: ts, prev: map[string]*corev1.ContainerStatus{}}
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		b.prev[cs.Name] = cs
	}
	return b
}

// base starts a container status with identity fields; the image is shown
// normalized because that is what the device pulls.
func (b *statusBuilder) base(i int) corev1.ContainerStatus {
	c := &b.pod.Spec.Containers[i]
	image, err := NormalizeImage(c.Image)
	if err != nil {
		image = c.Image
	}
	cs := corev1.ContainerStatus{Name: c.Name, Image: image, ImageID: image}
	if i == 0 {
		cs.RestartCount = b.restarts
	}
	if p := b.prev[c.Name]; p != nil {
		cs.LastTerminationState = *p.LastTerminationState.DeepCopy()
		cs.ContainerID = p.ContainerID
		if i == 0 && cs.RestartCount > p.RestartCount {
			// The device restarted the application since the last
			// report; Flightctl gives no exit code, so like Error
			// elsewhere it is 1.
			term := &corev1.ContainerStateTerminated{Reason: ReasonError, ExitCode: 1, FinishedAt: b.ts}
			if p.State.Running != nil {
				term.StartedAt = p.State.Running.StartedAt
			}
			cs.LastTerminationState = corev1.ContainerState{Terminated: term}
		}
	}
	return cs
}

func (b *statusBuilder) allWaiting(reason, message string) {
	for i := range b.pod.Spec.Containers {
		cs := b.base(i)
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: message}
		cs.Started = ptr(false)
		b.out = append(b.out, cs)
	}
}

func (b *statusBuilder) running(ready int) {
	for i := range b.pod.Spec.Containers {
		cs := b.base(i)
		started := b.ts
		if p := b.prev[cs.Name]; p != nil && p.State.Running != nil && p.RestartCount == cs.RestartCount {
			started = p.State.Running.StartedAt
		}
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: started}
		cs.Started = ptr(true)
		cs.Ready = i < ready
		b.out = append(b.out, cs)
	}
}

func (b *statusBuilder) allTerminated(reason string, exitCode int32, message string) {
	for i := range b.pod.Spec.Containers {
		cs := b.base(i)
		term := &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode, Message: message, FinishedAt: b.ts}
		if p := b.prev[cs.Name]; p != nil {
			switch {
			case p.State.Terminated != nil && p.State.Terminated.Reason == reason:
				term.StartedAt, term.FinishedAt = p.State.Terminated.StartedAt, p.State.Terminated.FinishedAt
			case p.State.Running != nil:
				term.StartedAt = p.State.Running.StartedAt
			}
		}
		cs.State.Terminated = term
		cs.Started = ptr(false)
		b.out = append(b.out, cs)
	}
}

// keepContainers reuses the previous container states, unready.
func (b *statusBuilder) keepContainers() {
	for i := range b.pod.Spec.Containers {
		c := &b.pod.Spec.Containers[i]
		p := b.prev[c.Name]
		if p == nil {
			cs := b.base(i)
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating}
			cs.Started = ptr(false)
			b.out = append(b.out, cs)
			continue
		}
		cs := *p.DeepCopy()
		cs.Ready = false
		b.out = append(b.out, cs)
	}
}

func (b *statusBuilder) finish(phase corev1.PodPhase) corev1.PodStatus {
	prev := &b.pod.Status
	// Kubernetes never moves a started pod back to Pending.
	if phase == corev1.PodPending && (prev.Phase == corev1.PodRunning || prev.Phase == corev1.PodUnknown && anyStarted(prev)) {
		phase = corev1.PodRunning
	}
	st := corev1.PodStatus{
		ObservedGeneration: b.pod.Generation,
		Phase:              phase,
		HostIP:             prev.HostIP,
		HostIPs:            append([]corev1.HostIP(nil), prev.HostIPs...),
		PodIP:              prev.PodIP,
		PodIPs:             append([]corev1.PodIP(nil), prev.PodIPs...),
		StartTime:          prev.StartTime.DeepCopy(),
		QOSClass:           prev.QOSClass,
		ContainerStatuses:  b.out,
	}
	if b.device.IP != "" {
		st.HostIP, st.PodIP = b.device.IP, b.device.IP
		st.HostIPs = []corev1.HostIP{{IP: b.device.IP}}
		st.PodIPs = []corev1.PodIP{{IP: b.device.IP}}
	}
	if st.StartTime == nil {
		t := b.ts
		st.StartTime = &t
	}

	var unready []string
	for _, cs := range b.out {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	gen := b.pod.Generation
	setCondition(&st, prev, corev1.PodScheduled, corev1.ConditionTrue, "", "", b.ts, gen)
	setCondition(&st, prev, corev1.PodInitialized, corev1.ConditionTrue, "", "", b.ts, gen)
	switch {
	case phase == corev1.PodSucceeded || phase == corev1.PodFailed:
		setCondition(&st, prev, corev1.ContainersReady, corev1.ConditionFalse, ReasonPodCompleted, "", b.ts, gen)
		setCondition(&st, prev, corev1.PodReady, corev1.ConditionFalse, ReasonPodCompleted, "", b.ts, gen)
	case len(unready) > 0:
		msg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
		setCondition(&st, prev, corev1.ContainersReady, corev1.ConditionFalse, ReasonContainersNotReady, msg, b.ts, gen)
		setCondition(&st, prev, corev1.PodReady, corev1.ConditionFalse, ReasonContainersNotReady, msg, b.ts, gen)
	default:
		setCondition(&st, prev, corev1.ContainersReady, corev1.ConditionTrue, "", "", b.ts, gen)
		if gates := unreadyGates(b.pod); len(gates) > 0 {
			msg := fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist or is not True", gates[0])
			setCondition(&st, prev, corev1.PodReady, corev1.ConditionFalse, ReasonReadinessGatesNotReady, msg, b.ts, gen)
		} else {
			setCondition(&st, prev, corev1.PodReady, corev1.ConditionTrue, "", "", b.ts, gen)
		}
	}
	if b.device.UpdateFailure != "" {
		setCondition(&st, prev, vkv1.PodConditionDeviceUpdate, corev1.ConditionFalse, vkv1.EventUpdateFailed, b.device.UpdateFailure, b.ts, gen)
	}
	// Conditions owned by others (readiness gates, DisruptionTarget, ...)
	// are kept as they are.
	for _, c := range prev.Conditions {
		if !ownCondition(c.Type) {
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st
}

func anyStarted(st *corev1.PodStatus) bool {
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}

func ownCondition(t corev1.PodConditionType) bool {
	switch t {
	case corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, vkv1.PodConditionDeviceUpdate:
		return true
	}
	return false
}

func unreadyGates(pod *corev1.Pod) []string {
	var out []string
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			out = append(out, string(g.ConditionType))
		}
	}
	return out
}

// setCondition sets (or replaces) one of our conditions in st, keeping the
// previous transition time when the status did not change.
func setCondition(st, prev *corev1.PodStatus, t corev1.PodConditionType, status corev1.ConditionStatus, reason, message string, ts metav1.Time, gen int64) {
	c := corev1.PodCondition{Type: t, Status: status, Reason: reason, Message: message, LastTransitionTime: ts, ObservedGeneration: gen}
	for _, p := range prev.Conditions {
		if p.Type == t && p.Status == status {
			c.LastTransitionTime = p.LastTransitionTime
		}
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// updateFailureReason picks the kubelet reason a user recognises for a
// device's failed update: ErrImagePull when the agent could not get an
// image (v1.2 says "prefetch failed" or names a pull), else
// CreateContainerError.
func updateFailureReason(msg string) string {
	m := strings.ToLower(msg)
	for _, w := range []string{"prefetch", "pull", "image", "manifest unknown"} {
		if strings.Contains(m, w) {
			return ReasonErrImagePull
		}
	}
	return ReasonCreateContainerError
}

func ptr[T any](v T) *T { return &v }
