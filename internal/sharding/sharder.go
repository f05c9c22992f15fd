// Package sharding spreads FleetBindings over the replicas of the manager
// (sharded mode, --sharding). Each replica announces itself with a Lease
// of its own (membership); each binding goes to one live replica by
// rendezvous hashing (Owner); and the replica runs the binding's node only
// while it holds the binding's own Lease, taken with client-go's leader
// election, so a node never runs in two replicas at once: the old owner
// stops the node before it releases the Lease, or stops it when it cannot
// renew (after RenewDeadline, before the Lease expires after
// LeaseDuration).
package sharding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// Lease name prefixes in the manager's namespace.
const (
	memberLeasePrefix  = "vk-flightctl-member-"
	bindingLeasePrefix = "vk-flightctl-binding-"
)

// ErrNotHeld is returned by Ensure and Remove for a binding whose Lease
// this replica does not hold: its node must not run here.
var ErrNotHeld = errors.New("this replica does not hold the binding's Lease")

// Nodes runs the virtual nodes of this replica (provider/node's Manager).
type Nodes interface {
	// Ensure starts or updates the binding's node.
	Ensure(ctx context.Context, req nodeapi.Request) (nodeapi.Report, error)
	// Remove stops the node and cleans up its devices and Node object.
	Remove(ctx context.Context, key client.ObjectKey) error
	// Release stops the node and leaves everything for the next owner.
	Release(key client.ObjectKey)
}

// Options configure a Sharder.
type Options struct {
	// Replica names this replica (the pod name); it must be unique among
	// the replicas and is what status.shard shows.
	Replica string
	// Namespace holds the membership and binding Leases.
	Namespace string
	// LeaseDuration, RenewDeadline and RetryPeriod time every Lease, as
	// for leader election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Log is the sharder's logger.
	Log logr.Logger
	// OnNodeChange, when set, is told when this replica is about to start
	// a binding's node (running true) and after it stopped it (false),
	// in the order these happen. Tests use it to prove a node never runs
	// in two replicas at once.
	OnNodeChange func(replica string, key client.ObjectKey, running bool)
}

// Sharder decides which bindings this replica runs. It is a
// controller-runtime Runnable that runs on every replica (no leader
// election), and it gates the node manager: Ensure and Remove pass only
// for bindings whose Lease this replica holds.
type Sharder struct {
	kube     kubernetes.Interface
	bindings client.Reader
	nodes    Nodes
	o        Options
	// identity is the holder identity in Leases: the replica name and a
	// random suffix, so that a restarted replica waits out the Leases of
	// its predecessor like anyone else instead of taking them at once.
	identity string
	triggers chan event.GenericEvent
	seen     *observer

	mu      sync.Mutex
	ready   bool
	members []string
	// claims are the bindings assigned here: their Lease held or wanted.
	claims map[client.ObjectKey]*fence
}

// fence is this replica's claim on one binding: the elector that holds
// the binding's Lease and whether the node runs. mu orders node start and
// stop against gaining and losing the Lease.
type fence struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	held    bool
	running bool
	// releasing is set when this replica hands the binding back, so the
	// elector's stop is not counted as a lost Lease.
	releasing bool
}

// New returns a Sharder; add it to the manager and use it as the
// reconciler's node manager and shard.
func New(kube kubernetes.Interface, bindings client.Reader, nodes Nodes, o Options) *Sharder {
	return &Sharder{
		kube:     kube,
		bindings: bindings,
		nodes:    nodes,
		o:        o,
		identity: o.Replica + "_" + rand.String(8),
		// The controller drains this channel into its queue; a large
		// buffer keeps a rebalance of many bindings from waiting on it.
		triggers: make(chan event.GenericEvent, 1024),
		seen:     newObserver(),
		claims:   map[client.ObjectKey]*fence{},
	}
}

// Name is this replica's name.
func (s *Sharder) Name() string { return s.o.Replica }

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica shards.
func (s *Sharder) NeedLeaderElection() bool { return false }

// Triggers are bindings to reconcile now: those this replica just gained
// or lost, and all of its bindings after a membership change.
func (s *Sharder) Triggers() <-chan event.GenericEvent { return s.triggers }

