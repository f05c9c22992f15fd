package quickstart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Defaults of the quickstart's fleet, as in the seed quickstart and the
// simulator's built-in configuration.
const (
	// DefaultFleet is the fleet the quickstart binds.
	DefaultFleet = "edge-fleet-1"
	// DefaultBindingNamespace holds the FleetBinding, its Secret and the
	// manager's ConfigMap.
	DefaultBindingNamespace = "default"
	// SecretName is the credentials Secret the FleetBinding names.
	SecretName = "flightctl-credentials"
)

// Env is what the scenarios need to reach the system under test.
type Env struct {
	// Kubectl is the kubectl binary. It should be the v1.37 kubectl built
	// into bin/k8s/<version>; an older kubectl prints different describe
	// output.
	Kubectl string
	// Kubeconfig is passed to kubectl as KUBECONFIG.
	Kubeconfig string
	// FlightctlURL is the Flightctl API base URL (without /api/v1).
	FlightctlURL string
	// FlightctlToken is the bearer token for FlightctlURL.
	FlightctlToken string
	// FlightctlCA is a PEM file with the CA that signs the API's
	// certificate; empty means the system roots.
	FlightctlCA string
	// SimCLI is the flightctl-sim binary whose disconnect and reconnect
	// subcommands cut a device off (scenario 5).
	SimCLI string
	// ControlURL and ControlToken reach the device control API that
	// SimCLI's disconnect and reconnect use: the simulator itself, or the
	// fake devices run against a real Flightctl. Empty means FlightctlURL
	// and FlightctlToken (the simulator).
	ControlURL   string
	ControlToken string
	// NoConsole says the devices open no console sessions (fake devices
	// against a real Flightctl), so kubectl logs and exec cannot work.
	NoConsole bool
	// DisconnectDetection is the longest the Flightctl server takes to
	// declare a silent device disconnected (0 for a simulator run with
	// --disconnect-detection 0s; RealDisconnectDetection for v1.2.0).
	// Scenario 5 waits that much longer, and says so.
	DisconnectDetection time.Duration
	// ManagerLog is the file the manager's JSON log goes to; scenarios 5
	// and 6 show and check its lines.
	ManagerLog string
	// Fleet is the bound fleet; the node is vk-flightctl-<Fleet>.
	Fleet string
	// BindingNamespace holds the FleetBinding and the ConfigMap.
	BindingNamespace string
	// ReconnectTimeout is the binding's spec.reconnectTimeout; scenario 5
	// waits that long (plus slack) for the pod to be rescheduled.
	ReconnectTimeout time.Duration
	// Out receives the narration.
	Out io.Writer
}

// NodeName is the virtual node the manager registers for the fleet.
func (e *Env) NodeName() string { return "vk-flightctl-" + e.Fleet }

func (e *Env) validate() error {
	var missing []string
	for name, v := range map[string]string{
		"Kubectl": e.Kubectl, "Kubeconfig": e.Kubeconfig, "FlightctlURL": e.FlightctlURL,
		"FlightctlToken": e.FlightctlToken, "SimCLI": e.SimCLI, "ManagerLog": e.ManagerLog, "Fleet": e.Fleet,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("quickstart.Env is missing %s", strings.Join(missing, ", "))
	}
	if e.ReconnectTimeout <= 0 {
		return errors.New("quickstart.Env.ReconnectTimeout must be the FleetBinding's spec.reconnectTimeout")
	}
	return nil
}

func (e *Env) out() io.Writer {
	if e.Out == nil {
		return io.Discard
	}
	return e.Out
}

func (e *Env) bindingNamespace() string {
	if e.BindingNamespace == "" {
		return DefaultBindingNamespace
	}
	return e.BindingNamespace
}

// Scenario is one numbered scenario of the quickstart.
type Scenario struct {
	// Number is 1 to 7, as in docs/quickstart.md.
	Number int
	// Title is the quickstart's heading.
	Title string
	// Run performs the scenario, narrating to Env.Out, and returns an error
	// listing every check that failed.
	Run func(ctx context.Context, e *Env) error
}

