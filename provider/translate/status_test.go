package translate

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

var (
	t0     = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	t1     = t0.Add(time.Minute)
	t2     = t0.Add(2 * time.Minute)
	online = DeviceInfo{Name: "edge-1", IP: "10.0.0.7", Online: true, SummaryStatus: "Online"}
)

func twoContainerPod(policy corev1.RestartPolicy) *corev1.Pod {
	return basePod(func(p *corev1.Pod) {
		p.Spec.RestartPolicy = policy
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "quay.io/acme/side:1"})
	})
}

func appStatus(status, ready string, restarts int32) *flightctl.ApplicationStatus {
	return &flightctl.ApplicationStatus{Name: "vk-default-web-63d4eceb4b", Status: status, Ready: ready, Restarts: restarts, AppType: "quadlet"}
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func waitingReasons(st corev1.PodStatus) []string {
	var out []string
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			out = append(out, "waiting:"+cs.State.Waiting.Reason)
		case cs.State.Running != nil:
			out = append(out, "running")
		case cs.State.Terminated != nil:
			out = append(out, "terminated:"+cs.State.Terminated.Reason)
		default:
			out = append(out, "none")
		}
	}
	return out
}

func readyFlags(st corev1.PodStatus) []bool {
	var out []bool
	for _, cs := range st.ContainerStatuses {
		out = append(out, cs.Ready)
	}
	return out
}

