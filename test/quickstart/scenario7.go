package quickstart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Scenario 7 (docs/fleets.md): a DaemonSet on the node of a FleetBinding
// that names a Flightctl Fleet runs on every device of the Fleet, through
// Flightctl's own batched rollout; one device fails; an image update is a
// new template version.
const (
	fleet7       = "demo-fleet"
	ds7          = "fleet-agent"
	image7v1     = "nginx:1.26-alpine"
	image7v2     = "nginx:1.27-alpine"
	fleetLabel7  = "demo-fleet"
	failDevice7  = "fleet-dev-3"
	limitRollout = 60 * time.Second
)

var devices7 = []string{"fleet-dev-1", "fleet-dev-2", failDevice7}

func binding7(ns string) string {
	return fmt.Sprintf(`apiVersion: vk.flightctl.io/v1alpha1
kind: FleetBinding
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  fleet: %[1]s
  flightctlFleet: %[1]s
  rolloutPolicy:
    batches:
      - limit: "1"
    successThreshold: "100%%"
  statusPollInterval: 2s
  flightctl:
    credentialsSecretRef:
      name: %[3]s
`, fleet7, ns, SecretName)
}

func daemonSet7(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %[1]s
  namespace: default
spec:
  selector:
    matchLabels: {app: %[1]s}
  updateStrategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      nodeSelector: {flightctl.io/fleet: %[2]s}
      automountServiceAccountToken: false
      containers:
        - name: agent
          image: %[3]s
          resources: {requests: {cpu: 100m, memory: 64Mi}}
`, ds7, fleet7, image)
}

// Scenario7FleetRollout runs a DaemonSet on a Flightctl Fleet's devices.
func Scenario7FleetRollout(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	if e.ControlURL != "" && e.ControlURL != e.FlightctlURL {
		return fmt.Errorf("%w: it adds three simulated devices (one failing) through the simulator's control API; "+
			"the contract suite (make test-real) checks the Fleet template writes against the real server", ErrNotRun)
	}
	node := "vk-flightctl-" + fleet7

	r.step("Step 1: a Flightctl Fleet with three devices, one of which cannot run anything")
	for _, d := range devices7 {
		cfg := map[string]any{"name": d, "labels": map[string]string{"fleet-wide-demo": fleetLabel7}, "cpu": 2, "memory": "4Gi"}
		if d == failDevice7 {
			cfg["failApplications"] = true
		}
		if code, err := r.flightctlSend(http.MethodPost, "/sim/v1/devices", cfg); err != nil && code != http.StatusConflict {
			return r.abort("adding simulated device %s: %v", d, err)
		}
	}
	fl := map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet", "metadata": map[string]any{"name": fleet7},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": map[string]string{"fleet-wide-demo": fleetLabel7}},
			"template": map[string]any{"spec": map[string]any{}}}}
	if _, err := r.flightctlSend(http.MethodPost, "/api/v1/fleets", fl); err != nil && !strings.Contains(err.Error(), "409") {
		return r.abort("creating Flightctl Fleet %s: %v", fleet7, err)
	}
	if _, err := r.waitFor("the Fleet owns its three devices", 30*time.Second, 500*time.Millisecond, func() (bool, string, error) {
		owned := 0
		for _, d := range devices7 {
			var dev struct {
				Metadata struct {
					Owner string `json:"owner"`
				} `json:"metadata"`
			}
			if err := r.flightctlGet("/api/v1/devices/"+d, &dev); err != nil {
				return false, "", err
			}
			if dev.Metadata.Owner == "Fleet/"+fleet7 {
				owned++
			}
		}
		return owned == len(devices7), fmt.Sprintf("%d owned", owned), nil
	}); err != nil {
		return r.abort("%v", err)
	}
	r.ok("Flightctl Fleet %s owns %s (%s fails every application)", fleet7, strings.Join(devices7, ", "), failDevice7)

	r.step("Step 2: a FleetBinding for the Fleet (fleet-wide mode), rolling out one device first")
	if err := r.apply(binding7(e.bindingNamespace())); err != nil {
		return r.abort("applying the FleetBinding: %v", err)
	}
	if _, err := r.waitFor("node "+node+" Ready", 60*time.Second, time.Second, func() (bool, string, error) {
		var n corev1.Node
		found, err := r.getJSON(&n, "node", node)
		if err != nil || !found {
			return false, "not registered", err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, string(c.Status), nil
			}
		}
		return false, "no Ready condition", nil
	}); err != nil {
		return r.abort("%v", err)
	}
	_, _ = r.kubectl("get", "fleetbinding", fleet7, "-n", e.bindingNamespace())

	r.step("Step 3: a DaemonSet on the Fleet's node")
	if err := r.apply(daemonSet7(image7v1)); err != nil {
		return r.abort("applying the DaemonSet: %v", err)
	}
	p1, err := r.waitRollout(image7v1, "2 of 3 devices run it")
	if err != nil {
		return r.abort("%v", err)
	}
	msg := rolloutMessage(p1)
	r.check(strings.Contains(msg, "1 failed ("+failDevice7+": "),
		"pod "+p1.Name+": "+msg, "pod "+p1.Name+" does not name the failing device: "+msg)
	r.check(p1.Status.Phase == corev1.PodRunning && !podReady(p1), "the pod is Running, not Ready (one device fails)",
		fmt.Sprintf("pod is %s, ready %v", p1.Status.Phase, podReady(p1)))
	if evs, err := r.waitEvents(nsDefault, p1.Name, string(p1.UID), 20*time.Second, "FleetDeviceFailed"); err == nil {
		if ev, ok := findEvent(evs, "FleetDeviceFailed"); ok {
			r.ok("event FleetDeviceFailed: %s", ev.Message)
		}
	} else {
		r.fail("no FleetDeviceFailed event: %v", err)
	}
	_, _ = r.kubectl("get", "pods", "-l", "app="+ds7, "-o", "wide")
	r.showFleetTemplate()

	r.step("Step 4: an image update is a new template version, rolled out batch by batch")
	dispatchedBefore := r.fleetEvents("FleetRolloutBatchDispatched")
	if _, err := r.kubectl("set", "image", "daemonset/"+ds7, "agent="+image7v2); err != nil {
		return r.abort("updating the image: %v", err)
	}
	p2, err := r.waitRollout(image7v2, "2 of 3 devices run it")
	if err != nil {
		return r.abort("%v", err)
	}
	r.ok("pod %s: %s", p2.Name, rolloutMessage(p2))
	batches := r.fleetEvents("FleetRolloutBatchDispatched") - dispatchedBefore
	r.check(batches >= 2, fmt.Sprintf("Flightctl rolled the new version out in %d batches (the first of one device)", batches),
		fmt.Sprintf("Flightctl dispatched %d batches for the update, want at least 2", batches))
	r.note("With maxSurge 1 the DaemonSet keeps the old pod until the new one is Ready, which it is not while " + failDevice7 + " fails;\n" +
		"the Fleet's template already carries the new version: one application, rewritten in place.")
	if apps, err := r.fleetApps(); err == nil {
		r.check(len(apps) == 1, "the template holds one vk-flightctl application: "+strings.Join(apps, ", "),
			"the template holds "+strings.Join(apps, ", ")+", want one application")
	}
	r.showFleetTemplate()

	r.step("Step 5: deleting the DaemonSet removes the application from the Fleet's template")
	if _, err := r.kubectl("delete", "daemonset", ds7, "--timeout=60s"); err != nil {
		r.fail("kubectl delete: %v", err)
	}
	if _, err := r.waitFor("application removed from the template", limitRollout, time.Second, func() (bool, string, error) {
		apps, err := r.fleetApps()
		return err == nil && len(apps) == 0, strings.Join(apps, ","), err
	}); err != nil {
		r.fail("%v", err)
	} else {
		r.ok("the Fleet's template has no vk-flightctl application any more")
	}
	if _, err := r.kubectl("delete", "fleetbinding", fleet7, "-n", e.bindingNamespace(), "--timeout=60s"); err != nil {
		r.fail("deleting the FleetBinding: %v", err)
	}
	return r.err()
}

// waitRollout waits for the DaemonSet's pod with image whose FleetRollout
// condition says want.
func (r *run) waitRollout(image, want string) (*corev1.Pod, error) {
	var got *corev1.Pod
	_, err := r.waitFor("a "+ds7+" pod with "+image+" saying \""+want+"\"", limitRollout, time.Second, func() (bool, string, error) {
		var list corev1.PodList
		if _, err := r.getJSON(&list, "pods", "-n", nsDefault, "-l", "app="+ds7); err != nil {
			return false, "", err
		}
		state := ""
		for i := range list.Items {
			p := &list.Items[i]
			if len(p.Spec.Containers) == 0 || p.Spec.Containers[0].Image != image || p.DeletionTimestamp != nil {
				continue
			}
			msg := rolloutMessage(p)
			state = p.Name + ": " + msg
			if strings.HasPrefix(msg, want) {
				got = p
				return true, state, nil
			}
		}
		return false, state, nil
	})
	return got, err
}

func rolloutMessage(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == "vk.flightctl.io/FleetRollout" {
			return c.Message
		}
	}
	return ""
}

// fleetApps are the vk-flightctl applications in the Fleet's template.
func (r *run) fleetApps() ([]string, error) {
	var fl struct {
		Spec struct {
			Template struct {
				Spec struct {
					Applications []application `json:"applications"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := r.flightctlGet("/api/v1/fleets/"+fleet7, &fl); err != nil {
		return nil, err
	}
	var out []string
	for _, a := range fl.Spec.Template.Spec.Applications {
		if strings.HasPrefix(a.Name, "vk-") {
			out = append(out, a.Name)
		}
	}
	return out, nil
}

