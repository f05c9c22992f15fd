package reliability

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/sharding"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

const (
	// shardDevicePrefix names the devices of the sharded phase's extra
	// bindings; the other phases' checks leave them out (gather).
	shardDevicePrefix = "shard-"
	// shardedNamespace holds the extra bindings' pods.
	shardedNamespace = "reliability-sharded"
	// shardExtraBindings join the stack's binding: 10 in all.
	shardExtraBindings = 9
	// shardPodsPerBinding run on each extra binding.
	shardPodsPerBinding = 2
)

// shardTimings are the Lease timings of the sharded phase: the defaults in
// full mode, shorter in quick mode to keep make test short.
func (h *harness) shardTimings() (lease, renew, retry time.Duration) {
	if h.mode.name == "full" {
		return 15 * time.Second, 10 * time.Second, 2 * time.Second
	}
	return 6 * time.Second, 4 * time.Second, time.Second
}

// shardedRun is what the sharded phase saw, for its checks.
type shardedRun struct {
	bindings []types.NamespacedName
	// pods are the extra bindings' pods by name, with their UID and the
	// binding that runs them.
	pods map[string]shardPod
	// interruptions are pods of bindings that did not move that were seen
	// not Running and Ready, or replaced.
	mu            sync.Mutex
	interruptions []string
}

type shardPod struct {
	uid     types.UID
	binding types.NamespacedName
}

