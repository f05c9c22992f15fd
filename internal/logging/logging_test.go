package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The quickstart's log lines are JSON objects with "level" and "msg", and
// reconnection messages are at level warn.
func TestJSONLinesWithLevelAndWarn(t *testing.T) {
	var buf bytes.Buffer
	log, _ := New(Options{Output: &buf})
	log = log.WithValues("fleet", "edge-fleet-1")
	log.Info("Virtual node registered", "node", "vk-flightctl-edge-fleet-1")
	Warn(log, "Device disconnected", "device", "device-1", "pod", "default/p")
	log.V(1).Info("hidden at verbosity 0")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d: %q", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["level"] != "info" || first["msg"] != "Virtual node registered" || first["node"] != "vk-flightctl-edge-fleet-1" || first["fleet"] != "edge-fleet-1" {
		t.Errorf("info line = %v", first)
	}
	if c, _ := second["caller"].(string); !strings.HasPrefix(c, "logging/logging_test.go") {
		t.Errorf("warn caller = %q, want this test file", c)
	}
	if second["level"] != "warn" || second["msg"] != "Device disconnected" || second["device"] != "device-1" || second["fleet"] != "edge-fleet-1" {
		t.Errorf("warn line = %v", second)
	}
}
