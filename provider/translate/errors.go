package translate

import (
	"errors"
	"fmt"
)

// UnsupportedError reports a pod field that vk-flightctl cannot honour on a
// Flightctl device. It is permanent for the given pod spec: retrying will not
// help, so callers should surface it on the pod (event, status) instead of
// requeueing.
type UnsupportedError struct {
	// Field is the path of the offending field, in Kubernetes notation,
	// e.g. "spec.volumes[0].hostPath" or "spec.containers[1].env[2].name".
	Field string
	// Reason says why the field cannot be honoured and, where possible,
	// what to do instead.
	Reason string
}

// Error names the field first so that the message is useful on its own in a
// pod event.
func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("%s is not supported on Flightctl devices: %s", e.Field, e.Reason)
}

func unsupported(field, format string, args ...any) error {
	return &UnsupportedError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ErrMissingReference is wrapped by errors about a ConfigMap, Secret or key
// that a pod requires but that does not exist (yet). Unlike
// UnsupportedError this is usually transient: the object may be created
// later, so callers should retry.
var ErrMissingReference = errors.New("referenced object or key not found")

// ErrDeviceIPUnknown is wrapped when a pod asks for status.podIP or
// status.hostIP through the downward API but Options.DeviceIP is empty. The
// device may report its address later, so callers should retry.
var ErrDeviceIPUnknown = errors.New("device IP address is not known")
