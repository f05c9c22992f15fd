package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ApplicationFormat is how a pod is written as a Flightctl application.
// +kubebuilder:validation:Enum=quadlet;compose
type ApplicationFormat string

const (
	// ApplicationFormatQuadlet writes a pod as a quadlet .pod unit plus one
	// .container unit per container.
	ApplicationFormatQuadlet ApplicationFormat = "quadlet"
	// ApplicationFormatCompose writes a pod as one podman-compose file.
	ApplicationFormatCompose ApplicationFormat = "compose"
)

// FleetBindingSpec says which Flightctl devices form the fleet, how to
// reach Flightctl, and how the virtual node behaves.
// +kubebuilder:validation:XValidation:rule="has(self.flightctlFleet) == has(oldSelf.flightctlFleet)",message="flightctlFleet cannot be added or removed; create a new FleetBinding instead"
// +kubebuilder:validation:XValidation:rule="!has(self.flightctlFleet) || !has(self.deviceSelector)",message="deviceSelector and flightctlFleet are exclusive: a Flightctl Fleet's devices are the ones it owns"
// +kubebuilder:validation:XValidation:rule="!has(self.rolloutPolicy) || has(self.flightctlFleet)",message="rolloutPolicy needs flightctlFleet: it is the Flightctl Fleet's rollout policy"
type FleetBindingSpec struct {
	// Fleet names the fleet. It forms the node name vk-flightctl-<fleet>
	// (unless nodeName is set) and the node label flightctl.io/fleet=<fleet>.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=50
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="fleet is immutable; create a new FleetBinding instead"
	Fleet string `json:"fleet"`

	// NodeName overrides the virtual node's name (default vk-flightctl-<fleet>).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	NodeName string `json:"nodeName,omitempty"`

	// DeviceSelector is a Kubernetes-syntax label selector evaluated by
	// Flightctl over device labels (for example "fleet=edge-fleet-1,site in (a,b)").
	// Empty means "fleet=<spec.fleet>". Devices owned by a Flightctl Fleet are
	// listed in status but never used: Flightctl refuses per-device spec
	// changes on them.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	DeviceSelector string `json:"deviceSelector,omitempty"`

	// FlightctlFleet names a Flightctl Fleet and switches the binding to
	// fleet-wide mode: the node stands for the devices that Fleet owns
	// (metadata.owner Fleet/<name>), and each fleet-wide pod (a DaemonSet's,
	// or one annotated flightctl.io/fleet-wide: "true") becomes an
	// application in the Fleet's template, which Flightctl rolls out to
	// every device. Per-device pods are refused on such a node. Empty means
	// per-device mode (deviceSelector). See docs/fleets.md.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="flightctlFleet is immutable; create a new FleetBinding instead"
	FlightctlFleet string `json:"flightctlFleet,omitempty"`

	// RolloutPolicy, with flightctlFleet, is written as the Flightctl
	// Fleet's spec.rolloutPolicy whenever its template changes. Unset
	// leaves the Fleet's own rollout policy alone.
	// +optional
	RolloutPolicy *RolloutPolicy `json:"rolloutPolicy,omitempty"`

	// Flightctl says how to reach the Flightctl API.
	// +kubebuilder:validation:Required
	Flightctl FlightctlConnection `json:"flightctl"`

	// ReconnectTimeout is how long pods on a disconnected device stay Unknown
	// before they are deleted so their controllers recreate them elsewhere.
	// Unset means the vk-flightctl-config ConfigMap's reconnectTimeout, and
	// 5m when that is unset too.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="reconnectTimeout must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('168h')",message="reconnectTimeout must be at most 168h"
	ReconnectTimeout *metav1.Duration `json:"reconnectTimeout,omitempty"`

	// DeployDeadline is how long a pod's application may take to start on
	// its device after it was written; past it the pod's containers wait
	// with reason DeployDeadlineExceeded, naming what the device last
	// reported (the pod is neither deleted nor written again). Unset means
	// the ConfigMap's deployDeadline, and 10m when that is unset too.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="deployDeadline must be at least 5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('168h')",message="deployDeadline must be at most 168h"
	DeployDeadline *metav1.Duration `json:"deployDeadline,omitempty"`

	// StatusPollInterval is how often device status is read from Flightctl.
	// Unset means the ConfigMap's statusPollInterval, and 5s when that is
	// unset too.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="statusPollInterval must be at least 1s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('10m')",message="statusPollInterval must be at most 10m"
	StatusPollInterval *metav1.Duration `json:"statusPollInterval,omitempty"`

	// FullResyncInterval is how often every selected device is listed
	// again. Between resyncs each status poll reads only the devices that
	// are changing (a write in flight, a pod not yet Running, a status not
	// healthy, a recent Flightctl event), so a new or relabelled device
	// appears, and a container restart on a settled device shows, within
	// this interval (docs/polling.md). Unset means the ConfigMap's
	// fullResyncInterval, and 60s (the agent's status period) when that is
	// unset too. Never shorter than the status poll interval.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="fullResyncInterval must be at least 10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="fullResyncInterval must be at most 1h"
	FullResyncInterval *metav1.Duration `json:"fullResyncInterval,omitempty"`

	// DeviceReserve is subtracted from every device's capacity to give its
	// allocatable resources (room for the OS and the agent).
	// +optional
	// +kubebuilder:default={cpu: "250m", memory: "512Mi"}
	DeviceReserve corev1.ResourceList `json:"deviceReserve,omitempty"`

	// DefaultDeviceCapacity is used for a device that does not report
	// cpuCores or memoryTotalKb in its systemInfo (both are opt-in on the
	// Flightctl agent).
	// +optional
	// +kubebuilder:default={cpu: "2", memory: "4Gi"}
	DefaultDeviceCapacity corev1.ResourceList `json:"defaultDeviceCapacity,omitempty"`

	// MaxPods is the node's pod capacity, and the most pods one device takes.
	// +optional
	// +kubebuilder:default=110
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxPods int32 `json:"maxPods,omitempty"`

	// NodeLabels are added to the virtual node's labels. They cannot
	// override the labels the node needs (flightctl.io/fleet, type, role).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	NodeLabels map[string]string `json:"nodeLabels,omitempty"`

	// NodeTaints are set on the virtual node.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	NodeTaints []corev1.Taint `json:"nodeTaints,omitempty"`

	// ApplicationFormat is how pods are written to devices.
	// +optional
	// +kubebuilder:default=quadlet
	ApplicationFormat ApplicationFormat `json:"applicationFormat,omitempty"`
}

