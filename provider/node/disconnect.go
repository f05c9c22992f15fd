package node

import (
	"context"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
)

// EventDeviceTimeout is the pod event (and log reason) when a device did
// not reconnect in time and its pods are rescheduled.
const EventDeviceTimeout = "DeviceTimeout"

// disconnection is one device's reconnection timer. Its start is persisted
// in the FleetBinding's status.disconnectedDevices, so a restarted manager
// keeps the original deadline.
type disconnection struct {
	since    time.Time
	deadline time.Time
	expired  bool
	pods     int
}

// disconnectTracker holds the timers of one node; guarded by Runtime.mu.
type disconnectTracker struct {
	timeout time.Duration
	devices map[string]*disconnection
}

func newDisconnectTracker(persisted []vkv1.DisconnectedDevice, timeout time.Duration) *disconnectTracker {
	t := &disconnectTracker{timeout: timeout, devices: map[string]*disconnection{}}
	for _, d := range persisted {
		// The deadline follows the current timeout, counted from the
		// persisted moment of disconnection.
		t.devices[d.Name] = &disconnection{since: d.Since.Time, deadline: d.Since.Add(timeout), pods: int(d.Pods)}
	}
	return t
}

func (t *disconnectTracker) get(device string) (*disconnection, bool) {
	d, ok := t.devices[device]
	return d, ok
}

