package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// Pod event reasons vk-flightctl records.
const (
	EventFailedScheduling = "FailedScheduling"
	EventDeviceSelected   = "DeviceSelected"
	EventUnsupported      = "UnsupportedPodSpec"
	EventReplacing        = "Replacing"
	EventDeployFailed     = "DeployFailed"
	EventRemoved          = "WorkloadRemoved"
	EventDeviceGone       = "DeviceGone"
)

// ReasonRejected is the status reason of a pod whose workload Flightctl
// refused as invalid.
const ReasonRejected = "RejectedByFlightctl"

// ReasonDeployRetrying is the waiting reason of a pod's containers while
// its workload could not be written to Flightctl yet.
const ReasonDeployRetrying = "DeployRetrying"

// PodConditionDevicePlacement reports placement onto a device: False with
// reason WaitingForDevice while no device has room.
const PodConditionDevicePlacement corev1.PodConditionType = "vk.flightctl.io/DevicePlacement"

// podPhase is where vk-flightctl is with one pod.
type podPhase int

const (
	// phaseWaiting: no device has room now; placement is retried each poll.
	phaseWaiting podPhase = iota + 1
	// phaseDeployed: the application is in the device's spec.
	phaseDeployed
	// phaseFailed: the pod can never run (no device could hold it, or its
	// spec is unsupported); its status is terminal.
	phaseFailed
)

// podState is vk-flightctl's record of one pod of this node.
type podState struct {
	// pod is the spec last handed over by virtual-kubelet.
	pod   *corev1.Pod
	phase podPhase
	// device and app say where the pod runs once placed.
	device string
	app    string
	hash   string
	// liveAt is the device rendered version at which the written content
	// runs; until the device reports it, the pod shows as starting.
	liveAt int64
	// status is the status last reported to Kubernetes.
	status corev1.PodStatus
	// lastWaitMsg avoids repeating the same FailedScheduling event.
	lastWaitMsg string
	// owed: the pod's latest change has not reached Flightctl (the write
	// failed); the status loop writes it again after each good poll.
	owed bool
	// writtenAt is when the last write succeeded; a device listing that
	// started earlier may not show it yet.
	writtenAt time.Time
	// goneDevice is a device Flightctl no longer has (or a fleet took)
	// that the pod was placed on before it ever ran; placement skips the
	// stale flightctl.io/device record that still names it.
	goneDevice string
	// removed: DeletePod ran; nothing may be written for this pod again.
	removed bool
	// removalOwed: removing the application failed; the status loop
	// retries it (pod then holds the terminating pod).
	removalOwed bool
}

func podKey(ns, name string) string { return ns + "/" + name }

// CreatePod places a new pod on a device and deploys it.
func (rt *Runtime) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	kept := rt.shared(pod)
	rt.mu.Lock()
	st, ok := rt.pods[key]
	if ok && st.pod.UID == pod.UID {
		rt.mu.Unlock()
		return rt.UpdatePod(ctx, pod)
	}
	st = &podState{pod: kept, status: corev1.PodStatus{Phase: corev1.PodPending}}
	rt.pods[key] = st
	rt.mu.Unlock()
	return rt.owe(st, rt.deploy(ctx, st))
}

// UpdatePod rewrites the application when what runs changed (Kubernetes
// only lets a pod's image change). Simple replace: the device stops the old
// workload before it starts the new one, and the pod shows as starting
// until the device runs the new content.
func (rt *Runtime) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	kept := rt.shared(pod)
	rt.mu.Lock()
	st, ok := rt.pods[key]
	if !ok || st.pod.UID != pod.UID {
		rt.mu.Unlock()
		return rt.CreatePod(ctx, pod)
	}
	st.pod = kept
	phase := st.phase
	rt.mu.Unlock()
	switch phase {
	case phaseFailed:
		return nil
	case phaseDeployed:
		return rt.owe(st, rt.write(ctx, st, true))
	default:
		return rt.owe(st, rt.deploy(ctx, st))
	}
}

// shared returns the informer's copy of pod when it is the same version, so
// the provider keeps no pod copy of its own (at 10,000 pods every copy is
// tens of MiB); otherwise pod itself, which virtual-kubelet hands over as a
// copy it does not touch again. Neither may be modified.
func (rt *Runtime) shared(pod *corev1.Pod) *corev1.Pod {
	rt.mu.Lock()
	lister := rt.podLister
	rt.mu.Unlock()
	if lister == nil {
		return pod
	}
	if cached, err := lister.Pods(pod.Namespace).Get(pod.Name); err == nil && cached.UID == pod.UID && cached.ResourceVersion == pod.ResourceVersion {
		return cached
	}
	return pod
}

