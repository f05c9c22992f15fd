package quickstart

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Names the scenarios create. Scenario 1's pod lives in namespace codeco
// as in the seed; everything else in default.
const (
	nsCodeco    = "codeco"
	nsDefault   = "default"
	podNginx    = "nginx-edge"
	deployHello = "hello-edge"
	podHog      = "resource-hog"
	podUpdate   = "update-test"
	deployEnv   = "env-demo"
	podReconn   = "reconnect-test"
	podResil    = "resilience-test"

	imageNginx   = "nginx:alpine"
	imageHello1  = "gcr.io/google-samples/hello-app:1.0"
	imageHello2  = "gcr.io/google-samples/hello-app:2.0"
	providerName = "vk-flightctl-provider"
)

// Limits from the seed's success criteria.
const (
	limitRunning   = 10 * time.Second // scenario 1: Running within 10 s
	limitFailed    = 10 * time.Second // scenario 3: rejected promptly (seed shows 5 s)
	limitUpdate    = 15 * time.Second // scenario 4: update within 15 s
	limitPodGone   = 5 * time.Second  // scenario 6: pod deleted within 5 s
	limitAppGone   = 10 * time.Second // scenario 6: application removed within 10 s
	limitUnknown   = 30 * time.Second // scenario 5: disconnect seen (detection + one poll)
	slackReconnect = 20 * time.Second // scenario 5: timeout expiry noticed within this
	sightingLag    = time.Second      // scenario 5: the pod's Unknown status seen this much after the manager saw the disconnection
)

func nsManifest(ns string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
}

func nginxManifest(node string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  nodeName: %s
  containers:
  - name: nginx
    image: %s
    resources:
      requests:
        cpu: "100m"
        memory: "128Mi"
`, podNginx, nsCodeco, node, imageNginx)
}

// ensureNamespace creates a namespace unless it exists.
func (r *run) ensureNamespace(ns string) error {
	var obj map[string]any
	found, err := r.getJSON(&obj, "namespace", ns)
	if err != nil || found {
		return err
	}
	return r.apply(nsManifest(ns))
}

// ---------------------------------------------------------------- scenario 1

// Scenario1Deploy creates nginx-edge in namespace codeco on the virtual
// node and checks it runs on a device within 10 s, with kubelet-style
// events, the device's IP, and its application in Flightctl.
func Scenario1Deploy(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node := e.NodeName()
	r.note("Seed correction: the seed binds the pod to node vk-flightctl-node in namespace codeco.\n" +
		"The manager registers one node per FleetBinding, named vk-flightctl-<fleet>, so the pod\n" +
		"targets " + node + "; namespace codeco is created first (the seed never creates it).")

	r.step("Step 1: create namespace codeco and a pod bound to the virtual node")
	if err := r.ensureNamespace(nsCodeco); err != nil {
		return r.abort("creating namespace %s: %v", nsCodeco, err)
	}
	if old, err := r.pod(nsCodeco, podNginx); err == nil && old != nil {
		r.note("a codeco/nginx-edge from an earlier run exists; deleting it so this one starts from Pending")
		if _, err := r.kubectl("delete", "pod", podNginx, "-n", nsCodeco, "--timeout=60s"); err != nil {
			return r.abort("deleting the old pod: %v", err)
		}
	}
	start := time.Now()
	if err := r.apply(nginxManifest(node)); err != nil {
		return r.abort("creating the pod: %v", err)
	}

	r.step("Step 2: watch the pod status")
	stop := r.watch("get", "pod", podNginx, "-n", nsCodeco)
	p, _, err := r.waitPod(nsCodeco, podNginx, 90*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
	took := time.Since(start)
	stop()
	if err != nil {
		return r.abort("%v", err)
	}
	r.check(took <= limitRunning, fmt.Sprintf("pod Running and Ready %s after creation (seed: within %s)", round(took), limitRunning),
		fmt.Sprintf("pod took %s to be Running and Ready (seed: within %s)", round(took), limitRunning))
	uid := string(p.UID)
	dev := p.Annotations[DeviceLabel]
	if !r.check(dev != "", "placed on device "+dev+" (annotation "+DeviceLabel+")", "pod has no "+DeviceLabel+" annotation") {
		return r.err()
	}
	r.check(p.Labels[DeviceLabel] == dev, "label "+DeviceLabel+"="+dev+" mirrors the annotation",
		fmt.Sprintf("label %s is %q, annotation says %q", DeviceLabel, p.Labels[DeviceLabel], dev))

	r.step("Step 3: verify pod details")
	evs, evErr := r.waitEvents(nsCodeco, podNginx, uid, 15*time.Second, "Pulling", "Pulled", "Created", "Started")
	if _, err := r.kubectl("describe", "pod", podNginx, "-n", nsCodeco); err != nil {
		r.fail("kubectl describe pod: %v", err)
	}
	r.note("No Scheduled event: spec.nodeName bypasses kube-scheduler, as the seed's manifest asks.")
	if evErr != nil {
		r.fail("%v", evErr)
	}
	for _, reason := range []string{"Pulling", "Pulled", "Created", "Started"} {
		ev, ok := findEvent(evs, reason)
		r.check(ok && eventSource(ev) == providerName,
			fmt.Sprintf("event %s from %s: %s", reason, providerName, ev.Message),
			fmt.Sprintf("no %s event from %s (have: %s)", reason, providerName, eventReasons(evs)))
	}
	r.check(p.Spec.NodeName == node, "Node: "+node, "pod is on node "+p.Spec.NodeName+", want "+node)
	d, err := r.getDevice(dev)
	if err != nil {
		r.fail("reading device %s from Flightctl: %v", dev, err)
	} else {
		r.check(p.Status.PodIP != "" && p.Status.PodIP == d.ip(),
			fmt.Sprintf("IP %s is device %s's address (status.systemInfo.netIpDefault)", p.Status.PodIP, dev),
			fmt.Sprintf("pod IP %q, but device %s reports netIpDefault %q", p.Status.PodIP, dev, d.ip()))
	}
	r.note("Seed correction: a NODE column reading vk-flightctl-edge-fleet-1/<device> cannot exist: NODE is\n" +
		"spec.nodeName. The device is the " + DeviceLabel + " label, shown with -L:")
	_, _ = r.kubectl("get", "pods", "-n", nsCodeco, "-o", "wide", "-L", DeviceLabel)

	r.step("Step 4: verify the workload in Flightctl")
	r.note("Seed correction: Flightctl has no /devices/<id>/workloads endpoint. The pod is an application\n" +
		"in the device's spec.applications, and the agent reports it in status.applications.")
	app := appName(nsCodeco, podNginx, uid)
	_, _ = r.waitFor("application "+app+" Running on "+dev, 15*time.Second, 250*time.Millisecond, func() (bool, string, error) {
		d, err := r.getDevice(dev)
		if err != nil {
			return false, "", err
		}
		st, ok := d.appStatus(app)
		return ok && st.Status == "Running", st.Status, nil
	})
	if d, err = r.curlDevice(dev); err != nil {
		return r.abort("reading device %s: %v", dev, err)
	}
	r.showApps(d, "vk-"+nsCodeco+"-"+podNginx+"-")
	a, inSpec := d.app(app)
	r.check(inSpec, "application "+app+" (vk-<namespace>-<name>-<sha256(uid)[:10]>, docs/CONVENTIONS.md) is in spec.applications",
		fmt.Sprintf("no application %s in spec.applications of %s (found %s)", app, dev, appNames(d.appsWithPrefix("vk-"))))
	if inSpec {
		r.check(hasImage(a, imageNginx), "the application runs image "+imageNginx+" (normalized: "+strings.Join(imagesIn(a.text()), ", ")+")",
			"the application does not name image "+imageNginx+": "+strings.Join(imagesIn(a.text()), ", "))
	}
	st, ok := d.appStatus(app)
	r.check(ok && st.Status == "Running", "status.applications reports "+app+" Running, ready "+st.Ready,
		fmt.Sprintf("status.applications for %s: %+v (present %t), want Running", app, st, ok))

	r.step("Step 5: kubectl logs and kubectl exec, through Flightctl's device console")
	if e.NoConsole {
		r.note("Skipped against a real Flightctl with fake devices: they open no console session.")
		return r.err()
	}
	r.note("The API server verifies the kubelet API's certificate (--kubelet-certificate-authority; the\n" +
		"manager got it through a kubernetes.io/kubelet-serving CSR) and dials the node's InternalIP.")
	logs, err := r.kubectl("logs", podNginx, "-n", nsCodeco)
	r.check(err == nil && strings.Contains(logs, "-nginx line 3\n"), "kubectl logs prints the container's lines (podman logs on "+dev+")",
		fmt.Sprintf("kubectl logs: %q, %v", logs, err))
	out, err := r.kubectl("exec", podNginx, "-n", nsCodeco, "--", "echo", "ok")
	r.check(err == nil && out == "ok\n", "kubectl exec -- echo ok prints ok and exits 0", fmt.Sprintf("kubectl exec echo ok: %q, %v", out, err))
	_, err = r.kubectl("exec", podNginx, "-n", nsCodeco, "--", "sh", "-c", "exit 3")
	var ee *exec.ExitError
	r.check(errors.As(err, &ee) && ee.ExitCode() == 3, "kubectl exec -- sh -c 'exit 3' exits 3",
		fmt.Sprintf("kubectl exec sh -c 'exit 3': %v, want exit status 3", err))
	return r.err()
}

// ---------------------------------------------------------------- scenario 2

func helloManifest() string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 3
  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      nodeSelector:
        flightctl.io/fleet: %%s
      containers:
      - name: hello
        image: %s
        resources:
          requests:
            cpu: "50m"
            memory: "64Mi"
`, deployHello, nsDefault, deployHello, deployHello, imageHello1)
}

