package node_test

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// The status loop's Flightctl cost must grow with what changes, never
// with pods, and steady state must not read devices one by one. Between
// full resyncs (60 s by default) only hot devices are listed, read by
// name; 2 s after the last write and with every pod Running, none is.
var _ = Describe("Status loop cost", func() {
	ctx := context.Background()

	DescribeTable("at most one device list call per poll, listing only hot devices, no per-pod or per-device reads in steady state",
		func(devices int) {
			cfg := &flightctlsim.Config{Generate: []flightctlsim.GenerateConfig{{
				Prefix: "dev-", Count: devices, Labels: map[string]string{"fleet": "edge-fleet-1"},
				CPU: 4, Memory: "8Gi", IPStart: "192.0.2.1"}}}
			f := newFixture(ctx, flightctlsim.Options{Config: cfg}, nil)
			for i := 0; i < 10; i++ {
				Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("p-%d", i), "10m", "16Mi"))).To(Succeed())
			}
			for i := 0; i < 10; i++ {
				Eventually(f.ready(ctx, fmt.Sprintf("p-%d", i)), 60*time.Second).Should(BeTrue())
			}
			// Let writes settle, then measure a steady window.
			time.Sleep(2 * time.Second)
			f.sim.ResetStats()
			const window = 6 * time.Second
			time.Sleep(window)
			st := f.sim.Stats()
			polls := float64(window) / float64(time.Second) // statusPollInterval is 1s
			lists := float64(st.Requests["listDevices"])
			GinkgoWriter.Printf("devices=%d pods=10: %v list calls in %s (%.2f per poll), %d devices listed (a full listing per poll: %.0f), listEvents=%d, getDevice=%d, replaceDevice=%d, bytes out=%d\n",
				devices, lists, window, lists/polls, st.DevicesListed, float64(devices)*polls, st.Requests["listEvents"], st.Requests["getDevice"], st.Requests["replaceDevice"]+st.Requests["patchDevice"], st.BytesOut)
			AddReportEntry(fmt.Sprintf("list calls per poll with %d devices", devices), lists/polls)
			AddReportEntry(fmt.Sprintf("devices listed per poll with %d devices", devices), float64(st.DevicesListed)/polls)
			// The binding's reconciler also lists once per resync; allow
			// one poll's worth of slack for that and for timer jitter.
			Expect(lists).To(BeNumerically("<=", polls+2))
			// At most the ten written devices per poll (should they still
			// be hot), plus one full listing of a tiny fleet (where reading
			// most devices by name costs more than listing them).
			Expect(st.DevicesListed).To(BeNumerically("<=", int64(min(devices, 10))*int64(polls+1)+int64(devices)))
			Expect(st.Requests["getDevice"]).To(BeZero(), "steady state must not read devices one by one")
			Expect(st.Requests["replaceDevice"]+st.Requests["patchDevice"]).To(BeZero(), "steady state must not write")
		},
		Entry("2 devices", 2),
		Entry("200 devices", 200),
	)
})

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