// owe keeps a pod whose change could not reach Flightctl (or the API
// server) for the status loop to write again, and hides the error from
// virtual-kubelet: its error path rewrites the pod from a possibly stale
// copy (erasing the placement record) and, since GetPod then finds the
// pod, never hands it to the provider again, so the change would be lost.
func (rt *Runtime) owe(st *podState, err error) error {
	if err == nil {
		return nil
	}
	pod := rt.snapshotPod(st)
	rt.mu.Lock()
	if st.removed {
		rt.mu.Unlock()
		return nil
	}
	first := !st.owed
	st.owed = true
	ran := st.phase == phaseDeployed
	if !ran {
		st.status = pendingStatus(pod, ReasonDeployRetrying, fmt.Sprintf("%v; retrying after the next successful Flightctl poll", err))
	}
	rt.mu.Unlock()
	deployFailures.WithLabelValues(rt.cfg.binding.Spec.Fleet).Inc()
	if first {
		logging.Warn(rt.log, "Deploying the workload failed; retrying after the next successful Flightctl poll", "pod", podKey(pod.Namespace, pod.Name), "error", err.Error())
	} else {
		rt.log.V(1).Info("Deploying the workload failed again", "pod", podKey(pod.Namespace, pod.Name), "error", err.Error())
	}
	if !ran {
		rt.notify(st)
	}
	return nil
}

// deploy places the pod (or finds its recorded device) and writes it.
func (rt *Runtime) deploy(ctx context.Context, st *podState) error {
	pod := rt.snapshotPod(st)
	rt.mu.Lock()
	gone := st.goneDevice
	rt.mu.Unlock()
	if gone != "" && pod.Annotations[vkv1.AnnotationDevice] == gone {
		// The record names a device the pod never ran on and that is
		// gone: place afresh (recordPlacement overwrites the record).
		delete(pod.Annotations, vkv1.AnnotationDevice)
	}
	fleet := rt.currentFleet()
	dec, err := placement.Place(pod, fleet.PlacementDevices(), rt.ledger)
	if err != nil {
		var nofit *placement.NoFitError
		if errors.As(err, &nofit) {
			rt.noFit(st, pod, nofit)
			return nil
		}
		return err
	}
	if pod.Annotations[vkv1.AnnotationDevice] != dec.Device {
		// The decision is recorded in the API server before anything is
		// sent to Flightctl, so a restarted manager finds it.
		if err := rt.recordPlacement(ctx, pod, dec.Device); err != nil {
			rt.ledger.Release(dec.PodKey)
			return err
		}
		rt.cfg.recorder.Eventf(pod, corev1.EventTypeNormal, EventDeviceSelected, "Placed on Flightctl device %s", dec.Device)
		rt.log.Info("Pod placed", "pod", podKey(pod.Namespace, pod.Name), "device", dec.Device)
		placementsTotal.WithLabelValues(rt.cfg.binding.Spec.Fleet).Inc()
	}
	rt.mu.Lock()
	st.device = dec.Device
	st.app = translate.AppName(pod)
	st.goneDevice = ""
	rt.mu.Unlock()
	return rt.write(ctx, st, false)
}

// recordPlacement writes the flightctl.io/device annotation (and label, when
// the device name is a valid label value).
func (rt *Runtime) recordPlacement(ctx context.Context, pod *corev1.Pod, device string) error {
	meta := map[string]any{"annotations": map[string]string{vkv1.AnnotationDevice: device}}
	if len(validation.IsValidLabelValue(device)) == 0 {
		meta["labels"] = map[string]string{vkv1.LabelDevice: device}
	}
	patch, _ := json.Marshal(map[string]any{"metadata": meta})
	_, err := rt.cfg.kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("recording device %s on pod %s/%s: %w", device, pod.Namespace, pod.Name, err)
	}
	return nil
}

// noFit fails a pod no device can ever hold, or keeps it Pending while room
// may still appear (the scheduler only sees the node's total, so failing
// such pods would make their ReplicaSets recreate them in a loop).
func (rt *Runtime) noFit(st *podState, pod *corev1.Pod, nofit *placement.NoFitError) {
	placementFailures.WithLabelValues(rt.cfg.binding.Spec.Fleet, string(nofit.Reason)).Inc()
	if nofit.Permanent() {
		rt.fail(st, pod, "", nofit.Message, EventFailedScheduling)
		return
	}
	rt.mu.Lock()
	st.phase = phaseWaiting
	repeat := st.lastWaitMsg == nofit.Message
	st.lastWaitMsg = nofit.Message
	st.status = pendingStatus(pod, "WaitingForDevice", nofit.Message)
	rt.mu.Unlock()
	if !repeat {
		rt.cfg.recorder.Eventf(pod, corev1.EventTypeWarning, EventFailedScheduling, "%s; the pod stays Pending and is placed when room appears", nofit.Message)
		rt.log.Info("Pod waits for room on a device", "pod", podKey(pod.Namespace, pod.Name), "reason", string(nofit.Reason))
	}
	rt.notify(st)
}

