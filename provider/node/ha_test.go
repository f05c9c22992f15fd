package node_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

func leaderElected() func(*manager.Options) {
	return func(o *manager.Options) {
		o.LeaderElection = true
		o.LeaderElectionID = "vk-flightctl-ha-test"
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	}
}

func leaseHolder(ctx context.Context) string {
	var l coordinationv1.Lease
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: "vk-system", Name: "vk-flightctl-ha-test"}, &l); err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

var _ = Describe("High availability", Ordered, func() {
	ctx := context.Background()

	It("hands over between two leader-elected managers with no duplicate node, pod or workload", func() {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vk-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		// Only the two HA managers run during this spec.
		mgr.stop()
		first := startManagerWith(leaderElected())
		Eventually(func() string { return leaseHolder(ctx) }, 30*time.Second).ShouldNot(BeEmpty())
		second := startManagerWith(leaderElected())
		DeferCleanup(func() {
			second.stop()
			mgr = startManager()
		})

		f := newFixture(ctx, flightctlsim.Options{}, nil)
		for i := 0; i < 3; i++ {
			Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("ha-%d", i), "100m", "128Mi"))).To(Succeed())
		}
		uids := map[string]string{}
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("ha-%d", i)
			Eventually(f.ready(ctx, name), 30*time.Second).Should(BeTrue())
			p := f.getPod(ctx, name)
			uids[name] = string(p.UID) + "@" + p.Annotations[vkv1.AnnotationDevice]
		}
		holder := leaseHolder(ctx)

		By("stopping the leader")
		first.stop()
		Eventually(func() string { return leaseHolder(ctx) }, 30*time.Second).ShouldNot(Or(BeEmpty(), Equal(holder)))

		By("the new leader serves the same node, pods and workloads")
		Expect(k8sClient.Create(ctx, f.pod("ha-after", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "ha-after"), 60*time.Second).Should(BeTrue())
		var nodes corev1.NodeList
		Expect(k8sClient.List(ctx, &nodes)).To(Succeed())
		count := 0
		for _, n := range nodes.Items {
			if n.Labels[vkv1.LabelFleet] == f.ns {
				count++
			}
		}
		Expect(count).To(Equal(1), "exactly one node for the binding")
		want := []string{}
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("ha-%d", i)
			p := f.getPod(ctx, name)
			Expect(string(p.UID)+"@"+p.Annotations[vkv1.AnnotationDevice]).To(Equal(uids[name]), "pod %s replaced or moved", name)
			Eventually(f.ready(ctx, name), 30*time.Second).Should(BeTrue())
			want = append(want, translate.AppName(p))
		}
		want = append(want, translate.AppName(f.getPod(ctx, "ha-after")))
		Eventually(f.allApps, 30*time.Second).Should(ConsistOf(want))
	})
})
