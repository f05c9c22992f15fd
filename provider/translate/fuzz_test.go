package translate

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// FuzzToApplication overlays arbitrary pod JSON on a realistic pod and
// threads an arbitrary string through every value path (literal env, label
// and annotation via the downward API, ConfigMap data, args). Whatever the
// input, translation must not panic, must fail with an error that says
// why, or produce an application the server accepts, with no directive or
// key other than the generator's own and with the string delivered intact.
func FuzzToApplication(f *testing.F) {
	f.Add([]byte(`{}`), "hello", false)
	f.Add([]byte(`{"spec":{"hostNetwork":true}}`), "x\nExec=/bin/evil", true)
	f.Fuzz(func(t *testing.T, podJSON []byte, value string, compose bool) {
		pod := basePod()
		_ = json.Unmarshal(podJSON, pod) // invalid JSON leaves a partial overlay, which is fine
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Labels["fuzz"] = value
		pod.Annotations = map[string]string{"fuzz": value}
		if len(pod.Spec.Containers) > 0 {
			c := &pod.Spec.Containers[0]
			c.Args = append(c.Args, value)
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "FUZZ", Value: value},
				corev1.EnvVar{Name: "FUZZ_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['fuzz']"}}},
				corev1.EnvVar{Name: "FUZZ_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "fuzz"}, Key: "k"}}},
			)
		}
		resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{pod.Namespace + "/fuzz": {Data: map[string]string{"k": value}}}}
		opts := Options{Resolver: resolver, DeviceName: "edge-1", DeviceIP: "10.0.0.7"}
		if compose {
			opts.Format = FormatCompose
		}
		res, err := ToApplication(pod, opts)
		if err != nil {
			var ue *UnsupportedError
			if errors.As(err, &ue) && (ue.Field == "" || ue.Reason == "") {
				t.Fatalf("UnsupportedError without field or reason: %#v", ue)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		assertServerValid(t, res)
		assertNoInjection(t, res)
		name := pod.Spec.Containers[0].Name
		var env map[string]string
		if compose {
			env = decodeComposeService(t, res, name).Environment
		} else {
			env = quadletEnv(t, res, name)
		}
		if env["FUZZ_LABEL"] != value || env["FUZZ_CM"] != value {
			t.Fatalf("value not delivered intact: label %q, configmap %q, want %q", env["FUZZ_LABEL"], env["FUZZ_CM"], value)
		}
		if !compose {
			if exec := quadletExec(t, res, name); len(exec) != len(pod.Spec.Containers[0].Args) {
				t.Fatalf("Exec has %d words for %d args", len(exec), len(pod.Spec.Containers[0].Args))
			}
		}
		again, err := ToApplication(pod, opts)
		if err != nil || again.Hash != res.Hash {
			t.Fatalf("translation is not deterministic: %v", err)
		}
	})
}

// FuzzPodStatus feeds arbitrary application reports. The mapping must not
// panic, must produce one status per container in a valid phase, must be
// a fixed point (feeding the result back with a later clock changes
// nothing, so callers can skip updates), and must never report a pod ready
// that is not running with all containers ready.
func FuzzPodStatus(f *testing.F) {
	f.Add("Running", "1/1", int32(0), true, "", uint8(0), uint8(1), int64(0), false)
	f.Add("Error", "0/2", int32(3), true, "Running", uint8(2), uint8(2), int64(100), true)
	f.Fuzz(func(t *testing.T, status, ready string, restarts int32, online bool, prevPhase string, policy, containers uint8, nowSec int64, noApp bool) {
		pod := basePod()
		pod.Spec.RestartPolicy = []corev1.RestartPolicy{"", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}[policy%4]
		for i := 1; i < int(containers%4)+1; i++ {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Image: "busybox"})
		}
		pod.Status.Phase = corev1.PodPhase(prevPhase)
		var app *flightctl.ApplicationStatus
		if !noApp {
			app = &flightctl.ApplicationStatus{Name: AppName(pod), Status: status, Ready: ready, Restarts: restarts}
		}
		dev := DeviceInfo{Name: "edge-1", IP: "10.0.0.7", Online: online}
		now := time.Unix(nowSec%(1<<40), 0)

		st := PodStatus(pod, app, dev, now)
		checkStatus(t, pod, st)
		if isTerminal(pod.Status.Phase) {
			return
		}
		if evs := Events(st, st); len(evs) != 0 {
			t.Fatalf("events for an unchanged status: %v", evs)
		}
		_ = Events(pod.Status, st)

		next := pod.DeepCopy()
		next.Status = st
		if again := PodStatus(next, app, dev, now.Add(time.Hour)); !reflect.DeepEqual(again, st) {
			t.Fatalf("status is not a fixed point:\n%+v\n%+v", st, again)
		}
		gone := DisconnectedStatus(next, dev, now)
		checkStatus(t, next, gone)
		if !isTerminal(st.Phase) && gone.Phase != corev1.PodUnknown {
			t.Fatalf("disconnected phase %s", gone.Phase)
		}
		next.Status = gone
		if again := DisconnectedStatus(next, dev, now); !reflect.DeepEqual(again, gone) {
			t.Fatal("DisconnectedStatus is not idempotent")
		}
	})
}

func checkStatus(t *testing.T, pod *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	if isTerminal(pod.Status.Phase) {
		if !reflect.DeepEqual(st, pod.Status) {
			t.Fatal("terminal status changed")
		}
		return
	}
	switch st.Phase {
	case corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown:
	default:
		t.Fatalf("invalid phase %q", st.Phase)
	}
	if len(st.ContainerStatuses) != len(pod.Spec.Containers) {
		t.Fatalf("%d container statuses for %d containers", len(st.ContainerStatuses), len(pod.Spec.Containers))
	}
	allReady := true
	for i, cs := range st.ContainerStatuses {
		if cs.Name != pod.Spec.Containers[i].Name {
			t.Fatalf("container status %d is %q", i, cs.Name)
		}
		n := 0
		for _, set := range []bool{cs.State.Waiting != nil, cs.State.Running != nil, cs.State.Terminated != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("container %s has %d states", cs.Name, n)
		}
		if cs.Ready && cs.State.Running == nil {
			t.Fatalf("container %s ready but not running", cs.Name)
		}
		allReady = allReady && cs.Ready
	}
	if condition(st, corev1.PodReady).Status == corev1.ConditionTrue && (st.Phase != corev1.PodRunning || !allReady) {
		t.Fatalf("pod ready in phase %s with containers %v", st.Phase, readyFlags(st))
	}
	if st.StartTime == nil {
		t.Fatal("no StartTime")
	}
}
