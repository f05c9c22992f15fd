// Package nodeapi is the contract between the FleetBinding reconciler
// (controllers) and the virtual nodes that implement it (provider/node):
// what a node needs to run and what it reports back. Both sides import this
// leaf package and neither imports the other, so the data path runs one way.
package nodeapi

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// Request is everything a node needs to run.
type Request struct {
	// Binding is the reconciled binding (read only).
	Binding *vkv1.FleetBinding
	// Connection is the resolved Flightctl connection.
	Connection *connection.Resolved
	// Settings are the binding's effective settings.
	Settings settings.Effective
}

// Report is what a node observed, folded into the binding's status.
type Report struct {
	// Running is true while the node is registered and its lease renewed.
	Running bool
	// Message explains a node that is not running.
	Message string
	// Inventory is the latest device inventory, when the node has one.
	Inventory *Inventory
	// DisconnectedDevices are the persisted reconnection timers.
	DisconnectedDevices []vkv1.DisconnectedDevice
	// Pods is how many pods are bound to the node.
	Pods int32
	// FlightctlError is the last poll's error, nil when it succeeded.
	FlightctlError error
}

// Inventory summarises the devices a binding's selector matched.
type Inventory struct {
	// Summary counts the devices by state.
	Summary vkv1.DeviceSummary
	// UnusableDevices lists the matched devices no pod can be placed on.
	UnusableDevices []vkv1.UnusableDevice
	// Capacity and Allocatable are the node's resources.
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
}

// InventoryOf folds a device listing into the status summary.
func InventoryOf(f *inventory.Fleet) *Inventory {
	return &Inventory{
		Summary:         f.Summary,
		UnusableDevices: f.Unusable,
		Capacity:        f.Capacity,
		Allocatable:     f.Allocatable,
	}
}

// ListInventory lists the binding's devices page by page and summarises
// them. The reconciler probes with it when no node is running, so status
// shows what Flightctl holds even before (or without) a virtual node.
func ListInventory(ctx context.Context, b *vkv1.FleetBinding, c *connection.Resolved) (*Inventory, error) {
	o := inventory.OptionsFor(b)
	var devs []inventory.Device
	err := c.Client.ForEachListedDevice(ctx, ListOptions(b), o.Digests(), func(d *flightctl.ListedDevice) error {
		devs = append(devs, inventory.FromListed(d, o))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return InventoryOf(inventory.Assemble(devs, time.Now(), nil)), nil
}

// ListOptions selects the binding's devices in a Flightctl listing: by
// label in per-device mode, by owner (the Flightctl Fleet) in fleet-wide
// mode.
func ListOptions(b *vkv1.FleetBinding) flightctl.ListOptions {
	return flightctl.ListOptions{LabelSelector: b.EffectiveDeviceSelector(), FieldSelector: b.EffectiveOwnerSelector()}
}

// Console runs a command on a device through Flightctl's device console
// (flightctl.Client.Console).
type Console interface {
	Console(ctx context.Context, device string, cmd flightctl.ConsoleCommand, tty bool, s flightctl.ConsoleStreams) error
}

// Placement is where a pod's workload runs, for the kubelet API's logs and
// exec: read from the node's pod records, never a second copy of them.
type Placement struct {
	// Node is the virtual node the pod is bound to.
	Node string
	// Device is the Flightctl device the pod was written to; empty while
	// the pod waits for room or failed.
	Device string
	// App is the pod's Flightctl application name.
	App string
	// Compose is true for the compose format, whose containers have no
	// name known in advance (Flightctl refuses container_name).
	Compose bool
	// Console reaches the device; nil when the node's client cannot.
	Console Console
	// Containers are the names of the pod's containers.
	Containers []string
}
