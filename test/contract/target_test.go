package contract

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// Environment variables that point the suite at a real Flightctl.
const (
	envURL   = "FLIGHTCTL_CONTRACT_URL"
	envToken = "FLIGHTCTL_CONTRACT_TOKEN"
	envCA    = "FLIGHTCTL_CONTRACT_CA"
	// envAgentEndpoint optionally overrides the agent endpoint the
	// server's enrollment config names, for the remote agents.
	envAgentEndpoint = "FLIGHTCTL_CONTRACT_AGENT_ENDPOINT"
)

// Target is a Flightctl API server the suite runs against. The cases see a
// server only through it, so that one set of cases checks the simulator and
// a real Flightctl alike.
type Target interface {
	// Name labels the target in test output.
	Name() string
	// Config reaches and authenticates to the server. Cases start from a
	// copy and change what they test (no token, no CA, faster retries).
	Config() flightctl.Config
	// Sim is the simulator behind the target, or nil for a real server.
	// Only a simulator can disconnect a device's agent, inject faults or
	// seed a device that reports, so cases that need that are sim-only.
	Sim() *flightctlsim.Sim
	// AddReportingDevice adds a device whose agent reports like a real
	// one, and returns functions that cut its agent off and bring it back.
	// The simulator seeds one; against a real server it is a remote agent
	// (flightctlsim.RemoteAgents) that enrols and reports over the mTLS
	// agent endpoint, stopped when t ends.
	AddReportingDevice(t *testing.T, cfg flightctlsim.DeviceConfig) (disconnect, reconnect func())
	// Prefix starts the name of every object the suite creates, and is
	// the value of the runLabel every such object carries. It is random
	// per run, so a run on a shared server never touches anything else.
	Prefix() string
}

// runLabel marks every device and fleet the suite creates with the run's
// prefix; every list the suite makes selects on it, because a real server
// holds objects the suite must neither see nor count.
const runLabel = "vkct-run"

// newPrefix returns "vkct-" and six random hex digits: short enough to leave
// room in names, random enough that concurrent runs do not collide.
func newPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random prefix: %v", err)
	}
	return "vkct-" + hex.EncodeToString(b)
}

// simTarget is a simulator started for one top-level test.
type simTarget struct {
	name   string
	sim    *flightctlsim.Sim
	prefix string
}

func (s *simTarget) Name() string           { return s.name }
func (s *simTarget) Sim() *flightctlsim.Sim { return s.sim }
func (s *simTarget) Prefix() string         { return s.prefix }

// AddReportingDevice seeds a simulated device with a connected agent.
func (s *simTarget) AddReportingDevice(t *testing.T, cfg flightctlsim.DeviceConfig) (func(), func()) {
	t.Helper()
	if err := s.sim.AddDevice(cfg); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	step := func(what string, fn func(string) error) func() {
		return func() {
			if err := fn(cfg.Name); err != nil {
				t.Errorf("%s %s: %v", what, cfg.Name, err)
			}
		}
	}
	return step("disconnect", s.sim.Disconnect), step("reconnect", s.sim.Reconnect)
}

// Config trusts the simulator's generated CA when it serves HTTPS, as a
// provider would trust a private Flightctl CA.
func (s *simTarget) Config() flightctl.Config {
	return flightctl.Config{
		Server:  s.sim.URL(),
		Token:   s.sim.Token(),
		CAData:  s.sim.CACertPEM(),
		Timeout: 10 * time.Second,
		Retry:   suiteRetry,
	}
}

// simOptions are the simulator settings of the suite. The worker renders a
// little after each write, as a real server's does about a second later,
// so that no case can depend on an ordering Flightctl does not give.
// Disconnect detection is fast so the connectivity case need not wait
// five minutes. The fault seed is fixed so that a failing run repeats.
func simOptions(useTLS bool) flightctlsim.Options {
	return flightctlsim.Options{
		TLS:                 useTLS,
		RenderDelay:         20 * time.Millisecond,
		DisconnectDetection: 200 * time.Millisecond,
		FaultSeed:           1,
	}
}

// startSim starts a simulator on 127.0.0.1 and closes it when t ends.
func startSim(t *testing.T, opts flightctlsim.Options) *flightctlsim.Sim {
	t.Helper()
	sim := flightctlsim.New(opts)
	if err := sim.Start(); err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("close simulator: %v", err)
		}
	})
	return sim
}

// newSimTarget starts a simulator over HTTP or HTTPS.
func newSimTarget(t *testing.T, useTLS bool) Target {
	t.Helper()
	name := "simulator over HTTP"
	if useTLS {
		name = "simulator over HTTPS"
	}
	return &simTarget{name: name, sim: startSim(t, simOptions(useTLS)), prefix: newPrefix(t)}
}

