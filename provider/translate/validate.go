package translate

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// serverAppName is the pattern the Flightctl server applies to
// spec.applications[].name.
var serverAppName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// quadletTypes maps quadlet file extensions the server accepts to the
// section each must contain.
var quadletTypes = map[string]string{
	".container": "Container",
	".volume":    "Volume",
	".network":   "Network",
	".image":     "Image",
	".pod":       "Pod",
}

// ValidateApplication applies the checks a Flightctl v1.2 server makes when a
// device spec is written (as observed in its responses), so that a bad
// application is caught before the device update is refused:
//
//   - the name matches [a-z0-9]([-a-z0-9]*[a-z0-9])? and is at most 253 bytes;
//   - appType is known, and compose/quadlet applications have inline files
//     with unique, relative paths, each at most MaxInlineFileBytes;
//   - quadlet files sit at the root, have one type section matching their
//     extension, parse as systemd units with lines under 2048 bytes, a
//     .container has an Image= naming a registry host, and Pod=/Volume=
//     references point to files of the same application;
//   - a compose file is named podman-compose.yaml or docker-compose.yaml and
//     every service has a fully qualified image and no container_name.
//
// It is exported for callers that assemble device specs and want a last
// check; ToApplication already runs it on its own output.
func ValidateApplication(app flightctl.ApplicationSpec) error {
	if len(app.Name) > 253 || !serverAppName.MatchString(app.Name) {
		return fmt.Errorf("application name %q must match [a-z0-9]([-a-z0-9]*[a-z0-9])? and be at most 253 bytes", app.Name)
	}
	switch app.AppType {
	case flightctl.AppTypeQuadlet, flightctl.AppTypeCompose:
	case flightctl.AppTypeContainer, flightctl.AppTypeHelm:
		if app.Image == "" {
			return fmt.Errorf("application %s: appType %s needs an image", app.Name, app.AppType)
		}
		return nil
	default:
		return fmt.Errorf("application %s: unknown appType %q", app.Name, app.AppType)
	}
	if app.Image != "" {
		if len(app.Inline) > 0 {
			return fmt.Errorf("application %s: image and inline are exclusive", app.Name)
		}
		return nil
	}
	if len(app.Inline) == 0 {
		return fmt.Errorf("application %s: needs an image or inline files", app.Name)
	}
	paths := map[string]bool{}
	for _, f := range app.Inline {
		switch {
		case f.Path == "" || strings.HasPrefix(f.Path, "/"):
			return fmt.Errorf("application %s: inline path %q must be a relative path", app.Name, f.Path)
		case path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "../"):
			return fmt.Errorf("application %s: inline path %q must be clean and stay inside the application", app.Name, f.Path)
		case paths[f.Path]:
			return fmt.Errorf("application %s: inline path %q appears twice", app.Name, f.Path)
		}
		paths[f.Path] = true
		if len(f.Content) > MaxInlineFileBytes {
			return fmt.Errorf("application %s: inline file %q is %d bytes, more than %d", app.Name, f.Path, len(f.Content), MaxInlineFileBytes)
		}
		if f.ContentEncoding != "" && f.ContentEncoding != "plain" && f.ContentEncoding != "base64" {
			return fmt.Errorf("application %s: %s: unknown contentEncoding %q", app.Name, f.Path, f.ContentEncoding)
		}
	}
	if app.AppType == flightctl.AppTypeQuadlet {
		return validateQuadlet(app, paths)
	}
	return validateCompose(app)
}

