// Command vkbench compares vk-flightctl's virtual node with a KWOK fake
// node on the same local control plane (GitHub issue 8, first slice):
// pod creation-to-Ready latency (p50/p90/p99) and throughput for bare pods
// (nodeName set) and a Deployment (nodeSelector), Flightctl API calls per
// status poll and the manager's peak RSS.
//
// It reuses test/quickstart.Stack for the control plane, the default
// simulator, the manager and its RBAC, then starts a second simulator with
// N generated devices and instant agents (--agent-delay 0 --render-delay 0)
// bound by a FleetBinding "bench", and kwok managing a fake node labelled
// bench.vk-flightctl.io/target=kwok with the vk node's allocatable.
//
// Usage: go run ./bench/cmd/vkbench [-quick] [-pods P] [-devices N] [-reps R]
// (BENCH_QUICK=1 is the same as -quick).
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

const (
	benchFleet   = "bench"
	benchNS      = "vkbench"
	kwokNode     = "kwok-bench"
	targetLabel  = "bench.vk-flightctl.io/target"
	pollInterval = time.Second
	benchImage   = "quay.io/vkbench/pause:3.10"
)

type config struct {
	Quick   bool `json:"quick"`
	Pods    int  `json:"pods"`
	Devices int  `json:"devices"`
	Reps    int  `json:"repetitions"`
}

// phaseResult is one measurement: P pods on one target, bare or Deployment.
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
	Delete     float64 `json:"deleteSeconds"`
}

type report struct {
	Time          time.Time                 `json:"time"`
	Config        config                    `json:"config"`
	Runs          []phaseResult             `json:"runs"`
	Medians       map[string]phaseResult    `json:"medians"`
	Ratios        map[string]map[string]any `json:"ratiosVkOverKwok"`
	APICallsPoll  float64                   `json:"flightctlCallsPerPoll"`
	APIWindow     float64                   `json:"flightctlStatsWindowSeconds"`
	APIRequests   map[string]float64        `json:"flightctlRequestsInWindow"`
	ManagerVmHWM  string                    `json:"managerVmHWM"`
	ManagerVmRSS  string                    `json:"managerVmRSS"`
	TargetsMet    map[string]bool           `json:"targetsMet"`
	ManagerLog    string                    `json:"managerLog"`
	KwokVersion   string                    `json:"kwokVersion"`
	VKAllocatable corev1.ResourceList       `json:"nodeAllocatable"`
}

