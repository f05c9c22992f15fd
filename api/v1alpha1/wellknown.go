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

	// AnnotationDevice records the device placement chose for a pod. It is
	// written before anything is sent to Flightctl so a restarted manager
	// never places a pod twice.
	AnnotationDevice = "flightctl.io/device"

	// LabelDevice mirrors AnnotationDevice as a label so that
	// `kubectl get pods -L flightctl.io/device` shows where pods run.
	LabelDevice = "flightctl.io/device"

	// FleetBindingFinalizer lets the manager remove the binding's node and
	// applications before the binding disappears.
	FleetBindingFinalizer = "vk.flightctl.io/cleanup"

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
	// override what it says.
	SecretKeyClientYAML = "client.yaml"
)