var _ = Describe("Cost of many bindings", func() {
	ctx := context.Background()

	It("adds little memory per binding: each node watches only its own pods", func() {
		cfg := &flightctlsim.Config{}
		for i := 0; i < 20; i++ {
			cfg.Generate = append(cfg.Generate, flightctlsim.GenerateConfig{
				Prefix: fmt.Sprintf("g%02d-", i), Count: 2, Labels: map[string]string{"fleet": fmt.Sprintf("group-%02d", i)}, CPU: 4, Memory: "8Gi"})
		}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, func(b *vkv1.FleetBinding) { b.Spec.DeviceSelector = "fleet=group-00" })
		time.Sleep(3 * time.Second)
		one := heapInUse()
		var extra []*vkv1.FleetBinding
		for i := 1; i < 20; i++ {
			b := f.binding.DeepCopy()
			b.ObjectMeta = metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("edge-%02d", i)}
			b.Spec.Fleet = fmt.Sprintf("%s-%02d", f.ns, i)
			b.Spec.DeviceSelector = fmt.Sprintf("fleet=group-%02d", i)
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
			extra = append(extra, b)
		}
		// Delete them while the simulator is still up, so their cleanup
		// (application removal) can finish.
		DeferCleanup(func() {
			for _, b := range extra {
				_ = k8sClient.Delete(context.Background(), b)
			}
			Eventually(func() int {
				var list vkv1.FleetBindingList
				_ = k8sClient.List(context.Background(), &list, client.InNamespace(f.ns))
				return len(list.Items)
			}, 120*time.Second).Should(BeNumerically("<=", 1))
		})
		for i := 1; i < 20; i++ {
			name := fmt.Sprintf("vk-flightctl-%s-%02d", f.ns, i)
			Eventually(func() bool { return nodeReady(ctx, name) }, 60*time.Second).Should(BeTrue(), "node %s", name)
		}
		time.Sleep(3 * time.Second)
		twenty := heapInUse()
		perBinding := (float64(twenty) - float64(one)) / 19 / (1 << 20)
		GinkgoWriter.Printf("heap in use: 1 binding %.1f MiB, 20 bindings %.1f MiB, %.2f MiB per extra binding\n",
			float64(one)/(1<<20), float64(twenty)/(1<<20), perBinding)
		AddReportEntry("heap MiB per extra binding", perBinding)
		Expect(perBinding).To(BeNumerically("<", 4), "a binding should cost well under 4 MiB of heap")
	})
})

