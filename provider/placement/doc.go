// Package placement decides which Flightctl device runs a pod.
//
// A FleetBinding registers one virtual-kubelet node for a whole fleet, so
// kube-scheduler binds a pod to the fleet, never to a device. This package
// turns that binding into exactly one device: it reads the pod's targeting
// (the flightctl.io/device-id nodeSelector key or annotation and the
// flightctl.io/device-selector annotation, see docs/CONVENTIONS.md), keeps
// the devices that match and can take workloads, and picks the one that
// stays least allocated after the pod is added, so replicas spread.
//
// The package is pure: it talks to neither Kubernetes nor Flightctl. Callers
// pass the devices they observed and a Ledger, the in-memory record of what
// each placed pod holds on each device. Place reserves through the Ledger,
// so choosing a device and claiming room on it is one atomic step and two
// pods placed at the same moment cannot overcommit a device.
//
// # Pods that fit the node but no device
//
// kube-scheduler only sees the node's total, the sum over devices, so it
// can bind a pod that fits the fleet but no single device. Place then
// returns a *NoFitError, and NoFitError.Permanent tells the caller what to
// do with the pod:
//
//   - Permanent: no device could ever hold the pod as it is written. Its
//     requests exceed the allocatable of every matching device that no fleet
//     owns, its targeting matches no existing device, every matching device
//     is owned by a Flightctl fleet, or its targeting is malformed. Waiting
//     cannot help, so the caller fails the pod (phase Failed and a Warning
//     event carrying the message).
//   - Not permanent: the pod would fit some matching device if that device
//     were empty and online, but pods already placed there or the device
//     being offline prevent it now. The caller keeps the pod Pending with a
//     condition carrying the message and calls Place again when room
//     appears. Failing such a pod would make its ReplicaSet create a
//     replacement that the scheduler binds to the same node straight away,
//     only to fail again: a create/fail loop.
//
// Devices owned by a Flightctl fleet count as "never" rather than "not yet":
// Flightctl refuses per-device changes on them, and only an administrator
// changing the fleet can alter that, just as only an administrator can
// enrol a device that a device-id names but that does not exist.
//
// # Resources
//
// Only cpu and memory requests and a per-device pod count are checked; the
// node's total is what kube-scheduler already checked for everything else.
// Requests are computed as kube-scheduler does (see PodRequests).
package placement