// persisted is the tracker as FleetBinding status, sorted by device.
func (t *disconnectTracker) persisted() []vkv1.DisconnectedDevice {
	out := make([]vkv1.DisconnectedDevice, 0, len(t.devices))
	for name, d := range t.devices {
		out = append(out, vkv1.DisconnectedDevice{Name: name, Since: metav1.NewTime(d.since), Deadline: metav1.NewTime(d.deadline), Pods: int32(d.pods)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// trackConnectivity starts, cancels and fires reconnection timers from the
// latest device listing. Detection costs no API call of its own: it reads
// status.summary from the listing the status loop made anyway.
func (rt *Runtime) trackConnectivity(ctx context.Context) {
	fleet := rt.currentFleet()
	now := rt.cfg.opts.Now()
	var disconnected, reconnected, expired []string
	podsOn := rt.podsByDevice()
	// Devices a pod still names (nil: not known yet, so none is dropped).
	named := rt.expectedApps()

	rt.mu.Lock()
	seen := map[string]bool{}
	for _, dev := range fleet.Devices {
		if dev.OwnedBy != "" {
			continue
		}
		seen[dev.Name] = true
		d, tracked := rt.disconnects.devices[dev.Name]
		switch {
		case !dev.Online && !tracked:
			rt.disconnects.devices[dev.Name] = &disconnection{since: now, deadline: now.Add(rt.disconnects.timeout), pods: len(podsOn[dev.Name])}
			disconnected = append(disconnected, dev.Name)
		case dev.Online && tracked:
			reconnected = append(reconnected, dev.Name)
		case !dev.Online && tracked && !d.expired && !now.Before(d.deadline):
			d.expired = true
			expired = append(expired, dev.Name)
		}
	}
	// A device deleted from Flightctl (or no longer selected) is as gone
	// as a disconnected one when it holds pods.
	for name, pods := range podsOn {
		if seen[name] || len(pods) == 0 {
			continue
		}
		d, tracked := rt.disconnects.devices[name]
		switch {
		case !tracked:
			rt.disconnects.devices[name] = &disconnection{since: now, deadline: now.Add(rt.disconnects.timeout), pods: len(pods)}
			disconnected = append(disconnected, name)
		case !d.expired && !now.Before(d.deadline):
			d.expired = true
			expired = append(expired, name)
		}
	}
	// A gone device that no pod names any more (its pods were
	// rescheduled or deleted) has nothing left to time out; keeping it
	// would leave it in status.disconnectedDevices for ever.
	var dropped []string
	for name := range rt.disconnects.devices {
		if named != nil && !seen[name] && len(podsOn[name]) == 0 && named[name] == nil {
			dropped = append(dropped, name)
			delete(rt.disconnects.devices, name)
		}
	}
	downtimes := map[string]time.Duration{}
	for _, name := range reconnected {
		downtimes[name] = now.Sub(rt.disconnects.devices[name].since)
		delete(rt.disconnects.devices, name)
	}
	timeout := rt.disconnects.timeout
	rt.mu.Unlock()

	for _, name := range disconnected {
		// The pods' DeviceDisconnected events come with their Unknown
		// status (translate.Events).
		for _, p := range podsOn[name] {
			logging.Warn(rt.log, "Device disconnected", "device", name, "pod", podKey(p.Namespace, p.Name))
		}
		if len(podsOn[name]) == 0 {
			logging.Warn(rt.log, "Device disconnected", "device", name)
		}
		rt.log.Info("Starting reconnection timeout", "device", name, "timeout", timeout.String())
		disconnectsTotal.WithLabelValues(rt.cfg.binding.Spec.Fleet, "started").Inc()
	}
	for _, name := range dropped {
		rt.log.Info("Device left the fleet and holds no pods; dropping its reconnection timer", "device", name)
	}
	for _, name := range reconnected {
		rt.log.Info("Device reconnected", "device", name, "downtime", downtimes[name].Round(time.Second).String())
		rt.log.Info("Cancelled reconnection timeout", "device", name)
		disconnectsTotal.WithLabelValues(rt.cfg.binding.Spec.Fleet, "cancelled").Inc()
	}
	for _, name := range expired {
		logging.Warn(rt.log, "Reconnection timeout exceeded", "device", name)
		disconnectsTotal.WithLabelValues(rt.cfg.binding.Spec.Fleet, "expired").Inc()
		for _, p := range podsOn[name] {
			rt.reschedule(ctx, p, name)
		}
	}
	if len(disconnected)+len(reconnected)+len(expired)+len(dropped) > 0 {
		rt.cfg.trigger()
	}
	if len(reconnected) > 0 {
		// The status pass right after this logs each synchronized pod.
		defer func() {
			for _, name := range reconnected {
				for _, p := range podsOn[name] {
					rt.log.Info("Workload status synchronized", "pod", podKey(p.Namespace, p.Name), "device", name)
				}
			}
		}()
		rt.updatePodStatuses()
	}
}

// reschedule deletes a pod whose device did not come back in time, so its
// controller creates a replacement that placement puts on an online
// device. Its application is removed from the device's spec by DeletePod
// (and the orphan sweep), so the device does not run a second copy when it
// returns. A bare pod is simply deleted.
func (rt *Runtime) reschedule(ctx context.Context, p *corev1.Pod, device string) {
	rt.log.Info("Rescheduling workload", "pod", podKey(p.Namespace, p.Name), "device", device, "reason", EventDeviceTimeout)
	rt.cfg.recorder.Eventf(p, corev1.EventTypeWarning, EventDeviceTimeout,
		"Flightctl device %s did not reconnect within %s; deleting the pod so its controller reschedules it", device, rt.disconnects.timeout)
	uid := p.UID
	err := rt.cfg.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		rt.log.Error(err, "Deleting the pod of a timed-out device failed; retrying next poll", "pod", podKey(p.Namespace, p.Name))
		rt.mu.Lock()
		if d, ok := rt.disconnects.devices[device]; ok {
			d.expired = false
		}
		rt.mu.Unlock()
	}
}

// podsByDevice lists this node's placed pods by device.
func (rt *Runtime) podsByDevice() map[string][]*corev1.Pod {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := map[string][]*corev1.Pod{}
	for _, st := range rt.pods {
		if st.device != "" && st.phase == phaseDeployed {
			out[st.device] = append(out[st.device], st.pod)
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Namespace+"/"+ps[i].Name < ps[j].Namespace+"/"+ps[j].Name })
	}
	return out
}
