package placement

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// rl builds a cpu/memory list; "" leaves a resource out.
func rl(cpu, mem string) corev1.ResourceList {
	out := corev1.ResourceList{}
	if cpu != "" {
		out[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		out[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return out
}

// device is an online, unowned device with the given allocatable.
func device(name, cpu, mem string, labels ...string) Device {
	d := Device{Name: name, Online: true, Allocatable: rl(cpu, mem), Labels: map[string]string{}}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		d.Labels[k] = v
	}
	return d
}

// quickstartDevice is 4 CPU / 8Gi minus the default 250m/512Mi reserve.
func quickstartDevice(name string) Device {
	return Device{Name: name, Online: true, Capacity: rl("4", "8Gi"), Allocatable: rl("3750m", "7680Mi")}
}

func offline(d Device) Device { d.Online = false; return d }

func owned(d Device, fleet string) Device { d.OwnedBy = fleet; return d }

// newPod has one container requesting cpu and memory; its UID is its name.
func newPod(name, cpu, mem string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name:      "c",
			Resources: corev1.ResourceRequirements{Requests: rl(cpu, mem)},
		}}},
	}
}

func withAnnotation(p *corev1.Pod, k, v string) *corev1.Pod {
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[k] = v
	return p
}

func withNodeSelector(p *corev1.Pod, k, v string) *corev1.Pod {
	if p.Spec.NodeSelector == nil {
		p.Spec.NodeSelector = map[string]string{}
	}
	p.Spec.NodeSelector[k] = v
	return p
}

func asNoFit(t *testing.T, err error) *NoFitError {
	t.Helper()
	var nf *NoFitError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v (%T) is not a *NoFitError", err, err)
	}
	return nf
}

func equalQuantities(t *testing.T, what string, got, want corev1.ResourceList) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		g, w := got[name], want[name]
		if g.Cmp(w) != 0 {
			t.Errorf("%s %s = %s, want %s", what, name, g.String(), w.String())
		}
	}
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	c := func(req, lim corev1.ResourceList) corev1.Container {
		return corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want corev1.ResourceList
	}{
		{"nothing requested", corev1.PodSpec{Containers: []corev1.Container{c(nil, nil)}}, rl("0", "0")},
		{"containers add up", corev1.PodSpec{Containers: []corev1.Container{c(rl("100m", "128Mi"), nil), c(rl("50m", "64Mi"), nil)}}, rl("150m", "192Mi")},
		{"limits without requests become requests", corev1.PodSpec{Containers: []corev1.Container{c(nil, rl("500m", "1Gi"))}}, rl("500m", "1Gi")},
		{"a missing request takes its limit, a present one stays", corev1.PodSpec{Containers: []corev1.Container{c(rl("100m", ""), rl("500m", "1Gi"))}}, rl("100m", "1Gi")},
		{"largest init container wins over the sum", corev1.PodSpec{
			InitContainers: []corev1.Container{c(rl("2", "64Mi"), nil), c(rl("100m", "3Gi"), nil)},
			Containers:     []corev1.Container{c(rl("500m", "1Gi"), nil)},
		}, rl("2", "3Gi")},
		{"sidecar init containers add to the containers", corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "side", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: rl("100m", "100Mi")}}},
			Containers:     []corev1.Container{c(rl("500m", "1Gi"), nil)},
		}, rl("600m", "1124Mi")},
		{"overhead is added", corev1.PodSpec{Containers: []corev1.Container{c(rl("500m", "1Gi"), nil)}, Overhead: rl("250m", "256Mi")}, rl("750m", "1280Mi")},
		{"pod-level limits alone become requests", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Limits: rl("2", "2Gi")},
			Containers: []corev1.Container{c(nil, nil)},
		}, rl("2", "2Gi")},
		{"pod-level requests override containers", corev1.PodSpec{
			Resources:  &corev1.ResourceRequirements{Requests: rl("1", "1Gi")},
			Containers: []corev1.Container{c(rl("100m", "100Mi"), nil)},
		}, rl("1", "1Gi")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Pod{Spec: tt.spec}
			before := p.DeepCopy()
			got := PodRequests(p)
			equalQuantities(t, "requests", got, tt.want)
			if p.Spec.Containers[0].Resources.Requests == nil && before.Spec.Containers[0].Resources.Requests != nil ||
				len(p.Spec.Containers[0].Resources.Requests) != len(before.Spec.Containers[0].Resources.Requests) {
				t.Errorf("PodRequests modified the pod")
			}
		})
	}
}

