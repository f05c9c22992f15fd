package flightctlsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Sim is a running (or ready to run) Flightctl simulator. Create one with
// New, call Start, and Close it when done. All methods are safe for
// concurrent use.
type Sim struct {
	opts  Options
	token string
	log   *slog.Logger

	// mu guards everything below it up to the scheduler fields.
	mu          sync.RWMutex
	devices     map[string]*device
	deviceNames []string
	fleets      map[string]*fleet
	fleetNames  []string
	events      eventLog
	tasks       taskHeap
	taskSeq     uint64
	epochSeq    uint64

	faults *faultState
	stats  *statsState
	reqSeq atomic.Uint64
	reqTag string

	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	lifecycle sync.Mutex
	srv       *http.Server
	url       string
	caPEM     []byte
	started   bool
	closed    bool
}

// ErrNotFound is returned by Sim methods given an unknown device or fleet.
var ErrNotFound = errors.New("not found")

// New creates a simulator. Nothing listens until Start.
func New(opts Options) *Sim {
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = DefaultMaxEvents
	}
	if opts.Cost.RenderDelay > 0 {
		opts.RenderDelay = opts.Cost.RenderDelay
	}
	token := opts.Token
	if token == "" {
		token = randomHex(24)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Sim{
		opts:    opts,
		token:   token,
		log:     logger,
		devices: map[string]*device{},
		fleets:  map[string]*fleet{},
		events:  eventLog{max: opts.MaxEvents},
		faults:  newFaultState(opts.Faults, opts.FaultSeed),
		stats:   newStatsState(),
		reqTag:  randomHex(5),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
}

// Start applies Options.Config and starts serving. It listens on
// Options.Addr (127.0.0.1 on a free port by default) and refuses a
// non-loopback address unless Options.AllowNonLoopback is set.
func (s *Sim) Start() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.started {
		return errors.New("flightctlsim: already started")
	}
	if err := s.opts.Cost.check(); err != nil {
		return fmt.Errorf("flightctlsim: %w", err)
	}
	if s.opts.Faults != (Faults{}) {
		if err := s.opts.Faults.validate(); err != nil {
			return fmt.Errorf("flightctlsim: faults: %w", err)
		}
	}
	addr := s.opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("flightctlsim: listen address %q: %w", addr, err)
	}
	if err := CheckLoopback(host, s.opts.AllowNonLoopback); err != nil {
		return err
	}
	if s.opts.Config != nil {
		if err := s.ApplyConfig(s.opts.Config); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("flightctlsim: %w", err)
	}
	scheme := "http"
	if s.opts.TLS {
		mat, err := generateTLS(host)
		if err != nil {
			ln.Close()
			return fmt.Errorf("flightctlsim: %w", err)
		}
		s.caPEM = mat.caPEM
		ln = tls.NewListener(ln, mat.config)
		scheme = "https"
	}
	s.url = scheme + "://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// Aborted connections (the Unreachable fault) and clients that
		// hang up are normal here; keep them out of the test output.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	s.started = true
	s.wg.Add(2)
	go s.runScheduler()
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("server stopped", "error", err)
		}
	}()
	s.log.Info("flightctl simulator listening", "url", s.url, "tls", s.opts.TLS)
	return nil
}

// Close stops serving and the scheduler, and waits for both. It is safe to
// call more than once.
func (s *Sim) Close() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if !s.started || s.closed {
		s.closed = true
		return nil
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	close(s.stop)
	s.wg.Wait()
	return err
}

// URL is the server's base URL (scheme://host:port), without /api/v1.
func (s *Sim) URL() string {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	return s.url
}

// Token is the bearer token the simulator accepts.
func (s *Sim) Token() string { return s.token }

// CACertPEM is the PEM of the CA that signed the server certificate, or
// nil without TLS.
func (s *Sim) CACertPEM() []byte {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	return slices.Clone(s.caPEM)
}

// HTTPClient returns a client that trusts the simulator's CA. The token is
// not added; callers set the Authorization header as they would for a
// real server.
func (s *Sim) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if pem := s.CACertPEM(); pem != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// now is the simulator's clock.
func (s *Sim) now() time.Time { return time.Now() }