// Scenario2Fleet runs a 3-replica Deployment that targets the fleet with
// nodeSelector flightctl.io/fleet, checks the replicas spread over the
// devices, and checks `kubectl describe node` counts every pod's requests.
func Scenario2Fleet(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node := e.NodeName()

	r.step("Step 1: the virtual node carries the fleet label")
	_, _ = r.kubectl("get", "node", node, "--show-labels")
	var n corev1.Node
	if found, err := r.getJSON(&n, "node", node); err != nil || !found {
		return r.abort("node %s not found (err %v)", node, err)
	}
	r.check(n.Labels["flightctl.io/fleet"] == e.Fleet, "label flightctl.io/fleet="+e.Fleet,
		fmt.Sprintf("node label flightctl.io/fleet is %q, want %q", n.Labels["flightctl.io/fleet"], e.Fleet))

	r.step("Step 2: create a Deployment that targets the fleet")
	// Pods already running must not notice new pods joining their device.
	neighbour, _ := r.pod(nsCodeco, podNginx)
	var stopSampling func() []string
	if neighbour != nil && podReady(neighbour) {
		stopSampling = r.sampleReady(nsCodeco, podNginx)
		defer stopSampling() // idempotent; ends the sampling on early returns
	}
	if err := r.apply(fmt.Sprintf(helloManifest(), e.Fleet)); err != nil {
		return r.abort("creating the Deployment: %v", err)
	}

	r.step("Step 3: verify the pods are spread over the devices")
	start := time.Now()
	if _, err := r.kubectl("rollout", "status", "deployment/"+deployHello, "-n", nsDefault, "--timeout=90s"); err != nil {
		r.fail("rollout did not finish: %v", err)
	}
	pods, err := r.waitReady(nsDefault, "app="+deployHello, 3, 30*time.Second)
	if err != nil {
		return r.abort("%v", err)
	}
	r.ok("3 replicas Running and Ready %s after the Deployment was created", round(time.Since(start)))
	if stopSampling != nil {
		// The last replica's device may still be applying its spec.
		time.Sleep(2 * time.Second)
		blips := stopSampling()
		r.check(len(blips) == 0, "codeco/nginx-edge (scenario 1) stayed Running and Ready while the replicas were deployed beside it",
			fmt.Sprintf("codeco/nginx-edge (scenario 1, untouched) lost readiness while replicas were deployed to the fleet: %s", strings.Join(blips, "; ")))
	}
	r.note("Seed correction: NODE is the virtual node for every replica; the device each replica runs on is\n" +
		"the " + DeviceLabel + " label (the seed's NODE column vk-flightctl-edge-fleet-1/device-1 cannot exist).")
	_, _ = r.kubectl("get", "pods", "-n", nsDefault, "-l", "app="+deployHello, "-o", "wide", "-L", DeviceLabel)
	byDevice := map[string][]corev1.Pod{}
	for _, p := range pods {
		if dev, ok := r.deviceOf(&p); ok {
			byDevice[dev] = append(byDevice[dev], p)
		}
	}
	devices, err := r.fleetDevices()
	if err != nil {
		r.fail("listing the fleet's devices: %v", err)
	}
	placed := 0
	for _, ps := range byDevice {
		placed += len(ps)
	}
	if len(devices) >= 2 && placed == len(pods) {
		r.check(len(byDevice) >= 2, fmt.Sprintf("replicas spread over %d devices: %s", len(byDevice), deviceCounts(byDevice)),
			fmt.Sprintf("all replicas on one device (%s) although the fleet has %d devices", deviceCounts(byDevice), len(devices)))
	}
	r.note("Each device runs its replicas as applications:")
	for _, dev := range sortedKeys(byDevice) {
		d, err := r.curlDevice(dev)
		if err != nil {
			r.fail("reading device %s: %v", dev, err)
			continue
		}
		r.showApps(d, "vk-"+nsDefault+"-"+deployHello+"-")
		for _, p := range byDevice[dev] {
			app := appName(p.Namespace, p.Name, string(p.UID))
			_, ok := d.app(app)
			r.check(ok, "pod "+p.Name+" is application "+app+" on "+dev, "no application "+app+" for pod "+p.Name+" on "+dev)
		}
	}

	r.step("Step 4: verify resource allocation")
	r.checkAllocated("kubectl describe node " + node + " | grep -A 7 'Allocated resources'")
	return r.err()
}

