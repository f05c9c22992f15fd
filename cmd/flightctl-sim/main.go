// Command flightctl-sim runs the in-memory Flightctl simulator
// (test/flightctlsim) as a standalone server, so that vk-flightctl can be
// run and tried end to end without a Flightctl installation, and steers a
// running simulator from the command line.
//
// Usage:
//
//	flightctl-sim [serve] [--listen 127.0.0.1:3443] [--token TOKEN] [--config FILE]
//	              [--tls [--ca-out PATH]] [--client-config-out PATH]
//	              [--disconnect-detection 5m] [--render-delay 1s] [--cost-model off|real-v1.2]
//	              [--agent-delay 1s | --agent-delay 1s,2s,3s] [--heartbeat 0]
//	              [--faults JSON] [--allow-non-loopback] [--log-level info]
//	flightctl-sim agent [--server URL] [--token TOKEN] [--ca PATH] [--agent-endpoint URL]
//	              [--config FILE | --count N [--prefix P] [--labels k=v,...]]
//	              [--agent-delay 1s] [--heartbeat 20s] [--state-dir DIR]
//	              [--control 127.0.0.1:0 [--control-token TOKEN]]
//	flightctl-sim disconnect DEVICE [--server URL] [--token TOKEN] [--ca PATH]
//	flightctl-sim reconnect  DEVICE [--server URL] [--token TOKEN] [--ca PATH]
//	flightctl-sim status     DEVICE [--server URL] [--token TOKEN] [--ca PATH]
//	flightctl-sim faults     JSON   [--server URL] [--token TOKEN] [--ca PATH]
//	flightctl-sim stats             [--server URL] [--token TOKEN] [--ca PATH]
//
// Without --config the simulator serves devices device-1 and device-2,
// labelled fleet=edge-fleet-1, owned by no Flightctl Fleet, with 4 CPUs and
// 8Gi each (see flightctlsim.DefaultConfig and test/flightctlsim/README.md
// for the file format). It listens on loopback only unless
// --allow-non-loopback is given. Logs are JSON on stderr.
//
// agent turns the simulator's device model outward: each device enrols with
// a real Flightctl (enrollment request over the mTLS agent endpoint,
// approved through the user API) and then acts as its agent, reporting
// systemInfo and applications Preparing -> Starting -> Running. With
// --control, the disconnect/reconnect/status subcommands steer it (point
// --server at the control address). It reads FLIGHTCTL_URL, FLIGHTCTL_TOKEN,
// FLIGHTCTL_CA and FLIGHTCTL_AGENT_ENDPOINT (hack/real-flightctl.sh env).
//
// The control subcommands read FLIGHTCTL_SIM_SERVER and FLIGHTCTL_SIM_TOKEN
// when --server or --token are not given; serve reads FLIGHTCTL_SIM_TOKEN.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// defaultServer is where the control subcommands look for a simulator.
const defaultServer = "http://127.0.0.1:3443"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command line and returns the exit code. It is main
// without the process, so that tests can drive it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "agent":
		err = agent(ctx, args, stderr)
	case "disconnect", "reconnect", "status", "faults", "stats":
		err = control(ctx, cmd, args, stdout)
	case "help":
		usage(stdout)
		return 0
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "flightctl-sim:", err)
		return 1
	}
	return 0
}

// usage prints the command summary.
func usage(w io.Writer) {
	fmt.Fprint(w, `flightctl-sim: an in-memory Flightctl v1beta1 API simulator

  flightctl-sim [serve] [flags]          run the simulator (flags: flightctl-sim serve -h)
  flightctl-sim agent [flags]            run fake devices against a real Flightctl (flags: flightctl-sim agent -h)
  flightctl-sim disconnect DEVICE        make a device's agent stop reporting
  flightctl-sim reconnect DEVICE         bring it back
  flightctl-sim status DEVICE            show a device's connectivity
  flightctl-sim faults JSON              replace injected faults, e.g. '{"errorRate":0.2,"latency":"200ms"}'
  flightctl-sim stats                    show request counters
control flags: --server URL --token TOKEN [--ca PATH]
`)
}

