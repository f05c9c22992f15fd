package translate

import (
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The statuses below describe a pod before (or instead of) anything a
// device reports: waiting for room, deployed but not started, retrying a
// write, failed before it reached Flightctl. They sit beside PodStatus so
// that every pod status vk-flightctl writes is built in one package.

// PendingStatus is a Pending status with every container waiting with
// reason (ContainerCreating when empty) and msg. A pod waiting for room
// (reason vkv1.ReasonWaitingForDevice) also gets the DevicePlacement
// condition, False.
func PendingStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	s := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
		{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: ReasonContainersNotReady, LastTransitionTime: metav1.Now()},
	}}
	if pod.Status.StartTime != nil {
		s.StartTime = pod.Status.StartTime
	} else {
		now := metav1.Now()
		s.StartTime = &now
	}
	if reason == vkv1.ReasonWaitingForDevice {
		s.Conditions = append(s.Conditions, corev1.PodCondition{Type: vkv1.PodConditionDevicePlacement, Status: corev1.ConditionFalse,
			Reason: reason, Message: msg, LastTransitionTime: metav1.Now()})
	}
	for _, c := range pod.Spec.Containers {
		wr := reason
		if wr == "" {
			wr = ReasonContainerCreating
		}
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: wr, Message: msg}},
		})
	}
	return s
}

// Starting reports whether s says no more than that the pod is starting:
// Pending, not ready only because its containers are not, and every
// container waiting as ContainerCreating. Such a status carries no failure
// a user must see at once (a device that went offline, say, gives another
// reason for not being ready).
func Starting(s corev1.PodStatus) bool {
	if s.Phase != corev1.PodPending || len(s.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range s.Conditions {
		if c.Type == corev1.PodReady && c.Reason != ReasonContainersNotReady {
			return false
		}
	}
	for _, list := range [][]corev1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for i := range list {
			if w := list[i].State.Waiting; w == nil || w.Reason != ReasonContainerCreating {
				return false
			}
		}
	}
	return true
}

// FailedStatus is a terminal Failed status whose containers terminated with
// reason (Failed when empty) and msg. An empty reason lets `kubectl get
// pods` show STATUS Failed.
func FailedStatus(pod *corev1.Pod, reason, msg string) corev1.PodStatus {
	now := metav1.Now()
	start := pod.Status.StartTime
	if start == nil {
		start = &now
	}
	s := corev1.PodStatus{Phase: corev1.PodFailed, Reason: reason, Message: msg, StartTime: start}
	s.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "PodFailed", Message: msg, LastTransitionTime: metav1.Now()}}
	termReason := reason
	if strings.TrimSpace(termReason) == "" {
		termReason = "Failed"
	}
	for _, c := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: termReason, Message: msg,
				StartedAt: *start, FinishedAt: now}},
		})
	}
	return s
}

// InlineConfig is the Flightctl inline config provider entry, named after
// the application, that carries a pod's volume files to its device.
func InlineConfig(app string, files []VolumeFile) (json.RawMessage, error) {
	type inlineFile struct {
		flightctl.InlineFile
		Mode int32 `json:"mode,omitempty"`
	}
	inline := make([]inlineFile, 0, len(files))
	for _, f := range files {
		inline = append(inline, inlineFile{InlineFile: f.Inline(), Mode: f.Mode})
	}
	return json.Marshal(map[string]any{"name": app, "inline": inline})
}
