package reliability

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// The invariant checks run without a cluster here, so a harness bug does
// not pass for a product bug (or hide one).

const testNode = "vk-flightctl-edge-fleet-1"

func runningPod(name, uid, device, image string) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNamespace, UID: types.UID(uid),
			Labels: map[string]string{appLabel: bareApp}, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{Name: "app", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	if device != "" {
		p.Annotations[vkv1.AnnotationDevice] = device
	}
	return p
}

func app(p *corev1.Pod, image string) flightctl.ApplicationSpec {
	return flightctl.ApplicationSpec{Name: translate.AppName(p), AppType: "quadlet", Inline: []flightctl.InlineFile{
		{Path: p.Name + ".pod", Content: "[Pod]\n"},
		{Path: "app.container", Content: "[Container]\nImage=" + image + "\n"},
	}}
}

func dev(name string, apps ...flightctl.ApplicationSpec) flightctl.Device {
	return flightctl.Device{Metadata: flightctl.ObjectMeta{Name: name}, Spec: &flightctl.DeviceSpec{Applications: apps}}
}

func readyDeployment(replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: deploymentName, Namespace: testNamespace, Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, ReadyReplicas: replicas},
	}
}

func kinds(e evaluation) string {
	var out []string
	for _, v := range e.violations {
		out = append(out, v.kind+":"+v.subject)
	}
	return strings.Join(out, " ")
}

