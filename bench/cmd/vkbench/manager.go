package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// managerProc is the running manager as the bench observes it: through
// /proc and its metrics and pprof endpoints.
type managerProc struct {
	pid        int
	metricsURL string
	pprofURL   string // empty unless -pprof
	client     *http.Client
}

// findManager reads the manager's pid from the stack's state directory
// and its metrics address from its command line, so the bench needs
// nothing from test/quickstart beyond what the stack already records.
func findManager(stateDir, pprofAddr string) (*managerProc, error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, "manager.pid"))
	if err != nil {
		return nil, fmt.Errorf("manager pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("manager pid %q: %w", raw, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, fmt.Errorf("manager command line: %w", err)
	}
	m := &managerProc{pid: pid, client: &http.Client{Timeout: 30 * time.Second}}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
			m.metricsURL = "http://" + v + "/metrics"
		} else if a == "--metrics-bind-address" && i+1 < len(args) {
			m.metricsURL = "http://" + args[i+1] + "/metrics"
		}
	}
	if m.metricsURL == "" {
		return nil, fmt.Errorf("manager (pid %d) has no --metrics-bind-address in %q", pid, args)
	}
	if pprofAddr != "" {
		m.pprofURL = "http://" + pprofAddr + "/debug/pprof"
	}
	return m, nil
}

// procSample is the manager's memory and CPU at one moment.
type procSample struct {
	// VmHWMKiB is the peak resident set since the process started.
	VmHWMKiB int64 `json:"vmHWMKiB"`
	// VmRSSKiB is the resident set now; RssAnonKiB and RssFileKiB split
	// it into anonymous memory (heap, stacks: what the code controls) and
	// file-backed pages (the binary's text and data as far as touched).
	VmRSSKiB   int64 `json:"vmRSSKiB"`
	RssAnonKiB int64 `json:"rssAnonKiB"`
	RssFileKiB int64 `json:"rssFileKiB"`
	// CPUSeconds is user plus system time since the process started.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports; getconf confirms it
// where available.
var clockTicks = sync.OnceValue(func() float64 {
	if out, err := runTool(context.Background(), "getconf", "CLK_TCK"); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
})

func (m *managerProc) sample() procSample {
	var s procSample
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.pid)); err == nil {
		st := parseStatus(string(b))
		s.VmHWMKiB, s.VmRSSKiB, s.RssAnonKiB, s.RssFileKiB = st["VmHWM"], st["VmRSS"], st["RssAnon"], st["RssFile"]
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.pid)); err == nil {
		if ticks, err := parseStatTicks(string(b)); err == nil {
			s.CPUSeconds = float64(ticks) / clockTicks()
		}
	}
	return s
}

