package flightctlsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The store holds every object in memory, guarded by Sim.mu. Objects keep
// their own resourceVersion counters, as on the real server (each object
// starts at "1"), and every persisted change goes through bump() so that
// resourceVersion can never miss a write.

// Annotations the simulated fleet controller sets on devices and fleets.
const (
	annotationTemplateVersion         = "fleet-controller/templateVersion"
	annotationRenderedTemplateVersion = "fleet-controller/renderedTemplateVersion"
)

// Status texts of the v1.2 server.
const (
	infoDisconnected     = "Device is disconnected (last seen more than 5 minutes ago)."
	infoResourcesHealthy = "Device's system resources are healthy."
	infoAppsHealthy      = "Device's application workloads are healthy."
	infoAppsUndefined    = "Device has not reported any application workloads yet."
	infoUpToDate         = "Device was updated to the latest device spec."
	infoFleetUpToDate    = "Device was updated to the fleet's latest device spec."
	infoOutOfDate        = "Device has not been updated to the latest device spec."
	infoUpdating         = "Device is updating to the latest device spec."
)

// Condition types the simulator maintains.
const (
	conditionUpdating  = "Updating"
	conditionSpecValid = "SpecValid"
)

// device is one Device and the simulator's bookkeeping about it.
type device struct {
	name string
	// consoleRefusal is the HTTP status the console endpoint answers for
	// this device instead of opening a session (RefuseConsole), 0 for none.
	consoleRefusal int
	labels         map[string]string
	annotations    map[string]string
	owner          string
	rv             int64
	generation     int64
	created        time.Time
	// spec is the canonical JSON of the spec. Only bytes are kept (plus
	// the number of applications): decoded specs of ten thousand devices
	// would multiply the heap the garbage collector has to scan.
	spec     []byte
	appCount int
	status   flightctl.DeviceStatus

	// Server worker state.
	specValid       bool
	renderedGen     int64
	renderedVersion int64
	renderedSpec    []byte
	renderedApps    []appInfo
	// workerEpoch identifies the queued worker task (0: none queued).
	workerEpoch uint64
	multiOwners string
	// decommissioning is set once PUT .../decommission was accepted.
	decommissioning bool

	// Connectivity. lastSeen is what GET .../lastseen reports and only an
	// agent moves it; statusSeen is the last status report of any kind
	// and drives disconnect detection, like status.lastSeen on the server.
	lastSeen    time.Time
	statusSeen  time.Time
	offline     bool
	detectEpoch uint64

	agent *agent

	// enc caches the device's JSON. Lists of a thousand devices are the
	// hot path, and most devices do not change between two polls.
	enc atomic.Pointer[[]byte]
}

// bump records a persisted write: resourceVersion +1 and cached JSON gone.
func (d *device) bump() {
	d.rv++
	d.enc.Store(nil)
}

// renderedAnnotation is the device-controller/renderedVersion value, or
// "" before the first render.
func (d *device) renderedAnnotation() string {
	if d.renderedVersion == 0 {
		return ""
	}
	return strconv.FormatInt(d.renderedVersion, 10)
}

// setSpec stores a new spec.
func (d *device) setSpec(spec []byte, obj map[string]any) {
	list, _ := obj["applications"].([]any)
	d.spec, d.appCount = spec, len(list)
}

// hasApplications reports whether the spec lists any application.
func (d *device) hasApplications() bool { return d.appCount > 0 }

// wire builds the device's JSON form.
func (d *device) wire() wireDevice {
	gen := d.generation
	created := d.created
	var owner *string
	if d.owner != "" {
		o := d.owner
		owner = &o
	}
	st := d.status
	return wireDevice{
		APIVersion: flightctl.APIVersion,
		Kind:       flightctl.KindDevice,
		Metadata: wireMeta{
			Annotations:       nonNil(d.annotations),
			CreationTimestamp: &created,
			Generation:        &gen,
			Labels:            nonNil(d.labels),
			Name:              d.name,
			Owner:             owner,
			ResourceVersion:   strconv.FormatInt(d.rv, 10),
		},
		Spec:   d.spec,
		Status: &st,
	}
}

// encoded returns the device's JSON, from cache when unchanged. Safe under
// the read lock: concurrent readers may both encode, and the cache is an
// atomic pointer.
func (d *device) encoded() []byte {
	if p := d.enc.Load(); p != nil {
		return *p
	}
	b := mustMarshal(d.wire())
	d.enc.Store(&b)
	return b
}

// fleet is one Fleet and the simulated fleet controller's bookkeeping.
type fleet struct {
	name        string
	labels      map[string]string
	annotations map[string]string
	rv          int64
	generation  int64
	created     time.Time
	// selector is spec.selector.matchLabels; hasSelector tells an absent
	// selector from an empty one.
	selector       map[string]string
	hasSelector    bool
	templateLabels map[string]string
	templateSpec   []byte
	// rolloutPolicy is spec.rolloutPolicy as sent (compacted), nil when
	// absent.
	rolloutPolicy []byte
	conditions    []flightctl.Condition

	validated       bool
	templateVersion int
	// versionedTemplate is the template that templateVersion names, to
	// tell a template change from a selector-only change.
	versionedTemplate []byte
	workerEpoch       uint64
	// plan is the batched rollout of the newest template version (nil
	// without a BatchSequence policy); batchEpoch its pending check.
	plan       *batchPlan
	batchEpoch uint64
}

