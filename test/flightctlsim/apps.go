package flightctlsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// This file reads application definitions out of a device spec: the
// compose services and quadlet units inside inline files. Validation uses
// it to find the errors the real server reports, and the simulated agent
// uses it to know how many containers an application has and whether one
// of its images is meant to fail.

// appInfo is what the simulator needs to know about one application.
type appInfo struct {
	name    string
	appType string
	// images are every container image the application would pull.
	images []string
	// total is the number of workloads counted in "ready": .container
	// files for quadlet, services for compose, 1 otherwise.
	total int
	// hash identifies the application's definition; the agent restarts an
	// application only when it changes, as the real agent does.
	hash string
}

// failingImage reports whether an image is meant to fail to pull. The
// patterns are documented in the package comment and README.
func failingImage(ref string) bool {
	if strings.Contains(ref, "/does-not-exist") {
		return true
	}
	return imageTag(ref) == "fail-pull"
}

// imageTag is an image reference's tag: what follows the last ':' after
// the last '/', so that a registry port (host:5000/x) is not mistaken for
// a tag; "" without one.
func imageTag(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if at := strings.Index(last, "@"); at >= 0 {
		last = last[:at]
	}
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return ""
}

// inlineFile is one entry of an application's inline list, decoded.
type inlineFile struct {
	path    string
	content []byte
}

// decodeInline returns the files of an inline application. Errors are
// already reported by validation, so bad entries are skipped here.
func decodeInline(app map[string]any) []inlineFile {
	list, _ := app["inline"].([]any)
	files := make([]inlineFile, 0, len(list))
	for _, it := range list {
		m, _ := it.(map[string]any)
		p, _ := m["path"].(string)
		c, _ := m["content"].(string)
		if enc, _ := m["contentEncoding"].(string); enc == "base64" {
			b, err := base64.StdEncoding.DecodeString(c)
			if err != nil {
				continue
			}
			files = append(files, inlineFile{path: p, content: b})
			continue
		}
		files = append(files, inlineFile{path: p, content: []byte(c)})
	}
	return files
}

// composeService is the part of a compose service the server looks at.
type composeService struct {
	Image         string `json:"image"`
	ContainerName string `json:"container_name"`
}

// composeFile is the part of a compose file the server looks at.
type composeFile struct {
	Services map[string]composeService `json:"services"`
}

// parseCompose reads a compose file (YAML).
func parseCompose(content []byte) (*composeFile, error) {
	var cf composeFile
	if err := yaml.Unmarshal(content, &cf); err != nil {
		return nil, err
	}
	return &cf, nil
}

// sortedServiceNames returns compose service names in a stable order. The
// real server walks a Go map, so its error order varies between requests;
// sorting makes the simulator deterministic.
func sortedServiceNames(cf *composeFile) []string {
	names := make([]string, 0, len(cf.Services))
	for n := range cf.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Quadlet unit types, named after their section.
const (
	quadletContainer = "container"
	quadletVolume    = "volume"
	quadletNetwork   = "network"
	quadletImage     = "image"
	quadletPod       = "pod"
)

// quadletSections maps unit sections to quadlet types.
var quadletSections = map[string]string{
	"Container": quadletContainer,
	"Volume":    quadletVolume,
	"Network":   quadletNetwork,
	"Image":     quadletImage,
	"Pod":       quadletPod,
}

// unsupportedQuadletSections are quadlet types Flightctl v1.2 refuses.
var unsupportedQuadletSections = []string{"Artifact", "Build", "Kube"}

// supportedQuadletExt are the extensions of quadlet files Flightctl reads.
var supportedQuadletExt = map[string]bool{
	".container": true, ".volume": true, ".network": true, ".image": true, ".pod": true,
}

// unsupportedQuadletExt are quadlet extensions Flightctl v1.2 refuses.
var unsupportedQuadletExt = map[string]bool{".build": true, ".artifact": true, ".kube": true}

// isQuadletFile reports whether a path names a quadlet unit of any kind;
// other files in a quadlet application are data and are not parsed.
func isQuadletFile(p string) bool {
	ext := path.Ext(p)
	return supportedQuadletExt[ext] || unsupportedQuadletExt[ext]
}

// quadletRefs are the references a quadlet unit makes, as the server
// validates them.
type quadletRefs struct {
	kind     string
	image    *string
	pods     []string
	volumes  []string
	networks []string
}

// parseUnit reads a systemd unit file into section -> key -> values.
// Continuation lines (trailing backslash) are joined; comments dropped.
func parseUnit(content []byte) (map[string]map[string][]string, error) {
	sections := map[string]map[string][]string{}
	var current map[string][]string
	var pending string
	for _, raw := range strings.Split(string(content), "\n") {
		line := strings.TrimSpace(raw)
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			name := line[1 : len(line)-1]
			if sections[name] == nil {
				sections[name] = map[string][]string{}
			}
			current = sections[name]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("invalid line %q: expected key=value", line)
		}
		if current == nil {
			return nil, fmt.Errorf("key %q outside of a section", strings.TrimSpace(k))
		}
		k = strings.TrimSpace(k)
		current[k] = append(current[k], strings.TrimSpace(v))
	}
	return sections, nil
}