func main() {
	var cfg config
	flag.BoolVar(&cfg.Quick, "quick", os.Getenv("BENCH_QUICK") == "1", "quick mode (CI): 20 pods over 4 devices, 1 repetition")
	flag.IntVar(&cfg.Pods, "pods", 0, "pods per phase (default 20 quick, 500 full)")
	flag.IntVar(&cfg.Devices, "devices", 0, "simulated devices (default 4 quick, 100 full)")
	flag.IntVar(&cfg.Reps, "reps", 0, "repetitions (default 1 quick, 3 full); medians are reported")
	flag.Parse()
	def := func(v *int, quick, full int) {
		if *v <= 0 {
			*v = full
			if cfg.Quick {
				*v = quick
			}
		}
	}
	def(&cfg.Pods, 20, 500)
	def(&cfg.Devices, 4, 100)
	def(&cfg.Reps, 1, 3)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "vkbench:", err)
		os.Exit(1)
	}
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func logf(format string, args ...any) {
	fmt.Printf("[vkbench %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(ctx context.Context, cfg config) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	state := filepath.Join(root, ".local", "bench")
	_ = os.RemoveAll(filepath.Join(state, "state"))
	if err := os.MkdirAll(filepath.Join(state, "state"), 0o755); err != nil {
		return err
	}
	kwokBin := filepath.Join(root, "bin", "kwok")
	for _, f := range []string{kwokBin, filepath.Join(root, "bin", "kwok-stages.yaml")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: run hack/build-kwok.sh", f)
		}
	}
	stackLog, err := os.Create(filepath.Join(state, "stack.log"))
	if err != nil {
		return err
	}
	defer stackLog.Close()
	stack, err := quickstart.NewStack(quickstart.StackConfig{
		Root: root, StateDir: filepath.Join(state, "state"), BinDir: filepath.Join(root, "bin"),
		ClusterDir:       filepath.Join(state, "cluster"),
		ReconnectTimeout: 5 * time.Minute, StatusPollInterval: 5 * time.Second,
		Out: stackLog,
	})
	if err != nil {
		return err
	}
	if err := stack.StartReaper(""); err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		logf("stopping everything")
		for i := len(procs) - 1; i >= 0; i-- {
			stopProc(procs[i])
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer dcancel()
		if derr := stack.Down(dctx); derr != nil {
			logf("teardown: %v", derr)
		}
	}()

	logf("starting control plane, simulator and manager (log %s)", stackLog.Name())
	t0 := time.Now()
	if err := stack.Up(ctx); err != nil {
		return fmt.Errorf("stack up: %w (see %s)", err, stackLog.Name())
	}
	logf("stack up in %s", time.Since(t0).Round(time.Millisecond))

	kc, err := clientcmd.BuildConfigFromFlags("", stack.Kubeconfig)
	if err != nil {
		return err
	}
	kc.QPS, kc.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(kc)
	if err != nil {
		return err
	}

	// Bench simulator: N generated devices, instant agents.
	sim, err := startSim(ctx, state, stack.SimBin, cfg.Devices)
	if err != nil {
		return err
	}
	procs = append(procs, sim.cmd)
	logf("bench simulator with %d devices at %s", cfg.Devices, sim.url)

	if err := applyBinding(ctx, stack, cs, sim, state, cfg); err != nil {
		return err
	}
	vkNode := "vk-flightctl-" + benchFleet
	node, err := waitNodeReady(ctx, cs, vkNode, 2*time.Minute, func(n *corev1.Node) bool {
		cpu := n.Status.Capacity[corev1.ResourceCPU]
		want := resource.MustParse(strconv.Itoa(4 * cfg.Devices))
		return cpu.Cmp(want) == 0
	})
	if err != nil {
		return fmt.Errorf("%w\nmanager log:\n%s", err, quickstart.TailFile(stack.ManagerLog, 30))
	}
	logf("node %s Ready: allocatable cpu=%s memory=%s pods=%s", vkNode,
		node.Status.Allocatable.Cpu(), node.Status.Allocatable.Memory(), node.Status.Allocatable.Pods())

	kwok, err := startKwok(ctx, kwokBin, stack.Kubeconfig, state)
	if err != nil {
		return err
	}
	procs = append(procs, kwok)
	if err := createKwokNode(ctx, cs, node); err != nil {
		return err
	}
	if _, err := waitNodeReady(ctx, cs, kwokNode, time.Minute, nil); err != nil {
		return fmt.Errorf("%w\nkwok log:\n%s", err, quickstart.TailFile(filepath.Join(state, "kwok.log"), 30))
	}
	logf("kwok node %s Ready", kwokNode)

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// The namespace's default ServiceAccount must exist before pods can be created.
	for i := 0; ; i++ {
		if _, err := cs.CoreV1().ServiceAccounts(benchNS).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if i > 100 {
			return errors.New("namespace has no default ServiceAccount after 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	rep := report{Time: time.Now().UTC(), Config: cfg, KwokVersion: "v0.8.0", VKAllocatable: node.Status.Allocatable, ManagerLog: stack.ManagerLog}
	targets := []struct {
		name, node string
		selector   map[string]string
	}{
		{"vk", vkNode, map[string]string{"flightctl.io/fleet": benchFleet}},
		{"kwok", kwokNode, map[string]string{targetLabel: "kwok"}},
	}
	for r := 1; r <= cfg.Reps; r++ {
		for _, t := range targets {
			for _, kind := range []string{"bare", "deployment"} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res, err := measure(ctx, cs, t.name, t.node, t.selector, kind, cfg.Pods, func() error {
					// Steady window with P pods running, last vk repetition.
					if t.name == "vk" && kind == "deployment" && r == cfg.Reps {
						return apiStats(ctx, sim, &rep, cfg.Quick)
					}
					return nil
				})
				if err != nil {
					return fmt.Errorf("rep %d %s %s: %w", r, t.name, kind, err)
				}
				logf("rep %d %-4s %-10s p50=%.3fs p90=%.3fs p99=%.3fs max=%.3fs %.1f pods/s (all Ready %.2fs, deleted in %.2fs)",
					r, t.name, kind, res.P50, res.P90, res.P99, res.Max, res.PodsPerSec, res.AllReady, res.Delete)
				rep.Runs = append(rep.Runs, res)
			}
		}
	}
	if pid, err := os.ReadFile(filepath.Join(state, "state", "manager.pid")); err == nil {
		rep.ManagerVmHWM, rep.ManagerVmRSS = procMem(strings.TrimSpace(string(pid)))
	}
	summarize(&rep)
	printTable(os.Stdout, &rep)
	return writeJSON(root, &rep)
}

// ------------------------------------------------------------ simulator

type simProc struct {
	cmd        *exec.Cmd
	url, token string
	client     *http.Client
}

func startSim(ctx context.Context, state, bin string, devices int) (*simProc, error) {
	cfgPath := filepath.Join(state, "sim-config.yaml")
	conf := fmt.Sprintf(`generate:
  - prefix: bench-
    count: %d
    labels: {fleet: %s}
    cpu: 4
    memory: 8Gi
    ipStart: 198.18.0.1
`, devices, benchFleet)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ca := filepath.Join(state, "sim-ca.crt")
	_ = os.Remove(ca)
	cmd, err := startProc(filepath.Join(state, "bench-sim.log"), bin, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--token", token,
		"--tls", "--ca-out", ca, "--config", cfgPath, "--agent-delay", "0", "--render-delay", "0", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	s := &simProc{cmd: cmd, url: "https://127.0.0.1:" + strconv.Itoa(port), token: token}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pem, err := os.ReadFile(ca); err == nil && len(pem) > 0 {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				var out map[string]any
				if err := s.do(ctx, http.MethodGet, "/api/v1/devices?limit=1", &out); err == nil {
					return s, nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopProc(cmd)
			return nil, fmt.Errorf("bench simulator not ready after 30s:\n%s", quickstart.TailFile(filepath.Join(state, "bench-sim.log"), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *simProc) do(ctx context.Context, method, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, body)
	}
	if into == nil || len(body) == 0 {
		return nil
	}
	return json.Unmarshal(body, into)
}

// apiStats measures Flightctl API requests over a steady window.
func apiStats(ctx context.Context, sim *simProc, rep *report, quick bool) error {
	window := 10 * time.Second
	if quick {
		window = 5 * time.Second
	}
	if err := sim.do(ctx, http.MethodPost, "/sim/v1/stats/reset", nil); err != nil {
		return err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	var st struct {
		Requests map[string]float64 `json:"requests"`
	}
	if err := sim.do(ctx, http.MethodGet, "/sim/v1/stats", &st); err != nil {
		return err
	}
	el := time.Since(start)
	total := 0.0
	api := map[string]float64{}
	for k, v := range st.Requests {
		if strings.HasPrefix(k, "sim.") {
			continue // the simulator's control API (stats reset)
		}
		api[k] = v
		total += v
	}
	rep.APIWindow = el.Seconds()
	rep.APIRequests = api
	rep.APICallsPoll = total / (el.Seconds() / pollInterval.Seconds())
	logf("Flightctl API: %.0f requests in %.1fs (%v) = %.2f per %s poll", total, el.Seconds(), api, rep.APICallsPoll, pollInterval)
	return nil
}

func applyBinding(ctx context.Context, stack *quickstart.Stack, cs kubernetes.Interface, sim *simProc, state string, cfg config) error {
	ca, err := os.ReadFile(filepath.Join(state, "sim-ca.crt"))
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-flightctl-credentials", Namespace: quickstart.DefaultBindingNamespace},
		StringData: map[string]string{"api-url": sim.url, "auth-token": sim.token, "ca.crt": string(ca)},
	}
	if _, err := cs.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return err
	}
	maxPods := 2*cfg.Pods + 10
	if maxPods < 110 {
		maxPods = 110
	}
	manifest := fmt.Sprintf(`apiVersion: vk.flightctl.io/v1alpha1
kind: FleetBinding
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  fleet: %[1]s
  deviceSelector: fleet=%[1]s
  flightctl:
    credentialsSecretRef:
      name: bench-flightctl-credentials
  deviceReserve: {cpu: 250m, memory: 512Mi}
  statusPollInterval: %[3]s
  reconnectTimeout: 5m
  maxPods: %[4]d
  applicationFormat: quadlet
`, benchFleet, quickstart.DefaultBindingNamespace, pollInterval, maxPods)
	path := filepath.Join(state, "fleetbinding.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		return err
	}
	out, err := stack.KubectlOutput(ctx, "apply", "-f", path)
	if err != nil {
		return fmt.Errorf("kubectl apply FleetBinding: %w: %s", err, out)
	}
	return nil
}

// ------------------------------------------------------------ kwok

func startKwok(ctx context.Context, bin, kubeconfig, state string) (*exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startProc(filepath.Join(state, "kwok.log"), bin,
		"--kubeconfig", kubeconfig,
		"--config", filepath.Join(filepath.Dir(bin), "kwok-stages.yaml"),
		"--node-lease-duration-seconds", "40",
		"--manage-all-nodes=false",
		"--manage-nodes-with-label-selector", targetLabel+"=kwok",
		"--node-ip", "127.0.0.1",
		"--cidr", "10.64.0.0/16",
		"--server-address", "127.0.0.1:"+strconv.Itoa(port),
	)
}

func createKwokNode(ctx context.Context, cs kubernetes.Interface, vk *corev1.Node) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        kwokNode,
			Labels:      map[string]string{targetLabel: "kwok", "type": "kwok", "kubernetes.io/hostname": kwokNode},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    vk.Status.Capacity.DeepCopy(),
			Allocatable: vk.Status.Allocatable.DeepCopy(),
		},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if len(created.Status.Allocatable) == 0 {
		created.Status.Capacity, created.Status.Allocatable = n.Status.Capacity, n.Status.Allocatable
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	}
	return err
}

func waitNodeReady(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration, extra func(*corev1.Node) bool) (*corev1.Node, error) {
	deadline := time.Now().Add(timeout)
	last := "not found"
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = fmt.Sprintf("capacity %v", n.Status.Capacity)
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && (extra == nil || extra(n)) {
					return n, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node %s not Ready after %s (%s)", name, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
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

// measure creates P pods on one target (bare pods with nodeName, or a
// Deployment selecting the node), times each pod from creation to the first
// time the watch sees it Ready, runs during() once all are Ready, then
// deletes them and waits until they are gone.
func measure(ctx context.Context, cs kubernetes.Interface, target, node string, selector map[string]string, kind string, p int, during func() error) (phaseResult, error) {
	res := phaseResult{Target: target, Kind: kind, Pods: p}
	runLabel := fmt.Sprintf("%s-%s-%d", target, kind, time.Now().UnixNano()%1e6)
	sel := "bench-run=" + runLabel
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	pods, err := watchPods(wctx, cs, sel)
	if err != nil {
		return res, err
	}

	var mu sync.Mutex
	created := map[string]time.Time{} // first sighting (or client-side create time)
	ready := map[string]time.Time{}
	start := time.Now()
	labels := map[string]string{"bench-run": runLabel, "app": "vkbench"}
	errc := make(chan error, 1)
	go func() {
		if kind == "deployment" {
			replicas := int32(p)
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "bench-" + target, Namespace: benchNS},
				Spec: appsv1.DeploymentSpec{
					Replicas: &replicas,
					Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec("", selector)},
				},
			}
			_, err := cs.AppsV1().Deployments(benchNS).Create(ctx, d, metav1.CreateOptions{})
			errc <- err
			return
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		var firstErr error
		var emu sync.Mutex
		for i := 0; i < p; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				name := fmt.Sprintf("bench-%s-%04d", target, i)
				t := time.Now()
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS, Labels: labels}, Spec: podSpec(node, nil)}
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
		errc <- firstErr
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
		case pod := <-pods:
			now := time.Now()
			mu.Lock()
			if _, seen := created[pod.Name]; !seen {
				created[pod.Name] = now
			}
			if _, done := ready[pod.Name]; !done && podReady(pod) {
				ready[pod.Name] = now
				lastReady = now
			}
			mu.Unlock()
		}
	}
	var lat []float64
	mu.Lock()
	for name, r := range ready {
		lat = append(lat, r.Sub(created[name]).Seconds())
	}
	mu.Unlock()
	sort.Float64s(lat)
	res.P50, res.P90, res.P99, res.Max = pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1]
	res.AllReady = lastReady.Sub(start).Seconds()
	res.PodsPerSec = float64(p) / res.AllReady
	if err := during(); err != nil {
		return res, err
	}

	// Delete and wait until every pod is gone.
	dstart := time.Now()
	bg := metav1.DeletePropagationBackground
	if kind == "deployment" {
		if err := cs.AppsV1().Deployments(benchNS).Delete(ctx, "bench-"+target, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil {
			return res, err
		}
	}
	if err := cs.CoreV1().Pods(benchNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil {
		return res, err
	}
	ddeadline := time.Now().Add(time.Duration(120+p/2) * time.Second)
	for {
		l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err == nil && len(l.Items) == 0 {
			break
		}
		if time.Now().After(ddeadline) {
			return res, fmt.Errorf("%d pods still present %s after deletion", len(l.Items), time.Since(dstart).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.Delete = time.Since(dstart).Seconds()
	return res, nil
}

// watchPods streams the pods matching sel (list, then watch, re-watching
// from the last resourceVersion whenever the watch ends) until ctx ends.
func watchPods(ctx context.Context, cs kubernetes.Interface, sel string) (<-chan *corev1.Pod, error) {
	l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	out := make(chan *corev1.Pod, 4096)
	go func() {
		rv := l.ResourceVersion
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Pods(benchNS).Watch(ctx, metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				logf("pod watch: %v (retrying)", err)
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
				if ev.Type == watch.Deleted || ev.Type == watch.Bookmark {
					continue
				}
				select {
				case out <- pod:
				case <-ctx.Done():
				}
			}
			w.Stop()
			if rv == "" && ctx.Err() == nil {
				if l, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{LabelSelector: sel}); err == nil {
					rv = l.ResourceVersion
					for i := range l.Items {
						select {
						case out <- &l.Items[i]:
						case <-ctx.Done():
						}
					}
				}
			}
		}
	}()
	return out, nil
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	// nearest-rank
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

func summarize(rep *report) {
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
			Delete: col(func(r phaseResult) float64 { return r.Delete })}
	}
	for _, kind := range []string{"bare", "deployment"} {
		vk, kw := rep.Medians["vk/"+kind], rep.Medians["kwok/"+kind]
		div := func(a, b float64) float64 {
			if b == 0 {
				return 0
			}
			return a / b
		}
		rep.Ratios[kind] = map[string]any{
			"p50": div(vk.P50, kw.P50), "p90": div(vk.P90, kw.P90), "p99": div(vk.P99, kw.P99),
			"podsPerSecond": div(vk.PodsPerSec, kw.PodsPerSec),
		}
		rep.TargetsMet[kind+": vk p99 <= 1.5s"] = vk.P99 <= 1.5
		rep.TargetsMet[kind+": vk throughput >= 50% of kwok"] = div(vk.PodsPerSec, kw.PodsPerSec) >= 0.5
	}
}

func printTable(w io.Writer, rep *report) {
	mode := "full"
	if rep.Config.Quick {
		mode = "quick"
	}
	fmt.Fprintf(w, "\nvk-flightctl vs KWOK — %s mode: %d pods per phase, %d devices, %d repetition(s) (medians), poll %s\n\n",
		mode, rep.Config.Pods, rep.Config.Devices, rep.Config.Reps, pollInterval)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttarget\tp50 s\tp90 s\tp99 s\tmax s\tpods/s\tall Ready s\tdelete s\t")
	for _, kind := range []string{"bare", "deployment"} {
		for _, t := range []string{"vk", "kwok"} {
			m := rep.Medians[t+"/"+kind]
			fmt.Fprintf(tw, "%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%.2f\t%.2f\t\n", kind, t, m.P50, m.P90, m.P99, m.Max, m.PodsPerSec, m.AllReady, m.Delete)
		}
		r := rep.Ratios[kind]
		fmt.Fprintf(tw, "%s\tvk/kwok\t%.2fx\t%.2fx\t%.2fx\t\t%.2fx\t\t\t\n", kind, r["p50"], r["p90"], r["p99"], r["podsPerSecond"])
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nFlightctl API calls per poll (steady, %d pods running): %.2f over %.1fs %v\n", rep.Config.Pods, rep.APICallsPoll, rep.APIWindow, rep.APIRequests)
	fmt.Fprintf(w, "manager VmHWM %s (VmRSS %s)\n\ntargets:\n", rep.ManagerVmHWM, rep.ManagerVmRSS)
	keys := make([]string, 0, len(rep.TargetsMet))
	for k := range rep.TargetsMet {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mark := "MET"
		if !rep.TargetsMet[k] {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %-6s %s\n", mark, k)
	}
}

func writeJSON(root string, rep *report) error {
	dir := filepath.Join(root, "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, rep.Time.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s\n", path)
	return nil
}

// ------------------------------------------------------------ processes

func procMem(pid string) (hwm, rss string) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "", ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
	}
	return hwm, rss
}

// startProc starts a process in its own process group that the kernel
// kills if this program dies.
func startProc(logPath, bin string, args ...string) (*exec.Cmd, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

func stopProc(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
