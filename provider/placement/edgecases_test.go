package placement

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// TestPlaceRequestUnits places pods whose requests use every unit the API
// server accepts, on two quickstart devices (3750m / 7680Mi allocatable
// each), and checks both the decision and what the ledger holds.
func TestPlaceRequestUnits(t *testing.T) {
	tests := []struct {
		name, cpu, mem string // "" leaves the request out
		// wantHold is what the device holds afterwards; empty when the pod
		// must not be placed.
		wantHoldCPU, wantHoldMem string
		wantMessage              string // for pods that are not placed
	}{
		{name: "no requests at all", wantHoldCPU: "0", wantHoldMem: "0"},
		{name: "only cpu", cpu: "250m", wantHoldCPU: "250m", wantHoldMem: "0"},
		{name: "decimal cpu, decimal memory", cpu: "0.5", mem: "1G", wantHoldCPU: "500m", wantHoldMem: "1G"},
		{name: "exponent cpu", cpu: "2e0", mem: "100Mi", wantHoldCPU: "2", wantHoldMem: "100Mi"},
		{name: "kibibytes", cpu: "1", mem: "1Ki", wantHoldCPU: "1", wantHoldMem: "1Ki"},
		// Kubernetes accepts milli-bytes; the scheduler rounds up to a byte.
		{name: "milli memory holds one byte", cpu: "100m", mem: "500m", wantHoldCPU: "100m", wantHoldMem: "1"},
		{name: "nano cpu holds one millicore", cpu: "1n", wantHoldCPU: "1m", wantHoldMem: "0"},
		{name: "exactly a device", cpu: "3750m", mem: "7680Mi", wantHoldCPU: "3750m", wantHoldMem: "7680Mi"},
		{name: "a millicore over a device", cpu: "3751m", wantMessage: "requested cpu=3751m"},
		{name: "a thousand cpus", cpu: "1e3", mem: "1Gi", wantMessage: "requested cpu=1e3, memory=1Gi"},
		// Quantity.MilliValue and Value do not saturate: these read as 0 or
		// negative and used to be placed as if they asked for nothing.
		{name: "1e16 cpus", cpu: "1e16", wantMessage: "requested cpu=10e15"},
		{name: "cpus past int64 millicores", cpu: "9223372036854775807", wantMessage: "requested cpu=9223372036854775807"},
		{name: "1e19 bytes", mem: "1e19", wantMessage: "memory=10e18"},
		// The quantity parser itself caps 16Ei at the largest int64.
		{name: "16Ei", mem: "16Ei", wantMessage: "memory=9223372036854775807"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices := []Device{quickstartDevice("d1"), quickstartDevice("d2")}
			ledger := NewLedger()
			dec, err := Place(newPod("p", tt.cpu, tt.mem), devices, ledger)
			if tt.wantMessage != "" {
				nf := asNoFit(t, err)
				if !nf.Permanent() || nf.Reason != ReasonInsufficientResources {
					t.Errorf("got %s (permanent %v), want permanent %s", nf.Reason, nf.Permanent(), ReasonInsufficientResources)
				}
				if !strings.Contains(nf.Message, tt.wantMessage) || !strings.Contains(nf.Message, "lower its requests") {
					t.Errorf("message %q does not say %q and what to do", nf.Message, tt.wantMessage)
				}
				if snap := ledger.Snapshot(); len(snap) != 0 {
					t.Errorf("ledger holds %v after a refusal", snap)
				}
				return
			}
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			equalQuantities(t, "held", ledger.Allocated(dec.Device).Requests, rl(tt.wantHoldCPU, tt.wantHoldMem))
		})
	}
}

// TestHugeHoldsDoNotWrap adopts pods with absurd requests (a restart finds
// them on a device through their annotation and adopts them without a
// room check) and checks that the device is full afterwards: int64 sums of
// such requests used to wrap negative and make it look empty.
func TestHugeHoldsDoNotWrap(t *testing.T) {
	d := device("d1", "4", "8Gi")
	for _, tt := range []struct{ name, cpu, mem string }{
		{"memory", "100m", "8Ei"},
		{"cpu", "9223372036854775807", "1Gi"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ledger := NewLedger()
			for _, name := range []string{"huge-a", "huge-b"} {
				p := withAnnotation(newPod(name, tt.cpu, tt.mem), v1alpha1.AnnotationDevice, "d1")
				if _, err := Place(p, []Device{d}, ledger); err != nil {
					t.Fatalf("adopting %s: %v", name, err)
				}
			}
			_, err := Place(newPod("small", "100m", "64Mi"), []Device{d}, ledger)
			nf := asNoFit(t, err)
			if nf.Permanent() {
				t.Errorf("the device is full, not too small: %s", nf.Message)
			}
			// Releasing the holds restores the device exactly.
			ledger.Release("huge-a")
			ledger.Release("huge-b")
			if a := ledger.Allocated("d1"); a.Pods != 0 || !a.Requests.Cpu().IsZero() || !a.Requests.Memory().IsZero() {
				t.Errorf("after release the device holds %v", a)
			}
			if _, err := Place(newPod("small", "100m", "64Mi"), []Device{d}, ledger); err != nil {
				t.Errorf("the emptied device refuses a small pod: %v", err)
			}
		})
	}
}

// TestHugeDeviceCapacity checks that an absurd capacity, as a device may
// report through a misconfigured agent, does not read as zero.
func TestHugeDeviceCapacity(t *testing.T) {
	d := Device{Name: "big", Online: true, Allocatable: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1e16"), corev1.ResourceMemory: resource.MustParse("1e19")}}
	if _, err := Place(newPod("p", "64", "512Gi"), []Device{d}, NewLedger()); err != nil {
		t.Fatalf("a device larger than int64 units refuses a large pod: %v", err)
	}
	s := Summarize([]Device{d})
	if s.Allocatable.Cpu().Sign() <= 0 || s.Allocatable.Memory().Sign() <= 0 {
		t.Errorf("summary allocatable = %v", s.Allocatable)
	}
}