// fail gives a pod a terminal Failed status and an event. Nothing is sent
// to Flightctl for it.
func (rt *Runtime) fail(st *podState, pod *corev1.Pod, reason, msg, eventReason string) {
	rt.ledger.Release(placement.PodKey(pod))
	rt.mu.Lock()
	st.phase = phaseFailed
	st.status = failedStatus(pod, reason, msg)
	rt.mu.Unlock()
	rt.cfg.recorder.Event(pod, corev1.EventTypeWarning, eventReason, msg)
	logging.Warn(rt.log, "Pod cannot run", "pod", podKey(pod.Namespace, pod.Name), "reason", eventReason, "message", msg)
	rt.notify(st)
}

// write translates the pod and writes its application to its device.
func (rt *Runtime) write(ctx context.Context, st *podState, isUpdate bool) error {
	pod := rt.snapshotPod(st)
	rt.mu.Lock()
	device, app, oldHash := st.device, st.app, st.hash
	rt.mu.Unlock()
	dev, _ := rt.currentFleet().Get(device)
	opts := translate.Options{
		Format:     translate.Format(rt.cfg.binding.Spec.ApplicationFormat),
		Resolver:   &apiResolver{ctx: ctx, reader: rt.cfg.reader},
		DeviceName: device,
	}
	if dev != nil {
		opts.DeviceIP = dev.IP
		opts.Allocatable = dev.Allocatable
	}
	res, err := translate.ToApplication(pod, opts)
	if err != nil {
		var unsupported *translate.UnsupportedError
		if errors.As(err, &unsupported) {
			rt.fail(st, pod, EventUnsupported, unsupported.Error(), EventUnsupported)
			return nil
		}
		if rt.firstTry(st) {
			rt.cfg.recorder.Eventf(pod, corev1.EventTypeWarning, EventDeployFailed, "Cannot build the workload for device %s (retrying): %v", device, err)
		}
		return err
	}
	if isUpdate && res.Hash == oldHash {
		return nil
	}
	change := devicewriter.Change{Name: app, App: &res.Application}
	if len(res.VolumeFiles) > 0 {
		change.Config = inlineConfig(app, res.VolumeFiles)
	}
	if isUpdate {
		rt.cfg.recorder.Eventf(pod, corev1.EventTypeNormal, EventReplacing, "Replacing the workload on device %s: the old one stops before the new one starts", device)
	}
	rt.mu.Lock()
	removed := st.removed
	rt.mu.Unlock()
	if removed {
		return nil
	}
	out, err := rt.cfg.writer.Apply(ctx, device, change)
	if err != nil {
		if (flightctl.IsNotFound(err) || flightctl.IsOwnedByFleet(err)) && rt.replaceable(st) {
			return rt.deviceGone(st, pod, device, err)
		}
		if flightctl.IsInvalid(err) {
			// The server refused the content itself; the same write can
			// never succeed, so the pod fails instead of retrying.
			rt.fail(st, pod, ReasonRejected, fmt.Sprintf("Flightctl refused the workload for device %s: %v", device, err), EventDeployFailed)
			return nil
		}
		if rt.firstTry(st) {
			rt.cfg.recorder.Eventf(pod, corev1.EventTypeWarning, EventDeployFailed, "Writing the workload to device %s failed (retrying): %v", device, err)
		}
		return err
	}
	rt.mu.Lock()
	if st.owed {
		rt.log.Info("Deferred workload write succeeded", "pod", podKey(pod.Namespace, pod.Name), "device", device)
	}
	st.owed = false
	st.writtenAt = time.Now()
	st.phase = phaseDeployed
	st.hash = res.Hash
	st.liveAt = out.LiveAt
	prev := st.status
	st.status = pendingStatus(pod, "", fmt.Sprintf("deployed to device %s; waiting for the device to start it", device))
	next := st.status
	rt.mu.Unlock()
	for _, e := range translate.Events(prev, next) {
		rt.cfg.recorder.Event(pod, e.Type, e.Reason, e.Message)
	}
	for _, w := range res.Warnings {
		rt.cfg.recorder.Event(pod, corev1.EventTypeWarning, "MissingOptionalReference", w)
	}
	rt.log.Info("Workload deployed", "pod", podKey(pod.Namespace, pod.Name), "device", device, "application", app, "update", isUpdate)
	// A new pod's first status comes from the poll this write asks for,
	// usually Running already: reporting "waiting for the device" first
	// would cost one more pod status write per pod start. A pod that
	// already showed something (waiting for room, retrying, running the
	// old image) is told at once that this changed.
	if len(prev.ContainerStatuses) > 0 || prev.Phase != corev1.PodPending {
		rt.notify(st)
	}
	rt.pollNow()
	return nil
}

