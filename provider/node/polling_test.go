package node_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// onDevice pins a pod to one device.
func onDevice(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{vkv1.LabelDeviceID: name} }
}

// fullListingBytes is what one full listing of the binding's devices
// costs the simulator, read through the Flightctl API as the poller
// reads it: the cost every poll had before hot and cold devices.
func (f *fixture) fullListingBytes(ctx context.Context) (devices int, bytes int64) {
	c, err := flightctl.New(flightctl.Config{Server: f.sim.URL(), Token: f.sim.Token()})
	Expect(err).NotTo(HaveOccurred())
	f.sim.ResetStats()
	devs, err := c.ListAllDevices(ctx, flightctl.ListOptions{LabelSelector: f.binding.Spec.DeviceSelector})
	Expect(err).NotTo(HaveOccurred())
	return len(devs), f.sim.Stats().BytesOut
}

// bindingTotal is the device total the binding's status reports.
func (f *fixture) bindingTotal(ctx context.Context) func() int32 {
	return func() int32 {
		var b vkv1.FleetBinding
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b); err != nil || b.Status.Devices == nil {
			return -1
		}
		return b.Status.Devices.Total
	}
}

// timeTo is how long cond took to hold, polling every 50 ms.
func timeTo(cond func() bool, limit time.Duration) time.Duration {
	start := time.Now()
	Eventually(cond, limit, 50*time.Millisecond).Should(BeTrue())
	return time.Since(start)
}

