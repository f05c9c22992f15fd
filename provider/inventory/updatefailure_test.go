package inventory

import (
	"testing"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The v1.2 agent's failed prepare (../shared/flightctl-real-server.md):
// condition Updating False reason Error with its message, updated
// OutOfDate. Only Error and RollingBack count as failures.
func TestUpdateFailure(t *testing.T) {
	msg := "While Preparing: prefetch failed for app: internal error occurred"
	outOfDate := flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedOutOfDate, Info: "Device has not been updated to the latest device spec: " + msg}
	tests := []struct {
		name string
		st   flightctl.DeviceStatus
		want string
	}{
		{"error with message", flightctl.DeviceStatus{Updated: outOfDate,
			Conditions: []flightctl.Condition{{Type: "Updating", Status: "False", Reason: "Error", Message: msg}}}, msg},
		{"rolling back without message uses updated.info", flightctl.DeviceStatus{Updated: outOfDate,
			Conditions: []flightctl.Condition{{Type: "Updating", Status: "True", Reason: "RollingBack"}}}, outOfDate.Info},
		{"applying is no failure", flightctl.DeviceStatus{Updated: flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpdating},
			Conditions: []flightctl.Condition{{Type: "Updating", Status: "True", Reason: "ApplyingUpdate"}}}, ""},
		{"updated is no failure", flightctl.DeviceStatus{Updated: flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpToDate},
			Conditions: []flightctl.Condition{{Type: "Updating", Status: "False", Reason: "Updated"}}}, ""},
		{"no conditions", flightctl.DeviceStatus{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := updateFailure(&tt.st); got != tt.want {
				t.Errorf("updateFailure() = %q, want %q", got, tt.want)
			}
		})
	}
}
