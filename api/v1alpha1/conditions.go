package v1alpha1

// Condition types of a FleetBinding. docs/reference/conditions-and-events.md
// explains each reason and what to do about it.
const (
	// ConditionReady is True when the node is registered, Flightctl is
	// reachable and at least one device can take pods.
	ConditionReady = "Ready"
	// ConditionFlightctlConnected is True when the last call to the
	// Flightctl API succeeded with the binding's credentials.
	ConditionFlightctlConnected = "FlightctlConnected"
	// ConditionNodeRegistered is True while the virtual node runs and its
	// lease is renewed.
	ConditionNodeRegistered = "NodeRegistered"
	// ConditionDevicesAvailable is True when at least one matched device is
	// online and owned by no Flightctl Fleet.
	ConditionDevicesAvailable = "DevicesAvailable"
	// ConditionDegraded is True when the binding works but something needs
	// attention (disconnected or owned devices, insecure TLS, a failing poll).
	ConditionDegraded = "Degraded"
)

// Condition reasons.
const (
	ReasonReady                 = "Ready"
	ReasonNotReady              = "NotReady"
	ReasonConnected             = "Connected"
	ReasonSecretNotFound        = "SecretNotFound"
	ReasonSecretInvalid         = "SecretInvalid"
	ReasonInvalidURL            = "InvalidURL"
	ReasonInvalidCA             = "InvalidCA"
	ReasonInvalidSelector       = "InvalidSelector"
	ReasonUnauthorized          = "Unauthorized"
	ReasonTokenRefreshFailed    = "TokenRefreshFailed"
	ReasonTLSVerificationFailed = "TLSVerificationFailed"
	ReasonFlightctlUnreachable  = "FlightctlUnreachable"
	ReasonFlightctlError        = "FlightctlError"
	ReasonNodeRunning           = "NodeRunning"
	ReasonNodeStarting          = "NodeStarting"
	ReasonNodeNameConflict      = "NodeNameConflict"
	ReasonNodeFailed            = "NodeFailed"
	ReasonWaitingForFlightctl   = "WaitingForFlightctl"
	ReasonDevicesOnline         = "DevicesOnline"
	ReasonNoDevices             = "NoDevices"
	ReasonNoUsableDevices       = "NoUsableDevices"
	ReasonDevicesDisconnected   = "DevicesDisconnected"
	ReasonDevicesOwnedByFleet   = "DevicesOwnedByFleet"
	ReasonInsecureTLS           = "InsecureTLS"
	ReasonHealthy               = "Healthy"
	ReasonDeleting              = "Deleting"
	ReasonDeviceClaimed         = "DeviceClaimedByOtherBinding"
)
