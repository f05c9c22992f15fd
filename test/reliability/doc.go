// Package reliability holds the fault and restart tests of vk-flightctl
// (GitHub issue 9). TestReliability brings up the same stack as the
// end-to-end suite (test/quickstart.Stack: a real local control plane, the
// flightctl-sim simulator and the manager as processes on 127.0.0.1, in a
// temporary directory), adds devices to the simulated fleet, and then drives
// churn — bare pods created, re-imaged and deleted, a Deployment scaled —
// while it injects one kind of fault per phase:
//
//   - baseline: no fault, to measure convergence;
//   - errors: 10% of Flightctl API requests answered 503;
//   - latency: 500 ms added to every Flightctl API request;
//   - conflicts: 20% of device writes answered 409 (stale resourceVersion);
//   - unreachable: Flightctl drops every connection (quick 20 s, full 2 min);
//   - flapping: one device disconnected and reconnected several times,
//     each time for less than the reconnect timeout;
//   - restarts: the manager killed with SIGKILL at random moments of the
//     churn and started again (quick 3 times, full 10);
//   - leader-handover: the manager replaced by two leader-elected ones (as a
//     two-replica Deployment runs them); the Lease holder is killed with
//     SIGKILL and the standby must take over on its own once the Lease
//     expires (15 s); the killed one comes back as the new standby. Also
//     asserted: the standby never acts while the leader runs, the Lease
//     changes hands once, and the binding has exactly one node. The later
//     phases run with these two managers;
//   - fleet-owned-brief: as fleet-owned below, but the device is released
//     (label removed, fleet deleted) a quarter of the reconnect timeout
//     later, as when an administrator corrects a wrong label. The
//     fleet's rollout has wiped our applications meanwhile; the device was
//     away for less than the reconnect timeout, so its pods must not be
//     rescheduled but run on it again (their applications written again),
//     beside the fleet's application, which must be left alone;
//   - fleet-owned: the device holding the most pods is labelled into a
//     Flightctl fleet. As on a real Flightctl (transcripts 05 and 30d in
//     test/flightctlsim/testdata/transcripts, which the simulator is
//     checked against), the fleet owns it about a second later and its
//     template replaces the device's whole spec, so our applications are
//     gone at once and every further write of ours gets 409. Also
//     asserted: the binding lists the device as unusable (OwnedByFleet),
//     its pods end up rescheduled onto other devices after the reconnect
//     timeout (DeviceTimeout), and its agent reports none of our
//     applications. The device is then released and must come back into
//     use with the fleet's own application left alone;
//   - device-deleted: a device holding pods deleted from Flightctl, then
//     registered again.
//   - sharded: the managers replaced by three sharded ones (--sharding,
//     as config/sharded runs them) and nine more bindings added (one
//     device and two pods each, ten bindings in all); the replica holding
//     the most bindings is SIGKILLed, later a new replica joins. Asserted:
//     after each step every binding's status.shard is its rendezvous-hash
//     owner among the live replicas and its node is Ready; a killed
//     replica's bindings are served again within the Lease duration, two
//     retry periods and 5 s; the join moves bindings only to the
//     newcomer; the pods of bindings that did not move are never seen
//     other than Running and Ready, and no extra pod is replaced, lost,
//     duplicated or leaked. Quick mode uses 6 s Leases, full mode the
//     15 s default. It prints hand-over times (median, max) and bindings
//     moved per kill and join. It runs last: the sharded replicas stay.
//
// After each phase, with the faults lifted, it waits for convergence and
// checks the invariants:
//
//   - every pod that should run (not terminating, not Failed) has exactly one
//     application, on exactly the device its flightctl.io/device annotation
//     names, carrying the pod's current image;
//   - no device holds an owned (vk-) application whose pod is gone;
//   - every such pod is Running and Ready within a bound once the system is
//     healthy again (3 status polls, the simulated render and agent delays,
//     and some slack), and no deleted pod stays Terminating;
//   - no pod that should run is placed on a device a Flightctl fleet owns;
//   - the Deployment has its replicas ready; no bare pod disappears except
//     through a documented DeviceTimeout reschedule (fleet-owned and
//     device-deleted phases);
//   - the virtual node never leaves Ready (watched throughout).
//
// Churn alone can hide a dropped change (a later operation on the same pod
// rewrites it), so when a fault starts (and after each SIGKILL) the test
// also creates one "sentinel" pod and re-images one running pod, and the
// churn leaves both alone until the next phase: the manager must complete
// those changes on its own once the fault is gone.
//
// A phase that never converges fails; its broken pods are then
// force-deleted ("quarantined") so the following phases are judged on their
// own, and the test stops only when even that does not restore a clean
// state. The phases that reschedule pods (fleet-owned, device-deleted) run
// last.
//
// It ends with a figures table: operations, faults injected (from the
// simulator's statistics), manager restarts, lost / duplicated / leaked
// workloads (all must be 0) and per-phase convergence times.
//
//	go test ./test/reliability/... -run TestReliability -v                   # quick (about 5 min)
//	RELIABILITY_MODE=full go test ./test/reliability/... -run TestReliability -v -timeout 40m
//	make test-reliability                                                     # the same, full mode
//	RELIABILITY_PHASES=sharded go test ./test/reliability/... -run TestReliability -v     # about 90 s
//	RELIABILITY_PHASES=fleet-owned,leader-handover go test ./test/reliability/... -run TestReliability -v
//
// Environment: RELIABILITY_MODE (unset or "quick", or "full"),
// RELIABILITY_PHASES (comma-separated phase names, e.g. "fleet-owned" or
// "baseline,restarts"; they run in the order above whatever the order
// given; unset or empty runs every phase; an unknown name fails at once
// with the list of phases),
// RELIABILITY_SEED (repeat a run's random choices; the seed is printed),
// RELIABILITY_KEEP=1 (keep the temporary directory with every log),
// K8S_BIN_DIR / KUBEBUILDER_ASSETS as for test/e2e. Missing prerequisites
// fail the test with the command that provides them; it never skips.
package reliability
