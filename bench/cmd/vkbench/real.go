package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// The real-Flightctl bench (make bench FLIGHTCTL=real, issue 17): the
// start workload and a steady window against a real Flightctl v1.2.0
// (hack/real-flightctl.sh) with N fake devices that enrol and report over
// its mTLS agent endpoint (flightctl-sim agent). It measures what the
// manager costs the server in steady state, every pod Running:
//
//   - window "manager": the server's CPU (flightctl-api and PostgreSQL
//     process trees, from /proc) and the manager's Flightctl bytes and
//     calls (its own metrics) over -real-window;
//   - window "agents only": the manager stopped, the devices keep their
//     applications and keep reporting; the server's CPU over the same
//     length. The difference is what the manager costs;
//   - probe: a few full listings of the bench devices, as the manager
//     made at every poll before hot/cold polling: their bytes and server
//     CPU (above the agents-only rate) give the old cost at this size.
//
// The manager is then started again so that it removes the pods'
// applications when the Deployment is deleted.

const (
	realFleet = "bench-real"
	// realDevicePrefix names the fake devices: an enrolled device's name
	// must have at least 16 characters.
	realDevicePrefix = "vkbench-real-dev-"
	// realPoll is the FleetBinding's statusPollInterval: the default,
	// which the 1/10 target is stated for.
	realPoll = 5 * time.Second
	// realPollsPerMinute is how often the old manager listed every device.
	realPollsPerMinute = float64(time.Minute / realPoll)
	// realProbeListings is how many full listings the probe makes.
	realProbeListings = 5
)

// realBaseline is the full-listing cost measured on a real v1.2.0 before
// hot/cold polling (../shared facts, docs/polling.md): 1,000 devices of
// five applications each.
var realBaseline = realCost{ServerCores: 0.096, BytesPerMinute: 13.9e6 * realPollsPerMinute}

// realCost is a steady-state cost rate.
type realCost struct {
	ServerCores    float64 `json:"serverCores"`
	BytesPerMinute float64 `json:"bytesPerMinute"`
}

// realWindow is one measured steady window.
type realWindow struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// ServerCores is CPU seconds per second of each server process tree.
	ServerCores map[string]float64 `json:"serverCoresByProcess"`
	// CostCores sums flightctl-api and postgres.
	CostCores float64 `json:"serverCores"`
	// The manager's traffic (window "manager" only): body bytes and
	// requests per minute by operation, reads by kind per minute.
	ManagerBytesPerMinute    float64            `json:"managerBytesPerMinute,omitempty"`
	ManagerSentPerMinute     float64            `json:"managerSentBytesPerMinute,omitempty"`
	ManagerBytesByOpPerMin   map[string]float64 `json:"managerResponseBytesPerMinuteByOperation,omitempty"`
	ManagerRequestsPerMinute map[string]float64 `json:"managerRequestsPerMinuteByOperation,omitempty"`
	ManagerPollsPerMinute    map[string]float64 `json:"managerDevicePollsPerMinuteByKind,omitempty"`
	StatusPasses             float64            `json:"statusPasses,omitempty"`
	HotDevicesAtEnd          float64            `json:"hotDevicesAtEnd"`
}

// realProbe is the cost of one full listing of the bench devices.
type realProbe struct {
	Listings int `json:"listings"`
	// Bytes is the body of one listing.
	Bytes float64 `json:"bytesPerListing"`
	// Seconds is one listing's wall time at the client.
	Seconds float64 `json:"secondsPerListing"`
	// ServerSeconds is flightctl-api + PostgreSQL CPU per listing, the
	// agents-only rate over the probe subtracted.
	ServerSeconds float64 `json:"serverSecondsPerListing"`
	// OldCost is what listing every device every poll (5 s) costs.
	OldCost realCost `json:"oldCostAt5sPoll"`
}

// realReport is bench/results/<time>-real.json.
type realReport struct {
	Time      time.Time `json:"time"`
	Commit    string    `json:"commit,omitempty"`
	Devices   int       `json:"devices"`
	Pods      int       `json:"pods"`
	Heartbeat string    `json:"agentHeartbeat"`
	Poll      string    `json:"statusPollInterval"`
	// EnrolSeconds is how long the fake devices took to enrol (or resume)
	// and be seen by the server.
	EnrolSeconds float64      `json:"enrolSeconds"`
	Start        phaseResult  `json:"start"`
	Windows      []realWindow `json:"windows"`
	Probe        *realProbe   `json:"probe,omitempty"`
	// Manager is window "manager" minus window "agents only" for the
	// server, and the manager's own bytes.
	Manager realCost `json:"managerCost"`
	// Baseline is the earlier full-listing measurement (1,000 devices of
	// five applications); RatioToBaseline and RatioToProbe are Manager's
	// share of it and of the old cost at this run's device size.
	Baseline        realCost `json:"baseline"`
	RatioToBaseline realCost `json:"ratioToBaseline"`
	RatioToProbe    realCost `json:"ratioToProbe"`
	Error           string   `json:"error,omitempty"`
}

