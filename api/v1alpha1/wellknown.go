package v1alpha1

// Names that pods, nodes and Flightctl devices carry. docs/CONVENTIONS.md is
// the reference for people; these constants are the one place code names
// them.
const (
	// LabelFleet is set on the virtual node to the binding's fleet name, so
	// pods can target a fleet with nodeSelector.
	LabelFleet = "flightctl.io/fleet"

	// LabelDeviceID, in a pod's nodeSelector or annotations, pins the pod to
	// one Flightctl device by name.
	LabelDeviceID = "flightctl.io/device-id"

	// AnnotationDeviceSelector holds a Kubernetes label selector matched
	// against Flightctl device labels to narrow placement.
	AnnotationDeviceSelector = "flightctl.io/device-selector"

	// AnnotationDevice records the device placement chose for a pod. It
	// rides on the pod's first status write; before that the device spec
	// holding the pod's application is the record, so a restarted manager
	// never places a pod twice either way.
	AnnotationDevice = "flightctl.io/device"

	// LabelDevice mirrors AnnotationDevice as a label so that
	// `kubectl get pods -L flightctl.io/device` shows where pods run.
	LabelDevice = "flightctl.io/device"

	// LabelShardMember marks the Leases by which manager replicas in
	// sharded mode announce themselves; the live ones are the members
	// bindings are spread over.
	LabelShardMember = "vk.flightctl.io/shard-member"

	// LabelShardBinding marks the per-binding Leases that fence a
	// binding's node to one replica in sharded mode.
	LabelShardBinding = "vk.flightctl.io/shard-binding"

	// FleetBindingFinalizer lets the manager remove the binding's node and
	// applications before the binding disappears.
	FleetBindingFinalizer = "vk.flightctl.io/cleanup"

	// AnnotationFleetWide, set to "true" on a pod, makes it fleet-wide: on a
	// binding with spec.flightctlFleet it becomes an application in that
	// Flightctl Fleet's template and runs on every device the Fleet owns.
	// Pods owned by a DaemonSet are fleet-wide without it.
	AnnotationFleetWide = "flightctl.io/fleet-wide"

	// DefaultNodeNamePrefix prefixes the fleet name to form the node name
	// when spec.nodeName is empty.
	DefaultNodeNamePrefix = "vk-flightctl-"

	// DefaultFleetLabelKey is the Flightctl device label that, when
	// spec.deviceSelector is empty, selects the fleet's devices
	// (fleet=<spec.fleet>).
	DefaultFleetLabelKey = "fleet"
)

// Keys of the Secret named by spec.flightctl.credentialsSecretRef.
const (
	// SecretKeyAPIURL is the Flightctl API URL, e.g. https://flightctl.example.com:3443.
	SecretKeyAPIURL = "api-url"
	// SecretKeyAuthToken is the bearer token.
	SecretKeyAuthToken = "auth-token"
	// SecretKeyCACert is an optional PEM CA bundle that signs the API's certificate.
	SecretKeyCACert = "ca.crt"
	// SecretKeyClientYAML is an optional Flightctl CLI client.yaml; keys above
	// override what it says. Its authentication.refresh-token, with the
	// auth-provider `flightctl login` recorded, makes the manager refresh
	// the access token through that provider.
	SecretKeyClientYAML = "client.yaml"

	// OAuth2/OIDC client credentials (a service account of the identity
	// provider), exclusive with auth-token and kubernetes-token-audience.
	// The token endpoint is SecretKeyOAuthTokenURL, or found through the
	// discovery document of SecretKeyOIDCIssuerURL.
	SecretKeyOAuthClientID     = "oauth-client-id"
	SecretKeyOAuthClientSecret = "oauth-client-secret"
	SecretKeyOAuthTokenURL     = "oauth-token-url"
	SecretKeyOIDCIssuerURL     = "oidc-issuer-url"
	// SecretKeyOAuthScopes are space- or comma-separated scopes to ask for.
	SecretKeyOAuthScopes = "oauth-scopes"
	// SecretKeyOAuthAudience is sent as the audience parameter, for
	// providers that need it to issue a token for Flightctl.
	SecretKeyOAuthAudience = "oauth-audience"

	// SecretKeyKubernetesTokenAudience selects Kubernetes authentication
	// (Flightctl's k8s auth provider): the manager requests tokens for its
	// own ServiceAccount with this audience (TokenRequest API) and renews
	// them before they expire.
	SecretKeyKubernetesTokenAudience = "kubernetes-token-audience"
)

// EventComponent is the source of every event vk-flightctl records on pods.
const EventComponent = "vk-flightctl-provider"

