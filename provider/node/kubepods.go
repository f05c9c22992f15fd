package node

import (
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// kubePods is the node's side of its pods in the API server: the
// informer's lister (set once the cache synced) and virtual-kubelet's pod
// status callback. It owns both and their lock.
type kubePods struct {
	mu     sync.Mutex
	lister corelisters.PodLister
	cb     func(*corev1.Pod)
}

func (k *kubePods) setLister(l corelisters.PodLister) {
	k.mu.Lock()
	k.lister = l
	k.mu.Unlock()
}

// setCallback registers virtual-kubelet's status callback. Reports share
// the informer's metadata and the provider's status (statusReport), so cb
// must copy what it keeps before returning, as virtual-kubelet's does.
func (k *kubePods) setCallback(cb func(*corev1.Pod)) {
	k.mu.Lock()
	k.cb = cb
	k.mu.Unlock()
}

// podLister is nil until the informer synced.
func (k *kubePods) podLister() corelisters.PodLister {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lister
}

// list is every pod of the node in the informer; nil (and false) before it
// synced.
func (k *kubePods) list() ([]*corev1.Pod, bool) {
	l := k.podLister()
	if l == nil {
		return nil, false
	}
	pods, err := l.List(everything)
	if err != nil {
		return nil, false
	}
	return pods, true
}

// shared returns the informer's copy of pod when it is the same version, so
// the provider keeps no pod copy of its own (at 10,000 pods every copy is
// tens of MiB); otherwise pod itself, which virtual-kubelet hands over as a
// copy it does not touch again. Neither may be modified.
func (k *kubePods) shared(pod *corev1.Pod) *corev1.Pod {
	l := k.podLister()
	if l == nil {
		return pod
	}
	if cached, err := l.Pods(pod.Namespace).Get(pod.Name); err == nil && cached.UID == pod.UID && cached.ResourceVersion == pod.ResourceVersion {
		return cached
	}
	return pod
}

// notify hands virtual-kubelet the pod of v with v's status. It starts
// from the informer's copy: virtual-kubelet writes the whole object, and
// labels or annotations from an older copy would undo the placement record.
func (k *kubePods) notify(v podState) {
	k.mu.Lock()
	cb, l := k.cb, k.lister
	k.mu.Unlock()
	if cb == nil {
		return
	}
	base := v.pod
	if l != nil {
		if fresh, err := l.Pods(base.Namespace).Get(base.Name); err == nil && fresh.UID == base.UID {
			base = fresh
		}
	}
	p := statusReport(base, v.status)
	// virtual-kubelet writes status with UpdateStatus, which also stores
	// the object's labels and annotations; the informer may not have seen
	// the placement record yet, so carry it here or it would be erased.
	if v.device != "" {
		// p shares base's maps (see statusReport): copy before changing.
		if p.Annotations[vkv1.AnnotationDevice] != v.device {
			p.Annotations = withEntry(p.Annotations, vkv1.AnnotationDevice, v.device)
		}
		if len(validation.IsValidLabelValue(v.device)) == 0 && p.Labels[vkv1.LabelDevice] != v.device {
			p.Labels = withEntry(p.Labels, vkv1.LabelDevice, v.device)
		}
	}
	cb(p)
}

// notifyStatus hands virtual-kubelet pod with status, for pods that have no
// device record (fleet-wide pods, fleetwide.go). Like notify it starts
// from the informer's copy when it is the same pod.
func (k *kubePods) notifyStatus(pod *corev1.Pod, status corev1.PodStatus) {
	k.mu.Lock()
	cb, l := k.cb, k.lister
	k.mu.Unlock()
	if cb == nil {
		return
	}
	base := pod
	if l != nil {
		if fresh, err := l.Pods(pod.Namespace).Get(pod.Name); err == nil && fresh.UID == pod.UID {
			base = fresh
		}
	}
	cb(statusReport(base, status))
}

// statusReport is what virtual-kubelet is handed for a pod: base's metadata
// and status, and no spec. virtual-kubelet deep-copies every report before
// its callback returns and keeps the copy until the next one
// (knownPod.lastPodStatusReceivedFromProvider), so the report itself
// shares base's metadata and status rather than copying them (one copy per
// report instead of two), and a spec here would be one more copy of every
// pod's spec; it only ever sends the report with UpdateStatus, and the API
// server's pods/status keeps the stored spec whatever the request carries
// (and keeps the spec's managed fields too: the envtest "status report"
// spec checks both).
func statusReport(base *corev1.Pod, status corev1.PodStatus) *corev1.Pod {
	return &corev1.Pod{TypeMeta: base.TypeMeta, ObjectMeta: base.ObjectMeta, Status: status}
}

// withEntry returns a copy of m with k set to v.
func withEntry(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	maps.Copy(out, m)
	out[k] = v
	return out
}
