package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// report is everything one run measured; it is printed and written to
// bench/results/<UTC time>.json.
type report struct {
	Time   time.Time `json:"time"`
	Config config    `json:"config"`
	// Error is why the run stopped early; what came before is valid.
	Error string `json:"error,omitempty"`

	// Start workload.
	Runs         []phaseResult             `json:"runs,omitempty"`
	Medians      map[string]phaseResult    `json:"medians,omitempty"`
	Ratios       map[string]map[string]any `json:"ratiosVkOverKwok,omitempty"`
	APICallsPoll float64                   `json:"flightctlCallsPerPoll"`
	APIBytesPoll float64                   `json:"flightctlBytesPerPoll"`
	APIWindow    float64                   `json:"flightctlStatsWindowSeconds"`
	APILoops     loopStats                 `json:"statusLoopInWindow"`
	APIRequests  map[string]float64        `json:"flightctlRequestsInWindow,omitempty"`
	TargetsMet   map[string]bool           `json:"targetsMet,omitempty"`
	Chart        string                    `json:"chart,omitempty"`
	Profile      *profileResult            `json:"cpuProfile,omitempty"`

	Churn      []churnResult     `json:"churn,omitempty"`
	Disconnect *disconnectResult `json:"disconnect,omitempty"`
	Scale      *scaleResult      `json:"scale,omitempty"`

	// Manager is the manager's memory and CPU at the end of the run.
	Manager         procSample          `json:"manager"`
	WorkloadSeconds []workloadTime      `json:"workloadSeconds"`
	ManagerLog      string              `json:"managerLog"`
	KwokVersion     string              `json:"kwokVersion"`
	VKAllocatable   corev1.ResourceList `json:"nodeAllocatable"`
}

// workloadTime is how long a workload took, start-up of its nodes
// included.
type workloadTime struct {
	Workload string  `json:"workload"`
	Seconds  float64 `json:"seconds"`
}

// summarize computes the start workload's medians over repetitions, the
// vk/KWOK ratios and the targets.
func summarize(rep *report) {
	if len(rep.Runs) == 0 {
		return
	}
	rep.Medians = map[string]phaseResult{}
	rep.Ratios = map[string]map[string]any{}
	rep.TargetsMet = map[string]bool{}
	group := map[string][]phaseResult{}
	for _, r := range rep.Runs {
		group[r.Target+"/"+r.Kind] = append(group[r.Target+"/"+r.Kind], r)
	}
	for k, rs := range group {
		col := func(f func(phaseResult) float64) float64 {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r))
			}
			return median(v)
		}
		rep.Medians[k] = phaseResult{Target: rs[0].Target, Kind: rs[0].Kind, Pods: rs[0].Pods,
			P50: col(func(r phaseResult) float64 { return r.P50 }), P90: col(func(r phaseResult) float64 { return r.P90 }),
			P99: col(func(r phaseResult) float64 { return r.P99 }), Max: col(func(r phaseResult) float64 { return r.Max }),
			PodsPerSec: col(func(r phaseResult) float64 { return r.PodsPerSec }), AllReady: col(func(r phaseResult) float64 { return r.AllReady }),
			Created: col(func(r phaseResult) float64 { return r.Created }), Delete: col(func(r phaseResult) float64 { return r.Delete })}
	}
	for _, kind := range []string{"bare", "deployment"} {
		vk, kw := rep.Medians["vk/"+kind], rep.Medians["kwok/"+kind]
		rep.Ratios[kind] = map[string]any{
			"p50": div(vk.P50, kw.P50), "p90": div(vk.P90, kw.P90), "p99": div(vk.P99, kw.P99),
			"podsPerSecond": div(vk.PodsPerSec, kw.PodsPerSec),
		}
		rep.TargetsMet[kind+": vk p99 <= 1.5s"] = vk.P99 <= 1.5
		rep.TargetsMet[kind+": vk throughput >= 50% of kwok"] = div(vk.PodsPerSec, kw.PodsPerSec) >= 0.5
	}
}

