package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// The pod the real agent is asked to run, and the reasons vk-flightctl
// gives a pod whose device could not apply its update.
const (
	realAgentPod       = "on-real-agent"
	realAgentNamespace = "default"
	eventUpdateFailed  = "UpdateFailed"
)

// waitingReasonsForFailedUpdate are the kubelet-like waiting reasons of
// a container whose update the device failed (ErrImagePull when the agent
// failed to fetch, CreateContainerError otherwise).
var waitingReasonsForFailedUpdate = []string{"ErrImagePull", "CreateContainerError"}

// podOnRealAgentShowsFailedUpdate places a pod on the real agent's device
// (flightctl.io/device-id) and checks, reading the API server with
// kubectl (no cache), that once the device reports the failed update
// (Updating False, reason Error, after a rollback) the pod shows the
// agent's message as its containers' waiting message within one status
// poll (plus the time to write and read the pod), with an UpdateFailed
// Warning event; then deletes the pod.
func podOnRealAgentShowsFailedUpdate(ctx SpecContext, agent *quickstart.RealAgent) {
	before, err := agent.UpdateReport(ctx)
	Expect(err).NotTo(HaveOccurred())
	baseline, _ := strconv.ParseInt(before.Rendered, 10, 64)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  annotations:
    flightctl.io/device-id: %s
spec:
  nodeName: %s
  containers:
  - name: web
    image: docker.io/library/nginx:alpine
    resources:
      requests:
        cpu: "10m"
        memory: "16Mi"
`, realAgentPod, realAgentNamespace, agent.Name, env.NodeName())
	fmt.Fprintf(GinkgoWriter, "$ kubectl apply -f - # pod %s/%s pinned to the real agent's device %s (rendered version now %s)\n",
		realAgentNamespace, realAgentPod, agent.Name, before.Rendered)
	_, err = stack.KubectlOutputIn(ctx, manifest, "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		_, err := stack.KubectlOutput(ctx, "delete", "pod", "-n", realAgentNamespace, realAgentPod, "--ignore-not-found", "--wait=true", "--timeout=90s")
		Expect(err).NotTo(HaveOccurred())
	})

	// The agent fetches the spec every 5 s, fails in Prepare and rolls
	// back: watch the device until it says so for a version carrying
	// the pod.
	var failed quickstart.UpdateReport
	Eventually(func(g Gomega) {
		u, err := agent.UpdateReport(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		rendered, _ := strconv.ParseInt(u.Rendered, 10, 64)
		g.Expect(rendered).To(BeNumerically(">", baseline), "the server has not rendered the pod's version yet")
		g.Expect(u.Failed()).To(BeTrue(), "device Updating condition %s/%s %q, updated %s %q, running version %s of %s",
			u.ConditionStatus, u.ConditionReason, u.ConditionMessage, u.UpdatedStatus, u.UpdatedInfo, u.Running, u.Rendered)
		failed = u
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	reported := time.Now()
	fmt.Fprintf(GinkgoWriter, "    device %s reports: Updating %s reason %s %q; updated %s %q; runs version %s, rendered %s\n",
		agent.Name, failed.ConditionStatus, failed.ConditionReason, failed.ConditionMessage, failed.UpdatedStatus, failed.UpdatedInfo, failed.Running, failed.Rendered)
	fmt.Fprintf(GinkgoWriter, "    device JSON: %s\n", failed.Raw)

	// The agent's wording of the same failure can change from one
	// attempt to the next ("waiting for dependencies", "internal error
	// occurred"), so the pod is compared with what the device says now.
	var pod corev1.Pod
	Eventually(func(g Gomega) {
		out, err := stack.KubectlOutput(ctx, "get", "pod", "-n", realAgentNamespace, realAgentPod, "-o", "json")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(json.Unmarshal([]byte(out), &pod)).To(Succeed())
		now, err := agent.UpdateReport(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
		w := pod.Status.ContainerStatuses[0].State.Waiting
		g.Expect(w).NotTo(BeNil(), "container state %+v", pod.Status.ContainerStatuses[0].State)
		g.Expect(waitingReasonsForFailedUpdate).To(ContainElement(w.Reason), "waiting %s %q", w.Reason, w.Message)
		g.Expect(w.Message).To(Or(ContainSubstring(agentWords(failed)), ContainSubstring(agentWords(now))),
			"the pod's waiting message is not the agent's")
	}).WithContext(ctx).WithTimeout(statusPollInterval+4*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(),
		"the pod did not show the device's failed update within one status poll (%s) and the time to write and read it", statusPollInterval)
	took := time.Since(reported)
	w := pod.Status.ContainerStatuses[0].State.Waiting
	fmt.Fprintf(GinkgoWriter, "    [ok]   %s after the device reported it, pod %s is %s, container waiting %s: %q\n",
		took.Round(10*time.Millisecond), realAgentPod, pod.Status.Phase, w.Reason, w.Message)
	Expect(pod.Status.Phase).To(Equal(corev1.PodPending))
	Expect(conditionStatus(pod, "vk.flightctl.io/DeviceUpdate")).To(Equal(corev1.ConditionFalse))

	Eventually(func(g Gomega) {
		out, err := stack.KubectlOutput(ctx, "get", "events", "-n", realAgentNamespace, "-o", "json",
			"--field-selector", "involvedObject.name="+realAgentPod+",involvedObject.uid="+string(pod.UID)+",reason="+eventUpdateFailed)
		g.Expect(err).NotTo(HaveOccurred())
		var evs corev1.EventList
		g.Expect(json.Unmarshal([]byte(out), &evs)).To(Succeed())
		g.Expect(evs.Items).NotTo(BeEmpty(), "no %s event on the pod", eventUpdateFailed)
		g.Expect(evs.Items[0].Type).To(Equal(corev1.EventTypeWarning))
		fmt.Fprintf(GinkgoWriter, "    [ok]   event %s %s: %q\n", evs.Items[0].Type, evs.Items[0].Reason, evs.Items[0].Message)
	}).WithContext(ctx).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// The pod goes before its device does: a device deleted under a
	// pod keeps the pod (Unknown) until the reconnect timeout.
	start := time.Now()
	_, err = stack.KubectlOutput(ctx, "delete", "pod", "-n", realAgentNamespace, realAgentPod, "--wait=true", "--timeout=60s")
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(GinkgoWriter, "    [ok]   pod %s deleted in %s (its application removed from the device)\n", realAgentPod, time.Since(start).Round(10*time.Millisecond))
}

// agentWords is the agent's own explanation of a failed update: the
// Updating condition's message, else status.updated.info.
func agentWords(u quickstart.UpdateReport) string {
	if m := strings.TrimSpace(u.ConditionMessage); m != "" {
		return m
	}
	return strings.TrimSpace(u.UpdatedInfo)
}

// conditionStatus is the status of a pod's condition, "" when absent.
func conditionStatus(p corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}
