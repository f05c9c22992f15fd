package placement

import (
	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// PodRequests is what the pod asks of the device it lands on: the sum of
// its containers' requests, raised to the largest init container's (with
// sidecars counted as the scheduler does), pod-level requests where set,
// plus the pod's overhead. It is kube-scheduler's computation
// (k8s.io/component-helpers/resource.PodRequests), run on a copy of the pod
// with the API server's defaulting applied first: a container with limits
// but no requests requests its limits. Pods read from the API server are
// already defaulted; pods built in code or tests often are not, and must
// not look free.
func PodRequests(pod *corev1.Pod) corev1.ResourceList {
	if pod == nil {
		return corev1.ResourceList{}
	}
	p := pod.DeepCopy()
	defaultContainerRequests(p.Spec.Containers)
	defaultContainerRequests(p.Spec.InitContainers)
	defaultPodLevelRequests(p)
	return resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
}

// defaultContainerRequests copies each limit to a missing request, as
// SetDefaults_Pod does for containers and init containers.
func defaultContainerRequests(containers []corev1.Container) {
	for i := range containers {
		r := &containers[i].Resources
		if r.Limits == nil {
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		for name, q := range r.Limits {
			if _, ok := r.Requests[name]; !ok {
				r.Requests[name] = q.DeepCopy()
			}
		}
	}
}

// defaultPodLevelRequests mirrors the API server's defaulting of pod-level
// requests when pod-level limits are set: a missing pod-level request is
// the containers' aggregate request if they request that resource, else
// the pod-level limit. Without it a pod with only pod-level limits would
// be placed as if it requested nothing.
func defaultPodLevelRequests(p *corev1.Pod) {
	r := p.Spec.Resources
	if r == nil || len(r.Limits) == 0 {
		return
	}
	reqs := r.Requests
	if reqs == nil {
		reqs = corev1.ResourceList{}
	}
	aggregate := resourcehelper.AggregateContainerRequests(p, resourcehelper.PodResourcesOptions{})
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := reqs[name]; ok {
			continue
		}
		if q, ok := aggregate[name]; ok {
			reqs[name] = q.DeepCopy()
		} else if q, ok := r.Limits[name]; ok {
			reqs[name] = q.DeepCopy()
		}
	}
	if len(reqs) > 0 {
		r.Requests = reqs
	}
}

// PodKey identifies a pod in the Ledger. It is the UID, because a pod
// deleted and recreated under the same name is a different pod whose
// predecessor may still hold room; namespace/name is the fallback for a pod
// without a UID (one built in code, never stored).
func PodKey(pod *corev1.Pod) string {
	if pod.UID != "" {
		return string(pod.UID)
	}
	return pod.Namespace + "/" + pod.Name
}

// AssignmentFromPod reads the placement persisted on a pod (the
// flightctl.io/device annotation) for Ledger.Rebuild after a restart. It
// reports false for a pod never placed and for a pod that has finished
// (Succeeded or Failed): a finished pod runs nothing on its device, and
// the kubelet does not count finished pods against a node either.
func AssignmentFromPod(pod *corev1.Pod) (Assignment, bool) {
	if pod == nil {
		return Assignment{}, false
	}
	device := pod.Annotations[v1alpha1.AnnotationDevice]
	if device == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return Assignment{}, false
	}
	return Assignment{PodKey: PodKey(pod), Device: device, Requests: PodRequests(pod)}, true
}
