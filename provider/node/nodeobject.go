package node

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/go-logr/logr"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

var everything = labels.Everything()

// reservedNodeLabels cannot be overridden by spec.nodeLabels: pods and
// tools rely on them.
var reservedNodeLabels = map[string]bool{
	vkv1.LabelFleet:          true,
	"type":                   true,
	"kubernetes.io/role":     true,
	"kubernetes.io/hostname": true,
}

// nodeObject is the binding's Node: what it should look like now and
// when virtual-kubelet must be told. It owns virtual-kubelet's node status
// callback, the last status handed over, and their lock.
type nodeObject struct {
	name    string
	binding *vkv1.FleetBinding
	opts    Options
	poller  *poller
	kube    kubernetes.Interface
	log     logr.Logger

	mu   sync.Mutex
	cb   func(*corev1.Node)
	last *corev1.Node
}

func (n *nodeObject) setCallback(cb func(*corev1.Node)) {
	n.mu.Lock()
	n.cb = cb
	n.mu.Unlock()
}

// build returns the Node as it should be now.
func (n *nodeObject) build() *corev1.Node {
	b := n.binding
	fleet, _, pollErr := n.poller.state()

	arch := "amd64"
	capacity := b.Status.Capacity
	allocatable := b.Status.Allocatable
	if fleet != nil {
		capacity, allocatable = fleet.Capacity, fleet.Allocatable
		arch = majorityArch(fleet.Devices, arch)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   n.name,
			Labels: map[string]string{},
		},
		Spec: corev1.NodeSpec{Taints: b.Spec.NodeTaints},
		Status: corev1.NodeStatus{
			Capacity:    withPods(capacity, b.Spec.MaxPods),
			Allocatable: withPods(allocatable, b.Spec.MaxPods),
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  n.opts.KubeletVersion,
				OperatingSystem: "linux",
				Architecture:    arch,
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.opts.InternalIP},
				{Type: corev1.NodeHostName, Address: n.name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: n.opts.KubeletPort}},
			Conditions:      nodeConditions(fleet != nil, pollErr),
		},
	}
	for k, v := range b.Spec.NodeLabels {
		if !reservedNodeLabels[k] {
			node.Labels[k] = v
		}
	}
	node.Labels[vkv1.LabelFleet] = b.Spec.Fleet
	node.Labels["type"] = "virtual-kubelet"
	node.Labels["kubernetes.io/role"] = "agent"
	node.Labels["node-role.kubernetes.io/agent"] = ""
	node.Labels["kubernetes.io/os"] = "linux"
	node.Labels["kubernetes.io/arch"] = arch
	node.Labels["kubernetes.io/hostname"] = n.name
	return node
}

// push hands virtual-kubelet a new node status when capacity or conditions
// changed (heartbeat times aside).
func (n *nodeObject) push() {
	node := n.build()
	n.mu.Lock()
	cb, last := n.cb, n.last
	changed := last == nil || !sameNodeStatus(last, node)
	if changed {
		n.last = node
	}
	n.mu.Unlock()
	if cb != nil && changed {
		cb(node)
	}
}

// syncSpec sets the binding's taints: virtual-kubelet only creates the
// node with them and never updates the spec of an existing node.
func (n *nodeObject) syncSpec(ctx context.Context) error {
	taints := n.binding.Spec.NodeTaints
	if taints == nil {
		taints = []corev1.Taint{}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"taints": taints}})
	if err != nil {
		return err
	}
	_, err = n.kube.CoreV1().Nodes().Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// onStatusError recreates the Node when someone deleted it; any other
// failure goes back to virtual-kubelet, which retries.
func (n *nodeObject) onStatusError(ctx context.Context, err error) error {
	n.log.Error(err, "Updating node status failed; re-creating the node if it is gone")
	if _, cerr := n.kube.CoreV1().Nodes().Create(ctx, n.build(), metav1.CreateOptions{}); cerr != nil {
		n.log.V(1).Info("Re-creating the node failed", "error", cerr.Error())
		return err
	}
	return nil
}

func withPods(rl corev1.ResourceList, maxPods int32) corev1.ResourceList {
	out := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("0"),
		corev1.ResourceMemory: resource.MustParse("0"),
	}
	for k, v := range rl {
		out[k] = v.DeepCopy()
	}
	if maxPods <= 0 {
		maxPods = 110
	}
	out[corev1.ResourcePods] = *resource.NewQuantity(int64(maxPods), resource.DecimalSI)
	return out
}

func majorityArch(devs []inventory.Device, def string) string {
	counts := map[string]int{}
	best, bestN := def, 0
	for i := range devs {
		a := devs[i].Architecture
		if a == "" {
			continue
		}
		counts[a]++
		if counts[a] > bestN || (counts[a] == bestN && a < best) {
			best, bestN = a, counts[a]
		}
	}
	return best
}

func nodeConditions(listed bool, pollErr error) []corev1.NodeCondition {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	const reachable = corev1.NodeConditionType(vkv1.NodeConditionFlightctlReachable)
	reach := cond(reachable, corev1.ConditionTrue, "FlightctlReachable", "the last device listing succeeded")
	switch {
	case pollErr != nil:
		reach = cond(reachable, corev1.ConditionFalse, "FlightctlUnreachable",
			fmt.Sprintf("listing devices failed: %v; pods keep their last known status", pollErr))
	case !listed:
		reach = cond(reachable, corev1.ConditionUnknown, "NotYetListed", "devices not listed yet")
	}
	return []corev1.NodeCondition{
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "vk-flightctl virtual node is serving"),
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "placement checks memory per device"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "not tracked for virtual nodes"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "not tracked for virtual nodes"),
		cond(corev1.NodeNetworkUnavailable, corev1.ConditionFalse, "RouteCreated", "devices use their own networks"),
		reach,
	}
}

func sameNodeStatus(a, b *corev1.Node) bool {
	strip := func(cs []corev1.NodeCondition) []corev1.NodeCondition {
		out := make([]corev1.NodeCondition, len(cs))
		for i, c := range cs {
			c.LastHeartbeatTime, c.LastTransitionTime = metav1.Time{}, metav1.Time{}
			out[i] = c
		}
		return out
	}
	return reflect.DeepEqual(a.Labels, b.Labels) &&
		equalResources(a.Status.Capacity, b.Status.Capacity) &&
		equalResources(a.Status.Allocatable, b.Status.Allocatable) &&
		reflect.DeepEqual(strip(a.Status.Conditions), strip(b.Status.Conditions))
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}