func TestTargetingFor(t *testing.T) {
	tests := []struct {
		name       string
		pod        *corev1.Pod
		want       string // Targeting.String
		wantReason Reason // "" for no error
		wantInMsg  string
	}{
		{"nothing", newPod("p", "1", "1Gi"), "any device", "", ""},
		{"nodeSelector device-id", withNodeSelector(newPod("p", "", ""), v1alpha1.LabelDeviceID, "device-1"), "device-id=device-1", "", ""},
		{"annotation device-id", withAnnotation(newPod("p", "", ""), v1alpha1.LabelDeviceID, "device-1"), "device-id=device-1", "", ""},
		{"both agree", withAnnotation(withNodeSelector(newPod("p", "", ""), v1alpha1.LabelDeviceID, "device-1"), v1alpha1.LabelDeviceID, "device-1"), "device-id=device-1", "", ""},
		{"both disagree", withAnnotation(withNodeSelector(newPod("p", "", ""), v1alpha1.LabelDeviceID, "device-1"), v1alpha1.LabelDeviceID, "device-2"), "", ReasonConflict, `spec.nodeSelector says "device-1" but the annotation says "device-2"`},
		{"empty device-id", withNodeSelector(newPod("p", "", ""), v1alpha1.LabelDeviceID, ""), "", ReasonInvalidDeviceID, "Empty flightctl.io/device-id"},
		{"selector", withAnnotation(newPod("p", "", ""), v1alpha1.AnnotationDeviceSelector, "site=lab,gpu in (yes)"), "selector=site=lab,gpu in (yes)", "", ""},
		{"blank selector narrows nothing", withAnnotation(newPod("p", "", ""), v1alpha1.AnnotationDeviceSelector, "  "), "any device", "", ""},
		{"bad selector", withAnnotation(newPod("p", "", ""), v1alpha1.AnnotationDeviceSelector, "site in (lab"), "", ReasonInvalidSelector, `Invalid flightctl.io/device-selector annotation "site in (lab"`},
		{"combined", withAnnotation(withAnnotation(newPod("p", "", ""), v1alpha1.LabelDeviceID, "device-1"), v1alpha1.AnnotationDeviceSelector, "site=lab"), "device-id=device-1, selector=site=lab", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TargetingFor(tt.pod)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if got.String() != tt.want {
					t.Errorf("targeting %q, want %q", got.String(), tt.want)
				}
				return
			}
			nf := asNoFit(t, err)
			if nf.Reason != tt.wantReason || !nf.Permanent() || !strings.Contains(nf.Message, tt.wantInMsg) {
				t.Errorf("got %s permanent=%v %q; want %s permanent containing %q", nf.Reason, nf.Permanent(), nf.Message, tt.wantReason, tt.wantInMsg)
			}
		})
	}
}

