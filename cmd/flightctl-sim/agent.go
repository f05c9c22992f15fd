package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// agentFlags are the options of the agent command.
type agentFlags struct {
	server, token, ca, agentEndpoint, config, prefix, labels, memory, ip string
	agentDelay, stateDir, control, controlToken, logLevel                string
	count, cpu                                                           int
	heartbeat                                                            time.Duration
}

// agent runs fake devices against a real Flightctl: each one enrols and
// then behaves like a v1.2 agent over the mTLS agent endpoint
// (flightctlsim.RemoteAgents). It runs until signalled; the devices then
// go silent and the server declares them disconnected in its own time.
func agent(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("flightctl-sim agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f agentFlags
	fs.StringVar(&f.server, "server", os.Getenv("FLIGHTCTL_URL"), "Flightctl user API URL (default $FLIGHTCTL_URL)")
	fs.StringVar(&f.token, "token", "", "bearer token for the user API (default $FLIGHTCTL_TOKEN)")
	fs.StringVar(&f.ca, "ca", os.Getenv("FLIGHTCTL_CA"), "PEM file of the CA of the API and agent endpoint (default $FLIGHTCTL_CA)")
	fs.StringVar(&f.agentEndpoint, "agent-endpoint", os.Getenv("FLIGHTCTL_AGENT_ENDPOINT"), "agent endpoint URL (default $FLIGHTCTL_AGENT_ENDPOINT, else the server's enrollment config)")
	fs.StringVar(&f.config, "config", "", "simulator YAML file whose devices to run (names, labels, cpu, memory, ip); default: fake-edge-device-1 and -2 in fleet edge-fleet-1")
	fs.IntVar(&f.count, "count", 0, "run N generated devices <prefix>1..N instead of a config")
	fs.StringVar(&f.prefix, "prefix", "fake-edge-device-", "name prefix of --count devices")
	fs.StringVar(&f.labels, "labels", "fleet=edge-fleet-1", "labels of --count devices, k=v,k=v")
	fs.IntVar(&f.cpu, "cpu", 4, "cpuCores --count devices report")
	fs.StringVar(&f.memory, "memory", "8Gi", "memory --count devices report")
	fs.StringVar(&f.ip, "ip-base", "192.0.2.", "netIpDefault of --count devices is this prefix plus the device number")
	fs.StringVar(&f.agentDelay, "agent-delay", "1s", "agent phase delays: one duration for all, or fetch,preparing,starting")
	fs.DurationVar(&f.heartbeat, "heartbeat", 20*time.Second, "status report interval of an idle agent")
	fs.StringVar(&f.stateDir, "state-dir", "", "keep device keys and certificates here, so a restart resumes the same devices")
	fs.StringVar(&f.control, "control", "", "loopback address for the control API (disconnect/reconnect/status), e.g. 127.0.0.1:0")
	fs.StringVar(&f.controlToken, "control-token", "", "bearer token of the control API (default $FLIGHTCTL_SIM_CONTROL_TOKEN, else the user API token)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("agent takes no arguments, got %q", pos)
	}
	if f.token == "" {
		f.token = os.Getenv("FLIGHTCTL_TOKEN")
	}
	if f.server == "" || f.token == "" {
		return errors.New("--server and --token (or FLIGHTCTL_URL and FLIGHTCTL_TOKEN) are required")
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
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var ln net.Listener
	if f.control != "" {
		host, _, err := net.SplitHostPort(f.control)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("--control %q: a loopback address is required", f.control)
		}
		if ln, err = net.Listen("tcp", f.control); err != nil {
			return err
		}
		defer ln.Close()
	}
	start := time.Now()
	agents, err := flightctlsim.StartRemoteAgents(ctx, opts)
	if err != nil {
		return err
	}
	defer agents.Close()
	attrs := []any{"server", f.server, "devices", agents.Names(), "took", time.Since(start).Round(time.Millisecond).String()}
	if ln != nil {
		tok := f.controlToken
		if tok == "" {
			tok = os.Getenv("FLIGHTCTL_SIM_CONTROL_TOKEN")
		}
		if tok == "" {
			tok = f.token
		}
		srv := &http.Server{Handler: agents.ControlHandler(tok), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		attrs = append(attrs, "control", "http://"+ln.Addr().String())
	}
	logger.Info("flightctl-sim agents ready", attrs...)
	<-ctx.Done()
	logger.Info("flightctl-sim agents stopping")
	return nil
}

// options turns agent flags into remote agent options.
func (f *agentFlags) options(logger *slog.Logger) (flightctlsim.RemoteOptions, error) {
	opts := flightctlsim.RemoteOptions{
		Server: f.server, Token: f.token, AgentEndpoint: f.agentEndpoint,
		Heartbeat: f.heartbeat, StateDir: f.stateDir, Logger: logger,
	}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return opts, err
		}
		opts.CAPEM = pem
	}
	delays, err := parseAgentDelays(f.agentDelay)
	if err != nil {
		return opts, err
	}
	opts.Agent = delays
	switch {
	case f.count > 0 && f.config != "":
		return opts, errors.New("--count and --config exclude each other")
	case f.count > 0:
		labels := map[string]string{}
		for _, kv := range strings.Split(f.labels, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return opts, fmt.Errorf("--labels %q: want k=v,k=v", f.labels)
			}
			labels[k] = v
		}
		for i := 1; i <= f.count; i++ {
			opts.Devices = append(opts.Devices, flightctlsim.DeviceConfig{
				Name: fmt.Sprintf("%s%d", f.prefix, i), Labels: labels, CPU: f.cpu, Memory: f.memory,
				IP: fmt.Sprintf("%s%d", f.ip, 10+i),
			})
		}
	case f.config != "":
		cfg, err := flightctlsim.LoadConfig(f.config)
		if err != nil {
			return opts, err
		}
		if len(cfg.Generate) > 0 || len(cfg.Fleets) > 0 {
			return opts, errors.New("--config: only the devices list is used by agent mode; fleets and generate are not supported")
		}
		opts.Devices = cfg.Devices
	default:
		opts.Devices = flightctlsim.DefaultRemoteConfig().Devices
	}
	return opts, nil
}
