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
	// first: this version is the first this replica saw, so it does not
	// know when the Lease last changed.
	first bool
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
		next[l.Name] = seenLease{version: l.ResourceVersion, at: now, first: !ok}
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

// memberLive reports whether a member Lease is live. Once this replica saw
// it change, that is judged as expired is; before, by the renew time the
// holder wrote, so a replica that just started does not count a member
// killed shortly before as live for a whole duration (it would leave that
// member's bindings unclaimed). Only the assignment depends on this, never
// the fencing, so trusting the holder's clock here is safe.
func (o *observer) memberLive(l *coordinationv1.Lease, now time.Time) bool {
	o.mu.Lock()
	seen, ok := o.last[l.Name]
	o.mu.Unlock()
	if ok && seen.first && l.Spec.RenewTime != nil && l.Spec.LeaseDurationSeconds != nil {
		return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second).After(now)
	}
	return !o.expired(l, now)
}