func TestPlaceTargeting(t *testing.T) {
	fleet := []Device{
		device("device-1", "2", "4Gi", "site=lab"),
		device("device-2", "2", "4Gi", "site=factory"),
		offline(device("device-3", "2", "4Gi", "site=lab", "gpu=yes")),
		owned(device("device-4", "2", "4Gi", "site=lab", "gpu=yes"), "f1"),
		device("device-5", "2", "4Gi", "site=shop", "gpu=yes"),
	}
	id := func(p *corev1.Pod, v string) *corev1.Pod { return withNodeSelector(p, v1alpha1.LabelDeviceID, v) }
	sel := func(p *corev1.Pod, v string) *corev1.Pod {
		return withAnnotation(p, v1alpha1.AnnotationDeviceSelector, v)
	}
	tests := []struct {
		name          string
		pod           *corev1.Pod
		wantDevice    string
		wantReason    Reason
		wantPermanent bool
		wantVerdicts  map[string]Reason // checked when an error is expected
	}{
		{name: "explicit device-id", pod: id(newPod("p", "100m", "64Mi"), "device-2"), wantDevice: "device-2"},
		{name: "device-id by annotation", pod: withAnnotation(newPod("p", "100m", "64Mi"), v1alpha1.LabelDeviceID, "device-5"), wantDevice: "device-5"},
		{name: "selector", pod: sel(newPod("p", "100m", "64Mi"), "site=factory"), wantDevice: "device-2"},
		{name: "selector skips offline and owned", pod: sel(newPod("p", "100m", "64Mi"), "gpu=yes"), wantDevice: "device-5"},
		{name: "combined, both hold", pod: sel(id(newPod("p", "100m", "64Mi"), "device-1"), "site=lab"), wantDevice: "device-1"},
		{
			name: "combined, selector rules out the device", pod: sel(id(newPod("p", "100m", "64Mi"), "device-2"), "site=lab"),
			wantReason: ReasonNoMatchingDevice, wantPermanent: true,
			wantVerdicts: map[string]Reason{"device-1": ReasonNoMatchingDevice, "device-2": ReasonNoMatchingDevice},
		},
		{
			name: "unknown device-id", pod: id(newPod("p", "100m", "64Mi"), "device-9"),
			wantReason: ReasonNoMatchingDevice, wantPermanent: true,
		},
		{
			name: "owned device", pod: id(newPod("p", "100m", "64Mi"), "device-4"),
			wantReason: ReasonDeviceOwnedByFleet, wantPermanent: true,
			wantVerdicts: map[string]Reason{"device-4": ReasonDeviceOwnedByFleet, "device-1": ReasonNoMatchingDevice},
		},
		{
			name: "offline device", pod: id(newPod("p", "100m", "64Mi"), "device-3"),
			wantReason: ReasonDeviceOffline, wantPermanent: false,
			wantVerdicts: map[string]Reason{"device-3": ReasonDeviceOffline},
		},
		{
			name: "selector matching only offline and owned", pod: sel(newPod("p", "100m", "64Mi"), "site=lab,gpu=yes"),
			wantReason: ReasonDeviceOffline, wantPermanent: false,
			wantVerdicts: map[string]Reason{"device-3": ReasonDeviceOffline, "device-4": ReasonDeviceOwnedByFleet},
		},
		{name: "bad selector", pod: sel(newPod("p", "100m", "64Mi"), "site in (lab"), wantReason: ReasonInvalidSelector, wantPermanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			d, err := Place(tt.pod, fleet, l)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if d.Device != tt.wantDevice || d.Existing {
					t.Fatalf("placed on %s (existing=%v), want %s", d.Device, d.Existing, tt.wantDevice)
				}
				if a, ok := l.Lookup(PodKey(tt.pod)); !ok || a.Device != tt.wantDevice {
					t.Fatalf("ledger holds %+v, %v", a, ok)
				}
				return
			}
			nf := asNoFit(t, err)
			if nf.Reason != tt.wantReason || nf.Permanent() != tt.wantPermanent {
				t.Fatalf("got %s permanent=%v (%s), want %s permanent=%v", nf.Reason, nf.Permanent(), nf.Message, tt.wantReason, tt.wantPermanent)
			}
			got := map[string]Reason{}
			for _, v := range nf.Devices {
				got[v.Device] = v.Reason
			}
			for dev, r := range tt.wantVerdicts {
				if got[dev] != r {
					t.Errorf("verdict for %s = %q, want %q (all: %+v)", dev, got[dev], r, nf.Devices)
				}
			}
			if len(l.Snapshot()) != 0 {
				t.Errorf("a failed placement reserved something: %+v", l.Snapshot())
			}
		})
	}
}