// showFleetTemplate prints the Fleet's template applications and images.
func (r *run) showFleetTemplate() {
	var fl struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Template struct {
				Spec struct {
					Applications []application `json:"applications"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	r.printf("$ curl -s -H \"Authorization: Bearer $FLIGHTCTL_TOKEN\" $FLIGHTCTL_URL/api/v1/fleets/%s | jq '.spec.template.spec.applications[] | .name'\n", fleet7)
	if err := r.flightctlGet("/api/v1/fleets/"+fleet7, &fl); err != nil {
		r.printf("    %v\n", err)
		return
	}
	for _, a := range fl.Spec.Template.Spec.Applications {
		r.printf("    %s  images %s\n", a.Name, strings.Join(imagesIn(a.text()), ", "))
	}
	r.printf("    template version %s\n", fl.Metadata.Annotations["fleet-controller/templateVersion"])
}

// fleetEvents counts the Flightctl events of the Fleet with reason.
func (r *run) fleetEvents(reason string) int {
	var list struct {
		Items []struct {
			Reason string `json:"reason"`
		} `json:"items"`
	}
	if err := r.flightctlGet("/api/v1/events?fieldSelector=involvedObject.kind=Fleet,involvedObject.name="+fleet7+",reason="+reason+"&limit=1000", &list); err != nil {
		return 0
	}
	return len(list.Items)
}

// flightctlSend sends a JSON body to the Flightctl (or simulator control)
// API and returns the status code.
func (r *run) flightctlSend(method, path string, body any) (int, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(r.e.FlightctlURL, "/")+path, bytes.NewReader(raw))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.e.FlightctlToken)
	req.Header.Set("Content-Type", "application/json")
	client, err := httpClientFor(r.e.FlightctlCA)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(out)))
	}
	return resp.StatusCode, nil
}
