package translate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Event is a Kubernetes event the caller should record on the pod after a
// status transition, mirroring what a kubelet would have emitted.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type string
	// Reason is the kubelet's reason (Pulling, Pulled, Created, Started,
	// Failed) or DeviceDisconnected/DeviceConnected.
	Reason string
	// Message is human readable.
	Message string
	// FieldPath is the involved object's field, "spec.containers{name}"
	// for container events and empty for pod events.
	FieldPath string
}

// ReasonDeviceConnected is the event reason when a disconnected device
// reports again.
const ReasonDeviceConnected = "DeviceConnected"

// Events lists the events for a transition from prev to next (typically
// pod.Status and the result of PodStatus), in container spec order followed
// by pod-level events. It is pure: calling it again with the same statuses
// yields the same events, and equal statuses yield none.
func Events(prev, next corev1.PodStatus) []Event {
	var out []Event
	before := map[string]*corev1.ContainerStatus{}
	for i := range prev.ContainerStatuses {
		before[prev.ContainerStatuses[i].Name] = &prev.ContainerStatuses[i]
	}
	for i := range next.ContainerStatuses {
		n := &next.ContainerStatuses[i]
		p := before[n.Name]
		path := fmt.Sprintf("spec.containers{%s}", n.Name)
		add := func(typ, reason, format string, args ...any) {
			out = append(out, Event{Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...), FieldPath: path})
		}
		switch {
		case isCreating(n) && (p == nil || !isCreating(p)):
			add(corev1.EventTypeNormal, "Pulling", "Pulling image %q", n.Image)
		case n.State.Running != nil && (p == nil || p.State.Running == nil):
			if p == nil || isCreating(p) {
				add(corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q", n.Image)
			}
			add(corev1.EventTypeNormal, "Created", "Created container %s", n.Name)
			add(corev1.EventTypeNormal, "Started", "Started container %s", n.Name)
		case n.State.Running != nil && n.RestartCount > p.RestartCount:
			add(corev1.EventTypeNormal, "Created", "Created container %s", n.Name)
			add(corev1.EventTypeNormal, "Started", "Started container %s", n.Name)
		case isOverdue(n) && (p == nil || !isOverdue(p)):
			add(corev1.EventTypeWarning, ReasonDeployDeadlineExceeded, "%s", n.State.Waiting.Message)
		case isBackOff(n) && (p == nil || !isBackOff(p) || n.RestartCount > p.RestartCount):
			add(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s: %s", n.Name, failMessage(n))
		case isFailed(n) && (p == nil || !isFailed(p) || failMessage(p) != failMessage(n) || n.RestartCount > p.RestartCount):
			add(corev1.EventTypeWarning, "Failed", "Error: %s", failMessage(n))
		}
	}
	// One Warning per failure: when the condition appears or the agent's
	// message changes, not on every poll.
	if msg := updateFailed(next); msg != "" && msg != updateFailed(prev) {
		out = append(out, Event{Type: corev1.EventTypeWarning, Reason: vkv1.EventUpdateFailed, Message: msg})
	}
	if msg := readyReason(next, vkv1.ReasonDeviceDecommissioning); msg != "" && readyReason(prev, vkv1.ReasonDeviceDecommissioning) == "" {
		out = append(out, Event{Type: corev1.EventTypeWarning, Reason: vkv1.ReasonDeviceDecommissioning, Message: msg})
	}
	wasDisconnected, isDisconnected := disconnected(prev), disconnected(next)
	switch {
	case isDisconnected != "" && wasDisconnected == "":
		out = append(out, Event{Type: corev1.EventTypeWarning, Reason: ReasonDeviceDisconnected, Message: isDisconnected})
	case isDisconnected == "" && wasDisconnected != "":
		out = append(out, Event{Type: corev1.EventTypeNormal, Reason: ReasonDeviceConnected, Message: "the Flightctl device reports status again"})
	}
	return out
}

func isCreating(cs *corev1.ContainerStatus) bool {
	return cs.State.Waiting != nil && cs.State.Waiting.Reason == ReasonContainerCreating
}

func isOverdue(cs *corev1.ContainerStatus) bool {
	return cs.State.Waiting != nil && cs.State.Waiting.Reason == ReasonDeployDeadlineExceeded
}

func isBackOff(cs *corev1.ContainerStatus) bool {
	return cs.State.Waiting != nil && cs.State.Waiting.Reason == ReasonCrashLoopBackOff
}

// updateFailed is the PodConditionDeviceUpdate message when it is False.
func updateFailed(st corev1.PodStatus) string {
	for _, c := range st.Conditions {
		if c.Type == vkv1.PodConditionDeviceUpdate && c.Status == corev1.ConditionFalse {
			if c.Message == "" {
				return "the device failed to apply the update"
			}
			return c.Message
		}
	}
	return ""
}

func isFailed(cs *corev1.ContainerStatus) bool {
	return (cs.State.Waiting != nil && cs.State.Waiting.Reason == ReasonError) ||
		(cs.State.Terminated != nil && cs.State.Terminated.Reason == ReasonError)
}

func failMessage(cs *corev1.ContainerStatus) string {
	switch {
	case cs.State.Waiting != nil:
		return cs.State.Waiting.Message
	case cs.State.Terminated != nil:
		return cs.State.Terminated.Message
	}
	return ""
}

// disconnected returns the Ready condition message when the pod is marked
// as on a disconnected device.
func disconnected(st corev1.PodStatus) string {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady && c.Reason == ReasonDeviceDisconnected {
			if c.Message == "" {
				return "the Flightctl device is disconnected"
			}
			return c.Message
		}
	}
	return ""
}

// readyReason is the Ready condition's message when its reason is reason,
// "" otherwise.
func readyReason(st corev1.PodStatus, reason string) string {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady && c.Reason == reason {
			return c.Message
		}
	}
	return ""
}
