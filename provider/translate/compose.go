package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// composeFileName is one of the two names Flightctl accepts for inline
// compose applications.
const composeFileName = "podman-compose.yaml"

// The compose file is built from these structs and marshalled, never
// assembled as text, so no value can add a key or a service. Values still
// pass through compose variable interpolation on the device, which is why
// every string from the pod has its '$' doubled (composeString), and every
// string is written double-quoted (marshalQuotedYAML) because
// podman-compose reads YAML 1.1, where plain scalars such as 1:5 (a
// base-60 integer), on or no change type.

type composeFile struct {
	Services map[string]*composeService `json:"services"`
	Volumes  map[string]*composeVolume  `json:"volumes,omitempty"`
}

type composeService struct {
	Image           string            `json:"image"`
	Entrypoint      []string          `json:"entrypoint,omitempty"`
	Command         []string          `json:"command,omitempty"`
	WorkingDir      string            `json:"working_dir,omitempty"`
	Environment     map[string]string `json:"environment,omitempty"`
	Hostname        string            `json:"hostname,omitempty"`
	NetworkMode     string            `json:"network_mode,omitempty"`
	Ports           []string          `json:"ports,omitempty"`
	Volumes         []string          `json:"volumes,omitempty"`
	User            string            `json:"user,omitempty"`
	GroupAdd        []string          `json:"group_add,omitempty"`
	ReadOnly        bool              `json:"read_only,omitempty"`
	SecurityOpt     []string          `json:"security_opt,omitempty"`
	CapDrop         []string          `json:"cap_drop,omitempty"`
	Restart         string            `json:"restart,omitempty"`
	StopGracePeriod string            `json:"stop_grace_period,omitempty"`
	Deploy          *composeDeploy    `json:"deploy,omitempty"`
}

type composeDeploy struct {
	Resources composeResources `json:"resources"`
}

type composeResources struct {
	Limits composeLimits `json:"limits"`
}

type composeLimits struct {
	CPUs   string `json:"cpus,omitempty"`
	Memory string `json:"memory,omitempty"`
}

type composeVolume struct {
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
}

// composeString protects a value from compose interpolation.
func composeString(s string) string { return strings.ReplaceAll(s, "$", "$$") }

func composeStrings(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = composeString(s)
	}
	return out
}

// renderCompose writes one service per container. Kubernetes containers share
// a network namespace, so every service but the first joins the first one's
// (network_mode: service:<first>) and all ports are published there.
func renderCompose(p *podPlan) ([]flightctl.InlineFile, error) {
	cf := composeFile{Services: map[string]*composeService{}}
	first := p.containers[0].name
	for i := range p.containers {
		c := &p.containers[i]
		s := &composeService{
			Image:      c.image,
			Entrypoint: composeStrings(c.command),
			Command:    composeStrings(c.args),
			WorkingDir: composeString(c.workingDir),
			Restart:    p.restart,
		}
		if i == 0 {
			s.Hostname = p.hostname
			for _, pm := range p.ports {
				s.Ports = append(s.Ports, pm.publishSpec())
			}
		} else {
			s.NetworkMode = "service:" + first
		}
		if len(c.env) > 0 {
			s.Environment = map[string]string{}
			for _, e := range c.env {
				s.Environment[e.name] = composeString(e.value)
			}
		}
		for _, m := range c.mounts {
			switch {
			case m.named && m.readOnly:
				s.Volumes = append(s.Volumes, m.source+":"+m.target+":ro")
			case m.named:
				s.Volumes = append(s.Volumes, m.source+":"+m.target)
			default:
				s.Volumes = append(s.Volumes, m.source+":"+m.target+":ro,z")
			}
		}
		if c.user != nil {
			s.User = strconv.FormatInt(*c.user, 10)
			if c.group != nil {
				s.User += ":" + strconv.FormatInt(*c.group, 10)
			}
		}
		for _, g := range c.groupAdd {
			s.GroupAdd = append(s.GroupAdd, strconv.FormatInt(g, 10))
		}
		s.ReadOnly = c.readOnlyRoot
		if c.noNewPrivs {
			s.SecurityOpt = append(s.SecurityOpt, "no-new-privileges:true")
		}
		s.CapDrop = c.capDrop
		if c.cpus != "" || c.memory != "" {
			s.Deploy = &composeDeploy{Resources: composeResources{Limits: composeLimits{CPUs: c.cpus, Memory: c.memory}}}
		}
		if p.stopGrace != nil {
			s.StopGracePeriod = fmt.Sprintf("%ds", *p.stopGrace)
		}
		cf.Services[c.name] = s
	}
	for _, v := range p.volumes {
		if cf.Volumes == nil {
			cf.Volumes = map[string]*composeVolume{}
		}
		cv := &composeVolume{}
		if v.memory {
			cv.DriverOpts = map[string]string{"type": "tmpfs", "device": "tmpfs"}
			if v.size > 0 {
				cv.DriverOpts["o"] = "size=" + strconv.FormatInt(v.size, 10)
			}
		}
		cf.Volumes[v.name] = cv
	}
	out, err := marshalQuotedYAML(cf)
	if err != nil {
		return nil, fmt.Errorf("marshalling compose file: %w", err)
	}
	return []flightctl.InlineFile{{Path: composeFileName, Content: string(out)}}, nil
}

// marshalQuotedYAML encodes v like sigs.k8s.io/yaml would (through its JSON
// form, so json tags apply and field order is kept) but with every string,
// keys included, in double-quoted style, which means the same in YAML 1.1
// and 1.2 parsers.
func marshalQuotedYAML(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	node, err := jsonToNode(dec)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func jsonToNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("unexpected JSON key %v", k)
				}
				val, err := jsonToNode(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, keyNode(key), val)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				val, err := jsonToNode(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
	case string:
		return quoted(tok), nil
	case json.Number:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: tok.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(tok)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, io.ErrUnexpectedEOF
}

// plainKey matches keys that every YAML version reads as the same string
// when unquoted, once the boolean and null words are excluded.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func keyNode(k string) *yaml.Node {
	switch strings.ToLower(k) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return quoted(k)
	}
	if plainKey.MatchString(k) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}
	}
	return quoted(k)
}

func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Style: yaml.DoubleQuotedStyle, Value: s}
}
