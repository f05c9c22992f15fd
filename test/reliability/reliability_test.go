package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// mode sizes a run: quick for CI (< 4 minutes on 2 cores), full for the
// soak (10-15 minutes).
type mode struct {
	name string
	// reconnectTimeout is the FleetBinding's spec.reconnectTimeout.
	reconnectTimeout time.Duration
	// churn is how long each fault phase churns.
	churn time.Duration
	// opEvery is the churn's pace: one operation per interval.
	opEvery time.Duration
	// unreachable is how long Flightctl is cut off.
	unreachable time.Duration
	// flaps, and the random ranges of each disconnection and of the
	// connected time between two (a disconnection stays well below the
	// reconnect timeout: no pod may be rescheduled).
	flaps            int
	flapDown, flapUp [2]time.Duration
	// restarts is how many times the manager is killed.
	restarts int
	// maxBare and maxReplicas bound the churn's pods.
	maxBare     int
	maxReplicas int32
	// extraDevices are registered beside the simulator's device-1 and
	// device-2, so the fleet has a few devices.
	extraDevices int
	// grace is how long past a missed bound the test keeps looking, to
	// tell "slow" from "never".
	grace time.Duration
}

var (
	quickMode = mode{
		name: "quick", reconnectTimeout: 10 * time.Second, churn: 6 * time.Second, opEvery: 250 * time.Millisecond,
		unreachable: 20 * time.Second, flaps: 3, flapDown: [2]time.Duration{1500 * time.Millisecond, 3 * time.Second},
		flapUp: [2]time.Duration{1500 * time.Millisecond, 3 * time.Second}, restarts: 3, maxBare: 8, maxReplicas: 4,
		extraDevices: 2, grace: 20 * time.Second,
	}
	fullMode = mode{
		name: "full", reconnectTimeout: 20 * time.Second, churn: 60 * time.Second, opEvery: 300 * time.Millisecond,
		unreachable: 2 * time.Minute, flaps: 10, flapDown: [2]time.Duration{time.Second, 8 * time.Second},
		flapUp: [2]time.Duration{time.Second, 5 * time.Second}, restarts: 10, maxBare: 14, maxReplicas: 6,
		extraDevices: 3, grace: 60 * time.Second,
	}
)

// The convergence bound once the system is healthy again: three status
// polls, plus the simulator's render delay and agent phases (the Stack runs
// flightctl-sim with its defaults: render 1 s, fetch, preparing and starting
// 1 s each), plus slack for a loaded 2-core machine.
const (
	statusPollInterval = time.Second
	simRenderDelay     = time.Second
	simAgentDelays     = 3 * time.Second
	boundSlack         = 3 * time.Second
	convergenceBound   = 3*statusPollInterval + simRenderDelay + simAgentDelays + boundSlack
	// soak is how long a converged state must hold: a late write that
	// re-creates a removed application, or a second copy, shows up here.
	soak = 2 * time.Second
)

func loadMode(t *testing.T) mode {
	switch m := os.Getenv("RELIABILITY_MODE"); m {
	case "", "quick":
		return quickMode
	case "full":
		return fullMode
	default:
		t.Fatalf("RELIABILITY_MODE=%q: want unset (quick), quick or full", m)
		return mode{}
	}
}

func TestReliability(t *testing.T) {
	m := loadMode(t)
	want, err := selectPhases(os.Getenv("RELIABILITY_PHASES"), phaseNames(m))
	if err != nil {
		t.Fatal(err)
	}
	if dl, ok := t.Deadline(); ok && m.name == "full" && want == nil && time.Until(dl) < 25*time.Minute {
		t.Fatalf("RELIABILITY_MODE=full runs 15-20 minutes but go test gives it %s: pass -timeout 40m", time.Until(dl).Round(time.Second))
	}
	h := setUp(t, m)
	defer h.printFigures()
	if want != nil {
		h.logf("RELIABILITY_PHASES=%s: running only those phases", os.Getenv("RELIABILITY_PHASES"))
	}

	for _, ph := range h.phases() {
		if want != nil && !want[ph.name] {
			continue
		}
		r := h.runPhase(ph)
		if r.fatal {
			t.Fatalf("phase %s left the system broken (see above); later phases would only repeat this failure", ph.name)
		}
	}
	notReady, observed, _, _ := h.watcher.report()
	if observed == 0 {
		t.Errorf("the node watcher never saw node %s", h.node)
	}
	if len(notReady) > 0 {
		t.Errorf("the virtual node %s left Ready %d time(s) (it must stay Ready through Flightctl faults and manager restarts):\n  %s",
			h.node, len(notReady), strings.Join(first(notReady, 20), "\n  "))
	}
	lost, dup, leaked, stale := h.workloadFigures()
	if lost+dup+leaked+stale > 0 {
		t.Errorf("workloads: lost %d, duplicated %d, leaked %d, stale %d (all must be 0; see the phases above)", lost, dup, leaked, stale)
	}
}

// ---------------------------------------------------------------- harness

type harness struct {
	t     *testing.T
	mode  mode
	seed  uint64
	rng   *rand.Rand
	tmp   string
	start time.Time

	stack   *quickstart.Stack
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	sim     *simClient
	mgr     managers
	model   *model
	churn   *churner
	watcher *nodeWatcher
	node    string
	devices []string

	mu             sync.Mutex
	results        []*phaseResult
	restarts       int
	handovers      int
	disconnects    int
	reconnects     int
	deletedDevices int
	statsStart     simStats
	statsEnd       simStats
}

