package translate

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// prefetchFailure is the v1.2 agent's Updating message after a failed
// prepare (docs: ../shared/flightctl-real-server.md).
const prefetchFailure = "While Preparing: prefetch failed for vk-default-web-63d4eceb4b: internal error occurred"

func TestFailedUpdateBeforeStartIsErrImagePullWithOneEvent(t *testing.T) {
	dev := online
	dev.UpdateFailure = prefetchFailure
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	st := PodStatus(pod, nil, dev, t1)
	if st.Phase != corev1.PodPending {
		t.Fatalf("phase %s, want Pending", st.Phase)
	}
	for _, cs := range st.ContainerStatuses {
		w := cs.State.Waiting
		if w == nil || w.Reason != ReasonErrImagePull || !strings.Contains(w.Message, prefetchFailure) {
			t.Fatalf("container %s state %+v, want waiting ErrImagePull with the agent's message", cs.Name, cs.State)
		}
	}
	c := condition(st, vkv1.PodConditionDeviceUpdate)
	if c.Status != corev1.ConditionFalse || c.Reason != vkv1.EventUpdateFailed || c.Message != prefetchFailure {
		t.Fatalf("DeviceUpdate condition %+v", c)
	}
	events := Events(pod.Status, st)
	if n := countReason(events, vkv1.EventUpdateFailed); n != 1 {
		t.Fatalf("%d UpdateFailed events, want 1: %+v", n, events)
	}
	// The next poll sees the same report: no second event.
	pod.Status = st
	again := PodStatus(pod, nil, dev, t2)
	if n := countReason(Events(st, again), vkv1.EventUpdateFailed); n != 0 {
		t.Fatalf("UpdateFailed repeated on an unchanged report")
	}
}

func TestFailedUpdateReasonForNonImageFailure(t *testing.T) {
	dev := online
	dev.UpdateFailure = "While ApplyingUpdate: writing quadlet unit: permission denied"
	st := PodStatus(twoContainerPod(corev1.RestartPolicyAlways), nil, dev, t1)
	if got := waitingReasons(st); got[0] != "waiting:"+ReasonCreateContainerError {
		t.Fatalf("states %v, want CreateContainerError", got)
	}
}

func TestFailedUpdateKeepsRunningContainersAndClearsLater(t *testing.T) {
	dev := online
	dev.UpdateFailure = prefetchFailure
	pod := running(twoContainerPod(corev1.RestartPolicyAlways))
	st := PodStatus(pod, appStatus("Running", "2/2", 0), dev, t1)
	if got := waitingReasons(st); !equalSlices(got, []string{"running", "running"}) {
		t.Fatalf("states %v, want the old containers still running", got)
	}
	if c := condition(st, vkv1.PodConditionDeviceUpdate); c.Status != corev1.ConditionFalse || c.Message != prefetchFailure {
		t.Fatalf("DeviceUpdate condition %+v", c)
	}
	pod.Status = st
	cleared := PodStatus(pod, appStatus("Running", "2/2", 0), online, t2)
	if c := condition(cleared, vkv1.PodConditionDeviceUpdate); c.Type != "" {
		t.Fatalf("DeviceUpdate condition kept after a successful render: %+v", c)
	}
}

func TestRestartsGiveLastStateAndBackOffEvent(t *testing.T) {
	pod := running(twoContainerPod(corev1.RestartPolicyAlways))
	st := PodStatus(pod, appStatus("Running", "2/2", 2), online, t1)
	cs := st.ContainerStatuses[0]
	if cs.RestartCount != 2 || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Fatalf("first container %+v, want restartCount 2 and lastState terminated", cs)
	}
	pod.Status = st
	crash := PodStatus(pod, appStatus("Error", "0/2", 3), online, t2)
	if got := waitingReasons(crash); got[0] != "waiting:"+ReasonCrashLoopBackOff {
		t.Fatalf("states %v, want CrashLoopBackOff", got)
	}
	if crash.ContainerStatuses[0].LastTerminationState.Terminated == nil {
		t.Fatalf("CrashLoopBackOff without lastState.terminated")
	}
	if n := countReason(Events(st, crash), "BackOff"); n == 0 {
		t.Fatalf("no BackOff event: %+v", Events(st, crash))
	}
}

func countReason(events []Event, reason string) int {
	n := 0
	for _, e := range events {
		if e.Reason == reason {
			n++
		}
	}
	return n
}

// running gives p the status of its two containers running since t0.
func running(p *corev1.Pod) *corev1.Pod {
	p.Status = PodStatus(p, appStatus("Running", "2/2", 0), online, t0)
	return p
}

func TestDeployDeadlineNamesTheLastReport(t *testing.T) {
	dev := online
	dev.DeployDeadlineExceeded = 10 * time.Minute
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	st := PodStatus(pod, appStatus("Preparing", "0/2", 0), dev, t1)
	if st.Phase != corev1.PodPending {
		t.Fatalf("phase %s, want Pending (the pod is not failed or deleted)", st.Phase)
	}
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != ReasonDeployDeadlineExceeded || !strings.Contains(w.Message, "10m0s") || !strings.Contains(w.Message, "preparing: pulling images") {
		t.Fatalf("waiting %+v, want DeployDeadlineExceeded naming the deadline and the last report", w)
	}
	if n := countReason(Events(pod.Status, st), ReasonDeployDeadlineExceeded); n == 0 {
		t.Fatal("no DeployDeadlineExceeded event")
	}
	pod.Status = st
	if n := countReason(Events(st, PodStatus(pod, appStatus("Preparing", "0/2", 0), dev, t2)), ReasonDeployDeadlineExceeded); n != 0 {
		t.Fatal("DeployDeadlineExceeded repeated")
	}
	// A running application is not affected by the deadline.
	if got := waitingReasons(PodStatus(pod, appStatus("Running", "2/2", 0), dev, t2)); got[0] != "running" {
		t.Fatalf("states %v after the application started", got)
	}
}