// Start announces this replica, then follows membership and rebalances
// every RetryPeriod until ctx ends; it then stops this replica's nodes,
// releases their Leases and finally its membership.
func (s *Sharder) Start(ctx context.Context) error {
	memberCtx, stopMember := context.WithCancel(context.Background())
	memberDone := make(chan struct{})
	joined := make(chan struct{})
	go func() {
		defer close(memberDone)
		s.runElector(memberCtx, memberLeasePrefix+s.o.Replica, map[string]string{vkv1.LabelShardMember: "true"},
			func(context.Context) { closeOnce(joined) }, func() {})
	}()
	defer func() {
		s.handBackAll()
		stopMember()
		<-memberDone
		shardBindings.DeleteLabelValues(s.o.Replica)
	}()
	select {
	case <-ctx.Done():
		return nil
	case <-joined:
	}
	s.o.Log.Info("Joined the shard members", "replica", s.o.Replica, "identity", s.identity)
	// One period for the other replicas' Leases to be seen, so the
	// first assignment does not grab bindings others run.
	ticker := time.NewTicker(s.o.RetryPeriod)
	defer ticker.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// sync lists the Leases, updates the member list and rebalances.
func (s *Sharder) sync(ctx context.Context) {
	leases, err := s.kube.CoordinationV1().Leases(s.o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		s.o.Log.Error(err, "Listing shard Leases failed; keeping the last member list")
		return
	}
	now := time.Now()
	s.seen.observe(leases.Items, now)
	members := []string{s.o.Replica}
	for i := range leases.Items {
		l := &leases.Items[i]
		name, ok := strings.CutPrefix(l.Name, memberLeasePrefix)
		if !ok || l.Labels[vkv1.LabelShardMember] == "" || name == s.o.Replica {
			continue
		}
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && s.seen.memberLive(l, now) {
			members = append(members, name)
		}
	}
	s.mu.Lock()
	changed := !s.ready || !sameSet(members, s.members)
	s.ready, s.members = true, members
	s.mu.Unlock()
	shardMembers.WithLabelValues(s.o.Replica).Set(float64(len(members)))
	if changed {
		s.o.Log.Info("Shard members changed", "replica", s.o.Replica, "members", members)
	}
	s.rebalance(ctx, leases.Items, now)
}

// rebalance hands back the bindings that are gone or now belong to
// another replica (their Lease of a gone binding is deleted), and claims
// those that now belong here: their elector starts at once, after an
// expired Lease was freed, so a dead replica's binding is taken at the
// elector's first try, and the controller is asked to reconcile them.
func (s *Sharder) rebalance(ctx context.Context, leases []coordinationv1.Lease, now time.Time) {
	var list vkv1.FleetBindingList
	if err := s.bindings.List(ctx, &list); err != nil {
		s.o.Log.Error(err, "Listing FleetBindings to rebalance failed")
		return
	}
	byName := make(map[string]*coordinationv1.Lease, len(leases))
	for i := range leases {
		byName[leases[i].Name] = &leases[i]
	}
	exists := make(map[client.ObjectKey]bool, len(list.Items))
	for i := range list.Items {
		b := &list.Items[i]
		key := client.ObjectKeyFromObject(b)
		exists[key] = true
		if s.owner(key) != s.o.Replica {
			s.handBack(key)
			continue
		}
		f, claimed := s.claimed(key)
		if claimed && f.isHeld() {
			continue
		}
		freed := false
		if l := byName[bindingLeaseName(key)]; l != nil {
			freed = s.freeIfExpired(ctx, l, now)
		}
		if freed && claimed {
			// The waiting elector would try again only after its retry
			// period; a new one tries at once. It holds nothing, so
			// replacing it stops no node.
			s.handBack(key)
			claimed = false
		}
		if !claimed {
			s.claim(key)
			s.trigger(ctx, b)
		}
	}
	s.mu.Lock()
	var gone []client.ObjectKey
	for key := range s.claims {
		if !exists[key] {
			gone = append(gone, key)
		}
	}
	s.mu.Unlock()
	for _, key := range gone {
		s.handBack(key)
		err := s.kube.CoordinationV1().Leases(s.o.Namespace).Delete(ctx, bindingLeaseName(key), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			s.o.Log.Error(err, "Deleting the Lease of a deleted FleetBinding failed", "fleetbinding", key.String())
		}
	}
}

// freeIfExpired clears the holder of a binding Lease this replica wants
// when the Lease has not changed for its whole duration as this replica
// watched it: its holder is dead. client-go's elector would otherwise
// wait a further full duration from the moment it first looks, so a
// killed replica's bindings would move only after twice the duration.
// The update is conditional on the Lease's resourceVersion, so a holder
// that renewed meanwhile keeps it.
func (s *Sharder) freeIfExpired(ctx context.Context, l *coordinationv1.Lease, now time.Time) bool {
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || *l.Spec.HolderIdentity == s.identity || !s.seen.expired(l, now) {
		return false
	}
	stale := l.DeepCopy()
	stale.Spec.HolderIdentity = nil
	if _, err := s.kube.CoordinationV1().Leases(s.o.Namespace).Update(ctx, stale, metav1.UpdateOptions{}); err != nil {
		s.o.Log.V(1).Info("Freeing an expired binding Lease failed", "lease", l.Name, "err", err.Error())
		return false
	}
	s.o.Log.Info("Freed the expired Lease of a dead replica", "lease", l.Name, "holder", *l.Spec.HolderIdentity)
	return true
}

func (s *Sharder) claimed(key client.ObjectKey) (*fence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.claims[key]
	return f, ok
}

func (f *fence) isHeld() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held
}