// Reasons of the events vk-flightctl records on pods, and of the statuses it
// gives pods outside the device's own report. docs/reference/
// conditions-and-events.md explains each to users. (Kubelet-like reasons
// derived from the device's report live with the translation, in
// provider/translate.)
const (
	// EventFailedScheduling: no device can hold the pod now (it waits) or
	// ever (it fails).
	EventFailedScheduling = "FailedScheduling"
	// EventDeviceSelected: placement chose a device.
	EventDeviceSelected = "DeviceSelected"
	// EventUnsupportedPodSpec: the pod uses something Flightctl devices
	// cannot run; it fails and nothing is written.
	EventUnsupportedPodSpec = "UnsupportedPodSpec"
	// EventReplacing: the pod's workload is rewritten (simple replace).
	EventReplacing = "Replacing"
	// EventDeployFailed: a write to Flightctl failed (retried) or was
	// refused (the pod fails).
	EventDeployFailed = "DeployFailed"
	// EventWorkloadRemoved: the pod's application left its device.
	EventWorkloadRemoved = "WorkloadRemoved"
	// EventDeviceGone: the device was deleted or taken by a Flightctl fleet
	// before the pod ran; it is placed again.
	EventDeviceGone = "DeviceGone"
	// EventDeviceTimeout: the device did not reconnect in time; the pod is
	// deleted so its controller reschedules it.
	EventDeviceTimeout = "DeviceTimeout"
	// EventMissingOptionalReference: an optional ConfigMap or Secret
	// reference was skipped.
	EventMissingOptionalReference = "MissingOptionalReference"

	// ReasonRejectedByFlightctl is the status reason of a pod whose
	// workload Flightctl refused as invalid.
	ReasonRejectedByFlightctl = "RejectedByFlightctl"
	// ReasonDeployRetrying is the waiting reason of a pod's containers
	// while its workload could not be written to Flightctl yet.
	ReasonDeployRetrying = "DeployRetrying"
	// ReasonWaitingForDevice is the waiting reason (and the
	// PodConditionDevicePlacement reason) while no device has room.
	ReasonWaitingForDevice = "WaitingForDevice"

	// EventUpdateFailed (Warning, and the PodConditionDeviceUpdate
	// reason): the device could not apply the rendered version that
	// carries the pod's workload and stayed on (or rolled back to) the
	// previous one; the message is the agent's.
	EventUpdateFailed = "UpdateFailed"

	// ReasonDeviceDecommissioning (Warning event, and the pod's Ready
	// reason; also a FleetBinding status.unusableDevices reason): the
	// device is being or has been decommissioned in Flightctl
	// (spec.decommissioning set, status.lifecycle.status Decommissioning or
	// Decommissioned). It runs no workloads any more and takes no new pods.
	ReasonDeviceDecommissioning = "DeviceDecommissioning"
)

// Reasons of fleet-wide pods (spec.flightctlFleet, docs/fleets.md).
const (
	// ReasonPerDeviceOnFleetNode: a per-device pod was bound to a node
	// that stands for a Flightctl Fleet; it fails and nothing is written.
	ReasonPerDeviceOnFleetNode = "PerDeviceOnFleetNode"
	// ReasonFleetWideWithoutFleet: a fleet-wide pod (DaemonSet or
	// annotated) was bound to a per-device node; it fails.
	ReasonFleetWideWithoutFleet = "FleetWideWithoutFleet"
	// EventFleetTemplateUpdated: the pod's application was written into
	// the Flightctl Fleet's template (Flightctl rolls it out).
	EventFleetTemplateUpdated = "FleetTemplateUpdated"
	// EventFleetTemplateFailed: writing the Fleet's template failed
	// (retried) or was refused (the pod fails).
	EventFleetTemplateFailed = "FleetTemplateFailed"
	// EventFleetDeviceFailed (Warning): one device of the Fleet failed to
	// run the pod's application; the message names it and says why.
	EventFleetDeviceFailed = "FleetDeviceFailed"
	// ReasonRolloutInProgress is the PodConditionFleetRollout reason while
	// fewer than the targeted devices run the application.
	ReasonRolloutInProgress = "RolloutInProgress"
	// ReasonRolloutComplete: every targeted device runs it.
	ReasonRolloutComplete = "RolloutComplete"
	// ReasonRolloutDegraded: some devices failed to run it.
	ReasonRolloutDegraded = "RolloutDegraded"
	// ReasonNoFleetDevices: the Flightctl Fleet owns no device.
	ReasonNoFleetDevices = "NoFleetDevices"
)

// PodConditionFleetRollout is a fleet-wide pod's rollout: True once every
// online device of the Fleet runs its application; the message is
// "k of N devices run it" and names the first failing devices.
const PodConditionFleetRollout = "vk.flightctl.io/FleetRollout"

// PodConditionDeviceUpdate is False with reason UpdateFailed and the
// agent's message while the device failed to apply the version carrying
// the pod's workload; it disappears once a later version is applied.
const PodConditionDeviceUpdate = "vk.flightctl.io/DeviceUpdate"

// PodConditionDevicePlacement reports placement onto a device: False with
// reason WaitingForDevice while no device has room.
const PodConditionDevicePlacement = "vk.flightctl.io/DevicePlacement"

// NodeConditionFlightctlReachable is True while the node's last device
// listing succeeded. It is informational: the node stays Ready during a
// Flightctl outage so Kubernetes does not evict the fleet's pods.
const NodeConditionFlightctlReachable = "FlightctlReachable"