// RolloutPolicy is how Flightctl rolls a new template version out to the
// Fleet's devices (Flightctl v1.2 spec.rolloutPolicy).
type RolloutPolicy struct {
	// Batches are rolled out one after the other; each updates at most
	// limit devices (a number, or a percentage like "50%"). Flightctl
	// updates the devices no batch selected in a last, implicit batch.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +listType=atomic
	Batches []RolloutBatch `json:"batches,omitempty"`

	// SuccessThreshold is the percentage of a batch's devices that must
	// update successfully before the next batch starts, e.g. "90%".
	// +optional
	// +kubebuilder:validation:Pattern=`^(100|[1-9]?[0-9])%$`
	SuccessThreshold string `json:"successThreshold,omitempty"`

	// DisruptionBudget bounds how many devices are updating at once.
	// +optional
	DisruptionBudget *DisruptionBudget `json:"disruptionBudget,omitempty"`
}

// RolloutBatch is one batch of a rollout.
type RolloutBatch struct {
	// Limit is the most devices the batch updates: a number ("1") or a
	// percentage ("50%").
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:Pattern=`^([1-9][0-9]{0,5}|(100|[1-9]?[0-9])%)$`
	Limit string `json:"limit"`

	// Selector narrows the batch to devices with these labels.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Selector map[string]string `json:"selector,omitempty"`
}

// DisruptionBudget bounds the devices a rollout takes down at once.
// +kubebuilder:validation:XValidation:rule="has(self.maxUnavailable) || has(self.minAvailable)",message="set maxUnavailable or minAvailable"
type DisruptionBudget struct {
	// MaxUnavailable is the most devices updating at the same time.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
	// MinAvailable is the fewest devices that must stay available.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MinAvailable *int32 `json:"minAvailable,omitempty"`
}