// parseStatus reads the memory lines (kB) of /proc/<pid>/status: VmHWM,
// VmRSS, RssAnon, RssFile and the others, by name.
func parseStatus(status string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// memPeak is the largest anonymous resident set seen by a memWatch, and
// the file-backed part at that moment.
type memPeak struct {
	AnonKiB int64  `json:"rssAnonKiB"`
	FileKiB int64  `json:"rssFileKiB"`
	Phase   string `json:"phase"`
}

// memWatch samples the manager's /proc status every 250 ms, so a workload
// can say in which of its phases the resident set peaked and how much of
// VmHWM is the binary's file-backed pages rather than memory the code
// allocated. VmHWM alone says neither.
type memWatch struct {
	mu    sync.Mutex
	phase string
	peak  memPeak
	stop  chan struct{}
	done  chan struct{}
}

func (m *managerProc) watchMemory(phase string) *memWatch {
	w := &memWatch{phase: phase, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			s := m.sample()
			w.mu.Lock()
			if s.RssAnonKiB > w.peak.AnonKiB {
				w.peak = memPeak{AnonKiB: s.RssAnonKiB, FileKiB: s.RssFileKiB, Phase: w.phase}
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// enter names the phase the next samples belong to.
func (w *memWatch) enter(phase string) {
	w.mu.Lock()
	w.phase = phase
	w.mu.Unlock()
}

// finish stops the sampling and returns the peak.
func (w *memWatch) finish() memPeak {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// parseStatTicks returns utime+stime from /proc/<pid>/stat. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// after its closing parenthesis: state is field 3, utime 14, stime 15.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' in /proc/<pid>/stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/<pid>/stat has %d fields after the name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// ------------------------------------------------------------ metrics

// metricsSnapshot is the part of the manager's /metrics the bench uses.
type metricsSnapshot struct {
	// loop is vk_flightctl_status_loop_duration_seconds by fleet.
	loop map[string]histogram
	// requests is flightctl_client_requests_total summed by operation
	// (every binding's client; the label has no fleet).
	requests map[string]float64
	// kube is client-go's rest_client_requests_total summed by method:
	// every Kubernetes request the manager sent (informers' lists and
	// watches included).
	kube map[string]float64
	// polls is vk_flightctl_device_polls_total summed by kind (full,
	// hot, events, unhealthy) over every binding.
	polls map[string]float64
	// reqBytes and respBytes are flightctl_client_{request,response}_bytes_total
	// by operation.
	reqBytes, respBytes map[string]float64
	// hot is vk_flightctl_hot_devices summed over bindings.
	hot float64
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	count, sum float64
	bounds     []float64 // upper bounds, ascending; +Inf last
	cum        []float64
}

func (m *managerProc) scrape(ctx context.Context) (metricsSnapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metricsURL, nil)
	if err != nil {
		return metricsSnapshot{}, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return metricsSnapshot{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metricsSnapshot{}, fmt.Errorf("GET %s: %s", m.metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return metricsSnapshot{}, fmt.Errorf("parsing manager metrics: %w", err)
	}
	snap := metricsSnapshot{loop: map[string]histogram{}, requests: map[string]float64{}, kube: map[string]float64{},
		polls: map[string]float64{}, reqBytes: map[string]float64{}, respBytes: map[string]float64{}}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	if f := fams["vk_flightctl_status_loop_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			hs := histogram{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
			for _, b := range h.GetBucket() {
				hs.bounds = append(hs.bounds, b.GetUpperBound())
				hs.cum = append(hs.cum, float64(b.GetCumulativeCount()))
			}
			if len(hs.bounds) == 0 || !math.IsInf(hs.bounds[len(hs.bounds)-1], 1) {
				hs.bounds = append(hs.bounds, math.Inf(1))
				hs.cum = append(hs.cum, hs.count)
			}
			snap.loop[label(m, "fleet")] = hs
		}
	}
	if f := fams["flightctl_client_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			snap.requests[label(m, "operation")] += m.GetCounter().GetValue()
		}
	}
	for name, into := range map[string]map[string]float64{
		"flightctl_client_request_bytes_total":  snap.reqBytes,
		"flightctl_client_response_bytes_total": snap.respBytes,
	} {
		for _, m := range fams[name].GetMetric() {
			into[label(m, "operation")] += m.GetCounter().GetValue()
		}
	}
	for _, m := range fams["vk_flightctl_device_polls_total"].GetMetric() {
		snap.polls[label(m, "kind")] += m.GetCounter().GetValue()
	}
	for _, m := range fams["vk_flightctl_hot_devices"].GetMetric() {
		snap.hot += m.GetGauge().GetValue()
	}
	if f := fams["rest_client_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			snap.kube[label(m, "method")] += m.GetCounter().GetValue()
		}
	}
	return snap, nil
}

// loopStats summarizes the status loop durations of the given fleets
// between two snapshots.
type loopStats struct {
	// Loops is how many status passes ran.
	Loops float64 `json:"loops"`
	// MeanSeconds is their mean duration.
	MeanSeconds float64 `json:"meanSeconds"`
	// P99UpperSeconds is the upper bound of the bucket holding the 99th
	// percentile (histogram resolution: buckets double from 5 ms).
	P99UpperSeconds float64 `json:"p99UpperBoundSeconds"`
}

func loopDelta(before, after metricsSnapshot, fleets []string) loopStats {
	var merged histogram
	for _, f := range fleets {
		a := after.loop[f]
		b, ok := before.loop[f]
		if len(a.bounds) == 0 {
			continue
		}
		if merged.bounds == nil {
			merged.bounds = a.bounds
			merged.cum = make([]float64, len(a.bounds))
		}
		merged.count += a.count
		merged.sum += a.sum
		if ok {
			merged.count -= b.count
			merged.sum -= b.sum
		}
		for i := range a.cum {
			if i >= len(merged.cum) {
				break
			}
			merged.cum[i] += a.cum[i]
			if ok && i < len(b.cum) {
				merged.cum[i] -= b.cum[i]
			}
		}
	}
	ls := loopStats{Loops: merged.count}
	if merged.count == 0 {
		return ls
	}
	ls.MeanSeconds = merged.sum / merged.count
	want := 0.99 * merged.count
	for i, c := range merged.cum {
		if c >= want {
			ls.P99UpperSeconds = merged.bounds[i]
			break
		}
	}
	if math.IsInf(ls.P99UpperSeconds, 1) {
		// JSON has no +Inf: report the largest finite bound, marked by
		// being the last one.
		ls.P99UpperSeconds = merged.bounds[len(merged.bounds)-2]
	}
	return ls
}

// requestDelta is the manager's Flightctl client requests between two
// snapshots.
func requestDelta(before, after metricsSnapshot) (map[string]float64, float64) {
	return counterDelta(before.requests, after.requests)
}

func counterDelta(before, after map[string]float64) (map[string]float64, float64) {
	out := map[string]float64{}
	total := 0.0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
			total += d
		}
	}
	return out, total
}

// perPod divides every count by n.
func perPod(counts map[string]float64, n int) map[string]float64 {
	out := make(map[string]float64, len(counts))
	for k, v := range counts {
		out[k] = v / float64(n)
	}
	return out
}

// ------------------------------------------------------------ pprof

// cpuProfiler captures the manager's CPU profile over a window whose end
// is not known in advance (until every pod is Ready). net/http/pprof only
// offers fixed-length profiles, so it takes back-to-back 1 s profiles and
// merges them with go tool pprof; the gaps between them are a request's
// round trip.
type cpuProfiler struct {
	m      *managerProc
	dir    string
	stop   chan struct{}
	done   chan struct{}
	parts  []string
	err    error
	start  time.Time
	window time.Duration
}

func (m *managerProc) startCPUProfile(ctx context.Context, dir string) *cpuProfiler {
	p := &cpuProfiler{m: m, dir: dir, stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			part := filepath.Join(dir, fmt.Sprintf("part-%03d.pb.gz", i))
			if err := m.fetch(ctx, "/profile?seconds=1", part); err != nil {
				p.err = err
				return
			}
			p.parts = append(p.parts, part)
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
		}
	}()
	return p
}