func (s *Sharder) owner(key client.ObjectKey) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Owner(key.String(), s.members)
}

// Hold reports whether this replica holds the binding's Lease, so its node
// may run here. A binding assigned here gets its elector on the first
// call; one assigned elsewhere is handed back. retry says when to ask
// again (0: a trigger will come).
func (s *Sharder) Hold(key client.ObjectKey) (held bool, retry time.Duration) {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if !ready {
		return false, s.o.RetryPeriod
	}
	if s.owner(key) != s.o.Replica {
		s.handBack(key)
		return false, 0
	}
	f := s.claim(key)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held {
		return true, 0
	}
	return false, s.o.RetryPeriod
}

// claim returns the binding's fence, starting its elector if needed.
func (s *Sharder) claim(key client.ObjectKey) *fence {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.claims[key]; f != nil {
		return f
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fence{cancel: cancel, done: make(chan struct{})}
	s.claims[key] = f
	go func() {
		defer close(f.done)
		s.runElector(ctx, bindingLeaseName(key), map[string]string{vkv1.LabelShardBinding: "true"},
			func(leading context.Context) { s.gained(leading, key, f) },
			func() { s.lost(key, f) })
	}()
	return f
}

// gained marks the Lease held (unless it was lost again already).
func (s *Sharder) gained(leading context.Context, key client.ObjectKey, f *fence) {
	f.mu.Lock()
	if leading.Err() == nil && !f.releasing {
		f.held = true
		shardHandovers.WithLabelValues(s.o.Replica, "acquired").Inc()
		s.o.Log.Info("Holding the binding's Lease", "fleetbinding", key.String(), "replica", s.o.Replica)
	}
	f.mu.Unlock()
	s.countHeld()
	s.trigger(context.Background(), &vkv1.FleetBinding{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
}

// lost stops the node when the elector stopped leading without this
// replica handing the binding back: the Lease could not be renewed.
func (s *Sharder) lost(key client.ObjectKey, f *fence) {
	f.mu.Lock()
	wasHeld := f.held && !f.releasing
	f.held = false
	s.stopNode(key, f)
	f.mu.Unlock()
	if wasHeld {
		shardHandovers.WithLabelValues(s.o.Replica, "lost").Inc()
		s.o.Log.Info("Lost the binding's Lease; its node stopped", "fleetbinding", key.String(), "replica", s.o.Replica)
		s.trigger(context.Background(), &vkv1.FleetBinding{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})
	}
	s.countHeld()
}

// stopNode releases the node; f.mu is held.
func (s *Sharder) stopNode(key client.ObjectKey, f *fence) {
	if !f.running {
		return
	}
	s.nodes.Release(key)
	f.running = false
	if s.o.OnNodeChange != nil {
		s.o.OnNodeChange(s.o.Replica, key, false)
	}
}

// handBack stops the binding's node, then releases its Lease: in this
// order, so the next owner can only start after the node stopped here.
func (s *Sharder) handBack(key client.ObjectKey) {
	s.mu.Lock()
	f := s.claims[key]
	delete(s.claims, key)
	s.mu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock()
	wasHeld := f.held
	f.releasing, f.held = true, false
	s.stopNode(key, f)
	f.mu.Unlock()
	f.cancel()
	<-f.done
	if wasHeld {
		shardHandovers.WithLabelValues(s.o.Replica, "released").Inc()
		s.o.Log.Info("Handed the binding back", "fleetbinding", key.String(), "replica", s.o.Replica)
	}
	s.countHeld()
}

func (s *Sharder) handBackAll() {
	s.mu.Lock()
	keys := make([]client.ObjectKey, 0, len(s.claims))
	for k := range s.claims {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() { s.handBack(k) })
	}
	wg.Wait()
}

func (s *Sharder) countHeld() {
	s.mu.Lock()
	fences := make([]*fence, 0, len(s.claims))
	for _, f := range s.claims {
		fences = append(fences, f)
	}
	s.mu.Unlock()
	n := 0
	for _, f := range fences {
		f.mu.Lock()
		if f.held {
			n++
		}
		f.mu.Unlock()
	}
	shardBindings.WithLabelValues(s.o.Replica).Set(float64(n))
}

// Ensure starts or updates the binding's node if this replica holds its
// Lease.
func (s *Sharder) Ensure(ctx context.Context, req nodeapi.Request) (nodeapi.Report, error) {
	key := client.ObjectKeyFromObject(req.Binding)
	s.mu.Lock()
	f := s.claims[key]
	s.mu.Unlock()
	if f == nil {
		return nodeapi.Report{}, ErrNotHeld
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held {
		return nodeapi.Report{}, ErrNotHeld
	}
	if !f.running {
		f.running = true
		if s.o.OnNodeChange != nil {
			s.o.OnNodeChange(s.o.Replica, key, true)
		}
	}
	return s.nodes.Ensure(ctx, req)
}

// Remove cleans up the binding's node, devices and Node object if this
// replica holds its Lease.
func (s *Sharder) Remove(ctx context.Context, key client.ObjectKey) error {
	s.mu.Lock()
	f := s.claims[key]
	s.mu.Unlock()
	if f == nil {
		return ErrNotHeld
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held {
		return ErrNotHeld
	}
	if err := s.nodes.Remove(ctx, key); err != nil {
		return err
	}
	if f.running {
		f.running = false
		if s.o.OnNodeChange != nil {
			s.o.OnNodeChange(s.o.Replica, key, false)
		}
	}
	return nil
}

// runElector holds the Lease name with client-go's leader election until
// ctx ends, trying again after each loss. The Lease is released when ctx
// ends; callers stop what it guards first.
func (s *Sharder) runElector(ctx context.Context, name string, labels map[string]string, started func(context.Context), stopped func()) {
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: s.o.Namespace, Name: name},
				Client:     s.kube.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: s.identity},
				Labels:     labels,
			},
			LeaseDuration:   s.o.LeaseDuration,
			RenewDeadline:   s.o.RenewDeadline,
			RetryPeriod:     s.o.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks:       leaderelection.LeaderCallbacks{OnStartedLeading: started, OnStoppedLeading: stopped},
		})
		if err != nil {
			// Only invalid timings get here, and New's caller checks them.
			s.o.Log.Error(err, "Cannot elect for a Lease", "lease", name)
			return
		}
		le.Run(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(s.o.RetryPeriod):
		}
	}
}