// runReal is the whole FLIGHTCTL=real run.
func runReal(ctx context.Context, cfg config) (err error) {
	root, err := quickstart.RepoRoot()
	if err != nil {
		return err
	}
	ext, err := quickstart.ExternalFromEnv()
	if err != nil {
		return err
	}
	if ext == nil {
		return errors.New("-flightctl real needs FLIGHTCTL_URL, FLIGHTCTL_TOKEN, FLIGHTCTL_CA (eval \"$(hack/real-flightctl.sh env)\"; make bench FLIGHTCTL=real does it)")
	}
	pidsOut, err := runTool(ctx, filepath.Join(root, "hack", "real-flightctl.sh"), "pids")
	if err != nil {
		return fmt.Errorf("hack/real-flightctl.sh pids: %w: %s", err, pidsOut)
	}
	server, err := parseServerPids(string(pidsOut))
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, root: root, state: filepath.Join(root, ".local", "bench-real"), started: time.Now()}
	_ = os.RemoveAll(filepath.Join(b.state, "state"))
	if err := os.MkdirAll(filepath.Join(b.state, "state"), 0o755); err != nil {
		return err
	}
	stackLog, err := os.Create(filepath.Join(b.state, "stack.log"))
	if err != nil {
		return err
	}
	defer stackLog.Close()
	stack, err := quickstart.NewStack(quickstart.StackConfig{
		Root: root, StateDir: filepath.Join(b.state, "state"), BinDir: filepath.Join(root, "bin"),
		ClusterDir:       filepath.Join(b.state, "cluster"),
		ReconnectTimeout: 5 * time.Minute, StatusPollInterval: realPoll,
		External: ext, Out: stackLog,
	})
	if err != nil {
		return err
	}
	b.stack = stack
	if err := stack.StartReaper(""); err != nil {
		return err
	}
	defer func() {
		logf("stopping everything")
		for i := len(b.procs) - 1; i >= 0; i-- {
			stopProc(b.procs[i])
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if derr := stack.Down(dctx); derr != nil {
			logf("teardown: %v", derr)
		}
	}()
	logf("starting control plane, quickstart agents and manager against %s (log %s)", ext.URL, stackLog.Name())
	if err := stack.Up(ctx); err != nil {
		return fmt.Errorf("stack up: %w (see %s)", err, stackLog.Name())
	}
	// Only the bench binding may talk to Flightctl: each binding polls
	// events on its own, so the quickstart one would add its traffic.
	b.deleteBinding(ctx, quickstart.DefaultFleet)
	if b.mgr, err = findManager(filepath.Join(b.state, "state"), ""); err != nil {
		return err
	}
	kc, err := clientcmd.BuildConfigFromFlags("", stack.Kubeconfig)
	if err != nil {
		return err
	}
	kc.QPS, kc.Burst = 500, 1000
	if b.cs, err = kubernetes.NewForConfig(kc); err != nil {
		return err
	}

	rep := &realReport{Time: time.Now().UTC(), Devices: cfg.Devices, Pods: cfg.Pods, Heartbeat: cfg.RealHeartbeat.String(),
		Poll: realPoll.String(), Baseline: realBaseline}
	if out, err := runTool(ctx, "git", "-C", root, "rev-parse", "--short", "HEAD"); err == nil {
		rep.Commit = strings.TrimSpace(string(out))
	}
	failed := b.realWorkload(ctx, ext, server, rep)
	if failed != nil {
		rep.Error = failed.Error()
	}
	printReal(os.Stdout, rep)
	return errors.Join(failed, writeReal(root, rep))
}

