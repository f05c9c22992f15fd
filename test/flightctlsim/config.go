package flightctlsim

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// Config declares the fleets and devices a simulator starts with. It is
// what the flightctl-sim binary reads from --config (YAML or JSON):
//
//	fleets:                      # Flightctl Fleet objects; they OWN devices
//	  - name: owned-fleet
//	    selector: {owned: "yes"} # spec.selector.matchLabels
//	    template:                # optional device spec rolled out to owned devices
//	      applications: []
//	devices:
//	  - name: device-1
//	    labels: {fleet: edge-fleet-1}
//	    cpu: 4                   # reported as systemInfo.cpuCores (omit: not reported)
//	    memory: 8Gi              # reported as systemInfo.memoryTotalKb
//	    ip: 192.0.2.11           # systemInfo.netIpDefault (reported as 192.0.2.11/24, as the real agent does); never contacted
//	    hostname: device-1       # default: the name
//	    architecture: amd64      # default amd64
//	    ownedBy: owned-fleet     # adds the fleet's selector labels, so the fleet owns it
//	    noAgent: false           # true: never reports, like an unenrolled record
//	    disconnected: false      # true: has an agent that starts offline
//	    spec: {}                 # optional initial device spec
//	generate:                    # bulk devices for scale tests
//	  - prefix: dev-             # names dev-00001 ... (zero-padded to count's width)
//	    count: 10000
//	    labels: {fleet: big}
//	    cpu: 2
//	    memory: 4Gi
//	    ipStart: 198.18.0.1      # incremented per device
//
// Note that a vk-flightctl "fleet" (devices labelled fleet=<name>) is not a
// Flightctl Fleet: devices a Flightctl Fleet owns cannot take per-device
// workloads, which is why the default configuration declares none.
type Config struct {
	// Fleets are created first, so that devices can refer to them.
	Fleets []FleetConfig `json:"fleets,omitempty"`
	// Devices are created in order.
	Devices []DeviceConfig `json:"devices,omitempty"`
	// Generate adds many similar devices after Devices.
	Generate []GenerateConfig `json:"generate,omitempty"`
}

// FleetConfig declares a Flightctl Fleet.
type FleetConfig struct {
	// Name is the fleet's metadata.name.
	Name string `json:"name"`
	// Labels are the fleet's own metadata.labels.
	Labels map[string]string `json:"labels,omitempty"`
	// Selector is spec.selector.matchLabels.
	Selector map[string]string `json:"selector,omitempty"`
	// TemplateLabels is spec.template.metadata.labels.
	TemplateLabels map[string]string `json:"templateLabels,omitempty"`
	// Template is spec.template.spec, a device spec; empty means {}.
	Template json.RawMessage `json:"template,omitempty"`
}

// DeviceConfig declares a device and its simulated agent.
type DeviceConfig struct {
	// Name is the device's metadata.name.
	Name string `json:"name"`
	// Labels are the device's metadata.labels.
	Labels map[string]string `json:"labels,omitempty"`
	// CPU is the number of cores the agent reports; zero reports none,
	// as a real agent does unless configured to.
	CPU int `json:"cpu,omitempty"`
	// Memory is the memory the agent reports, as a Kubernetes quantity
	// ("8Gi"); empty reports none.
	Memory string `json:"memory,omitempty"`
	// IP is the default-route address the agent reports.
	IP string `json:"ip,omitempty"`
	// Hostname defaults to the device name.
	Hostname string `json:"hostname,omitempty"`
	// Architecture defaults to amd64.
	Architecture string `json:"architecture,omitempty"`
	// OwnedBy names a configured fleet whose selector labels are added to
	// the device, so that the fleet owns it.
	OwnedBy string `json:"ownedBy,omitempty"`
	// NoAgent makes a device that never reports.
	NoAgent bool `json:"noAgent,omitempty"`
	// Disconnected starts the device's agent offline.
	Disconnected bool `json:"disconnected,omitempty"`
	// Spec is the initial device spec; empty means {}.
	Spec json.RawMessage `json:"spec,omitempty"`
	// FailApplications makes every application the device's agent starts
	// end in Error, whatever its image: one failing device of a Fleet.
	FailApplications bool `json:"failApplications,omitempty"`
}