// serveFlags are the options of the serve command.
type serveFlags struct {
	listen, token, config, caOut, clientConfig, agentDelay, faults, logLevel, costModel string
	tls, allowNonLoopback                                                               bool
	disconnectDetection, renderDelay, heartbeat                                         time.Duration
	faultSeed                                                                           uint64
}

// serve runs the simulator until ctx ends or the process is signalled.
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("flightctl-sim serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	fs.StringVar(&f.listen, "listen", "127.0.0.1:3443", "listen address (loopback only unless --allow-non-loopback)")
	fs.StringVar(&f.token, "token", os.Getenv("FLIGHTCTL_SIM_TOKEN"), "bearer token clients must send (default $FLIGHTCTL_SIM_TOKEN, else random and logged)")
	fs.StringVar(&f.config, "config", "", "YAML file declaring fleets and devices (default: device-1 and device-2 in fleet edge-fleet-1)")
	fs.BoolVar(&f.tls, "tls", false, "serve HTTPS with a CA and certificate generated at start")
	fs.StringVar(&f.caOut, "ca-out", "", "with --tls, write the CA certificate (PEM) here (default: a file in the temp directory)")
	fs.StringVar(&f.clientConfig, "client-config-out", "", "write a Flightctl CLI client.yaml (server, CA, token) here")
	fs.DurationVar(&f.disconnectDetection, "disconnect-detection", flightctlsim.RealDisconnectTimeout, "silence after which a device is marked disconnected")
	fs.StringVar(&f.costModel, "cost-model", "off", "server time per request: off, or real-v1.2 (calibrated on Flightctl v1.2.0; also sets the render delay to 20ms)")
	fs.DurationVar(&f.renderDelay, "render-delay", time.Second, "delay of the server worker after spec, label or fleet changes")
	fs.StringVar(&f.agentDelay, "agent-delay", "1s", "agent phase delays: one duration for all, or fetch,preparing,starting")
	fs.DurationVar(&f.heartbeat, "heartbeat", 0, "lastSeen granularity of connected devices (0: always now)")
	fs.StringVar(&f.faults, "faults", "", `faults to inject from the start, as JSON, e.g. '{"errorRate":0.1}'`)
	fs.Uint64Var(&f.faultSeed, "fault-seed", 0, "seed for fault injection (0: random)")
	fs.BoolVar(&f.allowNonLoopback, "allow-non-loopback", false, "allow listening on a non-loopback address")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every request)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", pos)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts, err := f.options(logger)
	if err != nil {
		return err
	}

	sim := flightctlsim.New(opts)
	if err := sim.Start(); err != nil {
		return err
	}
	defer sim.Close()
	attrs := []any{"url", sim.URL(), "devices", len(sim.DeviceNames())}
	if f.token == "" {
		// A generated token is useless unless the user can read it.
		attrs = append(attrs, "token", sim.Token())
	}
	if f.tls {
		path := f.caOut
		if path == "" {
			path = filepath.Join(os.TempDir(), fmt.Sprintf("flightctl-sim-ca-%d.pem", os.Getpid()))
		}
		if err := os.WriteFile(path, sim.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("writing CA certificate: %w", err)
		}
		attrs = append(attrs, "caFile", path)
	}
	if f.clientConfig != "" {
		if err := writeClientConfig(f.clientConfig, sim.URL(), sim.CACertPEM(), sim.Token()); err != nil {
			return err
		}
		attrs = append(attrs, "clientConfig", f.clientConfig)
	}
	logger.Info("flightctl-sim ready", attrs...)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	logger.Info("flightctl-sim stopping")
	return nil
}