// realWorkload enrols the devices, runs the start workload and measures.
func (b *bench) realWorkload(ctx context.Context, ext *quickstart.ExternalFlightctl, server *serverProcs, rep *realReport) error {
	cfg := b.cfg
	ca, err := os.ReadFile(ext.CAFile)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	// Keys survive between runs (.local/bench-real/agents), so devices a
	// previous run enrolled on the same server resume instead of
	// enrolling again.
	agentLog := filepath.Join(b.state, "agents.log")
	args := []string{"agent", "--server", ext.URL, "--ca", ext.CAFile, "--count", strconv.Itoa(cfg.Devices),
		"--prefix", realDevicePrefix, "--labels", "fleet=" + realFleet, "--heartbeat", cfg.RealHeartbeat.String(),
		"--agent-delay", "1s", "--state-dir", filepath.Join(b.state, "agents"), "--control", "127.0.0.1:" + strconv.Itoa(port),
		"--log-level", "info"}
	if ext.AgentEndpoint != "" {
		args = append(args, "--agent-endpoint", ext.AgentEndpoint)
	}
	logf("enrolling %d fake devices (flightctl-sim %s, log %s)", cfg.Devices, strings.Join(args[:9], " "), agentLog)
	t0 := time.Now()
	agents, err := startProcEnv(agentLog, []string{"FLIGHTCTL_TOKEN=" + ext.Token}, b.stack.SimBin, args...)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, agents)
	if err := waitLogLine(ctx, agentLog, "flightctl-sim agents ready", time.Duration(120+cfg.Devices)*time.Second); err != nil {
		return fmt.Errorf("%w\n%s", err, quickstart.TailFile(agentLog, 20))
	}
	rep.EnrolSeconds = time.Since(t0).Seconds()
	logf("%d devices enrolled and seen in %.0fs", cfg.Devices, rep.EnrolSeconds)

	sim := &simProc{url: ext.URL, token: ext.Token, ca: ca}
	if err := b.applyBinding(ctx, sim, "bench-real-credentials", bindingSpec{Fleet: realFleet, MaxPods: cfg.Pods + 10,
		ReconnectTimeout: "5m", PollInterval: realPoll}); err != nil {
		return err
	}
	node := "vk-flightctl-" + realFleet
	if b.vkNode, err = waitNodeReady(ctx, b.cs, node, 5*time.Minute, cpuIs(4*cfg.Devices)); err != nil {
		return fmt.Errorf("%w\nmanager log:\n%s", err, quickstart.TailFile(b.stack.ManagerLog, 30))
	}
	logf("node %s Ready: allocatable cpu=%s pods=%s", node, b.vkNode.Status.Allocatable.Cpu(), b.vkNode.Status.Allocatable.Pods())
	if err := ensureNamespace(ctx, b.cs); err != nil {
		return err
	}

	var measured error
	res, err := measure(ctx, b.cs, "vk-real", node, map[string]string{"flightctl.io/fleet": realFleet}, "deployment", cfg.Pods, phaseHooks{
		during: func() error {
			logf("start: all %d pods Ready", cfg.Pods)
			// Errors of the windows are kept, not returned: the pods
			// must still be deleted with a running manager.
			measured = b.realWindows(ctx, ext, server, rep)
			return nil
		},
	})
	rep.Start = res
	if err != nil {
		return errors.Join(measured, fmt.Errorf("start: %w", err))
	}
	logf("start: p50=%.2fs p90=%.2fs p99=%.2fs %.1f pods/s, deleted in %.1fs", res.P50, res.P90, res.P99, res.PodsPerSec, res.Delete)
	return measured
}