// trigger waits for room in the channel rather than drop the nudge: a
// binding that moved here is reconciled only through it. The bound keeps
// a stopped controller from blocking an elector forever.
func (s *Sharder) trigger(ctx context.Context, b *vkv1.FleetBinding) {
	select {
	case s.triggers <- event.GenericEvent{Object: b}:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		s.o.Log.Info("Dropped a reconcile trigger; the periodic resync will catch up", "fleetbinding", client.ObjectKeyFromObject(b).String())
	}
}

// bindingLeaseName is vk-flightctl-binding-<namespace>.<name>: a namespace
// has no dots, so the name is unambiguous. Names too long for a Lease are
// shortened with a hash.
func bindingLeaseName(key client.ObjectKey) string {
	name := bindingLeasePrefix + key.Namespace + "." + key.Name
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(key.String()))
	return name[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// CheckTimings refuses Lease timings client-go's elector would reject.
func CheckTimings(leaseDuration, renewDeadline, retryPeriod time.Duration) error {
	if !(leaseDuration > renewDeadline && renewDeadline > time.Duration(leaderelection.JitterFactor*float64(retryPeriod)) && retryPeriod > 0) {
		return fmt.Errorf("lease timings need lease duration (%s) > renew deadline (%s) > %.1f × retry period (%s) > 0",
			leaseDuration, renewDeadline, leaderelection.JitterFactor, retryPeriod)
	}
	return nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := map[string]bool{}
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if !in[x] {
			return false
		}
	}
	return true
}