// waitReady waits until n non-terminating pods match the selector and all
// are Running and Ready, and returns them.
func (r *run) waitReady(ns, selector string, n int, timeout time.Duration) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	_, err := r.waitFor(fmt.Sprintf("%d Ready pods -l %s", n, selector), timeout, 250*time.Millisecond, func() (bool, string, error) {
		var list corev1.PodList
		if _, err := r.getJSON(&list, "pods", "-n", ns, "-l", selector); err != nil {
			return false, "", err
		}
		pods = pods[:0]
		ready := 0
		var states []string
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			pods = append(pods, p)
			if p.Status.Phase == corev1.PodRunning && podReady(&p) {
				ready++
			} else {
				states = append(states, p.Name+": "+podState(&p))
			}
		}
		return len(pods) == n && ready == n, fmt.Sprintf("%d pods, %d ready; %s", len(pods), ready, strings.Join(states, "; ")), nil
	})
	return pods, err
}

// sampleReady polls a pod's readiness in the background until the
// returned function is called, which returns every observation of it not
// Running and Ready (deduplicated, with the time since sampling began).
func (r *run) sampleReady(ns, name string) (stop func() []string) {
	done := make(chan struct{})
	result := make(chan []string, 1)
	start := time.Now()
	go func() {
		var blips []string
		last := ""
		for {
			select {
			case <-done:
				result <- blips
				return
			case <-time.After(100 * time.Millisecond):
			}
			p, err := r.pod(ns, name)
			if err != nil || p == nil {
				continue
			}
			state := podState(p)
			if (p.Status.Phase != corev1.PodRunning || !podReady(p)) && state != last {
				blips = append(blips, fmt.Sprintf("+%s %s", round(time.Since(start)), state))
			}
			last = state
		}
	}()
	var once sync.Once
	var blips []string
	return func() []string {
		once.Do(func() {
			close(done)
			blips = <-result
		})
		return blips
	}
}

// checkAllocated shows the node's "Allocated resources" and checks they
// equal the sum of the requests of the pods on the node.
func (r *run) checkAllocated(cmd string) allocated {
	var got, want allocated
	var pods []corev1.Pod
	// The node's pods and describe are read separately; retry briefly so a
	// pod finishing deletion in between does not fail the check.
	_, _ = r.waitFor("allocated resources settle", 10*time.Second, 500*time.Millisecond, func() (bool, string, error) {
		var err error
		if want, pods, err = r.expectedAllocated(); err != nil {
			return false, "", err
		}
		describe, err := r.describeNode()
		if err != nil {
			return false, "", err
		}
		if got, err = parseAllocated(describe); err != nil {
			return false, "", err
		}
		return sameQuantity(got.CPU, want.CPU) && sameQuantity(got.Memory, want.Memory), "describe says " + got.String(), nil
	})
	describe, err := r.describeNode()
	if err != nil {
		r.fail("kubectl describe node: %v", err)
		return got
	}
	r.showSection(cmd, describe, "Allocated resources:")
	var parts []string
	for i := range pods {
		c, m := podRequests(&pods[i])
		parts = append(parts, fmt.Sprintf("%s/%s %s/%s", pods[i].Namespace, pods[i].Name, c.String(), m.String()))
	}
	sort.Strings(parts)
	r.note("pods on the node (cpu/memory requests): " + strings.Join(parts, ", "))
	r.check(sameQuantity(got.CPU, want.CPU) && sameQuantity(got.Memory, want.Memory),
		fmt.Sprintf("allocated requests %s = sum over the %d pods on the node", got, len(pods)),
		fmt.Sprintf("describe node says %s, the %d pods on the node request %s", got, len(pods), want))
	return got
}

// ---------------------------------------------------------------- scenario 3

// Scenario3Resources binds a pod that asks for 100 CPUs and 1000Gi to the
// node and checks vk-flightctl fails it with an "Insufficient resources"
// event without writing anything to Flightctl.
func Scenario3Resources(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node := e.NodeName()

	r.step("Step 1: check current allocatable resources")
	describe, err := r.describeNode()
	if err != nil {
		return r.abort("kubectl describe node: %v", err)
	}
	r.showSection("kubectl describe node "+node+" | grep Allocatable -A 4", describe, "Allocatable:")

	r.step("Step 2: create a pod requesting more than the fleet has")
	if old, err := r.pod(nsDefault, podHog); err == nil && old != nil {
		_, _ = r.kubectl("delete", "pod", podHog, "-n", nsDefault, "--timeout=30s")
	}
	start := time.Now()
	if err := r.apply(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  nodeName: %s
  containers:
  - name: hog
    image: %s
    resources:
      requests:
        cpu: "100"       # 100 CPU cores (exceeds capacity)
        memory: "1000Gi" # 1000 GiB of memory
`, podHog, nsDefault, node, imageNginx)); err != nil {
		return r.abort("creating the pod: %v", err)
	}

	r.step("Step 3: verify the pod is rejected")
	p, _, err := r.waitPod(nsDefault, podHog, 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	took := time.Since(start)
	_, _ = r.kubectl("get", "pod", podHog, "-n", nsDefault)
	if err != nil {
		return r.abort("%v", err)
	}
	r.check(took <= limitFailed, fmt.Sprintf("pod Failed %s after creation", round(took)),
		fmt.Sprintf("pod took %s to fail (want within %s)", round(took), limitFailed))
	evs, evErr := r.waitEvents(nsDefault, podHog, string(p.UID), 10*time.Second, "FailedScheduling")
	_, _ = r.kubectl("describe", "pod", podHog, "-n", nsDefault)
	if evErr != nil {
		r.fail("%v", evErr)
	}
	ev, _ := findEvent(evs, "FailedScheduling")
	const wantPrefix = "Insufficient resources: requested cpu=100, memory=1000Gi; available "
	r.check(ev.Type == corev1.EventTypeWarning && eventSource(ev) == providerName && strings.HasPrefix(ev.Message, wantPrefix),
		"Warning FailedScheduling from "+providerName+": "+ev.Message,
		fmt.Sprintf("want a Warning FailedScheduling event from %s starting %q; got type %q source %q message %q",
			providerName, wantPrefix, ev.Type, eventSource(ev), ev.Message))
	r.note("The message goes on past the seed's: a pod runs on exactly one device, so it names the largest\n" +
		"free room on one device and says the pod can never be placed.")

	devices, err := r.fleetDevices()
	if err != nil {
		r.fail("listing devices: %v", err)
	}
	var leaked []string
	for _, dev := range devices {
		d, err := r.getDevice(dev)
		if err != nil {
			r.fail("reading device %s: %v", dev, err)
			continue
		}
		for _, a := range d.appsWithPrefix("vk-" + nsDefault + "-" + podHog + "-") {
			leaked = append(leaked, dev+"/"+a.Name)
		}
	}
	r.check(len(leaked) == 0, fmt.Sprintf("nothing was written to Flightctl (no %s application on %s)", podHog, strings.Join(devices, ", ")),
		"applications were written for the rejected pod: "+strings.Join(leaked, ", "))

	r.step("Step 4: clean up the failed pod")
	start = time.Now()
	if _, err := r.kubectl("delete", "pod", podHog, "-n", nsDefault, "--timeout=30s"); err != nil {
		r.fail("kubectl delete pod %s: %v", podHog, err)
	} else {
		r.ok("pod deleted in %s", round(time.Since(start)))
	}
	return r.err()
}

// ---------------------------------------------------------------- scenario 4

func updateManifest(node, version, image, env string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels:
    version: %s
spec:
  nodeName: %s
  containers:
  - name: app
    image: %s
    env:
    - name: VERSION
      value: "%s"
    resources:
      requests:
        cpu: "100m"
        memory: "128Mi"
`, podUpdate, nsDefault, version, node, image, env)
}

