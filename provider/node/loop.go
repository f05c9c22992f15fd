package node

import (
	"context"
	"time"

	"github.com/go-logr/logr"

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
// orphans.
func (l *statusLoop) syncOnce(ctx context.Context) {
	start := time.Now()
	err := l.poller.poll(ctx)
	l.node.push()
	if err != nil {
		// Pods keep their last known status while Flightctl is away.
		l.log.Error(err, "Listing devices failed; pods keep their last known status")
		return
	}
	fleet := l.poller.current()
	podsOn := podsByDevice(l.store)
	t := l.reconnector.track(ctx, fleet, podsOn, l.sweeper.expected())
	if t.any() {
		l.trigger()
	}
	l.mapper.update()
	for _, name := range t.reconnected {
		for _, p := range podsOn[name] {
			l.log.Info("Workload status synchronized", "pod", podKey(p.Namespace, p.Name), "device", name)
		}
	}
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
