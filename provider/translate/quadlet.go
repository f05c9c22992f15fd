package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// maxUnitLine keeps every generated line under the 2048-byte limit of the
// systemd unit parser the Flightctl server uses to validate quadlet files
// (coreos/go-systemd), with margin for the key.
const maxUnitLine = 2000

// Quadlet values reach systemd twice: quadlet parses the .container file,
// then copies most values into the ExecStart= of the generated service,
// where systemd expands %-specifiers and $VARIABLES. Every value derived from
// the pod is therefore either a token of a restricted alphabet (images,
// paths, numbers) or a double-quoted word with C escapes (Exec= arguments,
// Environment=), and in both cases '%' and '$' are doubled so that systemd
// yields them literally. Newlines never appear raw: in quoted words they
// become "\n", so a value cannot end its line and start a new directive;
// and no line ends in a backslash (quoted words end in '"'), so no
// continuation line can be forged either.

// escapeSpecifiers doubles the characters systemd expands in ExecStart=.
func escapeSpecifiers(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	return strings.ReplaceAll(s, "$", "$$")
}

// unitToken accepts values made of printable ASCII without whitespace,
// quotes or backslashes, which quadlet passes through unchanged.
func unitToken(field, s string) (string, error) {
	if s == "" {
		return "", unsupported(field, "the value is empty")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\'' || c == '\\' {
			return "", unsupported(field, "%q contains characters that cannot be written into a quadlet unit", s)
		}
	}
	return escapeSpecifiers(s), nil
}

// needsQuoting extends podman's own rule for words it quotes when writing
// ExecStart= (ASCII whitespace and control characters, quotes, backslashes)
// with Unicode spaces: both unit parsers on the way trim them from the ends
// of a line, which would silently shorten a value.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '"' || r == '\'' || r == '\\' || unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