func envManifest(version string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
  namespace: %s
spec:
  replicas: 1
  strategy:
    type: Recreate   # stop the old pod before the new one starts: simple replace
  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      nodeSelector:
        flightctl.io/fleet: %%s
      containers:
      - name: app
        image: %s
        env:
        - name: VERSION
          value: "%s"
        resources:
          requests:
            cpu: "50m"
            memory: "64Mi"
`, deployEnv, nsDefault, deployEnv, deployEnv, imageHello1, version)
}

// Scenario4Update changes a running pod's image and checks the device
// replaces the application in place; then changes an environment
// variable, which Kubernetes refuses on a pod, through a Deployment
// rollout.
func Scenario4Update(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node := e.NodeName()

	r.step("Step 1: deploy the initial workload")
	if old, err := r.pod(nsDefault, podUpdate); err == nil && old != nil {
		_, _ = r.kubectl("delete", "pod", podUpdate, "-n", nsDefault, "--timeout=60s")
	}
	if err := r.apply(updateManifest(node, "v1", imageHello1, "1.0")); err != nil {
		return r.abort("creating the pod: %v", err)
	}
	if _, err := r.kubectl("wait", "--for=condition=Ready", "pod/"+podUpdate, "-n", nsDefault, "--timeout=30s"); err != nil {
		return r.abort("pod did not become Ready: %v", err)
	}
	p, err := r.pod(nsDefault, podUpdate)
	if err != nil || p == nil {
		return r.abort("reading the pod: %v", err)
	}
	uid := string(p.UID)
	dev, ok := r.deviceOf(p)
	if !ok {
		return r.err()
	}
	app := appName(nsDefault, podUpdate, uid)
	r.ok("Ready on device %s as application %s", dev, app)

	r.step("Step 2: update the pod")
	r.note("Seed correction: the seed changes both the image and the VERSION env var of the running pod.\n" +
		"Kubernetes refuses that: in a pod's containers only the image may change. The seed's manifest:")
	_, err = r.kubectlIn(updateManifest(node, "v2", imageHello2, "2.0"), "apply", "-f", "-")
	r.check(err != nil && strings.Contains(err.Error(), "Forbidden"),
		"the API server refused the env change (Forbidden: pod updates may not change fields other than the image ...)",
		fmt.Sprintf("expected the API server to refuse changing env on a pod, got %v", err))
	r.note("So the pod update changes the image (and the version label) only; step 5 changes env with a Deployment.")
	mark := r.logMark()
	start := time.Now()
	if err := r.apply(updateManifest(node, "v2", imageHello2, "1.0")); err != nil {
		return r.abort("updating the image: %v", err)
	}

	r.step("Step 3: watch the pod during the update")
	stop := r.watch("get", "pod", podUpdate, "-n", nsDefault)
	p, _, err = r.waitPod(nsDefault, podUpdate, 60*time.Second, "Running and Ready with "+imageHello2, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p) && len(p.Status.ContainerStatuses) == 1 &&
			strings.HasSuffix(p.Status.ContainerStatuses[0].Image, "hello-app:2.0")
	})
	took := time.Since(start)
	stop()
	if err != nil {
		return r.abort("%v", err)
	}
	r.check(took <= limitUpdate, fmt.Sprintf("Running and Ready with the new image %s after the update (seed: within %s)", round(took), limitUpdate),
		fmt.Sprintf("update took %s (seed: within %s)", round(took), limitUpdate))
	r.check(string(p.UID) == uid, "same pod (UID "+uid+"): the replace happens on the device, the pod is not recreated",
		"pod UID changed from "+uid+" to "+string(p.UID))
	r.note("The pod is never Terminating nor recreated, unlike the seed's sketch: the device stops the old\n" +
		"containers and pulls and starts the new image (the container shows ContainerCreating meanwhile).")

	r.step("Step 4: verify the updated version")
	r.printf("$ kubectl describe pod %s | grep Image:\n", podUpdate)
	if out, err := r.kubectlQuiet("describe", "pod", podUpdate, "-n", nsDefault); err == nil {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "Image:") {
				r.printf("    %s\n", strings.TrimSpace(line))
			}
		}
	}
	r.check(p.Spec.Containers[0].Image == imageHello2, "spec image "+imageHello2, "spec image is "+p.Spec.Containers[0].Image)
	evs, _ := r.waitEvents(nsDefault, podUpdate, uid, 5*time.Second, "Replacing")
	if ev, ok := findEvent(evs, "Replacing"); ok {
		r.ok("event Replacing: %s", ev.Message)
	}
	var d *device
	_, _ = r.waitFor("application "+app+" Running with "+imageHello2, 15*time.Second, 250*time.Millisecond, func() (bool, string, error) {
		var err error
		if d, err = r.getDevice(dev); err != nil {
			return false, "", err
		}
		a, _ := d.app(app)
		st, _ := d.appStatus(app)
		return hasImage(a, imageHello2) && st.Status == "Running", st.Status, nil
	})
	if d, err = r.curlDevice(dev); err != nil {
		return r.abort("reading device %s: %v", dev, err)
	}
	r.showApps(d, "vk-"+nsDefault+"-"+podUpdate+"-")
	apps := d.appsWithPrefix("vk-" + nsDefault + "-" + podUpdate + "-")
	a, _ := d.app(app)
	r.check(len(apps) == 1 && apps[0].Name == app && hasImage(a, imageHello2) && !hasImage(a, imageHello1),
		"one application for the pod, same name, now "+imageHello2+": replaced in place, never two copies",
		fmt.Sprintf("want exactly application %s with %s, found %s (images %v)", app, imageHello2, appNames(apps), imagesIn(a.text())))
	r.showLog(mark, 5*time.Second, logWant{msg: "Workload deployed", fields: map[string]string{"pod": nsDefault + "/" + podUpdate, "update": "true"}})

	r.step("Step 5: change an environment variable with a Deployment rollout")
	r.note("What cannot change on a pod changes through its controller. A Deployment with strategy Recreate\n" +
		"replaces its pod the simple-replace way: the old pod (and its application) go before the new one starts.")
	if err := r.apply(fmt.Sprintf(envManifest("1.0"), e.Fleet)); err != nil {
		return r.abort("creating the Deployment: %v", err)
	}
	if _, err := r.kubectl("rollout", "status", "deployment/"+deployEnv, "-n", nsDefault, "--timeout=60s"); err != nil {
		return r.abort("rollout: %v", err)
	}
	olds, err := r.waitReady(nsDefault, "app="+deployEnv, 1, 30*time.Second)
	if err != nil {
		return r.abort("%v", err)
	}
	old := olds[0]
	oldApp := appName(old.Namespace, old.Name, string(old.UID))
	oldDev, ok := r.deviceOf(&old)
	if !ok {
		return r.err()
	}
	start = time.Now()
	if _, err := r.kubectl("set", "env", "deployment/"+deployEnv, "-n", nsDefault, "VERSION=2.0"); err != nil {
		return r.abort("kubectl set env: %v", err)
	}
	if _, err := r.kubectl("rollout", "status", "deployment/"+deployEnv, "-n", nsDefault, "--timeout=60s"); err != nil {
		r.fail("rollout: %v", err)
	}
	var cur corev1.Pod
	_, err = r.waitFor("the new env-demo pod Ready with VERSION=2.0", 60*time.Second, 250*time.Millisecond, func() (bool, string, error) {
		var list corev1.PodList
		if _, err := r.getJSON(&list, "pods", "-n", nsDefault, "-l", "app="+deployEnv); err != nil {
			return false, "", err
		}
		var states []string
		for _, p := range list.Items {
			states = append(states, p.Name+": "+podState(&p))
			if p.UID != old.UID && p.DeletionTimestamp == nil && podReady(&p) && envValue(&p, "VERSION") == "2.0" {
				cur = p
				return len(list.Items) == 1, strings.Join(states, "; "), nil
			}
		}
		return false, strings.Join(states, "; "), nil
	})
	if err != nil {
		return r.abort("%v", err)
	}
	r.ok("rollout to VERSION=2.0 done in %s", round(time.Since(start)))
	_, _ = r.kubectl("get", "pods", "-n", nsDefault, "-l", "app="+deployEnv, "-o", "wide", "-L", DeviceLabel)
	_, _ = r.kubectl("get", "pod", cur.Name, "-n", nsDefault, "-o", `jsonpath={.spec.containers[0].env}{"\n"}`)
	newApp := appName(cur.Namespace, cur.Name, string(cur.UID))
	newDev, ok := r.deviceOf(&cur)
	if !ok {
		return r.err()
	}
	if d, err = r.curlDevice(newDev); err != nil {
		return r.abort("reading device %s: %v", newDev, err)
	}
	r.showApps(d, "vk-"+nsDefault+"-"+deployEnv+"-")
	na, ok := d.app(newApp)
	r.check(ok && strings.Contains(na.text(), "VERSION=2.0"), "application "+newApp+" on "+newDev+" sets VERSION=2.0",
		fmt.Sprintf("application %s on %s (present %t) does not set VERSION=2.0:\n%s", newApp, newDev, ok, na.text()))
	_, err = r.waitFor("old application "+oldApp+" removed from "+oldDev, 10*time.Second, 250*time.Millisecond, func() (bool, string, error) {
		od, err := r.getDevice(oldDev)
		if err != nil {
			return false, "", err
		}
		_, still := od.app(oldApp)
		return !still, "still in spec.applications", nil
	})
	r.check(err == nil, "the old pod's application "+oldApp+" is gone from "+oldDev, fmt.Sprintf("%v", err))
	return r.err()
}

func envValue(p *corev1.Pod, name string) string {
	for _, c := range p.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

// ---------------------------------------------------------------- scenario 5

func pinnedManifest(name, node, dev string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  nodeName: %s
  nodeSelector:
    flightctl.io/device-id: %s  # target a specific device
  containers:
  - name: app
    image: %s
    resources:
      requests:
        cpu: "50m"
        memory: "64Mi"
`, name, nsDefault, node, dev, imageNginx)
}

