package sharding

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func lease(name, version string, renewed time.Time) coordinationv1.Lease {
	d := int32(10)
	holder := "r_x"
	return coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: version},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d, RenewTime: &metav1.MicroTime{Time: renewed}},
	}
}

// Expiry is judged by this replica's clock from when it saw a Lease
// change, never by the holder's renew time: a first sight is fresh.
func TestObserverExpiresOnlyUnchangedLeases(t *testing.T) {
	o := newObserver()
	t0 := time.Now()
	// Renewed, by the holder's clock, long ago: still fresh on first sight.
	l := lease("b", "1", t0.Add(-time.Hour))
	o.observe([]coordinationv1.Lease{l}, t0)
	if o.expired(&l, t0.Add(9*time.Second)) {
		t.Fatal("a Lease first seen 9s ago (duration 10s) must not be expired")
	}
	if !o.expired(&l, t0.Add(11*time.Second)) {
		t.Fatal("a Lease unchanged for 11s (duration 10s) must be expired")
	}
	renewed := lease("b", "2", t0)
	o.observe([]coordinationv1.Lease{renewed}, t0.Add(8*time.Second))
	if o.expired(&renewed, t0.Add(17*time.Second)) {
		t.Fatal("a Lease seen changing 9s ago must not be expired")
	}
	// A stale copy (the version seen before) is never judged expired.
	if o.expired(&l, t0.Add(time.Hour)) {
		t.Fatal("a Lease version no longer current must not be judged")
	}
}

// A member first seen counts as live by its renew time, then by what this
// replica saw.
func TestMemberLiveness(t *testing.T) {
	o := newObserver()
	t0 := time.Now()
	dead := lease("vk-flightctl-member-a", "1", t0.Add(-11*time.Second))
	live := lease("vk-flightctl-member-b", "1", t0.Add(-time.Second))
	o.observe([]coordinationv1.Lease{dead, live}, t0)
	if o.memberLive(&dead, t0) {
		t.Fatal("a member whose renew time is past its duration is not live on first sight")
	}
	if !o.memberLive(&live, t0) {
		t.Fatal("a member renewed a second ago is live")
	}
	next := lease("vk-flightctl-member-b", "2", t0.Add(-time.Hour))
	o.observe([]coordinationv1.Lease{dead, next}, t0.Add(time.Second))
	if !o.memberLive(&next, t0.Add(5*time.Second)) {
		t.Fatal("a member seen changing is live for its duration, whatever its renew time")
	}
	if o.memberLive(&next, t0.Add(12*time.Second)) {
		t.Fatal("a member unchanged for longer than its duration is not live")
	}
}
