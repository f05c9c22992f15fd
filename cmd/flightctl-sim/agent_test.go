package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentOptions checks how agent flags become devices: generated ones
// with their labels and system information, a config's device list, and
// the defaults, which must be long enough for a real server to enrol.
func TestAgentOptions(t *testing.T) {
	f := agentFlags{count: 3, prefix: "edge-box-number-", labels: "fleet=f1, site=lab", cpu: 2, memory: "4Gi", ip: "198.51.100.", agentDelay: "1s,2s,3s"}
	opts, err := f.options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Devices) != 3 || opts.Devices[2].Name != "edge-box-number-3" || opts.Devices[0].IP != "198.51.100.11" ||
		opts.Devices[1].Labels["site"] != "lab" || opts.Devices[1].Labels["fleet"] != "f1" || opts.Devices[0].CPU != 2 || opts.Devices[0].Memory != "4Gi" {
		t.Errorf("generated devices: %+v", opts.Devices)
	}
	if opts.Agent.Fetch != time.Second || opts.Agent.Preparing != 2*time.Second || opts.Agent.Starting != 3*time.Second {
		t.Errorf("delays: %+v", opts.Agent)
	}

	def, err := (&agentFlags{agentDelay: "1s"}).options(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range def.Devices {
		if len(d.Name) < 16 || d.Labels["fleet"] != "edge-fleet-1" || d.CPU != 4 {
			t.Errorf("default device %+v: want a name of 16+ characters in fleet edge-fleet-1 with 4 CPUs", d)
		}
	}

	cfg := filepath.Join(t.TempDir(), "devices.yaml")
	if err := os.WriteFile(cfg, []byte("devices:\n- name: configured-device-01\n  labels: {fleet: x}\n  cpu: 8\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromCfg, err := (&agentFlags{config: cfg, agentDelay: "0s"}).options(nil)
	if err != nil || len(fromCfg.Devices) != 1 || fromCfg.Devices[0].CPU != 8 {
		t.Errorf("config devices: %+v, %v", fromCfg.Devices, err)
	}
	for _, bad := range []agentFlags{
		{count: 1, config: cfg, agentDelay: "1s"},
		{count: 1, labels: "novalue", agentDelay: "1s"},
		{agentDelay: "soon"},
	} {
		if _, err := bad.options(nil); err == nil {
			t.Errorf("flags %+v accepted", bad)
		}
	}
}

// TestAgentRefusals checks the errors the agent command gives before it
// contacts any server: no server or token, a non-loopback control address,
// and device names a real Flightctl would refuse to enrol.
func TestAgentRefusals(t *testing.T) {
	t.Setenv("FLIGHTCTL_URL", "")
	t.Setenv("FLIGHTCTL_TOKEN", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agent"}, "--server and --token"},
		{[]string{"agent", "--server", "https://127.0.0.1:1", "--token", "t", "--control", "0.0.0.0:0"}, "loopback"},
		{[]string{"agent", "--server", "https://127.0.0.1:1", "--token", "t", "--count", "1", "--prefix", "short-"}, "at least 16 characters"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