var _ = Describe("Hot and cold devices", func() {
	ctx := context.Background()

	It("reads no device between resyncs once everything settled, yet sees a new pod, a disconnection and a new device within a few polls", func() {
		const devices = 100
		cfg := &flightctlsim.Config{Generate: []flightctlsim.GenerateConfig{{
			Prefix: "dev-", Count: devices, Labels: map[string]string{"fleet": "edge-fleet-1"},
			CPU: 4, Memory: "8Gi", IPStart: "192.0.2.1"}}}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, func(b *vkv1.FleetBinding) {
			// No resync inside the test: what it sees comes from hot
			// reads and events.
			b.Spec.FullResyncInterval = &metav1.Duration{Duration: time.Hour}
		})
		for i := 0; i < 10; i++ {
			Expect(k8sClient.Create(ctx, f.pod(fmt.Sprintf("p-%d", i), "10m", "16Mi", onDevice(fmt.Sprintf("dev-%03d", i+1))))).To(Succeed())
		}
		for i := 0; i < 10; i++ {
			Eventually(f.ready(ctx, fmt.Sprintf("p-%d", i)), 60*time.Second).Should(BeTrue())
		}
		n, fullBytes := f.fullListingBytes(ctx)
		Expect(n).To(Equal(devices))
		// A written device stays hot for 2 s (hotHold at a 1 s poll).
		time.Sleep(3 * time.Second)

		By("steady state: events only")
		f.sim.ResetStats()
		const window = 5 * time.Second
		time.Sleep(window)
		st := f.sim.Stats()
		polls := float64(window) / float64(time.Second)
		GinkgoWriter.Printf("steady, %d devices, 10 pods Running, %s: listDevices=%d devicesListed=%d listEvents=%d getDevice=%d bytes out=%d; one full listing is %d bytes, so a full listing per poll was %.0f bytes (%.0fx)\n",
			devices, window, st.Requests["listDevices"], st.DevicesListed, st.Requests["listEvents"], st.Requests["getDevice"], st.BytesOut,
			fullBytes, float64(fullBytes)*polls, float64(fullBytes)*polls/float64(max(st.BytesOut, 1)))
		AddReportEntry("steady bytes per poll (100 devices)", float64(st.BytesOut)/polls)
		AddReportEntry("full listing bytes (100 devices)", float64(fullBytes))
		Expect(st.DevicesListed).To(BeZero(), "a settled fleet must not be listed between resyncs")
		Expect(st.Requests["getDevice"]).To(BeZero(), "steady state must not read devices one by one")
		Expect(st.Requests["replaceDevice"]+st.Requests["patchDevice"]).To(BeZero(), "steady state must not write")
		Expect(st.Requests["listEvents"]).To(BeNumerically(">=", int64(polls)-2), "events are read every poll")
		Expect(st.BytesOut*10).To(BeNumerically("<", int64(float64(fullBytes)*polls)), "steady state costs under a tenth of a full listing per poll")

		By("a new pod on a cold device")
		took := timeTo(func() bool {
			if k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "late"}, &corev1.Pod{}) != nil {
				Expect(k8sClient.Create(ctx, f.pod("late", "10m", "16Mi", onDevice("dev-050")))).To(Succeed())
			}
			return f.ready(ctx, "late")()
		}, 20*time.Second)
		GinkgoWriter.Printf("new pod on a cold device Ready after %s\n", took.Round(time.Millisecond))
		AddReportEntry("cold device: new pod Ready (s)", took.Seconds())
		Expect(took).To(BeNumerically("<", 5*time.Second), "a write makes its device hot: about one poll, not a resync")

		By("a settled device disconnecting")
		Expect(f.sim.Disconnect("dev-003")).To(Succeed())
		took = timeTo(func() bool { return f.phase(ctx, "p-2")() == corev1.PodUnknown }, 20*time.Second)
		GinkgoWriter.Printf("disconnection of a settled device seen after %s\n", took.Round(time.Millisecond))
		AddReportEntry("settled device disconnected: pod Unknown (s)", took.Seconds())
		Expect(took).To(BeNumerically("<", 5*time.Second), "the DeviceDisconnected event makes the device hot")

		By("a device added to Flightctl")
		Expect(f.sim.AddDevice(flightctlsim.DeviceConfig{Name: "dev-new", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"})).To(Succeed())
		took = timeTo(func() bool { return f.bindingTotal(ctx)() == devices+1 }, 30*time.Second)
		GinkgoWriter.Printf("new device counted after %s\n", took.Round(time.Millisecond))
		AddReportEntry("device added: counted (s)", took.Seconds())
	})

	It("sees an application error on a settled device at the next poll, and a restart (no event) at the resync", func() {
		cfg := &flightctlsim.Config{Generate: []flightctlsim.GenerateConfig{{
			Prefix: "dev-", Count: 20, Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi"}}}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, func(b *vkv1.FleetBinding) {
			b.Spec.FullResyncInterval = &metav1.Duration{Duration: 10 * time.Second}
		})
		Expect(k8sClient.Create(ctx, f.pod("fails", "10m", "16Mi", onDevice("dev-05")))).To(Succeed())
		Expect(k8sClient.Create(ctx, f.pod("restarts", "10m", "16Mi", onDevice("dev-06")))).To(Succeed())
		Eventually(f.ready(ctx, "fails"), 30*time.Second).Should(BeTrue())
		Eventually(f.ready(ctx, "restarts"), 30*time.Second).Should(BeTrue())
		// Past the write's hot period: both devices are cold.
		time.Sleep(3 * time.Second)

		Expect(f.sim.FailApplications("dev-05")).To(Succeed())
		took := timeTo(func() bool { return !f.ready(ctx, "fails")() }, 20*time.Second)
		GinkgoWriter.Printf("application Error on a settled device seen after %s\n", took.Round(time.Millisecond))
		AddReportEntry("settled device: application Error seen (s)", took.Seconds())
		Expect(took).To(BeNumerically("<", 5*time.Second), "DeviceApplicationError makes the device hot")

		Expect(f.sim.RestartApplications("dev-06")).To(Succeed())
		restarted := func() bool {
			p := f.getPod(ctx, "restarts")
			return p != nil && len(p.Status.ContainerStatuses) > 0 && p.Status.ContainerStatuses[0].RestartCount > 0
		}
		took = timeTo(restarted, 20*time.Second)
		GinkgoWriter.Printf("restart on a settled device (no event) seen after %s (resync 10s)\n", took.Round(time.Millisecond))
		AddReportEntry("settled device: restart seen (s)", took.Seconds())
		Expect(took).To(BeNumerically("<=", 12*time.Second), "the full resync finds what no event announces")

		By("one full listing per resync period")
		f.sim.ResetStats()
		time.Sleep(11 * time.Second)
		st := f.sim.Stats()
		GinkgoWriter.Printf("11 s at a 10 s resync, 20 devices (dev-05 hot: its application failed): listDevices=%d devicesListed=%d listEvents=%d\n",
			st.Requests["listDevices"], st.DevicesListed, st.Requests["listEvents"])
		// One or two resyncs of 20 devices, plus dev-05 read by name at
		// every poll and found by the unhealthy listings.
		Expect(st.DevicesListed).To(BeNumerically(">=", 20))
		Expect(st.DevicesListed).To(BeNumerically("<=", 60))
	})
	It("reads device events once per connection, not once per binding, and every binding still learns of its new devices", func() {
		const bindings = 4
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.FullResyncInterval = &metav1.Duration{Duration: time.Hour}
		})
		// Three more bindings with the same Secret: one connection.
		others := make([]*vkv1.FleetBinding, 0, bindings-1)
		for i := 1; i < bindings; i++ {
			b := f.binding.DeepCopy()
			b.ObjectMeta = metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("edge-%d", i)}
			b.Spec.Fleet = fmt.Sprintf("%s-%d", f.ns, i)
			b.Spec.DeviceSelector = fmt.Sprintf("fleet=shared-%d", i)
			Expect(k8sClient.Create(ctx, b)).To(Succeed())
			DeferCleanup(func() { _ = k8sClient.Delete(context.Background(), b) })
			others = append(others, b)
		}
		for _, b := range others {
			Eventually(func() bool { return nodeReady(ctx, b.EffectiveNodeName()) }, 60*time.Second).Should(BeTrue())
		}
		// Past every binding's first polls and their hot periods.
		time.Sleep(3 * time.Second)

		f.sim.ResetStats()
		const window = 6 * time.Second
		time.Sleep(window)
		events := f.sim.Stats().Requests["listEvents"]
		polls := int64(window / time.Second)
		GinkgoWriter.Printf("%d bindings on one connection, %s at a 1 s poll: listEvents=%d (one reader each would make ~%d)\n", bindings, window, events, bindings*polls)
		// A poll takes a read up to half an interval old: about two reads
		// per interval between all of them, where one each made four.
		Expect(events).To(BeNumerically(">=", polls-2), "someone reads events every poll")
		Expect(events).To(BeNumerically("<=", 2*polls+2), "bindings of one connection share their event reads")

		By("a device added for the last binding is counted by it, from the shared events")
		last := others[len(others)-1]
		Expect(f.sim.AddDevice(flightctlsim.DeviceConfig{Name: "shared-new", Labels: map[string]string{"fleet": fmt.Sprintf("shared-%d", bindings-1)}, CPU: 1, Memory: "1Gi"})).To(Succeed())
		took := timeTo(func() bool {
			var b vkv1.FleetBinding
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(last), &b) == nil && b.Status.Devices != nil && b.Status.Devices.Total == 1
		}, 30*time.Second)
		GinkgoWriter.Printf("device added for binding %s counted after %s\n", last.Name, took.Round(time.Millisecond))
	})
})