// sharded replaces the managers by three sharded ones (as config/sharded
// runs them), adds nine bindings (one device each, two pods each) beside
// the stack's, lets the churn run, SIGKILLs the replica with the most
// bindings and later adds a new replica. It asserts that the assignment is
// the rendezvous hash of the live replicas after each step, that a killed
// replica's bindings are served again within the Lease duration and a few
// seconds, that a join moves only the bindings the newcomer wins, and
// that the pods of bindings that did not move are never interrupted.
func (h *harness) sharded(ctx context.Context, r *phaseResult) (time.Time, error) {
	lease, renew, retry := h.shardTimings()
	args := []string{"--leader-elect-lease-duration", lease.String(), "--leader-elect-renew-deadline", renew.String(), "--leader-elect-retry-period", retry.String()}
	for _, name := range []string{quickstart.DefaultManager, standbyManager} {
		if _, err := h.mgr.kill(name); err == nil {
			h.count(&h.restarts)
		}
	}
	replicas := []string{"shard-a", "shard-b", "shard-c"}
	pids := map[string]int{}
	for _, name := range replicas {
		_, pid, err := h.mgr.start(ctx, quickstart.ManagerOptions{Name: name, Sharded: true, Args: args})
		pids[name] = pid
		if err != nil {
			return time.Time{}, fmt.Errorf("starting sharded replica %s: %w\n%s", name, err, quickstart.TailFile(h.stack.ManagerLogOf(name), 30))
		}
	}
	run := &shardedRun{pods: map[string]shardPod{}}
	r.sharded = run
	run.bindings = append(run.bindings, types.NamespacedName{Namespace: quickstart.DefaultBindingNamespace, Name: quickstart.DefaultFleet})
	if err := h.addShardBindings(ctx, run); err != nil {
		return time.Time{}, err
	}
	// Settling includes the stack's binding moving off the killed
	// single manager: not a hand-over this phase measures.
	if _, err := h.waitShards(ctx, run, replicas, 90*time.Second); err != nil {
		return time.Time{}, err
	}
	if err := h.addShardPods(ctx, run); err != nil {
		return time.Time{}, err
	}
	r.note("3 sharded replicas, %d bindings, %d extra pods; Lease %s/%s/%s", len(run.bindings), len(run.pods), lease, renew, retry)

	// The kill: the replica holding the most bindings.
	before := h.assignment(run, replicas)
	victim := busiest(before, replicas)
	live := slices.DeleteFunc(slices.Clone(replicas), func(s string) bool { return s == victim })
	after := h.assignment(run, live)
	stopWatch := h.watchUnmoved(ctx, run, before, after)
	if _, err := h.mgr.kill(victim); err != nil {
		stopWatch()
		return time.Time{}, err
	}
	killedAt := time.Now()
	h.count(&h.restarts)
	h.sentinel(ctx, r)
	times, err := h.waitShards(ctx, run, live, lease+60*time.Second)
	stopWatch()
	if err != nil {
		return time.Time{}, err
	}
	var handovers []time.Duration
	for _, b := range run.bindings {
		if before[b] == after[b] {
			continue
		}
		d := times[b].Sub(killedAt)
		handovers = append(handovers, d)
		if bound := lease + 2*retry + 5*time.Second; d > bound {
			h.fail(r, "binding %s of the killed replica %s served by %s only %s after the kill (bound: Lease %s + 2 retries + 5 s)", b, victim, after[b], d.Round(100*time.Millisecond), lease)
		}
	}
	r.note("kill of %s: %d of %d bindings moved; hand-over %s", victim, len(handovers), len(run.bindings), medianMax(handovers))

	// The join: a new replica, as the Deployment would start.
	joiner := "shard-d"
	joined := append(slices.Clone(live), joiner)
	final := h.assignment(run, joined)
	stopWatch = h.watchUnmoved(ctx, run, after, final)
	joinAt := time.Now()
	_, pid, err := h.mgr.start(ctx, quickstart.ManagerOptions{Name: joiner, Sharded: true, Args: args})
	pids[joiner] = pid
	if err != nil {
		stopWatch()
		return time.Time{}, fmt.Errorf("starting sharded replica %s: %w", joiner, err)
	}
	times, err = h.waitShards(ctx, run, joined, lease+60*time.Second)
	stopWatch()
	if err != nil {
		return time.Time{}, err
	}
	var joins []time.Duration
	for _, b := range run.bindings {
		if after[b] == final[b] {
			continue
		}
		if final[b] != joiner {
			h.fail(r, "the join of %s moved binding %s from %s to %s", joiner, b, after[b], final[b])
		}
		joins = append(joins, times[b].Sub(joinAt))
	}
	r.note("join of %s: %d of %d bindings moved (1/N = %.1f); hand-over %s after the start", joiner, len(joins), len(run.bindings),
		float64(len(run.bindings))/float64(len(joined)), medianMax(joins))
	r.note("cost per replica at the end (bindings held; VmRSS; CPU since start): %s", replicaCosts(pids, final, joined))
	run.mu.Lock()
	for _, i := range first(run.interruptions, 10) {
		h.fail(r, "a pod of a binding that did not move was interrupted: %s", i)
	}
	run.mu.Unlock()
	return time.Now(), nil
}

// addShardBindings creates the extra bindings, each with one device of its
// own in the simulator.
func (h *harness) addShardBindings(ctx context.Context, run *shardedRun) error {
	if _, err := h.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: shardedNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	manifest, err := h.stack.BindingManifest()
	if err != nil {
		return err
	}
	for i := 1; i <= shardExtraBindings; i++ {
		fleet := fmt.Sprintf("shard-fleet-%d", i)
		dev := fmt.Sprintf("%s%d", shardDevicePrefix, i)
		if err := h.sim.createDevice(ctx, dev, map[string]string{"fleet": fleet}); err != nil && !strings.Contains(err.Error(), "409") {
			return err
		}
		if err := h.sim.reconnect(ctx, dev); err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(manifest), &obj); err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: obj}
		u.SetName(fleet)
		_ = unstructured.SetNestedField(u.Object, fleet, "spec", "fleet")
		_ = unstructured.SetNestedField(u.Object, "fleet="+fleet, "spec", "deviceSelector")
		if _, err := h.dyn.Resource(fleetBindings).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating FleetBinding %s: %w", fleet, err)
		}
		run.bindings = append(run.bindings, types.NamespacedName{Namespace: u.GetNamespace(), Name: fleet})
	}
	return nil
}

