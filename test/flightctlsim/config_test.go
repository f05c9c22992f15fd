package flightctlsim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleConfig = `
fleets:
  - name: owned-fleet
    selector: {owned: "yes"}
    template:
      applications:
        - name: fleet-web
          appType: compose
          inline:
            - path: docker-compose.yaml
              content: |
                services:
                  web:
                    image: quay.io/flightctl-tests/alpine:v1
devices:
  - name: device-1
    labels: {fleet: edge-fleet-1}
    cpu: 4
    memory: 8Gi
    ip: 192.0.2.11
  - name: device-3
    ownedBy: owned-fleet
    noAgent: true
  - name: device-4
    disconnected: true
generate:
  - prefix: dev-
    count: 12
    labels: {fleet: big}
    memory: 1Gi
    ipStart: 198.18.0.254
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	devs := cfg.expand()
	if len(devs) != 15 || devs[3].Name != "dev-01" || devs[14].Name != "dev-12" {
		t.Fatalf("expanded %d devices: %v", len(devs), devs[3:5])
	}
	if devs[3].IP != "198.18.0.254" || devs[5].IP != "198.18.1.0" {
		t.Errorf("generated IPs %s %s", devs[3].IP, devs[5].IP)
	}
	bad := []struct{ doc, msg string }{
		{"devices: [{name: a, colour: red}]", "unknown field"},
		{"devices: [{name: a}, {name: a}]", "duplicate device"},
		{"devices: [{name: a, ownedBy: nope}]", "unknown fleet"},
		{"devices: [{name: a, memory: lots}]", "memory"},
		{"devices: [{name: a, ip: 300.1.1.1}]", "ip"},
		{"devices: [{labels: {a: b}}]", "name is required"},
		{"generate: [{prefix: x}]", "positive count"},
		{"fleets: [{name: f}, {name: f}]", "duplicate fleet"},
	}
	for _, tc := range bad {
		if _, err := ParseConfig([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q", tc.doc, err, tc.msg)
		}
	}
}

func TestApplyConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim.yaml")
	if err := os.WriteFile(path, []byte(exampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := startSim(t, Options{Config: cfg})
	settle(t, s, 0)
	d1, _ := s.GetDevice("device-1")
	if d1.Status.SystemInfo["memoryTotalKb"] != "8388608" || d1.Status.SystemInfo["cpuCores"] != "4" || d1.Owner != "" {
		t.Errorf("device-1: %v owner %q", d1.Status.SystemInfo, d1.Owner)
	}
	d3, _ := s.GetDevice("device-3")
	if d3.Owner != "Fleet/owned-fleet" || d3.Labels["owned"] != "yes" || !strings.Contains(string(d3.Spec), "fleet-web") || d3.HasAgent {
		t.Errorf("device-3: owner %q labels %v spec %s agent %v", d3.Owner, d3.Labels, d3.Spec, d3.HasAgent)
	}
	d4, _ := s.GetDevice("device-4")
	if !d4.HasAgent || d4.AgentConnected || d4.Status.Summary.Status != "Unknown" {
		t.Errorf("device-4: %+v", d4)
	}
	gen, _ := s.GetDevice("dev-05")
	if gen.Status.SystemInfo["memoryTotalKb"] != "1048576" || gen.Status.SystemInfo["cpuCores"] != "" || gen.Labels["fleet"] != "big" {
		t.Errorf("dev-05: %v %v", gen.Status.SystemInfo, gen.Labels)
	}
}

func TestDefaultConfig(t *testing.T) {
	s := startSim(t, Options{Config: DefaultConfig()})
	settle(t, s, 0)
	if names := s.DeviceNames(); strings.Join(names, ",") != "device-1,device-2" {
		t.Fatalf("devices %v", names)
	}
	ips := map[string]bool{}
	for _, n := range s.DeviceNames() {
		d, _ := s.GetDevice(n)
		if d.Owner != "" || d.Labels["fleet"] != "edge-fleet-1" || d.Status.SystemInfo["cpuCores"] != "4" || d.Status.SystemInfo["memoryTotalKb"] != "8388608" {
			t.Errorf("%s: %+v", n, d)
		}
		ips[d.Status.SystemInfo["netIpDefault"]] = true
	}
	if len(ips) != 2 || !ips["192.0.2.11/24"] || !ips["192.0.2.12/24"] {
		t.Errorf("IPs %v", ips)
	}
}

func TestAddDeviceRejectsInvalid(t *testing.T) {
	s := New(Options{})
	if err := s.AddDevice(DeviceConfig{Name: "a", Spec: []byte(`{"applications":[{"name":"x","appType":"compose","inline":[{"path":"docker-compose.yaml","content":"services:\n  w:\n    image: nginx\n"}]}]}`)}); err == nil || !strings.Contains(err.Error(), "services.w.image") {
		t.Errorf("invalid spec accepted: %v", err)
	}
	if err := s.AddDevice(DeviceConfig{Name: "B_ad"}); err == nil {
		t.Error("invalid name accepted")
	}
	if err := s.AddDevice(DeviceConfig{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(DeviceConfig{Name: "a"}); err == nil {
		t.Error("duplicate accepted")
	}
	if err := s.Disconnect("nope"); err == nil {
		t.Error("unknown device disconnected")
	}
}
