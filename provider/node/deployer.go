package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// deployer carries a pod from Kubernetes to its device: place, translate,
// write, and keep what failed for the status loop to write again
// (retry.go), or take it away again (removal.go). It holds no state of its
// own: pod records are the store's, room is the ledger's, devices are the
// poller's.
type deployer struct {
	binding  *vkv1.FleetBinding
	store    *podStore
	kubePods *kubePods
	poller   *poller
	ledger   *placement.Ledger
	writer   *devicewriter.Writer
	flight   flightctlClient
	reader   client.Reader
	recorder record.EventRecorder
	log      logr.Logger
}

// fleetLabel is the metrics label of this node.
func (d *deployer) fleetLabel() string { return d.binding.Spec.Fleet }

// apply deploys a pod virtual-kubelet handed over: a new pod is placed and
// written; a known one is written again when what runs changed (Kubernetes
// only lets a pod's image change). Simple replace: the device stops the old
// workload before it starts the new one, and the pod shows as starting
// until the device runs the new content.
func (d *deployer) apply(ctx context.Context, pod *corev1.Pod) {
	st, known := d.store.admit(d.kubePods.shared(pod))
	if !known {
		d.owe(st, d.deploy(ctx, st))
		return
	}
	switch d.store.view(st).phase {
	case phaseFailed:
	case phaseDeployed:
		d.owe(st, d.write(ctx, st, true))
	default:
		d.owe(st, d.deploy(ctx, st))
	}
}

// owe keeps a pod whose change could not reach Flightctl (or the API
// server) for the status loop to write again, and hides the error from
// virtual-kubelet: its error path rewrites the pod from a possibly stale
// copy (erasing the placement record) and, since GetPod then finds the
// pod, never hands it to the provider again, so the change would be lost.
func (d *deployer) owe(st *podState, err error) {
	if err == nil {
		return
	}
	var first, ran, removed bool
	var pod *corev1.Pod
	d.store.with(st, func(st *podState) {
		pod, removed = st.pod, st.removed
		if removed {
			return
		}
		first = !st.owed
		st.owed = true
		ran = st.phase == phaseDeployed
		if !ran {
			st.status = translate.PendingStatus(pod, vkv1.ReasonDeployRetrying, fmt.Sprintf("%v; retrying after the next successful Flightctl poll", err))
		}
	})
	if removed {
		return
	}
	deployFailures.WithLabelValues(d.fleetLabel()).Inc()
	key := podKey(pod.Namespace, pod.Name)
	if first {
		logging.Warn(d.log, "Deploying the workload failed; retrying after the next successful Flightctl poll", "pod", key, "error", err.Error())
	} else {
		d.log.V(1).Info("Deploying the workload failed again", "pod", key, "error", err.Error())
	}
	if !ran {
		d.kubePods.notify(d.store.view(st))
	}
}

// deploy places the pod (or finds its recorded device) and writes it.
func (d *deployer) deploy(ctx context.Context, st *podState) error {
	v := d.store.view(st)
	pod := v.pod.DeepCopy()
	if v.goneDevice != "" && pod.Annotations[vkv1.AnnotationDevice] == v.goneDevice {
		// The record names a device the pod never ran on and that is
		// gone: place afresh (the next status write overwrites the record).
		delete(pod.Annotations, vkv1.AnnotationDevice)
	}
	fleet := d.poller.current()
	if pod.Annotations[vkv1.AnnotationDevice] == "" && v.goneDevice == "" {
		// A manager that stopped between writing the device and writing
		// the pod's status left its decision in the device spec only.
		if dev, ok := fleet.Holder(translate.AppName(pod)); ok {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[vkv1.AnnotationDevice] = dev
			d.log.Info("Pod's workload found on a device; keeping it there", "pod", podKey(pod.Namespace, pod.Name), "device", dev)
		}
	}
	dec, err := placement.Place(pod, fleet.PlacementDevices(), d.ledger)
	if err != nil {
		var nofit *placement.NoFitError
		if errors.As(err, &nofit) {
			d.noFit(st, pod, nofit)
			return nil
		}
		return err
	}
	if pod.Annotations[vkv1.AnnotationDevice] != dec.Device && v.device != dec.Device {
		// The decision reaches the pod (annotation and label) with its
		// first status write (kubePods.notify), not with a write of its
		// own: until then the device spec, written next, is the record
		// (Holder above, and the orphan sweep spares such pods).
		d.recorder.Eventf(pod, corev1.EventTypeNormal, vkv1.EventDeviceSelected, "Placed on Flightctl device %s", dec.Device)
		d.log.Info("Pod placed", "pod", podKey(pod.Namespace, pod.Name), "device", dec.Device)
		placementsTotal.WithLabelValues(d.fleetLabel()).Inc()
	}
	d.store.with(st, func(st *podState) {
		st.device = dec.Device
		st.app = translate.AppName(pod)
		st.goneDevice = ""
	})
	return d.write(ctx, st, false)
}

