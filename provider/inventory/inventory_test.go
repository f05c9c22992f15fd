package inventory

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

func device(name, summary string, sys map[string]string, owner string) flightctl.Device {
	d := flightctl.Device{Metadata: flightctl.ObjectMeta{Name: name}, Status: &flightctl.DeviceStatus{
		Summary: flightctl.StatusWithInfo{Status: summary}, SystemInfo: sys}}
	if owner != "" {
		d.Metadata.Owner = &owner
	}
	return d
}

func TestBuild(t *testing.T) {
	opts := OptionsFor(&vkv1.FleetBinding{})
	four := map[string]string{"cpuCores": "4", "memoryTotalKb": "8388608", "netIpDefault": "192.0.2.11"}
	devs := []flightctl.Device{
		device("device-2", "Online", four, ""),
		device("device-1", "Online", four, ""),
		device("device-3", "Unknown", nil, ""),         // disconnected, no systemInfo: default capacity
		device("device-4", "Online", four, "Fleet/f1"), // owned by a fleet: unusable
	}
	f := Build(devs, opts, time.Now())
	if f.Devices[0].Name != "device-1" {
		t.Errorf("devices not sorted by name: %s first", f.Devices[0].Name)
	}
	if want := (vkv1.DeviceSummary{Total: 4, Online: 2, Disconnected: 1, Owned: 1}); f.Summary != want {
		t.Errorf("summary = %+v, want %+v", f.Summary, want)
	}
	// 4+4 reported plus 2 defaulted for the disconnected device; the owned
	// one does not count.
	if got := f.Capacity.Cpu(); got.Cmp(resource.MustParse("10")) != 0 {
		t.Errorf("capacity cpu = %s, want 10", got)
	}
	if got := f.Capacity.Memory(); got.Cmp(resource.MustParse("20Gi")) != 0 {
		t.Errorf("capacity memory = %s, want 20Gi", got)
	}
	if got := f.Allocatable.Cpu(); got.Cmp(resource.MustParse("9250m")) != 0 {
		t.Errorf("allocatable cpu = %s, want 9250m", got)
	}
	d1, ok := f.Get("device-1")
	if !ok || d1.IP != "192.0.2.11" || !d1.Online {
		t.Errorf("device-1 = %+v", d1)
	}
	if d3, _ := f.Get("device-3"); d3.Capacity.Cpu().String() != "2" || d3.Online {
		t.Errorf("device-3 = %+v, want the default capacity and offline", d3)
	}
	if len(f.Unusable) != 1 || f.Unusable[0].Name != "device-4" || f.Unusable[0].Reason != ReasonOwnedByFleet {
		t.Errorf("unusable = %+v", f.Unusable)
	}
}

func TestReserveNeverGoesNegative(t *testing.T) {
	o := Options{
		DefaultCapacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Reserve:         corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		MaxPods:         10,
	}
	d := FromDevice(&flightctl.Device{Metadata: flightctl.ObjectMeta{Name: "tiny"}}, o)
	if d.Allocatable.Cpu().Sign() != 0 || d.Allocatable.Memory().Sign() != 0 {
		t.Errorf("allocatable = %v, want zero", d.Allocatable)
	}
}