// realWindows runs the steady windows and the probe, with every pod
// Running, and restarts the manager at the end.
func (b *bench) realWindows(ctx context.Context, ext *quickstart.ExternalFlightctl, server *serverProcs, rep *realReport) error {
	// Settle: the start's writes keep devices hot for two polls after
	// the agent applied them; wait until no device is hot, then 30 s
	// more (the unhealthy listings and a resync catch any straggler).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m, err := b.mgr.scrape(ctx)
		if err != nil {
			return err
		}
		if m.hot == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v devices still hot 5 minutes after every pod was Ready", m.hot)
		}
		if err := sleepCtx(ctx, realPoll); err != nil {
			return err
		}
	}
	logf("no device hot; settling 30s more before the windows")
	if err := sleepCtx(ctx, 30*time.Second); err != nil {
		return err
	}

	w, err := b.realWindow(ctx, server, "manager", true)
	if err != nil {
		return err
	}
	rep.Windows = append(rep.Windows, w)

	logf("stopping the manager for the agents-only window")
	if err := b.stack.StopManager(""); err != nil {
		return err
	}
	defer func() {
		// The manager deletes the pods' applications: start it again
		// whatever happened.
		if _, err := b.stack.StartManager(context.WithoutCancel(ctx), quickstart.ManagerOptions{}); err != nil {
			logf("restarting the manager: %v", err)
			return
		}
		if m, err := findManager(filepath.Join(b.state, "state"), ""); err == nil {
			b.mgr = m
		}
	}()
	if err := sleepCtx(ctx, 10*time.Second); err != nil {
		return err
	}
	a, err := b.realWindow(ctx, server, "agents only", false)
	if err != nil {
		return err
	}
	rep.Windows = append(rep.Windows, a)
	rep.Manager = realCost{ServerCores: w.CostCores - a.CostCores, BytesPerMinute: w.ManagerBytesPerMinute + w.ManagerSentPerMinute}

	probe, err := probeListings(ctx, ext, server, a.CostCores)
	if err != nil {
		return err
	}
	rep.Probe = probe
	rep.RatioToBaseline = realCost{div(rep.Manager.ServerCores, rep.Baseline.ServerCores), div(rep.Manager.BytesPerMinute, rep.Baseline.BytesPerMinute)}
	rep.RatioToProbe = realCost{div(rep.Manager.ServerCores, probe.OldCost.ServerCores), div(rep.Manager.BytesPerMinute, probe.OldCost.BytesPerMinute)}
	return nil
}

// realWindow measures one steady window of cfg.RealWindow.
func (b *bench) realWindow(ctx context.Context, server *serverProcs, name string, withManager bool) (realWindow, error) {
	w := realWindow{Name: name}
	var m0 metricsSnapshot
	var err error
	if withManager {
		if m0, err = b.mgr.scrape(ctx); err != nil {
			return w, err
		}
	}
	c0, err := server.sample()
	if err != nil {
		return w, err
	}
	t0 := time.Now()
	logf("window %q: %s", name, b.cfg.RealWindow)
	if err := sleepCtx(ctx, b.cfg.RealWindow); err != nil {
		return w, err
	}
	c1, err := server.sample()
	if err != nil {
		return w, err
	}
	w.Seconds = time.Since(t0).Seconds()
	w.ServerCores = map[string]float64{}
	for role, v := range c1 {
		w.ServerCores[role] = (v - c0[role]) / w.Seconds
	}
	for _, role := range costRoles {
		w.CostCores += w.ServerCores[role]
	}
	if withManager {
		m1, err := b.mgr.scrape(ctx)
		if err != nil {
			return w, err
		}
		perMin := func(before, after map[string]float64) (map[string]float64, float64) {
			d, total := counterDelta(before, after)
			for k := range d {
				d[k] *= 60 / w.Seconds
			}
			return d, total * 60 / w.Seconds
		}
		w.ManagerBytesByOpPerMin, w.ManagerBytesPerMinute = perMin(m0.respBytes, m1.respBytes)
		_, w.ManagerSentPerMinute = perMin(m0.reqBytes, m1.reqBytes)
		w.ManagerRequestsPerMinute, _ = perMin(m0.requests, m1.requests)
		w.ManagerPollsPerMinute, _ = perMin(m0.polls, m1.polls)
		w.StatusPasses = m1.loop[realFleet].count - m0.loop[realFleet].count
		w.HotDevicesAtEnd = m1.hot
	}
	logf("window %q: server %.4f cores (api+postgres; %s)%s", name, w.CostCores, fmtCores(w.ServerCores), managerText(w))
	return w, nil
}

func managerText(w realWindow) string {
	if w.ManagerRequestsPerMinute == nil {
		return ""
	}
	return fmt.Sprintf("; manager %.0f B/min received + %.0f B/min sent, requests/min %s, reads/min %s",
		w.ManagerBytesPerMinute, w.ManagerSentPerMinute, fmtCounts(w.ManagerRequestsPerMinute), fmtCounts(w.ManagerPollsPerMinute))
}