func validateQuadlet(app flightctl.ApplicationSpec, paths map[string]bool) error {
	var errs []error
	found := false
	for _, f := range app.Inline {
		ext := path.Ext(f.Path)
		section, ok := quadletTypes[ext]
		if !ok {
			switch ext {
			case ".build", ".artifact", ".kube":
				errs = append(errs, fmt.Errorf("%s: unsupported quadlet type %q", f.Path, ext))
			}
			continue
		}
		found = true
		if strings.Contains(f.Path, "/") {
			errs = append(errs, fmt.Errorf("quadlet file must be at root level: %q", f.Path))
			continue
		}
		if f.ContentEncoding == "base64" {
			continue // not produced by this package; the server decodes it
		}
		unit, err := ParseUnit(f.Content)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.Path, err))
			continue
		}
		entries := unit.Entries
		var typeSections []string
		for _, s := range unit.Sections {
			for _, t := range quadletTypes {
				if s == t && !slices.Contains(typeSections, s) {
					typeSections = append(typeSections, s)
				}
			}
		}
		if len(typeSections) != 1 || typeSections[0] != section {
			errs = append(errs, fmt.Errorf("%s: must contain exactly one [%s] type section, found %v", f.Path, section, typeSections))
			continue
		}
		if section == "Container" {
			image, ok := lastValue(entries, "Container", "Image")
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s: .container quadlet must have an Image key", f.Path))
			case strings.HasSuffix(image, ".image"):
				if !paths[image] {
					errs = append(errs, fmt.Errorf("%s: references %q which is not defined in the application", f.Path, image))
				}
			case !qualifiedImage.MatchString(image):
				errs = append(errs, fmt.Errorf("%s: container.image %q must be a fully qualified image reference", f.Path, image))
			}
		}
		for _, e := range entries {
			if e.Section != section {
				continue
			}
			var ref string
			switch e.Key {
			case "Pod":
				ref = e.Value
			case "Volume", "Network":
				ref, _, _ = strings.Cut(e.Value, ":")
			default:
				continue
			}
			if (strings.HasSuffix(ref, ".pod") || strings.HasSuffix(ref, ".volume") || strings.HasSuffix(ref, ".network")) && !paths[ref] {
				errs = append(errs, fmt.Errorf("%s: references %q which is not defined in the application", f.Path, ref))
			}
		}
	}
	if !found {
		errs = append(errs, errors.New("no supported quadlet types supplied"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("application %s: %w", app.Name, errors.Join(errs...))
	}
	return nil
}

func lastValue(entries []UnitEntry, section, key string) (string, bool) {
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Section == section && entries[i].Key == key {
			return entries[i].Value, true
		}
	}
	return "", false
}

func validateCompose(app flightctl.ApplicationSpec) error {
	var compose *flightctl.InlineFile
	for i := range app.Inline {
		switch app.Inline[i].Path {
		case "podman-compose.yaml", "docker-compose.yaml":
			if compose != nil {
				return fmt.Errorf("application %s: more than one compose file", app.Name)
			}
			compose = &app.Inline[i]
		}
	}
	if compose == nil {
		return fmt.Errorf("application %s: needs podman-compose.yaml or docker-compose.yaml", app.Name)
	}
	if compose.ContentEncoding == "base64" {
		return nil
	}
	var doc struct {
		Services map[string]map[string]any `json:"services"`
	}
	if err := yaml.Unmarshal([]byte(compose.Content), &doc); err != nil {
		return fmt.Errorf("application %s: %s: %w", app.Name, compose.Path, err)
	}
	if len(doc.Services) == 0 {
		return fmt.Errorf("application %s: %s has no services", app.Name, compose.Path)
	}
	var errs []error
	for _, name := range sortedKeys(doc.Services) {
		svc := doc.Services[name]
		image, _ := svc["image"].(string)
		if image == "" {
			errs = append(errs, fmt.Errorf("service %s is missing an image", name))
		} else if !qualifiedImage.MatchString(image) {
			errs = append(errs, fmt.Errorf("services.%s.image: %q must be a fully qualified image reference", name, image))
		}
		if _, ok := svc["container_name"]; ok {
			errs = append(errs, fmt.Errorf("services.%s.container_name is not allowed", name))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("application %s: %w", app.Name, errors.Join(errs...))
	}
	return nil
}

// Unit is a parsed unit file.
type Unit struct {
	// Sections lists section names in order of appearance, including
	// sections without keys.
	Sections []string
	// Entries lists every Key=value in file order.
	Entries []UnitEntry
}

// UnitEntry is one Key=value of a parsed unit file.
type UnitEntry struct {
	Section, Key, Value string
}

// maxParsedLine is the line limit of the unit parser the server uses.
const maxParsedLine = 2048

// ParseUnit reads a systemd unit the way the unit parsers on the path to the
// device do (the Flightctl server's go-systemd lexer and podman's quadlet
// parser): lines are trimmed, '#' and ';' start comments, a trailing
// backslash continues the value on the next line. Values are returned raw,
// without unquoting. It is exported so that tests elsewhere can inspect
// generated units.
func ParseUnit(content string) (*Unit, error) {
	out := &Unit{}
	section := ""
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		if len(lines[i]) >= maxParsedLine {
			return nil, fmt.Errorf("line %d too long (max %d bytes)", i+1, maxParsedLine)
		}
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 || strings.TrimSpace(line[end+1:]) != "" {
				return nil, fmt.Errorf("line %d: malformed section header %q", i+1, line)
			}
			section = line[1:end]
			out.Sections = append(out.Sections, section)
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("line %d: %q is not a key-value pair, section or comment", i+1, line)
		}
		if section == "" {
			return nil, fmt.Errorf("line %d: key %q outside of a section", i+1, key)
		}
		value = strings.TrimSpace(value)
		for strings.HasSuffix(value, `\`) && i+1 < len(lines) {
			i++
			value = value[:len(value)-1] + " " + strings.TrimSpace(lines[i])
		}
		out.Entries = append(out.Entries, UnitEntry{Section: section, Key: key, Value: value})
	}
	return out, nil
}