// noFit fails a pod no device can ever hold, or keeps it Pending while room
// may still appear (the scheduler only sees the node's total, so failing
// such pods would make their ReplicaSets recreate them in a loop).
func (d *deployer) noFit(st *podState, pod *corev1.Pod, nofit *placement.NoFitError) {
	placementFailures.WithLabelValues(d.fleetLabel(), string(nofit.Reason)).Inc()
	if nofit.Permanent() {
		d.fail(st, pod, "", nofit.Message, vkv1.EventFailedScheduling)
		return
	}
	var repeat bool
	d.store.with(st, func(st *podState) {
		st.phase = phaseWaiting
		repeat = st.lastWaitMsg == nofit.Message
		st.lastWaitMsg = nofit.Message
		st.status = translate.PendingStatus(pod, vkv1.ReasonWaitingForDevice, nofit.Message)
	})
	if !repeat {
		d.recorder.Eventf(pod, corev1.EventTypeWarning, vkv1.EventFailedScheduling, "%s; the pod stays Pending and is placed when room appears", nofit.Message)
		d.log.Info("Pod waits for room on a device", "pod", podKey(pod.Namespace, pod.Name), "reason", string(nofit.Reason))
	}
	d.kubePods.notify(d.store.view(st))
}

// fail gives a pod a terminal Failed status and an event. Nothing is sent
// to Flightctl for it.
func (d *deployer) fail(st *podState, pod *corev1.Pod, reason, msg, eventReason string) {
	d.ledger.Release(placement.PodKey(pod))
	d.store.with(st, func(st *podState) {
		st.phase = phaseFailed
		st.status = translate.FailedStatus(pod, reason, msg)
	})
	d.recorder.Event(pod, corev1.EventTypeWarning, eventReason, msg)
	logging.Warn(d.log, "Pod cannot run", "pod", podKey(pod.Namespace, pod.Name), "reason", eventReason, "message", msg)
	d.kubePods.notify(d.store.view(st))
}

