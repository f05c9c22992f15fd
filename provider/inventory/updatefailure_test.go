package inventory

import (
	"encoding/json"
	"os"
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

// A device exactly as a real flightctl-agent v1.2.0 left it after failing
// to prepare a pod's application on a machine without skopeo/podman 5 and
// rolling back (recorded by test/e2e against the real server): the
// failure, both rendered versions and the address come out right. The
// agent reports netIpDefault with a prefix length, which the API server
// refuses as a pod IP, so it must be dropped.
func TestFromDeviceRealAgentFailedPrepare(t *testing.T) {
	raw, err := os.ReadFile("testdata/real-agent-failed-prepare.json")
	if err != nil {
		t.Fatal(err)
	}
	var d flightctl.Device
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	got := FromDevice(&d, Options{})
	wantMsg := "[2026-12-02 14:31:14] While Preparing: prefetch failed for vk-default-on-real-agent-70d3eee084: internal error occurred"
	if got.UpdateFailure != wantMsg {
		t.Errorf("UpdateFailure = %q, want the Updating condition's message %q", got.UpdateFailure, wantMsg)
	}
	if got.RenderedVersion != 2 || got.AppliedVersion != 1 {
		t.Errorf("rendered %d, applied %d; want 2 and 1 (rolled back)", got.RenderedVersion, got.AppliedVersion)
	}
	if got.IP != "192.0.2.2" {
		t.Errorf("IP = %q, want 192.0.2.2 (netIpDefault 192.0.2.2/24 without its prefix)", got.IP)
	}
	if !got.Online {
		t.Error("the device reports summary Online and must count as online")
	}
}

func TestDeviceIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.2/24": "192.0.2.2", "192.0.2.11": "192.0.2.11", "2001:db8::7/64": "2001:db8::7",
		"": "", "eth0": "", "192.0.2.300/24": "",
	} {
		if got := deviceIP(in); got != want {
			t.Errorf("deviceIP(%q) = %q, want %q", in, got, want)
		}
	}
}