func div(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func printTable(w io.Writer, rep *report) {
	mode := "full"
	if rep.Config.Quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "\nvk-flightctl vs KWOK — %s mode, status poll %s\n", mode, pollInterval)
	if len(rep.Runs) > 0 {
		fmt.Fprintf(w, "\nstart latency: %d pods per phase, %d devices, %d repetition(s) (medians)\n\n", rep.Config.Pods, rep.Config.Devices, rep.Config.Reps)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "phase\ttarget\tp50 s\tp90 s\tp99 s\tmax s\tpods/s\tall created s\tall Ready s\tdelete s\t")
		for _, kind := range []string{"bare", "deployment"} {
			for _, t := range []string{"vk", "kwok"} {
				m := rep.Medians[t+"/"+kind]
				fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%.2f\t%.2f\t%.2f\t\n", kind, t, m.P50, m.P90, m.P99, m.Max, m.PodsPerSec, m.Created, m.AllReady, m.Delete)
			}
			r := rep.Ratios[kind]
			fmt.Fprintf(tw, "%s\tvk/kwok\t%.2fx\t%.2fx\t%.2fx\t\t%.2fx\t\t\t\t\n", kind, r["p50"], r["p90"], r["p99"], r["podsPerSecond"])
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "\nFlightctl API per status pass (steady, %d pods running): %.2f calls, %.0f bytes (%.0f passes in %.1fs, mean %.3fs) %v\n",
			rep.Config.Pods, rep.APICallsPoll, rep.APIBytesPoll, rep.APILoops.Loops, rep.APIWindow, rep.APILoops.MeanSeconds, rep.APIRequests)
	}
	if len(rep.Churn) > 0 {
		fmt.Fprintf(w, "\nchurn: rolling image update of a %d-replica Deployment, then deletion\n\n", rep.Config.Pods)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tinitial Ready s\tnew all Ready s\tconverged s\tnew p50 s\tnew p99 s\tdelete s\t")
		byT := map[string]churnResult{}
		for _, c := range rep.Churn {
			byT[c.Target] = c
			fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.3f\t%.3f\t%.2f\t\n", c.Target, c.InitialReady, c.NewReady, c.Converged, c.NewP50, c.NewP99, c.Delete)
		}
		if vk, ok := byT["vk"]; ok {
			if kw, ok := byT["kwok"]; ok {
				fmt.Fprintf(tw, "vk/kwok\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t\n", div(vk.InitialReady, kw.InitialReady), div(vk.NewReady, kw.NewReady),
					div(vk.Converged, kw.Converged), div(vk.NewP50, kw.NewP50), div(vk.NewP99, kw.NewP99), div(vk.Delete, kw.Delete))
			}
		}
		_ = tw.Flush()
	}
	if d := rep.Disconnect; d != nil {
		fmt.Fprintf(w, "\ndisconnect (vk only): %d Deployment pods on one device, reconnectTimeout %.0fs\n", d.Pods, d.ReconnectTimeoutSeconds)
		fmt.Fprintf(w, "  pods not Ready after %.2fs; timeout fired after %.2fs (%.2fs past detection + timeout)\n", d.Detect, d.Expire, d.Overshoot)
		fmt.Fprintf(w, "  timeout -> all %d replicas Running elsewhere: %.2fs (disconnect -> Running elsewhere %.2fs)\n", d.Pods, d.Reschedule, d.Total)
		fmt.Fprintf(w, "  replacement pods p50 %.3fs p99 %.3fs; old pods gone %s after the timeout\n", d.ReplacementP50, d.ReplacementP99, goneText(d.OldGone))
	}
	if s := rep.Scale; s != nil {
		fmt.Fprintf(w, "\nscale (vk only): %d pods over %d devices in %d FleetBindings\n", s.Pods, s.Devices, s.Bindings)
		timedOut := ""
		if s.RampTimedOut {
			timedOut = " (ramp timed out)"
		}
		fmt.Fprintf(w, "  nodes Ready %.1fs; %d/%d pods Ready in %.1fs%s = %.1f pods/s, p50 %.2fs p99 %.2fs; deleted in %.1fs\n",
			s.NodesReady, s.Ready, s.Pods, s.AllReady, timedOut, s.PodsPerSec, s.P50, s.P99, s.Delete)
		if k := s.Kwok; k != nil {
			fmt.Fprintf(w, "  KWOK, same pods on one node: %.1f pods/s, p50 %.2fs p99 %.2fs; vk/KWOK: throughput %.2fx, p99 %.2fx\n",
				k.PodsPerSec, k.P50, k.P99, div(s.PodsPerSec, k.PodsPerSec), div(s.P99, k.P99))
		} else if s.KwokError != "" {
			fmt.Fprintf(w, "  KWOK run failed: %s\n", s.KwokError)
		}
		fmt.Fprintf(w, "  manager: VmHWM %d MiB (RSS %d MiB before, %d MiB with all pods; peak anonymous %d MiB in %s with %d MiB file-backed); CPU %.1fs nodes, %.1fs ramp, %.2f cores steady, %.1fs delete\n",
			s.HWMKiB/1024, s.RSSBeforeKiB/1024, s.RSSAfterRampKiB/1024, s.PeakRSS.AnonKiB/1024, s.PeakRSS.Phase, s.PeakRSS.FileKiB/1024,
			s.CPUNodes, s.CPURamp, s.CPUSteadyRate, s.CPUDelete)
		fmt.Fprintf(w, "  status loop: ramp mean %.3fs (p99 <= %.3fs, %.0f loops); steady mean %.3fs (p99 <= %.3fs, %.0f loops)\n",
			s.LoopRamp.MeanSeconds, s.LoopRamp.P99UpperSeconds, s.LoopRamp.Loops, s.LoopSteady.MeanSeconds, s.LoopSteady.P99UpperSeconds, s.LoopSteady.Loops)
		fmt.Fprintf(w, "  Flightctl API: %.2f calls and %.0f bytes per status pass of one binding (steady); %.2f calls (%.2f writes, %.2f device GETs) and %.0f bytes per pod created; %.2f calls per pod deleted\n",
			s.SteadyCallsPerPoll, s.SteadyBytesPerPoll, s.RampCallsPerPod, s.RampWritesPod, s.RampGetsPod, s.RampBytesPerPod, s.DeleteCallsPerPod)
		fmt.Fprintf(w, "  ramp requests %v\n", s.RampRequests)
		if p := s.Profile; p != nil {
			fmt.Fprintf(w, "  manager CPU profile of the steady window (%.1fs, %s):\n", p.WindowSeconds, p.Profile)
			for _, l := range p.TopLines {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	fmt.Fprintf(w, "\nmanager at the end: VmHWM %d MiB, VmRSS %d MiB, CPU %.1fs\n", rep.Manager.VmHWMKiB/1024, rep.Manager.VmRSSKiB/1024, rep.Manager.CPUSeconds)
	if p := rep.Profile; p != nil {
		fmt.Fprintf(w, "\nmanager CPU profile, first vk bare run (%.1fs, %s):\n", p.WindowSeconds, p.Profile)
		for _, l := range p.TopLines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(rep.TargetsMet) > 0 {
		fmt.Fprintln(w, "\ntargets (issue 8):")
		for _, k := range sortedKeys(rep.TargetsMet) {
			mark := "MET"
			if !rep.TargetsMet[k] {
				mark = "MISSED"
			}
			fmt.Fprintf(w, "  %-6s %s\n", mark, k)
		}
	}
	fmt.Fprint(w, "\nworkloads:")
	for _, wt := range rep.WorkloadSeconds {
		fmt.Fprintf(w, " %s %.1fs", wt.Workload, wt.Seconds)
	}
	fmt.Fprintln(w)
}

func goneText(s float64) string {
	if s < 0 {
		return "later (still Terminating when the replicas were Ready)"
	}
	return fmt.Sprintf("%.2fs", s)
}

func resultsDir(root string) string { return filepath.Join(root, "bench", "results") }

// writeResults writes the JSON report and, with start-latency runs, the
// latency chart.
func (b *bench) writeResults() error {
	dir := resultsDir(b.root)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := b.rep.Time.Format("20060102T150405Z")
	if len(b.rep.Runs) > 0 {
		path := filepath.Join(dir, stamp+"-start-latency.png")
		if err := writeChart(path, b.rep); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		b.rep.Chart = path
		fmt.Printf("\nchart: %s\n", path)
	}
	path := filepath.Join(dir, stamp+".json")
	raw, err := json.MarshalIndent(b.rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("results: %s\n", path)
	return nil
}

// pooled returns every per-pod latency of one target and kind over all
// repetitions, sorted.
func pooled(rep *report, target, kind string) []float64 {
	var out []float64
	for _, r := range rep.Runs {
		if r.Target == target && r.Kind == kind {
			out = append(out, r.Latencies...)
		}
	}
	sort.Float64s(out)
	return out
}
