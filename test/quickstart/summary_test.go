package quickstart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A scenario that cannot run against the stack is listed and named, never
// counted as passed, and a failure still counts against the total.
func TestSummaryCountsOnlyScenariosThatRan(t *testing.T) {
	results := []Result{
		{Scenario: Scenario{Number: 1, Title: "one"}},
		{Scenario: Scenario{Number: 2, Title: "two"}, Err: errors.New("pod not Running")},
		{Scenario: Scenario{Number: 7, Title: "seven"}, Err: fmt.Errorf("%w: needs the simulator", ErrNotRun)},
	}
	if results[0].NotRun() || results[1].NotRun() || !results[2].NotRun() || results[2].Passed() {
		t.Fatalf("NotRun/Passed: %v %v %v %v", results[0].NotRun(), results[1].NotRun(), results[2].NotRun(), results[2].Passed())
	}
	var out bytes.Buffer
	PrintSummary(&out, results)
	if !strings.Contains(out.String(), "1/2 scenarios passed (not run against this Flightctl: 7)\n") {
		t.Fatalf("summary:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "----  7. seven") || !strings.Contains(out.String(), "FAIL  2. two") {
		t.Fatalf("verdicts:\n%s", out.String())
	}
}

func TestRunScenarioPrintsWhyItDidNotRun(t *testing.T) {
	var out bytes.Buffer
	// The scenario never touches these: it returns before using the stack.
	e := &Env{Out: &out, Kubectl: "kubectl", Kubeconfig: "kubeconfig", FlightctlURL: "https://127.0.0.1:1",
		FlightctlToken: "t", SimCLI: "flightctl-sim", ManagerLog: "manager.log", Fleet: "f", ReconnectTimeout: time.Minute}
	s := Scenario{Number: 7, Title: "seven", Run: func(context.Context, *Env) error {
		return fmt.Errorf("%w: needs the simulator", ErrNotRun)
	}}
	r := RunScenario(context.Background(), e, s)
	if !r.NotRun() || !strings.Contains(out.String(), "==== NOT RUN scenario 7 (seven): needs the simulator\n") {
		t.Fatalf("result %v, output:\n%s", r.Err, out.String())
	}
}
