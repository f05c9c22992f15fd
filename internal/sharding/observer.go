package sharding

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// observer remembers when this replica last saw each Lease change. A
// Lease is expired when it has not changed for its duration by this
// replica's own clock, as client-go's elector judges it, so clock skew
// between replicas never makes a live holder look dead. A Lease first
// seen now counts as fresh: a new replica waits out one duration before
// calling anyone dead.
type observer struct {
	mu   sync.Mutex
	last map[string]seenLease
}

type seenLease struct {
	version string
	at      time.Time
}

func newObserver() *observer { return &observer{last: map[string]seenLease{}} }

// observe records the Leases of one listing; Leases gone from it are
// forgotten.
func (o *observer) observe(leases []coordinationv1.Lease, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := make(map[string]seenLease, len(leases))
	for i := range leases {
		l := &leases[i]
		prev, ok := o.last[l.Name]
		if ok && prev.version == l.ResourceVersion {
			next[l.Name] = prev
			continue
		}
		next[l.Name] = seenLease{version: l.ResourceVersion, at: now}
	}
	o.last = next
}

// expired reports whether l has not changed for its whole duration.
func (o *observer) expired(l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.LeaseDurationSeconds == nil {
		return false
	}
	o.mu.Lock()
	seen, ok := o.last[l.Name]
	o.mu.Unlock()
	return ok && seen.version == l.ResourceVersion &&
		now.Sub(seen.at) > time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second
}