// Scenario5Disconnect cuts a device off twice: once it comes back before
// the FleetBinding's reconnect timeout (the pod returns to Running, same
// UID), once it does not (the bare pod is deleted, its application removed
// from the device, and pods of Deployments move to the other device).
//
// On the simulator the two cuts are made one after the other on one
// device, as the seed quickstart does. A real Flightctl takes up to 7
// minutes to notice each cut (5 minutes without contact, checked every 2
// minutes), so there both devices are cut at once and the run waits for
// that detection once: one device comes back in time, the other stays
// away past the timeout.
func Scenario5Disconnect(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node, bns := e.NodeName(), e.bindingNamespace()
	timeout := e.ReconnectTimeout

	r.step("Step 0: the reconnection timeout is configurable")
	_, _ = r.kubectl("get", "configmap", "vk-flightctl-config", "-n", bns, "-o", "jsonpath={.data.reconnectTimeout}{\"\\n\"}")
	out, err := r.kubectl("get", "fleetbinding", e.Fleet, "-n", bns, "-o", "jsonpath={.spec.reconnectTimeout}{\"\\n\"}")
	got, perr := time.ParseDuration(strings.TrimSpace(out))
	r.check(err == nil && perr == nil && got == timeout,
		"the ConfigMap holds the manager-wide default; FleetBinding "+e.Fleet+" overrides it with spec.reconnectTimeout="+timeout.String()+" so this run does not wait 5 minutes",
		fmt.Sprintf("FleetBinding spec.reconnectTimeout is %q (err %v), want %s", strings.TrimSpace(out), err, timeout))

	devices, err := r.fleetDevices()
	if err != nil || len(devices) == 0 {
		return r.abort("listing the fleet's devices: %v (%v)", err, devices)
	}
	// The device that stays away loses every pod on it, and
	// codeco/nginx-edge (deleted in scenario 6) must survive.
	stay := devices[0]
	if p, _ := r.pod(nsCodeco, podNginx); p != nil && len(devices) > 1 {
		if busy := p.Annotations[DeviceLabel]; busy == stay {
			stay = devices[1]
			r.note("The seed pins these pods to device-1. A device that stays away past the timeout loses every\n" +
				"pod on it, and codeco/nginx-edge (deleted in scenario 6) runs on " + busy + ", so this run pins to " + stay + ".")
		}
	}
	if e.DisconnectDetection <= 0 || len(devices) < 2 {
		return r.scenario5OneByOne(node, stay, timeout)
	}
	back := devices[0]
	if back == stay {
		back = devices[1]
	}
	return r.scenario5Together(node, back, stay, timeout)
}

// scenario5OneByOne cuts dev off twice in a row (the simulator notices at
// once, so each cut costs seconds).
func (r *run) scenario5OneByOne(node, dev string, timeout time.Duration) error {
	r.step("Step 1: deploy %s on device %s", podReconn, dev)
	a, err := r.s5deploy(node, podReconn, dev)
	if err != nil {
		return err
	}
	r.step("Step 2: disconnect %s, then reconnect it before the timeout (%s)", dev, timeout)
	if err := r.s5cut(a); err != nil {
		return err
	}
	r.noteDetectionWait(dev)
	r.s5waitUnknown(a)
	if err := r.s5backInTime(a, timeout); err != nil {
		return err
	}

	r.step("Step 3: deploy %s on device %s", podResil, dev)
	b, err := r.s5deploy(node, podResil, dev)
	if err != nil {
		return err
	}
	onDev := r.s5podsOn(dev)
	r.step("Step 4: disconnect %s and let the %s timeout expire", dev, timeout)
	if err := r.s5cut(b); err != nil {
		return err
	}
	r.noteDetectionWait(dev)
	r.s5waitUnknown(b)
	return r.s5expire(b, onDev, timeout)
}