// firstTry reports whether this is the first attempt at the pod's current
// change, so a failure is announced once rather than on every retry.
func (rt *Runtime) firstTry(st *podState) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return !st.owed
}

// replaceable reports whether a pod may move to another device: it never
// ran (Kubernetes never saw it Running or Unknown), so no workload of it
// runs anywhere. Pods that ran stay where they are and follow the
// disconnection path (Unknown, then rescheduled after the timeout).
func (rt *Runtime) replaceable(st *podState) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	seen := func(p corev1.PodPhase) bool { return p == corev1.PodRunning || p == corev1.PodUnknown }
	return st.phase != phaseDeployed && !seen(st.pod.Status.Phase) && !seen(st.status.Phase)
}

// deviceGone handles a write refused because the pod's device was deleted
// from Flightctl (or taken by a Flightctl fleet) since the last poll: the
// device's room is released and the pod is placed again after the next
// poll, which no longer offers that device.
func (rt *Runtime) deviceGone(st *podState, pod *corev1.Pod, device string, cause error) error {
	rt.ledger.Release(placement.PodKey(pod))
	rt.mu.Lock()
	st.goneDevice = device
	st.device = ""
	rt.mu.Unlock()
	msg := fmt.Sprintf("Flightctl device %s can no longer take workloads (%v); placing the pod on another device", device, cause)
	rt.cfg.recorder.Event(pod, corev1.EventTypeWarning, EventDeviceGone, msg)
	logging.Warn(rt.log, "Device gone before the pod started; placing it again", "pod", podKey(pod.Namespace, pod.Name), "device", device)
	rt.pollNow()
	return fmt.Errorf("device %s is gone: %w", device, cause)
}

// inlineConfig is a Flightctl inline config provider entry named after the
// application, holding the pod's volume files.
func inlineConfig(app string, files []translate.VolumeFile) json.RawMessage {
	type inlineFile struct {
		flightctl.InlineFile
		Mode int32 `json:"mode,omitempty"`
	}
	inline := make([]inlineFile, 0, len(files))
	for _, f := range files {
		inline = append(inline, inlineFile{InlineFile: f.Inline(), Mode: f.Mode})
	}
	raw, _ := json.Marshal(map[string]any{"name": app, "inline": inline})
	return raw
}

// DeletePod removes the pod's application from its device, then removes
// the pod from Kubernetes (as a kubelet does once containers stopped), so
// a deleted pod is gone in seconds rather than after its grace period.
func (rt *Runtime) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	if _, done := rt.removedUIDs.Get(pod.UID); done {
		// virtual-kubelet hands a deleted pod over again (e.g. once its
		// grace period is zero); its workload is already gone.
		return nil
	}
	rt.mu.Lock()
	st := rt.pods[key]
	device, app := pod.Annotations[vkv1.AnnotationDevice], translate.AppName(pod)
	if st != nil {
		st.removed = true
		if st.device != "" {
			device = st.device
		}
		if st.app != "" {
			app = st.app
		}
	}
	rt.mu.Unlock()
	if device != "" {
		if _, err := rt.cfg.writer.Apply(ctx, device, devicewriter.Change{Name: app}); err != nil {
			// virtual-kubelet retries too, but its backoff grows with each
			// failure of an outage and gives up after a while; the status
			// loop retries after each good poll so the pod does not stay
			// Terminating long after Flightctl is back.
			rt.mu.Lock()
			if st == nil || rt.pods[key] != st {
				st = &podState{device: device, app: app, removed: true}
				rt.pods[key] = st
			}
			st.pod = pod.DeepCopy()
			first := !st.removalOwed
			st.removalOwed = true
			rt.mu.Unlock()
			if first {
				logging.Warn(rt.log, "Removing the workload failed; retrying after the next successful Flightctl poll", "pod", key, "device", device, "error", err.Error())
			}
			return err
		}
		rt.log.Info("Workload removed", "pod", key, "device", device, "application", app)
		rt.cfg.recorder.Eventf(pod, corev1.EventTypeNormal, EventRemoved, "Removed the workload from device %s", device)
	}
	rt.ledger.Release(placement.PodKey(pod))
	rt.removedUIDs.Add(pod.UID, struct{}{}, 10*time.Minute)
	rt.mu.Lock()
	if cur := rt.pods[key]; cur == st {
		delete(rt.pods, key)
	}
	rt.mu.Unlock()
	if pod.DeletionTimestamp != nil {
		go rt.forceDelete(pod)
	}
	return nil
}

