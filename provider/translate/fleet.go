package translate

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Fleet-wide pods (docs/fleets.md): one pod on a node that stands for a
// Flightctl Fleet becomes one application in the Fleet's template and runs
// on every device the Fleet owns. This file names those applications and
// builds their pods' statuses from rollout counts.

// IsFleetWide says whether a pod is fleet-wide: owned by a DaemonSet (one
// pod per node is what a DaemonSet means, and the node is the Fleet), or
// annotated flightctl.io/fleet-wide: "true".
func IsFleetWide(pod *corev1.Pod) bool {
	if pod.Annotations[vkv1.AnnotationFleetWide] == "true" {
		return true
	}
	_, ok := daemonSetOwner(pod)
	return ok
}

func daemonSetOwner(pod *corev1.Pod) (metav1.OwnerReference, bool) {
	for _, o := range pod.OwnerReferences {
		if o.Kind == "DaemonSet" && strings.HasPrefix(o.APIVersion, "apps/") && o.Controller != nil && *o.Controller {
			return o, true
		}
	}
	return metav1.OwnerReference{}, false
}

// FleetAppName is a fleet-wide pod's application name. A DaemonSet's pods
// share one name, derived from the DaemonSet (namespace, name, UID), so a
// new pod of an updated DaemonSet rewrites the same application and
// Flightctl rolls the new version out in place; other pods are named as
// per-device pods are (AppName).
func FleetAppName(pod *corev1.Pod) string {
	o, ok := daemonSetOwner(pod)
	if !ok {
		return AppName(pod)
	}
	return AppName(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: o.Name, UID: o.UID}})
}

// DeviceFailure is one device that failed to run a fleet-wide application.
type DeviceFailure struct {
	// Device is the Flightctl device name.
	Device string
	// Message is what the device reported.
	Message string
}

// FleetRollout counts the devices of a Fleet for one fleet-wide
// application.
type FleetRollout struct {
	// Target is the devices Flightctl can roll out to: the Fleet's online
	// devices.
	Target int
	// Running devices run the written version of the application.
	Running int
	// Failed devices failed to apply or run it.
	Failed int
	// Offline devices are owned by the Fleet but disconnected.
	Offline int
	// Failures are the first failing devices, in name order (bounded by
	// the caller).
	Failures []DeviceFailure
}

// Message is "k of N devices run it", with what else is worth knowing.
func (r FleetRollout) Message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d devices run it", r.Running, r.Target)
	if waiting := r.Target - r.Running - r.Failed; waiting > 0 {
		fmt.Fprintf(&b, "; %d updating or waiting for their batch", waiting)
	}
	if r.Offline > 0 {
		fmt.Fprintf(&b, "; %d offline", r.Offline)
	}
	if r.Failed > 0 {
		fmt.Fprintf(&b, "; %d failed", r.Failed)
		names := make([]string, 0, len(r.Failures))
		for _, f := range r.Failures {
			names = append(names, f.Device+": "+shorten(f.Message, 120))
		}
		if len(names) > 0 {
			fmt.Fprintf(&b, " (%s", strings.Join(names, "; "))
			if more := r.Failed - len(names); more > 0 {
				fmt.Fprintf(&b, "; %d more", more)
			}
			b.WriteString(")")
		}
	}
	return b.String()
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// FleetPodStatus is a fleet-wide pod's status for its rollout: Running once
// some device runs the application, Ready once every targeted device does,
// Pending before; condition PodConditionFleetRollout carries the counts.
func FleetPodStatus(pod *corev1.Pod, r FleetRollout, now time.Time) corev1.PodStatus {
	ts := metav1.NewTime(now)
	b := newStatusBuilder(pod, DeviceInfo{}, ts)
	msg := r.Message()
	var phase corev1.PodPhase
	reason, status := vkv1.ReasonRolloutInProgress, corev1.ConditionFalse
	switch {
	case r.Target == 0:
		reason = vkv1.ReasonNoFleetDevices
		msg = "no online device in the Flightctl Fleet: " + msg
		b.allWaiting(ReasonContainerCreating, msg)
		phase = corev1.PodPending
	case r.Running == 0 && r.Failed > 0:
		reason = vkv1.ReasonRolloutDegraded
		b.allWaiting(updateFailureReason(r.Failures[0].Message), msg)
		phase = corev1.PodPending
	case r.Running == 0:
		b.allWaiting(ReasonContainerCreating, msg)
		phase = corev1.PodPending
	case r.Running == r.Target:
		reason, status = vkv1.ReasonRolloutComplete, corev1.ConditionTrue
		b.running(len(pod.Spec.Containers))
		phase = corev1.PodRunning
	default:
		if r.Failed > 0 {
			reason = vkv1.ReasonRolloutDegraded
		}
		b.running(0)
		phase = corev1.PodRunning
	}
	st := b.finish(phase)
	kept := st.Conditions[:0]
	for _, c := range st.Conditions {
		if c.Type != vkv1.PodConditionFleetRollout {
			kept = append(kept, c)
		}
	}
	st.Conditions = kept
	setCondition(&st, &pod.Status, vkv1.PodConditionFleetRollout, status, reason, msg, ts, pod.Generation)
	return st
}