// addShardPods starts the extra bindings' pods and waits until they run.
func (h *harness) addShardPods(ctx context.Context, run *shardedRun) error {
	for _, b := range run.bindings[1:] {
		for j := 0; j < shardPodsPerBinding; j++ {
			name := fmt.Sprintf("%s-%d", b.Name, j)
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: shardedNamespace}, Spec: podSpec(b.Name, images[0])}
			created, err := h.kube.CoreV1().Pods(shardedNamespace).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating pod %s: %w", name, err)
			}
			run.pods[name] = shardPod{uid: created.UID, binding: b}
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods, err := h.kube.CoreV1().Pods(shardedNamespace).List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for i := range pods.Items {
				if runningReady(&pods.Items[i]) {
					ready++
				}
			}
			if ready == len(run.pods) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("the sharded bindings' pods: listing after 90s: %w", err)
			}
			return fmt.Errorf("the sharded bindings' pods: %d of %d Running and Ready after 90s", ready, len(run.pods))
		}
		if err := h.pause(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// assignment is where rendezvous hashing puts each binding over members.
func (h *harness) assignment(run *shardedRun, members []string) map[types.NamespacedName]string {
	out := map[types.NamespacedName]string{}
	for _, b := range run.bindings {
		out[b] = sharding.Owner(b.String(), members)
	}
	return out
}

func busiest(assign map[types.NamespacedName]string, replicas []string) string {
	count := map[string]int{}
	for _, r := range assign {
		count[r]++
	}
	best := replicas[0]
	for _, r := range replicas {
		if count[r] > count[best] {
			best = r
		}
	}
	return best
}

// waitShards waits until every binding's status.shard is its owner among
// members and its node is Ready, and returns when each first got there.
func (h *harness) waitShards(ctx context.Context, run *shardedRun, members []string, timeout time.Duration) (map[types.NamespacedName]time.Time, error) {
	want := h.assignment(run, members)
	at := map[types.NamespacedName]time.Time{}
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, b := range run.bindings {
			if _, ok := at[b]; ok {
				continue
			}
			shard, node, err := h.shardOf(ctx, b)
			if err == nil && shard == want[b] && h.nodeIsReady(ctx, node) {
				at[b] = time.Now()
				continue
			}
			missing = append(missing, fmt.Sprintf("%s on %q, want %s (%v)", b.Name, shard, want[b], err))
		}
		if len(missing) == 0 {
			return at, nil
		}
		if time.Now().After(deadline) {
			return at, fmt.Errorf("bindings not served by their replica among %v within %s: %s", members, timeout, strings.Join(missing, "; "))
		}
		if err := h.pause(ctx, 200*time.Millisecond); err != nil {
			return at, err
		}
	}
}

func (h *harness) shardOf(ctx context.Context, key types.NamespacedName) (shard, node string, err error) {
	u, err := h.dyn.Resource(fleetBindings).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	var b vkv1.FleetBinding
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &b); err != nil {
		return "", "", err
	}
	return b.Status.Shard, b.EffectiveNodeName(), nil
}