// scenario5Together cuts back and stay off at once, waits once for the
// server to declare both disconnected, brings back in time and leaves
// stay away past the timeout.
func (r *run) scenario5Together(node, back, stay string, timeout time.Duration) error {
	r.step("Step 1: deploy %s on device %s and %s on device %s", podReconn, back, podResil, stay)
	a, err := r.s5deploy(node, podReconn, back)
	if err != nil {
		return err
	}
	b, err := r.s5deploy(node, podResil, stay)
	if err != nil {
		return err
	}
	onDev := r.s5podsOn(stay)

	r.step("Step 2: disconnect %s and %s at once", back, stay)
	r.note("A real Flightctl takes minutes to notice a silent device, so both cuts share one wait: " + back + "\n" +
		"comes back before the " + timeout.String() + " timeout, " + stay + " stays away past it.")
	if err := r.s5cut(a); err != nil {
		return err
	}
	if err := r.s5cut(b); err != nil {
		return err
	}
	r.noteDetectionWait(back + " and " + stay)
	// The server may notice the two in different rounds of its check, so
	// back is reconnected the moment its pod shows Unknown.
	var reconnectErr error
	r.s5waitUnknownAll(func(p *s5pod) {
		if p == a {
			r.printf("    reconnecting %s now that the server has declared it disconnected\n", a.dev)
			reconnectErr = r.simctl("reconnect", a.dev)
			a.reconnected = true
		}
	}, a, b)
	if reconnectErr != nil {
		return r.abort("%v", reconnectErr)
	}

	r.step("Step 3: %s came back before the timeout (%s)", back, timeout)
	if err := r.s5backInTime(a, timeout); err != nil {
		return err
	}
	r.step("Step 4: leave %s away and let the %s timeout expire", stay, timeout)
	return r.s5expire(b, onDev, timeout)
}

// s5pod is one of scenario 5's pinned pods and what happened to its
// device.
type s5pod struct {
	name, dev, uid string
	mark           int64
	cut            time.Time
	// unknownAfter is how long after the cut the pod turned Unknown
	// (-1 if it never did).
	unknownAfter time.Duration
	// reconnected is set once the device was reconnected.
	reconnected bool
	// backAt is when the pod was first seen Running and Ready after the
	// reconnect, while the run waited for something else (zero if not).
	backAt time.Time
}

// s5deploy creates a pod pinned to dev and waits until it is Ready.
func (r *run) s5deploy(node, name, dev string) (*s5pod, error) {
	if err := r.apply(pinnedManifest(name, node, dev)); err != nil {
		return nil, r.abort("creating the pod: %v", err)
	}
	if _, err := r.kubectl("wait", "--for=condition=Ready", "pod/"+name, "-n", nsDefault, "--timeout=30s"); err != nil {
		return nil, r.abort("pod did not become Ready: %v", err)
	}
	p, err := r.pod(nsDefault, name)
	if err != nil || p == nil {
		return nil, r.abort("reading the pod: %v", err)
	}
	if !r.check(p.Annotations[DeviceLabel] == dev, name+" placed on "+dev+" as its nodeSelector flightctl.io/device-id asks",
		name+" placed on "+p.Annotations[DeviceLabel]+", want "+dev) {
		return nil, r.err()
	}
	return &s5pod{name: name, dev: dev, uid: string(p.UID)}, nil
}

// s5podsOn lists every pod on dev, which a timeout affects.
func (r *run) s5podsOn(dev string) []corev1.Pod {
	r.note("Every pod on " + dev + " is affected by a timeout:")
	var onDev corev1.PodList
	_, _ = r.kubectl("get", "pods", "-A", "-l", DeviceLabel+"="+dev, "-o", "wide")
	_, _ = r.getJSON(&onDev, "pods", "-A", "-l", DeviceLabel+"="+dev)
	return onDev.Items
}

// s5cut disconnects the pod's device.
func (r *run) s5cut(p *s5pod) error {
	p.mark = r.logMark()
	p.cut = time.Now()
	if err := r.simctl("disconnect", p.dev); err != nil {
		return r.abort("%v", err)
	}
	return nil
}

// s5waitUnknown waits until the pod shows STATUS Unknown.
func (r *run) s5waitUnknown(p *s5pod) {
	stop := r.watch("get", "pod", p.name, "-n", nsDefault)
	defer stop()
	limit := r.unknownLimit() - time.Since(p.cut)
	_, _, err := r.waitPod(nsDefault, p.name, max(limit, limitUnknown), "STATUS Unknown", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodUnknown })
	p.unknownAfter = time.Since(p.cut)
	if err != nil {
		r.fail("%v", err)
		p.unknownAfter = -1
		return
	}
	r.ok("%s STATUS Unknown %s after %s was disconnected", p.name, round(p.unknownAfter), p.dev)
}

// s5waitUnknownAll waits until every pod has shown STATUS Unknown,
// watching them together: the server may notice the devices in different
// rounds of its check, and each reconnect timeout runs from its own.
func (r *run) s5waitUnknownAll(onSeen func(*s5pod), ps ...*s5pod) {
	seen := make(map[*s5pod]bool, len(ps))
	_, err := r.waitFor("pods "+s5names(ps)+" STATUS Unknown", r.unknownLimit(), 200*time.Millisecond, func() (bool, string, error) {
		var states []string
		for _, p := range ps {
			if seen[p] && (!p.reconnected || !p.backAt.IsZero()) {
				continue
			}
			pod, err := r.pod(nsDefault, p.name)
			if err != nil {
				return false, "", err
			}
			if seen[p] {
				// Reconnected already: note when it is back, since the
				// wait for the others may outlast its timeout.
				if pod != nil && pod.Status.Phase == corev1.PodRunning && podReady(pod) {
					p.backAt = time.Now()
				}
				continue
			}
			if pod != nil && pod.Status.Phase == corev1.PodUnknown {
				seen[p] = true
				p.unknownAfter = time.Since(p.cut)
				r.ok("%s STATUS Unknown %s after %s was disconnected", p.name, round(p.unknownAfter), p.dev)
				onSeen(p)
				continue
			}
			states = append(states, p.name+": "+podState(pod))
		}
		return len(seen) == len(ps), strings.Join(states, "; "), nil
	})
	if err != nil {
		r.fail("%v", err)
		for _, p := range ps {
			if !seen[p] {
				p.unknownAfter = -1
			}
		}
	}
}

func s5names(ps []*s5pod) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

