package node_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var _ = Describe("Device reads per write", func() {
	ctx := context.Background()

	It("starts a write from the poller's read of the hot device instead of reading it again", func() {
		cfg := &flightctlsim.Config{Generate: []flightctlsim.GenerateConfig{{
			Prefix: "dev-", Count: 2, Labels: map[string]string{"fleet": "edge-fleet-1"},
			CPU: 4, Memory: "8Gi", IPStart: "192.0.2.1"}}}
		f := newFixture(ctx, flightctlsim.Options{Config: cfg}, nil)
		Expect(k8sClient.Create(ctx, f.pod("first", "10m", "16Mi", onDevice("dev-1")))).To(Succeed())
		Eventually(f.ready(ctx, "first"), 60*time.Second).Should(BeTrue())

		// One pod after another on the same device, each written while
		// the device is settled: the device's last by-name read (the one
		// that saw the previous pod Running) is current, so no write needs
		// a GET of its own. The first write above had no such read.
		const pods = 6
		f.sim.ResetStats()
		for i := 0; i < pods; i++ {
			name := fmt.Sprintf("next-%d", i)
			Expect(k8sClient.Create(ctx, f.pod(name, "10m", "16Mi", onDevice("dev-1")))).To(Succeed())
			Eventually(f.ready(ctx, name), 60*time.Second).Should(BeTrue())
		}
		st := f.sim.Stats()
		// A write from the hot read is a guarded patch (a stale copy is
		// a 400); one from a GET is a guarded PUT (a stale read is a 409).
		writes, stale := st.Requests["replaceDevice"]+st.Requests["patchDevice"], st.Responses["409"]+st.Responses["400"]
		GinkgoWriter.Printf("%d pods one after another on one device: getDevice=%d writes=%d (patchDevice=%d) listDevices=%d stale=%d\n",
			pods, st.Requests["getDevice"], writes, st.Requests["patchDevice"], st.Requests["listDevices"], stale)
		AddReportEntry("device GETs per pod created (sequential, one device)", float64(st.Requests["getDevice"])/pods)
		Expect(writes).To(BeNumerically(">=", int64(pods)), "every pod is written")
		Expect(st.Requests["getDevice"]).To(BeNumerically("<=", int64(pods)/3), "writes start from the hot read, not a GET each")
		Expect(stale).To(BeNumerically("<=", int64(pods)/3), "the hot read is current, not a stale copy")
	})
})
