package flightctlsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Remote agents are the simulator's device model turned outward: instead
// of living inside the simulator, each one acts as a Flightctl agent
// against a real Flightctl server. It enrols (an EnrollmentRequest over the
// mTLS agent endpoint, approved through the user API), then, with the
// management certificate the server issued, long-polls its rendered spec
// and reports status the way a v1.2 agent does: systemInfo, applications
// moving Preparing -> Starting -> Running after the configured delays, the
// Updating condition, status.config.renderedVersion. It reports again
// every heartbeat, so the server sees it as connected; once stopped (or
// Disconnect-ed) it goes silent and the server declares it disconnected on
// its own schedule (5 minutes in v1.2).
//
// Nothing is simulated on the server side: this exists because a device
// that only gets status through the user API is declared disconnected by a
// real server after every spec write.

// Signer names of Flightctl's certificate signers (flightctl.io/...).
const (
	signerEnrollment = "flightctl.io/enrollment"
)

// MinEnrolledNameLength is the shortest device name a real Flightctl
// v1.2.0 enrols: the name is the CN of the device certificate, which the
// server reads as a key fingerprint of at least 16 characters.
const MinEnrolledNameLength = 16

// DefaultRemoteConfig is the fleet `flightctl-sim agent` runs without a
// configuration: two devices in fleet edge-fleet-1 with 4 CPUs and 8Gi,
// like DefaultConfig, with names long enough to enrol.
func DefaultRemoteConfig() *Config {
	return &Config{Devices: []DeviceConfig{
		{Name: "fake-edge-device-1", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi", IP: "192.0.2.11"},
		{Name: "fake-edge-device-2", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi", IP: "192.0.2.12"},
	}}
}

// RemoteOptions configures RemoteAgents.
type RemoteOptions struct {
	// Server is the user API, e.g. https://127.0.0.1:3443.
	Server string
	// Token is a bearer token for Server: it creates the enrollment
	// credential and approves the enrollment requests.
	Token string
	// CAPEM is trusted for the user API and, unless the server's
	// enrollment config names another, for the agent endpoint.
	CAPEM []byte
	// AgentEndpoint overrides the agent endpoint the server's enrollment
	// config names (service.baseAgentEndpointUrl).
	AgentEndpoint string
	// Devices are the devices to enrol and run. Name, Labels, CPU, Memory,
	// IP, Hostname and Architecture are used; labels are set at approval.
	Devices []DeviceConfig
	// Agent are the phase delays, as for simulated agents.
	Agent AgentDelays
	// Heartbeat is how often an idle agent reports status (the real agent
	// reports about every 60 s); 0 means 20 s.
	Heartbeat time.Duration
	// StateDir, when set, keeps each device's key and certificate, so that
	// a restarted agent resumes as the same device instead of enrolling
	// again.
	StateDir string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// RemoteAgents runs one agent per device against a real Flightctl.
type RemoteAgents struct {
	opts       RemoteOptions
	log        *slog.Logger
	user       *http.Client
	agentURL   string
	agentRoots *x509.CertPool

	mu     sync.Mutex
	agents map[string]*remoteAgent
	wg     sync.WaitGroup
	closed bool
}

// remoteAgent is one device's agent.
type remoteAgent struct {
	name   string
	client *http.Client
	info   map[string]string

	mu        sync.Mutex
	connected bool
	cancel    context.CancelFunc
	apps      []agentApp
	applied   int64
	updating  bool
	since     time.Time // Updating condition's last transition
	// failed is the rendered version whose prepare failed (an image
	// tagged ":fail-prepare"), updateError the agent's message for it;
	// like the real agent, it is not tried again.
	failed      int64
	updateError string
}

// StartRemoteAgents enrols every device (in parallel, a few at a time)
// and starts their agents. It fails when any device cannot enrol; agents
// already started are stopped then.
func StartRemoteAgents(ctx context.Context, opts RemoteOptions) (*RemoteAgents, error) {
	if opts.Server == "" || opts.Token == "" {
		return nil, errors.New("remote agents need the server URL and a token")
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 20 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range opts.Devices {
		// The server derives the device's certificate CN from its name
		// and refuses "fingerprints" shorter than 16 characters.
		if len(d.Name) < MinEnrolledNameLength {
			return nil, fmt.Errorf("device name %q: an enrolled device's name must have at least %d characters (Flightctl treats it as the key fingerprint)", d.Name, MinEnrolledNameLength)
		}
	}
	roots, err := certPool(opts.CAPEM)
	if err != nil {
		return nil, err
	}
	r := &RemoteAgents{
		opts:   opts,
		log:    log,
		user:   &http.Client{Timeout: 30 * time.Second, Transport: tlsTransport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})},
		agents: map[string]*remoteAgent{},
	}
	enroll, err := r.bootstrap(ctx)
	if err != nil {
		return nil, fmt.Errorf("enrollment credential: %w", err)
	}
	sem := make(chan struct{}, 4)
	errs := make(chan error, len(opts.Devices))
	var wg sync.WaitGroup
	for _, d := range opts.Devices {
		wg.Add(1)
		go func(d DeviceConfig) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := r.enrolDevice(ctx, enroll, d)
			if err != nil {
				errs <- fmt.Errorf("device %s: %w", d.Name, err)
				return
			}
			r.mu.Lock()
			r.agents[d.Name] = a
			r.mu.Unlock()
			if err := r.Reconnect(d.Name); err != nil {
				errs <- fmt.Errorf("device %s: %w", d.Name, err)
			}
		}(d)
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		r.Close()
		return nil, errors.Join(all...)
	}
	if err := r.waitSeen(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// waitSeen waits until the server has a lastSeen for every device.
// Flightctl v1.2.0 records agent contacts in memory and saves them every
// 15 s; until the first save a device has no lastSeen, and a spec write
// in that window makes the worker's render declare it disconnected
// ("last seen more than 5 minutes ago") until the agent reports again. A
// test must not start before its devices are seen.
func (r *RemoteAgents) waitSeen(ctx context.Context) error {
	deadline := time.Now().Add(45 * time.Second)
	for _, name := range r.Names() {
		for {
			code, raw, err := r.userCall(ctx, http.MethodGet, "/api/v1/devices/"+name+"/lastseen", nil)
			if err == nil && code == http.StatusOK {
				break
			}
			if err != nil || (code != http.StatusNoContent && code != http.StatusOK) {
				return callErr("reading the lastSeen of "+name, code, raw, err)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the server has no lastSeen for %s 45 s after it enrolled", name)
			}
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return err
			}
		}
	}
	r.log.Info("every device is seen by the server", "devices", len(r.agents))
	return nil
}

// Names lists the devices, sorted.
func (r *RemoteAgents) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.agents))
	for n := range r.agents {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Disconnect makes a device's agent go silent (no polling, no status),
// as a device that lost its network would.
func (r *RemoteAgents) Disconnect(name string) error {
	a := r.agent(name)
	if a == nil {
		return fmt.Errorf("no remote agent for device %q", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.connected {
		a.connected = false
		a.cancel()
		r.log.Info("remote agent disconnected", "device", name)
	}
	return nil
}

// Reconnect brings a device's agent back: it reports at once and resumes
// polling its rendered spec.
func (r *RemoteAgents) Reconnect(name string) error {
	a := r.agent(name)
	if a == nil {
		return fmt.Errorf("no remote agent for device %q", name)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errors.New("remote agents are closed")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.connected {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.connected, a.cancel = true, cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.loop(ctx, a)
	}()
	r.log.Info("remote agent connected", "device", name)
	return nil
}

// Connected reports whether a device's agent is running.
func (r *RemoteAgents) Connected(name string) bool {
	a := r.agent(name)
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.connected
}

// Close stops every agent. The devices stay enrolled on the server; it
// sees them go silent.
func (r *RemoteAgents) Close() {
	r.mu.Lock()
	r.closed = true
	agents := make([]*remoteAgent, 0, len(r.agents))
	for _, a := range r.agents {
		agents = append(agents, a)
	}
	r.mu.Unlock()
	for _, a := range agents {
		a.mu.Lock()
		if a.connected {
			a.connected = false
			a.cancel()
		}
		a.mu.Unlock()
	}
	r.wg.Wait()
}

func (r *RemoteAgents) agent(name string) *remoteAgent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.agents[name]
}

// ---------------------------------------------------------------- enrolment

// bootstrap obtains the enrollment credential an agent image ships with:
// a client certificate from the flightctl.io/enrollment signer (what
// `flightctl certificate request -s enrollment` does), and learns the
// agent endpoint and its CA from the enrollment config.
func (r *RemoteAgents) bootstrap(ctx context.Context) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "vk-remote-agents-" + hex.EncodeToString(suffix)
	csrPEM, err := makeCSR(key, name)
	if err != nil {
		return tls.Certificate{}, err
	}
	expiry := int32(7 * 24 * 3600)
	body := map[string]any{
		"apiVersion": "v1beta1", "kind": "CertificateSigningRequest",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"request": csrPEM, "signerName": signerEnrollment,
			"usages": []string{"clientAuth", "CA:false"}, "expirationSeconds": expiry,
		},
	}
	if code, raw, err := r.userCall(ctx, http.MethodPost, "/api/v1/certificatesigningrequests", body); err != nil || code != http.StatusCreated {
		return tls.Certificate{}, callErr("creating the enrollment CSR", code, raw, err)
	}
	var certPEM []byte
	deadline := time.Now().Add(time.Minute)
	for certPEM == nil {
		var csr struct {
			Status *struct {
				Certificate []byte `json:"certificate"`
			} `json:"status"`
		}
		code, raw, err := r.userCall(ctx, http.MethodGet, "/api/v1/certificatesigningrequests/"+name, nil)
		if err != nil || code != http.StatusOK {
			return tls.Certificate{}, callErr("reading the enrollment CSR", code, raw, err)
		}
		if err := json.Unmarshal(raw, &csr); err != nil {
			return tls.Certificate{}, err
		}
		if csr.Status != nil && len(csr.Status.Certificate) > 0 {
			certPEM = csr.Status.Certificate
			break
		}
		if time.Now().After(deadline) {
			return tls.Certificate{}, errors.New("enrollment certificate not issued within a minute")
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return tls.Certificate{}, err
		}
	}
	var cfg struct {
		Service struct {
			Service struct {
				CAData string `json:"certificate-authority-data"`
				Server string `json:"server"`
			} `json:"service"`
		} `json:"enrollment-service"`
	}
	code, raw, err := r.userCall(ctx, http.MethodGet, "/api/v1/enrollmentconfig", nil)
	if err != nil || code != http.StatusOK {
		return tls.Certificate{}, callErr("reading the enrollment config", code, raw, err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return tls.Certificate{}, err
	}
	r.agentURL = strings.TrimRight(cfg.Service.Service.Server, "/")
	if r.opts.AgentEndpoint != "" {
		r.agentURL = strings.TrimRight(r.opts.AgentEndpoint, "/")
	}
	if r.agentURL == "" {
		return tls.Certificate{}, errors.New("the server's enrollment config names no agent endpoint and none was given")
	}
	r.agentRoots = x509.NewCertPool()
	if ca, err := base64.StdEncoding.DecodeString(cfg.Service.Service.CAData); err == nil && r.agentRoots.AppendCertsFromPEM(ca) {
		r.log.Debug("agent endpoint CA from the enrollment config")
	} else if len(r.opts.CAPEM) == 0 || !r.agentRoots.AppendCertsFromPEM(r.opts.CAPEM) {
		return tls.Certificate{}, errors.New("no CA for the agent endpoint: the enrollment config has none and none was given")
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	r.log.Info("enrollment credential issued", "csr", name, "agentEndpoint", r.agentURL)
	return tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// enrolDevice gives a device its management certificate: from StateDir
// when an earlier run left one that the server still knows, else by a
// fresh enrollment (a device or request left over under the same name is
// deleted first, since its key is gone).
func (r *RemoteAgents) enrolDevice(ctx context.Context, enroll tls.Certificate, d DeviceConfig) (*remoteAgent, error) {
	memKB, err := memoryKB(d.Memory)
	if err != nil {
		return nil, err
	}
	sim := newAgent(d.Name, d, memKB)
	if cert, ok := r.loadState(d.Name); ok {
		a := r.newRemoteAgent(d.Name, cert, sim.sysInfo)
		if code, _, err := a.call(ctx, http.MethodGet, "/api/v1/devices/"+d.Name+"/rendered", nil, 0); err == nil && code == http.StatusOK {
			r.log.Info("remote agent resumes", "device", d.Name)
			return a, nil
		}
	}
	for _, p := range []string{"/api/v1/devices/", "/api/v1/enrollmentrequests/"} {
		if code, raw, err := r.userCall(ctx, http.MethodDelete, p+d.Name, nil); err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			return nil, callErr("deleting a stale "+p+d.Name, code, raw, err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csrPEM, err := makeCSR(key, d.Name)
	if err != nil {
		return nil, err
	}
	enrollClient := &http.Client{Timeout: 30 * time.Second, Transport: tlsTransport(&tls.Config{
		RootCAs: r.agentRoots, Certificates: []tls.Certificate{enroll}, MinVersion: tls.VersionTLS12,
	})}
	defer enrollClient.CloseIdleConnections()
	status := initialStatus(sim.sysInfo)
	req := map[string]any{
		"apiVersion": "v1beta1", "kind": "EnrollmentRequest",
		"metadata": map[string]any{"name": d.Name},
		"spec":     map[string]any{"csr": string(csrPEM), "deviceStatus": status, "labels": map[string]string{}},
	}
	if code, raw, err := doJSON(ctx, enrollClient, http.MethodPost, r.agentURL+"/api/v1/enrollmentrequests", "", req); err != nil || code != http.StatusCreated {
		return nil, callErr("creating the enrollment request", code, raw, err)
	}
	labels := d.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	approval := map[string]any{"approved": true, "labels": labels}
	if code, raw, err := r.userCall(ctx, http.MethodPut, "/api/v1/enrollmentrequests/"+d.Name+"/approval", approval); err != nil || code != http.StatusOK {
		return nil, callErr("approving the enrollment request", code, raw, err)
	}
	var certPEM string
	deadline := time.Now().Add(time.Minute)
	for {
		var er struct {
			Status *struct {
				Certificate *string `json:"certificate"`
			} `json:"status"`
		}
		code, raw, err := doJSON(ctx, enrollClient, http.MethodGet, r.agentURL+"/api/v1/enrollmentrequests/"+d.Name, "", nil)
		if err != nil || code != http.StatusOK {
			return nil, callErr("reading the enrollment request", code, raw, err)
		}
		if err := json.Unmarshal(raw, &er); err != nil {
			return nil, err
		}
		if er.Status != nil && er.Status.Certificate != nil && *er.Status.Certificate != "" {
			certPEM = *er.Status.Certificate
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("management certificate not issued within a minute of approval")
		}
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair([]byte(certPEM), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("issued certificate: %w", err)
	}
	r.saveState(d.Name, []byte(certPEM), keyPEM)
	r.log.Info("device enrolled", "device", d.Name, "labels", labels)
	return r.newRemoteAgent(d.Name, cert, sim.sysInfo), nil
}

func (r *RemoteAgents) newRemoteAgent(name string, cert tls.Certificate, info map[string]string) *remoteAgent {
	// Long polls of the rendered spec can last the server's
	// renderedWaitTimeout (2 min by default): no client-wide timeout,
	// each call sets its own.
	return &remoteAgent{name: name, info: info, client: &http.Client{Transport: tlsTransport(&tls.Config{
		RootCAs: r.agentRoots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})}}
}

func (r *RemoteAgents) loadState(name string) (tls.Certificate, bool) {
	if r.opts.StateDir == "" {
		return tls.Certificate{}, false
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(r.opts.StateDir, name+".crt"), filepath.Join(r.opts.StateDir, name+".key"))
	return cert, err == nil
}

func (r *RemoteAgents) saveState(name string, certPEM, keyPEM []byte) {
	if r.opts.StateDir == "" {
		return
	}
	if err := os.MkdirAll(r.opts.StateDir, 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(r.opts.StateDir, name+".key"), keyPEM, 0o600)
		_ = os.WriteFile(filepath.Join(r.opts.StateDir, name+".crt"), certPEM, 0o600)
	}
}

// ---------------------------------------------------------------- agent loop

// loop is one device's agent while connected: report, then long-poll the
// rendered spec; apply what changed through the phases; report on every
// change and every heartbeat.
func (r *RemoteAgents) loop(ctx context.Context, a *remoteAgent) {
	r.report(ctx, a)
	for ctx.Err() == nil {
		dev, err := r.pollRendered(ctx, a)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			wait := 2 * time.Second
			if errors.Is(err, errNotRendered) {
				wait = 500 * time.Millisecond
			} else {
				r.log.Warn("polling the rendered spec", "device", a.name, "err", err)
			}
			if sleepCtx(ctx, wait) != nil {
				return
			}
			r.report(ctx, a)
			continue
		}
		if dev == nil { // 204: nothing new within the poll
			r.report(ctx, a)
			continue
		}
		r.apply(ctx, a, dev)
	}
}

// errNotRendered is the server's 409 for a device its worker has not
// rendered yet, which is normal right after enrolment.
var errNotRendered = errors.New("no rendered version yet")

// renderedDevice is the part of GET .../rendered the agent uses.
type renderedDevice struct {
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

func (d *renderedDevice) version() int64 {
	v, _ := strconv.ParseInt(d.Metadata.Annotations["device-controller/renderedVersion"], 10, 64)
	return v
}

// pollRendered asks for a rendered version newer than the applied one.
// The server holds the request until there is one (or its wait times out:
// 204); the heartbeat bounds the wait here so that status is re-reported.
func (r *RemoteAgents) pollRendered(ctx context.Context, a *remoteAgent) (*renderedDevice, error) {
	a.mu.Lock()
	known := max(a.applied, a.failed)
	a.mu.Unlock()
	path := "/api/v1/devices/" + a.name + "/rendered"
	if known > 0 {
		path += "?knownRenderedVersion=" + strconv.FormatInt(known, 10)
	}
	code, raw, err := a.call(ctx, http.MethodGet, r.agentURL+path, nil, r.opts.Heartbeat)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return nil, nil // our own heartbeat bound, not a failure
	}
	if err != nil {
		return nil, err
	}
	switch code {
	case http.StatusNoContent:
		return nil, nil
	case http.StatusConflict:
		// "no rendered version for device": enrolled, not rendered yet.
		return nil, errNotRendered
	case http.StatusOK:
		var d renderedDevice
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		if d.version() == known {
			return nil, nil
		}
		return &d, nil
	}
	return nil, callErr("GET rendered", code, raw, nil)
}

// apply walks a new rendered spec through the agent's phases, reporting
// after each, like the simulated agent (agentStep).
func (r *RemoteAgents) apply(ctx context.Context, a *remoteAgent, d *renderedDevice) {
	desired := appsOf(d.Spec)
	if sleepCtx(ctx, r.opts.Agent.Fetch) != nil {
		return
	}
	a.mu.Lock()
	prev := a.apps
	a.apps = reconcileApps(a.apps, desired)
	a.setUpdating(true)
	a.mu.Unlock()
	r.report(ctx, a)
	if sleepCtx(ctx, r.opts.Agent.Preparing) != nil {
		return
	}
	a.mu.Lock()
	if msg := prepareFailure(a.apps, time.Now()); msg != "" {
		// As the real agent: the version is marked failed and rolled
		// back; the previous one stays applied with its applications.
		a.failed, a.updateError, a.apps = d.version(), msg, prev
		a.setUpdating(false)
		a.mu.Unlock()
		r.report(ctx, a)
		return
	}
	a.updateError = ""
	a.applied = d.version()
	a.setUpdating(false)
	starting := false
	for i := range a.apps {
		app := &a.apps[i]
		if app.status != flightctl.ApplicationStatusPreparing {
			continue
		}
		if app.fail {
			app.status = flightctl.ApplicationStatusError
			continue
		}
		app.status = flightctl.ApplicationStatusStarting
		starting = true
	}
	a.mu.Unlock()
	r.report(ctx, a)
	if !starting || sleepCtx(ctx, r.opts.Agent.Starting) != nil {
		return
	}
	a.mu.Lock()
	for i := range a.apps {
		if a.apps[i].status == flightctl.ApplicationStatusStarting {
			a.apps[i].status = flightctl.ApplicationStatusRunning
		}
	}
	a.mu.Unlock()
	r.report(ctx, a)
}

func (a *remoteAgent) setUpdating(on bool) {
	if a.updating != on || a.since.IsZero() {
		a.since = time.Now().UTC()
	}
	a.updating = on
}

// report PUTs the agent's full status over the agent endpoint, which is
// also what moves the device's lastSeen on the server.
func (r *RemoteAgents) report(ctx context.Context, a *remoteAgent) {
	a.mu.Lock()
	st := initialStatus(a.info)
	st.Applications, st.ApplicationsSummary = appStatuses(a.apps)
	if a.applied > 0 {
		st.Config.RenderedVersion = strconv.FormatInt(a.applied, 10)
	}
	cond := flightctl.Condition{Type: conditionUpdating, Status: "False", Reason: "Updated", LastTransitionTime: a.since}
	switch {
	case a.updating:
		cond.Status, cond.Reason = "True", "ApplyingUpdate"
	case a.updateError != "":
		cond.Reason, cond.Message = "Error", a.updateError
	}
	if a.since.IsZero() {
		cond.LastTransitionTime = time.Now().UTC()
	}
	st.Conditions = []flightctl.Condition{cond}
	a.mu.Unlock()
	body := flightctl.Device{APIVersion: "flightctl.io/v1beta1", Kind: "Device", Metadata: flightctl.ObjectMeta{Name: a.name}, Status: &st}
	code, raw, err := a.call(ctx, http.MethodPut, r.agentURL+"/api/v1/devices/"+a.name+"/status", body, 30*time.Second)
	if ctx.Err() != nil {
		return
	}
	if err != nil || code != http.StatusOK {
		r.log.Warn("reporting status", "device", a.name, "err", callErr("PUT status", code, raw, err))
	}
}

// initialStatus is an agent's status before it applied anything.
func initialStatus(info map[string]string) flightctl.DeviceStatus {
	return flightctl.DeviceStatus{
		Applications:        []flightctl.ApplicationStatus{},
		ApplicationsSummary: flightctl.ApplicationsSummaryStatus{Status: flightctl.ApplicationsSummaryNoApplications},
		Conditions:          []flightctl.Condition{},
		Integrity: map[string]json.RawMessage{
			"deviceIdentity": json.RawMessage(`{"status":"Unsupported"}`),
			"info":           json.RawMessage(`"TPM not present or not enabled on this device"`),
			"status":         json.RawMessage(`"Unsupported"`),
			"tpm":            json.RawMessage(`{"status":"Unsupported"}`),
		},
		Lifecycle:  flightctl.StatusWithInfo{Status: "Enrolled"},
		OS:         map[string]string{"image": "", "imageDigest": ""},
		Resources:  flightctl.DeviceResourceStatus{CPU: "Healthy", Disk: "Healthy", Memory: "Healthy"},
		Summary:    flightctl.StatusWithInfo{Status: "Online"},
		SystemInfo: info,
		Updated:    flightctl.StatusWithInfo{Status: "UpToDate"},
	}
}

// ---------------------------------------------------------------- HTTP

// call is a request over the agent endpoint with the device's certificate.
func (a *remoteAgent) call(ctx context.Context, method, u string, body any, timeout time.Duration) (int, []byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return doJSON(ctx, a.client, method, u, "", body)
}

func (r *RemoteAgents) userCall(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return doJSON(ctx, r.user, method, strings.TrimRight(r.opts.Server, "/")+path, r.opts.Token, body)
}

// doJSON sends body as JSON and returns the status and the response body.
// The token never appears in an error.
func doJSON(ctx context.Context, c *http.Client, method, u, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Flightctl-API-Version", "v1beta1")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, nil, fmt.Errorf("%s %s: %w", method, ue.URL, ue.Err)
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, raw, err
}

func callErr(what string, code int, raw []byte, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &st) == nil && st.Message != "" {
		return fmt.Errorf("%s: HTTP %d: %s", what, code, st.Message)
	}
	return fmt.Errorf("%s: HTTP %d: %s", what, code, bytes.TrimSpace(raw))
}

func makeCSR(key *ecdsa.PrivateKey, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, SignatureAlgorithm: x509.ECDSAWithSHA256,
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

func certPool(caPEM []byte) (*x509.CertPool, error) {
	if len(caPEM) == 0 {
		return x509.SystemCertPool()
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in the CA PEM")
	}
	return pool, nil
}

func tlsTransport(cfg *tls.Config) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.MaxIdleConnsPerHost = 4
	return tr
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ---------------------------------------------------------------- control

// ControlHandler serves the simulator's device control API for remote
// agents, so that `flightctl-sim disconnect|reconnect|status DEVICE`
// work against them unchanged: POST /sim/v1/devices/{name}/disconnect and
// /reconnect, GET /sim/v1/devices/{name} and GET /sim/v1/agents. Requests
// need `Authorization: Bearer <token>`.
func (r *RemoteAgents) ControlHandler(token string) http.Handler {
	mux := http.NewServeMux()
	show := func(w http.ResponseWriter, name string) {
		if r.agent(name) == nil {
			writeControlError(w, http.StatusNotFound, "no remote agent for device "+name)
			return
		}
		writeControlJSON(w, ControlDevice{Name: name, HasAgent: true, AgentConnected: r.Connected(name)})
	}
	mux.HandleFunc("GET /sim/v1/agents", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, map[string]any{"devices": r.Names()})
	})
	mux.HandleFunc("GET /sim/v1/devices/{name}", func(w http.ResponseWriter, req *http.Request) {
		show(w, req.PathValue("name"))
	})
	mux.HandleFunc("POST /sim/v1/devices/{name}/disconnect", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Disconnect(req.PathValue("name")); err != nil {
			writeControlError(w, http.StatusNotFound, err.Error())
			return
		}
		show(w, req.PathValue("name"))
	})
	mux.HandleFunc("POST /sim/v1/devices/{name}/reconnect", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Reconnect(req.PathValue("name")); err != nil {
			writeControlError(w, http.StatusNotFound, err.Error())
			return
		}
		show(w, req.PathValue("name"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !validBearer(req, token) {
			writeControlError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, req)
	})
}

func validBearer(req *http.Request, token string) bool {
	got, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	return ok && token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeControlJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeControlError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}