// Scenarios returns the seven scenarios in quickstart order.
func Scenarios() []Scenario {
	return []Scenario{
		{1, "Deploy a workload to an edge device", Scenario1Deploy},
		{2, "Fleet-level targeting", Scenario2Fleet},
		{3, "Resource validation", Scenario3Resources},
		{4, "Workload update (simple replace)", Scenario4Update},
		{5, "Device disconnection and reconnection", Scenario5Disconnect},
		{6, "Pod deletion and cleanup", Scenario6Delete},
		{7, "A DaemonSet rolled out to a Flightctl Fleet", Scenario7FleetRollout},
	}
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario Scenario
	Duration time.Duration
	Err      error
}

// ErrNotRun marks a scenario that cannot run against this stack (for
// example one that needs the simulator's control API); it is reported as
// not run, never counted as passed.
var ErrNotRun = errors.New("not run")

// Passed reports whether the scenario ran and met every check.
func (r Result) Passed() bool { return r.Err == nil }

// NotRun reports whether the scenario could not run against this stack.
func (r Result) NotRun() bool { return errors.Is(r.Err, ErrNotRun) }

// RunScenario runs one scenario with a header and a PASS/FAIL line.
func RunScenario(ctx context.Context, e *Env, s Scenario) Result {
	if err := e.validate(); err != nil {
		return Result{Scenario: s, Err: err}
	}
	w := e.out()
	fmt.Fprintf(w, "\n==== Scenario %d: %s\n", s.Number, s.Title)
	start := time.Now()
	err := s.Run(ctx, e)
	d := time.Since(start)
	switch {
	case errors.Is(err, ErrNotRun):
		fmt.Fprintf(w, "==== NOT RUN scenario %d (%s): %s\n", s.Number, s.Title, strings.TrimPrefix(err.Error(), ErrNotRun.Error()+": "))
	case err != nil:
		fmt.Fprintf(w, "==== FAIL scenario %d (%s) in %s:\n%s\n", s.Number, s.Title, round(d), indent(err.Error(), "       "))
	default:
		fmt.Fprintf(w, "==== PASS scenario %d (%s) in %s\n", s.Number, s.Title, round(d))
	}
	return Result{Scenario: s, Duration: d, Err: err}
}

// RunAll runs the scenarios in order, never stopping at a failure (later
// scenarios recreate what they need), and prints a summary ending in
// "N/M scenarios passed".
func RunAll(ctx context.Context, e *Env, scenarios []Scenario) []Result {
	results := make([]Result, 0, len(scenarios))
	for _, s := range scenarios {
		if ctx.Err() != nil {
			results = append(results, Result{Scenario: s, Err: fmt.Errorf("not run: %w", ctx.Err())})
			continue
		}
		results = append(results, RunScenario(ctx, e, s))
	}
	PrintSummary(e.out(), results)
	return results
}

// PrintSummary prints one line per scenario and "N/M scenarios passed",
// where M counts the scenarios that ran; those that could not run against
// this stack are named after it.
func PrintSummary(w io.Writer, results []Result) {
	fmt.Fprintln(w, "\n==== Summary")
	passed, ran := 0, 0
	var notRun []string
	for _, r := range results {
		verdict := "FAIL"
		switch {
		case r.NotRun():
			verdict = "----"
			notRun = append(notRun, strconv.Itoa(r.Scenario.Number))
		case r.Passed():
			verdict = "PASS"
			passed++
			ran++
		default:
			ran++
		}
		fmt.Fprintf(w, "  %s  %d. %-42s %8s\n", verdict, r.Scenario.Number, r.Scenario.Title, round(r.Duration))
	}
	if len(notRun) > 0 {
		fmt.Fprintf(w, "%d/%d scenarios passed (not run against this Flightctl: %s)\n", passed, ran, strings.Join(notRun, ", "))
		return
	}
	fmt.Fprintf(w, "%d/%d scenarios passed\n", passed, ran)
}

func round(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func indent(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
