// Package inventory turns the Flightctl devices a binding selects into what
// Kubernetes sees: per-device capacity and allocatable resources, which
// devices are usable, and fleet-wide totals for the virtual node.
package inventory

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
)

// maxUnusableListed bounds status.unusableDevices so a large fleet cannot
// make the binding object huge.
const maxUnusableListed = 50

// Unusable device reasons.
const (
	ReasonOwnedByFleet = "OwnedByFleet"
	// ReasonDecommissioning: the device is being decommissioned.
	ReasonDecommissioning = vkv1.ReasonDeviceDecommissioning
)

// Options say how device capacity is derived.
type Options struct {
	// DefaultCapacity applies to devices that do not report cpuCores or
	// memoryTotalKb (both opt-in on the agent).
	DefaultCapacity corev1.ResourceList
	// Reserve is subtracted from each device's capacity.
	Reserve corev1.ResourceList
	// MaxPods bounds pods per device and is the node's pod capacity.
	MaxPods int32
	// FleetWide names the Flightctl Fleet of a fleet-wide binding: the
	// devices it owns are the node's devices, usable rather than listed
	// as OwnedByFleet (the provider writes the Fleet's template, never
	// their specs).
	FleetWide string
}

// OptionsFor reads the options from a binding, falling back to the CRD
// defaults when a field is empty (objects created before defaulting).
func OptionsFor(b *vkv1.FleetBinding) Options {
	o := Options{DefaultCapacity: b.Spec.DefaultDeviceCapacity, Reserve: b.Spec.DeviceReserve, MaxPods: b.Spec.MaxPods, FleetWide: b.Spec.FlightctlFleet}
	if o.DefaultCapacity == nil {
		o.DefaultCapacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi")}
	}
	if o.Reserve == nil {
		o.Reserve = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")}
	}
	if o.MaxPods <= 0 {
		o.MaxPods = 110
	}
	return o
}

// Device is one Flightctl device as the provider sees it.
type Device struct {
	placement.Device
	// IP is the device's default address (systemInfo netIpDefault without
	// its prefix length); pods on it report it as their pod and host IP.
	// Empty when the device reports no valid address.
	IP string
	// SummaryStatus and SummaryInfo are status.summary from Flightctl.
	SummaryStatus string
	SummaryInfo   string
	// Applications are the device's reported application statuses by name.
	Applications map[string]flightctl.ApplicationStatus
	// SpecApplications are the names of applications in the device spec.
	SpecApplications []string
	// SpecDigests are AppDigest of each spec application, by name; only
	// in fleet-wide mode, where they tell which template version of an
	// application a device was given.
	SpecDigests map[string]string
	// ResourceVersion is the device's metadata.resourceVersion.
	ResourceVersion string
	// RenderedVersion is the server's device-controller/renderedVersion
	// annotation: the newest rendered spec.
	RenderedVersion int64
	// AppliedVersion is status.config.renderedVersion: the rendered spec the
	// agent runs. A write is live once AppliedVersion reaches the rendered
	// version that followed it.
	AppliedVersion int64
	// UpdatedStatus is status.updated.status (UpToDate, Updating, ...).
	UpdatedStatus string
	// UpdateFailure is the agent's message when its last update failed or
	// is being rolled back (condition Updating with reason Error or
	// RollingBack), "" otherwise. The rendered versions after
	// AppliedVersion are the ones that failed.
	UpdateFailure string
	// Architecture and OperatingSystem come from systemInfo.
	Architecture    string
	OperatingSystem string
}

// Fleet is one listing of a binding's devices.
type Fleet struct {
	// Devices sorted by name.
	Devices []Device
	// Summary counts devices by usability.
	Summary vkv1.DeviceSummary
	// Unusable lists devices that cannot take pods, bounded.
	Unusable []vkv1.UnusableDevice
	// Capacity and Allocatable sum the usable devices.
	Capacity    corev1.ResourceList
	Allocatable corev1.ResourceList
	// ListedAt is when the listing finished.
	ListedAt time.Time

	byName map[string]int
	// placement is Devices in placement's form, built once per Fleet:
	// placement asks for it for every new pod.
	placement []placement.Device
	// byApp indexes devices by the applications in their spec: Holder is
	// asked for every new pod.
	byApp map[string]int
}

