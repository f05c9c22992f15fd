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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// phaseResult is one start-latency measurement: P pods on one target,
// bare or Deployment.
type phaseResult struct {
	Target     string  `json:"target"`
	Kind       string  `json:"kind"`
	Pods       int     `json:"pods"`
	P50        float64 `json:"p50Seconds"`
	P90        float64 `json:"p90Seconds"`
	P99        float64 `json:"p99Seconds"`
	Max        float64 `json:"maxSeconds"`
	PodsPerSec float64 `json:"podsPerSecond"`
	AllReady   float64 `json:"allReadySeconds"`
	// Created is when the last create call returned (bare pods) or the
	// watch saw the last pod appear (Deployment): before that, the pace
	// is set by the API server and the controllers, not by the node.
	Created float64 `json:"allCreatedSeconds"`
	Delete  float64 `json:"deleteSeconds"`
	// KubeCallsPerPod and FlightctlCallsPerPod are the manager's
	// Kubernetes requests by method and Flightctl requests by operation
	// from the first create to the last pod Ready, per pod (vk only;
	// background traffic of the other bindings included).
	KubeCallsPerPod      map[string]float64 `json:"managerKubeCallsPerPod,omitempty"`
	FlightctlCallsPerPod map[string]float64 `json:"managerFlightctlCallsPerPod,omitempty"`
	// Latencies are the per-pod seconds, sorted, for the chart.
	Latencies []float64 `json:"-"`
}

// startTarget is a node the start and churn workloads run pods on.
type startTarget struct {
	name, node string
	selector   map[string]string
}

func (b *bench) targets() []startTarget {
	return []startTarget{
		{"vk", b.vkNode.Name, map[string]string{"flightctl.io/fleet": benchFleet}},
		{"kwok", kwokNode, map[string]string{targetLabel: "kwok"}},
	}
}

// runStart runs the start-latency phases -reps times: per repetition and
// target, P bare pods, then a P-replica Deployment.
func (b *bench) runStart(ctx context.Context) error {
	cfg := b.cfg
	for r := 1; r <= cfg.Reps; r++ {
		for _, t := range b.targets() {
			for _, kind := range []string{"bare", "deployment"} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				var prof *cpuProfiler
				if cfg.Pprof && r == 1 && t.name == "vk" && kind == "bare" {
					dir := filepath.Join(b.state, "pprof")
					_ = os.RemoveAll(dir)
					if err := os.MkdirAll(dir, 0o755); err != nil {
						return err
					}
					prof = b.mgr.startCPUProfile(ctx, dir)
				}
				var m0, m1 metricsSnapshot
				if t.name == "vk" {
					var err error
					if m0, err = b.mgr.scrape(ctx); err != nil {
						return err
					}
				}
				res, err := measure(ctx, b.cs, t.name, t.node, t.selector, kind, cfg.Pods, phaseHooks{
					ready: func() error {
						if t.name == "vk" {
							var err error
							if m1, err = b.mgr.scrape(ctx); err != nil {
								return err
							}
						}
						if prof == nil {
							return nil
						}
						out := filepath.Join(resultsDir(b.root), b.rep.Time.Format("20060102T150405Z")+"-manager-cpu.pb.gz")
						pr, err := prof.finish(ctx, out)
						if err != nil {
							return err
						}
						b.rep.Profile = &pr
						logf("manager CPU profile over %.1fs (%d parts): %s (top: %s)", pr.WindowSeconds, pr.Parts, pr.Profile, pr.Top)
						return nil
					},
					// Steady window with P pods running, last vk repetition.
					during: func() error {
						if t.name == "vk" && kind == "deployment" && r == cfg.Reps {
							return b.apiStats(ctx)
						}
						return nil
					},
				})
				if err != nil {
					return fmt.Errorf("rep %d %s %s: %w", r, t.name, kind, err)
				}
				if t.name == "vk" {
					kube, _ := counterDelta(m0.kube, m1.kube)
					fc, _ := requestDelta(m0, m1)
					res.KubeCallsPerPod, res.FlightctlCallsPerPod = perPod(kube, cfg.Pods), perPod(fc, cfg.Pods)
				}
				logf("rep %d %-4s %-10s p50=%.3fs p90=%.3fs p99=%.3fs max=%.3fs %.1f pods/s (all created %.2fs, all Ready %.2fs, deleted in %.2fs)%s",
					r, t.name, kind, res.P50, res.P90, res.P99, res.Max, res.PodsPerSec, res.Created, res.AllReady, res.Delete, callsText(res))
				b.rep.Runs = append(b.rep.Runs, res)
			}
		}
	}
	return nil
}

