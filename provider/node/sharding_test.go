package node_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/internal/sharding"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// nodeRuns records, from the sharders' own start and stop points, which
// replica runs each binding's node, and every time a replica started a
// node another replica was still running.
type nodeRuns struct {
	mu       sync.Mutex
	running  map[types.NamespacedName]string
	overlaps []string
	starts   int
}

func (n *nodeRuns) observe(replica string, key types.NamespacedName, running bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, busy := n.running[key]
	switch {
	case running && busy && cur != replica:
		n.overlaps = append(n.overlaps, fmt.Sprintf("%s started %s while %s ran it", replica, key, cur))
	case running:
		n.running[key] = replica
		n.starts++
	case cur == replica:
		delete(n.running, key)
	}
}

func (n *nodeRuns) overlapList() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.overlaps...)
}

func sharded(replica string, runs *nodeRuns) func(*manager.Options) {
	return func(o *manager.Options) {
		o.Sharding, o.Replica = true, replica
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
		o.ShardObserver = runs.observe
	}
}

var _ = Describe("Sharded mode", Ordered, func() {
	ctx := context.Background()

	It("spreads bindings over replicas by rendezvous hashing and moves only the joiner's and leaver's, never running a node twice", func() {
		if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vk-system"}}); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		runs := &nodeRuns{running: map[types.NamespacedName]string{}}
		mgr.stop()
		replicas := map[string]*runningManager{
			"shard-a": startManagerWith(sharded("shard-a", runs)),
			"shard-b": startManagerWith(sharded("shard-b", runs)),
		}
		DeferCleanup(func() {
			for _, m := range replicas {
				m.stop()
			}
			Expect(runs.overlapList()).To(BeEmpty(), "a node ran in two replicas at once")
			mgr = startManager()
		})

		var fixtures []*fixture
		pods := map[*fixture]string{}
		for i := 0; i < 5; i++ {
			// Device names are unique across the fixtures: a manager
			// keeps two bindings off the same device by name.
			f := newFixture(ctx, flightctlsim.Options{Config: &flightctlsim.Config{Devices: []flightctlsim.DeviceConfig{
				{Name: fmt.Sprintf("shard-dev-%d", i), Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"},
			}}}, nil)
			Expect(k8sClient.Create(ctx, f.pod("before", "100m", "128Mi"))).To(Succeed())
			fixtures = append(fixtures, f)
		}
		for _, f := range fixtures {
			Eventually(f.ready(ctx, "before"), 60*time.Second).Should(BeTrue())
			pods[f] = string(f.getPod(ctx, "before").UID)
		}
		shardOf := func(f *fixture) func() string {
			return func() string {
				var b vkv1.FleetBinding
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil {
					return ""
				}
				return b.Status.Shard
			}
		}
		expectShards := func(members []string) map[*fixture]string {
			want := map[*fixture]string{}
			for _, f := range fixtures {
				want[f] = sharding.Owner(client.ObjectKeyFromObject(f.binding).String(), members)
				Eventually(shardOf(f), 30*time.Second).Should(Equal(want[f]), "binding %s on members %v", f.ns, members)
			}
			return want
		}
		expectServed := func(step string) {
			for _, f := range fixtures {
				p := f.getPod(ctx, "before")
				Expect(p).NotTo(BeNil())
				Expect(string(p.UID)).To(Equal(pods[f]), "pod of %s replaced after %s", f.ns, step)
				Eventually(f.ready(ctx, "before"), 30*time.Second).Should(BeTrue())
				name := "after-" + step
				Expect(k8sClient.Create(ctx, f.pod(name, "100m", "128Mi"))).To(Succeed())
				Eventually(f.ready(ctx, name), 60*time.Second).Should(BeTrue(), "%s: binding %s not served", step, f.ns)
				Expect(nodeReady(ctx, f.node)).To(BeTrue())
			}
		}
		two := expectShards([]string{"shard-a", "shard-b"})
		expectServed("start")

		By("a third replica joins: only the bindings it now wins move, to it")
		replicas["shard-c"] = startManagerWith(sharded("shard-c", runs))
		three := expectShards([]string{"shard-a", "shard-b", "shard-c"})
		for _, f := range fixtures {
			if three[f] != "shard-c" {
				Expect(three[f]).To(Equal(two[f]), "binding %s moved between replicas that stayed", f.ns)
			}
		}
		expectServed("join")

		By("a replica leaves: only its bindings move")
		replicas["shard-a"].stop()
		delete(replicas, "shard-a")
		left := expectShards([]string{"shard-b", "shard-c"})
		for _, f := range fixtures {
			if three[f] != "shard-a" {
				Expect(left[f]).To(Equal(three[f]), "binding %s moved though its replica stayed", f.ns)
			}
		}
		expectServed("leave")

		var nodes corev1.NodeList
		Expect(k8sClient.List(ctx, &nodes)).To(Succeed())
		for _, f := range fixtures {
			count := 0
			for _, n := range nodes.Items {
				if n.Labels[vkv1.LabelFleet] == f.ns {
					count++
				}
			}
			Expect(count).To(Equal(1), "exactly one node for binding %s", f.ns)
		}
		Expect(runs.overlapList()).To(BeEmpty(), "a node ran in two replicas at once")
	})
})