// ApplyConfig creates the fleets and devices of a configuration.
func (s *Sim) ApplyConfig(cfg *Config) error {
	if err := cfg.check(); err != nil {
		return fmt.Errorf("flightctlsim: config: %w", err)
	}
	for _, f := range cfg.Fleets {
		if err := s.AddFleet(f); err != nil {
			return err
		}
	}
	selectors := map[string]map[string]string{}
	for _, f := range cfg.Fleets {
		selectors[f.Name] = f.Selector
	}
	for _, d := range cfg.expand() {
		if d.OwnedBy != "" {
			lbls := maps.Clone(d.Labels)
			if lbls == nil {
				lbls = map[string]string{}
			}
			maps.Copy(lbls, selectors[d.OwnedBy])
			d.Labels = lbls
		}
		if err := s.AddDevice(d); err != nil {
			return err
		}
	}
	return nil
}

// AddDevice creates a device with a simulated agent (unless cfg.NoAgent),
// as if it had enrolled. OwnedBy is only honoured through ApplyConfig;
// here give the device the owning fleet's labels instead.
func (s *Sim) AddDevice(cfg DeviceConfig) error {
	kb, err := memoryKB(cfg.Memory)
	if err != nil {
		return fmt.Errorf("flightctlsim: device %s: %w", cfg.Name, err)
	}
	spec, specObj, msg := parseSpecForSeed(cfg.Spec, "Device", "/spec")
	if msg == "" {
		name := cfg.Name
		errs := append(validateResourceName(&name), validateLabels(cfg.Labels, "metadata.labels")...)
		errs = append(errs, validateSpec(specObj, false)...)
		msg = joinLines(errs)
	}
	if msg != "" {
		return fmt.Errorf("flightctlsim: device %s: %s", cfg.Name, msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.devices[cfg.Name]; exists {
		return fmt.Errorf("flightctlsim: device %s: a resource with this name already exists", cfg.Name)
	}
	d := s.createDevice(cfg.Name, cfg.Labels, spec, specObj, actor{name: "user:none", component: "flightctl-api"}, s.now())
	if !cfg.NoAgent {
		d.agent = newAgent(cfg.Name, cfg, kb)
		if !cfg.Disconnected {
			d.agent.connected = true
			s.agentReport(d)
		}
	}
	return nil
}

// AddFleet creates a Flightctl Fleet. Devices its selector matches become
// owned by it (unless another fleet matches them too).
func (s *Sim) AddFleet(cfg FleetConfig) error {
	spec, specObj, msg := parseSpecForSeed(cfg.Template, "Fleet", "/spec/template/spec")
	if msg == "" {
		name := cfg.Name
		errs := append(validateResourceName(&name), validateLabels(cfg.Labels, "metadata.labels")...)
		errs = append(errs, validateLabels(cfg.Selector, "spec.selector.matchLabels")...)
		errs = append(errs, validateSpec(specObj, true)...)
		msg = joinLines(errs)
	}
	if msg != "" {
		return fmt.Errorf("flightctlsim: fleet %s: %s", cfg.Name, msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.fleets[cfg.Name]; exists {
		return fmt.Errorf("flightctlsim: fleet %s: a resource with this name already exists", cfg.Name)
	}
	s.createFleet(fleetBody{
		name: cfg.Name, labels: cfg.Labels, selector: cfg.Selector, hasSelector: cfg.Selector != nil,
		templateLabels: cfg.TemplateLabels, spec: spec, specObj: specObj,
	}, actor{name: "user:none", component: "flightctl-api"})
	return nil
}

// parseSpecForSeed checks a spec given through the Go API or a config
// file with the same schema rules as the REST API.
func parseSpecForSeed(raw json.RawMessage, schema, at string) ([]byte, map[string]any, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return []byte("{}"), map[string]any{}, ""
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, nil, "spec: " + err.Error()
	}
	if msg := checkSpecSchema(v, schema, at); msg != "" {
		return nil, nil, msg
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil, "spec must be an object"
	}
	return mustMarshal(obj), obj, ""
}

// Disconnect makes a device's agent stop reporting, as if the device lost
// its network. lastSeen freezes; after Options.DisconnectDetection the
// server marks the device Unknown and records DeviceDisconnected.
func (s *Sim) Disconnect(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return fmt.Errorf("device %q: %w", name, ErrNotFound)
	}
	s.disconnect(d)
	return nil
}

// Reconnect brings a device's agent back (giving the device an agent if it
// had none): it reports at once, the server records DeviceConnected, and
// the agent applies any spec rendered meanwhile.
func (s *Sim) Reconnect(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return fmt.Errorf("device %q: %w", name, ErrNotFound)
	}
	s.reconnect(d)
	return nil
}

// FailApplications makes every Running application of a device's agent
// fail (status Error, as a container that died and stays down) and
// report it at once: the server records DeviceApplicationError when the
// applications summary changes, naming no application, as a real one.
func (s *Sim) FailApplications(name string) error {
	return s.changeRunningApps(name, func(app *agentApp) { app.status = flightctl.ApplicationStatusError })
}

// RestartApplications counts one restart of every Running application of
// a device's agent, which stays Running, and reports it at once: the
// summaries do not change, so the server records no event.
func (s *Sim) RestartApplications(name string) error {
	return s.changeRunningApps(name, func(app *agentApp) { app.restarts++ })
}

// changeRunningApps applies change to a connected agent's Running
// applications and reports.
func (s *Sim) changeRunningApps(name string, change func(*agentApp)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[name]
	if d == nil {
		return fmt.Errorf("device %q: %w", name, ErrNotFound)
	}
	if d.agent == nil || !d.agent.connected {
		return fmt.Errorf("device %q has no connected agent", name)
	}
	for i := range d.agent.apps {
		if app := &d.agent.apps[i]; app.status == flightctl.ApplicationStatusRunning {
			change(app)
		}
	}
	s.agentReport(d)
	return nil
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return err
	}
	s.faults.set(f)
	return nil
}

