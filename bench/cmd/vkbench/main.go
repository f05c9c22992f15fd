// Command vkbench compares vk-flightctl's virtual node with a KWOK fake
// node on the same local control plane (GitHub issue 8) and measures
// vk-flightctl alone where KWOK has no equivalent.
//
// Workloads (-workloads, default all, in this order):
//
//   - start: pod creation-to-Ready latency (p50/p90/p99) and throughput
//     for bare pods (nodeName set) and a Deployment (nodeSelector), on vk
//     and KWOK, repeated -reps times (medians), plus Flightctl API calls
//     per status pass; -pprof captures the manager's CPU profile during
//     the first vk bare-pod run; a PNG of the latency CDFs is written;
//   - churn: a rolling image update of a P-replica Deployment and its
//     deletion, on vk and KWOK: time until every pod runs the new image
//     and no old pod is left, and until every pod is gone;
//   - disconnect (vk only): a device holding D Deployment pods goes away;
//     time from the reconnect timeout until every replica runs on another
//     device;
//   - scale (vk only): S bare pods over N devices in B FleetBindings:
//     manager peak RSS and CPU seconds, status loop duration, Flightctl
//     API calls and bytes per status pass and per pod (-pprof: a CPU
//     profile of the steady window).
//
// It reuses test/quickstart.Stack for the control plane, the default
// simulator, the manager and its RBAC, then starts its own simulators
// with generated devices and instant agents (--agent-delay 0
// --render-delay 0) that spend a real Flightctl's server time per request
// (--cost-model real-v1.2 unless -cost-model off), its FleetBindings, and kwok managing a fake node
// labelled bench.vk-flightctl.io/target=kwok with the vk node's
// allocatable. Numbers are printed and written to bench/results, never
// asserted: machines are noisy.
//
// With -flightctl real (make bench FLIGHTCTL=real, hack/bench-real.sh) it
// runs instead the start workload and steady windows against a real
// Flightctl v1.2.0 with fake devices enrolled over its agent endpoint, and
// reports the server's CPU and the manager's bytes per minute (real.go).
//
// Usage: go run ./bench/cmd/vkbench [-quick] [-workloads start,churn,disconnect,scale]
// [-pods P] [-devices N] [-reps R] [-dx-pods D] [-scale-pods S -scale-devices N -scale-bindings B] [-pprof]
// [-cost-model real-v1.2|off] [-flightctl sim|real [-real-window D] [-real-heartbeat D]]
// (BENCH_QUICK=1 is the same as -quick).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

const (
	benchFleet   = "bench"
	benchNS      = "vkbench"
	kwokNode     = "kwok-bench"
	targetLabel  = "bench.vk-flightctl.io/target"
	pollInterval = time.Second
	benchImage   = "quay.io/vkbench/pause:3.10"
	// churnImage is what the rolling update moves to: any other
	// registry-qualified image, nothing is pulled.
	churnImage = "quay.io/vkbench/pause:3.10-churn"
)

// The workloads, in the order they run. Scale runs last because the
// manager's VmHWM is a lifetime peak: measured after the largest load.
const (
	wlStart      = "start"
	wlChurn      = "churn"
	wlDisconnect = "disconnect"
	wlScale      = "scale"
)

var allWorkloads = []string{wlStart, wlChurn, wlDisconnect, wlScale}

type config struct {
	Quick     bool     `json:"quick"`
	Workloads []string `json:"workloads"`
	// Start and churn workloads.
	Pods    int `json:"pods"`
	Devices int `json:"devices"`
	Reps    int `json:"repetitions"`
	// Disconnect workload: pods on the device that goes away.
	DisconnectPods int `json:"disconnectPods"`
	// Scale workload.
	ScalePods     int `json:"scalePods"`
	ScaleDevices  int `json:"scaleDevices"`
	ScaleBindings int `json:"scaleBindings"`
	// Pprof captures CPU profiles of the manager during the first vk
	// bare-pod run and the scale workload's steady window.
	Pprof bool `json:"pprof"`
	// CostModel is the simulators' --cost-model: real-v1.2 by default, so
	// that the bench's Flightctl costs what a real one does; off measures
	// the manager against an instant server.
	CostModel string `json:"costModel"`
	// Flightctl is sim (the bench simulators) or real: a real Flightctl
	// v1.2.0 from the environment (FLIGHTCTL_URL & co.), start workload
	// and steady windows only (real.go).
	Flightctl string `json:"flightctl"`
	// RealWindow is the length of each steady window against a real
	// Flightctl; RealHeartbeat the fake agents' status period.
	RealWindow    time.Duration `json:"realWindow,omitempty"`
	RealHeartbeat time.Duration `json:"realHeartbeat,omitempty"`
}

