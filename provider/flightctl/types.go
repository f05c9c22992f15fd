// Package flightctl is a typed client for the subset of the Flightctl
// v1beta1 user API that vk-flightctl needs: devices, fleets, events and the
// Status error body. The Flightctl Go module is not published on the module
// proxy, so the wire types are kept here and checked against transcripts of a
// real Flightctl v1.2.0 server (testdata/transcripts).
//
// The client polls (Flightctl has no watch), retries only what is safe to
// repeat, classifies errors with IsNotFound, IsConflict, IsStale,
// IsOwnedByFleet, IsUnauthorized, IsInvalid and IsRetryable, and keeps the
// bearer token out of every error and log line. DeviceSpec and
// ApplicationSpec keep unmodelled fields in Extra so a read-modify-write
// never drops what another tool put in a device spec.
package flightctl

import (
	"encoding/json"
	"time"
)

// APIVersion is the apiVersion every v1beta1 object carries on the wire.
const APIVersion = "flightctl.io/v1beta1"

// Kinds used on the wire.
const (
	KindDevice     = "Device"
	KindDeviceList = "DeviceList"
	KindFleet      = "Fleet"
	KindFleetList  = "FleetList"
	KindEvent      = "Event"
	KindEventList  = "EventList"
	KindStatus     = "Status"
)

// Application types accepted in spec.applications[].appType.
const (
	AppTypeCompose   = "compose"
	AppTypeQuadlet   = "quadlet"
	AppTypeContainer = "container"
	AppTypeHelm      = "helm"
)

// Application status values reported in status.applications[].status.
const (
	ApplicationStatusPreparing = "Preparing"
	ApplicationStatusStarting  = "Starting"
	ApplicationStatusRunning   = "Running"
	ApplicationStatusError     = "Error"
	ApplicationStatusUnknown   = "Unknown"
	ApplicationStatusCompleted = "Completed"
	ApplicationStatusStopping  = "Stopping"
	ApplicationStatusStopped   = "Stopped"
)

// Device summary status values (status.summary.status).
const (
	DeviceSummaryOnline            = "Online"
	DeviceSummaryDegraded          = "Degraded"
	DeviceSummaryError             = "Error"
	DeviceSummaryRebooting         = "Rebooting"
	DeviceSummaryPoweredOff        = "PoweredOff"
	DeviceSummaryUnknown           = "Unknown"
	DeviceSummaryAwaitingReconnect = "AwaitingReconnect"
	DeviceSummaryConflictPaused    = "ConflictPaused"
)

// Device lifecycle status values (status.lifecycle.status).
const (
	DeviceLifecycleEnrolled        = "Enrolled"
	DeviceLifecycleDecommissioning = "Decommissioning"
	DeviceLifecycleDecommissioned  = "Decommissioned"
)

// SpecDecommissioning is the spec key Flightctl sets (PUT
// /api/v1/devices/{name}/decommission) when a device is to be
// decommissioned.
const SpecDecommissioning = "decommissioning"

// Applications summary status values (status.applicationsSummary.status).
const (
	ApplicationsSummaryHealthy        = "Healthy"
	ApplicationsSummaryDegraded       = "Degraded"
	ApplicationsSummaryError          = "Error"
	ApplicationsSummaryUnknown        = "Unknown"
	ApplicationsSummaryNoApplications = "NoApplications"
)

// Device updated status values (status.updated.status).
const (
	DeviceUpdatedUpToDate  = "UpToDate"
	DeviceUpdatedOutOfDate = "OutOfDate"
	DeviceUpdatedUpdating  = "Updating"
	DeviceUpdatedUnknown   = "Unknown"
)

// The device condition the agent sets while it applies a rendered spec,
// and the reasons it gives when that fails.
const (
	// ConditionUpdating is the device condition of an update in progress.
	ConditionUpdating = "Updating"
	// UpdatingReasonError: the update failed; the previous version stays.
	UpdatingReasonError = "Error"
	// UpdatingReasonRollingBack: the agent is returning to the previous
	// version after a failure.
	UpdatingReasonRollingBack = "RollingBack"
)

