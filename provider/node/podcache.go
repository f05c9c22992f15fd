package node

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// podCache is the transform of a node's pod informer. Besides dropping
// managedFields it makes each new version of a pod share its spec (and its
// labels, annotations, owner references and finalizers when they did not
// change) with the version already cached.
//
// Why: the cached version is not the only one alive. virtual-kubelet keeps
// the version it last synced (knownPod.lastPodUsed) and this provider keeps
// the one it was handed (podState.pod); both stay behind once the pod's
// status is written and the informer caches the next version, so at 10,000
// pods every pod lived two or three times in full. Decoded versions share
// nothing, and a spec is most of a pod. Shared parts are never modified:
// nobody writes to an informer's objects.
//
// Across pods it shares what the pods of one template carry identically
// (templateParts): a Deployment's replicas differ in names, their service
// account token volume and status, not in resources, environment, probes
// or tolerations, which are most of a real pod's spec.
type podCache struct {
	// store is the informer's own store, set before the informer starts.
	store cache.Store
	parts templateParts
}

// transform implements cache.TransformFunc.
func (c *podCache) transform(obj any) (any, error) {
	obj, _ = stripManagedFields(obj)
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	var old *corev1.Pod
	// A failed lookup only means nothing is shared this time.
	if c.store != nil {
		if prev, exists, err := c.store.Get(pod); err == nil && exists {
			if p, ok := prev.(*corev1.Pod); ok && p != pod && p.UID == pod.UID {
				old = p
			}
		}
	}
	if old == nil || !shareUnchanged(pod, old) {
		// The spec came from this decode: its parts may be another
		// pod's. (A spec shared with the cached version was interned when
		// that version was cached.)
		c.parts.internSpec(&pod.Spec)
	}
	if old == nil || !sameMap(pod.Labels, old.Labels) {
		pod.Labels = c.parts.internMap(kindLabels, pod.Labels)
	}
	return obj, nil
}

// shareUnchanged points pod's unchanged parts at old's. Equal means equal
// to the last detail (reflect, not semantic, equality: a nil map stays nil),
// so nobody can tell the shared part from the decoded one.
// It reports whether the spec was shared.
func shareUnchanged(pod, old *corev1.Pod) (specShared bool) {
	if reflect.DeepEqual(pod.Spec, old.Spec) {
		pod.Spec = old.Spec
		specShared = true
	}
	if reflect.DeepEqual(pod.Labels, old.Labels) {
		pod.Labels = old.Labels
	}
	if reflect.DeepEqual(pod.Annotations, old.Annotations) {
		pod.Annotations = old.Annotations
	}
	if reflect.DeepEqual(pod.OwnerReferences, old.OwnerReferences) {
		pod.OwnerReferences = old.OwnerReferences
	}
	if reflect.DeepEqual(pod.Finalizers, old.Finalizers) {
		pod.Finalizers = old.Finalizers
	}
	return specShared
}

// sameMap says whether a and b are one map (or both nil).
func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