// Get returns the named device.
func (f *Fleet) Get(name string) (*Device, bool) {
	if f == nil {
		return nil, false
	}
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return &f.Devices[i], true
}

// Holder returns the device whose spec holds the named application. The
// device spec is where a pod's placement is first recorded (the pod's own
// record follows with its first status write), so after a restart this
// finds where a pod that never reported status already runs.
func (f *Fleet) Holder(app string) (string, bool) {
	if f == nil {
		return "", false
	}
	i, ok := f.byApp[app]
	if !ok {
		return "", false
	}
	return f.Devices[i].Name, true
}

// PlacementDevices returns the devices in the form placement takes, in
// name order. The slice is shared: callers must not change it.
func (f *Fleet) PlacementDevices() []placement.Device {
	return f.placement
}

// IsOnline says whether Flightctl reports a device with status st as
// connected. Degraded devices still run workloads; Unknown means
// disconnected (or never seen).
func IsOnline(st *flightctl.DeviceStatus) bool {
	if st == nil {
		return false
	}
	switch st.Summary.Status {
	case flightctl.DeviceSummaryOnline, flightctl.DeviceSummaryDegraded, flightctl.DeviceSummaryError:
		return true
	}
	return false
}

// Digests is what a listing for these options must digest spec
// applications with: AppDigest in fleet-wide mode, which compares them
// with the Fleet's template, nothing otherwise.
func (o Options) Digests() flightctl.AppDigestFunc {
	if o.FleetWide == "" {
		return nil
	}
	return AppDigest
}

// FromDevice converts one Flightctl device read in full. It goes through
// the device's listed form, so a device converts the same whichever way
// it was read.
func FromDevice(d *flightctl.Device, o Options) Device {
	l := d.Listed(o.Digests())
	return FromListed(&l, o)
}

// FromListed converts one device of a lean listing
// (flightctl.ReadDeviceList, read with o.Digests()).
func FromListed(d *flightctl.ListedDevice, o Options) Device {
	out := Device{
		Device: placement.Device{
			Name:    d.Metadata.Name,
			Labels:  d.Metadata.Labels,
			Online:  IsOnline(d.Status),
			MaxPods: int(o.MaxPods),
		},
		ResourceVersion: d.Metadata.ResourceVersion,
	}
	if d.Metadata.Owner != nil {
		out.OwnedBy = strings.TrimPrefix(*d.Metadata.Owner, "Fleet/")
	}
	if o.FleetWide != "" && out.OwnedBy == o.FleetWide {
		out.OwnedBy = ""
	}
	var sys map[string]string
	if d.Status != nil {
		sys = d.Status.SystemInfo
		out.SummaryStatus = d.Status.Summary.Status
		out.SummaryInfo = d.Status.Summary.Info
		out.Applications = make(map[string]flightctl.ApplicationStatus, len(d.Status.Applications))
		for _, a := range d.Status.Applications {
			out.Applications[a.Name] = a
		}
		out.AppliedVersion, _ = strconv.ParseInt(d.Status.Config.RenderedVersion, 10, 64)
		out.UpdatedStatus = d.Status.Updated.Status
		out.UpdateFailure = updateFailure(d.Status)
	}
	out.RenderedVersion, _ = strconv.ParseInt(d.Metadata.Annotations[flightctl.AnnotationRenderedVersion], 10, 64)
	if d.Spec != nil {
		out.SpecApplications, out.SpecDigests = specApps(d.Spec.Applications, o.FleetWide != "")
	}
	out.Unavailable = decommissioning(d)
	out.IP = deviceIP(sys[flightctl.SystemInfoNetIPDefault])
	out.Architecture = sys["architecture"]
	out.OperatingSystem = sys["operatingSystem"]
	out.Capacity = capacity(sys, o.DefaultCapacity)
	out.Allocatable = subtract(out.Capacity, o.Reserve)
	return out
}

// specApps are the names of a spec's applications and, when digests are
// wanted, their digests by name.
func specApps(apps []flightctl.ListedApplication, digests bool) ([]string, map[string]string) {
	var names []string
	var byName map[string]string
	if digests {
		byName = make(map[string]string, len(apps))
	}
	for _, a := range apps {
		names = append(names, a.Name)
		if digests {
			byName[a.Name] = a.Digest
		}
	}
	return names, byName
}