// apiStats measures Flightctl API requests and bytes over a steady window
// with P pods running. They are divided by the status passes the manager
// counted (vk_flightctl_status_loop_duration_seconds), not by
// window/interval: a pass can be triggered early, and a 3 s window holds 3
// or 4 ticks of a 1 s ticker.
func (b *bench) apiStats(ctx context.Context) error {
	window := 10 * time.Second
	if b.cfg.Quick {
		window = 3 * time.Second
	}
	if err := b.sim.resetStats(ctx); err != nil {
		return err
	}
	m0, err := b.mgr.scrape(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	st, err := b.sim.stats(ctx)
	if err != nil {
		return err
	}
	el := time.Since(start)
	m1, err := b.mgr.scrape(ctx)
	if err != nil {
		return err
	}
	api, total := st.apiRequests()
	loops := loopDelta(m0, m1, []string{benchFleet})
	b.rep.APIWindow = el.Seconds()
	b.rep.APIRequests = api
	b.rep.APILoops = loops
	b.rep.APICallsPoll = div(total, loops.Loops)
	b.rep.APIBytesPoll = div(st.BytesIn+st.BytesOut, loops.Loops)
	logf("Flightctl API: %.0f requests in %.1fs (%v) over %.0f status passes = %.2f calls and %.0f bytes per pass; pass mean %.3fs",
		total, el.Seconds(), api, loops.Loops, b.rep.APICallsPoll, b.rep.APIBytesPoll, loops.MeanSeconds)
	return nil
}

// ------------------------------------------------------------ measurement

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func podSpec(nodeName string, selector map[string]string) corev1.PodSpec {
	// Default grace period: deletion waits for the node to confirm it (vk:
	// the application is removed from the device first).
	return corev1.PodSpec{
		NodeName:                     nodeName,
		NodeSelector:                 selector,
		Tolerations:                  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		AutomountServiceAccountToken: new(bool),
		Containers: []corev1.Container{{
			Name: "pause", Image: benchImage,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}},
		}},
	}
}

// deployment is a P-replica Deployment of the bench pod.
func deployment(name string, replicas int, labels, selector map[string]string) *appsv1.Deployment {
	r := int32(replicas)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec("", selector)},
		},
	}
}

// createBarePods creates pods named <prefix>-NNNNN with 32 concurrent
// clients, node(i) choosing each pod's nodeName, and records each
// client-side create time in created.
func createBarePods(ctx context.Context, cs kubernetes.Interface, prefix string, n int, labels map[string]string, node func(int) string, mu *sync.Mutex, created map[string]time.Time) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var firstErr error
	var emu sync.Mutex
	for i := 0; i < n && ctx.Err() == nil; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s-%05d", prefix, i)
			t := time.Now()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS, Labels: labels}, Spec: podSpec(node(i), nil)}
			_, err := cs.CoreV1().Pods(benchNS).Create(ctx, pod, metav1.CreateOptions{})
			mu.Lock()
			if c, ok := created[name]; !ok || t.Before(c) {
				created[name] = t
			}
			mu.Unlock()
			if err != nil {
				emu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				emu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return firstErr
}