func (c config) runs(w string) bool {
	for _, x := range c.Workloads {
		if x == w {
			return true
		}
	}
	return false
}

func main() {
	var cfg config
	var workloads string
	flag.BoolVar(&cfg.Quick, "quick", os.Getenv("BENCH_QUICK") == "1", "quick mode (CI): small sizes, 1 repetition")
	flag.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "comma-separated workloads to run: "+strings.Join(allWorkloads, ", "))
	flag.IntVar(&cfg.Pods, "pods", 0, "pods per start and churn phase (default 20 quick, 500 full)")
	flag.IntVar(&cfg.Devices, "devices", 0, "simulated devices of the start and churn node (default 4 quick, 100 full)")
	flag.IntVar(&cfg.Reps, "reps", 0, "repetitions of the start workload (default 1 quick, 3 full); medians are reported")
	flag.IntVar(&cfg.DisconnectPods, "dx-pods", 0, "Deployment pods on the device that goes away (default 20 quick, 100 full)")
	flag.IntVar(&cfg.ScalePods, "scale-pods", 0, "pods of the scale workload (default 100 quick, 10000 full)")
	flag.IntVar(&cfg.ScaleDevices, "scale-devices", 0, "devices of the scale workload (default 20 quick, 1000 full)")
	flag.IntVar(&cfg.ScaleBindings, "scale-bindings", 0, "FleetBindings the scale workload spreads devices and pods over (default 2 quick, 10 full)")
	flag.BoolVar(&cfg.Pprof, "pprof", os.Getenv("BENCH_PPROF") == "1", "capture CPU profiles of the manager during the first vk bare-pod run and the scale workload's steady window (BENCH_PPROF=1)")
	flag.StringVar(&cfg.CostModel, "cost-model", flightctlsim.CostModelRealV12, "server cost model of the bench simulators: "+flightctlsim.CostModelRealV12+" (calibrated on a real Flightctl v1.2.0) or off (instant server)")
	defFlightctl := os.Getenv("FLIGHTCTL")
	if defFlightctl == "" {
		defFlightctl = "sim"
	}
	flag.StringVar(&cfg.Flightctl, "flightctl", defFlightctl, "sim (bench simulators) or real (a real Flightctl v1.2.0 named by FLIGHTCTL_URL, FLIGHTCTL_TOKEN, FLIGHTCTL_CA: start workload and steady windows; see bench/README.md)")
	flag.DurationVar(&cfg.RealWindow, "real-window", 0, "-flightctl real: length of each steady window (default 60s quick, 180s full)")
	flag.DurationVar(&cfg.RealHeartbeat, "real-heartbeat", 60*time.Second, "-flightctl real: status period of the fake agents (the real agent's default is 60s; the server marks a device silent for 5 min disconnected)")
	flag.Parse()
	if _, err := flightctlsim.CostModelByName(cfg.CostModel); err != nil {
		fmt.Fprintln(os.Stderr, "vkbench: -cost-model:", err)
		os.Exit(2)
	}
	def := func(v *int, quick, full int) {
		if *v <= 0 {
			*v = full
			if cfg.Quick {
				*v = quick
			}
		}
	}
	if cfg.Flightctl == "real" {
		// One pod per device: the 1,000-device steady state.
		def(&cfg.Devices, 20, 1000)
		def(&cfg.Pods, cfg.Devices, cfg.Devices)
		if cfg.RealWindow <= 0 {
			cfg.RealWindow = 180 * time.Second
			if cfg.Quick {
				cfg.RealWindow = 60 * time.Second
			}
		}
	}
	def(&cfg.Pods, 20, 500)
	def(&cfg.Devices, 4, 100)
	def(&cfg.Reps, 1, 3)
	def(&cfg.DisconnectPods, 20, 100)
	def(&cfg.ScalePods, 100, 10000)
	def(&cfg.ScaleDevices, 20, 1000)
	def(&cfg.ScaleBindings, 2, 10)
	for _, w := range strings.Split(workloads, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		known := false
		for _, a := range allWorkloads {
			known = known || a == w
		}
		if !known {
			fmt.Fprintf(os.Stderr, "vkbench: unknown workload %q; want some of %s\n", w, strings.Join(allWorkloads, ", "))
			os.Exit(2)
		}
		cfg.Workloads = append(cfg.Workloads, w)
	}
	if cfg.ScaleBindings > cfg.ScaleDevices {
		fmt.Fprintf(os.Stderr, "vkbench: -scale-bindings %d exceeds -scale-devices %d: every binding needs a device\n", cfg.ScaleBindings, cfg.ScaleDevices)
		os.Exit(2)
	}
	if cfg.Pprof && !cfg.runs(wlStart) && !cfg.runs(wlScale) {
		fmt.Fprintln(os.Stderr, "vkbench: -pprof profiles the start workload's vk bare-pod run and the scale workload's steady window: add start or scale to -workloads")
		os.Exit(2)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	runner := run
	switch cfg.Flightctl {
	case "sim":
	case "real":
		runner = runReal
	default:
		fmt.Fprintf(os.Stderr, "vkbench: -flightctl %q: want sim or real\n", cfg.Flightctl)
		os.Exit(2)
	}
	if err := runner(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "vkbench:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("[vkbench %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// bench is what the workloads share.
type bench struct {
	cfg     config
	root    string
	state   string // .local/bench
	stack   *quickstart.Stack
	cs      kubernetes.Interface
	sim     *simProc // the start/churn/disconnect simulator
	mgr     *managerProc
	rep     *report
	procs   []*exec.Cmd
	vkNode  *corev1.Node
	started time.Time
}

func run(ctx context.Context, cfg config) (err error) {
	root, err := quickstart.RepoRoot()
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, root: root, state: filepath.Join(root, ".local", "bench"), started: time.Now()}
	_ = os.RemoveAll(filepath.Join(b.state, "state"))
	if err := os.MkdirAll(filepath.Join(b.state, "state"), 0o755); err != nil {
		return err
	}
	kwokBin := filepath.Join(root, "bin", "kwok")
	for _, f := range []string{kwokBin, filepath.Join(root, "bin", "kwok-stages.yaml")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s missing: run hack/build-kwok.sh", f)
		}
	}
	stackLog, err := os.Create(filepath.Join(b.state, "stack.log"))
	if err != nil {
		return err
	}
	defer stackLog.Close()
	var mgrArgs []string
	pprofAddr := ""
	if cfg.Pprof {
		// Profiles are written mid-run, before the JSON report makes the
		// directory: a fresh clone has none.
		if err := os.MkdirAll(resultsDir(root), 0o755); err != nil {
			return err
		}
		port, err := freePort()
		if err != nil {
			return err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(port)
		mgrArgs = append(mgrArgs, "--pprof-bind-address", pprofAddr)
	}
	stack, err := quickstart.NewStack(quickstart.StackConfig{
		Root: root, StateDir: filepath.Join(b.state, "state"), BinDir: filepath.Join(root, "bin"),
		ClusterDir:       filepath.Join(b.state, "cluster"),
		ReconnectTimeout: 5 * time.Minute, StatusPollInterval: 5 * time.Second,
		ManagerArgs: mgrArgs,
		Out:         stackLog,
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

	logf("starting control plane, simulator and manager (log %s)", stackLog.Name())
	t0 := time.Now()
	if err := stack.Up(ctx); err != nil {
		return fmt.Errorf("stack up: %w (see %s)", err, stackLog.Name())
	}
	logf("stack up in %s", time.Since(t0).Round(time.Millisecond))
	b.mgr, err = findManager(filepath.Join(b.state, "state"), pprofAddr)
	if err != nil {
		return err
	}

	kc, err := clientcmd.BuildConfigFromFlags("", stack.Kubeconfig)
	if err != nil {
		return err
	}
	// The bench creates thousands of pods: client-side throttling must
	// not be what it measures.
	kc.QPS, kc.Burst = 500, 1000
	if b.cs, err = kubernetes.NewForConfig(kc); err != nil {
		return err
	}

	// Bench simulator: N generated devices with instant agents, plus the
	// disconnect workload's two devices. Disconnect detection is immediate
	// (a real server waits 5 minutes); connected agents are never marked.
	b.sim, err = startSim(ctx, b.state, "bench-sim", stack.SimBin, benchSimConfig(cfg), "--disconnect-detection", "0s", "--cost-model", cfg.CostModel)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, b.sim.cmd)
	logf("bench simulator with %d devices at %s", cfg.Devices, b.sim.url)

	// Room for P pods and P more terminating (a rolling update's old pods
	// hold their place until the device confirms their removal).
	maxPods := 2*cfg.Pods + 10
	if err := b.applyBinding(ctx, b.sim, "bench-flightctl-credentials", bindingSpec{Fleet: benchFleet, MaxPods: maxPods, ReconnectTimeout: "5m"}); err != nil {
		return err
	}
	vkNode := "vk-flightctl-" + benchFleet
	b.vkNode, err = waitNodeReady(ctx, b.cs, vkNode, 2*time.Minute, cpuIs(4*cfg.Devices))
	if err != nil {
		return fmt.Errorf("%w\nmanager log:\n%s", err, quickstart.TailFile(stack.ManagerLog, 30))
	}
	logf("node %s Ready: allocatable cpu=%s memory=%s pods=%s", vkNode,
		b.vkNode.Status.Allocatable.Cpu(), b.vkNode.Status.Allocatable.Memory(), b.vkNode.Status.Allocatable.Pods())

	if cfg.runs(wlStart) || cfg.runs(wlChurn) || cfg.runs(wlScale) {
		kwok, err := startKwok(kwokBin, stack.Kubeconfig, b.state)
		if err != nil {
			return err
		}
		b.procs = append(b.procs, kwok)
		if err := createKwokNode(ctx, b.cs, b.vkNode); err != nil {
			return err
		}
		if _, err := waitNodeReady(ctx, b.cs, kwokNode, time.Minute, nil); err != nil {
			return fmt.Errorf("%w\nkwok log:\n%s", err, quickstart.TailFile(filepath.Join(b.state, "kwok.log"), 30))
		}
		logf("kwok node %s Ready", kwokNode)
	}

	if err := ensureNamespace(ctx, b.cs); err != nil {
		return err
	}

	b.rep = &report{Time: time.Now().UTC(), Config: cfg, KwokVersion: "v0.8.0", VKAllocatable: b.vkNode.Status.Allocatable, ManagerLog: stack.ManagerLog}
	// A failing workload ends the run, but what was measured until then
	// is still printed and written: a 10k-pod run that fails late should
	// not lose the rest.
	var failed error
	for _, w := range allWorkloads {
		if !cfg.runs(w) {
			continue
		}
		if ctx.Err() != nil {
			failed = ctx.Err()
			break
		}
		ws := time.Now()
		logf("=== workload %s", w)
		var err error
		switch w {
		case wlStart:
			err = b.runStart(ctx)
		case wlChurn:
			err = b.runChurn(ctx)
		case wlDisconnect:
			err = b.runDisconnect(ctx)
		case wlScale:
			err = b.runScale(ctx)
		}
		b.rep.WorkloadSeconds = append(b.rep.WorkloadSeconds, workloadTime{w, time.Since(ws).Seconds()})
		if err != nil {
			failed = fmt.Errorf("workload %s: %w", w, err)
			b.rep.Error = failed.Error()
			break
		}
		logf("=== workload %s done in %s", w, time.Since(ws).Round(100*time.Millisecond))
	}
	b.rep.Manager = b.mgr.sample()
	summarize(b.rep)
	printTable(os.Stdout, b.rep)
	return errors.Join(failed, b.writeResults())
}

// ensureNamespace creates the bench namespace and waits for its default
// ServiceAccount, without which pods cannot be created.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface) error {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	for i := 0; ; i++ {
		if _, err := cs.CoreV1().ServiceAccounts(benchNS).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		if i > 100 {
			return errors.New("namespace has no default ServiceAccount after 20s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cpuIs is a node check: capacity cpu equals want (every device counted).
func cpuIs(want int) func(*corev1.Node) bool {
	return func(n *corev1.Node) bool {
		cpu := n.Status.Capacity[corev1.ResourceCPU]
		return cpu.Cmp(resource.MustParse(strconv.Itoa(want))) == 0
	}
}
