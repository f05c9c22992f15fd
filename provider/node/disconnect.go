package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// disconnection is one device's reconnection timer. Its start is persisted
// in the FleetBinding's status.disconnectedDevices, so a restarted manager
// keeps the original deadline.
type disconnection struct {
	since    time.Time
	deadline time.Time
	expired  bool
	pods     int
}

// reconnector is the node's reconnection controller: it starts, cancels
// and fires a timer per device that went away, and reschedules the pods of
// a device that did not come back in time. It owns the timers and their
// lock. Detection costs no API call of its own: it reads status.summary
// from the listing the status loop made anyway.
type reconnector struct {
	timeout  time.Duration
	fleet    string
	kube     kubernetes.Interface
	recorder record.EventRecorder
	log      logr.Logger
	now      func() time.Time

	mu      sync.Mutex
	devices map[string]*disconnection
}

func newReconnector(persisted []vkv1.DisconnectedDevice, timeout time.Duration) *reconnector {
	r := &reconnector{timeout: timeout, devices: map[string]*disconnection{}}
	for _, d := range persisted {
		// The deadline follows the current timeout, counted from the
		// persisted moment of disconnection.
		r.devices[d.Name] = &disconnection{since: d.Since.Time, deadline: d.Since.Add(timeout), pods: int(d.Pods)}
	}
	return r
}

// since maps each device that is away to when it went.
func (r *reconnector) since() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.devices))
	for name, d := range r.devices {
		out[name] = d.since
	}
	return out
}

// tracking says whether any reconnection timer runs.
func (r *reconnector) tracking() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.devices) > 0
}

// persisted is the timers as FleetBinding status, sorted by device.
func (r *reconnector) persisted() []vkv1.DisconnectedDevice {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]vkv1.DisconnectedDevice, 0, len(r.devices))
	for name, d := range r.devices {
		out = append(out, vkv1.DisconnectedDevice{Name: name, Since: metav1.NewTime(d.since), Deadline: metav1.NewTime(d.deadline), Pods: int32(d.pods)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// transitions is what one track call changed.
type transitions struct {
	disconnected, reconnected, expired, dropped []string
	downtimes                                   map[string]time.Duration
}

func (t transitions) any() bool {
	return len(t.disconnected)+len(t.reconnected)+len(t.expired)+len(t.dropped) > 0
}

// track updates the timers from the latest listing. podsOn lists the
// node's deployed pods by device; named is every device a pod still names
// (nil: not known yet, so no timer is dropped). Pods of expired devices
// are rescheduled. The caller persists the result and refreshes pod
// statuses when devices came back.
func (r *reconnector) track(ctx context.Context, fleet *inventory.Fleet, podsOn map[string][]*corev1.Pod, named map[string]map[string]bool) transitions {
	t := r.advance(fleet, podsOn, named)
	for _, name := range t.disconnected {
		// The pods' DeviceDisconnected events come with their Unknown
		// status (translate.Events).
		for _, p := range podsOn[name] {
			logging.Warn(r.log, "Device disconnected", "device", name, "pod", podKey(p.Namespace, p.Name))
		}
		if len(podsOn[name]) == 0 {
			logging.Warn(r.log, "Device disconnected", "device", name)
		}
		r.log.Info("Starting reconnection timeout", "device", name, "timeout", r.timeout.String())
		disconnectsTotal.WithLabelValues(r.fleet, "started").Inc()
	}
	for _, name := range t.dropped {
		r.log.Info("Device left the fleet and holds no pods; dropping its reconnection timer", "device", name)
	}
	for _, name := range t.reconnected {
		r.log.Info("Device reconnected", "device", name, "downtime", t.downtimes[name].Round(time.Second).String())
		r.log.Info("Cancelled reconnection timeout", "device", name)
		disconnectsTotal.WithLabelValues(r.fleet, "cancelled").Inc()
	}
	for _, name := range t.expired {
		logging.Warn(r.log, "Reconnection timeout exceeded", "device", name)
		disconnectsTotal.WithLabelValues(r.fleet, "expired").Inc()
		for _, p := range podsOn[name] {
			r.reschedule(ctx, p, name)
		}
	}
	return t
}

// advance is track's state change, under the lock.
func (r *reconnector) advance(fleet *inventory.Fleet, podsOn map[string][]*corev1.Pod, named map[string]map[string]bool) transitions {
	now := r.now()
	t := transitions{downtimes: map[string]time.Duration{}}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := func(name string, pods int) {
		r.devices[name] = &disconnection{since: now, deadline: now.Add(r.timeout), pods: pods}
		t.disconnected = append(t.disconnected, name)
	}
	seen := map[string]bool{}
	for _, dev := range fleet.Devices {
		if dev.OwnedBy != "" {
			continue
		}
		seen[dev.Name] = true
		d, tracked := r.devices[dev.Name]
		switch {
		case !dev.Online && !tracked:
			start(dev.Name, len(podsOn[dev.Name]))
		case dev.Online && tracked:
			t.reconnected = append(t.reconnected, dev.Name)
		case !dev.Online && tracked && !d.expired && !now.Before(d.deadline):
			d.expired = true
			t.expired = append(t.expired, dev.Name)
		}
	}
	// A device deleted from Flightctl (or no longer selected) is as gone
	// as a disconnected one when it holds pods.
	for name, pods := range podsOn {
		if seen[name] || len(pods) == 0 {
			continue
		}
		d, tracked := r.devices[name]
		switch {
		case !tracked:
			start(name, len(pods))
		case !d.expired && !now.Before(d.deadline):
			d.expired = true
			t.expired = append(t.expired, name)
		}
	}
	// A gone device that no pod names any more (its pods were
	// rescheduled or deleted) has nothing left to time out; keeping it
	// would leave it in status.disconnectedDevices for ever.
	for name := range r.devices {
		if named != nil && !seen[name] && len(podsOn[name]) == 0 && named[name] == nil {
			t.dropped = append(t.dropped, name)
			delete(r.devices, name)
		}
	}
	for _, name := range t.reconnected {
		t.downtimes[name] = now.Sub(r.devices[name].since)
		delete(r.devices, name)
	}
	return t
}

// reschedule deletes a pod whose device did not come back in time, so its
// controller creates a replacement that placement puts on an online
// device. Its application is removed from the device's spec by DeletePod
// (and the orphan sweep), so the device does not run a second copy when it
// returns. A bare pod is simply deleted.
func (r *reconnector) reschedule(ctx context.Context, p *corev1.Pod, device string) {
	r.log.Info("Rescheduling workload", "pod", podKey(p.Namespace, p.Name), "device", device, "reason", vkv1.EventDeviceTimeout)
	r.recorder.Eventf(p, corev1.EventTypeWarning, vkv1.EventDeviceTimeout,
		"Flightctl device %s did not reconnect within %s; deleting the pod so its controller reschedules it", device, r.timeout)
	uid := p.UID
	err := r.kube.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Error(err, "Deleting the pod of a timed-out device failed; retrying next poll", "pod", podKey(p.Namespace, p.Name))
		r.mu.Lock()
		if d, ok := r.devices[device]; ok {
			d.expired = false
		}
		r.mu.Unlock()
	}
}

// podsByDevice lists the store's deployed pods by device.
func podsByDevice(s *podStore) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	s.each(func(st *podState) {
		if st.device != "" && st.phase == phaseDeployed {
			out[st.device] = append(out[st.device], st.pod)
		}
	})
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].Namespace+"/"+ps[i].Name < ps[j].Namespace+"/"+ps[j].Name })
	}
	return out
}
