package controllers

import (
	"context"
	"time"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// ListInventory lists the binding's devices page by page and summarises
// them. It is the reconciler's probe when no node is running, so status
// shows what Flightctl holds even before (or without) a virtual node.
func ListInventory(ctx context.Context, b *vkv1.FleetBinding, c *connection.Resolved) (*Inventory, error) {
	devs, err := c.Client.ListAllDevices(ctx, flightctl.ListOptions{LabelSelector: b.EffectiveDeviceSelector()})
	if err != nil {
		return nil, err
	}
	return InventoryFromFleet(inventory.Build(devs, inventory.OptionsFor(b), time.Now())), nil
}

// InventoryFromFleet folds a device listing into the status summary.
func InventoryFromFleet(f *inventory.Fleet) *Inventory {
	return &Inventory{
		Summary:         f.Summary,
		UnusableDevices: f.Unusable,
		Capacity:        f.Capacity,
		Allocatable:     f.Allocatable,
	}
}