func (m *managerProc) fetch(ctx context.Context, path, out string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.pprofURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s%s: %s %s", m.pprofURL, path, resp.Status, b)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finish waits for the profile in flight, merges the parts into out and
// writes go tool pprof -top (flat and cumulative) next to it.
func (p *cpuProfiler) finish(ctx context.Context, out string) (profileResult, error) {
	close(p.stop)
	<-p.done
	p.window = time.Since(p.start)
	res := profileResult{Profile: out, WindowSeconds: p.window.Seconds(), Parts: len(p.parts)}
	if p.err != nil {
		return res, fmt.Errorf("CPU profile: %w", p.err)
	}
	if len(p.parts) == 0 {
		return res, errors.New("CPU profile: no part captured")
	}
	merged, err := runTool(ctx, "go", append([]string{"tool", "pprof", "-proto"}, p.parts...)...)
	if err != nil {
		return res, err
	}
	if err := os.WriteFile(out, merged, 0o644); err != nil {
		return res, err
	}
	for _, part := range p.parts {
		_ = os.Remove(part)
	}
	for _, v := range []struct {
		suffix string
		args   []string
	}{
		{".top.txt", []string{"-top", "-nodecount=40"}},
		{".cum.txt", []string{"-top", "-cum", "-nodecount=60"}},
	} {
		txt, err := runTool(ctx, "go", append(append([]string{"tool", "pprof"}, v.args...), out)...)
		if err != nil {
			return res, err
		}
		path := strings.TrimSuffix(out, ".pb.gz") + v.suffix
		if err := os.WriteFile(path, txt, 0o644); err != nil {
			return res, err
		}
		if v.suffix == ".top.txt" {
			res.Top = path
			res.TopLines = topLines(string(txt), 15)
		} else {
			res.Cum = path
		}
	}
	return res, nil
}

// profileResult is where the CPU profile went and its hottest functions.
type profileResult struct {
	Profile       string   `json:"profile"`
	Top           string   `json:"top"`
	Cum           string   `json:"cum"`
	WindowSeconds float64  `json:"windowSeconds"`
	Parts         int      `json:"parts"`
	TopLines      []string `json:"topLines"`
}

// topLines keeps go tool pprof -top's header and first n rows.
func topLines(txt string, n int) []string {
	var out []string
	rows := 0
	inRows := false
	for _, l := range strings.Split(strings.TrimRight(txt, "\n"), "\n") {
		if inRows {
			rows++
			if rows > n {
				break
			}
		}
		if strings.HasPrefix(strings.TrimSpace(l), "flat ") {
			inRows = true
		}
		if strings.HasPrefix(l, "Type:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// sortedKeys returns a map's keys in order, for stable output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