// FlightctlConnection says where the Flightctl API is and how to
// authenticate. The token is only ever read from a Secret.
// +kubebuilder:validation:XValidation:rule="has(self.credentialsSecretRef.name) && size(self.credentialsSecretRef.name) > 0",message="credentialsSecretRef.name must name a Secret with keys api-url and auth-token"
type FlightctlConnection struct {
	// CredentialsSecretRef names a Secret in the binding's namespace with
	// keys api-url and auth-token, and optionally ca.crt (PEM) and
	// client.yaml (a Flightctl CLI client.yaml; api-url, auth-token and
	// ca.crt take precedence over what it says).
	// +kubebuilder:validation:Required
	CredentialsSecretRef corev1.LocalObjectReference `json:"credentialsSecretRef"`

	// InsecureSkipTLSVerify turns off verification of the API's TLS
	// certificate. Only for tests; shown in status while on.
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`

	// TLSServerName overrides the name checked in the API's certificate.
	// +optional
	TLSServerName string `json:"tlsServerName,omitempty"`

	// Organization is the Flightctl organization ID (org_id) for identities
	// that belong to several organizations.
	// +optional
	Organization string `json:"organization,omitempty"`
}

// DeviceSummary counts the devices the selector matched.
type DeviceSummary struct {
	// Total is every device the selector matched.
	Total int32 `json:"total"`
	// Online devices report summary status Online (or Degraded) and are not
	// owned by a Flightctl Fleet.
	Online int32 `json:"online"`
	// Disconnected devices are not owned but do not currently report.
	Disconnected int32 `json:"disconnected"`
	// Owned devices belong to a Flightctl Fleet and cannot take pods.
	Owned int32 `json:"owned"`
}

// UnusableDevice is a device the selector matched that cannot take pods.
type UnusableDevice struct {
	// Name is the Flightctl device name.
	Name string `json:"name"`
	// Reason is a CamelCase reason, e.g. OwnedByFleet.
	Reason string `json:"reason"`
	// Message says why and what to do.
	Message string `json:"message"`
}

// DisconnectedDevice records when a device went away and when its pods
// will be rescheduled. It is the persisted state of the reconnection timer.
type DisconnectedDevice struct {
	// Name is the Flightctl device name.
	Name string `json:"name"`
	// Since is when the disconnection was first observed.
	Since metav1.Time `json:"since"`
	// Deadline is when its pods are rescheduled if it is still away.
	Deadline metav1.Time `json:"deadline"`
	// Pods is how many pods were on it when it went away.
	// +optional
	Pods int32 `json:"pods,omitempty"`
}

// FleetBindingStatus is what the manager observed.
type FleetBindingStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, FlightctlConnected, NodeRegistered, Degraded, and
	// the provider's DevicesAvailable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// NodeName is the virtual node registered for this binding.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// Shard is the manager replica that runs this binding's node in
	// sharded mode (--sharding); empty in single-leader mode.
	// +optional
	Shard string `json:"shard,omitempty"`

	// FlightctlURL is the API URL in use (never the token).
	// +optional
	FlightctlURL string `json:"flightctlURL,omitempty"`

	// InsecureSkipTLSVerify is true while TLS verification is off.
	// +optional
	InsecureSkipTLSVerify bool `json:"insecureSkipTLSVerify,omitempty"`

	// Devices counts the matched devices.
	// +optional
	Devices *DeviceSummary `json:"devices,omitempty"`

	// UnusableDevices lists matched devices that cannot take pods (at most 50).
	// +optional
	// +listType=atomic
	UnusableDevices []UnusableDevice `json:"unusableDevices,omitempty"`

	// DisconnectedDevices lists devices that went away and their deadlines.
	// +optional
	// +listType=map
	// +listMapKey=name
	DisconnectedDevices []DisconnectedDevice `json:"disconnectedDevices,omitempty"`

	// Capacity is the sum of the usable devices' capacity.
	// +optional
	Capacity corev1.ResourceList `json:"capacity,omitempty"`

	// Allocatable is Capacity minus the per-device reserve.
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`

	// Pods is how many pods are bound to the node.
	// +optional
	Pods int32 `json:"pods,omitempty"`
}

// FleetBinding binds a fleet of Flightctl devices to one virtual-kubelet
// node, so ordinary pods bound to that node run as Flightctl applications.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fb,categories=vk-flightctl
// +kubebuilder:printcolumn:name="Fleet",type=string,JSONPath=`.spec.fleet`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Devices",type=integer,JSONPath=`.status.devices.total`
// +kubebuilder:printcolumn:name="Online",type=integer,JSONPath=`.status.devices.online`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Shard",type=string,JSONPath=`.status.shard`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FleetBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired binding.
	Spec FleetBindingSpec `json:"spec"`
	// Status is what the manager observed.
	// +optional
	Status FleetBindingStatus `json:"status,omitempty"`
}

// FleetBindingList is a list of FleetBindings.
//
// +kubebuilder:object:root=true
type FleetBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the bindings.
	Items []FleetBinding `json:"items"`
}

// EffectiveNodeName is the node name this binding registers.
func (b *FleetBinding) EffectiveNodeName() string {
	if b.Spec.NodeName != "" {
		return b.Spec.NodeName
	}
	return DefaultNodeNamePrefix + b.Spec.Fleet
}

// FleetWide says whether the binding is in fleet-wide mode (it names a
// Flightctl Fleet).
func (b *FleetBinding) FleetWide() bool { return b.Spec.FlightctlFleet != "" }

// EffectiveDeviceSelector is the Flightctl label selector for the fleet's
// devices; empty in fleet-wide mode, where devices are selected by owner
// (EffectiveOwnerSelector).
func (b *FleetBinding) EffectiveDeviceSelector() string {
	if b.FleetWide() {
		return ""
	}
	if b.Spec.DeviceSelector != "" {
		return b.Spec.DeviceSelector
	}
	return DefaultFleetLabelKey + "=" + b.Spec.Fleet
}

// EffectiveOwnerSelector is the Flightctl field selector of the devices the
// binding's Flightctl Fleet owns; empty in per-device mode.
func (b *FleetBinding) EffectiveOwnerSelector() string {
	if !b.FleetWide() {
		return ""
	}
	return "metadata.owner=Fleet/" + b.Spec.FlightctlFleet
}
