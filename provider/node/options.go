package node

import "time"

// DefaultPodSyncWorkers is each node's default pod worker count. A worker
// spends most of a pod's placement waiting on the API server (placement
// record) and Flightctl (device write), so it is well above CPU count:
// 10 capped bare-pod starts at about 170 pods/s in `make bench`.
const DefaultPodSyncWorkers = 32

// Options configure the node manager.
type Options struct {
	// KubeletVersion is reported as the node's kubelet version.
	KubeletVersion string
	// KubeletPort is advertised as the node's kubelet endpoint port.
	KubeletPort int32
	// InternalIP is advertised as the node's address.
	InternalIP string
	// PodSyncWorkers is virtual-kubelet's pod worker count per node.
	PodSyncWorkers int
	// Now is the clock (tests replace it).
	Now func() time.Time
}
