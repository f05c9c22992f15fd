package flightctlsim

import (
	"log/slog"
	"time"
)

// DefaultAddr is where the simulator listens when Options.Addr is empty:
// loopback only, on a free port, so that parallel tests never collide and
// nothing is exposed beyond the machine.
const DefaultAddr = "127.0.0.1:0"

// RealDisconnectTimeout is how long a real Flightctl server waits without
// hearing from a device before it marks it disconnected. The simulator's
// own default is zero (tests want fast detection); the binary defaults to
// this value.
const RealDisconnectTimeout = 5 * time.Minute

// DefaultMaxEvents bounds the event log so that a long soak test with many
// devices cannot grow memory without limit; the oldest events are dropped
// first, as the real server's retention does.
const DefaultMaxEvents = 200000

// AgentDelays are the pauses of a simulated agent while it applies a newly
// rendered spec. Zero values make the agent move on at once (each phase is
// still a separate status write).
type AgentDelays struct {
	// Fetch is the time between the server rendering a spec and the agent
	// picking it up: applications changed by the spec become Preparing and
	// status.updated becomes Updating.
	Fetch time.Duration
	// Preparing is how long applications stay Preparing (pulling images).
	// At its end the spec counts as applied: status.config.renderedVersion
	// follows the rendered annotation and applications become Starting
	// (or Error for a failing image).
	Preparing time.Duration
	// Starting is how long applications stay Starting before Running.
	Starting time.Duration
	// CrashLoop is the time between two restarts of an application whose
	// image is tagged ":crashloop"; zero means DefaultCrashLoop.
	CrashLoop time.Duration
}

// DefaultCrashLoop is the default time between two restarts of a crashing
// application: long enough for a poller to see each count.
const DefaultCrashLoop = 2 * time.Second

// Options configure a simulator. The zero value is a working fast
// simulator for tests: loopback, random port, random token, plain HTTP,
// no render or agent delays, immediate disconnect detection.
type Options struct {
	// Addr is the listen address; empty means DefaultAddr.
	Addr string
	// AllowNonLoopback permits listening on a non-loopback address. The
	// simulator has no real security, so exposing it needs an explicit
	// decision.
	AllowNonLoopback bool
	// Token is the bearer token clients must send; empty means a random one
	// (see Sim.Token).
	Token string
	// TokenVerifier, when set, also accepts the bearer tokens it approves
	// (JWTs of an OIDC issuer, Kubernetes ServiceAccount tokens through a
	// TokenReview), the way a real server authenticates with an identity
	// provider. Token keeps working beside it.
	TokenVerifier func(token string) bool
	// TLS serves HTTPS with a CA and server certificate generated in
	// memory for 127.0.0.1, ::1 and localhost (see Sim.CACertPEM).
	TLS bool
	// RenderDelay is how long after a spec, label or fleet change the
	// simulated server worker renders the device (about a second on a real
	// server).
	RenderDelay time.Duration
	// Agent are the simulated agents' phase delays.
	Agent AgentDelays
	// DisconnectDetection is how long after a device's last report it is
	// marked disconnected (RealDisconnectTimeout on a real server).
	DisconnectDetection time.Duration
	// HeartbeatInterval is the granularity of lastSeen for connected
	// devices: lastSeen advances in steps of this size. Zero means lastSeen
	// is always "now" while the device is connected.
	HeartbeatInterval time.Duration
	// APIDevicesConnected gives devices created through the REST API a
	// connected simulated agent. By default they never report, like a
	// device record on a real server that no agent enrolled into.
	APIDevicesConnected bool
	// MaxEvents bounds the event log; zero means DefaultMaxEvents.
	MaxEvents int
	// Cost is the modelled server time of each request; the zero value
	// keeps the simulator as fast as it can be (see CostModelByName).
	Cost CostModel
	// Faults are injected from the start; see Sim.SetFaults.
	Faults Faults
	// FaultSeed seeds the fault injector's random numbers so that a
	// failing run can be repeated; zero means a random seed.
	FaultSeed uint64
	// Config declares fleets and devices created by Start.
	Config *Config
	// Logger receives request and lifecycle logs; nil discards them.
	Logger *slog.Logger
}