func (h *harness) nodeIsReady(ctx context.Context, name string) bool {
	n, err := h.kube.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// watchUnmoved polls, until stopped, the pods of the extra bindings that
// stay on their replica from one assignment to the next, and records any
// moment one of them is not Running and Ready or was replaced.
func (h *harness) watchUnmoved(ctx context.Context, run *shardedRun, from, to map[types.NamespacedName]string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pods, err := h.kube.CoreV1().Pods(shardedNamespace).List(ctx, metav1.ListOptions{})
			if err == nil {
				byName := map[string]*corev1.Pod{}
				for i := range pods.Items {
					byName[pods.Items[i].Name] = &pods.Items[i]
				}
				for name, sp := range run.pods {
					if from[sp.binding] != to[sp.binding] {
						continue
					}
					p := byName[name]
					switch {
					case p == nil || p.UID != sp.uid:
						run.note("%s %s replaced or gone", time.Now().Format("15:04:05.000"), name)
					case !runningReady(p):
						run.note("%s %s not Running and Ready: %s", time.Now().Format("15:04:05.000"), name, podConditions(p))
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (run *shardedRun) note(format string, args ...any) {
	run.mu.Lock()
	run.interruptions = append(run.interruptions, fmt.Sprintf(format, args...))
	run.mu.Unlock()
}

// checkShardedWorkloads is the sharded phase's invariants for the extra
// bindings: each pod still the one created (none restarted), Running and
// Ready, with exactly one application, on its device; no application on
// their devices without its pod.
func (h *harness) checkShardedWorkloads(_ *state, r *phaseResult) []violation {
	run := r.sharded
	if run == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []violation
	add := func(kind, subject, format string, args ...any) {
		out = append(out, violation{kind, subject, fmt.Sprintf(format, args...)})
	}
	pods, err := h.kube.CoreV1().Pods(shardedNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []violation{{kindLost, shardedNamespace, "listing pods: " + err.Error()}}
	}
	devs, err := h.sim.devices(ctx)
	if err != nil {
		return []violation{{kindLost, "flightctl", "listing devices: " + err.Error()}}
	}
	apps := map[string][]string{}
	for _, d := range devs {
		if !strings.HasPrefix(d.Metadata.Name, shardDevicePrefix) || d.Spec == nil {
			continue
		}
		for _, a := range d.Spec.Applications {
			if strings.HasPrefix(a.Name, translate.AppNamePrefix) {
				apps[a.Name] = append(apps[a.Name], d.Metadata.Name)
			}
		}
	}
	expected := map[string]bool{}
	byName := map[string]*corev1.Pod{}
	for i := range pods.Items {
		byName[pods.Items[i].Name] = &pods.Items[i]
	}
	names := make([]string, 0, len(run.pods))
	for n := range run.pods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key := shardedNamespace + "/" + n
		p := byName[n]
		if p == nil || p.UID != run.pods[n].uid {
			add(kindLost, key, "pod replaced or gone")
			continue
		}
		app := translate.AppName(p)
		expected[app] = true
		dev := p.Annotations[vkv1.AnnotationDevice]
		switch where := apps[app]; {
		case len(where) == 0:
			add(kindLost, key, "no application %s on any device (device annotation %q)", app, dev)
		case len(where) > 1:
			add(kindDuplicated, key, "application %s on %s", app, strings.Join(where, ","))
		case where[0] != dev:
			add(kindDuplicated, key, "application %s on %s, not its device %s", app, where[0], dev)
		}
		if !runningReady(p) {
			add(kindNotReady, key, "%s", podConditions(p))
		}
	}
	for app, where := range apps {
		if !expected[app] {
			add(kindLeaked, app, "owned application on %s whose pod is gone", strings.Join(where, ","))
		}
	}
	return out
}

func medianMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %s, max %s", s[len(s)/2].Round(100*time.Millisecond), s[len(s)-1].Round(100*time.Millisecond))
}

// replicaCosts reads each live replica's resident set and CPU time from
// /proc: what one replica costs for its share of the bindings.
func replicaCosts(pids map[string]int, assign map[types.NamespacedName]string, live []string) string {
	held := map[string]int{}
	for _, r := range assign {
		held[r]++
	}
	var parts []string
	for _, name := range live {
		pid := pids[name]
		status, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		stat, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err1 != nil || err2 != nil {
			parts = append(parts, fmt.Sprintf("%s: unreadable", name))
			continue
		}
		rss := ""
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
		// utime and stime are fields 14 and 15, after the parenthesised
		// command name, in clock ticks (100 per second on Linux).
		cpu := "?"
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			if f := strings.Fields(string(stat)[i+1:]); len(f) > 13 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				sy, _ := strconv.ParseInt(f[12], 10, 64)
				cpu = fmt.Sprintf("%.1fs", float64(u+sy)/100)
			}
		}
		parts = append(parts, fmt.Sprintf("%s %d bindings, %s, %s", name, held[name], rss, cpu))
	}
	return strings.Join(parts, "; ")
}
