package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// scaleResult is S bare pods over N devices in B FleetBindings, from the
// manager's point of view: memory, CPU, status loop and Flightctl traffic.
type scaleResult struct {
	Pods     int `json:"pods"`
	Devices  int `json:"devices"`
	Bindings int `json:"bindings"`

	// NodesReady is the bindings' creation to every node Ready.
	NodesReady float64 `json:"nodesReadySeconds"`
	// Ready is how many pods were Ready when the ramp ended; Pods unless
	// RampTimedOut.
	Ready        int     `json:"ready"`
	RampTimedOut bool    `json:"rampTimedOut"`
	AllReady     float64 `json:"allReadySeconds"`
	PodsPerSec   float64 `json:"podsPerSecond"`
	P50          float64 `json:"p50Seconds"`
	P99          float64 `json:"p99Seconds"`
	Delete       float64 `json:"deleteSeconds"`
	DeleteError  string  `json:"deleteError,omitempty"`

	// Manager memory (KiB) before the bindings, after the ramp and its
	// lifetime peak (VmHWM) after the deletion.
	RSSBeforeKiB    int64 `json:"rssBeforeKiB"`
	RSSAfterRampKiB int64 `json:"rssAfterRampKiB"`
	HWMKiB          int64 `json:"vmHWMKiB"`
	// PeakRSS is the largest anonymous resident set sampled (every 250 ms
	// from the first create to the last deletion), the workload phase it
	// fell in (ramp, steady, delete) and the file-backed pages then: of
	// VmHWM, the part the code allocated and the part that is the binary.
	PeakRSS memPeak `json:"peakRSS"`
	// Manager CPU seconds (user+system) for the nodes' start, the ramp
	// (first create to all Ready), per second of the steady window, and
	// for the deletion.
	CPUNodes      float64 `json:"cpuNodesSeconds"`
	CPURamp       float64 `json:"cpuRampSeconds"`
	CPUSteadyRate float64 `json:"cpuSteadyCoresUsed"`
	CPUDelete     float64 `json:"cpuDeleteSeconds"`

	// Status loop durations (all scale fleets) during the ramp and the
	// steady window.
	LoopRamp   loopStats `json:"statusLoopRamp"`
	LoopSteady loopStats `json:"statusLoopSteady"`

	// Flightctl API traffic as the simulator counted it. Ramp: first
	// create to all Ready (polls included); per pod created.
	RampRequests    map[string]float64 `json:"rampRequests"`
	RampCallsPerPod float64            `json:"rampCallsPerPod"`
	RampWritesPod   float64            `json:"rampWritesPerPod"`
	// RampGetsPod is device GETs per pod created: the reads writes needed
	// besides the poller's own (issue 17: at most 0.2).
	RampGetsPod     float64 `json:"rampDeviceGetsPerPod"`
	RampBytesPerPod float64 `json:"rampBytesPerPod"`
	// Steady: S pods Running, per status pass of one binding.
	SteadyWindow       float64            `json:"steadyWindowSeconds"`
	SteadyRequests     map[string]float64 `json:"steadyRequests"`
	SteadyCallsPerPoll float64            `json:"steadyCallsPerStatusPass"`
	SteadyBytesPerPoll float64            `json:"steadyBytesPerStatusPass"`
	// Delete: per pod deleted.
	DeleteCallsPerPod float64 `json:"deleteCallsPerPod"`
	// DeleteRequests is the deletion's Flightctl requests by operation.
	DeleteRequests map[string]float64 `json:"deleteRequests"`
	// ClientRequestsRamp is the manager's own count
	// (flightctl_client_requests_total, every binding of every simulator)
	// over the ramp, a cross-check of RampRequests.
	ClientRequestsRamp map[string]float64 `json:"managerClientRequestsRamp"`
	// Profile is the manager's CPU profile over the steady window
	// (-pprof only).
	Profile *profileResult `json:"cpuProfileSteady,omitempty"`
	// Kwok is the same S bare pods, created the same way, on the KWOK
	// node: the control plane's own cost at this size, for the ratios.
	Kwok *phaseResult `json:"kwok,omitempty"`
	// KwokError says why the KWOK run did not finish, if it did not.
	KwokError string `json:"kwokError,omitempty"`
}