// write translates the pod and writes its application to its device.
func (d *deployer) write(ctx context.Context, st *podState, isUpdate bool) error {
	v := d.store.view(st)
	pod := v.pod.DeepCopy()
	res, err := d.translate(ctx, pod, v.device)
	if err != nil {
		var unsupported *translate.UnsupportedError
		if errors.As(err, &unsupported) {
			d.fail(st, pod, vkv1.EventUnsupportedPodSpec, unsupported.Error(), vkv1.EventUnsupportedPodSpec)
			return nil
		}
		if !v.owed {
			d.recorder.Eventf(pod, corev1.EventTypeWarning, vkv1.EventDeployFailed, "Cannot build the workload for device %s (retrying): %v", v.device, err)
		}
		return err
	}
	if isUpdate && res.Hash == v.hash {
		return nil
	}
	change := devicewriter.Change{Name: v.app, App: &res.Application}
	if len(res.VolumeFiles) > 0 {
		if change.Config, err = translate.InlineConfig(v.app, res.VolumeFiles); err != nil {
			return fmt.Errorf("encoding the files of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	if isUpdate {
		d.recorder.Eventf(pod, corev1.EventTypeNormal, vkv1.EventReplacing, "Replacing the workload on device %s: the old one stops before the new one starts", v.device)
	}
	if d.store.view(st).removed {
		return nil
	}
	out, err := d.writer.Apply(ctx, v.device, change)
	if err != nil {
		return d.writeFailed(st, pod, v.device, err)
	}
	d.written(st, pod, res, out, isUpdate)
	return nil
}

// translate builds the pod's application for device.
func (d *deployer) translate(ctx context.Context, pod *corev1.Pod, device string) (*translate.Result, error) {
	opts := translate.Options{
		Format:     translate.Format(d.binding.Spec.ApplicationFormat),
		Resolver:   newAPIResolver(ctx, d.reader),
		DeviceName: device,
	}
	if dev, ok := d.poller.current().Get(device); ok {
		opts.DeviceIP = dev.IP
		opts.Allocatable = dev.Allocatable
	}
	return translate.ToApplication(pod, opts)
}

// writeFailed sorts a failed device write: the device is gone (place the
// pod again), the content is refused (the pod fails), or it may work later
// (the error goes back to owe).
func (d *deployer) writeFailed(st *podState, pod *corev1.Pod, device string, err error) error {
	if (flightctl.IsNotFound(err) || flightctl.IsOwnedByFleet(err)) && d.replaceable(st) {
		return d.deviceGone(st, pod, device, err)
	}
	if flightctl.IsInvalid(err) {
		// The server refused the content itself; the same write can
		// never succeed, so the pod fails instead of retrying.
		d.fail(st, pod, vkv1.ReasonRejectedByFlightctl, fmt.Sprintf("Flightctl refused the workload for device %s: %v", device, err), vkv1.EventDeployFailed)
		return nil
	}
	if !d.store.view(st).owed {
		d.recorder.Eventf(pod, corev1.EventTypeWarning, vkv1.EventDeployFailed, "Writing the workload to device %s failed (retrying): %v", device, err)
	}
	return err
}

// written records a successful write and tells Kubernetes about it.
func (d *deployer) written(st *podState, pod *corev1.Pod, res *translate.Result, out devicewriter.Result, isUpdate bool) {
	var wasOwed bool
	var prev, next corev1.PodStatus
	var device, app string
	d.store.with(st, func(st *podState) {
		wasOwed = st.owed
		st.owed = false
		st.writtenAt = time.Now()
		st.phase = phaseDeployed
		st.hash = res.Hash
		st.liveAt = out.LiveAt
		prev = st.status
		st.status = translate.PendingStatus(pod, "", fmt.Sprintf("deployed to device %s; waiting for the device to start it", st.device))
		next = st.status
		device, app = st.device, st.app
		st.unshown = !shownBefore(prev)
	})
	key := podKey(pod.Namespace, pod.Name)
	if wasOwed {
		d.log.Info("Deferred workload write succeeded", "pod", key, "device", device)
	}
	for _, e := range translate.Events(prev, next) {
		d.recorder.Event(pod, e.Type, e.Reason, e.Message)
	}
	for _, w := range res.Warnings {
		d.recorder.Event(pod, corev1.EventTypeWarning, vkv1.EventMissingOptionalReference, w)
	}
	d.log.Info("Workload deployed", "pod", key, "device", device, "application", app, "update", isUpdate)
	// A new pod's first status comes from the poll this write asks for,
	// usually Running already: reporting "waiting for the device" first
	// would cost one more pod status write per pod start. A pod that
	// already showed something (waiting for room, retrying, running the
	// old image) is told at once that this changed.
	if shownBefore(prev) {
		d.kubePods.notify(d.store.view(st))
	}
	d.poller.pollNow()
}

// shownBefore reports whether a pod whose record had status prev showed
// Kubernetes a status of ours: a new pod's record has none.
func shownBefore(prev corev1.PodStatus) bool {
	return len(prev.ContainerStatuses) > 0 || prev.Phase != corev1.PodPending
}

// replaceable reports whether a pod may move to another device: it never
// ran (Kubernetes never saw it Running or Unknown), so no workload of it
// runs anywhere. Pods that ran stay where they are and follow the
// disconnection path (Unknown, then rescheduled after the timeout).
func (d *deployer) replaceable(st *podState) bool {
	v := d.store.view(st)
	seen := func(p corev1.PodPhase) bool { return p == corev1.PodRunning || p == corev1.PodUnknown }
	return v.phase != phaseDeployed && !seen(v.pod.Status.Phase) && !seen(v.status.Phase)
}

// deviceGone handles a write refused because the pod's device was deleted
// from Flightctl (or taken by a Flightctl fleet) since the last poll: the
// device's room is released and the pod is placed again after the next
// poll, which no longer offers that device.
func (d *deployer) deviceGone(st *podState, pod *corev1.Pod, device string, cause error) error {
	d.ledger.Release(placement.PodKey(pod))
	d.store.with(st, func(st *podState) {
		st.goneDevice = device
		st.device = ""
	})
	msg := fmt.Sprintf("Flightctl device %s can no longer take workloads (%v); placing the pod on another device", device, cause)
	d.recorder.Event(pod, corev1.EventTypeWarning, vkv1.EventDeviceGone, msg)
	logging.Warn(d.log, "Device gone before the pod started; placing it again", "pod", podKey(pod.Namespace, pod.Name), "device", device)
	d.poller.pollNow()
	return fmt.Errorf("device %s is gone: %w", device, cause)
}