// Event reasons the provider reacts to.
const (
	EventReasonDeviceDisconnected = "DeviceDisconnected"
	EventReasonDeviceConnected    = "DeviceConnected"
)

// Annotations the Flightctl server sets on devices after rendering a spec.
const (
	AnnotationRenderedVersion  = "device-controller/renderedVersion"
	AnnotationRenderedSpecHash = "device-controller/renderedSpecHash"
)

// Well-known systemInfo keys. cpuCores and memoryTotalKb are opt-in on the
// agent, so callers must handle their absence.
const (
	SystemInfoCPUCores      = "cpuCores"
	SystemInfoMemoryTotalKb = "memoryTotalKb"
	SystemInfoNetIPDefault  = "netIpDefault"
	SystemInfoHostname      = "hostname"
)

// ObjectMeta is the metadata block shared by Flightctl resources.
type ObjectMeta struct {
	// Name identifies the object within its kind.
	Name string `json:"name,omitempty"`
	// Labels are user labels; values are at most 63 characters.
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are server-owned; writes cannot set or change them.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Owner is "Fleet/<name>" when a fleet manages the device's spec.
	Owner *string `json:"owner,omitempty"`
	// ResourceVersion is an integer in a string, bumped on every write.
	// Sending it makes a PUT conditional.
	ResourceVersion string `json:"resourceVersion,omitempty"`
	// Generation is bumped only when the spec changes.
	Generation *int64 `json:"generation,omitempty"`
	// CreationTimestamp is set by the server.
	CreationTimestamp *time.Time `json:"creationTimestamp,omitempty"`
}

// ListMeta is the metadata block of a list response. The last page carries
// an empty object.
type ListMeta struct {
	// Continue is the opaque token for the next page; empty on the last.
	Continue string `json:"continue,omitempty"`
	// RemainingItemCount counts the items after this page.
	RemainingItemCount *int64 `json:"remainingItemCount,omitempty"`
}

// Device is a Flightctl device.
type Device struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Metadata   ObjectMeta    `json:"metadata"`
	Spec       *DeviceSpec   `json:"spec,omitempty"`
	Status     *DeviceStatus `json:"status,omitempty"`
}

// DeviceSpec is a device's desired state. Only applications are modelled;
// every other spec field (os, config, systemd, updatePolicy, ...) is kept
// verbatim in Extra so that a read-modify-write never drops what this
// project does not own.
type DeviceSpec struct {
	Applications []ApplicationSpec `json:"-"`
	// Extra holds spec fields this package does not model, by JSON key.
	Extra map[string]json.RawMessage `json:"-"`
}

// ApplicationSpec is one entry of spec.applications. Fields the provider
// does not model are kept in Extra and written back unchanged.
type ApplicationSpec struct {
	Name    string            `json:"-"`
	AppType string            `json:"-"`
	Image   string            `json:"-"`
	Inline  []InlineFile      `json:"-"`
	EnvVars map[string]string `json:"-"`
	// Extra holds application fields this package does not model (volumes,
	// ports, resources, runAs, ...), by JSON key.
	Extra map[string]json.RawMessage `json:"-"`
}

// InlineFile is one file of an inline application.
type InlineFile struct {
	Path            string `json:"path"`
	Content         string `json:"content"`
	ContentEncoding string `json:"contentEncoding,omitempty"`
}

// DeviceStatus is what the device agent (and the server) report.
type DeviceStatus struct {
	Applications        []ApplicationStatus        `json:"applications"`
	ApplicationsSummary ApplicationsSummaryStatus  `json:"applicationsSummary"`
	Conditions          []Condition                `json:"conditions"`
	Config              DeviceConfigStatus         `json:"config"`
	Integrity           map[string]json.RawMessage `json:"integrity,omitempty"`
	Lifecycle           StatusWithInfo             `json:"lifecycle"`
	OS                  map[string]string          `json:"os,omitempty"`
	Resources           DeviceResourceStatus       `json:"resources"`
	Summary             StatusWithInfo             `json:"summary"`
	SystemInfo          map[string]string          `json:"systemInfo"`
	Updated             StatusWithInfo             `json:"updated"`
}