// s5backInTime reconnects the pod's device and checks the pod is back,
// the same pod, with the log lines and events of a short disconnection.
func (r *run) s5backInTime(a *s5pod, timeout time.Duration) error {
	// The reconnect timeout runs from when the device is seen gone: right
	// away on the simulator, minutes later on a real server.
	seenGone := a.cut.Add(max(a.unknownAfter, 0))
	if !a.reconnected {
		if err := r.simctl("reconnect", a.dev); err != nil {
			return r.abort("%v", err)
		}
		a.reconnected = true
	}
	stop := r.watch("get", "pod", a.name, "-n", nsDefault)
	p, took, err := r.waitPod(nsDefault, a.name, 30*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	})
	// The run may have waited for another device after this one came
	// back; the device was away until its pod was first seen back.
	back := time.Now()
	if !a.backAt.IsZero() {
		back = a.backAt
	}
	away := back.Sub(seenGone)
	stop()
	if err != nil {
		return r.abort("%v", err)
	}
	r.ok("%s Running and Ready again %s after the reconnect (device seen away %s, timeout %s)", a.name, round(took), round(away), timeout)
	r.check(string(p.UID) == a.uid, "same pod (UID "+a.uid+"): not rescheduled", "pod was replaced: UID "+a.uid+" became "+string(p.UID))
	if away >= timeout {
		r.fail("the device was seen away %s, not less than the %s timeout: this run did not test an early reconnect", round(away), timeout)
	}
	_, _ = r.kubectl("get", "pod", a.name, "-n", nsDefault, "-o", "wide", "-L", DeviceLabel)
	r.showLog(a.mark, 10*time.Second,
		logWant{msg: "Device disconnected", fields: map[string]string{"device": a.dev, "pod": nsDefault + "/" + a.name}},
		logWant{msg: "Starting reconnection timeout", fields: map[string]string{"device": a.dev, "timeout": timeout.String()}},
		logWant{msg: "Device reconnected", fields: map[string]string{"device": a.dev}},
		logWant{msg: "Cancelled reconnection timeout", fields: map[string]string{"device": a.dev}},
		logWant{msg: "Workload status synchronized", fields: map[string]string{"pod": nsDefault + "/" + a.name}},
	)
	evs, _ := r.waitEvents(nsDefault, a.name, a.uid, 5*time.Second, "DeviceDisconnected", "DeviceConnected")
	for _, reason := range []string{"DeviceDisconnected", "DeviceConnected"} {
		ev, ok := findEvent(evs, reason)
		r.check(ok, "pod event "+reason+": "+ev.Message, "no "+reason+" event on the pod (have: "+eventReasons(evs)+")")
	}
	return nil
}

// s5expire waits for the reconnect timeout of the pod's device to delete
// the pod, checks the rescheduling and the application's removal, then
// reconnects the device.
func (r *run) s5expire(b *s5pod, onDev []corev1.Pod, timeout time.Duration) error {
	dev := b.dev
	app := appName(nsDefault, b.name, b.uid)
	stop := r.watch("get", "pod", b.name, "-n", nsDefault)
	seenGone := b.cut.Add(max(b.unknownAfter, 0))
	_, err := r.waitPodGone(nsDefault, b.name, b.uid, timeout+slackReconnect+r.unknownLimit())
	gone := time.Since(seenGone)
	stop()
	if err != nil {
		r.fail("%v", err)
	} else {
		// The manager's timer starts when it sees the device disconnected;
		// the pod's Unknown status reaches this run a status write and a
		// poll of it later, so "seen" is late by up to sightingLag.
		r.check(gone >= timeout-sightingLag && gone <= timeout+slackReconnect,
			fmt.Sprintf("pod deleted %s after the device was seen disconnected (timeout %s)", round(gone), timeout),
			fmt.Sprintf("pod deleted %s after the device was seen disconnected; want between %s and %s", round(gone), timeout-sightingLag, timeout+slackReconnect))
	}
	r.showLog(b.mark, 10*time.Second,
		logWant{msg: "Device disconnected", fields: map[string]string{"device": dev, "pod": nsDefault + "/" + b.name}},
		logWant{msg: "Starting reconnection timeout", fields: map[string]string{"device": dev, "timeout": timeout.String()}},
		logWant{msg: "Reconnection timeout exceeded", fields: map[string]string{"device": dev}},
		logWant{msg: "Rescheduling workload", fields: map[string]string{"pod": nsDefault + "/" + b.name, "reason": "DeviceTimeout"}},
	)

	r.step("Step 5: verify the pod is rescheduled")
	_, err = r.kubectl("get", "pod", b.name, "-n", nsDefault, "-o", "wide")
	r.check(err != nil && strings.Contains(err.Error(), "NotFound"), "the bare pod is deleted",
		fmt.Sprintf("want NotFound for pod %s, got %v", b.name, err))
	evs, _ := r.events(nsDefault, b.name, b.uid)
	if ev, ok := findEvent(evs, "DeviceTimeout"); ok {
		r.ok("pod event DeviceTimeout: %s", ev.Message)
	}
	r.note("A bare pod has no controller to recreate it. Pods of Deployments that ran on " + dev + " are\n" +
		"recreated by their ReplicaSets and placed on a device that is online:")
	r.checkMoved(onDev, dev)

	r.step("Step 6: the application was removed from %s", dev)
	_, err = r.waitFor("application "+app+" removed from "+dev, limitAppGone, 250*time.Millisecond, func() (bool, string, error) {
		d, err := r.getDevice(dev)
		if err != nil {
			return false, "", err
		}
		_, still := d.app(app)
		return !still, "still in spec.applications", nil
	})
	if d, derr := r.curlDevice(dev); derr == nil {
		r.showApps(d, "vk-"+nsDefault+"-"+b.name+"-")
	}
	r.check(err == nil, "application "+app+" is gone from "+dev+"'s spec.applications, so the device does not run a second copy when it returns",
		fmt.Sprintf("%v", err))

	r.step("Step 7: reconnect %s", dev)
	if err := r.simctl("reconnect", dev); err != nil {
		return r.abort("%v", err)
	}
	_, err = r.waitFor(dev+" Online", 30*time.Second, 250*time.Millisecond, func() (bool, string, error) {
		d, err := r.getDevice(dev)
		if err != nil {
			return false, "", err
		}
		return d.Status.Summary.Status == "Online", d.Status.Summary.Status, nil
	})
	r.check(err == nil, dev+" is Online again and takes pods", fmt.Sprintf("%v", err))
	return r.err()
}

// unknownLimit is how long a disconnect may take to show as pod STATUS
// Unknown: the server's disconnect detection plus one status poll.
func (r *run) unknownLimit() time.Duration { return limitUnknown + r.e.DisconnectDetection }

// noteDetectionWait says, before a long wait, that a real Flightctl only
// declares a silent device disconnected on its own schedule.
func (r *run) noteDetectionWait(dev string) {
	if r.e.DisconnectDetection <= 0 {
		return
	}
	r.note(fmt.Sprintf("Waiting for the Flightctl server to declare %s disconnected: Flightctl v1.2.0 does so after\n"+
		"5 minutes without contact, checked every 2 minutes, so this takes up to %s (started %s).",
		dev, r.unknownLimit().Round(time.Second), time.Now().Format("15:04:05")))
}

// checkMoved checks that pods of controllers that ran on the lost device
// were replaced by Ready pods on other devices.
func (r *run) checkMoved(before []corev1.Pod, lost string) {
	selectors := map[string]int{} // app label -> replicas expected
	for _, p := range before {
		if len(p.OwnerReferences) == 0 || p.Labels["app"] == "" {
			continue
		}
		var dep struct {
			Spec struct {
				Replicas int `json:"replicas"`
			} `json:"spec"`
		}
		if found, err := r.getJSON(&dep, "deployment", p.Labels["app"], "-n", p.Namespace); err == nil && found {
			selectors[p.Namespace+"/"+p.Labels["app"]] = dep.Spec.Replicas
		}
	}
	if len(selectors) == 0 {
		r.note("(no Deployment pods were on " + lost + ")")
		return
	}
	for _, key := range sortedKeys(selectors) {
		ns, app, _ := strings.Cut(key, "/")
		pods, err := r.waitReady(ns, "app="+app, selectors[key], 60*time.Second)
		_, _ = r.kubectl("get", "pods", "-n", ns, "-l", "app="+app, "-o", "wide", "-L", DeviceLabel)
		if err != nil {
			r.fail("%v", err)
			continue
		}
		var stillThere []string
		for _, p := range pods {
			if dev, ok := r.deviceOf(&p); ok && dev == lost {
				stillThere = append(stillThere, p.Name)
			}
		}
		r.check(len(stillThere) == 0, fmt.Sprintf("Deployment %s: %d replicas Ready, none on %s", app, len(pods), lost),
			fmt.Sprintf("Deployment %s: pods still placed on the lost device %s: %s", app, lost, strings.Join(stillThere, ", ")))
	}
}

