// Command demo is `make demo`: it brings up a local control plane, the
// Flightctl simulator and the vk-flightctl manager (hack/demo.sh stops any
// previous demo first), walks the six scenarios of docs/quickstart.md with
// kubectl, and leaves everything running for the reader to explore.
// `make demo-down` (hack/demo-down.sh) stops it.
//
// It exits 0 only if all six scenarios pass.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

func main() {
	os.Exit(run())
}

func run() int {
	reconnect := flag.Duration("reconnect-timeout", 20*time.Second, "the FleetBinding's spec.reconnectTimeout (scenario 5 waits this long; minimum 10s)")
	poll := flag.Duration("status-poll-interval", 2*time.Second, "the FleetBinding's spec.statusPollInterval (minimum 1s)")
	asAdmin := flag.Bool("manager-as-admin", false, "run the manager with the cluster-admin kubeconfig instead of its ServiceAccount (config/rbac)")
	only := flag.String("scenarios", "1,2,3,4,5,6", "which scenarios to run, comma-separated (they build on each other in order)")
	flag.Parse()

	root, err := quickstart.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	start := time.Now()
	out := os.Stdout
	state := filepath.Join(root, ".local", "demo")
	stack, err := quickstart.NewStack(quickstart.StackConfig{
		Root:               root,
		StateDir:           state,
		BinDir:             filepath.Join(root, "bin"),
		K8sBinDir:          os.Getenv("K8S_BIN_DIR"), // as hack/local-cluster.sh; empty: bin/k8s/<version>
		BuildK8s:           true,
		ReconnectTimeout:   *reconnect,
		StatusPollInterval: *poll,
		Detach:             true,
		ManagerAsAdmin:     *asAdmin,
		Out:                out,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	fmt.Fprintf(out, "vk-flightctl demo: local control plane + Flightctl simulator + manager, then the six quickstart scenarios.\n")
	if err := stack.Up(ctx); err != nil {
		fmt.Fprintf(out, "\nSETUP FAILED: %v\n", err)
		printAccess(out, root, stack)
		return 1
	}
	setup := time.Since(start)
	fmt.Fprintf(out, "\nSetup done in %s.\n", setup.Round(100*time.Millisecond))

	var scenarios []quickstart.Scenario
	for _, s := range quickstart.Scenarios() {
		if strings.Contains(","+*only+",", fmt.Sprintf(",%d,", s.Number)) {
			scenarios = append(scenarios, s)
		}
	}
	results := quickstart.RunAll(ctx, stack.Env(out), scenarios)
	fmt.Fprintf(out, "setup %s, scenarios %s, total %s\n", setup.Round(100*time.Millisecond),
		(time.Since(start) - setup).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
	printAccess(out, root, stack)
	for _, r := range results {
		if !r.Passed() {
			return 1
		}
	}
	return 0
}

// printAccess tells the reader how to use what is still running, and
// writes the same exports to .local/demo/env.sh.
func printAccess(out *os.File, root string, s *quickstart.Stack) {
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	exports := fmt.Sprintf("export KUBECONFIG=%s\nexport PATH=%s:$PATH\nexport FLIGHTCTL_URL=%s\nexport FLIGHTCTL_TOKEN=%s\nexport FLIGHTCTL_CA=%s\n",
		s.Kubeconfig, filepath.Dir(s.Kubectl), s.SimURL, s.SimToken, s.SimCA)
	envFile := filepath.Join(root, ".local", "demo", "env.sh")
	_ = os.WriteFile(envFile, []byte(exports), 0o600)
	fmt.Fprintf(out, `
Everything is still running. To use it from your shell:

%s
(or: source %s)

  kubectl get nodes; kubectl get pods -A -o wide -L flightctl.io/device
  kubectl get fleetbinding -o wide

Flightctl simulator: %s (HTTPS; token and CA above); the device API, e.g.
  curl -s --cacert $FLIGHTCTL_CA -H "Authorization: Bearer $FLIGHTCTL_TOKEN" $FLIGHTCTL_URL/api/v1/devices/device-1
  %s disconnect device-1 --server $FLIGHTCTL_URL --token $FLIGHTCTL_TOKEN --ca $FLIGHTCTL_CA
Logs: manager %s, simulator %s, control plane .local/cluster/logs/
Stop everything: make demo-down
`, exports, rel(envFile), s.SimURL, rel(s.SimBin), rel(s.ManagerLog), rel(s.SimLog))
}