// probeListings lists the bench devices in full realProbeListings times,
// as the manager did at every poll before hot/cold polling.
func probeListings(ctx context.Context, ext *quickstart.ExternalFlightctl, server *serverProcs, idleCores float64) (*realProbe, error) {
	ca, err := os.ReadFile(ext.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	q := url.Values{"labelSelector": {"fleet=" + realFleet}, "limit": {"1000"}}
	list := func() (int64, error) {
		var total int64
		next := ""
		for {
			if next != "" {
				q.Set("continue", next)
			} else {
				q.Del("continue")
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(ext.URL, "/")+"/api/v1/devices?"+q.Encode(), nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", "Bearer "+ext.Token)
			resp, err := client.Do(req)
			if err != nil {
				return 0, err
			}
			raw, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				return 0, err
			}
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("GET /api/v1/devices: %s", resp.Status)
			}
			total += int64(len(raw))
			var page struct {
				Metadata struct {
					Continue string `json:"continue"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(raw, &page); err != nil {
				return 0, err
			}
			if next = page.Metadata.Continue; next == "" {
				return total, nil
			}
		}
	}
	if _, err := list(); err != nil { // warm the connection
		return nil, err
	}
	c0, err := server.sample()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	var bytes int64
	for i := 0; i < realProbeListings; i++ {
		n, err := list()
		if err != nil {
			return nil, err
		}
		bytes += n
	}
	elapsed := time.Since(t0).Seconds()
	c1, err := server.sample()
	if err != nil {
		return nil, err
	}
	var cpu float64
	for _, role := range costRoles {
		cpu += c1[role] - c0[role]
	}
	p := &realProbe{Listings: realProbeListings, Bytes: float64(bytes) / realProbeListings, Seconds: elapsed / realProbeListings,
		ServerSeconds: (cpu - idleCores*elapsed) / realProbeListings}
	p.OldCost = realCost{ServerCores: p.ServerSeconds / realPoll.Seconds(), BytesPerMinute: p.Bytes * realPollsPerMinute}
	logf("probe: a full listing of the bench devices is %.0f bytes, %.3fs, %.3f server CPU s: listing every 5 s would cost %.4f cores, %.1f MB/min",
		p.Bytes, p.Seconds, p.ServerSeconds, p.OldCost.ServerCores, p.OldCost.BytesPerMinute/1e6)
	return p, nil
}

// waitLogLine waits until a log file contains line.
func waitLogLine(ctx context.Context, path, line string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if raw, err := os.ReadFile(path); err == nil && strings.Contains(string(raw), line) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%q not in %s after %s", line, path, timeout)
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fmtCores prints CPU rates by process, in report order.
func fmtCores(m map[string]float64) string {
	var parts []string
	for _, role := range serverRoles {
		if v, ok := m[role]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.4f", role, v))
		}
	}
	return strings.Join(parts, " ")
}

func printReal(w io.Writer, rep *realReport) {
	fmt.Fprintf(w, "\nreal Flightctl v1.2.0: %d devices, %d pods, poll %s, agent heartbeat %s (commit %s)\n", rep.Devices, rep.Pods, rep.Poll, rep.Heartbeat, rep.Commit)
	fmt.Fprintf(w, "start: p50 %.2fs p99 %.2fs, %.1f pods/s, enrol %.0fs\n", rep.Start.P50, rep.Start.P99, rep.Start.PodsPerSec, rep.EnrolSeconds)
	for _, win := range rep.Windows {
		fmt.Fprintf(w, "window %-12s %5.0fs  server (api+postgres) %.4f cores  [%s]%s\n", win.Name, win.Seconds, win.CostCores, fmtCores(win.ServerCores), managerText(win))
	}
	if rep.Probe != nil {
		fmt.Fprintf(w, "full listing of %d devices: %.0f bytes, %.3f server CPU s -> at a 5 s poll %.4f cores, %.1f MB/min\n",
			rep.Devices, rep.Probe.Bytes, rep.Probe.ServerSeconds, rep.Probe.OldCost.ServerCores, rep.Probe.OldCost.BytesPerMinute/1e6)
	}
	fmt.Fprintf(w, "manager's cost: %.4f server cores, %.3f MB/min; ratio to baseline (0.096 cores, %.0f MB/min): %.3f cores, %.4f bytes; ratio to this run's full listing: %.3f, %.4f (target <= 0.1)\n",
		rep.Manager.ServerCores, rep.Manager.BytesPerMinute/1e6, rep.Baseline.BytesPerMinute/1e6,
		rep.RatioToBaseline.ServerCores, rep.RatioToBaseline.BytesPerMinute, rep.RatioToProbe.ServerCores, rep.RatioToProbe.BytesPerMinute)
}

func writeReal(root string, rep *realReport) error {
	dir := resultsDir(root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, rep.Time.Format("20060102T150405Z")+"-real.json")
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("results: %s\n", path)
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}