func TestNoMatchMessage(t *testing.T) {
	fleet := []Device{
		device("device-1", "2", "4Gi", "site=factory"),
		offline(device("device-2", "2", "4Gi")),
		owned(device("device-3", "2", "4Gi"), "f1"),
	}
	p := withAnnotation(withNodeSelector(newPod("p", "100m", "64Mi"), v1alpha1.LabelDeviceID, "device-9"), v1alpha1.AnnotationDeviceSelector, "site=lab")
	_, err := Place(p, fleet, NewLedger())
	want := "No device matches: asked device-id=device-9, selector=site=lab; devices: device-1 (online), device-2 (offline), " +
		"device-3 (owned by Flightctl fleet f1 — per-device workloads need devices that no fleet owns)"
	if err == nil || err.Error() != want {
		t.Fatalf("message\n got %v\nwant %s", err, want)
	}

	// A large fleet is listed in part.
	var many []Device
	for i := range 15 {
		many = append(many, device(fmt.Sprintf("d%02d", i), "1", "1Gi"))
	}
	_, err = Place(withNodeSelector(newPod("p", "", ""), v1alpha1.LabelDeviceID, "nope"), many, NewLedger())
	if err == nil || !strings.HasSuffix(err.Error(), "d09 (online) and 5 more") {
		t.Fatalf("long list not bounded: %v", err)
	}

	_, err = Place(newPod("p", "", ""), nil, NewLedger())
	if nf := asNoFit(t, err); nf.Message != "No device matches: asked any device; the fleet has no devices" || !nf.Permanent() {
		t.Fatalf("empty fleet: %v", err)
	}
}

func TestPlaceFit(t *testing.T) {
	fleet := []Device{device("small", "500m", "512Mi"), device("big", "4", "8Gi")}
	l := NewLedger()
	d, err := Place(newPod("p", "1", "1Gi"), fleet, l)
	if err != nil || d.Device != "big" {
		t.Fatalf("got %+v, %v; want big", d, err)
	}
	// Exactly filling a device fits.
	d, err = Place(newPod("q", "500m", "512Mi"), fleet[:1], l)
	if err != nil || d.Device != "small" {
		t.Fatalf("exact fit: got %+v, %v", d, err)
	}
	// A pod that requests nothing fits a full device: only requested
	// resources are checked, as in the scheduler.
	d, err = Place(newPod("r", "", ""), fleet[:1], l)
	if err != nil || d.Device != "small" {
		t.Fatalf("zero request: got %+v, %v", d, err)
	}
	equalQuantities(t, "small allocated", l.Allocated("small").Requests, rl("500m", "512Mi"))
	if l.Allocated("small").Pods != 2 {
		t.Fatalf("small pods = %d, want 2", l.Allocated("small").Pods)
	}
}

func TestPlaceSpread(t *testing.T) {
	fleet := []Device{quickstartDevice("device-1"), quickstartDevice("device-2")}
	l := NewLedger()
	var got []string
	for i := range 3 {
		d, err := Place(newPod(fmt.Sprintf("hello-%d", i), "50m", "64Mi"), fleet, l)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.Device)
	}
	if want := []string{"device-1", "device-2", "device-1"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("placements %v, want %v", got, want)
	}
	snap := l.Snapshot()
	if len(snap) != 2 || snap[0].Device != "device-1" || snap[0].Pods != 2 || snap[1].Device != "device-2" || snap[1].Pods != 1 {
		t.Fatalf("snapshot %+v, want device-1:2 device-2:1", snap)
	}
	equalQuantities(t, "device-1", snap[0].Requests, rl("100m", "128Mi"))

	// Spread goes by the busier resource: device-a has cpu to spare but
	// its memory is nearly gone, so a pod goes to device-b.
	fleet = []Device{device("device-a", "4", "1Gi"), device("device-b", "1", "4Gi")}
	l = NewLedger()
	if err := l.Reserve("x", fleet[0], rl("", "900Mi")); err != nil {
		t.Fatal(err)
	}
	if d, err := Place(newPod("p", "100m", "64Mi"), fleet, l); err != nil || d.Device != "device-b" {
		t.Fatalf("got %+v, %v; want device-b", d, err)
	}
}

