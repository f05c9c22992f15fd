package node_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

func (f *fixture) nodeCondition(ctx context.Context, typ corev1.NodeConditionType) func() corev1.ConditionStatus {
	return func() corev1.ConditionStatus {
		var n corev1.Node
		if err := k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n); err != nil {
			return ""
		}
		for _, c := range n.Status.Conditions {
			if c.Type == typ {
				return c.Status
			}
		}
		return ""
	}
}

func (f *fixture) bindingCondition(ctx context.Context, typ string) func() string {
	return func() string {
		var b vkv1.FleetBinding
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil {
			return ""
		}
		c := meta.FindStatusCondition(b.Status.Conditions, typ)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

var _ = Describe("Flightctl outage", func() {
	ctx := context.Background()

	It("keeps the node Ready and pods at their last status, and says Flightctl is unreachable", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ReconnectTimeout = &metav1.Duration{Duration: 10 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("steady", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "steady"), 30*time.Second).Should(BeTrue())
		uid := f.getPod(ctx, "steady").UID

		Expect(f.sim.SetFaults(flightctlsim.Faults{Unreachable: true})).To(Succeed())
		Eventually(f.nodeCondition(ctx, corev1.NodeConditionType(vkv1.NodeConditionFlightctlReachable)), 30*time.Second).Should(Equal(corev1.ConditionFalse))
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 60*time.Second).Should(Equal("False/" + vkv1.ReasonFlightctlUnreachable))
		// Longer than the reconnect timeout: an unreachable Flightctl is not
		// a disconnected device, so nothing is rescheduled.
		Consistently(func() bool {
			p := f.getPod(ctx, "steady")
			return p != nil && p.UID == uid && p.Status.Phase == corev1.PodRunning && nodeReady(ctx, f.node)
		}, 15*time.Second, time.Second).Should(BeTrue())

		Expect(f.sim.SetFaults(flightctlsim.Faults{})).To(Succeed())
		Eventually(f.nodeCondition(ctx, corev1.NodeConditionType(vkv1.NodeConditionFlightctlReachable)), 30*time.Second).Should(Equal(corev1.ConditionTrue))
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 60*time.Second).Should(Equal("True/" + vkv1.ReasonConnected))
		Expect(f.ready(ctx, "steady")()).To(BeTrue())
	})
})