// Faults returns the faults in effect (ConflictCount counts down as
// conflicts are injected).
func (s *Sim) Faults() Faults { return s.faults.get() }

// Stats returns request counters.
func (s *Sim) Stats() Stats { return s.stats.snapshot() }

// ResetStats zeroes the request counters.
func (s *Sim) ResetStats() { s.stats.reset() }

// DeviceSnapshot is a copy of a device's state, including what the API
// does not show (connectivity, the agent).
type DeviceSnapshot struct {
	// Name, Labels, Annotations and Owner are the device's metadata
	// (Owner is "Fleet/<name>" or empty).
	Name        string
	Labels      map[string]string
	Annotations map[string]string
	Owner       string
	// ResourceVersion and Generation are the counters the API shows as
	// metadata.resourceVersion (a string there) and metadata.generation.
	ResourceVersion int64
	Generation      int64
	// Spec is the device spec as stored (canonical JSON).
	Spec json.RawMessage
	// Status is the device status as the API shows it.
	Status flightctl.DeviceStatus
	// RenderedVersion is the latest rendered version (0 before the first).
	RenderedVersion int64
	// LastSeen is what GET .../lastseen reports (zero: never).
	LastSeen time.Time
	// HasAgent tells whether the device has a simulated agent at all.
	HasAgent bool
	// AgentConnected tells whether that agent is currently reporting.
	AgentConnected bool
	// Disconnected reports whether the server considers the device
	// disconnected.
	Disconnected bool
}

// GetDevice returns a snapshot of a device.
func (s *Sim) GetDevice(name string) (DeviceSnapshot, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.devices[name]
	if d == nil {
		return DeviceSnapshot{}, false
	}
	return DeviceSnapshot{
		Name:            d.name,
		Labels:          maps.Clone(d.labels),
		Annotations:     maps.Clone(d.annotations),
		Owner:           d.owner,
		ResourceVersion: d.rv,
		Generation:      d.generation,
		Spec:            slices.Clone(d.spec),
		Status:          cloneStatus(d.status),
		RenderedVersion: d.renderedVersion,
		LastSeen:        s.currentLastSeen(d),
		HasAgent:        d.agent != nil,
		AgentConnected:  d.agent != nil && d.agent.connected,
		Disconnected:    d.offline,
	}, true
}

// DeviceNames returns all device names in order.
func (s *Sim) DeviceNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.deviceNames)
}

// Events returns the recorded events, newest first, as the API lists them.
func (s *Sim) Events() []flightctl.Event {
	s.mu.RLock()
	defer s.mu.RUnlock()
	items := s.events.visible()
	out := make([]flightctl.Event, 0, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		out = append(out, items[i])
	}
	return out
}

// CheckLoopback returns an error unless host is a loopback address (or
// "localhost") or allow is set. The simulator accepts any client holding
// a static token, so it must not be reachable from other machines by
// accident. An empty host means all interfaces and is refused.
func CheckLoopback(host string, allow bool) error {
	if allow || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("flightctlsim: refusing to listen on %q: not a loopback address (allow it explicitly to expose the simulator)", host)
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