func (h *harness) logf(format string, args ...any) {
	h.t.Helper()
	h.t.Logf("[%6.1fs] %s", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

// setUp brings up the stack (control plane, simulator, manager,
// FleetBinding) as test/e2e does, registers the devices and the churn's
// Deployment, and starts watching the node. Everything it starts is stopped
// by t.Cleanup, also on failure.
func setUp(t *testing.T, m mode) *harness {
	h := &harness{t: t, mode: m, start: time.Now()}
	h.seed = uint64(time.Now().UnixNano())
	if s := os.Getenv("RELIABILITY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("RELIABILITY_SEED=%q: %v", s, err)
		}
		h.seed = v
	}
	h.rng = rand.New(rand.NewPCG(h.seed, h.seed^0x5eed))
	h.logf("mode %s, seed %d (RELIABILITY_SEED=%d repeats the random choices)", m.name, h.seed, h.seed)

	root, err := quickstart.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	h.tmp, err = os.MkdirTemp("", "vk-flightctl-reliability-")
	if err != nil {
		t.Fatal(err)
	}
	keep := os.Getenv("RELIABILITY_KEEP") != ""
	t.Cleanup(func() {
		switch {
		case keep:
			t.Logf("everything kept in %s", h.tmp)
		case t.Failed():
			// The logs (state/, stack.log) explain the failure; the
			// binaries are 120 MB.
			_ = os.RemoveAll(filepath.Join(h.tmp, "bin"))
			t.Logf("logs kept in %s", h.tmp)
		default:
			_ = os.RemoveAll(h.tmp)
		}
	})
	narration, err := os.Create(filepath.Join(h.tmp, "stack.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = narration.Close() })

	stateDir := filepath.Join(h.tmp, "state")
	h.stack, err = quickstart.NewStack(quickstart.StackConfig{
		Root:               root,
		StateDir:           stateDir,
		BinDir:             filepath.Join(h.tmp, "bin"),
		ClusterDir:         filepath.Join(h.tmp, "cluster"),
		Kubeconfig:         filepath.Join(h.tmp, "kubeconfig"),
		K8sBinDir:          quickstart.K8sBinDir(root),
		ReconnectTimeout:   m.reconnectTimeout,
		StatusPollInterval: statusPollInterval,
		Out:                narration,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A missing prerequisite fails with instructions: make must not go
	// green without running the test.
	if err := h.stack.CheckPrerequisites(); err != nil {
		t.Fatalf("the reliability test cannot run: %v", err)
	}
	// Should this process die without cleanup (go test's timeout), the
	// reaper kills the manager in manager.pid and the simulator, takes the
	// control plane down and removes the temporary directory.
	reap := h.tmp
	if keep {
		reap = ""
	}
	if err := h.stack.StartReaper(reap); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !h.stack.Started() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.stack.Down(ctx); err != nil {
			t.Errorf("stopping the stack: %v", err)
		}
	})
	// Stack.Down stops every manager process, also those the phases
	// started, before it takes the control plane down.
	h.mgr = managers{stack: h.stack}

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	upStart := time.Now()
	if err := h.stack.Up(ctx); err != nil {
		t.Fatalf("bringing up the stack: %v\n%s\n%s\n%s", err, quickstart.TailFile(narration.Name(), 40),
			quickstart.TailFile(h.stack.ManagerLog, 40), quickstart.TailFile(h.stack.SimLog, 20))
	}
	h.logf("stack up in %s: control plane, flightctl-sim at %s, manager, FleetBinding (reconnectTimeout %s, statusPollInterval %s)",
		time.Since(upStart).Round(100*time.Millisecond), h.stack.SimURL, m.reconnectTimeout, statusPollInterval)
	h.node = h.stack.NodeName()

	// Diagnostics on failure run first (cleanups are LIFO), while
	// everything is still up.
	bgCtx, stopBg := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	t.Cleanup(func() {
		stopBg()
		bg.Wait()
	})
	t.Cleanup(func() {
		if t.Failed() {
			h.diagnostics()
		}
	})

	if h.sim, err = newSimClient(h.stack.SimURL, h.stack.SimToken, h.stack.SimCA); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", h.stack.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	if h.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if h.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}

	h.watcher = newNodeWatcher(h.kube, h.node)
	bg.Add(1)
	go func() { defer bg.Done(); h.watcher.run(bgCtx) }()

	if err := h.addDevices(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.model = newModel(2)
	if _, err := h.kube.AppsV1().Deployments(testNamespace).Create(ctx, deployment(quickstart.DefaultFleet, 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.churn = &churner{
		kube: h.kube, fleet: quickstart.DefaultFleet, model: h.model,
		rng: rand.New(rand.NewPCG(h.seed+1, h.seed^0xc4a7)), maxBare: m.maxBare, maxReplicas: m.maxReplicas, interval: m.opEvery,
	}
	if h.statsStart, err = h.sim.stats(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

// addDevices registers devices beside the simulator's two, as enrollment
// would (they report no CPU or memory: the binding's
// defaultDeviceCapacity applies), and waits until the binding uses them.
func (h *harness) addDevices(ctx context.Context) error {
	h.devices = []string{"device-1", "device-2"}
	for i := 0; i < h.mode.extraDevices; i++ {
		name := fmt.Sprintf("device-%d", 3+i)
		if err := h.registerDevice(ctx, name); err != nil {
			return err
		}
		h.devices = append(h.devices, name)
	}
	// device-1 and device-2 report 4 CPUs each; the others none, so they
	// count with the binding's defaultDeviceCapacity (2 CPUs).
	want := 8 + 2*h.mode.extraDevices
	took, err := h.waitNodeCPU(ctx, want)
	if err != nil {
		return err
	}
	h.logf("registered %d more devices; node %s has %d CPUs after %s", h.mode.extraDevices, h.node, want, took.Round(100*time.Millisecond))
	return nil
}

// waitNodeCPU waits until the virtual node's capacity has cpu CPUs.
func (h *harness) waitNodeCPU(ctx context.Context, cpu int) (time.Duration, error) {
	start := time.Now()
	last := ""
	for time.Since(start) < 60*time.Second {
		n, err := h.kube.CoreV1().Nodes().Get(ctx, h.node, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
		} else {
			q := n.Status.Capacity[corev1.ResourceCPU]
			last = "cpu " + q.String()
			if q.Value() == int64(cpu) {
				return time.Since(start), nil
			}
		}
		if err := h.pause(ctx, 200*time.Millisecond); err != nil {
			return time.Since(start), err
		}
	}
	return time.Since(start), fmt.Errorf("node %s capacity does not reach %d CPUs within 60s (last: %s)", h.node, cpu, last)
}

func (h *harness) registerDevice(ctx context.Context, name string) error {
	if err := h.sim.createDevice(ctx, name, map[string]string{"fleet": quickstart.DefaultFleet}); err != nil {
		return err
	}
	return h.sim.reconnect(ctx, name)
}

var fleetBindings = schema.GroupVersionResource{Group: vkv1.GroupVersion.Group, Version: vkv1.GroupVersion.Version, Resource: "fleetbindings"}

func (h *harness) binding(ctx context.Context) (*vkv1.FleetBinding, error) {
	u, err := h.dyn.Resource(fleetBindings).Namespace(quickstart.DefaultBindingNamespace).Get(ctx, quickstart.DefaultFleet, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var b vkv1.FleetBinding
	return &b, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b)
}

// waitOnline waits until the binding reports n devices online and none
// disconnected.
func (h *harness) waitOnline(ctx context.Context, n int) (time.Duration, error) {
	start := time.Now()
	last := ""
	for time.Since(start) < 60*time.Second {
		b, err := h.binding(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case b.Status.Devices == nil:
			last = "no status.devices yet"
		default:
			last = fmt.Sprintf("total %d, online %d, disconnected %d, status.disconnectedDevices %d",
				b.Status.Devices.Total, b.Status.Devices.Online, b.Status.Devices.Disconnected, len(b.Status.DisconnectedDevices))
			if int(b.Status.Devices.Online) == n && len(b.Status.DisconnectedDevices) == 0 {
				return time.Since(start), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return time.Since(start), fmt.Errorf("FleetBinding %s does not report %d devices online and none disconnected after 60s (last: %s)", quickstart.DefaultFleet, n, last)
}

// ---------------------------------------------------------------- phases

type phase struct {
	name  string
	fault string
	// allowReschedule: DeviceTimeout reschedules are expected (the phase
	// takes a device away for longer than the reconnect timeout).
	allowReschedule bool
	// extraBound is added to the convergence bound.
	extraBound time.Duration
	// drive injects the phase's faults while the churn runs, lifts them,
	// and returns when the system may be expected healthy again.
	drive func(ctx context.Context, r *phaseResult) (healthyAt time.Time, err error)
	// after runs once the phase converged.
	after func(ctx context.Context, r *phaseResult) error
	// check adds phase-specific invariants to every evaluation of the
	// converged state.
	check func(st *state, r *phaseResult) []violation
}

type phaseResult struct {
	// sharded is what the sharded phase set up, for its checks.
	sharded     *shardedRun
	name, fault string
	duration    time.Duration
	ops         opCounts
	stats       simStats
	notes       []string
	bound       time.Duration
	// converged is the time from healthy to converged; ok says it was
	// within bound.
	converged     time.Duration
	didConverge   bool
	ok            bool
	fatal         bool
	badReschedule bool
	reschedules   int
	lost, dup     int
	leaked, stale int
	notReadyNode  int
	// faultRequests counts the API requests made while a rate fault was on.
	faultRequests int64
	// sentinels are the pods created or re-imaged during the fault and
	// left alone by the churn afterwards.
	sentinels []string
	// quarantined are the pods force-deleted after the phase failed.
	quarantined []string
	// deleted is the device the device-deleted phase removed.
	deleted string
	// owned is the device the fleet-owned phase handed to a Flightctl
	// fleet, and ownedPods the pods it held then (uid -> name).
	owned     string
	ownedPods map[types.UID]string
	// heldPods are its bare pods then, which the churn leaves alone.
	heldPods []string
	// released is the device fleet-owned-brief gave back to vk-flightctl.
	released string
	// standbyLog and standbyOffset locate the log lines of the standby
	// manager the leader-handover phase leaves running; leaseHolder is the
	// identity that took the Lease over.
	standbyLog    string
	standbyOffset int64
	leaseHolder   string
	// failed: a phase-specific assertion failed (see fail).
	failed bool
}

func (r *phaseResult) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// fail reports a phase-specific assertion that does not hold; the phase
// fails but goes on, so its other figures are still measured.
func (h *harness) fail(r *phaseResult, format string, args ...any) {
	h.t.Helper()
	r.failed = true
	h.t.Errorf("phase %s: %s", r.name, fmt.Sprintf(format, args...))
}

func (h *harness) phases() []phase {
	m := h.mode
	return []phase{
		{name: "baseline", fault: "none", drive: h.sleepPhase},
		{name: "errors", fault: "10% of API requests answered 503", drive: h.rateFault(simFaults{ErrorRate: 0.1})},
		{name: "latency", fault: "500ms on every API request", drive: h.rateFault(simFaults{Latency: "500ms"})},
		{name: "conflicts", fault: "20% of device writes answered 409", drive: h.rateFault(simFaults{ConflictRate: 0.2})},
		{name: "unreachable", fault: fmt.Sprintf("Flightctl unreachable for %s", m.unreachable), drive: h.unreachable},
		{name: "flapping", fault: fmt.Sprintf("one device disconnected %d times (%s-%s each)", m.flaps, m.flapDown[0], m.flapDown[1]), drive: h.flap},
		{name: "restarts", fault: fmt.Sprintf("manager SIGKILLed %d times during churn", m.restarts), drive: h.restartManager},
		// After restarts: from here on two leader-elected managers run.
		{name: "leader-handover", fault: "2 elected managers; the leader SIGKILLed", drive: h.leaderHandover, after: h.checkHandover},
		// A fleet takes a device and gives it back before the reconnect
		// timeout: its pods must run there again, not be rescheduled.
		{name: "fleet-owned-brief", fault: fmt.Sprintf("device with pods owned by a fleet for %s", m.reconnectTimeout/4), extraBound: statusPollInterval,
			drive: h.briefTakeover, after: h.checkBriefTakeover},
		// The last two take a device away for longer than the reconnect
		// timeout: pods are rescheduled.
		{name: "fleet-owned", fault: "device with pods taken by Flightctl fleet", allowReschedule: true, extraBound: statusPollInterval,
			drive: h.fleetTakeover, after: h.releaseDevice, check: func(st *state, r *phaseResult) []violation { return reportedOwnedApps(st, r.owned) }},
		// Last: it is the most destructive phase.
		{name: "device-deleted", fault: "a device holding pods deleted from Flightctl", allowReschedule: true, extraBound: statusPollInterval,
			drive: h.deleteDevice, after: h.reregisterDevice},
		// After all others: from here on three sharded replicas run
		// ten bindings (docs/sharding.md).
		{name: "sharded", fault: "3 sharded replicas, 10 bindings; one SIGKILLed, one added", drive: h.sharded, check: h.checkShardedWorkloads},
	}
}

// phaseNames lists the phases in the order they run. The phase list is
// only a description (its functions are bound to the harness but not
// called), so it can be read before the stack is up to check
// RELIABILITY_PHASES.
func phaseNames(m mode) []string {
	var out []string
	for _, ph := range (&harness{mode: m}).phases() {
		out = append(out, ph.name)
	}
	return out
}

// selectPhases reads RELIABILITY_PHASES: comma-separated phase names, run
// in the test's own order whatever order they are given in; empty means
// every phase. An unknown name is an error listing the known ones.
func selectPhases(spec string, known []string) (map[string]bool, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	isKnown := map[string]bool{}
	for _, n := range known {
		isKnown[n] = true
	}
	want := map[string]bool{}
	var unknown []string
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case isKnown[n]:
			want[n] = true
		default:
			unknown = append(unknown, strconv.Quote(n))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("RELIABILITY_PHASES=%q: unknown phase(s) %s; the phases are %s", spec, strings.Join(unknown, ", "), strings.Join(known, ","))
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("RELIABILITY_PHASES=%q names no phase; the phases are %s", spec, strings.Join(known, ","))
	}
	return want, nil
}

// runPhase runs one phase: churn with the phase's faults, faults lifted,
// then convergence and the invariants.
func (h *harness) runPhase(ph phase) *phaseResult {
	t := h.t
	ctx := t.Context()
	r := &phaseResult{name: ph.name, fault: ph.fault, bound: convergenceBound + ph.extraBound}
	h.mu.Lock()
	h.results = append(h.results, r)
	h.mu.Unlock()
	start := time.Now()
	h.logf("=== phase %s: %s", ph.name, ph.fault)
	opsBefore := h.model.counts()
	statsBefore, err := h.sim.stats(ctx)
	if err != nil {
		t.Errorf("phase %s: reading simulator stats: %v", ph.name, err)
	}
	notReadyBefore, _, _, _ := h.watcher.report()
	timeoutsBefore, err := deviceTimeouts(ctx, h.kube)
	if err != nil {
		t.Errorf("phase %s: listing DeviceTimeout events: %v", ph.name, err)
	}

	h.model.releaseSentinels()
	churnCtx, stopChurn := context.WithCancel(ctx)
	churnDone := make(chan struct{})
	go func() { defer close(churnDone); h.churn.run(churnCtx) }()
	healthyAt, driveErr := ph.drive(ctx, r)
	stopChurn()
	<-churnDone
	// Faults are lifted whatever happened.
	if err := h.sim.setFaults(context.Background(), simFaults{}); err != nil {
		t.Errorf("phase %s: clearing faults: %v", ph.name, err)
	}
	if driveErr != nil {
		t.Errorf("phase %s: %v", ph.name, driveErr)
		r.fatal = true
		return r
	}
	if now := time.Now(); healthyAt.Before(now) {
		healthyAt = now
	}
	if bad := h.converge(ctx, ph, r, healthyAt); !r.didConverge {
		if err := h.quarantine(ctx, r, bad); err != nil {
			t.Errorf("phase %s: %v", ph.name, err)
			r.fatal = true
		}
	}
	if !r.fatal && ph.after != nil {
		if err := ph.after(ctx, r); err != nil {
			t.Errorf("phase %s: %v", ph.name, err)
		}
	}

	r.duration = time.Since(start)
	r.ops = h.model.counts().minus(opsBefore)
	if statsAfter, err := h.sim.stats(ctx); err == nil {
		r.stats = statsAfter.minus(statsBefore)
	}
	// Every pod a DeviceTimeout rescheduled (bare or the Deployment's).
	if timeoutsAfter, err := deviceTimeouts(ctx, h.kube); err == nil {
		r.reschedules = 0
		for uid := range timeoutsAfter {
			if !timeoutsBefore[uid] {
				r.reschedules++
			}
		}
		if r.reschedules > 0 && !ph.allowReschedule {
			r.ok = false
			t.Errorf("phase %s: %d pods were rescheduled by DeviceTimeout, but no device was away for the reconnect timeout (%s)",
				ph.name, r.reschedules, h.mode.reconnectTimeout)
		}
	}
	if r.failed {
		r.ok = false
	}
	notReadyAfter, _, _, _ := h.watcher.report()
	if n := len(notReadyAfter) - len(notReadyBefore); n > 0 {
		r.notReadyNode = n
		r.ok = false
		t.Errorf("phase %s: the virtual node left Ready:\n  %s", ph.name, strings.Join(first(notReadyAfter[len(notReadyBefore):], 10), "\n  "))
	}
	verdict := "ok"
	if !r.ok {
		verdict = "FAILED"
	}
	h.logf("=== phase %s %s in %s: %d operations, healthy→converged %s (bound %s)%s", ph.name, verdict, r.duration.Round(100*time.Millisecond),
		r.ops.total(), fmtConv(r), r.bound, notesSuffix(r.notes))
	return r
}

// converge polls the system from healthyAt until the invariants hold for
// soak, within the bound; past the bound it keeps looking for grace to
// report whether the system converged late or never. It returns the last
// failing evaluation when the system never converged.
func (h *harness) converge(ctx context.Context, ph phase, r *phaseResult, healthyAt time.Time) *evaluation {
	t := h.t
	if err := h.pause(ctx, time.Until(healthyAt)); err != nil {
		return nil
	}
	deadline := healthyAt.Add(r.bound)
	var extra func(*state) []violation
	if ph.check != nil {
		extra = func(st *state) []violation { return ph.check(st, r) }
	}
	clean, atBound, lastBad, lastErr := h.waitClean(ctx, deadline, deadline.Add(h.mode.grace), extra, func(ev evaluation) {
		if !ph.allowReschedule {
			r.badReschedule = true
			t.Errorf("phase %s: bare pods %s were deleted by a DeviceTimeout reschedule, but no device was away for the reconnect timeout (%s)",
				ph.name, strings.Join(ev.rescheduled, ", "), h.mode.reconnectTimeout)
		}
	})
	r.didConverge = !clean.IsZero()
	if r.didConverge {
		r.converged = clean.Sub(healthyAt)
	}
	r.ok = r.didConverge && !clean.After(deadline) && !r.badReschedule
	if atBound != nil {
		r.lost, r.dup, r.leaked, r.stale = atBound.count()
	}
	switch {
	case r.didConverge && !clean.After(deadline):
	case r.didConverge:
		t.Errorf("phase %s: converged only %s after the system was healthy again, past the bound of %s. At the bound:\n    %s",
			ph.name, r.converged.Round(100*time.Millisecond), r.bound, atBound.summary(25))
	default:
		msg := "no evaluation succeeded"
		if lastBad != nil {
			msg = lastBad.summary(40)
			r.lost, r.dup, r.leaked, r.stale = lastBad.count()
		}
		if lastErr != nil {
			msg += fmt.Sprintf("\n    last error reading the state: %v", lastErr)
		}
		t.Errorf("phase %s: not converged %s after the system was healthy again (bound %s; still wrong %s past it, so not merely slow):\n    %s",
			ph.name, time.Since(healthyAt).Round(100*time.Millisecond), r.bound, h.mode.grace, msg)
	}
	return lastBad
}

// waitClean evaluates the invariants (and extra ones, when not nil) every
// 250 ms until they held for soak (clean is when that streak began) or
// giveUp passed. atBound is the first failing evaluation after deadline,
// lastBad the last failing one. Bare pods a DeviceTimeout rescheduled are
// dropped from the model and reported to onReschedule.
func (h *harness) waitClean(ctx context.Context, deadline, giveUp time.Time, extra func(*state) []violation,
	onReschedule func(evaluation)) (clean time.Time, atBound, lastBad *evaluation, lastErr error) {
	for {
		st, err := gather(ctx, h.kube, h.sim)
		now := time.Now()
		if err != nil {
			lastErr = err
		} else {
			bare, replicas := h.model.expectation()
			ev := evaluate(st, expectation{node: h.node, bare: bare, replicas: replicas})
			if extra != nil {
				ev.violations = append(ev.violations, extra(st)...)
			}
			if len(ev.rescheduled) > 0 {
				h.model.forget(ev.rescheduled)
				onReschedule(ev)
			}
			if ev.ok() {
				if clean.IsZero() {
					clean = now
				}
				if now.Sub(clean) >= soak {
					return clean, atBound, lastBad, lastErr
				}
			} else {
				clean = time.Time{}
				evCopy := ev
				lastBad = &evCopy
				if now.After(deadline) && atBound == nil {
					atBound = &evCopy
				}
			}
		}
		if now.After(giveUp) {
			return time.Time{}, atBound, lastBad, lastErr
		}
		if err := h.pause(ctx, 250*time.Millisecond); err != nil {
			return time.Time{}, atBound, lastBad, err
		}
	}
}

// quarantine removes what a phase left broken so the next phases are
// judged on their own: it force-deletes (grace period 0) every pod a
// violation names, drops them from the model, and waits for the rest to
// converge. The phase has already failed; this only keeps one product bug
// from hiding the verdict on the other phases.
func (h *harness) quarantine(ctx context.Context, r *phaseResult, bad *evaluation) error {
	if bad == nil {
		return fmt.Errorf("nothing to quarantine: the state could not be read")
	}
	names := bad.pods()
	zero := int64(0)
	for _, n := range names {
		err := h.kube.CoreV1().Pods(testNamespace).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("force-deleting pod %s: %w", n, err)
		}
	}
	h.model.forget(names)
	r.quarantined = names
	start := time.Now()
	clean, _, lastBad, lastErr := h.waitClean(ctx, start.Add(r.bound), start.Add(r.bound+h.mode.grace), nil, func(evaluation) {})
	if clean.IsZero() {
		msg := "no evaluation succeeded"
		if lastBad != nil {
			msg = lastBad.summary(25)
		}
		if lastErr != nil {
			msg += fmt.Sprintf("\n    last error reading the state: %v", lastErr)
		}
		return fmt.Errorf("after force-deleting pods %s the system still does not converge:\n    %s", strings.Join(names, ","), msg)
	}
	h.logf("    quarantined (force-deleted) %s; the rest converged %s later", strings.Join(names, ","), clean.Sub(start).Round(100*time.Millisecond))
	return nil
}

func (h *harness) pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (h *harness) between(r [2]time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + time.Duration(h.rng.Int64N(int64(r[1]-r[0])))
}

// sentinel creates a pod and re-images another while the phase's fault is
// active; the churn leaves both alone until the next phase.
func (h *harness) sentinel(ctx context.Context, r *phaseResult) {
	created, reimaged, err := h.churn.sentinels(ctx)
	if err != nil {
		h.t.Errorf("phase %s: placing sentinels: %v", r.name, err)
	}
	if created != "" {
		r.sentinels = append(r.sentinels, created+" (created)")
	}
	if reimaged != "" {
		r.sentinels = append(r.sentinels, reimaged+" (re-imaged)")
	}
}

func (h *harness) sleepPhase(ctx context.Context, r *phaseResult) (time.Time, error) {
	h.sentinel(ctx, r)
	return time.Now(), h.pause(ctx, h.mode.churn)
}

// rateFault injects f for the churn's duration.
func (h *harness) rateFault(f simFaults) func(context.Context, *phaseResult) (time.Time, error) {
	return func(ctx context.Context, r *phaseResult) (time.Time, error) {
		if err := h.sim.setFaults(ctx, f); err != nil {
			return time.Time{}, err
		}
		before, serr := h.sim.stats(ctx)
		h.sentinel(ctx, r)
		err := h.pause(ctx, h.mode.churn)
		if cerr := h.sim.setFaults(context.Background(), simFaults{}); cerr != nil && err == nil {
			err = cerr
		}
		if after, aerr := h.sim.stats(ctx); serr == nil && aerr == nil {
			r.faultRequests = after.minus(before).apiRequests()
		}
		r.note("faults %s on %d API requests", f, r.faultRequests)
		return time.Now(), err
	}
}

// unreachable cuts Flightctl off (connections dropped without an answer)
// while the churn goes on.
func (h *harness) unreachable(ctx context.Context, r *phaseResult) (time.Time, error) {
	if err := h.sim.setFaults(ctx, simFaults{Unreachable: true}); err != nil {
		return time.Time{}, err
	}
	_, _, before, _ := h.watcher.report()
	h.sentinel(ctx, r)
	err := h.pause(ctx, h.mode.unreachable)
	if cerr := h.sim.setFaults(context.Background(), simFaults{}); cerr != nil && err == nil {
		err = cerr
	}
	_, _, after, _ := h.watcher.report()
	if after && !before {
		r.note("node condition FlightctlReachable went False during the outage")
	} else if !after {
		r.note("node condition FlightctlReachable never went False")
	}
	return time.Now(), err
}

// busiestDevice is the device with the most owned applications.
func (h *harness) busiestDevice(ctx context.Context) (string, int, error) {
	devs, err := h.sim.devices(ctx)
	if err != nil {
		return "", 0, err
	}
	best, bestN := "", -1
	for _, d := range devs {
		n := 0
		if d.Spec != nil {
			for _, a := range d.Spec.Applications {
				if strings.HasPrefix(a.Name, translate.AppNamePrefix) {
					n++
				}
			}
		}
		if n > bestN {
			best, bestN = d.Metadata.Name, n
		}
	}
	if best == "" {
		return "", 0, fmt.Errorf("the simulator has no devices")
	}
	return best, bestN, nil
}

// flap disconnects and reconnects one device several times, each time for
// less than the reconnect timeout.
func (h *harness) flap(ctx context.Context, r *phaseResult) (time.Time, error) {
	dev, apps, err := h.busiestDevice(ctx)
	if err != nil {
		return time.Time{}, err
	}
	var downs []string
	for i := 0; i < h.mode.flaps; i++ {
		down, up := h.between(h.mode.flapDown), h.between(h.mode.flapUp)
		if err := h.sim.disconnect(ctx, dev); err != nil {
			return time.Time{}, err
		}
		h.count(&h.disconnects)
		if i == 0 {
			h.sentinel(ctx, r)
		}
		if err := h.pause(ctx, down); err != nil {
			return time.Time{}, err
		}
		if err := h.sim.reconnect(ctx, dev); err != nil {
			return time.Time{}, err
		}
		h.count(&h.reconnects)
		downs = append(downs, down.Round(100*time.Millisecond).String())
		if err := h.pause(ctx, up); err != nil {
			return time.Time{}, err
		}
	}
	r.note("%s (%d applications) down for %s", dev, apps, strings.Join(downs, ", "))
	return time.Now(), nil
}

// deleteDevice deletes the busiest device from Flightctl a third into the
// churn. Its pods turn Unknown; after the reconnect timeout they are
// rescheduled (bare pods deleted, the Deployment's recreated elsewhere).
func (h *harness) deleteDevice(ctx context.Context, r *phaseResult) (time.Time, error) {
	if err := h.pause(ctx, h.mode.churn/3); err != nil {
		return time.Time{}, err
	}
	dev, apps, err := h.busiestDevice(ctx)
	if err != nil {
		return time.Time{}, err
	}
	pods, err := h.kube.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return time.Time{}, err
	}
	var on []string
	for _, p := range pods.Items {
		if p.Annotations[vkv1.AnnotationDevice] == dev && p.DeletionTimestamp == nil {
			on = append(on, p.Name)
		}
	}
	if err := h.sim.deleteDevice(ctx, dev); err != nil {
		return time.Time{}, err
	}
	deletedAt := time.Now()
	h.count(&h.deletedDevices)
	// A pod created at once may be placed on the deleted device before
	// the next status poll notices it is gone.
	h.sentinel(ctx, r)
	r.note("deleted %s holding %d applications (pods %s)", dev, apps, strings.Join(on, ","))
	r.deleted = dev
	if err := h.pause(ctx, h.mode.churn-h.mode.churn/3); err != nil {
		return time.Time{}, err
	}
	// Healthy once the reconnect timeout expired: the pods it held are
	// then rescheduled.
	return deletedAt.Add(h.mode.reconnectTimeout), nil
}

// reregisterDevice registers the deleted device again (it comes back
// empty) and waits until the binding uses it and forgot the disconnection.
func (h *harness) reregisterDevice(ctx context.Context, r *phaseResult) error {
	if r.deleted == "" {
		return nil
	}
	if b, err := h.binding(ctx); err == nil {
		var names []string
		for _, d := range b.Status.DisconnectedDevices {
			names = append(names, d.Name)
		}
		r.note("before re-registration status.disconnectedDevices=[%s]", strings.Join(names, ","))
	}
	if err := h.registerDevice(ctx, r.deleted); err != nil {
		return fmt.Errorf("registering %s again: %w", r.deleted, err)
	}
	took, err := h.waitOnline(ctx, len(h.devices))
	if err != nil {
		return fmt.Errorf("after registering %s again: %w", r.deleted, err)
	}
	r.note("%s registered again, online in the binding after %s", r.deleted, took.Round(100*time.Millisecond))
	return nil
}

// restartManager kills the manager with SIGKILL at random moments of the
// churn (sometimes while it is still starting) and starts it again.
func (h *harness) restartManager(ctx context.Context, r *phaseResult) (time.Time, error) {
	var offset int64
	var pids []string
	for i := 0; i < h.mode.restarts; i++ {
		if err := h.pause(ctx, h.between([2]time.Duration{500 * time.Millisecond, 4 * time.Second})); err != nil {
			return time.Time{}, err
		}
		pid, err := h.mgr.kill(quickstart.DefaultManager)
		if err != nil {
			return time.Time{}, err
		}
		h.count(&h.restarts)
		pids = append(pids, strconv.Itoa(pid))
		// Changes made while no manager runs.
		h.sentinel(ctx, r)
		if err := h.pause(ctx, h.between([2]time.Duration{0, 1500 * time.Millisecond})); err != nil {
			return time.Time{}, err
		}
		if offset, _, err = h.mgr.start(ctx, quickstart.ManagerOptions{}); err != nil {
			return time.Time{}, fmt.Errorf("restarting the manager: %w\n%s", err, quickstart.TailFile(h.stack.ManagerLog, 30))
		}
	}
	registered, err := waitLogLine(ctx, h.stack.ManagerLog, offset, "Virtual node registered", 90*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	r.note("SIGKILLed pids %s; the last manager logged \"Virtual node registered\" at %s", strings.Join(pids, ","), registered.Format("15:04:05.000"))
	// A little churn against the fresh manager.
	if err := h.pause(ctx, time.Second); err != nil {
		return time.Time{}, err
	}
	return registered, nil
}

func (h *harness) count(n *int) {
	h.mu.Lock()
	*n++
	h.mu.Unlock()
}

// ---------------------------------------------------------------- report

func (h *harness) workloadFigures() (lost, dup, leaked, stale int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.results {
		lost += r.lost
		dup += r.dup
		leaked += r.leaked
		stale += r.stale
	}
	return
}

func fmtConv(r *phaseResult) string {
	switch {
	case r.didConverge:
		return r.converged.Round(100 * time.Millisecond).String()
	case r.bound == 0:
		return "-"
	default:
		return "never"
	}
}

func notesSuffix(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return "; " + strings.Join(notes, "; ")
}

// printFigures prints the figures table, also after a failure.
func (h *harness) printFigures() {
	if h.sim != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s, err := h.sim.stats(ctx); err == nil {
			h.statsEnd = s
		}
		cancel()
	}
	h.mu.Lock()
	results := append([]*phaseResult(nil), h.results...)
	restarts, handovers, disc, reco, deleted := h.restarts, h.handovers, h.disconnects, h.reconnects, h.deletedDevices
	h.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n==== vk-flightctl reliability figures (mode %s, seed %d, %s in all)\n", h.mode.name, h.seed, time.Since(h.start).Round(time.Second))
	fmt.Fprintf(&b, "%-17s %-42s %8s %5s %5s %5s %5s %8s %6s %15s %10s %6s  %s\n",
		"phase", "fault", "duration", "ops", "503", "409", "drop", "API req", "resch", "lost/dup/leak/stale", "converged", "bound", "result")
	var ops opCounts
	var latencyReqs int64
	for _, r := range results {
		ops.Creates += r.ops.Creates
		ops.Updates += r.ops.Updates
		ops.Deletes += r.ops.Deletes
		ops.Scales += r.ops.Scales
		ops.Errors += r.ops.Errors
		if r.name == "latency" {
			latencyReqs = r.faultRequests
		}
		verdict := "ok"
		if !r.ok {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "%-17s %-42s %8s %5d %5d %5d %5d %8d %6d %15s %10s %6s  %s\n",
			r.name, trim(r.fault, 42), r.duration.Round(100*time.Millisecond), r.ops.total(), r.stats.InjectedErrors, r.stats.InjectedConflicts,
			r.stats.DroppedRequests, r.stats.apiRequests(), r.reschedules, fmt.Sprintf("%d/%d/%d/%d", r.lost, r.dup, r.leaked, r.stale),
			fmtConv(r), r.bound, verdict)
	}
	total := h.statsEnd.minus(h.statsStart)
	lost, dup, leaked, stale := h.workloadFigures()
	resched := 0
	for _, r := range results {
		resched += r.reschedules
	}
	fmt.Fprintf(&b, "operations:        %d (%d bare pods created, %d images changed, %d bare pods deleted, %d Deployment scalings; %d API calls refused)\n",
		ops.total(), ops.Creates, ops.Updates, ops.Deletes, ops.Scales, ops.Errors)
	fmt.Fprintf(&b, "faults injected:   %d x 503, %d x 409, %d requests dropped (unreachable), %d requests delayed 500ms; %d device disconnects / %d reconnects; %d device(s) deleted\n",
		total.InjectedErrors, total.InjectedConflicts, total.DroppedRequests, latencyReqs, disc, reco, deleted)
	fmt.Fprintf(&b, "manager restarts:  %d (SIGKILL); %d leader hand-over(s) between two leader-elected managers\n", restarts, handovers)
	fmt.Fprintf(&b, "workloads:         lost %d, duplicated %d, leaked %d, stale (update lost) %d (all must be 0); %d pods rescheduled by DeviceTimeout (documented)\n",
		lost, dup, leaked, stale, resched)
	if h.watcher != nil {
		notReady, observed, _, transitions := h.watcher.report()
		fmt.Fprintf(&b, "virtual node:      %d observations, %d not Ready (must be 0)\n", observed, len(notReady))
		for _, tr := range first(transitions, 30) {
			fmt.Fprintf(&b, "                   %s\n", tr)
		}
	}
	for _, r := range results {
		notes := r.notes
		if len(r.sentinels) > 0 {
			notes = append(notes, "sentinels "+strings.Join(r.sentinels, ", "))
		}
		if len(r.quarantined) > 0 {
			notes = append(notes, "after the failure, force-deleted "+strings.Join(r.quarantined, ","))
		}
		for _, n := range notes {
			fmt.Fprintf(&b, "note %-18s %s\n", r.name+":", n)
		}
	}
	if h.model != nil {
		h.model.mu.Lock()
		for _, e := range h.model.errs {
			fmt.Fprintf(&b, "churn API error:   %s\n", e)
		}
		h.model.mu.Unlock()
	}
	h.t.Log(b.String())
}

// diagnostics prints what explains a failure: the manager's and the
// simulator's log tails, pods, devices and the binding.
func (h *harness) diagnostics() {
	var b strings.Builder
	fmt.Fprintf(&b, "\n==== diagnostics (temporary directory %s, kept)\n", h.tmp)
	fmt.Fprintln(&b, quickstart.TailFile(h.stack.ManagerLog, 150))
	if standby := h.stack.ManagerLogOf(standbyManager); fileSize(standby) > 0 {
		fmt.Fprintln(&b, quickstart.TailFile(standby, 100))
	}
	fmt.Fprintln(&b, quickstart.TailFile(h.stack.SimLog, 40))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "fleetbindings", "-A", "-o", "yaml"},
		{"get", "pods", "-n", testNamespace, "-o", "wide", "-L", vkv1.LabelDevice},
		{"get", "events", "-n", testNamespace, "--field-selector", "type=Warning", "--sort-by=.lastTimestamp"},
	} {
		out, err := h.stack.KubectlOutput(ctx, args...)
		if err != nil {
			out += err.Error()
		}
		fmt.Fprintf(&b, "    --- kubectl %s\n%s\n", strings.Join(args, " "), indent(tail(out, 60)))
	}
	if h.sim != nil {
		_ = h.sim.setFaults(ctx, simFaults{})
		if devs, err := h.sim.devices(ctx); err == nil {
			fmt.Fprintln(&b, "    --- Flightctl devices: owned applications (spec) / reported status")
			for _, d := range devs {
				var apps []string
				if d.Spec != nil {
					for _, a := range d.Spec.Applications {
						apps = append(apps, a.Name)
					}
				}
				summary := ""
				if d.Status != nil {
					summary = d.Status.Summary.Status
				}
				if d.Metadata.Owner != nil {
					summary += ", owner " + *d.Metadata.Owner
				}
				fmt.Fprintf(&b, "    %s (%s): %s\n", d.Metadata.Name, summary, strings.Join(apps, " "))
			}
		} else {
			fmt.Fprintf(&b, "    listing devices: %v\n", err)
		}
	}
	h.t.Log(b.String())
}

// ---------------------------------------------------------------- helpers

func first(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), fmt.Sprintf("... %d more", len(s)-n))
	}
	return s
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