func TestQuickstartOverCapacity(t *testing.T) {
	fleet := []Device{quickstartDevice("device-1"), quickstartDevice("device-2")}
	_, err := Place(newPod("resource-hog", "100", "1000Gi"), fleet, NewLedger())
	nf := asNoFit(t, err)
	const prefix = "Insufficient resources: requested cpu=100, memory=1000Gi; available cpu=7500m, memory=15Gi"
	if !strings.HasPrefix(nf.Message, prefix) {
		t.Fatalf("message\n got %s\nwant prefix %s", nf.Message, prefix)
	}
	want := prefix + " (fleet-wide allocatable); largest free on one device: cpu=3750m, memory=7680Mi (device-1); " +
		"a pod runs on exactly one device and no device has that much allocatable, so it cannot be placed: lower its requests"
	if nf.Message != want {
		t.Errorf("message\n got %s\nwant %s", nf.Message, want)
	}
	if nf.Reason != ReasonInsufficientResources || !nf.Permanent() || !IsPermanent(fmt.Errorf("wrapped: %w", err)) {
		t.Errorf("reason %s permanent %v, want permanent InsufficientResources", nf.Reason, nf.Permanent())
	}
	// The fleet-wide figure is what Summarize gives the node.
	s := Summarize(fleet)
	if got := s.Allocatable.Cpu().String() + "/" + s.Allocatable.Memory().String(); got != "7500m/15Gi" {
		t.Errorf("node allocatable %s, want 7500m/15Gi", got)
	}
}

func TestPermanentVsTemporary(t *testing.T) {
	two := []Device{quickstartDevice("device-1"), quickstartDevice("device-2")}
	tests := []struct {
		name          string
		devices       []Device
		held          map[string]string // pod key -> device, each holding 3 cpu / 1Gi
		pod           *corev1.Pod
		wantReason    Reason
		wantPermanent bool
		wantInMsg     string
	}{
		{
			name: "exceeds every device", devices: two, pod: newPod("p", "100", "1000Gi"),
			wantReason: ReasonInsufficientResources, wantPermanent: true, wantInMsg: "no device has that much allocatable",
		},
		{
			name: "fits the fleet total but no single device", devices: two, pod: newPod("p", "5", "1Gi"),
			wantReason: ReasonInsufficientResources, wantPermanent: true, wantInMsg: "available cpu=7500m, memory=15Gi (fleet-wide allocatable)",
		},
		{
			name: "fits an empty device but allocations block it", devices: two,
			held: map[string]string{"a": "device-1", "b": "device-2"}, pod: newPod("p", "1", "1Gi"),
			wantReason: ReasonInsufficientResources, wantPermanent: false,
			wantInMsg: "largest free on one device: cpu=750m, memory=6656Mi (device-1); it fits on device-1, device-2 when placed pods leave room",
		},
		{
			name: "only an offline device is big enough", devices: []Device{device("small", "1", "1Gi"), offline(device("big", "4", "8Gi"))},
			pod: newPod("p", "2", "1Gi"), wantReason: ReasonDeviceOffline, wantPermanent: false,
			wantInMsg: "the devices that could hold the pod are offline: big; it stays Pending until one reconnects; too small: small (allocatable cpu=1, memory=1Gi)",
		},
		{
			name: "offline device too small as well", devices: []Device{offline(device("d", "1", "1Gi"))},
			pod: newPod("p", "2", "1Gi"), wantReason: ReasonInsufficientResources, wantPermanent: true,
			wantInMsg: "(d, offline)",
		},
		{
			name: "pod limit reached", devices: []Device{{Name: "d", Online: true, Allocatable: rl("4", "8Gi"), MaxPods: 1}},
			held: map[string]string{"a": "d"}, pod: newPod("p", "100m", "64Mi"),
			wantReason: ReasonInsufficientResources, wantPermanent: false, wantInMsg: "at their pod limit: d",
		},
		{
			name: "owned devices are not counted", devices: append([]Device{owned(device("big", "64", "64Gi"), "f1")}, two...),
			pod: newPod("p", "8", "1Gi"), wantReason: ReasonInsufficientResources, wantPermanent: true,
			wantInMsg: "not usable: big (owned by Flightctl fleet f1)",
		},
		{
			name: "selector narrows the figures", devices: []Device{device("a", "1", "1Gi", "site=lab"), device("b", "1", "1Gi", "site=lab"), device("c", "8", "8Gi")},
			pod:        withAnnotation(newPod("p", "2", "1Gi"), v1alpha1.AnnotationDeviceSelector, "site=lab"),
			wantReason: ReasonInsufficientResources, wantPermanent: true,
			wantInMsg: "available cpu=2, memory=2Gi (allocatable of the 2 devices matching selector=site=lab)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger()
			var held []Assignment
			for k, dev := range tt.held {
				held = append(held, Assignment{PodKey: k, Device: dev, Requests: rl("3", "1Gi")})
			}
			l.Rebuild(held)
			_, err := Place(tt.pod, tt.devices, l)
			nf := asNoFit(t, err)
			if nf.Reason != tt.wantReason || nf.Permanent() != tt.wantPermanent || !strings.Contains(nf.Message, tt.wantInMsg) {
				t.Errorf("got %s permanent=%v\n  %s\nwant %s permanent=%v containing\n  %s",
					nf.Reason, nf.Permanent(), nf.Message, tt.wantReason, tt.wantPermanent, tt.wantInMsg)
			}
		})
	}

	// Once room appears, the same pod places.
	l := NewLedger()
	l.Rebuild([]Assignment{{PodKey: "a", Device: "device-1", Requests: rl("3", "1Gi")}, {PodKey: "b", Device: "device-2", Requests: rl("3", "1Gi")}})
	p := newPod("p", "1", "1Gi")
	if _, err := Place(p, two, l); IsPermanent(err) || err == nil {
		t.Fatalf("want a temporary error, got %v", err)
	}
	l.Release("b")
	if d, err := Place(p, two, l); err != nil || d.Device != "device-2" {
		t.Fatalf("after release: %+v, %v", d, err)
	}
}

