package node

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// NodeConditionFlightctlReachable is True while the last device listing
// succeeded. It is informational: the node stays Ready during a Flightctl
// outage so Kubernetes does not evict the fleet's pods.
const NodeConditionFlightctlReachable corev1.NodeConditionType = "FlightctlReachable"

var everything = labels.Everything()

// reservedNodeLabels cannot be overridden by spec.nodeLabels: pods and
// tools rely on them.
var reservedNodeLabels = map[string]bool{
	vkv1.LabelFleet:          true,
	"type":                   true,
	"kubernetes.io/role":     true,
	"kubernetes.io/hostname": true,
}

func listOptions(b *vkv1.FleetBinding) flightctl.ListOptions {
	return flightctl.ListOptions{LabelSelector: b.EffectiveDeviceSelector()}
}

// nodeObject builds the Node as it should be now.
func (rt *Runtime) nodeObject() *corev1.Node {
	b := rt.cfg.binding
	rt.mu.Lock()
	fleet, pollErr := rt.fleet, rt.pollErr
	rt.mu.Unlock()

	arch := "amd64"
	capacity := b.Status.Capacity
	allocatable := b.Status.Allocatable
	if fleet != nil {
		capacity, allocatable = fleet.Capacity, fleet.Allocatable
		arch = majorityArch(fleet.Devices, arch)
	}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   rt.nodeName,
			Labels: map[string]string{},
		},
		Spec: corev1.NodeSpec{Taints: b.Spec.NodeTaints},
		Status: corev1.NodeStatus{
			Capacity:    withPods(capacity, b.Spec.MaxPods),
			Allocatable: withPods(allocatable, b.Spec.MaxPods),
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  rt.cfg.opts.KubeletVersion,
				OperatingSystem: "linux",
				Architecture:    arch,
			},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: rt.cfg.opts.InternalIP},
				{Type: corev1.NodeHostName, Address: rt.nodeName},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: rt.cfg.opts.KubeletPort}},
			Conditions:      rt.nodeConditions(fleet != nil, pollErr),
		},
	}
	for k, v := range b.Spec.NodeLabels {
		if !reservedNodeLabels[k] {
			n.Labels[k] = v
		}
	}
	n.Labels[vkv1.LabelFleet] = b.Spec.Fleet
	n.Labels["type"] = "virtual-kubelet"
	n.Labels["kubernetes.io/role"] = "agent"
	n.Labels["node-role.kubernetes.io/agent"] = ""
	n.Labels["kubernetes.io/os"] = "linux"
	n.Labels["kubernetes.io/arch"] = arch
	n.Labels["kubernetes.io/hostname"] = rt.nodeName
	return n
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

func (rt *Runtime) nodeConditions(listed bool, pollErr error) []corev1.NodeCondition {
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	reach := cond(NodeConditionFlightctlReachable, corev1.ConditionTrue, "FlightctlReachable", "the last device listing succeeded")
	switch {
	case pollErr != nil:
		reach = cond(NodeConditionFlightctlReachable, corev1.ConditionFalse, "FlightctlUnreachable",
			fmt.Sprintf("listing devices failed: %v; pods keep their last known status", pollErr))
	case !listed:
		reach = cond(NodeConditionFlightctlReachable, corev1.ConditionUnknown, "NotYetListed", "devices not listed yet")
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

// pushNodeStatus hands virtual-kubelet a new node status when capacity or
// conditions changed (heartbeat times aside).
func (rt *Runtime) pushNodeStatus() {
	n := rt.nodeObject()
	rt.mu.Lock()
	cb, last := rt.notifyNode, rt.lastNode
	changed := last == nil || !sameNodeStatus(last, n)
	if changed {
		rt.lastNode = n
	}
	rt.mu.Unlock()
	if cb != nil && changed {
		cb(n)
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

// syncNodeSpec sets the binding's taints: virtual-kubelet only creates the
// node with them and never updates the spec of an existing node.
func (rt *Runtime) syncNodeSpec(ctx context.Context) error {
	taints := rt.cfg.binding.Spec.NodeTaints
	if taints == nil {
		taints = []corev1.Taint{}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"taints": taints}})
	if err != nil {
		return err
	}
	_, err = rt.cfg.kube.CoreV1().Nodes().Patch(ctx, rt.nodeName, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
