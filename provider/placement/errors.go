package placement

import (
	"errors"
	"fmt"
	"strings"
)

// Reason says in one CamelCase word why a pod was not placed, or why one
// device was not chosen. It is meant for event and condition reasons.
type Reason string

// Reasons. A pod-level NoFitError uses any of them; a DeviceVerdict uses
// the device-level ones (NoMatchingDevice, DeviceOwnedByFleet,
// DeviceOffline, InsufficientResources, TooManyPods).
const (
	// ReasonInsufficientResources: the pod's cpu or memory request does not
	// fit (now, or ever when the error is permanent).
	ReasonInsufficientResources Reason = "InsufficientResources"
	// ReasonTooManyPods: the device already runs its maximum pod count.
	ReasonTooManyPods Reason = "TooManyPods"
	// ReasonNoMatchingDevice: no device matches the pod's targeting.
	ReasonNoMatchingDevice Reason = "NoMatchingDevice"
	// ReasonDeviceOffline: the devices that could hold the pod are offline.
	ReasonDeviceOffline Reason = "DeviceOffline"
	// ReasonDeviceOwnedByFleet: the matching devices belong to a Flightctl
	// fleet, which refuses per-device workloads.
	ReasonDeviceOwnedByFleet Reason = "DeviceOwnedByFleet"
	// ReasonDeviceUnavailable: the matching devices run no workloads any
	// more (being decommissioned).
	ReasonDeviceUnavailable Reason = "DeviceUnavailable"
	// ReasonInvalidSelector: flightctl.io/device-selector does not parse.
	ReasonInvalidSelector Reason = "InvalidSelector"
	// ReasonInvalidDeviceID: flightctl.io/device-id is present but empty.
	ReasonInvalidDeviceID Reason = "InvalidDeviceID"
	// ReasonConflict: the nodeSelector and annotation name different
	// devices.
	ReasonConflict Reason = "Conflict"
)

// NoFitError says why a pod has no device, in a message meant for the
// pod's event or condition as is.
type NoFitError struct {
	// Reason is the one-word cause.
	Reason Reason
	// Message says what was asked, what the fleet has and what to do.
	Message string
	// Devices says, in name order, why each device given to Place was not
	// chosen. It is empty for errors found before devices were looked at
	// (malformed targeting) and for Ledger.Reserve errors.
	Devices []DeviceVerdict

	permanent bool
}

// Error returns Message.
func (e *NoFitError) Error() string { return e.Message }

// Permanent reports whether no device could ever hold the pod as written,
// so the caller should fail it; otherwise the caller keeps it Pending and
// retries when devices or allocations change. See the package doc.
func (e *NoFitError) Permanent() bool { return e.permanent }

// IsPermanent reports whether err is, or wraps, a permanent *NoFitError.
func IsPermanent(err error) bool {
	var nf *NoFitError
	return errors.As(err, &nf) && nf.Permanent()
}

// DeviceVerdict is why one device was not chosen.
type DeviceVerdict struct {
	// Device is the device name.
	Device string
	// Reason is the device-level cause.
	Reason Reason
	// Message is a short detail, e.g. "owned by Flightctl fleet f1".
	Message string
}

// ErrAlreadyReserved is wrapped by Ledger.Reserve when the pod already
// holds room on another device: a pod lives on one device, and moving it
// is an explicit Release followed by a new placement.
var ErrAlreadyReserved = errors.New("pod already holds a reservation on another device")

// maxListed bounds device lists in messages so an event stays readable
// for a fleet of thousands.
const maxListed = 10

// listNames joins up to maxListed items and says how many were left out.
func listNames(items []string) string {
	if len(items) <= maxListed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:maxListed], ", "), len(items)-maxListed)
}