func TestReserve(t *testing.T) {
	d := device("d", "1", "1Gi")
	l := NewLedger()
	if err := l.Reserve("a", d, rl("600m", "")); err != nil {
		t.Fatal(err)
	}
	if err := l.Reserve("a", d, rl("600m", "")); err != nil {
		t.Fatalf("reserving again on the same device must be a no-op: %v", err)
	}
	if err := l.Reserve("a", device("e", "1", "1Gi"), rl("1m", "")); !errors.Is(err, ErrAlreadyReserved) {
		t.Fatalf("want ErrAlreadyReserved, got %v", err)
	}
	err := l.Reserve("b", d, rl("600m", ""))
	if nf := asNoFit(t, err); nf.Reason != ReasonInsufficientResources || nf.Permanent() {
		t.Fatalf("got %s permanent=%v, want temporary InsufficientResources", nf.Reason, nf.Permanent())
	}
	if nf := asNoFit(t, l.Reserve("c", d, rl("2", ""))); !nf.Permanent() {
		t.Fatal("a request larger than the empty device must be permanent")
	}
	if l.Reserve("", d, nil) == nil || l.Reserve("x", Device{}, nil) == nil {
		t.Fatal("empty key or device accepted")
	}
	if a, ok := l.Release("a"); !ok || a.Device != "d" {
		t.Fatalf("release returned %+v, %v", a, ok)
	}
	if _, ok := l.Release("a"); ok {
		t.Fatal("second release found something")
	}
	if len(l.Snapshot()) != 0 {
		t.Fatalf("snapshot after release: %+v", l.Snapshot())
	}
	var zero Ledger // the zero value works
	if err := zero.Reserve("a", d, rl("1", "1Gi")); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReserveNeverOvercommits races many reservations on one
// device; run with -race.
func TestConcurrentReserveNeverOvercommits(t *testing.T) {
	d := Device{Name: "d", Online: true, Allocatable: rl("1", "10Gi"), MaxPods: 1000}
	l := NewLedger()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Reserve(fmt.Sprintf("pod-%d", i), d, rl("100m", "64Mi")) == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	a := l.Allocated("d")
	if ok != 10 || a.Pods != 10 || a.Requests.Cpu().MilliValue() != 1000 {
		t.Fatalf("%d reservations succeeded, ledger says %d pods %s cpu; want exactly 10 and 1 cpu", ok, a.Pods, a.Requests.Cpu())
	}
}

// TestConcurrentPlace places many pods at once over several devices
// and checks that no device is overcommitted and every slot is used.
func TestConcurrentPlace(t *testing.T) {
	fleet := []Device{
		device("d1", "1", "8Gi"), device("d2", "1", "8Gi"), device("d3", "500m", "8Gi"),
		{Name: "d4", Online: true, Allocatable: rl("8", "8Gi"), MaxPods: 3},
	}
	l := NewLedger()
	var wg sync.WaitGroup
	results := make([]error, 100)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = Place(newPod(fmt.Sprintf("pod-%d", i), "100m", "1Mi"), fleet, l)
		}()
	}
	wg.Wait()
	placed := 0
	for _, err := range results {
		switch {
		case err == nil:
			placed++
		case IsPermanent(err):
			t.Errorf("a pod that fits an empty device got a permanent error: %v", err)
		}
	}
	// 10 + 10 + 5 by cpu, 3 by pod count.
	if placed != 28 {
		t.Errorf("placed %d pods, want 28", placed)
	}
	for _, d := range fleet {
		a := l.Allocated(d.Name)
		if a.Requests.Cpu().Cmp(*d.Allocatable.Cpu()) > 0 || a.Pods > d.maxPods() {
			t.Errorf("%s overcommitted: %s cpu, %d pods", d.Name, a.Requests.Cpu(), a.Pods)
		}
	}

	// Placing the same pod from two goroutines gives one answer.
	l = NewLedger()
	p := newPod("same", "100m", "1Mi")
	var d1, d2 Decision
	wg.Add(2)
	go func() { defer wg.Done(); d1, _ = Place(p, fleet, l) }()
	go func() { defer wg.Done(); d2, _ = Place(p, fleet, l) }()
	wg.Wait()
	if d1.Device == "" || d1.Device != d2.Device || l.Allocated(d1.Device).Pods != 1 {
		t.Fatalf("same pod placed twice: %+v %+v", d1, d2)
	}
}

