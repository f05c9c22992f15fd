package node_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// onDevice1 pins a pod to device-1 like quickstart scenario 5.
func onDevice1(p *corev1.Pod) {
	p.Spec.NodeSelector = map[string]string{vkv1.LabelDeviceID: "device-1"}
}

func shortTimeout(b *vkv1.FleetBinding) {
	b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 10 * time.Second}
}

func (f *fixture) disconnected(ctx context.Context) func() []vkv1.DisconnectedDevice {
	return func() []vkv1.DisconnectedDevice {
		var b vkv1.FleetBinding
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil {
			return nil
		}
		return b.Status.DisconnectedDevices
	}
}

var _ = Describe("Device disconnection", func() {
	ctx := context.Background()

	It("turns pods Unknown and restores them when the device is back before the timeout", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: time.Minute}
		})
		Expect(k8sClient.Create(ctx, f.pod("reconnect-test", "50m", "64Mi", onDevice1))).To(Succeed())
		Eventually(f.ready(ctx, "reconnect-test"), 30*time.Second).Should(BeTrue())
		uid := f.getPod(ctx, "reconnect-test").UID

		Expect(f.sim.Disconnect("device-1")).To(Succeed())
		Eventually(f.phase(ctx, "reconnect-test"), 20*time.Second).Should(Equal(corev1.PodUnknown))
		Expect(f.ready(ctx, "reconnect-test")()).To(BeFalse())
		Eventually(f.events(ctx, "reconnect-test"), 10*time.Second).Should(ContainElement(
			And(HavePrefix("DeviceDisconnected:"), ContainSubstring("device-1"))))
		Eventually(f.disconnected(ctx), 20*time.Second).Should(ConsistOf(HaveField("Name", "device-1")))

		Expect(f.sim.Reconnect("device-1")).To(Succeed())
		Eventually(f.ready(ctx, "reconnect-test"), 20*time.Second).Should(BeTrue())
		p := f.getPod(ctx, "reconnect-test")
		Expect(p.UID).To(Equal(uid), "the pod was not rescheduled")
		Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
		Eventually(f.disconnected(ctx), 20*time.Second).Should(BeEmpty())
		Expect(f.apps("device-1")).To(ConsistOf(translate.AppName(p)))
	})

	It("deletes a bare pod after the timeout and removes its application from the device", func() {
		f := newFixture(ctx, flightctlsim.Options{}, shortTimeout)
		Expect(k8sClient.Create(ctx, f.pod("resilience-test", "50m", "64Mi", onDevice1))).To(Succeed())
		Eventually(f.ready(ctx, "resilience-test"), 30*time.Second).Should(BeTrue())
		app := translate.AppName(f.getPod(ctx, "resilience-test"))
		Expect(f.sim.Disconnect("device-1")).To(Succeed())
		Eventually(f.phase(ctx, "resilience-test"), 20*time.Second).Should(Equal(corev1.PodUnknown))
		Eventually(func() *corev1.Pod { return f.getPod(ctx, "resilience-test") }, 40*time.Second).Should(BeNil())
		Eventually(func() []string { return f.apps("device-1") }, 20*time.Second).ShouldNot(ContainElement(app))
		Expect(f.sim.Reconnect("device-1")).To(Succeed())
		Consistently(func() []string { return f.apps("device-1") }, 3*time.Second).Should(BeEmpty(),
			"the returning device must not run a second copy")
	})

	It("keeps the original deadline across a manager restart", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 20 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("restart-test", "50m", "64Mi", onDevice1))).To(Succeed())
		Eventually(f.ready(ctx, "restart-test"), 30*time.Second).Should(BeTrue())
		Expect(f.sim.Disconnect("device-1")).To(Succeed())
		Eventually(f.disconnected(ctx), 20*time.Second).Should(HaveLen(1))
		before := f.disconnected(ctx)()[0]

		mgr.stop()
		time.Sleep(2 * time.Second)
		mgr = startManager()

		Eventually(func() *corev1.Pod { return f.getPod(ctx, "restart-test") }, 60*time.Second).Should(BeNil())
		deletedAt := time.Now()
		GinkgoWriter.Printf("disconnected at %s, deadline %s, pod gone at %s\n", before.Since, before.Deadline, deletedAt)
		// The restarted manager kept the persisted start: the pod went
		// away near the original deadline, not a full timeout after the
		// restart.
		Expect(deletedAt.Sub(before.Deadline.Time)).To(BeNumerically("<", 15*time.Second))
		Expect(before.Deadline.Sub(before.Since.Time)).To(Equal(20 * time.Second))
	})

	It("leaves exactly one running copy after a device flaps five times", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: time.Minute}
		})
		Expect(k8sClient.Create(ctx, f.pod("flappy", "50m", "64Mi", onDevice1))).To(Succeed())
		Eventually(f.ready(ctx, "flappy"), 30*time.Second).Should(BeTrue())
		uid := f.getPod(ctx, "flappy").UID
		for i := 0; i < 5; i++ {
			Expect(f.sim.Disconnect("device-1")).To(Succeed())
			Eventually(f.phase(ctx, "flappy"), 20*time.Second).Should(Equal(corev1.PodUnknown))
			Expect(f.sim.Reconnect("device-1")).To(Succeed())
			Eventually(f.ready(ctx, "flappy"), 20*time.Second).Should(BeTrue())
		}
		p := f.getPod(ctx, "flappy")
		Expect(p.UID).To(Equal(uid))
		Expect(f.allApps()).To(ConsistOf(translate.AppName(p)))
	})
})