// GenerateConfig declares many similar devices.
type GenerateConfig struct {
	// Prefix starts every generated name; a zero-padded number follows.
	Prefix string `json:"prefix"`
	// Count is the number of devices.
	Count int `json:"count"`
	// Labels, CPU, Memory and Spec are as in DeviceConfig, for every device.
	Labels map[string]string `json:"labels,omitempty"`
	CPU    int               `json:"cpu,omitempty"`
	Memory string            `json:"memory,omitempty"`
	Spec   json.RawMessage   `json:"spec,omitempty"`
	// IPStart is the first device's address; each next device gets the
	// next address.
	IPStart string `json:"ipStart,omitempty"`
}

// DefaultConfig is the binary's configuration without --config: the
// vk-flightctl fleet "edge-fleet-1" as two devices labelled
// fleet=edge-fleet-1, owned by no Flightctl Fleet, 4 CPU and 8Gi each, on
// documentation-range addresses that are never contacted.
func DefaultConfig() *Config {
	return &Config{Devices: []DeviceConfig{
		{Name: "device-1", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi", IP: "192.0.2.11"},
		{Name: "device-2", Labels: map[string]string{"fleet": "edge-fleet-1"}, CPU: 4, Memory: "8Gi", IP: "192.0.2.12"},
	}}
}

// LoadConfig reads a configuration file (YAML or JSON). Unknown keys are
// errors, so that a typo does not silently produce a different fleet.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses a configuration document and checks what can be
// checked without a simulator (names, quantities, addresses, references).
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// check validates a configuration.
func (c *Config) check() error {
	fleets := map[string]bool{}
	for i, f := range c.Fleets {
		if f.Name == "" {
			return fmt.Errorf("fleets[%d]: name is required", i)
		}
		if fleets[f.Name] {
			return fmt.Errorf("fleets[%d]: duplicate fleet %q", i, f.Name)
		}
		fleets[f.Name] = true
	}
	names := map[string]bool{}
	for i, d := range c.Devices {
		if d.Name == "" {
			return fmt.Errorf("devices[%d]: name is required", i)
		}
		if names[d.Name] {
			return fmt.Errorf("devices[%d]: duplicate device %q", i, d.Name)
		}
		names[d.Name] = true
		if d.OwnedBy != "" && !fleets[d.OwnedBy] {
			return fmt.Errorf("devices[%d] (%s): ownedBy names unknown fleet %q", i, d.Name, d.OwnedBy)
		}
		if _, err := memoryKB(d.Memory); err != nil {
			return fmt.Errorf("devices[%d] (%s): %w", i, d.Name, err)
		}
		if d.IP != "" {
			if _, err := netip.ParseAddr(d.IP); err != nil {
				return fmt.Errorf("devices[%d] (%s): ip: %w", i, d.Name, err)
			}
		}
	}
	for i, g := range c.Generate {
		if g.Prefix == "" || g.Count <= 0 {
			return fmt.Errorf("generate[%d]: prefix and a positive count are required", i)
		}
		if _, err := memoryKB(g.Memory); err != nil {
			return fmt.Errorf("generate[%d]: %w", i, err)
		}
		if g.IPStart != "" {
			if _, err := netip.ParseAddr(g.IPStart); err != nil {
				return fmt.Errorf("generate[%d]: ipStart: %w", i, err)
			}
		}
	}
	return nil
}

// expand turns generate entries into device entries.
func (c *Config) expand() []DeviceConfig {
	out := append([]DeviceConfig(nil), c.Devices...)
	for _, g := range c.Generate {
		width := len(strconv.Itoa(g.Count))
		var ip netip.Addr
		if g.IPStart != "" {
			ip, _ = netip.ParseAddr(g.IPStart)
		}
		for i := 1; i <= g.Count; i++ {
			d := DeviceConfig{
				Name:   fmt.Sprintf("%s%0*d", g.Prefix, width, i),
				Labels: g.Labels, CPU: g.CPU, Memory: g.Memory, Spec: g.Spec,
			}
			if ip.IsValid() {
				d.IP = ip.String()
				ip = ip.Next()
			}
			out = append(out, d)
		}
	}
	return out
}

// memoryKB converts a memory quantity to KiB (memoryTotalKb).
func memoryKB(q string) (int64, error) {
	if q == "" {
		return 0, nil
	}
	v, err := resource.ParseQuantity(q)
	if err != nil {
		return 0, fmt.Errorf("memory %q: %w", q, err)
	}
	return v.Value() / 1024, nil
}