func TestRebuild(t *testing.T) {
	placed := func(name, dev, cpu, mem string, phase corev1.PodPhase) *corev1.Pod {
		p := newPod(name, cpu, mem)
		p.Status.Phase = phase
		if dev != "" {
			withAnnotation(p, v1alpha1.AnnotationDevice, dev)
		}
		return p
	}
	pods := []*corev1.Pod{
		placed("a", "device-1", "1", "1Gi", corev1.PodRunning),
		placed("b", "device-1", "500m", "512Mi", corev1.PodPending),
		placed("c", "device-2", "3", "1Gi", corev1.PodRunning),
		placed("d", "device-2", "3", "1Gi", corev1.PodSucceeded), // finished: holds nothing
		placed("e", "", "1", "1Gi", corev1.PodPending),           // never placed
	}
	var as []Assignment
	for _, p := range pods {
		if a, ok := AssignmentFromPod(p); ok {
			as = append(as, a)
		}
	}
	if len(as) != 3 {
		t.Fatalf("got %d assignments, want 3: %+v", len(as), as)
	}
	l := NewLedger()
	if err := l.Reserve("stale", device("device-9", "1", "1Gi"), nil); err != nil {
		t.Fatal(err)
	}
	// Rebuild replaces everything, and a repeated key keeps its last hold.
	l.Rebuild(append(as, Assignment{PodKey: "c", Device: "device-2", Requests: rl("2", "1Gi")}, Assignment{PodKey: "x"}))

	if _, ok := l.Lookup("stale"); ok {
		t.Fatal("Rebuild kept an old hold")
	}
	equalQuantities(t, "device-1", l.Allocated("device-1").Requests, rl("1500m", "1536Mi"))
	equalQuantities(t, "device-2", l.Allocated("device-2").Requests, rl("2", "1Gi"))
	if n := len(l.Snapshot()); n != 2 {
		t.Fatalf("snapshot has %d devices, want 2", n)
	}

	// Placement after a restart respects what is held.
	fleet := []Device{quickstartDevice("device-1"), quickstartDevice("device-2")}
	d, err := Place(newPod("new", "2", "1Gi"), fleet, l)
	if err != nil || d.Device != "device-1" {
		t.Fatalf("got %+v, %v; want device-1 (device-2 has only 1750m free)", d, err)
	}
	// A pod that is already placed keeps its device and reserves nothing new.
	d, err = Place(pods[0], fleet, l)
	if err != nil || !d.Existing || d.Device != "device-1" {
		t.Fatalf("placed pod: %+v, %v", d, err)
	}

	// Rebuild does not check room: a device that shrank is overcommitted,
	// not forgotten, and takes no new pods that request cpu.
	l.Rebuild([]Assignment{{PodKey: "a", Device: "tiny", Requests: rl("2", "")}})
	tiny := []Device{device("tiny", "1", "1Gi")}
	if _, err := Place(newPod("p", "100m", ""), tiny, l); err == nil || IsPermanent(err) {
		t.Fatalf("want a temporary error on an overcommitted device, got %v", err)
	}
}

