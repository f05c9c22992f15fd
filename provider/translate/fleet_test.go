package translate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

func TestIsFleetWideAndFleetAppName(t *testing.T) {
	yes := true
	ds := metav1.OwnerReference{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "DaemonSet", Name: "agent", UID: "ds-uid", Controller: &yes}
	a := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "agent-abcde", UID: "pod-1", OwnerReferences: []metav1.OwnerReference{ds}}}
	b := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "agent-fghij", UID: "pod-2", OwnerReferences: []metav1.OwnerReference{ds}}}
	annotated := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "one", UID: "pod-3", Annotations: map[string]string{vkv1.AnnotationFleetWide: "true"}}}
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "edge", Name: "two", UID: "pod-4",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs", Controller: &yes}}}}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want bool
	}{{a, true}, {annotated, true}, {plain, false}} {
		if got := IsFleetWide(tc.pod); got != tc.want {
			t.Errorf("IsFleetWide(%s) = %v, want %v", tc.pod.Name, got, tc.want)
		}
	}
	if FleetAppName(a) != FleetAppName(b) {
		t.Errorf("two pods of one DaemonSet got %s and %s; they must share the application", FleetAppName(a), FleetAppName(b))
	}
	if !IsOwnedAppName(FleetAppName(a)) || !strings.HasPrefix(FleetAppName(a), "vk-edge-agent-") {
		t.Errorf("FleetAppName = %s, want an owned vk-edge-agent-<hash>", FleetAppName(a))
	}
	if FleetAppName(annotated) != AppName(annotated) {
		t.Errorf("an annotated pod is named like a per-device pod")
	}
}

func TestFleetPodStatus(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "nginx"}}}}
	fail := []DeviceFailure{{Device: "d3", Message: "application vk-x reports Error (ready 0/1)"}}
	for _, tc := range []struct {
		name   string
		r      FleetRollout
		phase  corev1.PodPhase
		ready  bool
		reason string
		msg    string
	}{
		{"no devices", FleetRollout{}, corev1.PodPending, false, vkv1.ReasonNoFleetDevices, "no online device in the Flightctl Fleet: 0 of 0 devices run it"},
		{"waiting", FleetRollout{Target: 3}, corev1.PodPending, false, vkv1.ReasonRolloutInProgress, "0 of 3 devices run it; 3 updating or waiting for their batch"},
		{"first batch", FleetRollout{Target: 3, Running: 1, Offline: 1}, corev1.PodRunning, false, vkv1.ReasonRolloutInProgress, "1 of 3 devices run it; 2 updating or waiting for their batch; 1 offline"},
		{"one failing", FleetRollout{Target: 3, Running: 2, Failed: 1, Failures: fail}, corev1.PodRunning, false, vkv1.ReasonRolloutDegraded, "2 of 3 devices run it; 1 failed (d3: application vk-x reports Error (ready 0/1))"},
		{"all failing", FleetRollout{Target: 1, Failed: 1, Failures: fail}, corev1.PodPending, false, vkv1.ReasonRolloutDegraded, "0 of 1 devices run it; 1 failed (d3: application vk-x reports Error (ready 0/1))"},
		{"complete", FleetRollout{Target: 3, Running: 3}, corev1.PodRunning, true, vkv1.ReasonRolloutComplete, "3 of 3 devices run it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := FleetPodStatus(pod, tc.r, time.Now())
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			var ready bool
			var cond *corev1.PodCondition
			for i := range st.Conditions {
				switch st.Conditions[i].Type {
				case corev1.PodReady:
					ready = st.Conditions[i].Status == corev1.ConditionTrue
				case vkv1.PodConditionFleetRollout:
					cond = &st.Conditions[i]
				}
			}
			if ready != tc.ready {
				t.Errorf("ready %v, want %v", ready, tc.ready)
			}
			if cond == nil || cond.Reason != tc.reason || cond.Message != tc.msg {
				t.Errorf("FleetRollout condition %+v, want reason %s message %q", cond, tc.reason, tc.msg)
			}
		})
	}
}

// A Fleet of 1,000 devices, half failing, keeps the pod's message small:
// the counts cover every device, the names only the first three.
func TestFleetRolloutMessageStaysSmall(t *testing.T) {
	r := FleetRollout{Target: 1000, Running: 500, Failed: 500}
	for i := 0; i < 3; i++ {
		r.Failures = append(r.Failures, DeviceFailure{Device: fmt.Sprintf("device-%04d", i), Message: strings.Repeat("x", 500)})
	}
	msg := r.Message()
	if !strings.HasPrefix(msg, "500 of 1000 devices run it; 500 failed (device-0000: ") || !strings.HasSuffix(msg, "; 497 more)") {
		t.Errorf("message %q", msg)
	}
	if len(msg) > 600 {
		t.Errorf("message is %d bytes; it must stay small whatever the Fleet's size", len(msg))
	}
}
