package node

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

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

// podState is vk-flightctl's record of one pod of this node. Its fields are
// read and written only through podStore, which holds the lock.
type podState struct {
	// pod is the spec last handed over by virtual-kubelet. It is shared
	// with the informer and never modified.
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
	// unshown: the pod's write succeeded and Kubernetes still has the
	// API server's own Pending status, as nothing reported one since. The
	// status mapper holds back statuses that only say "starting" for
	// firstStatusGrace, so a pod that starts quickly costs one status
	// write (Running) instead of two.
	unshown bool
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

// podStore owns the records of one node's pods and the one lock that
// guards them. Callers get copies (view) or run a short function under the
// lock (with); nothing else holds a podState's fields.
type podStore struct {
	mu   sync.Mutex
	pods map[string]*podState
	// removedUIDs remembers pods whose workload is already removed:
	// virtual-kubelet hands a deleted pod over more than once. It locks
	// itself.
	removedUIDs *utilcache.LRUExpireCache
}

func newPodStore() *podStore {
	return &podStore{
		pods: map[string]*podState{},
		// Enough for a large node's mass deletion; entries expire anyway.
		removedUIDs: utilcache.NewLRUExpireCache(4096),
	}
}

// admit records a pod virtual-kubelet handed over. known is true when the
// store already had this pod (same UID), whose spec is then replaced;
// otherwise a new Pending record is made (replacing one of an older pod of
// the same name).
func (s *podStore) admit(pod *corev1.Pod) (st *podState, known bool) {
	key := podKey(pod.Namespace, pod.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.pods[key]; ok && st.pod.UID == pod.UID {
		st.pod = pod
		return st, true
	}
	st = &podState{pod: pod, status: corev1.PodStatus{Phase: corev1.PodPending}}
	s.pods[key] = st
	return st, false
}

// lookup returns the record of a pod, if any.
func (s *podStore) lookup(ns, name string) (*podState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.pods[podKey(ns, name)]
	return st, ok
}

// keep stores st under key unless the key already holds it; used to keep
// a removal that must be retried.
func (s *podStore) keep(key string, st *podState) {
	s.mu.Lock()
	s.pods[key] = st
	s.mu.Unlock()
}

// forget drops key's record if it is still st.
func (s *podStore) forget(key string, st *podState) {
	s.mu.Lock()
	if cur := s.pods[key]; cur == st {
		delete(s.pods, key)
	}
	s.mu.Unlock()
}

// view is a consistent copy of st's fields.
func (s *podStore) view(st *podState) podState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *st
}

// with runs f on st under the lock. f must be short and must not call the
// store again.
func (s *podStore) with(st *podState, f func(*podState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(st)
}

// each runs f on every record under the lock, with the same rules as with.
func (s *podStore) each(f func(*podState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.pods {
		f(st)
	}
}

// pod returns a copy of a pod with its current status.
func (s *podStore) pod(ns, name string) (*corev1.Pod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.pods[podKey(ns, name)]
	if !ok {
		return nil, false
	}
	return withStatus(st), true
}

// all returns copies of every pod with its current status.
func (s *podStore) all() []*corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(s.pods))
	for _, st := range s.pods {
		out = append(out, withStatus(st))
	}
	return out
}

func withStatus(st *podState) *corev1.Pod {
	p := st.pod.DeepCopy()
	p.Status = *st.status.DeepCopy()
	return p
}

// adoptStatus points the record of pod at pod's status when the two are
// equal, which they are once a status this node reported comes back
// through the informer: the record and the cache then share one status
// instead of keeping two copies of every pod's (~1 KB each). Both stay
// correct: the informer's objects are never modified, and a record's
// status is only ever replaced, never changed in place.
func (s *podStore) adoptStatus(pod *corev1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.pods[podKey(pod.Namespace, pod.Name)]
	if !ok || st.pod == nil || st.pod.UID != pod.UID || st.removed {
		return
	}
	if equality.Semantic.DeepEqual(st.status, pod.Status) {
		st.status = pod.Status
	}
}

// count is how many pods the node holds.
func (s *podStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pods)
}

// removedBefore reports whether the pod's workload was already removed.
func (s *podStore) removedBefore(uid types.UID) bool {
	_, done := s.removedUIDs.Get(uid)
	return done
}

// markRemoved remembers that the pod's workload is gone.
func (s *podStore) markRemoved(uid types.UID) {
	s.removedUIDs.Add(uid, struct{}{}, 10*time.Minute)
}