// ApplicationStatus is the per-application status a device reports. It is
// per application, not per container: ready is "<healthy>/<total>".
type ApplicationStatus struct {
	Name     string `json:"name"`
	AppType  string `json:"appType,omitempty"`
	Embedded bool   `json:"embedded"`
	Ready    string `json:"ready"`
	Restarts int32  `json:"restarts"`
	Status   string `json:"status"`
}

// ApplicationsSummaryStatus is status.applicationsSummary.
type ApplicationsSummaryStatus struct {
	Status string `json:"status"`
	Info   string `json:"info,omitempty"`
}

// StatusWithInfo is the {status, info} pair used by summary, updated and
// lifecycle.
type StatusWithInfo struct {
	Status string `json:"status"`
	Info   string `json:"info,omitempty"`
}

// DeviceConfigStatus is status.config.
type DeviceConfigStatus struct {
	RenderedVersion string `json:"renderedVersion"`
}

// DeviceResourceStatus is status.resources.
type DeviceResourceStatus struct {
	CPU    string `json:"cpu"`
	Disk   string `json:"disk"`
	Memory string `json:"memory"`
}

// Condition is a Flightctl status condition.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`
	Message            string    `json:"message"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// DeviceList is a page of devices.
type DeviceList struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ListMeta        `json:"metadata"`
	Items      []Device        `json:"items"`
	Summary    *DevicesSummary `json:"summary,omitempty"`
}

// DevicesSummary counts the devices of one returned page by status.
type DevicesSummary struct {
	ApplicationStatus map[string]int64 `json:"applicationStatus,omitempty"`
	SummaryStatus     map[string]int64 `json:"summaryStatus,omitempty"`
	UpdateStatus      map[string]int64 `json:"updateStatus,omitempty"`
	Total             int64            `json:"total"`
}

// Fleet is a Flightctl fleet: a selector over devices and a device template.
type Fleet struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       FleetSpec    `json:"spec"`
	Status     *FleetStatus `json:"status,omitempty"`
}

// FleetSpec is a fleet's spec.
type FleetSpec struct {
	Selector *LabelSelector `json:"selector,omitempty"`
	Template FleetTemplate  `json:"template"`
	// RolloutPolicy is kept verbatim so that replacing a fleet read from
	// the server does not drop its rollout settings.
	RolloutPolicy json.RawMessage `json:"rolloutPolicy,omitempty"`
}

// LabelSelector selects devices by labels.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is one set-based selector term: operator is In,
// NotIn, Exists or DoesNotExist.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// FleetTemplate is the device template a fleet rolls out.
type FleetTemplate struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     DeviceSpec `json:"spec"`
}

// FleetStatus is a fleet's status.
type FleetStatus struct {
	Conditions     []Condition                `json:"conditions,omitempty"`
	DevicesSummary map[string]json.RawMessage `json:"devicesSummary,omitempty"`
}

// FleetList is a page of fleets.
type FleetList struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   ListMeta `json:"metadata"`
	Items      []Fleet  `json:"items"`
}

// Event is a Flightctl event.
type Event struct {
	APIVersion     string                     `json:"apiVersion"`
	Kind           string                     `json:"kind"`
	Metadata       ObjectMeta                 `json:"metadata"`
	InvolvedObject ObjectReference            `json:"involvedObject"`
	Reason         string                     `json:"reason"`
	Message        string                     `json:"message"`
	Type           string                     `json:"type"`
	Source         EventSource                `json:"source"`
	Actor          string                     `json:"actor"`
	Details        map[string]json.RawMessage `json:"details,omitempty"`
}

// ObjectReference names the object an event is about.
type ObjectReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// EventSource names the component that recorded an event.
type EventSource struct {
	Component string `json:"component"`
}

// EventList is a page of events, newest first.
type EventList struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   ListMeta `json:"metadata"`
	Items      []Event  `json:"items"`
}

// Status is the body of every error response.
type Status struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Code       int32  `json:"code"`
	Reason     string `json:"reason"`
	Status     string `json:"status"`
	Message    string `json:"message"`
}

// LastSeen is the body of GET /devices/{name}/lastseen.
type LastSeen struct {
	LastSeen time.Time `json:"lastSeen"`
}

// PatchOperation is one RFC 6902 JSON patch operation.
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}
