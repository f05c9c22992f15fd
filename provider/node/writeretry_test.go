package node_test

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// deleteDevice deletes a device through the simulator's Flightctl API, as
// `flightctl delete device` would.
func (f *fixture) deleteDevice(ctx context.Context, name string) {
	c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
	Expect(err).NotTo(HaveOccurred())
	Expect(c.DeleteDevice(ctx, name)).To(Succeed())
}

// placedOn is the device a pod's placement record names.
func (f *fixture) placedOn(ctx context.Context, name string) func() string {
	return func() string {
		p := f.getPod(ctx, name)
		if p == nil {
			return ""
		}
		return p.Annotations[vkv1.AnnotationDevice]
	}
}

func (f *fixture) disconnectedNames(ctx context.Context) func() []string {
	return func() []string {
		var b vkv1.FleetBinding
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil {
			return []string{"error: " + err.Error()}
		}
		out := []string{}
		for _, d := range b.Status.DisconnectedDevices {
			out = append(out, d.Name)
		}
		return out
	}
}

func hasEvent(reason string) types.GomegaMatcher {
	return ContainElement(HavePrefix(reason + ": "))
}

var _ = Describe("Writes that fail", func() {
	ctx := context.Background()

	It("are retried once Flightctl is back: a pod created, an image changed and a pod deleted during an outage all reach the device", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 10 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("before", "100m", "128Mi"))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("doomed", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "before"), 30*time.Second).Should(BeTrue())
		Eventually(f.ready(ctx, "doomed"), 30*time.Second).Should(BeTrue())
		doomed := f.getPod(ctx, "doomed")
		doomedDev, doomedApp := doomed.Annotations[vkv1.AnnotationDevice], translate.AppName(doomed)
		before := f.getPod(ctx, "before")
		beforeDev, beforeApp := before.Annotations[vkv1.AnnotationDevice], translate.AppName(before)

		Expect(f.sim.SetFaults(flightctlsim.Faults{Unreachable: true})).To(Succeed())
		Eventually(f.nodeCondition(ctx, corev1.NodeConditionType(vkv1.NodeConditionFlightctlReachable)), 30*time.Second).Should(Equal(corev1.ConditionFalse))

		Expect(k8sClient.Create(ctx, f.pod("during", "100m", "128Mi"))).To(Succeed())
		before.Spec.Containers[0].Image = "nginx:1.27"
		Expect(k8sClient.Update(ctx, before)).To(Succeed())
		Expect(k8sClient.Delete(ctx, doomed)).To(Succeed())

		// The failed write is reported, and the pod waits rather than fails.
		Eventually(f.events(ctx, "during"), 60*time.Second).Should(hasEvent(vkv1.EventDeployFailed))
		Eventually(func() string {
			p := f.getPod(ctx, "during")
			if p == nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
				return ""
			}
			return string(p.Status.Phase) + "/" + p.Status.ContainerStatuses[0].State.Waiting.Reason
		}, 30*time.Second).Should(Equal("Pending/" + vkv1.ReasonDeployRetrying))
		Expect(f.placedOn(ctx, "during")()).NotTo(BeEmpty(), "the placement record must survive the failed write")
		Expect(f.phase(ctx, "before")()).To(Equal(corev1.PodRunning))

		Expect(f.sim.SetFaults(flightctlsim.Faults{})).To(Succeed())
		Eventually(f.ready(ctx, "during"), 60*time.Second).Should(BeTrue())
		during := f.getPod(ctx, "during")
		dev := during.Annotations[vkv1.AnnotationDevice]
		Expect(f.apps(dev)).To(ContainElement(translate.AppName(during)))
		Eventually(func() string { return f.appSpec(beforeDev, beforeApp) }, 30*time.Second).Should(ContainSubstring("nginx:1.27"))
		Eventually(f.ready(ctx, "before"), 30*time.Second).Should(BeTrue())
		Expect(f.getPod(ctx, "before").UID).To(Equal(before.UID))
		// The deleted pod's workload is removed and the pod is gone soon
		// after, not after virtual-kubelet's grown backoff.
		Eventually(func() []string { return f.apps(doomedDev) }, 30*time.Second).ShouldNot(ContainElement(doomedApp))
		Eventually(func() bool { return f.getPod(ctx, "doomed") == nil }, 30*time.Second).Should(BeTrue())
		// Exactly one copy of each.
		Expect(f.allApps()).To(HaveLen(2))
	})

	It("places a pod again when its device was deleted from Flightctl since the last poll", func() {
		cfg := &flightctlsim.Config{Devices: []flightctlsim.DeviceConfig{
			{Name: "device-1", Labels: map[string]string{"fleet": "edge-fleet-1", "zone": "a"}, CPU: 4, Memory: "8Gi"},
			{Name: "device-2", Labels: map[string]string{"fleet": "edge-fleet-1", "zone": "a"}, CPU: 4, Memory: "8Gi"},
		}}
		// A long poll interval keeps the manager's view of the fleet stale
		// between the deletion and the placement.
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, func(b *vkv1.FleetBinding) {
			b.Spec.StatusPollInterval = &metav1.Duration{Duration: 60 * time.Second}
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 10 * time.Minute}
		})
		// Load device-2 so that spread puts the next pod on device-1.
		Expect(k8sClient.Create(ctx, f.pod("filler", "1", "1Gi", func(p *corev1.Pod) {
			p.Annotations = map[string]string{vkv1.LabelDeviceID: "device-2"}
		}))).To(Succeed())
		Eventually(func() []string { return f.apps("device-2") }, 30*time.Second).Should(HaveLen(1))
		// Let the poll that follows the write finish.
		time.Sleep(2 * time.Second)

		f.deleteDevice(ctx, "device-1")
		Expect(k8sClient.Create(ctx, f.pod("mover", "100m", "128Mi"))).To(Succeed())

		Eventually(f.events(ctx, "mover"), 30*time.Second).Should(hasEvent(vkv1.EventDeviceGone))
		Eventually(f.placedOn(ctx, "mover"), 30*time.Second).Should(Equal("device-2"))
		mover := f.getPod(ctx, "mover")
		Eventually(func() []string { return f.apps("device-2") }, 30*time.Second).Should(ContainElement(translate.AppName(mover)))
		Expect(mover.Labels[vkv1.LabelDevice]).To(Equal("device-2"))
		Expect(mover.Status.Phase).NotTo(Equal(corev1.PodFailed))
		var gone []string
		for _, e := range f.events(ctx, "mover")() {
			if strings.HasPrefix(e, vkv1.EventDeviceGone+": ") {
				gone = append(gone, e)
			}
		}
		Expect(gone).To(ContainElement(ContainSubstring("device-1")))
	})

	It("writes the workloads again when a deleted device is registered again before the timeout, and forgets a deleted device once its pods are gone", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 60 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("back", "100m", "128Mi", func(p *corev1.Pod) {
			p.Annotations = map[string]string{vkv1.LabelDeviceID: "device-1"}
		}))).To(Succeed())
		Eventually(f.ready(ctx, "back"), 30*time.Second).Should(BeTrue())
		uid := f.getPod(ctx, "back").UID
		app := translate.AppName(f.getPod(ctx, "back"))

		f.deleteDevice(ctx, "device-1")
		Eventually(f.phase(ctx, "back"), 30*time.Second).Should(Equal(corev1.PodUnknown))
		Eventually(f.disconnectedNames(ctx), 30*time.Second).Should(Equal([]string{"device-1"}))

		// Registered again (re-enrolled): its spec is empty.
		Expect(f.sim.AddDevice(flightctlsim.DeviceConfig{Name: "device-1", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"})).To(Succeed())
		Eventually(func() []string { return f.apps("device-1") }, 30*time.Second).Should(Equal([]string{app}))
		Eventually(f.ready(ctx, "back"), 30*time.Second).Should(BeTrue())
		Expect(f.getPod(ctx, "back").UID).To(Equal(uid))
		Eventually(f.disconnectedNames(ctx), 30*time.Second).Should(BeEmpty())

		// Deleted for good: once its pod is gone, the device leaves the
		// binding's status.
		f.deleteDevice(ctx, "device-1")
		Eventually(f.disconnectedNames(ctx), 30*time.Second).Should(Equal([]string{"device-1"}))
		Expect(k8sClient.Delete(ctx, f.getPod(ctx, "back"))).To(Succeed())
		Eventually(func() bool { return f.getPod(ctx, "back") == nil }, 30*time.Second).Should(BeTrue())
		Eventually(f.disconnectedNames(ctx), 30*time.Second).Should(BeEmpty())
	})
})