func TestEvaluateInvariants(t *testing.T) {
	img1, img2 := images[0], images[1]
	a := runningPod("a", "uid-a", "device-1", img1)
	b := runningPod("b", "uid-b", "device-2", img1)
	orphan := runningPod("gone", "uid-gone", "device-1", img1)
	model := map[string]barePod{"a": {name: "a", uid: "uid-a", image: img1}, "b": {name: "b", uid: "uid-b", image: img1}}
	exp := expectation{node: testNode, bare: model, replicas: 0}

	for _, tc := range []struct {
		name string
		st   state
		exp  expectation
		want string // kinds:subjects, in order
	}{{
		name: "converged",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2", app(&b, img1))}},
		exp:  exp,
	}, {
		name: "application missing",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2")}},
		exp:  exp, want: "lost:reliability/b",
	}, {
		name: "application on two devices",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2", app(&b, img1), app(&a, img1))}},
		exp:  exp, want: "duplicated:reliability/a",
	}, {
		name: "application on another device than the annotation",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1"), dev("device-2", app(&b, img1), app(&a, img1))}},
		exp:  exp, want: "duplicated:reliability/a",
	}, {
		name: "application whose pod is gone",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1), app(&orphan, img1)), dev("device-2", app(&b, img1))}},
		exp:  exp, want: "leaked:" + translate.AppName(&orphan),
	}, {
		name: "image change not written",
		st: state{pods: []corev1.Pod{a, func() corev1.Pod {
			p := b
			p.Spec.Containers = []corev1.Container{{Name: "app", Image: img2}}
			return p
		}()},
			devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2", app(&b, img1))}},
		exp:  expectation{node: testNode, bare: map[string]barePod{"a": model["a"], "b": {name: "b", uid: "uid-b", image: img2}}},
		want: "stale:reliability/b",
	}, {
		name: "pod not ready, placement annotation lost",
		st: state{pods: []corev1.Pod{a, func() corev1.Pod {
			p := runningPod("b", "uid-b", "", img1)
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, Reason: "ProviderFailed"}
			return p
		}()}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2")}},
		exp: exp, want: "lost:reliability/b not-ready:reliability/b",
	}, {
		name: "pod stuck terminating; its application is not a leak",
		st: state{pods: []corev1.Pod{a, func() corev1.Pod {
			p := b
			p.DeletionTimestamp = &metav1.Time{}
			return p
		}()}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2", app(&b, img1))}},
		exp: expectation{node: testNode, bare: map[string]barePod{"a": model["a"]}}, want: "terminating:reliability/b",
	}, {
		name: "pod on a deleted device",
		st:   state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1))}},
		exp:  exp, want: "lost:reliability/b",
	}, {
		name: "pod on a device a Flightctl fleet took",
		st: state{pods: []corev1.Pod{a, b}, devices: []flightctl.Device{dev("device-1", app(&a, img1)), func() flightctl.Device {
			// The fleet's template replaced the spec.
			d := dev("device-2", flightctl.ApplicationSpec{Name: "fleet-agent", AppType: "compose"})
			owner := "Fleet/takeover"
			d.Metadata.Owner = &owner
			return d
		}()}},
		exp: exp, want: "lost:reliability/b",
	}, {
		name: "bare pod vanished",
		st:   state{pods: []corev1.Pod{a}, devices: []flightctl.Device{dev("device-1", app(&a, img1))}},
		exp:  exp, want: "lost:reliability/b",
	}, {
		name: "failed pod",
		st: state{pods: []corev1.Pod{a, func() corev1.Pod { p := b; p.Status.Phase = corev1.PodFailed; return p }()},
			devices: []flightctl.Device{dev("device-1", app(&a, img1)), dev("device-2")}},
		exp: exp, want: "lost:reliability/b",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tc.st.deployment = readyDeployment(0)
			got := kinds(evaluate(&tc.st, tc.exp))
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReportedOwnedApps(t *testing.T) {
	a := runningPod("a", "uid-a", "device-1", images[0])
	d := dev("device-1")
	d.Status = &flightctl.DeviceStatus{Applications: []flightctl.ApplicationStatus{{Name: "fleet-agent", Status: "Running"}}}
	st := state{devices: []flightctl.Device{d}}
	if v := reportedOwnedApps(&st, "device-1"); len(v) != 0 {
		t.Fatalf("a fleet's own application is not ours: %v", v)
	}
	st.devices[0].Status.Applications = append(st.devices[0].Status.Applications, flightctl.ApplicationStatus{Name: translate.AppName(&a), Status: "Running"})
	if v := reportedOwnedApps(&st, "device-1"); len(v) != 1 || v[0].kind != kindLeaked {
		t.Fatalf("got %v, want one leaked violation for the application the agent still runs", v)
	}
}

func TestEvaluateReschedules(t *testing.T) {
	a := runningPod("a", "uid-a", "device-1", images[0])
	st := state{pods: []corev1.Pod{a}, devices: []flightctl.Device{dev("device-1", app(&a, images[0]))},
		deployment: readyDeployment(0), timedOut: map[types.UID]bool{"uid-b": true}}
	ev := evaluate(&st, expectation{node: testNode, bare: map[string]barePod{
		"a": {name: "a", uid: "uid-a", image: images[0]}, "b": {name: "b", uid: "uid-b", image: images[0]},
	}})
	if !ev.ok() || len(ev.rescheduled) != 1 || ev.rescheduled[0] != "b" {
		t.Fatalf("a bare pod with a DeviceTimeout event is a documented reschedule: got violations %q, rescheduled %v", kinds(ev), ev.rescheduled)
	}
}

func TestEvaluateDeployment(t *testing.T) {
	p := runningPod("churn-x", "uid-x", "device-1", images[0])
	p.Labels[appLabel] = deploymentName
	st := state{pods: []corev1.Pod{p}, devices: []flightctl.Device{dev("device-1", app(&p, images[0]))}, deployment: readyDeployment(2)}
	st.deployment.Status.ReadyReplicas = 1
	got := kinds(evaluate(&st, expectation{node: testNode, replicas: 2}))
	if got != "deployment:churn" {
		t.Fatalf("got %q, want the Deployment short of ready replicas", got)
	}
	st.deployment = readyDeployment(1)
	if got := kinds(evaluate(&st, expectation{node: testNode, replicas: 1})); got != "" {
		t.Fatalf("got %q, want no violation", got)
	}
}