// options turns serve flags into simulator options.
func (f *serveFlags) options(logger *slog.Logger) (flightctlsim.Options, error) {
	opts := flightctlsim.Options{
		Addr:                f.listen,
		AllowNonLoopback:    f.allowNonLoopback,
		Token:               f.token,
		TLS:                 f.tls,
		RenderDelay:         f.renderDelay,
		DisconnectDetection: f.disconnectDetection,
		HeartbeatInterval:   f.heartbeat,
		FaultSeed:           f.faultSeed,
		Logger:              logger,
	}
	if f.caOut != "" && !f.tls {
		return opts, errors.New("--ca-out needs --tls")
	}
	cost, err := flightctlsim.CostModelByName(f.costModel)
	if err != nil {
		return opts, fmt.Errorf("--cost-model: %w", err)
	}
	opts.Cost = cost
	delays, err := parseAgentDelays(f.agentDelay)
	if err != nil {
		return opts, err
	}
	opts.Agent = delays
	if f.faults != "" {
		dec := json.NewDecoder(strings.NewReader(f.faults))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&opts.Faults); err != nil {
			return opts, fmt.Errorf("--faults: %w", err)
		}
	}
	if f.config != "" {
		cfg, err := flightctlsim.LoadConfig(f.config)
		if err != nil {
			return opts, err
		}
		opts.Config = cfg
	} else {
		opts.Config = flightctlsim.DefaultConfig()
	}
	return opts, nil
}

// parseAgentDelays reads "1s" (all phases) or "fetch,preparing,starting".
func parseAgentDelays(s string) (flightctlsim.AgentDelays, error) {
	parts := strings.Split(s, ",")
	var ds []time.Duration
	for _, p := range parts {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil || d < 0 {
			return flightctlsim.AgentDelays{}, fmt.Errorf("--agent-delay %q: want a duration or three comma-separated durations", s)
		}
		ds = append(ds, d)
	}
	switch len(ds) {
	case 1:
		return flightctlsim.AgentDelays{Fetch: ds[0], Preparing: ds[0], Starting: ds[0]}, nil
	case 3:
		return flightctlsim.AgentDelays{Fetch: ds[0], Preparing: ds[1], Starting: ds[2]}, nil
	}
	return flightctlsim.AgentDelays{}, fmt.Errorf("--agent-delay %q: want a duration or three comma-separated durations", s)
}

// writeClientConfig writes a Flightctl CLI client.yaml pointing at the
// simulator, so that tools reading that file can be used unchanged.
func writeClientConfig(path, server string, caPEM []byte, token string) error {
	var b strings.Builder
	b.WriteString("service:\n")
	fmt.Fprintf(&b, "  server: %s\n", server)
	if len(caPEM) > 0 {
		fmt.Fprintf(&b, "  certificate-authority-data: %s\n", base64.StdEncoding.EncodeToString(caPEM))
	}
	b.WriteString("authentication:\n")
	fmt.Fprintf(&b, "  access-token: %s\n", token)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing client config: %w", err)
	}
	return nil
}

// control runs a control subcommand against a running simulator.
func control(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("flightctl-sim "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", envOr("FLIGHTCTL_SIM_SERVER", defaultServer), "simulator URL")
	token := fs.String("token", os.Getenv("FLIGHTCTL_SIM_TOKEN"), "bearer token")
	ca := fs.String("ca", "", "CA certificate (PEM) of a --tls simulator")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	operand := map[string]string{"disconnect": "DEVICE", "reconnect": "DEVICE", "status": "DEVICE", "faults": "JSON"}[cmd]
	if want := map[bool]int{true: 1, false: 0}[operand != ""]; len(pos) != want {
		return fmt.Errorf("usage: flightctl-sim %s %s --server URL --token TOKEN [--ca PATH]", cmd, operand)
	}
	if *token == "" {
		return errors.New("--token (or FLIGHTCTL_SIM_TOKEN) is required")
	}
	client, err := httpClient(*ca)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	method, path, body := http.MethodGet, "/sim/v1/stats", ""
	switch cmd {
	case "disconnect", "reconnect":
		method, path = http.MethodPost, "/sim/v1/devices/"+url.PathEscape(pos[0])+"/"+cmd
	case "status":
		path = "/sim/v1/devices/" + url.PathEscape(pos[0])
	case "faults":
		method, path, body = http.MethodPost, "/sim/v1/faults", pos[0]
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(*server, "/")+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var st struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &st) == nil && st.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, st.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(raw)
	}
	pretty.WriteByte('\n')
	_, err = stdout.Write(pretty.Bytes())
	return err
}

// httpClient builds a client for the control API; with a CA file it
// trusts that CA, which is how a --tls simulator's certificate is verified.
func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate found", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments ("disconnect DEVICE --server URL") and returns the positional
// ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// envOr returns an environment variable or a default.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