// unitWord renders one word for keys that quadlet splits like a command line
// (Exec=, Environment=, PodmanArgs=).
func unitWord(field, s string) (string, error) {
	if err := checkText(field, s); err != nil {
		return "", err
	}
	switch s {
	case "":
		// Quadlet drops empty words when it writes ExecStart=.
		return "", unsupported(field, "an empty argument cannot be passed through a quadlet unit; use the compose format")
	case ";":
		// systemd reads a bare ';' in ExecStart= as a command separator
		// and quadlet does not quote it.
		return "", unsupported(field, "an argument that is exactly \";\" cannot be passed through systemd; use the compose format")
	}
	if !needsQuoting(s) {
		return escapeSpecifiers(s), nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < ' ' || c == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return escapeSpecifiers(b.String()), nil
}

func unitWords(field string, words []string) (string, error) {
	out := make([]string, len(words))
	for i, w := range words {
		var err error
		if out[i], err = unitWord(fmt.Sprintf("%s[%d]", field, i), w); err != nil {
			return "", err
		}
	}
	return strings.Join(out, " "), nil
}

// unitFile builds a systemd-style unit; sections keep insertion order.
type unitFile struct {
	sections []*unitSection
}

type unitSection struct {
	name  string
	lines []string
	err   error
}

func (u *unitFile) section(name string) *unitSection {
	s := &unitSection{name: name}
	u.sections = append(u.sections, s)
	return s
}

// add appends Key=value; field names the pod field a too long line comes
// from. The value must already be escaped.
func (s *unitSection) add(field, key, value string) {
	line := key + "=" + value
	if len(line) > maxUnitLine && s.err == nil {
		s.err = unsupported(field, "the value is too long for a quadlet unit line (%d bytes, at most %d); use the compose format or a ConfigMap volume", len(line), maxUnitLine)
	}
	s.lines = append(s.lines, line)
}

func (u *unitFile) render() (string, error) {
	var b strings.Builder
	for i, s := range u.sections {
		if s.err != nil {
			return "", s.err
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("[" + s.name + "]\n")
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String(), nil
}

func podUnitName(app string) string { return app + ".pod" }

// PodmanContainerName is the podman name of a pod's container in the
// quadlet format: the application name, a dash, the container name (both
// DNS labels, so the result is a valid podman name).
func PodmanContainerName(app, container string) string { return app + "-" + container }

func containerUnitName(app, container string) string { return app + "-" + container + ".container" }

func volumeUnitName(app, volume string) string { return app + "-" + volume + ".volume" }

// renderQuadlet writes one .pod unit, one .volume unit per emptyDir and one
// .container unit per container. All file names start with the application
// name, which is unique per device, so units of different pods never clash.
func renderQuadlet(p *podPlan) ([]flightctl.InlineFile, error) {
	if err := checkServiceNames(p); err != nil {
		return nil, err
	}
	var files []flightctl.InlineFile
	desc := fmt.Sprintf("vk-flightctl pod %s/%s", p.namespace, p.name)

	pod := &unitFile{}
	pod.section("Unit").add("metadata.name", "Description", strings.ReplaceAll(desc, "%", "%%"))
	ps := pod.section("Pod")
	host, err := unitWord("spec.hostname", "--hostname="+p.hostname)
	if err != nil {
		return nil, err
	}
	ps.add("spec.hostname", "PodmanArgs", host)
	for _, pm := range p.ports {
		ps.add("spec.containers.ports", "PublishPort", pm.publishSpec())
	}
	pod.section("Install").add("", "WantedBy", "default.target")
	content, err := pod.render()
	if err != nil {
		return nil, err
	}
	files = append(files, flightctl.InlineFile{Path: podUnitName(p.app), Content: content})

	for _, v := range p.volumes {
		u := &unitFile{}
		u.section("Unit").add("", "Description", strings.ReplaceAll(desc+" volume "+v.name, "%", "%%"))
		vs := u.section("Volume")
		// The label identifies the owner on the device and keeps the
		// section non-empty, which quadlet needs to recognise the type.
		vs.add("", "Label", "vk-flightctl.io/app="+p.app)
		if v.memory {
			vs.add("", "Type", "tmpfs")
			vs.add("", "Device", "tmpfs")
			if v.size > 0 {
				vs.add("", "Options", "size="+strconv.FormatInt(v.size, 10))
			}
		}
		content, err := u.render()
		if err != nil {
			return nil, err
		}
		files = append(files, flightctl.InlineFile{Path: volumeUnitName(p.app, v.name), Content: content})
	}

	for i := range p.containers {
		content, err := renderContainerUnit(p, &p.containers[i], desc)
		if err != nil {
			return nil, err
		}
		files = append(files, flightctl.InlineFile{Path: containerUnitName(p.app, p.containers[i].name), Content: content})
	}
	return files, nil
}

// checkServiceNames refuses pods whose container names would make quadlet
// generate the same systemd service twice: "<app>.pod" becomes
// "<app>-pod.service", "<app>-<v>.volume" becomes "<app>-<v>-volume.service".
func checkServiceNames(p *podPlan) error {
	taken := map[string]string{p.app + "-pod": "the pod unit"}
	for _, v := range p.volumes {
		taken[p.app+"-"+v.name+"-volume"] = fmt.Sprintf("the unit of volume %q", v.name)
	}
	for _, c := range p.containers {
		if what, ok := taken[p.app+"-"+c.name]; ok {
			return unsupported(fmt.Sprintf("spec.containers[%d].name", c.index),
				"container name %q would give the same systemd service as %s; rename the container", c.name, what)
		}
	}
	return nil
}

func renderContainerUnit(p *podPlan, c *containerPlan, desc string) (string, error) {
	field := fmt.Sprintf("spec.containers[%d]", c.index)
	u := &unitFile{}
	u.section("Unit").add(field+".name", "Description", strings.ReplaceAll(desc+" container "+c.name, "%", "%%"))
	cs := u.section("Container")

	image, err := unitToken(field+".image", c.image)
	if err != nil {
		return "", err
	}
	cs.add(field+".image", "Image", image)
	cs.add("", "Pod", podUnitName(p.app))
	// A known podman name lets the kubelet API run `podman logs` and
	// `podman exec` on it without looking it up on the device.
	cs.add("", "ContainerName", PodmanContainerName(p.app, c.name))
	if c.command != nil {
		// Entrypoint= takes a JSON array for multi-word entrypoints and is
		// read as a raw string by quadlet, so only the specifiers need
		// escaping; JSON already escapes quotes and control characters.
		for j, w := range c.command {
			if err := checkText(fmt.Sprintf("%s.command[%d]", field, j), w); err != nil {
				return "", err
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(c.command); err != nil {
			return "", err
		}
		cs.add(field+".command", "Entrypoint", escapeSpecifiers(strings.TrimSpace(buf.String())))
	}
	if c.args != nil {
		exec, err := unitWords(field+".args", c.args)
		if err != nil {
			return "", err
		}
		cs.add(field+".args", "Exec", exec)
	}
	if c.workingDir != "" {
		wd, err := unitToken(field+".workingDir", c.workingDir)
		if err != nil {
			return "", err
		}
		cs.add(field+".workingDir", "WorkingDir", wd)
	}
	for _, e := range c.env {
		w, err := unitWord(e.field, e.name+"="+e.value)
		if err != nil {
			return "", err
		}
		cs.add(e.field, "Environment", w)
	}
	for _, m := range c.mounts {
		src := m.source
		opts := ""
		if m.named {
			src = volumeUnitName(p.app, m.source)
			if m.readOnly {
				opts = ":ro"
			}
		} else {
			// z relabels the host files for SELinux so that every
			// container of the pod may read them.
			opts = ":ro,z"
		}
		v, err := unitToken(field+".volumeMounts", src+":"+m.target+opts)
		if err != nil {
			return "", err
		}
		cs.add(field+".volumeMounts", "Volume", v)
	}
	if c.user != nil {
		cs.add(field+".securityContext.runAsUser", "User", strconv.FormatInt(*c.user, 10))
		if c.group != nil {
			cs.add(field+".securityContext.runAsGroup", "Group", strconv.FormatInt(*c.group, 10))
		}
	}
	for _, g := range c.groupAdd {
		cs.add("spec.securityContext.supplementalGroups", "PodmanArgs", "--group-add="+strconv.FormatInt(g, 10))
	}
	if c.readOnlyRoot {
		cs.add("", "ReadOnly", "true")
	}
	if c.noNewPrivs {
		cs.add("", "NoNewPrivileges", "true")
	}
	for _, capName := range c.capDrop {
		cs.add(field+".securityContext.capabilities.drop", "DropCapability", capName)
	}
	// Memory= and friends only exist in recent quadlet versions;
	// PodmanArgs= works on every podman that supports .pod units.
	if c.cpus != "" {
		cs.add("", "PodmanArgs", "--cpus="+c.cpus)
	}
	if c.memory != "" {
		cs.add("", "PodmanArgs", "--memory="+c.memory)
	}
	if p.stopGrace != nil {
		cs.add("", "PodmanArgs", "--stop-timeout="+strconv.FormatInt(*p.stopGrace, 10))
	}

	ss := u.section("Service")
	ss.add("", "Restart", p.restart)
	if p.stopGrace != nil {
		// systemd must wait longer than podman's own grace period, or it
		// kills the container before SIGTERM handling completes.
		ss.add("", "TimeoutStopSec", strconv.FormatInt(*p.stopGrace+30, 10))
	}
	u.section("Install").add("", "WantedBy", "default.target")
	return u.render()
}