// phaseHooks run inside a start-latency phase: ready as soon as every pod
// is Ready (before the latencies are computed), during after that and
// before deletion.
type phaseHooks struct {
	ready, during func() error
}

// measure creates P pods on one target (bare pods with nodeName, or a
// Deployment selecting the node), times each pod from creation to the first
// time the watch sees it Ready, runs the hooks, then deletes them and
// waits until they are gone.
func measure(ctx context.Context, cs kubernetes.Interface, target, node string, selector map[string]string, kind string, p int, hooks phaseHooks) (phaseResult, error) {
	res := phaseResult{Target: target, Kind: kind, Pods: p}
	runLabel := fmt.Sprintf("%s-%s-%d", target, kind, time.Now().UnixNano()%1e6)
	sel := "bench-run=" + runLabel
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events, err := watchPods(wctx, cs, sel)
	if err != nil {
		return res, err
	}

	var mu sync.Mutex
	created := map[string]time.Time{} // first sighting (or client-side create time)
	ready := map[string]time.Time{}
	start := time.Now()
	labels := map[string]string{"bench-run": runLabel, "app": "vkbench"}
	errc := make(chan error, 1)
	var createdAll time.Time
	go func() {
		if kind == "deployment" {
			_, err := cs.AppsV1().Deployments(benchNS).Create(ctx, deployment("bench-"+target, p, labels, selector), metav1.CreateOptions{})
			errc <- err
			return
		}
		err := createBarePods(ctx, cs, "bench-"+target, p, labels, func(int) string { return node }, &mu, created)
		mu.Lock()
		createdAll = time.Now()
		mu.Unlock()
		errc <- err
	}()

	timeout := time.After(time.Duration(60+p/2) * time.Second)
	var lastReady time.Time
	for len(ready) < p {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case err := <-errc:
			if err != nil {
				return res, fmt.Errorf("creating pods: %w", err)
			}
		case <-timeout:
			return res, fmt.Errorf("only %d/%d pods Ready on %s before the timeout", len(ready), p, node)
		case ev := <-events:
			if ev.deleted {
				continue
			}
			pod, now := ev.pod, ev.at
			mu.Lock()
			if _, seen := created[pod.Name]; !seen {
				created[pod.Name] = now
				if kind == "deployment" && len(created) == p {
					createdAll = now
				}
			}
			if _, done := ready[pod.Name]; !done && podReady(pod) {
				ready[pod.Name] = now
				lastReady = now
			}
			mu.Unlock()
		}
	}
	if hooks.ready != nil {
		if err := hooks.ready(); err != nil {
			return res, err
		}
	}
	mu.Lock()
	for name, r := range ready {
		res.Latencies = append(res.Latencies, r.Sub(created[name]).Seconds())
	}
	mu.Unlock()
	lat := res.Latencies
	sort.Float64s(lat)
	res.P50, res.P90, res.P99, res.Max = pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1]
	res.AllReady = lastReady.Sub(start).Seconds()
	res.PodsPerSec = float64(p) / res.AllReady
	mu.Lock()
	if !createdAll.IsZero() {
		res.Created = createdAll.Sub(start).Seconds()
	}
	mu.Unlock()
	if hooks.during != nil {
		if err := hooks.during(); err != nil {
			return res, err
		}
	}

	// Delete and wait until every pod is gone.
	dstart := time.Now()
	if kind == "deployment" {
		if err := deleteDeployment(ctx, cs, "bench-"+target); err != nil {
			return res, err
		}
	}
	if err := deleteAndWait(ctx, cs, sel, time.Duration(120+p/2)*time.Second); err != nil {
		return res, err
	}
	res.Delete = time.Since(dstart).Seconds()
	return res, nil
}

