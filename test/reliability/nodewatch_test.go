package reliability

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// nodeWatcher follows the virtual node's conditions for the whole test,
// through a watch (every change) and a poll every 500 ms (in case the watch
// is re-established across a change). Any observation of Ready other than
// True, or of the node missing, is a violation: the node must stay Ready
// through Flightctl faults and manager restarts.
type nodeWatcher struct {
	kube kubernetes.Interface
	node string

	mu        sync.Mutex
	notReady  []string
	observed  int
	lastConds map[corev1.NodeConditionType]string
	// transitions of FlightctlReachable and Ready, for the report.
	transitions []string
	unreachable bool
}

func newNodeWatcher(kube kubernetes.Interface, node string) *nodeWatcher {
	return &nodeWatcher{kube: kube, node: node, lastConds: map[corev1.NodeConditionType]string{}}
}

func (w *nodeWatcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.watchLoop(ctx) }()
	go func() { defer wg.Done(); w.pollLoop(ctx) }()
	wg.Wait()
}

func (w *nodeWatcher) pollLoop(ctx context.Context) {
	for {
		getCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := w.kube.CoreV1().Nodes().Get(getCtx, w.node, metav1.GetOptions{})
		cancel()
		switch {
		case err == nil:
			w.observe(n, "poll")
		case apierrors.IsNotFound(err):
			w.violation("poll: node %s does not exist", w.node)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (w *nodeWatcher) watchLoop(ctx context.Context) {
	for ctx.Err() == nil {
		wi, err := w.kube.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", w.node).String(),
		})
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		for ev := range wi.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified:
				if n, ok := ev.Object.(*corev1.Node); ok {
					w.observe(n, "watch")
				}
			case watch.Deleted:
				w.violation("watch: node %s was deleted", w.node)
			}
		}
		wi.Stop()
	}
}

func (w *nodeWatcher) observe(n *corev1.Node, via string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.observed++
	ready := false
	for _, c := range n.Status.Conditions {
		state := fmt.Sprintf("%s reason=%s", c.Status, c.Reason)
		if w.lastConds[c.Type] != state && (c.Type == corev1.NodeReady || c.Type == "FlightctlReachable") {
			w.transitions = append(w.transitions, fmt.Sprintf("%s %s=%s (%s)", time.Now().Format("15:04:05.000"), c.Type, state, via))
		}
		w.lastConds[c.Type] = state
		if c.Type == "FlightctlReachable" && c.Status != corev1.ConditionTrue {
			w.unreachable = true
		}
		if c.Type != corev1.NodeReady {
			continue
		}
		ready = c.Status == corev1.ConditionTrue
		if !ready {
			w.notReady = append(w.notReady, fmt.Sprintf("%s %s: Ready=%s reason=%s message=%q (lastHeartbeat %s)",
				time.Now().Format("15:04:05.000"), via, c.Status, c.Reason, c.Message, c.LastHeartbeatTime.Format("15:04:05")))
		}
	}
	if !ready && len(n.Status.Conditions) == 0 {
		w.notReady = append(w.notReady, fmt.Sprintf("%s %s: node has no conditions", time.Now().Format("15:04:05.000"), via))
	}
}

func (w *nodeWatcher) violation(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notReady = append(w.notReady, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
}

// report returns the NotReady observations, how many observations were
// made, and whether FlightctlReachable was ever seen False.
func (w *nodeWatcher) report() (notReady []string, observed int, sawUnreachable bool, transitions []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.notReady...), w.observed, w.unreachable, append([]string(nil), w.transitions...)
}