// scaleSimConfig generates the scale devices: binding i gets devices
// scale-<i>-NNN labelled fleet=scale-<i>; the first N mod B bindings get
// one more.
func scaleSimConfig(devices, bindings int) (string, []int) {
	var sb strings.Builder
	sb.WriteString("generate:\n")
	per := make([]int, bindings)
	for i := range per {
		per[i] = devices / bindings
		if i < devices%bindings {
			per[i]++
		}
		fmt.Fprintf(&sb, "  - {prefix: %s-, count: %d, labels: {fleet: %s}, cpu: 4, memory: 8Gi, ipStart: 198.%d.0.1}\n",
			scaleFleet(i), per[i], scaleFleet(i), 20+i%200)
	}
	return sb.String(), per
}

func scaleFleet(i int) string { return fmt.Sprintf("scale-%d", i) }

// runScale starts a simulator with the scale devices, binds them with B
// FleetBindings and creates S bare pods spread round-robin over the B
// nodes.
func (b *bench) runScale(ctx context.Context) error {
	cfg := b.cfg
	res := &scaleResult{Pods: cfg.ScalePods, Devices: cfg.ScaleDevices, Bindings: cfg.ScaleBindings}
	b.rep.Scale = res
	conf, per := scaleSimConfig(cfg.ScaleDevices, cfg.ScaleBindings)
	sim, err := startSim(ctx, b.state, "scale-sim", b.stack.SimBin, conf, "--cost-model", b.cfg.CostModel)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, sim.cmd)
	logf("scale: simulator with %d devices at %s", cfg.ScaleDevices, sim.url)

	fleets := make([]string, cfg.ScaleBindings)
	for i := range fleets {
		fleets[i] = scaleFleet(i)
	}
	perBinding := (cfg.ScalePods + cfg.ScaleBindings - 1) / cfg.ScaleBindings
	before := b.mgr.sample()
	res.RSSBeforeKiB = before.VmRSSKiB
	t0 := time.Now()
	for _, f := range fleets {
		if err := b.applyBinding(ctx, sim, "scale-flightctl-credentials", bindingSpec{Fleet: f, MaxPods: perBinding + 10, ReconnectTimeout: "5m"}); err != nil {
			return err
		}
	}
	defer func() {
		for _, f := range fleets {
			b.deleteBinding(context.WithoutCancel(ctx), f)
		}
	}()
	for i, f := range fleets {
		if _, err := waitNodeReady(ctx, b.cs, "vk-flightctl-"+f, 3*time.Minute, cpuIs(4*per[i])); err != nil {
			return err
		}
	}
	res.NodesReady = time.Since(t0).Seconds()
	afterNodes := b.mgr.sample()
	res.CPUNodes = afterNodes.CPUSeconds - before.CPUSeconds
	logf("scale: %d nodes Ready in %.1fs", len(fleets), res.NodesReady)

	// Ramp: create every pod and wait for all to be Ready.
	runLabel := fmt.Sprintf("scale-%d", time.Now().UnixNano()%1e6)
	sel := "bench-run=" + runLabel
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events, err := watchPods(wctx, b.cs, sel)
	if err != nil {
		return err
	}
	if err := sim.resetStats(ctx); err != nil {
		return err
	}
	m0, err := b.mgr.scrape(ctx)
	if err != nil {
		return err
	}
	cpu0 := b.mgr.sample().CPUSeconds
	mem := b.mgr.watchMemory("ramp")
	defer func() {
		if mem != nil {
			mem.finish()
		}
	}()
	var mu sync.Mutex
	created := map[string]time.Time{}
	ready := map[string]time.Time{}
	labels := map[string]string{"bench-run": runLabel, "app": "vkbench"}
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		errc <- createBarePods(ctx, b.cs, "scale", cfg.ScalePods, labels, func(i int) string {
			return "vk-flightctl-" + fleets[i%len(fleets)]
		}, &mu, created)
	}()
	rampTimeout := max(2*time.Minute, time.Duration(cfg.ScalePods/8)*time.Second)
	timeout := time.After(rampTimeout)
	progress := time.NewTicker(15 * time.Second)
	defer progress.Stop()
	var lastReady time.Time
