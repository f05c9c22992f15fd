package node_test

import (
	"context"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// decommission asks Flightctl to decommission a device, as `flightctl
// decommission device/<name>` does (PUT .../decommission).
func (f *fixture) decommission(ctx context.Context, name string) {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.sim.URL()+"/api/v1/devices/"+name+"/decommission", strings.NewReader(`{"target":"Unenroll"}`))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+f.sim.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.sim.HTTPClient().Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
}

// readyCondition is the pod's Ready condition, or a zero condition.
func (f *fixture) readyCondition(ctx context.Context, name string) func() corev1.PodCondition {
	return func() corev1.PodCondition {
		if p := f.getPod(ctx, name); p != nil {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady {
					return c
				}
			}
		}
		return corev1.PodCondition{}
	}
}

var _ = Describe("Decommissioned devices", func() {
	ctx := context.Background()

	It("show on their pods, take no new pods and leave the node's capacity", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("web", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{vkv1.LabelDeviceID: "device-1"}
		}))).To(Succeed())
		Eventually(f.ready(ctx, "web"), 30*time.Second).Should(BeTrue())

		f.decommission(ctx, "device-1")
		snap, _ := f.sim.GetDevice("device-1")
		Expect(snap.Status.Lifecycle.Status).To(Equal(flightctl.DeviceLifecycleDecommissioning))

		Eventually(f.readyCondition(ctx, "web"), 15*time.Second).Should(And(
			HaveField("Status", corev1.ConditionFalse),
			HaveField("Reason", vkv1.ReasonDeviceDecommissioning),
			HaveField("Message", And(ContainSubstring("device-1"), ContainSubstring("status.lifecycle.status Decommissioning"), ContainSubstring("runs no workloads"))),
		))
		Eventually(func() int { return countEvents(f.events(ctx, "web")(), vkv1.ReasonDeviceDecommissioning) }, 10*time.Second).Should(Equal(1))
		Consistently(func() int { return countEvents(f.events(ctx, "web")(), vkv1.ReasonDeviceDecommissioning) }, 3*time.Second).Should(Equal(1))

		// Only device-2 (4 CPU) is left in the node's capacity, and the
		// binding lists device-1 as unusable with the reason.
		Eventually(func() string {
			var n corev1.Node
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n); err != nil {
				return err.Error()
			}
			return n.Status.Capacity.Cpu().String()
		}, 15*time.Second).Should(Equal("4"))
		Eventually(func() []vkv1.UnusableDevice {
			var b vkv1.FleetBinding
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil {
				return nil
			}
			return b.Status.UnusableDevices
		}, 15*time.Second).Should(ContainElement(And(HaveField("Name", "device-1"), HaveField("Reason", vkv1.ReasonDeviceDecommissioning))))

		// A pod pinned to it is refused for good, naming why.
		Expect(k8sClient.Create(ctx, f.pod("late", "100m", "128Mi", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{vkv1.LabelDeviceID: "device-1"}
		}))).To(Succeed())
		Eventually(f.phase(ctx, "late"), 20*time.Second).Should(Equal(corev1.PodFailed))
		Eventually(f.events(ctx, "late"), 10*time.Second).Should(ContainElement(And(ContainSubstring("device-1 (decommissioned in Flightctl"), ContainSubstring("No device can run workloads"))))
		Expect(f.apps("device-1")).To(ConsistOf(HavePrefix("vk-" + f.ns + "-web-")))

		// Placement by selector picks the other device.
		Expect(k8sClient.Create(ctx, f.pod("anywhere", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "anywhere"), 30*time.Second).Should(BeTrue())
		Expect(f.getPod(ctx, "anywhere").Annotations[vkv1.AnnotationDevice]).To(Equal("device-2"))
	})
})
