package reliability

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

const (
	// standbyManager names the second manager process the leader-handover
	// phase starts (log <state>/manager-b.log).
	standbyManager = "manager-b"
	// leaseName is the manager's leader election Lease: the default of
	// --leader-election-id, in the manager's --namespace.
	leaseName = "vk-flightctl-provider"
	// leaseDuration is controller-runtime's default LeaseDuration, which
	// the manager does not change: a SIGKILLed leader keeps the Lease
	// that long.
	leaseDuration = 15 * time.Second
)

// activeMsgs are log messages only an active (leading) manager writes:
// it registered the node, or wrote to Flightctl.
var activeMsgs = []string{"Virtual node registered", "Workload deployed", "Workload removed", "Removed orphaned workload"}

// leaderHandover replaces the single manager by two leader-elected ones,
// as a Deployment with two replicas runs them, lets the churn run against
// the leader, then kills the leader with SIGKILL (it cannot release the
// Lease) and waits for the other to take over on its own. The killed one
// is started again as the new standby, as its Deployment would restart it.
// The system is healthy again once the new leader registered the node.
func (h *harness) leaderHandover(ctx context.Context, r *phaseResult) (time.Time, error) {
	leaderLog, standbyLog := h.stack.ManagerLogOf(quickstart.DefaultManager), h.stack.ManagerLogOf(standbyManager)
	// The earlier phases' manager runs without leader election and holds
	// no Lease, so the first elected manager takes it at once.
	if _, err := h.mgr.kill(quickstart.DefaultManager); err != nil {
		return time.Time{}, err
	}
	h.count(&h.restarts)
	offA, pidA, err := h.mgr.start(ctx, quickstart.ManagerOptions{LeaderElect: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("starting the first leader-elected manager: %w\n%s", err, quickstart.TailFile(leaderLog, 30))
	}
	if _, err := waitLogLine(ctx, leaderLog, offA, "Virtual node registered", 90*time.Second); err != nil {
		return time.Time{}, fmt.Errorf("the first leader-elected manager (pid %d): %w\n%s", pidA, err, quickstart.TailFile(leaderLog, 30))
	}
	holderA, err := h.waitLeaseHolder(ctx, "", 30*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	offB, pidB, err := h.mgr.start(ctx, quickstart.ManagerOptions{Name: standbyManager, LeaderElect: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("starting the standby manager: %w\n%s", err, quickstart.TailFile(standbyLog, 30))
	}

	// Both run; only the Lease holder may act.
	if err := h.pause(ctx, h.mode.churn/2); err != nil {
		return time.Time{}, err
	}
	if msgs := activeLines(standbyLog, offB); len(msgs) > 0 {
		h.fail(r, "the standby manager (pid %d) acted while pid %d held the Lease (%s): %s", pidB, pidA, holderA, strings.Join(first(msgs, 5), "; "))
	}
	if holder, err := h.leaseHolder(ctx); err != nil || holder != holderA {
		h.fail(r, "the Lease changed hands while its holder ran: holder %q, was %q (%v)", holder, holderA, err)
	}

	if _, err := h.mgr.kill(quickstart.DefaultManager); err != nil {
		return time.Time{}, err
	}
	killedAt := time.Now()
	h.count(&h.restarts)
	h.count(&h.handovers)
	// Changes made while no manager leads.
	h.sentinel(ctx, r)
	registered, err := waitLogLine(ctx, standbyLog, offB, "Virtual node registered", leaseDuration+90*time.Second)
	if err != nil {
		return time.Time{}, fmt.Errorf("after the leader (pid %d) was killed, the standby (pid %d): %w\n%s", pidA, pidB, err, quickstart.TailFile(standbyLog, 40))
	}
	holderB, err := h.waitLeaseHolder(ctx, holderA, 30*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	r.leaseHolder = holderB
	r.note("leader pid %d (%s) SIGKILLed; standby pid %d took the Lease (%s) and registered the node %s later (Lease duration %s)",
		pidA, holderA, pidB, holderB, registered.Sub(killedAt).Round(100*time.Millisecond), leaseDuration)

	// The killed replica comes back as the standby.
	offA2, pidA2, err := h.mgr.start(ctx, quickstart.ManagerOptions{LeaderElect: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("restarting the killed manager as standby: %w\n%s", err, quickstart.TailFile(leaderLog, 30))
	}
	r.standbyLog, r.standbyOffset = leaderLog, offA2
	r.note("the killed manager restarted as standby (pid %d)", pidA2)
	// More churn against the new leader, with the new standby running.
	if err := h.pause(ctx, h.mode.churn-h.mode.churn/2); err != nil {
		return time.Time{}, err
	}
	return registered, nil
}

// checkHandover runs once the phase converged: one node for the binding,
// the Lease still with the manager that took over, and the restarted
// standby passive.
func (h *harness) checkHandover(ctx context.Context, r *phaseResult) error {
	nodes, err := h.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: vkv1.LabelFleet + "=" + quickstart.DefaultFleet})
	if err != nil {
		return err
	}
	var names []string
	for _, n := range nodes.Items {
		names = append(names, n.Name)
	}
	if len(names) != 1 || names[0] != h.node {
		h.fail(r, "want exactly node %s for fleet %s, found [%s]", h.node, quickstart.DefaultFleet, strings.Join(names, ","))
	}
	if holder, err := h.leaseHolder(ctx); err != nil || holder != r.leaseHolder {
		h.fail(r, "the Lease moved again with both managers running: holder %q, want %q (%v)", holder, r.leaseHolder, err)
	}
	if msgs := activeLines(r.standbyLog, r.standbyOffset); len(msgs) > 0 {
		h.fail(r, "the restarted standby acted while the new leader ran: %s", strings.Join(first(msgs, 5), "; "))
	}
	return nil
}

// leaseHolder is the leader election Lease's holder identity ("" when the
// Lease does not exist yet or has no holder).
func (h *harness) leaseHolder(ctx context.Context) (string, error) {
	l, err := h.kube.CoordinationV1().Leases(quickstart.DefaultBindingNamespace).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// waitLeaseHolder waits until the Lease has a holder other than not.
func (h *harness) waitLeaseHolder(ctx context.Context, not string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		holder, err := h.leaseHolder(ctx)
		if err == nil && holder != "" && holder != not {
			return holder, nil
		}
		last = fmt.Sprintf("holder %q, error %v", holder, err)
		if time.Now().After(deadline) {
			return "", fmt.Errorf("Lease %s/%s: no holder other than %q within %s (last: %s)", quickstart.DefaultBindingNamespace, leaseName, not, timeout, last)
		}
		if err := h.pause(ctx, 200*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// activeLines lists the lines of a manager log, after offset, that only
// an active manager writes.
func activeLines(path string, offset int64) []string {
	var out []string
	for _, msg := range activeMsgs {
		if ts, ok := findLogLine(path, offset, msg); ok {
			out = append(out, fmt.Sprintf("%q at %s", msg, ts.Format("15:04:05.000")))
		}
	}
	return out
}