ramp:
	for len(ready) < cfg.ScalePods {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("creating pods: %w", err)
			}
		case <-progress.C:
			mu.Lock()
			logf("scale: %d created, %d Ready after %s", len(created), len(ready), time.Since(start).Round(time.Second))
			mu.Unlock()
		case <-timeout:
			res.RampTimedOut = true
			logf("scale: only %d/%d pods Ready after %s; measuring at this size", len(ready), cfg.ScalePods, rampTimeout)
			break ramp
		case ev := <-events:
			if ev.deleted {
				continue
			}
			mu.Lock()
			if _, seen := created[ev.pod.Name]; !seen {
				created[ev.pod.Name] = ev.at
			}
			if _, done := ready[ev.pod.Name]; !done && podReady(ev.pod) {
				ready[ev.pod.Name] = ev.at
				lastReady = ev.at
			}
			mu.Unlock()
		}
	}
	rampEnd := time.Now()
	if lastReady.IsZero() {
		lastReady = rampEnd
	}
	res.Ready = len(ready)
	res.AllReady = lastReady.Sub(start).Seconds()
	res.PodsPerSec = float64(res.Ready) / res.AllReady
	var lat []float64
	mu.Lock()
	for name, r := range ready {
		lat = append(lat, r.Sub(created[name]).Seconds())
	}
	mu.Unlock()
	sort.Float64s(lat)
	res.P50, res.P99 = pct(lat, 50), pct(lat, 99)
	afterRamp := b.mgr.sample()
	res.RSSAfterRampKiB = afterRamp.VmRSSKiB
	res.CPURamp = afterRamp.CPUSeconds - cpu0
	st, err := sim.stats(ctx)
	if err != nil {
		return err
	}
	m1, err := b.mgr.scrape(ctx)
	if err != nil {
		return err
	}
	api, total := st.apiRequests()
	res.RampRequests = api
	res.RampCallsPerPod = total / float64(cfg.ScalePods)
	res.RampWritesPod = writes(api) / float64(cfg.ScalePods)
	res.RampGetsPod = api["getDevice"] / float64(cfg.ScalePods)
	res.RampBytesPerPod = (st.BytesIn + st.BytesOut) / float64(cfg.ScalePods)
	res.LoopRamp = loopDelta(m0, m1, fleets)
	res.ClientRequestsRamp, _ = requestDelta(m0, m1)
	logf("scale: %d/%d pods Ready in %.1fs (%.1f pods/s, p50=%.2fs p99=%.2fs); ramp: manager CPU %.1fs, %.2f Flightctl calls per pod (%.2f writes, %.2f device GETs), %.0f bytes per pod, status loop mean %.3fs",
		res.Ready, res.Pods, res.AllReady, res.PodsPerSec, res.P50, res.P99, res.CPURamp, res.RampCallsPerPod, res.RampWritesPod, res.RampGetsPod, res.RampBytesPerPod, res.LoopRamp.MeanSeconds)

	mem.enter("steady")
	// Steady window: everything Running, only status polls.
	window := 10 * time.Second
	if cfg.Quick {
		window = 3 * time.Second
	}
	if err := sim.resetStats(ctx); err != nil {
		return err
	}
	if m1, err = b.mgr.scrape(ctx); err != nil {
		return err
	}
	s0 := b.mgr.sample()
	wStart := time.Now()
	// With -pprof the steady window is profiled too: at scale the status
	// passes, not pod start-up, are what costs CPU.
	var prof *cpuProfiler
	if cfg.Pprof {
		dir := filepath.Join(b.state, "pprof-scale")
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		prof = b.mgr.startCPUProfile(ctx, dir)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	if prof != nil {
		out := filepath.Join(resultsDir(b.root), b.rep.Time.Format("20060102T150405Z")+"-manager-cpu-scale-steady.pb.gz")
		pr, err := prof.finish(ctx, out)
		if err != nil {
			return err
		}
		res.Profile = &pr
		logf("scale: manager CPU profile of the steady window (%.1fs): %s", pr.WindowSeconds, pr.Top)
	}
	if cfg.Pprof {
		// What the manager keeps per pod decides its memory at scale.
		out := filepath.Join(resultsDir(b.root), b.rep.Time.Format("20060102T150405Z")+"-manager-heap-scale.pb.gz")
		if err := b.mgr.fetch(ctx, "/heap?gc=1", out); err != nil {
			return err
		}
		txt, err := runTool(ctx, "go", "tool", "pprof", "-top", "-sample_index=inuse_space", out)
		if err != nil {
			return err
		}
		logf("scale: manager heap in use with every pod running (%s):\n    %s", out, strings.Join(topLines(string(txt), 25), "\n    "))
	}
	st, err = sim.stats(ctx)
	if err != nil {
		return err
	}
	el := time.Since(wStart)
	s1 := b.mgr.sample()
	m2, err := b.mgr.scrape(ctx)
	if err != nil {
		return err
	}
	api, total = st.apiRequests()
	res.SteadyWindow = el.Seconds()
	res.SteadyRequests = api
	res.CPUSteadyRate = (s1.CPUSeconds - s0.CPUSeconds) / el.Seconds()
	res.LoopSteady = loopDelta(m1, m2, fleets)
	// Per status pass the manager counted, not per window/interval (see
	// apiStats).
	res.SteadyCallsPerPoll = div(total, res.LoopSteady.Loops)
	res.SteadyBytesPerPoll = div(st.BytesIn+st.BytesOut, res.LoopSteady.Loops)
	logf("scale: steady %.1fs: %.2f calls and %.0f bytes per status pass (%v), manager CPU %.2f cores, status loop mean %.3fs (p99 <= %.3fs, %0.f loops)",
		el.Seconds(), res.SteadyCallsPerPoll, res.SteadyBytesPerPoll, api, res.CPUSteadyRate, res.LoopSteady.MeanSeconds, res.LoopSteady.P99UpperSeconds, res.LoopSteady.Loops)

	// Deletion.
	if err := sim.resetStats(ctx); err != nil {
		return err
	}
	mem.enter("delete")
	d0 := b.mgr.sample()
	dstart := time.Now()
	names := make([]string, cfg.ScalePods)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%05d", i)
	}
	err = deletePods(ctx, b.cs, names)
	if err == nil {
		err = waitGone(ctx, b.cs, sel, dstart, dstart.Add(max(2*time.Minute, time.Duration(cfg.ScalePods/8)*time.Second)))
	}
	if err != nil {
		res.DeleteError = err.Error()
		logf("scale: deletion: %v", err)
	}
	res.Delete = time.Since(dstart).Seconds()
	res.CPUDelete = b.mgr.sample().CPUSeconds - d0.CPUSeconds
	if st, err := sim.stats(ctx); err == nil {
		api, total := st.apiRequests()
		res.DeleteRequests = api
		res.DeleteCallsPerPod = total / float64(cfg.ScalePods)
	}
	res.HWMKiB = b.mgr.sample().VmHWMKiB
	res.PeakRSS = mem.finish()
	mem = nil
	logf("scale: deleted in %.1fs (manager CPU %.1fs, %.2f Flightctl calls per pod, %v); manager VmHWM %d MiB; peak anonymous RSS %d MiB (%s), file-backed %d MiB then",
		res.Delete, res.CPUDelete, res.DeleteCallsPerPod, res.DeleteRequests, res.HWMKiB/1024, res.PeakRSS.AnonKiB/1024, res.PeakRSS.Phase, res.PeakRSS.FileKiB/1024)
	b.runScaleKwok(ctx, res)
	return nil
}

// runScaleKwok creates the scale workload's S bare pods on the KWOK node
// by the same 32 clients, after the vk pods are gone: what the local
// control plane alone needs for that many pods, so the vk numbers get a
// ratio. A KWOK failure is reported, not fatal: the vk numbers stand.
func (b *bench) runScaleKwok(ctx context.Context, res *scaleResult) {
	r, err := measure(ctx, b.cs, "kwok", kwokNode, nil, "bare", b.cfg.ScalePods, phaseHooks{})
	if err != nil {
		res.KwokError = err.Error()
		logf("scale: KWOK run: %v", err)
		return
	}
	r.Latencies = nil
	res.Kwok = &r
	logf("scale: KWOK %d pods Ready in %.1fs (%.1f pods/s, p50=%.2fs p99=%.2fs); deleted in %.1fs",
		r.Pods, r.AllReady, r.PodsPerSec, r.P50, r.P99, r.Delete)
}

// writes sums the requests that change something in Flightctl.
func writes(api map[string]float64) float64 {
	n := 0.0
	for op, v := range api {
		for _, p := range []string{"create", "replace", "patch", "delete"} {
			if strings.HasPrefix(op, p) {
				n += v
			}
		}
	}
	return n
}