// Every write a pod start costs the API server must be a status write: the
// placement record rides on the first one (KWOK's fake kubelet also writes
// only status).
var _ = Describe("Pod writes", func() {
	ctx := context.Background()

	It("writes nothing to a starting pod but its status, the first one carrying the placement record", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Eventually(func() bool { return nodeReady(ctx, f.node) }, 30*time.Second).Should(BeTrue())
		w, err := kube.CoreV1().Pods(f.ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=counted"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Expect(k8sClient.Create(ctx, f.pod("counted", "100m", "128Mi"))).To(Succeed())

		var prev *corev1.Pod
		var writes []string
		deadline := time.After(60 * time.Second)
		for ready := false; !ready; {
			typ, p := nextPodEvent(w, deadline, func() string { return fmt.Sprintf("pod not Ready after 60 s; writes so far: %v", writes) })
			if typ == watch.Modified {
				Expect(prev).NotTo(BeNil())
				Expect(equality.Semantic.DeepEqual(prev.Status, p.Status)).To(BeFalse(),
					"write %d to the pod left its status as it was: a write of its own (labels %v, annotations %v)", len(writes)+1, p.Labels, p.Annotations)
				Expect(p.Annotations).To(HaveKey(vkv1.AnnotationDevice), "write %d carries no placement record", len(writes)+1)
				Expect(p.Labels).To(HaveKeyWithValue(vkv1.LabelDevice, p.Annotations[vkv1.AnnotationDevice]))
				writes = append(writes, string(p.Status.Phase))
			}
			prev = p
			ready = podIsReady(p)
		}
		GinkgoWriter.Printf("writes to the pod from create to Ready: %d %v\n", len(writes), writes)
		AddReportEntry("pod writes from create to Ready", len(writes))
		Expect(writes).NotTo(BeEmpty())

		// Events are writes too: the kubelet's four and the placement, and
		// not virtual-kubelet's ProviderCreateSuccess, which says the same.
		reasons := func() []string {
			var l corev1.EventList
			Expect(k8sClient.List(ctx, &l, client.InNamespace(f.ns))).To(Succeed())
			var rs []string
			for _, e := range l.Items {
				if e.InvolvedObject.Name == "counted" {
					rs = append(rs, e.Reason)
				}
			}
			return rs
		}
		want := []string{vkv1.EventDeviceSelected, "Pulling", "Pulled", "Created", "Started"}
		Eventually(reasons, 10*time.Second, 200*time.Millisecond).Should(ContainElements(want))
		Consistently(reasons, 2*time.Second, 200*time.Millisecond).Should(ConsistOf(want), "events of a pod start")

		// The status reports carry no spec (kubePods.statusReport): the
		// stored spec, and who owns its fields, must not notice.
		stored, err := kube.CoreV1().Pods(f.ns).Get(ctx, "counted", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(stored.Spec.Containers).To(HaveLen(1))
		Expect(stored.Spec.Containers[0].Image).To(Equal("nginx:alpine"))
		Expect(stored.Spec.NodeName).To(Equal(f.node))
		var specOwned bool
		for _, e := range stored.ManagedFields {
			if e.Subresource == "" && e.FieldsV1 != nil && strings.Contains(e.FieldsV1.GetRawString(), `"f:containers"`) {
				specOwned = true
			}
			if e.Subresource == "status" && e.FieldsV1 != nil {
				Expect(e.FieldsV1.GetRawString()).NotTo(ContainSubstring(`"f:spec"`), "the status writer owns spec fields")
			}
		}
		Expect(specOwned).To(BeTrue(), "the creator no longer owns the spec's fields: %v", stored.ManagedFields)
	})

	// A burst on one device with Flightctl's own costs (the ~20 ms
	// re-render after each spec write): polls catch many pods written but
	// not yet applied. Their first status waits for Running instead of
	// costing a ContainerCreating write first.
	It("writes one status per pod of a burst that starts within the grace", func() {
		cost, err := flightctlsim.CostModelByName("real-v1.2")
		Expect(err).NotTo(HaveOccurred())
		f := newFixture(ctx, flightctlsim.Options{Cost: cost}, nil)
		w, err := kube.CoreV1().Pods(f.ns).Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		const n = 40
		for i := range n {
			go func() {
				defer GinkgoRecover()
				Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("burst-%d", i), "10m", "16Mi"))).To(Succeed())
			}()
		}
		writes := map[string][]string{}
		ready := map[string]bool{}
		deadline := time.After(90 * time.Second)
		for len(ready) < n {
			typ, p := nextPodEvent(w, deadline, func() string { return fmt.Sprintf("%d of %d pods Ready after 90 s", len(ready), n) })
			if typ == watch.Modified {
				writes[p.Name] = append(writes[p.Name], podShows(p))
			}
			if podIsReady(p) {
				ready[p.Name] = true
			}
		}
		total := 0
		for name, ws := range writes {
			total += len(ws)
			Expect(ws).To(Equal([]string{"Running"}), "status writes of %s", name)
		}
		AddReportEntry("status writes for a 40-pod burst", total)
	})

	It("shows a pod that takes longer than the grace to start as ContainerCreating", func() {
		f := newFixture(ctx, flightctlsim.Options{Agent: flightctlsim.AgentDelays{Preparing: 10 * time.Second}}, nil)
		Expect(k8sClient.Create(ctx, f.pod("slow", "10m", "16Mi"))).To(Succeed())
		created := time.Now()
		var shownAfter time.Duration
		Eventually(func(g Gomega) {
			var p corev1.Pod
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "slow"}, &p)).To(Succeed())
			g.Expect(podShows(&p)).To(Equal("Pending/ContainerCreating"))
			shownAfter = time.Since(created)
		}, 9*time.Second, 100*time.Millisecond).Should(Succeed(), "ContainerCreating before the device finished preparing")
		Expect(shownAfter).To(BeNumerically(">=", 4*time.Second), "a starting status within the grace of the write is held back")
		Eventually(f.ready(ctx, "slow"), 30*time.Second).Should(BeTrue())
	})
})

// nextPodEvent is the next event of a pod watch; at deadline it fails the
// spec, saying what().
func nextPodEvent(w watch.Interface, deadline <-chan time.Time, what func() string) (watch.EventType, *corev1.Pod) {
	select {
	case ev, ok := <-w.ResultChan():
		Expect(ok).To(BeTrue(), "watch closed")
		p, isPod := ev.Object.(*corev1.Pod)
		Expect(isPod).To(BeTrue(), "watch event %v", ev.Type)
		return ev.Type, p
	case <-deadline:
		Fail(what())
	}
	return "", nil
}

// podShows is the phase and the first container's waiting reason, if any.
func podShows(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if len(p.Status.ContainerStatuses) > 0 {
		if w := p.Status.ContainerStatuses[0].State.Waiting; w != nil {
			s += "/" + w.Reason
		}
	}
	return s
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