// bump records a persisted write.
func (f *fleet) bump() { f.rv++ }

// ownerRef is the owner value a device owned by this fleet carries.
func (f *fleet) ownerRef() string { return "Fleet/" + f.name }

// selects reports whether the fleet's selector picks a device with these
// labels. A fleet without matchLabels selects nothing: the simulator will
// not let a typo in a test config swallow every device.
func (f *fleet) selects(lbls map[string]string) bool {
	if len(f.selector) == 0 {
		return false
	}
	for k, v := range f.selector {
		if got, ok := lbls[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// templateKey identifies the fleet's template, for change detection.
func (f *fleet) templateKey() []byte {
	return append(mustMarshal(f.templateLabels), f.templateSpec...)
}

// wire builds the fleet's JSON form.
func (f *fleet) wire(summary *flightctl.DevicesSummary) wireFleet {
	gen := f.generation
	created := f.created
	var sel *wireSelector
	if f.hasSelector {
		sel = &wireSelector{MatchLabels: f.selector}
	}
	conds := f.conditions
	if conds == nil {
		conds = []flightctl.Condition{}
	}
	return wireFleet{
		APIVersion: flightctl.APIVersion,
		Kind:       flightctl.KindFleet,
		Metadata: wireMeta{
			Annotations:       nonNil(f.annotations),
			CreationTimestamp: &created,
			Generation:        &gen,
			Labels:            nonNil(f.labels),
			Name:              f.name,
			ResourceVersion:   strconv.FormatInt(f.rv, 10),
		},
		Spec: wireFleetSpec{
			Selector:      sel,
			Template:      wireTemplate{Metadata: wireTemplateMeta{Labels: f.templateLabels}, Spec: f.templateSpec},
			RolloutPolicy: f.rolloutPolicy,
		},
		Status: wireFleetStatus{Conditions: conds, DevicesSummary: summary},
	}
}

// nonNil returns m, or an empty map so that JSON shows {} rather than null.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// newStatus is the status of a device no agent has reported for, exactly
// as the real server creates it.
func newStatus() flightctl.DeviceStatus {
	return flightctl.DeviceStatus{
		Applications:        []flightctl.ApplicationStatus{},
		ApplicationsSummary: flightctl.ApplicationsSummaryStatus{Status: flightctl.ApplicationsSummaryUnknown, Info: infoDisconnected},
		Conditions:          []flightctl.Condition{{Type: conditionUpdating, Status: "Unknown"}},
		Config:              flightctl.DeviceConfigStatus{RenderedVersion: ""},
		Integrity:           map[string]json.RawMessage{"status": json.RawMessage(`"Unknown"`)},
		Lifecycle:           flightctl.StatusWithInfo{Status: "Unknown"},
		OS:                  map[string]string{"image": "", "imageDigest": ""},
		Resources:           flightctl.DeviceResourceStatus{CPU: "Unknown", Disk: "Unknown", Memory: "Unknown"},
		Summary:             flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryUnknown, Info: infoDisconnected},
		SystemInfo:          map[string]string{"agentVersion": "", "architecture": "", "bootID": "", "operatingSystem": ""},
		Updated:             flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpToDate, Info: infoUpToDate},
	}
}

// cloneStatus deep-copies a status so that a snapshot handed to a test
// cannot race with the simulator.
func cloneStatus(s flightctl.DeviceStatus) flightctl.DeviceStatus {
	out := s
	out.Applications = slices.Clone(s.Applications)
	out.Conditions = slices.Clone(s.Conditions)
	out.Integrity = maps.Clone(s.Integrity)
	out.OS = maps.Clone(s.OS)
	out.SystemInfo = maps.Clone(s.SystemInfo)
	return out
}

// findCondition returns a pointer to the condition of a type, or nil.
func findCondition(conds []flightctl.Condition, t string) *flightctl.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// specHash is the device-controller/renderedSpecHash of a spec: the
// SHA-256 of its JSON (for an empty spec this equals the real server's
// value, sha256("{}")).
func specHash(spec []byte) string {
	sum := sha256.Sum256(spec)
	return hex.EncodeToString(sum[:])
}

// insertSorted adds s to a sorted slice.
func insertSorted(list []string, s string) []string {
	i := sort.SearchStrings(list, s)
	list = append(list, "")
	copy(list[i+1:], list[i:])
	list[i] = s
	return list
}

// removeSorted deletes s from a sorted slice.
func removeSorted(list []string, s string) []string {
	i := sort.SearchStrings(list, s)
	if i < len(list) && list[i] == s {
		return append(list[:i], list[i+1:]...)
	}
	return list
}

// microTime truncates to microseconds, the precision PostgreSQL stores:
// a real server's create response shows nanoseconds but every later read
// shows microseconds, and the simulator does the same.
func microTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
