// Package quickstart runs the seven scenarios of docs/quickstart.md against a
// running vk-flightctl: a Kubernetes control plane, the vk-flightctl manager
// with a FleetBinding for one fleet, and a Flightctl API (the simulator in
// test/flightctlsim, or any server whose devices can be cut off).
//
// The scenarios act like a user at a terminal: every action is a kubectl
// command (the v1.37 kubectl the project builds), a GET on the Flightctl
// device API, or `flightctl-sim disconnect|reconnect`. Each prints the
// command, what it saw and a verdict per check, so the same code is the
// narrated `make demo` and the end-to-end suite in test/e2e, and a failure
// in either reads like a bug report.
//
// [Stack] brings the whole setup up from nothing (control plane, simulator,
// CRD, RBAC, ConfigMap, Secret, manager, FleetBinding) and tears it down; it
// is shared by hack/demo and test/e2e so both exercise the same install.
//
// The scenarios build on each other in order, as in the quickstart:
// scenario 2 counts scenario 1's pod in the node's allocated resources and
// scenario 6 deletes scenario 1's pod. Each still creates what it needs when
// an earlier scenario failed to leave it behind, so one failure does not
// hide the verdict on the others.
package quickstart
