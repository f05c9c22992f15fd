package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// The scenarios build on each other in quickstart order (scenario 6
// deletes scenario 1's pod), hence Ordered; ContinueOnFailure runs the
// rest after a failure, since each recreates what it needs, so one bug
// does not hide the verdict on the other scenarios.
var _ = Describe("Quickstart", Ordered, ContinueOnFailure, func() {
	AfterEach(func() {
		if CurrentSpecReport().Failed() {
			dumpLogs()
		}
	})

	for _, s := range quickstart.Scenarios() {
		// Scenario 5 waits for the reconnect timeout to expire, and on a
		// real Flightctl once for its disconnect detection (both devices
		// are cut at once there).
		timeout := 3 * time.Minute
		if s.Number == 5 {
			timeout += 2*reconnectTimeout + quickstart.RealDisconnectDetection
		}
		It(fmt.Sprintf("scenario %d: %s", s.Number, s.Title), func(ctx SpecContext) {
			if s.Number == 5 && stack.External() && os.Getenv("E2E_SKIP_REAL_SCENARIO5") != "" {
				Skip("E2E_SKIP_REAL_SCENARIO5 is set: scenario 5 (up to 7 minutes against a real Flightctl) left out of this local run")
			}
			res := quickstart.RunScenario(ctx, env, s)
			Expect(res.Err).NotTo(HaveOccurred(), "scenario %d (%s) failed after %s; its narration is above", s.Number, s.Title, res.Duration.Round(time.Millisecond))
		}, SpecTimeout(timeout))
	}

	// Against a real Flightctl, one real flightctl-agent v1.2.0 enrols as
	// a device of the fleet: it must come Online and the node must count
	// its CPU and memory, then give them back once it is deleted. It
	// cannot run applications here (the agent needs skopeo and podman 5),
	// so a pod placed on it must show the agent's failed update, not wait
	// for ever.
	It("a real flightctl-agent enrolled in the fleet is counted in the node's capacity", func(ctx SpecContext) {
		if !stack.External() {
			Skip("needs a real Flightctl (FLIGHTCTL_URL): make test-real runs it")
		}
		ext, err := quickstart.ExternalFromEnv()
		Expect(err).NotTo(HaveOccurred())
		before := nodeCapacity(ctx)
		dir := filepath.Join(tmp, "real-agent")
		agent, err := quickstart.StartRealAgent(ctx, ext, quickstart.FlightctlBinDir(), dir, map[string]string{"fleet": quickstart.DefaultFleet}, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			agent.Stop()
			Expect(agent.Delete(ctx)).To(Succeed())
		})
		cpu, mem, err := agent.Device(ctx)
		Expect(err).NotTo(HaveOccurred())
		wantCPU := before.cpu.DeepCopy()
		wantCPU.Add(resource.MustParse(cpu))
		wantMem := before.memory.DeepCopy()
		wantMem.Add(resource.MustParse(mem + "Ki"))
		fmt.Fprintf(GinkgoWriter, "    node capacity before: cpu %s, memory %s; the agent reports cpuCores %s, memoryTotalKb %s\n", &before.cpu, &before.memory, cpu, mem)
		Eventually(func(g Gomega) {
			c := nodeCapacity(ctx)
			g.Expect(c.cpu.Cmp(wantCPU)).To(Equal(0), "cpu capacity %s, want %s", &c.cpu, &wantCPU)
			g.Expect(c.memory.Cmp(wantMem)).To(Equal(0), "memory capacity %s, want %s", &c.memory, &wantMem)
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
		fmt.Fprintf(GinkgoWriter, "    [ok]   node %s counts device %s: capacity cpu %s, memory %s\n", env.NodeName(), agent.Name, &wantCPU, &wantMem)

		podOnRealAgentShowsFailedUpdate(ctx, agent)

		agent.Stop()
		Expect(agent.Delete(ctx)).To(Succeed())
		Eventually(func(g Gomega) {
			c := nodeCapacity(ctx)
			g.Expect(c.cpu.Cmp(before.cpu)).To(Equal(0), "cpu capacity %s after the device was deleted, want %s", &c.cpu, &before.cpu)
			g.Expect(c.memory.Cmp(before.memory)).To(Equal(0), "memory capacity %s after the device was deleted, want %s", &c.memory, &before.memory)
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
		fmt.Fprintf(GinkgoWriter, "    [ok]   device deleted: capacity back to cpu %s, memory %s\n", &before.cpu, &before.memory)
	}, SpecTimeout(8*time.Minute))
})

// capacity is a node's CPU and memory capacity.
type capacity struct{ cpu, memory resource.Quantity }

// nodeCapacity reads the virtual node's capacity with kubectl.
func nodeCapacity(ctx SpecContext) capacity {
	out, err := stack.KubectlOutput(ctx, "get", "node", env.NodeName(), "-o", "jsonpath={.status.capacity.cpu} {.status.capacity.memory}")
	Expect(err).NotTo(HaveOccurred())
	f := strings.Fields(out)
	Expect(f).To(HaveLen(2), "node capacity %q", out)
	return capacity{cpu: resource.MustParse(f[0]), memory: resource.MustParse(f[1])}
}