// parseQuadlet reads the references of one quadlet unit.
func parseQuadlet(content []byte) (*quadletRefs, error) {
	unit, err := parseUnit(content)
	if err != nil {
		return nil, err
	}
	for _, s := range unsupportedQuadletSections {
		if _, ok := unit[s]; ok {
			return nil, fmt.Errorf("unsupported quadlet type: type: %s", s)
		}
	}
	var section string
	found := 0
	for s := range quadletSections {
		if _, ok := unit[s]; ok {
			section = s
			found++
		}
	}
	if found == 0 {
		return nil, errors.New("not a quadlet type")
	}
	if found > 1 {
		return nil, errors.New("multiple quadlet type sections found")
	}
	keys := unit[section]
	refs := &quadletRefs{kind: quadletSections[section]}
	if v := keys["Image"]; len(v) > 0 {
		img := v[len(v)-1]
		refs.image = &img
	}
	refs.pods = referencesWithExt(keys["Pod"], ".pod")
	refs.volumes = referencesWithExt(keys["Volume"], ".volume")
	refs.networks = referencesWithExt(keys["Network"], ".network")
	return refs, nil
}

// referencesWithExt returns the values that name another quadlet unit of
// the application (the part before the first ':' ends in ext).
func referencesWithExt(values []string, ext string) []string {
	var out []string
	for _, v := range values {
		src, _, _ := strings.Cut(v, ":")
		if strings.HasSuffix(src, ext) {
			out = append(out, src)
		}
	}
	return out
}

// appsOf extracts the applications of a canonical, validated spec.
func appsOf(spec map[string]any) []appInfo {
	list, _ := spec["applications"].([]any)
	apps := make([]appInfo, 0, len(list))
	for _, it := range list {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		apps = append(apps, appOf(m))
	}
	return apps
}

// appOf describes one application.
func appOf(m map[string]any) appInfo {
	a := appInfo{total: 1}
	a.appType, _ = m["appType"].(string)
	a.name, _ = m["name"].(string)
	image, _ := m["image"].(string)
	if a.name == "" {
		// The real server names an unnamed image application after its
		// image.
		a.name = image
	}
	sum := sha256.Sum256(mustMarshal(m))
	a.hash = hex.EncodeToString(sum[:8])
	if image != "" {
		a.images = []string{image}
	}
	if _, inline := m["inline"]; !inline {
		return a
	}
	files := decodeInline(m)
	switch a.appType {
	case flightctl.AppTypeCompose:
		services := map[string]bool{}
		for _, f := range files {
			cf, err := parseCompose(f.content)
			if err != nil {
				continue
			}
			for _, name := range sortedServiceNames(cf) {
				services[name] = true
				if img := cf.Services[name].Image; img != "" {
					a.images = append(a.images, img)
				}
			}
		}
		a.total = max(len(services), 1)
	case flightctl.AppTypeQuadlet:
		containers := 0
		for _, f := range files {
			if !isQuadletFile(f.path) {
				continue
			}
			q, err := parseQuadlet(f.content)
			if err != nil {
				continue
			}
			if q.kind == quadletContainer {
				containers++
			}
			if q.image != nil && !strings.HasSuffix(*q.image, ".image") {
				a.images = append(a.images, *q.image)
			}
		}
		a.total = max(containers, 1)
	}
	return a
}

// decodeJSON decodes into generic values, keeping numbers exact so that a
// spec round-trips without float rounding.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after top-level value")
	}
	return v, nil
}
