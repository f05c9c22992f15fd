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

var _ = Describe("Overlapping bindings", func() {
	ctx := context.Background()

	It("leaves devices to the older binding and never removes its workloads", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("mine", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "mine"), 30*time.Second).Should(BeTrue())
		app := translate.AppName(f.getPod(ctx, "mine"))

		time.Sleep(1100 * time.Millisecond) // creationTimestamp has second precision
		younger := f.binding.DeepCopy()
		younger.ObjectMeta = metav1.ObjectMeta{Namespace: f.ns, Name: "younger"}
		younger.Spec.Fleet = f.ns + "-younger"
		Expect(k8sClient.Create(ctx, younger)).To(Succeed())
		DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), younger) })
		youngerNode := younger.EffectiveNodeName()
		Eventually(func() bool { return nodeReady(ctx, youngerNode) }, 60*time.Second).Should(BeTrue())

		Eventually(func() string {
			var b vkv1.FleetBinding
			_ = k8sClient.Get(ctx, client.ObjectKeyFromObject(younger), &b)
			for _, c := range b.Status.Conditions {
				if c.Type == vkv1.ConditionDegraded {
					return c.Reason + ": " + c.Message
				}
			}
			return ""
		}, 30*time.Second).Should(And(HavePrefix(vkv1.ReasonDeviceClaimed), ContainSubstring("make the device selectors disjoint")))

		// A pod on the younger node finds no device of its own.
		p := f.pod("theirs", "100m", "128Mi")
		p.Spec.NodeName = youngerNode
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(f.phase(ctx, "theirs"), 30*time.Second).Should(Equal(corev1.PodFailed))
		// Several of the younger node's polls later, the older binding's
		// workload is still there and running.
		Consistently(func() []string { return f.allApps() }, 5*time.Second, time.Second).Should(ConsistOf(app))
		Expect(f.ready(ctx, "mine")()).To(BeTrue())
	})
})
