// Package e2e runs the seven scenarios of docs/quickstart.md (the code in
// test/quickstart that `make demo` also runs) against a real control plane,
// the Flightctl simulator and the vk-flightctl manager, all started by the
// suite as processes on 127.0.0.1 in a temporary directory, so it never
// meets a demo cluster.
//
// Prerequisites: Go, bash, and the Kubernetes binaries (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) that
// `make k8s-binaries-all` builds into bin/k8s/<version>. A missing one fails
// the suite with the command that builds it; the suite never skips.
//
//	go test ./test/e2e/... -ginkgo.v    # narrated, as make demo prints
//
// Environment: K8S_BIN_DIR overrides where the Kubernetes binaries are
// (KUBEBUILDER_ASSETS is used when it holds all five);
// E2E_KEEP=1 leaves the temporary directory (logs) in place.
//
// With FLIGHTCTL_URL, FLIGHTCTL_TOKEN, FLIGHTCTL_CA (and optionally
// FLIGHTCTL_AGENT_ENDPOINT) set, as `hack/real-flightctl.sh env` prints, the
// suite runs against that Flightctl instead of the simulator, with fake
// devices that enrol and report over its agent endpoint (`make test-real`).
// Scenario 5 then waits once for the server's own disconnect detection (up
// to 7 minutes: both devices are cut at once); E2E_SKIP_REAL_SCENARIO5=1
// leaves it out of a local run, reported as skipped with that reason.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// Shortened for the suite: a reconnect timeout of 15 s (the ConfigMap's
// default is 5 minutes) and a status poll of 1 s.
const (
	reconnectTimeout   = 15 * time.Second
	statusPollInterval = time.Second
)

var (
	stack *quickstart.Stack
	env   *quickstart.Env
	tmp   string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vk-flightctl end-to-end: the quickstart scenarios")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	root, err := quickstart.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	tmp, err = os.MkdirTemp("", "vk-flightctl-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(teardown)

	external, err := quickstart.ExternalFromEnv()
	Expect(err).NotTo(HaveOccurred())
	if external != nil {
		fmt.Fprintf(GinkgoWriter, "running against the external Flightctl at %s (FLIGHTCTL_URL) with fake devices\n", external.URL)
	}
	stack, err = quickstart.NewStack(quickstart.StackConfig{
		External:           external,
		Root:               root,
		StateDir:           filepath.Join(tmp, "state"),
		BinDir:             filepath.Join(tmp, "bin"),
		ClusterDir:         filepath.Join(tmp, "cluster"),
		Kubeconfig:         filepath.Join(tmp, "kubeconfig"),
		K8sBinDir:          quickstart.K8sBinDir(root),
		ReconnectTimeout:   reconnectTimeout,
		StatusPollInterval: statusPollInterval,
		Out:                GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
	// A missing prerequisite is a failure with instructions, not a skip:
	// make test must not go green without running the suite.
	if err := stack.CheckPrerequisites(); err != nil {
		Fail("the end-to-end suite cannot run: " + err.Error())
	}
	// Should this process die without running cleanup (a go test timeout
	// kills it), the reaper stops the control plane and removes tmp; the
	// manager and the simulator die with this process.
	Expect(stack.StartReaper(keepOr(tmp))).To(Succeed())

	if err := stack.Up(ctx); err != nil {
		dumpLogs()
		Fail("bringing up the stack: " + err.Error())
	}
	env = stack.Env(GinkgoWriter)
}, NodeTimeout(8*time.Minute))

// teardown stops everything; it runs after the specs, also when
// BeforeSuite or a spec failed or the run was interrupted.
func teardown(ctx SpecContext) {
	if stack != nil && stack.Started() {
		Expect(stack.Down(ctx)).To(Succeed())
	}
	if os.Getenv("E2E_KEEP") != "" {
		fmt.Fprintf(GinkgoWriter, "E2E_KEEP set: logs left in %s\n", tmp)
		return
	}
	Expect(os.RemoveAll(tmp)).To(Succeed())
}

func keepOr(dir string) string {
	if os.Getenv("E2E_KEEP") != "" {
		return ""
	}
	return dir
}

// dumpLogs prints what helps to understand a failure: the end of the
// manager's and the simulator's logs, the control plane's logs, and the
// cluster's pods, nodes and FleetBindings.
func dumpLogs() {
	if stack == nil {
		return
	}
	w := GinkgoWriter
	fmt.Fprintf(w, "\n==== diagnostics (temporary directory %s)\n", tmp)
	fmt.Fprintln(w, quickstart.TailFile(stack.ManagerLog, 120))
	fmt.Fprintln(w, quickstart.TailFile(stack.SimLog, 40))
	logs, _ := filepath.Glob(filepath.Join(tmp, "cluster", "logs", "*.log"))
	for _, l := range logs {
		fmt.Fprintln(w, quickstart.TailFile(l, 15))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "fleetbindings", "-A", "-o", "yaml"},
		{"get", "pods", "-A", "-o", "wide", "-L", quickstart.DeviceLabel},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		fmt.Fprintf(w, "    --- kubectl %s\n", strings.Join(args, " "))
		out, err := stack.KubectlOutput(ctx, args...)
		if err != nil {
			out += err.Error()
		}
		fmt.Fprintln(w, indent(out))
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