func TestPlaceAdoptsAnnotation(t *testing.T) {
	// A pod whose placement is persisted but that the ledger does not know
	// (not in the Rebuild) is adopted, not placed again, even where
	// targeting or room would now say otherwise.
	l := NewLedger()
	p := withAnnotation(newPod("p", "8", "1Gi"), v1alpha1.AnnotationDevice, "device-2")
	withAnnotation(p, v1alpha1.AnnotationDeviceSelector, "not valid ((")
	d, err := Place(p, []Device{quickstartDevice("device-1"), quickstartDevice("device-2")}, l)
	if err != nil || !d.Existing || d.Device != "device-2" {
		t.Fatalf("got %+v, %v", d, err)
	}
	if a := l.Allocated("device-2"); a.Pods != 1 || a.Requests.Cpu().String() != "8" {
		t.Fatalf("adopted hold not recorded: %+v", a)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]Device{
		quickstartDevice("device-1"),
		offline(quickstartDevice("device-2")),
		owned(quickstartDevice("device-3"), "f1"),
		offline(owned(quickstartDevice("device-4"), "f1")),
	})
	if s.Total != 4 || s.Online != 1 || s.Offline != 1 || s.Owned != 2 {
		t.Errorf("counts %+v, want total 4 online 1 offline 1 owned 2", s)
	}
	for _, c := range []struct {
		what string
		got  corev1.ResourceList
		want string
	}{
		{"capacity", s.Capacity, "8/16Gi"},
		{"allocatable", s.Allocatable, "7500m/15Gi"},
	} {
		if got := c.got.Cpu().String() + "/" + c.got.Memory().String(); got != c.want {
			t.Errorf("%s %s, want %s", c.what, got, c.want)
		}
		if _, ok := c.got[corev1.ResourcePods]; ok {
			t.Errorf("%s has pods; the node's pod capacity is spec.maxPods", c.what)
		}
	}
	// Allocatable falls back to capacity when the device gives none.
	s = Summarize([]Device{{Name: "d", Capacity: rl("2", "4Gi")}})
	if got := s.Allocatable.Cpu().String() + "/" + s.Allocatable.Memory().String(); got != "2/4Gi" {
		t.Errorf("fallback allocatable %s, want 2/4Gi", got)
	}
}