func TestPodStatusMapping(t *testing.T) {
	running := func(p *corev1.Pod) *corev1.Pod {
		p.Status = PodStatus(p, appStatus("Running", "2/2", 0), online, t0)
		return p
	}
	tests := []struct {
		name       string
		pod        *corev1.Pod
		app        *flightctl.ApplicationStatus
		device     DeviceInfo
		phase      corev1.PodPhase
		states     []string
		ready      []bool
		podReady   corev1.ConditionStatus
		readyReasn string
	}{
		{"no status yet", twoContainerPod(corev1.RestartPolicyAlways), nil, online, corev1.PodPending,
			[]string{"waiting:ContainerCreating", "waiting:ContainerCreating"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"preparing", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Preparing", "0/2", 0), online, corev1.PodPending,
			[]string{"waiting:ContainerCreating", "waiting:ContainerCreating"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"starting", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Starting", "0/2", 0), online, corev1.PodPending,
			[]string{"waiting:ContainerCreating", "waiting:ContainerCreating"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"starting again after running stays Running", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Starting", "0/2", 1), online, corev1.PodRunning,
			[]string{"waiting:ContainerCreating", "waiting:ContainerCreating"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"running all ready", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Running", "2/2", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{true, true}, corev1.ConditionTrue, ""},
		{"agent counts more units than containers", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Running", "3/3", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{true, true}, corev1.ConditionTrue, ""},
		{"running partly ready", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Running", "1/2", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{true, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"running with garbage ready", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Running", "x/y", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"error with Never fails the pod", twoContainerPod(corev1.RestartPolicyNever), appStatus("Error", "0/2", 0), online, corev1.PodFailed,
			[]string{"terminated:Error", "terminated:Error"}, []bool{false, false}, corev1.ConditionFalse, ReasonPodCompleted},
		{"error with Always before start", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Error", "0/2", 0), online, corev1.PodPending,
			[]string{"waiting:Error", "waiting:Error"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"error after restarts is CrashLoopBackOff", twoContainerPod(corev1.RestartPolicyAlways), appStatus("Error", "0/2", 5), online, corev1.PodPending,
			[]string{"waiting:CrashLoopBackOff", "waiting:CrashLoopBackOff"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"error with OnFailure after start", running(twoContainerPod(corev1.RestartPolicyOnFailure)), appStatus("Error", "0/2", 5), online, corev1.PodRunning,
			[]string{"waiting:CrashLoopBackOff", "waiting:CrashLoopBackOff"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"completed with Never", running(twoContainerPod(corev1.RestartPolicyNever)), appStatus("Completed", "0/2", 0), online, corev1.PodSucceeded,
			[]string{"terminated:Completed", "terminated:Completed"}, []bool{false, false}, corev1.ConditionFalse, ReasonPodCompleted},
		{"completed with OnFailure", twoContainerPod(corev1.RestartPolicyOnFailure), appStatus("Completed", "0/2", 0), online, corev1.PodSucceeded,
			[]string{"terminated:Completed", "terminated:Completed"}, []bool{false, false}, corev1.ConditionFalse, ReasonPodCompleted},
		{"completed with Always keeps running", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Completed", "0/2", 0), online, corev1.PodRunning,
			[]string{"terminated:Completed", "terminated:Completed"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"stopping", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Stopping", "2/2", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{false, false}, corev1.ConditionFalse, ReasonContainersNotReady},
		{"stopped with Never", running(twoContainerPod(corev1.RestartPolicyNever)), appStatus("Stopped", "0/2", 0), online, corev1.PodFailed,
			[]string{"terminated:Stopped", "terminated:Stopped"}, []bool{false, false}, corev1.ConditionFalse, ReasonPodCompleted},
		{"unknown app status keeps phase", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Unknown", "2/2", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{false, false}, corev1.ConditionFalse, ReasonApplicationUnknown},
		{"status from a newer server", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Hibernating", "2/2", 0), online, corev1.PodRunning,
			[]string{"running", "running"}, []bool{false, false}, corev1.ConditionFalse, ReasonApplicationUnknown},
		{"offline device ignores stale app status", running(twoContainerPod(corev1.RestartPolicyAlways)), appStatus("Error", "0/2", 9), DeviceInfo{Name: "edge-1"}, corev1.PodRunning,
			[]string{"running", "running"}, []bool{false, false}, corev1.ConditionFalse, ReasonDeviceDisconnected},
		{"offline before anything ran", twoContainerPod(corev1.RestartPolicyAlways), nil, DeviceInfo{Name: "edge-1"}, corev1.PodPending,
			[]string{"waiting:ContainerCreating", "waiting:ContainerCreating"}, []bool{false, false}, corev1.ConditionFalse, ReasonDeviceDisconnected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := PodStatus(tt.pod, tt.app, tt.device, t1)
			if st.Phase != tt.phase {
				t.Errorf("phase %s, want %s", st.Phase, tt.phase)
			}
			if got := waitingReasons(st); !equalSlices(got, tt.states) {
				t.Errorf("states %v, want %v", got, tt.states)
			}
			if got := readyFlags(st); !reflect.DeepEqual(got, tt.ready) {
				t.Errorf("ready %v, want %v", got, tt.ready)
			}
			c := condition(st, corev1.PodReady)
			if c.Status != tt.podReady || c.Reason != tt.readyReasn {
				t.Errorf("Ready condition %s/%s, want %s/%s (%s)", c.Status, c.Reason, tt.podReady, tt.readyReasn, c.Message)
			}
			if cr := condition(st, corev1.ContainersReady); cr.Status != c.Status && len(tt.pod.Spec.ReadinessGates) == 0 {
				t.Errorf("ContainersReady %s disagrees with Ready %s", cr.Status, c.Status)
			}
			if condition(st, corev1.PodScheduled).Status != corev1.ConditionTrue || condition(st, corev1.PodInitialized).Status != corev1.ConditionTrue {
				t.Error("PodScheduled and Initialized must be True")
			}
			if tt.device.IP != "" && (st.PodIP != tt.device.IP || st.HostIP != tt.device.IP || len(st.PodIPs) != 1 || st.PodIPs[0].IP != tt.device.IP) {
				t.Errorf("IPs %s %s %v", st.PodIP, st.HostIP, st.PodIPs)
			}
			if st.StartTime == nil || len(st.ContainerStatuses) != 2 {
				t.Fatalf("incomplete status %+v", st)
			}
			if cs := st.ContainerStatuses[0]; cs.Image != "docker.io/library/nginx:alpine" || cs.ImageID != cs.Image || cs.Name != "nginx" {
				t.Errorf("container status identity %+v", cs)
			}
			if tt.app != nil && tt.device.Online && st.ContainerStatuses[0].RestartCount != tt.app.Restarts {
				t.Errorf("restart count %d, want %d", st.ContainerStatuses[0].RestartCount, tt.app.Restarts)
			}
		})
	}
}

func TestPodStatusKeepsTimestamps(t *testing.T) {
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	pod.Status = PodStatus(pod, appStatus("Preparing", "0/2", 0), online, t0)
	first := PodStatus(pod, appStatus("Running", "2/2", 0), online, t1)
	if first.StartTime.Time != t0 {
		t.Errorf("StartTime %v, want the first observation %v", first.StartTime, t0)
	}
	if got := first.ContainerStatuses[0].State.Running.StartedAt.Time; got != t1 {
		t.Errorf("StartedAt %v, want %v", got, t1)
	}
	if condition(first, corev1.PodScheduled).LastTransitionTime.Time != t0 {
		t.Error("PodScheduled transition time moved although it stayed True")
	}
	if condition(first, corev1.PodReady).LastTransitionTime.Time != t1 {
		t.Error("Ready transition time did not move when Ready became True")
	}

	// Nothing changed: the status must be identical so the caller can skip
	// the update.
	pod.Status = first
	again := PodStatus(pod, appStatus("Running", "2/2", 0), online, t2)
	if !reflect.DeepEqual(again, first) {
		t.Errorf("status changed without a transition:\n%+v\n%+v", again, first)
	}

	// A restart moves StartedAt but not the Ready transition time of a
	// condition that stayed True.
	restarted := PodStatus(pod, appStatus("Running", "2/2", 1), online, t2)
	if restarted.ContainerStatuses[0].State.Running.StartedAt.Time != t2 {
		t.Error("restart did not update StartedAt")
	}
	if restarted.ContainerStatuses[1].State.Running.StartedAt.Time != t1 {
		t.Error("container without restarts changed StartedAt")
	}
	if condition(restarted, corev1.PodReady).LastTransitionTime.Time != t1 {
		t.Error("Ready transition time moved without a transition")
	}

	// Completed keeps its finish time on later observations.
	pod.Spec.RestartPolicy = corev1.RestartPolicyAlways
	done := PodStatus(pod, appStatus("Completed", "0/2", 0), online, t2)
	if done.ContainerStatuses[0].State.Terminated.StartedAt.Time != t1 || done.ContainerStatuses[0].State.Terminated.FinishedAt.Time != t2 {
		t.Errorf("terminated times %+v", done.ContainerStatuses[0].State.Terminated)
	}
	pod.Status = done
	if later := PodStatus(pod, appStatus("Completed", "0/2", 0), online, t2.Add(time.Hour)); !reflect.DeepEqual(later, done) {
		t.Error("a repeated Completed report changed the status")
	}

	// Timestamps are second precision, as stored by the API server.
	if st := PodStatus(twoContainerPod(corev1.RestartPolicyAlways), nil, online, t0.Add(123*time.Millisecond)); st.StartTime.Time != t0 {
		t.Errorf("StartTime %v not truncated to seconds", st.StartTime)
	}
}

func TestPodStatusTerminalIsSticky(t *testing.T) {
	pod := twoContainerPod(corev1.RestartPolicyNever)
	pod.Status = PodStatus(pod, appStatus("Completed", "0/2", 0), online, t0)
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s", pod.Status.Phase)
	}
	for _, app := range []*flightctl.ApplicationStatus{appStatus("Running", "2/2", 0), nil, appStatus("Error", "0/2", 0)} {
		if st := PodStatus(pod, app, online, t1); !reflect.DeepEqual(st, pod.Status) {
			t.Errorf("terminal pod changed on %+v", app)
		}
	}
	if st := DisconnectedStatus(pod, online, t1); !reflect.DeepEqual(st, pod.Status) {
		t.Error("DisconnectedStatus changed a terminal pod")
	}
}

func TestPodStatusReadinessGates(t *testing.T) {
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/lb"}}
	foreign := corev1.PodCondition{Type: "example.com/lb", Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(t0)}
	pod.Status.Conditions = []corev1.PodCondition{foreign}
	st := PodStatus(pod, appStatus("Running", "2/2", 0), online, t1)
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != ReasonReadinessGatesNotReady {
		t.Errorf("Ready %+v despite an unready gate", c)
	}
	if condition(st, corev1.ContainersReady).Status != corev1.ConditionTrue {
		t.Error("ContainersReady should be True")
	}
	if !reflect.DeepEqual(condition(st, "example.com/lb"), foreign) {
		t.Error("foreign condition not preserved")
	}
	pod.Status.Conditions[0].Status = corev1.ConditionTrue
	if c := condition(PodStatus(pod, appStatus("Running", "2/2", 0), online, t1), corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("Ready %+v with all gates True", c)
	}
}

func TestDisconnectedStatus(t *testing.T) {
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	pod.Status = PodStatus(pod, appStatus("Running", "2/2", 0), online, t0)
	dev := DeviceInfo{Name: "edge-1", SummaryStatus: "Unknown", Info: "Device is disconnected (last seen more than 5 minutes ago)."}
	st := DisconnectedStatus(pod, dev, t1)
	if st.Phase != corev1.PodUnknown {
		t.Errorf("phase %s, want Unknown", st.Phase)
	}
	c := condition(st, corev1.PodReady)
	if c.Status != corev1.ConditionFalse || c.Reason != ReasonDeviceDisconnected || !strings.Contains(c.Message, "edge-1") || c.LastTransitionTime.Time != t1 {
		t.Errorf("Ready condition %+v", c)
	}
	if st.Reason != "" {
		t.Errorf("pod reason %q would replace Unknown in kubectl", st.Reason)
	}
	if !reflect.DeepEqual(readyFlags(st), []bool{false, false}) || st.ContainerStatuses[0].State.Running == nil {
		t.Errorf("containers %+v", st.ContainerStatuses)
	}
	if st.PodIP != "10.0.0.7" {
		t.Error("last known IP dropped")
	}
	pod.Status = st
	if again := DisconnectedStatus(pod, dev, t1); !reflect.DeepEqual(again, st) {
		t.Error("DisconnectedStatus is not idempotent")
	}
	// Reconnecting: the pod goes back to Running, not Pending.
	back := PodStatus(pod, appStatus("Starting", "0/2", 1), online, t2)
	if back.Phase != corev1.PodRunning {
		t.Errorf("phase after reconnect %s", back.Phase)
	}

	// A pod that never started shows Unknown too, not ContainerCreating.
	fresh := twoContainerPod(corev1.RestartPolicyAlways)
	fresh.Status = PodStatus(fresh, nil, online, t0)
	st = DisconnectedStatus(fresh, dev, t1)
	for _, cs := range st.ContainerStatuses {
		if cs.State.Waiting == nil || cs.State.Waiting.Reason != "" || !strings.Contains(cs.State.Waiting.Message, "edge-1") {
			t.Errorf("waiting state %+v", cs.State)
		}
	}
}

// Starting is true only of statuses that say no more than "starting":
// the node holds such a first status back, never a failure.
func TestStarting(t *testing.T) {
	pod := twoContainerPod(corev1.RestartPolicyAlways)
	cases := []struct {
		name string
		st   corev1.PodStatus
		want bool
	}{
		{"not reported yet", PodStatus(pod, nil, online, t1), true},
		{"Preparing", PodStatus(pod, appStatus("Preparing", "0/2", 0), online, t1), true},
		{"Starting", PodStatus(pod, appStatus("Starting", "0/2", 0), online, t1), true},
		{"just written", PendingStatus(pod, "", "deployed"), true},
		{"Running", PodStatus(pod, appStatus("Running", "2/2", 0), online, t1), false},
		{"Error", PodStatus(pod, appStatus("Error", "0/2", 0), online, t1), false},
		{"deadline passed", PodStatus(pod, nil, DeviceInfo{Name: "edge-1", Online: true, DeployDeadlineExceeded: time.Minute}, t1), false},
		{"update failed", PodStatus(pod, nil, DeviceInfo{Name: "edge-1", Online: true, UpdateFailure: "prefetch failed"}, t1), false},
		{"disconnected", PodStatus(pod, nil, DeviceInfo{Name: "edge-1"}, t1), false},
		{"waiting for room", PendingStatus(pod, "WaitingForDevice", "no room"), false},
		{"API server's own Pending", corev1.PodStatus{Phase: corev1.PodPending}, false},
	}
	for _, c := range cases {
		if got := Starting(c.st); got != c.want {
			t.Errorf("%s: Starting = %v, want %v (status %+v)", c.name, got, c.want, c.st.ContainerStatuses)
		}
	}
}
