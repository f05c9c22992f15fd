// Command demo is `make demo`: it brings up a local control plane, the
// Flightctl simulator and the vk-flightctl manager (hack/demo.sh stops any
// previous demo first), walks the seven scenarios of docs/quickstart.md with
// kubectl, and leaves everything running for the reader to explore.
// `make demo-down` (hack/demo-down.sh) stops it.
//
// It exits 0 only if all seven scenarios pass.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
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
	only := flag.String("scenarios", "1,2,3,4,5,6,7", "which scenarios to run, comma-separated (they build on each other in order)")
	flightctl := flag.String("flightctl", "sim", "sim: the Flightctl simulator; real: a real Flightctl v1.2.0 (hack/real-flightctl.sh up) with fake devices")
	flag.Parse()
	if *flightctl != "sim" && *flightctl != "real" {
		fmt.Fprintf(os.Stderr, "demo: --flightctl %q: want sim or real\n", *flightctl)
		return 2
	}

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
	var external *quickstart.ExternalFlightctl
	if *flightctl == "real" {
		if external, err = startRealFlightctl(ctx, root, state); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			return 1
		}
	}
	stack, err := quickstart.NewStack(quickstart.StackConfig{
		External:           external,
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
	if external != nil {
		fmt.Fprintf(out, "vk-flightctl demo: local control plane + real Flightctl v1.2.0 (%s) with fake devices + manager, then the seven quickstart scenarios.\n", external.URL)
		fmt.Fprintf(out, "Scenario 5 waits for the real server to notice a silent device (up to %s, twice).\n", quickstart.RealDisconnectDetection)
	} else {
		fmt.Fprintf(out, "vk-flightctl demo: local control plane + Flightctl simulator + manager, then the seven quickstart scenarios.\n")
	}
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
		if !r.Passed() && !r.NotRun() {
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
	if s.External() {
		exports += fmt.Sprintf("export FLIGHTCTL_SIM_CONTROL_URL=%s\nexport FLIGHTCTL_SIM_CONTROL_TOKEN=%s\n", s.ControlURL, s.ControlToken)
	}
	envFile := filepath.Join(root, ".local", "demo", "env.sh")
	_ = os.WriteFile(envFile, []byte(exports), 0o600)
	what, dev, ctl := "Flightctl simulator", "device-1", "--server $FLIGHTCTL_URL --token $FLIGHTCTL_TOKEN --ca $FLIGHTCTL_CA"
	if s.External() {
		what, dev = "Real Flightctl v1.2.0 (hack/real-flightctl.sh; fake devices log to the simulator log)", "fake-edge-device-1"
		ctl = "--server $FLIGHTCTL_SIM_CONTROL_URL --token $FLIGHTCTL_SIM_CONTROL_TOKEN"
	}
	fmt.Fprintf(out, `
Everything is still running. To use it from your shell:

%s
(or: source %s)

  kubectl get nodes; kubectl get pods -A -o wide -L flightctl.io/device
  kubectl get fleetbinding -o wide

%s: %s (HTTPS; token and CA above); the device API, e.g.
  curl -s --cacert $FLIGHTCTL_CA -H "Authorization: Bearer $FLIGHTCTL_TOKEN" $FLIGHTCTL_URL/api/v1/devices/%s
  %s disconnect %s %s
Logs: manager %s, simulator %s, control plane .local/cluster/logs/
Stop everything: make demo-down
`, exports, rel(envFile), what, s.SimURL, dev, rel(s.SimBin), dev, ctl, rel(s.ManagerLog), rel(s.SimLog))
}

// startRealFlightctl runs `hack/real-flightctl.sh up` and reads what
// `env` prints. A marker in the demo's state directory tells
// hack/demo-down.sh to stop the service again.
func startRealFlightctl(ctx context.Context, root, state string) (*quickstart.ExternalFlightctl, error) {
	script := filepath.Join(root, "hack", "real-flightctl.sh")
	up := exec.CommandContext(ctx, script, "up")
	up.Stdout, up.Stderr = os.Stdout, os.Stderr
	fmt.Printf("$ hack/real-flightctl.sh up\n")
	if err := up.Run(); err != nil {
		return nil, fmt.Errorf("hack/real-flightctl.sh up: %w", err)
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(state, "real-flightctl"), []byte("started by make demo FLIGHTCTL=real\n"), 0o644); err != nil {
		return nil, err
	}
	raw, err := exec.CommandContext(ctx, script, "env").Output()
	if err != nil {
		return nil, fmt.Errorf("hack/real-flightctl.sh env: %w", err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			// The script prints values with printf %q; ours have no
			// characters that bash would quote.
			vars[k] = strings.Trim(v, "'")
		}
	}
	ext := &quickstart.ExternalFlightctl{URL: vars["FLIGHTCTL_URL"], Token: vars["FLIGHTCTL_TOKEN"], CAFile: vars["FLIGHTCTL_CA"],
		AgentEndpoint: vars["FLIGHTCTL_AGENT_ENDPOINT"], DisconnectDetection: quickstart.RealDisconnectDetection}
	if ext.URL == "" || ext.Token == "" {
		return nil, errors.New("hack/real-flightctl.sh env printed no FLIGHTCTL_URL or FLIGHTCTL_TOKEN")
	}
	return ext, nil
}