// realTarget is a Flightctl API server named by the environment.
type realTarget struct {
	cfg    flightctl.Config
	prefix string
}

func (r *realTarget) Name() string             { return "Flightctl at " + r.cfg.Server }
func (r *realTarget) Config() flightctl.Config { return r.cfg }
func (r *realTarget) Sim() *flightctlsim.Sim   { return nil }
func (r *realTarget) Prefix() string           { return r.prefix }

// AddReportingDevice enrols a device with the real server and runs a
// remote agent for it: the only way a device reports like a real one
// there (a status PUT through the user API does not count as the agent
// being seen). Short phase delays and a 2 s heartbeat keep cases fast.
func (r *realTarget) AddReportingDevice(t *testing.T, cfg flightctlsim.DeviceConfig) (func(), func()) {
	t.Helper()
	agents, err := flightctlsim.StartRemoteAgents(t.Context(), flightctlsim.RemoteOptions{
		Server: r.cfg.Server, Token: r.cfg.Token, CAPEM: r.cfg.CAData,
		AgentEndpoint: strings.TrimSpace(os.Getenv(envAgentEndpoint)),
		Devices:       []flightctlsim.DeviceConfig{cfg},
		Agent:         flightctlsim.AgentDelays{Fetch: 100 * time.Millisecond, Preparing: 300 * time.Millisecond, Starting: 300 * time.Millisecond},
		Heartbeat:     2 * time.Second,
	})
	if err != nil {
		t.Fatalf("enrolling %s with a remote agent: %v", cfg.Name, err)
	}
	t.Cleanup(agents.Close)
	step := func(what string, fn func(string) error) func() {
		return func() {
			if err := fn(cfg.Name); err != nil {
				t.Errorf("%s %s: %v", what, cfg.Name, err)
			}
		}
	}
	return step("disconnect", agents.Disconnect), step("reconnect", agents.Reconnect)
}

// realTargetFromEnv builds the real target, or returns nil when
// FLIGHTCTL_CONTRACT_URL is not set. Half a configuration (a URL without a
// token, an unreadable CA file) is a failure, not a reason to skip: whoever
// set the URL meant the suite to run.
func realTargetFromEnv(t *testing.T) Target {
	t.Helper()
	server := strings.TrimSpace(os.Getenv(envURL))
	if server == "" {
		return nil
	}
	if u, err := url.Parse(server); err != nil || u.Host == "" {
		t.Fatalf("%s=%q is not a URL like https://host:3443", envURL, server)
	}
	token := strings.TrimSpace(os.Getenv(envToken))
	if token == "" {
		t.Fatalf("%s is set but %s is empty: the contract suite needs a bearer token for %s", envURL, envToken, server)
	}
	cfg := flightctl.Config{Server: server, Token: token, Retry: suiteRetry}
	if path := strings.TrimSpace(os.Getenv(envCA)); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v", envCA, err)
		}
		cfg.CAData = pem
	}
	return &realTarget{cfg: cfg, prefix: newPrefix(t)}
}

// suiteRetry keeps the client's retry behaviour (four attempts, doubling
// backoff) but with short waits, so that the fault cases stay fast.
var suiteRetry = flightctl.RetryConfig{
	MaxAttempts:    4,
	InitialBackoff: 20 * time.Millisecond,
	MaxBackoff:     200 * time.Millisecond,
}

// isHTTPS reports whether the target serves TLS.
func isHTTPS(tg Target) bool { return strings.HasPrefix(tg.Config().Server, "https://") }

// needs are what a case requires of a target beyond the Flightctl API.
type needs uint8

const (
	// needSim: the simulator's controls (faults, disconnects, agents).
	needSim needs = 1 << iota
	// needTLS: an HTTPS server.
	needTLS
	// needPrivateCA: an HTTPS server whose CA the suite was given, so
	// that a client without it must fail verification.
	needPrivateCA
)

// missing says why tg cannot run a case with these needs, or "" if it can.
func (n needs) missing(tg Target) string {
	switch {
	case n&needSim != 0 && tg.Sim() == nil:
		return "sim-only: needs the simulator's controls"
	case n&(needTLS|needPrivateCA) != 0 && !isHTTPS(tg):
		return "needs an HTTPS server"
	case n&needPrivateCA != 0 && len(tg.Config().CAData) == 0:
		return fmt.Sprintf("needs a private CA (%s) so that a client without it must fail", envCA)
	}
	return ""
}
