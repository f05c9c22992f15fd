package translate

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// allowedKeys lists every key the generator may write, per quadlet file
// type and section. A pod value that manages to add a directive shows up as
// a key outside this list or as an unexpected count.
var allowedKeys = map[string]map[string]map[string]bool{
	".pod": {
		"Unit":    {"Description": true},
		"Pod":     {"PodmanArgs": true, "PublishPort": true},
		"Install": {"WantedBy": true},
	},
	".volume": {
		"Unit":   {"Description": true},
		"Volume": {"Type": true, "Device": true, "Options": true, "Label": true},
	},
	".container": {
		"Unit": {"Description": true},
		"Container": {"Image": true, "Pod": true, "ContainerName": true, "Entrypoint": true, "Exec": true, "WorkingDir": true,
			"Environment": true, "Volume": true, "User": true, "Group": true, "ReadOnly": true,
			"NoNewPrivileges": true, "DropCapability": true, "PodmanArgs": true},
		"Service": {"Restart": true, "TimeoutStopSec": true},
		"Install": {"WantedBy": true},
	},
}

// singleKeys may appear at most once per file.
var singleKeys = []string{"Image", "Pod", "Entrypoint", "Exec", "WorkingDir", "User", "Group",
	"ReadOnly", "NoNewPrivileges", "Restart", "TimeoutStopSec", "WantedBy", "Description", "Type", "Device", "Options"}

func assertServerValid(t testing.TB, res *Result) {
	t.Helper()
	if err := ValidateApplication(res.Application); err != nil {
		t.Fatalf("generated application fails server rules: %v", err)
	}
	if !IsOwnedAppName(res.Application.Name) {
		t.Fatalf("application name %q is not recognised as owned", res.Application.Name)
	}
	if len(res.Application.EnvVars) != 0 {
		t.Fatalf("envVars should stay empty, got %v", res.Application.EnvVars)
	}
	for _, f := range res.VolumeFiles {
		if !strings.HasPrefix(f.Path, AppDataDir(res.Application.Name)+"/volumes/") || strings.Contains(f.Path, "/../") {
			t.Fatalf("volume file %q escapes the application directory", f.Path)
		}
	}
}

// assertNoInjection parses every generated file back and checks that only
// expected keys exist, with expected multiplicity, and that every
// word-list value splits into well-formed words without anything systemd
// would expand.
func assertNoInjection(t testing.TB, res *Result) {
	t.Helper()
	for _, f := range res.Application.Inline {
		if f.Path == composeFileName {
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(f.Content), &doc); err != nil {
				t.Fatalf("compose file does not parse: %v", err)
			}
			for k := range doc {
				if k != "services" && k != "volumes" {
					t.Fatalf("unexpected top-level compose key %q", k)
				}
			}
			continue
		}
		ext := f.Path[strings.LastIndexByte(f.Path, '.'):]
		allowed := allowedKeys[ext]
		if allowed == nil {
			t.Fatalf("unexpected inline file %q", f.Path)
		}
		unit, err := ParseUnit(f.Content)
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		for _, s := range unit.Sections {
			if allowed[s] == nil {
				t.Fatalf("%s: unexpected section [%s]\n%s", f.Path, s, f.Content)
			}
		}
		counts := map[string]int{}
		for _, e := range unit.Entries {
			if !allowed[e.Section][e.Key] {
				t.Fatalf("%s: unexpected key [%s] %s=%q\n%s", f.Path, e.Section, e.Key, e.Value, f.Content)
			}
			counts[e.Key]++
			switch e.Key {
			case "Exec", "Environment", "PodmanArgs":
				words := quadletValue(t, e.Value)
				if e.Key != "Exec" && len(words) != 1 {
					t.Fatalf("%s: %s=%q splits into %d words", f.Path, e.Key, e.Value, len(words))
				}
			case "Description":
			case "Entrypoint":
				lit, err := systemdLiteral(e.Value)
				if err != nil {
					t.Fatalf("%s: %v", f.Path, err)
				}
				var words []string
				if err := json.Unmarshal([]byte(lit), &words); err != nil || !strings.HasPrefix(lit, "[") {
					t.Fatalf("%s: Entrypoint=%q is not a JSON array: %v", f.Path, e.Value, err)
				}
			default:
				if strings.ContainsAny(e.Value, " \t\"'\\") {
					t.Fatalf("%s: token value %s=%q contains separators or quotes", f.Path, e.Key, e.Value)
				}
				if _, err := systemdLiteral(e.Value); err != nil {
					t.Fatalf("%s: %v", f.Path, err)
				}
			}
		}
		for _, k := range singleKeys {
			if counts[k] > 1 {
				t.Fatalf("%s: key %s appears %d times", f.Path, k, counts[k])
			}
		}
		if ext == ".container" && counts["Image"] != 1 {
			t.Fatalf("%s: .container must have exactly one Image=", f.Path)
		}
		// No raw line may be a continuation: that is how a value could
		// glue the next line onto itself.
		for _, line := range strings.Split(f.Content, "\n") {
			if strings.HasSuffix(strings.TrimSpace(line), `\`) {
				t.Fatalf("%s: line ends with a backslash: %q", f.Path, line)
			}
		}
	}
}