// capacity reads cpuCores and memoryTotalKb, falling back per resource.
func capacity(sys map[string]string, def corev1.ResourceList) corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:    def.Cpu().DeepCopy(),
		corev1.ResourceMemory: def.Memory().DeepCopy(),
	}
	if v, err := strconv.ParseFloat(strings.TrimSpace(sys[flightctl.SystemInfoCPUCores]), 64); err == nil && v > 0 {
		c[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(v*1000), resource.DecimalSI)
	}
	// memoryTotalKb is /proc/meminfo's MemTotal, which is in KiB.
	if v, err := strconv.ParseInt(strings.TrimSpace(sys[flightctl.SystemInfoMemoryTotalKb]), 10, 64); err == nil && v > 0 {
		c[corev1.ResourceMemory] = *resource.NewQuantity(v*1024, resource.BinarySI)
	}
	return c
}

// subtract returns a-b per resource, never below zero.
func subtract(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, q := range a {
		v := q.DeepCopy()
		if r, ok := b[name]; ok {
			v.Sub(r)
		}
		if v.Sign() < 0 {
			v = *resource.NewQuantity(0, q.Format)
		}
		out[name] = v
	}
	return out
}

// ReasonClaimedByOtherBinding marks a device an older FleetBinding uses.
const ReasonClaimedByOtherBinding = "ClaimedByOtherBinding"

// BuildExcluding is Build without the devices in claimed (device name to
// the FleetBinding that uses it): they are counted in Total and listed as
// unusable, never placed on.
func BuildExcluding(devs []flightctl.Device, o Options, now time.Time, claimed map[string]string) *Fleet {
	conv := make([]Device, 0, len(devs))
	for i := range devs {
		conv = append(conv, FromDevice(&devs[i], o))
	}
	return Assemble(conv, now, claimed)
}

// Build converts a full listing. Devices owned by a Flightctl fleet are
// counted and listed as unusable: Flightctl refuses per-device spec changes
// on them, so placing pods there could never work.
func Build(devs []flightctl.Device, o Options, now time.Time) *Fleet {
	return BuildExcluding(devs, o, now, nil)
}

// Assemble builds a Fleet from devices already converted by FromListed
// (a poller that keeps devices between listings converts each once),
// leaving out the claimed ones as BuildExcluding does. It takes ownership
// of devs.
func Assemble(devs []Device, now time.Time, claimed map[string]string) *Fleet {
	var excluded []vkv1.UnusableDevice
	if len(claimed) > 0 {
		kept := devs[:0]
		for _, d := range devs {
			if by, ok := claimed[d.Name]; ok {
				excluded = append(excluded, vkv1.UnusableDevice{Name: d.Name, Reason: ReasonClaimedByOtherBinding, Message: fmt.Sprintf(
					"device %s is already used by FleetBinding %s; make the bindings' device selectors disjoint", d.Name, by)})
				continue
			}
			kept = append(kept, d)
		}
		devs = kept
	}
	f := assemble(devs, now)
	f.Summary.Total += int32(len(excluded))
	sort.Slice(excluded, func(i, j int) bool { return excluded[i].Name < excluded[j].Name })
	for _, u := range excluded {
		if len(f.Unusable) >= maxUnusableListed {
			break
		}
		f.Unusable = append(f.Unusable, u)
	}
	return f
}