func deleteDeployment(ctx context.Context, cs kubernetes.Interface, name string) error {
	bg := metav1.DeletePropagationBackground
	err := cs.AppsV1().Deployments(benchNS).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// deleteAndWait deletes the pods matching sel and polls until none is
// left.
func deleteAndWait(ctx context.Context, cs kubernetes.Interface, sel string, timeout time.Duration) error {
	dstart := time.Now()
	deadline := time.Now().Add(timeout)
	// The API server deletes a collection one pod at a time
	// (--delete-collection-workers 1) and gives up after its request
	// timeout (60 s), which thousands of pods exceed; the pods it reached
	// stay deleted, so the call is repeated until it completes.
	for {
		err := cs.CoreV1().Pods(benchNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
		if err == nil {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("deleting pods %s: %w", sel, err)
		}
		logf("deleting pods %s: %v (repeating)", sel, err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return waitGone(ctx, cs, sel, dstart, deadline)
}

// waitGone polls until no pod matches sel.
func waitGone(ctx context.Context, cs kubernetes.Interface, sel string, dstart, deadline time.Time) error {
	for {
		// One item is enough to know pods are left; a full list of
		// thousands of pods every 250 ms would load the API server the
		// bench measures.
		l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: 1})
		if err == nil && len(l.Items) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			n := -1
			if all, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel}); err == nil {
				n = len(all.Items)
			}
			return fmt.Errorf("%d pods still present %s after deletion", n, time.Since(dstart).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podEvent is a pod as the watch saw it, and when.
type podEvent struct {
	pod     *corev1.Pod
	deleted bool
	at      time.Time
}

// watchPods streams the pods matching sel (list, then watch, re-watching
// from the last resourceVersion whenever the watch ends) until ctx ends.
// After a watch error it re-lists; pods deleted meanwhile are then not
// reported as deleted, so callers confirm a final state with a List.
func watchPods(ctx context.Context, cs kubernetes.Interface, sel string) (<-chan podEvent, error) {
	l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	out := make(chan podEvent, 4096)
	send := func(pod *corev1.Pod, deleted bool) {
		select {
		case out <- podEvent{pod: pod, deleted: deleted, at: time.Now()}:
		case <-ctx.Done():
		}
	}
	go func() {
		for i := range l.Items {
			send(&l.Items[i], false)
		}
		rv := l.ResourceVersion
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Pods(benchNS).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					logf("pod watch: %v (retrying)", err)
				}
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					if ctx.Err() != nil {
						break
					}
					logf("pod watch error: %v (re-listing)", apierrors.FromObject(ev.Object))
					rv = ""
					break
				}
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				rv = pod.ResourceVersion
				if ev.Type == watch.Bookmark {
					continue
				}
				send(pod, ev.Type == watch.Deleted)
			}
			w.Stop()
			if rv == "" && ctx.Err() == nil {
				if l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel}); err == nil {
					rv = l.ResourceVersion
					for i := range l.Items {
						send(&l.Items[i], false)
					}
				}
			}
		}
	}()
	return out, nil
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= len(sorted) {
		rank = len(sorted) - 1
	}
	return sorted[rank]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// callsText is the manager's per-pod API calls for the log line.
func callsText(r phaseResult) string {
	if r.KubeCallsPerPod == nil {
		return ""
	}
	return fmt.Sprintf("; manager calls per pod: kube %s, flightctl %s", fmtCounts(r.KubeCallsPerPod), fmtCounts(r.FlightctlCallsPerPod))
}

func fmtCounts(m map[string]float64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%.2f", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// deletePods deletes the named pods with 32 concurrent clients, as
// createBarePods creates them, so that deleting thousands of pods measures
// the nodes rather than the API server's one-worker collection deletion.
func deletePods(ctx context.Context, cs kubernetes.Interface, names []string) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var firstErr error
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(name string) {
			defer wg.Done()
			defer func() { <-sem }()
			err := cs.CoreV1().Pods(benchNS).Delete(ctx, name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(name)
	}
	wg.Wait()
	return firstErr
}