// forceDelete removes a terminating pod whose workload is gone.
func (rt *Runtime) forceDelete(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 30e9)
	defer cancel()
	zero := int64(0)
	uid := pod.UID
	err := rt.cfg.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		rt.log.Error(err, "Removing the terminated pod failed", "pod", podKey(pod.Namespace, pod.Name))
	}
}

// GetPod returns the pod as last handed over, with its current status.
func (rt *Runtime) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	st, ok := rt.pods[podKey(namespace, name)]
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, rt.nodeName)
	}
	p := st.pod.DeepCopy()
	p.Status = *st.status.DeepCopy()
	return p, nil
}

// GetPodStatus returns the pod's current status.
func (rt *Runtime) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := rt.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns every pod of this node.
func (rt *Runtime) GetPods(context.Context) ([]*corev1.Pod, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(rt.pods))
	for _, st := range rt.pods {
		p := st.pod.DeepCopy()
		p.Status = *st.status.DeepCopy()
		out = append(out, p)
	}
	return out, nil
}

// NotifyPods registers virtual-kubelet's pod status callback.
func (rt *Runtime) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	rt.mu.Lock()
	rt.notifyPod = cb
	rt.mu.Unlock()
}

// notify hands virtual-kubelet the pod with its new status. It starts from
// the informer's copy: virtual-kubelet writes the whole object, and labels
// or annotations from an older copy would undo the placement record.
func (rt *Runtime) notify(st *podState) {
	rt.mu.Lock()
	cb, lister := rt.notifyPod, rt.podLister
	base := st.pod
	device := st.device
	status := *st.status.DeepCopy()
	rt.mu.Unlock()
	if cb == nil {
		return
	}
	if lister != nil {
		if fresh, err := lister.Pods(base.Namespace).Get(base.Name); err == nil && fresh.UID == base.UID {
			base = fresh
		}
	}
	// The spec is shared, not copied: nobody writes to it, and
	// virtual-kubelet keeps this object for every pod.
	p := &corev1.Pod{TypeMeta: base.TypeMeta, ObjectMeta: *base.ObjectMeta.DeepCopy(), Spec: base.Spec}
	p.Status = status
	// virtual-kubelet writes status with UpdateStatus, which also stores
	// the object's labels and annotations; the informer may not have seen
	// the placement record yet, so carry it here or it would be erased.
	if device != "" {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[vkv1.AnnotationDevice] = device
		if len(validation.IsValidLabelValue(device)) == 0 {
			if p.Labels == nil {
				p.Labels = map[string]string{}
			}
			p.Labels[vkv1.LabelDevice] = device
		}
	}
	cb(p)
}

func (rt *Runtime) snapshotPod(st *podState) *corev1.Pod {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return st.pod.DeepCopy()
}

// pendingStatus is a Pending status with every container waiting.
func pendingStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	s := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", LastTransitionTime: metav1.Now()},
	}}
	if pod.Status.StartTime != nil {
		s.StartTime = pod.Status.StartTime
	} else {
		now := metav1.Now()
		s.StartTime = &now
	}
	if reason == "WaitingForDevice" {
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: PodConditionDevicePlacement, Status: corev1.ConditionFalse,
			Reason: reason, Message: msg, LastTransitionTime: metav1.Now()})
	}
	for _, c := range pod.Spec.Containers {
		wr := reason
		if wr == "" {
			wr = translate.ReasonContainerCreating
		}
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: wr, Message: msg}},
		})
	}
	return s
}

// failedStatus is a terminal Failed status. An empty reason lets
// `kubectl get pods` show STATUS Failed.
func failedStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	now := metav1.Now()
	start := pod.Status.StartTime
	if start == nil {
		start = &now
	}
	s := corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: msg, StartTime: start}
	s.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodFailed", Message: msg, LastTransitionTime: metav1.Now()}}
	for _, c := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: firstNonEmpty(reason, "Failed"), Message: msg,
				StartedAt: *start, FinishedAt: now}},
		})
	}
	return s
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

func (rt *Runtime) hasPod(namespace, name string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	_, ok := rt.pods[podKey(namespace, name)]
	return ok
}