// ---------------------------------------------------------------- scenario 6

// Scenario6Delete deletes nginx-edge and checks the pod is gone within
// 5 s, its application leaves the device within 10 s, the node's
// allocated resources drop by its requests, and the manager logs it.
func Scenario6Delete(ctx context.Context, e *Env) error {
	r := newRun(ctx, e)
	node := e.NodeName()

	r.step("Step 1: list current pods")
	p, err := r.pod(nsCodeco, podNginx)
	if err != nil {
		return r.abort("reading the pod: %v", err)
	}
	if p == nil {
		r.note("scenario 1 left no codeco/nginx-edge; creating it")
		if err := r.ensureNamespace(nsCodeco); err != nil {
			return r.abort("creating namespace: %v", err)
		}
		if err := r.apply(nginxManifest(node)); err != nil {
			return r.abort("creating the pod: %v", err)
		}
	}
	if p, _, err = r.waitPod(nsCodeco, podNginx, 60*time.Second, "Running and Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podReady(p)
	}); err != nil {
		return r.abort("%v", err)
	}
	_, _ = r.kubectl("get", "pods", "-A", "-o", "wide", "-L", DeviceLabel)
	uid := string(p.UID)
	dev, ok := r.deviceOf(p)
	if !ok {
		return r.err()
	}
	app := appName(nsCodeco, podNginx, uid)
	d, err := r.getDevice(dev)
	if err != nil {
		return r.abort("reading device %s: %v", dev, err)
	}
	if _, ok := d.app(app); !r.check(ok, "application "+app+" is on "+dev, "application "+app+" is not on "+dev+" before the delete") {
		return r.err()
	}
	before := r.checkAllocated("kubectl describe node " + node + " | grep -A 7 'Allocated resources'")

	r.step("Step 2: delete the pod")
	mark := r.logMark()
	appGone := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		// Polls Flightctl while kubectl delete runs, to time the removal.
		for time.Since(start) < 30*time.Second && ctx.Err() == nil {
			if d, err := r.getDevice(dev); err == nil {
				if _, still := d.app(app); !still {
					appGone <- time.Since(start)
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		appGone <- -1
	}()
	if _, err := r.kubectl("delete", "pod", podNginx, "-n", nsCodeco, "--timeout=30s"); err != nil {
		r.fail("kubectl delete: %v", err)
	}
	_, err = r.waitPodGone(nsCodeco, podNginx, uid, 30*time.Second)
	podGone := time.Since(start)

	r.step("Step 3: verify the pod is deleted from Kubernetes")
	_, gerr := r.kubectl("get", "pod", podNginx, "-n", nsCodeco)
	r.check(err == nil && gerr != nil && strings.Contains(gerr.Error(), "NotFound") && podGone <= limitPodGone,
		fmt.Sprintf("pod gone %s after kubectl delete (seed: within %s)", round(podGone), limitPodGone),
		fmt.Sprintf("pod gone after %s (seed: within %s; wait error %v; get: %v)", round(podGone), limitPodGone, err, gerr))

	r.step("Step 4: verify the workload is removed from Flightctl")
	took := <-appGone
	if d, err = r.curlDevice(dev); err == nil {
		r.showApps(d, "vk-"+nsCodeco+"-"+podNginx+"-")
	}
	r.check(took >= 0 && took <= limitAppGone,
		fmt.Sprintf("application %s left %s's spec.applications %s after kubectl delete (seed: within %s)", app, dev, round(took), limitAppGone),
		fmt.Sprintf("application %s still on %s %s after kubectl delete (took %s; seed: within %s)", app, dev, round(time.Since(start)), round(took), limitAppGone))

	r.step("Step 5: verify resources freed")
	after := r.checkAllocated("kubectl describe node " + node + " | grep -A 7 'Allocated resources'")
	freedCPU, freedMem := before.CPU.DeepCopy(), before.Memory.DeepCopy()
	freedCPU.Sub(after.CPU)
	freedMem.Sub(after.Memory)
	r.check(sameQuantity(freedCPU, resource.MustParse("100m")) && sameQuantity(freedMem, resource.MustParse("128Mi")),
		"allocated requests dropped by nginx-edge's 100m CPU and 128Mi memory",
		fmt.Sprintf("allocated requests dropped by cpu %s, memory %s; want 100m, 128Mi", freedCPU.String(), freedMem.String()))

	r.step("Step 6: the provider logs the deletion")
	r.showLog(mark, 5*time.Second, logWant{msg: "Workload removed", fields: map[string]string{"pod": nsCodeco + "/" + podNginx, "device": dev}})
	if evs, _ := r.events(nsCodeco, podNginx, uid); len(evs) > 0 {
		if ev, ok := findEvent(evs, "WorkloadRemoved"); ok {
			r.ok("pod event WorkloadRemoved: %s", ev.Message)
		}
	}
	return r.err()
}

// ---------------------------------------------------------------- small helpers

// deviceOf is the device a placed pod runs on: its flightctl.io/device
// annotation, which docs/CONVENTIONS.md says every pod with a status
// from its device carries. A placed pod without it, or whose label
// disagrees, is a failure.
func (r *run) deviceOf(p *corev1.Pod) (string, bool) {
	dev := p.Annotations[DeviceLabel]
	if dev == "" {
		r.fail("pod %s/%s is %s but has no %s annotation: its placement record is missing (annotations %v, labels %v)",
			p.Namespace, p.Name, p.Status.Phase, DeviceLabel, p.Annotations, p.Labels)
		return "", false
	}
	if p.Labels[DeviceLabel] != dev {
		r.fail("pod %s/%s: label %s=%q disagrees with the annotation %q", p.Namespace, p.Name, DeviceLabel, p.Labels[DeviceLabel], dev)
	}
	return dev, true
}

func hasImage(a application, ref string) bool {
	for _, img := range imagesIn(a.text()) {
		// Short names are normalized (nginx:alpine becomes
		// docker.io/library/nginx:alpine): Flightctl wants a registry host.
		if img == ref || strings.HasSuffix(img, "/"+ref) {
			return true
		}
	}
	return a.Image == ref
}

func appNames(apps []application) string {
	if len(apps) == 0 {
		return "none"
	}
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.Name
	}
	return strings.Join(names, ", ")
}

func eventReasons(evs []corev1.Event) string {
	if len(evs) == 0 {
		return "no events"
	}
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Reason
	}
	return strings.Join(out, ",")
}

func deviceCounts(byDevice map[string][]corev1.Pod) string {
	var parts []string
	for _, dev := range sortedKeys(byDevice) {
		parts = append(parts, fmt.Sprintf("%s=%d", orNothing(dev), len(byDevice[dev])))
	}
	return strings.Join(parts, " ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
