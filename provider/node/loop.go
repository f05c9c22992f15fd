package node

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"

	"github.com/vk-flightctl/vk-flightctl/internal/settings"
)

// minKickDelay is the shortest wait between a write and the poll it asks
// for. Every pod start waits for that poll, so it is short; `make bench`
// showed the former 200 ms as a floor on start latency.
const minKickDelay = 50 * time.Millisecond

// statusLoop is the node's heartbeat towards Flightctl: every poll it
// lists the devices, then lets each part act on the new listing in a fixed
// order. It only sequences; each step's state is its owner's.
type statusLoop struct {
	fleet       string
	interval    time.Duration
	poller      *poller
	node        *nodeObject
	store       *podStore
	reconnector *reconnector
	mapper      *statusMapper
	deployer    *deployer
	remover     *remover
	sweeper     *orphanSweeper
	fleetWide   *fleetWide
	// trigger asks the FleetBinding controller to persist status now.
	trigger func()
	log     logr.Logger
}

// run polls until ctx ends.
func (l *statusLoop) run(ctx context.Context) {
	interval := l.interval
	if interval <= 0 {
		interval = settings.DefaultStatusPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		l.syncOnce(ctx)
		took := time.Since(start)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.poller.kick:
			// A write asks for an early poll so the pod turns Running
			// soon. Waiting a little coalesces a burst of writes into one
			// poll, and waiting at least as long as the last poll took
			// keeps a large fleet's listing from running back to back.
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(minKickDelay, took)):
			}
		}
	}
}

// syncOnce is one status poll: devices, node, timers, pods, retries,
// orphans. Its work follows what changed: pod statuses are mapped again
// only on devices that changed and for pods not settled, and the
// reconnection timers are walked only when a device changed or a timer
// runs.
func (l *statusLoop) syncOnce(ctx context.Context) {
	start := time.Now()
	err := l.poller.poll(ctx, hotPodDevices(l.store))
	l.node.push()
	if err != nil {
		// Pods keep their last known status while Flightctl is away.
		l.log.Error(err, "Listing devices failed; pods keep their last known status")
		return
	}
	fleet := l.poller.current()
	changed, all := l.poller.takeChanged()
	if all || len(changed) > 0 || l.reconnector.tracking() {
		podsOn := podsByDevice(l.store)
		t := l.reconnector.track(ctx, fleet, podsOn, l.sweeper.expected())
		if t.any() {
			l.trigger()
		}
		for _, name := range t.reconnected {
			for _, p := range podsOn[name] {
				l.log.Info("Workload status synchronized", "pod", podKey(p.Namespace, p.Name), "device", name)
			}
		}
	}
	l.mapper.update(changed, all)
	l.remover.retry(ctx)
	l.deployer.retry(ctx)
	l.fleetWide.sync(ctx)
	// A Fleet's devices carry the Fleet's applications, which per-device
	// sweeping must not touch (Flightctl refuses it anyway).
	if !l.fleetWide.active() {
		l.sweeper.sweepIfDue(ctx)
	}
	recordGauges(l.fleet, fleet, l.store)
	statusLoopDuration.WithLabelValues(l.fleet).Observe(time.Since(start).Seconds())
}

// hotPodDevices are the devices whose pods are not settled: not yet
// Running and Ready (or finished), terminating, or with a removal owed.
// Their devices are read by name at every poll, so a pod's start or stop
// shows within one poll, whatever the full resync period.
func hotPodDevices(s *podStore) map[string]bool {
	out := map[string]bool{}
	s.each(func(st *podState) {
		if st.device == "" || out[st.device] {
			return
		}
		if !podSettled(st.status) || st.pod.DeletionTimestamp != nil || st.removalOwed || st.owed {
			out[st.device] = true
		}
	})
	return out
}

// podSettled says a status will only change when its device does:
// Running and Ready, or finished.
func podSettled(s corev1.PodStatus) bool {
	switch s.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return true
	case corev1.PodRunning:
		for _, c := range s.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
	}
	return false
}
