package node

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// runtimeHandle is one running node and how to stop it.
type runtimeHandle struct {
	rt          *Runtime
	fingerprint string
	cancel      context.CancelFunc
	done        chan struct{}
}

// registry is the Manager's set of running nodes, by binding, and the lock
// that guards it. It also answers what nodes need to know of each other on
// shared devices.
type registry struct {
	mu    sync.Mutex
	nodes map[types.NamespacedName]*runtimeHandle
}

func newRegistry() *registry {
	return &registry{nodes: map[types.NamespacedName]*runtimeHandle{}}
}

func (r *registry) get(key types.NamespacedName) *runtimeHandle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nodes[key]
}

func (r *registry) put(key types.NamespacedName, h *runtimeHandle) {
	r.mu.Lock()
	r.nodes[key] = h
	r.mu.Unlock()
}

// drop removes key's handle if it is still h.
func (r *registry) drop(key types.NamespacedName, h *runtimeHandle) {
	r.mu.Lock()
	if r.nodes[key] == h {
		delete(r.nodes, key)
	}
	r.mu.Unlock()
}

// all is a snapshot of the running nodes.
func (r *registry) all() []*runtimeHandle {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*runtimeHandle, 0, len(r.nodes))
	for _, h := range r.nodes {
		out = append(out, h)
	}
	return out
}

// others returns the runtimes of every binding but uid.
func (r *registry) others(uid types.UID) []*Runtime {
	var out []*Runtime
	for _, h := range r.all() {
		if h.rt.cfg.binding.UID != uid {
			out = append(out, h.rt)
		}
	}
	return out
}

// expectedExcept unions what every other node expects on its devices.
func (r *registry) expectedExcept(uid types.UID) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, rt := range r.others(uid) {
		for dev, apps := range rt.sweeper.expected() {
			if out[dev] == nil {
				out[dev] = map[string]bool{}
			}
			for app := range apps {
				out[dev][app] = true
			}
		}
	}
	return out
}

// claimedByOlder maps devices that an older binding of this manager uses
// to that binding, so two bindings whose selectors overlap never place pods
// on the same device: the older keeps it.
func (r *registry) claimedByOlder(b *vkv1.FleetBinding) map[string]string {
	out := map[string]string{}
	for _, rt := range r.others(b.UID) {
		other := rt.cfg.binding
		older := other.CreationTimestamp.Before(&b.CreationTimestamp) ||
			(other.CreationTimestamp.Equal(&b.CreationTimestamp) && other.Namespace+"/"+other.Name < b.Namespace+"/"+b.Name)
		if !older {
			continue
		}
		for _, d := range rt.poller.deviceNames() {
			out[d] = other.Namespace + "/" + other.Name
		}
	}
	return out
}