var _ = Describe("Writes Flightctl refuses", func() {
	ctx := context.Background()

	It("fail the pod with the server's message instead of retrying, and leave its device's other pods alone", func() {
		f := newFixture(ctx, flightctlsim.Options{Faults: flightctlsim.Faults{RejectImage: "quay.io/example/refused:1"}}, nil)
		onDevice := func(p *corev1.Pod) { p.Annotations = map[string]string{vkv1.LabelDeviceID: "device-1"} }
		Expect(k8sClient.Create(ctx, f.pod("refused", "100m", "128Mi", onDevice, func(p *corev1.Pod) {
			p.Spec.Containers[0].Image = "quay.io/example/refused:1"
		}))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("neighbour", "100m", "128Mi", onDevice))).To(Succeed())

		Eventually(f.phase(ctx, "refused"), 30*time.Second).Should(Equal(corev1.PodFailed))
		p := f.getPod(ctx, "refused")
		Expect(p.Status.Reason).To(Equal(vkv1.ReasonRejectedByFlightctl))
		Expect(p.Status.Message).To(ContainSubstring("injected fault"))
		Eventually(f.events(ctx, "refused"), 10*time.Second).Should(ContainElement(And(HavePrefix(vkv1.EventDeployFailed+": "), ContainSubstring("Flightctl refused"))))
		Eventually(f.ready(ctx, "neighbour"), 30*time.Second).Should(BeTrue())
		Expect(f.apps("device-1")).To(Equal([]string{translate.AppName(f.getPod(ctx, "neighbour"))}))
		// No retry storm: the refused write is not sent again.
		writes := f.writes()
		Consistently(f.writes, 3*time.Second, 500*time.Millisecond).Should(Equal(writes))
	})
})