// assemble sorts devs and sums them into a Fleet.
func assemble(devs []Device, now time.Time) *Fleet {
	f := &Fleet{
		Devices:  devs,
		ListedAt: now,
		byName:   make(map[string]int, len(devs)),
		byApp:    map[string]int{},
	}
	sort.Slice(f.Devices, func(i, j int) bool { return f.Devices[i].Name < f.Devices[j].Name })
	f.placement = make([]placement.Device, len(f.Devices))
	for i := range f.Devices {
		f.placement[i] = f.Devices[i].Device
		f.byName[f.Devices[i].Name] = i
		for _, app := range f.Devices[i].SpecApplications {
			f.byApp[app] = i
		}
	}
	// Capacity counts offline devices too (placement.Summarize): their pods
	// stay bound as Unknown until the reconnect timeout, and the node's
	// allocatable should not flap with every short disconnection.
	sum := placement.Summarize(f.PlacementDevices())
	f.Capacity, f.Allocatable = sum.Capacity, sum.Allocatable
	f.Summary = vkv1.DeviceSummary{Total: int32(sum.Total), Online: int32(sum.Online), Disconnected: int32(sum.Offline), Owned: int32(sum.Owned)}
	unusable := 0
	for i := range f.Devices {
		d := &f.Devices[i]
		var u vkv1.UnusableDevice
		switch {
		case d.OwnedBy != "":
			u = vkv1.UnusableDevice{Name: d.Name, Reason: ReasonOwnedByFleet, Message: fmt.Sprintf(
				"device %s is owned by Flightctl fleet %s; per-device workloads need devices that no fleet owns (change the fleet's selector or the device's labels)", d.Name, d.OwnedBy)}
		case d.Unavailable != "":
			u = vkv1.UnusableDevice{Name: d.Name, Reason: ReasonDecommissioning, Message: fmt.Sprintf("device %s is %s", d.Name, d.Unavailable)}
		default:
			continue
		}
		unusable++
		if len(f.Unusable) < maxUnusableListed {
			f.Unusable = append(f.Unusable, u)
		}
	}
	if unusable > maxUnusableListed {
		f.Unusable = append(f.Unusable, vkv1.UnusableDevice{Name: "...", Reason: "Truncated", Message: fmt.Sprintf("%d more not listed", unusable-maxUnusableListed)})
	}
	return f
}

// updateFailure is the agent's words for a failed or rolled-back update:
// the Updating condition's message (v1.2 agents put e.g. "While
// Preparing: prefetch failed for <app>: ..." there), else status.updated's
// info, which the server builds from it.
func updateFailure(st *flightctl.DeviceStatus) string {
	for _, c := range st.Conditions {
		if c.Type != flightctl.ConditionUpdating || (c.Reason != flightctl.UpdatingReasonError && c.Reason != flightctl.UpdatingReasonRollingBack) {
			continue
		}
		if c.Message != "" {
			return c.Message
		}
		if st.Updated.Info != "" {
			return st.Updated.Info
		}
		return "the device's update failed (condition Updating, reason " + c.Reason + ")"
	}
	return ""
}

// AppDigest fingerprints what an application runs: its type, image, inline
// files and environment. Fields the server adds when it renders a Fleet's
// template onto a device (runAs) are left out, so the digest of what was
// written into the template equals the digest of the device's copy.
func AppDigest(a flightctl.ApplicationSpec) string {
	h := sha256.New()
	write := func(parts ...string) {
		for _, p := range parts {
			_, _ = fmt.Fprintf(h, "%d:%s", len(p), p)
		}
	}
	write(a.Name, a.AppType, a.Image)
	for _, f := range a.Inline {
		write(f.Path, f.ContentEncoding, f.Content)
	}
	keys := make([]string, 0, len(a.EnvVars))
	for k := range a.EnvVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		write(k, a.EnvVars[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// deviceIP is the address in a netIpDefault value. The real v1.2.0 agent
// reports its interface address with the prefix length ("192.0.2.2/24");
// a pod IP must be a bare address or the API server refuses the whole
// pod status, so the prefix is dropped and anything unparsable is left
// out rather than written.
func deviceIP(v string) string {
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Addr().String()
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a.String()
	}
	return ""
}

// decommissioning says why a device runs no workloads any more: Flightctl
// sets spec.decommissioning when asked to decommission it, and the
// lifecycle follows (Decommissioning, then Decommissioned once the agent
// has wiped its workloads). "" for a device in service.
func decommissioning(d *flightctl.ListedDevice) string {
	lifecycle := ""
	if d.Status != nil {
		lifecycle = d.Status.Lifecycle.Status
	}
	asked := d.Spec != nil && d.Spec.Decommissioning
	switch {
	case lifecycle == flightctl.DeviceLifecycleDecommissioning || lifecycle == flightctl.DeviceLifecycleDecommissioned:
		return "decommissioned in Flightctl (status.lifecycle.status " + lifecycle + ")"
	case asked:
		return "decommissioned in Flightctl (spec.decommissioning is set)"
	}
	return ""
}
