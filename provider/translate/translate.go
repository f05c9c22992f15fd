package translate

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Format selects how a pod is expressed as a Flightctl application.
type Format string

const (
	// FormatQuadlet writes a podman quadlet .pod unit plus one .container
	// unit per container. It is the default: units are supervised by
	// systemd directly and need podman 5.0 or newer on the device.
	FormatQuadlet Format = "quadlet"
	// FormatCompose writes one podman-compose.yaml with a service per
	// container sharing the first service's network namespace.
	FormatCompose Format = "compose"
)

// Options parameterise ToApplication.
type Options struct {
	// Format defaults to FormatQuadlet.
	Format Format
	// Resolver provides ConfigMaps and Secrets referenced by env,
	// envFrom and volumes. Without one, optional references are skipped
	// and required ones fail with ErrMissingReference.
	Resolver Resolver
	// DeviceName is the Flightctl device the pod is placed on; it only
	// appears in messages.
	DeviceName string
	// DeviceIP answers status.podIP and status.hostIP in the downward API.
	DeviceIP string
	// Allocatable is the device capacity used, as the kubelet uses node
	// allocatable, for resourceFieldRef limits a container does not set.
	Allocatable corev1.ResourceList
	// AppName overrides the application name (AppName(pod) when empty);
	// fleet-wide pods use FleetAppName.
	AppName string
}

// Result is a translated pod.
type Result struct {
	// Application goes into the device's spec.applications. Its EnvVars
	// stay empty: environment is written into the units so that each
	// container gets its own.
	Application flightctl.ApplicationSpec
	// VolumeFiles must be written on the device (Flightctl inline config)
	// before the application starts; they hold ConfigMap, Secret and
	// downward API volume contents, in a stable order.
	VolumeFiles []VolumeFile
	// Hash is a hex SHA-256 over the application and its volume files.
	// Callers record it (e.g. in a pod annotation) to tell whether a
	// device needs rewriting without comparing specs field by field.
	Hash string
	// Warnings describe references that were skipped because they were
	// optional and missing; callers may turn them into pod events.
	Warnings []string
}

type translator struct {
	pod         *corev1.Pod
	opts        Options
	app         string
	warnings    []string
	volumes     map[string]*volumePlan
	volumeOrder []string
	files       []VolumeFile
	objects     map[string]fetched // ConfigMaps and Secrets by kind/name
}

func (t *translator) warnf(format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf(format, args...))
}

// podPlan is the format-neutral description of what runs on the device.
type podPlan struct {
	app        string
	namespace  string
	name       string
	hostname   string
	restart    string // systemd/compose restart value
	stopGrace  *int64
	ports      []portMapping
	containers []containerPlan
	volumes    []*volumePlan // emptyDir volumes, in spec order
}

type containerPlan struct {
	index        int
	name         string
	image        string
	command      []string // nil keeps the image entrypoint
	args         []string // nil keeps the image command (when command is nil)
	workingDir   string
	env          []envVar
	mounts       []mount
	cpus         string // decimal CPUs, e.g. "0.5"
	memory       string // bytes
	user, group  *int64
	groupAdd     []int64
	readOnlyRoot bool
	noNewPrivs   bool
	capDrop      []string
}

type portMapping struct {
	hostIP        string
	hostPort      int32
	containerPort int32
	protocol      string // "tcp" or "udp"
}

// ToApplication translates a pod into a Flightctl application for the device
// it was placed on. It fails with *UnsupportedError when the pod uses
// anything that cannot be honoured on a device (see the package
// documentation for the complete list), with an error wrapping
// ErrMissingReference or ErrDeviceIPUnknown when a dependency is not
// available yet, and never returns a partial application.
func ToApplication(pod *corev1.Pod, opts Options) (*Result, error) {
	if pod == nil {
		return nil, fmt.Errorf("pod is nil")
	}
	if opts.Format == "" {
		opts.Format = FormatQuadlet
	}
	if opts.Format != FormatQuadlet && opts.Format != FormatCompose {
		return nil, fmt.Errorf("unknown application format %q; use %q or %q", opts.Format, FormatQuadlet, FormatCompose)
	}
	if !isDNSLabel(pod.Namespace) {
		return nil, unsupported("metadata.namespace", "%q is not a valid namespace", pod.Namespace)
	}
	if !isDNSSubdomain(pod.Name) {
		return nil, unsupported("metadata.name", "%q is not a valid pod name", pod.Name)
	}
	if pod.UID == "" {
		return nil, fmt.Errorf("pod %s/%s has no UID; only pods read from the API server can be translated", pod.Namespace, pod.Name)
	}
	name := opts.AppName
	if name == "" {
		name = AppName(pod)
	}
	t := &translator{pod: pod, opts: opts, app: name}
	plan, err := t.plan()
	if err != nil {
		return nil, err
	}
	app := flightctl.ApplicationSpec{Name: t.app}
	switch opts.Format {
	case FormatQuadlet:
		app.AppType = flightctl.AppTypeQuadlet
		app.Inline, err = renderQuadlet(plan)
	case FormatCompose:
		app.AppType = flightctl.AppTypeCompose
		app.Inline, err = renderCompose(plan)
	}
	if err != nil {
		return nil, err
	}
	if err := checkInlineSizes(plan, app); err != nil {
		return nil, err
	}
	// The validator mirrors the server's checks; failing it here is a bug
	// in this package, caught before the device spec is rejected.
	if err := ValidateApplication(app); err != nil {
		return nil, fmt.Errorf("internal error: generated application for pod %s/%s is invalid: %w", pod.Namespace, pod.Name, err)
	}
	return &Result{
		Application: app,
		VolumeFiles: t.files,
		Hash:        contentHash(app, t.files),
		Warnings:    t.warnings,
	}, nil
}

func (t *translator) plan() (*podPlan, error) {
	spec := &t.pod.Spec
	// Top-level fields first; volumes and containers are checked one by
	// one below so that the injected service account volume and its
	// mounts can be skipped while keeping the original indices in
	// messages.
	top := *spec
	top.Volumes, top.Containers = nil, nil
	if err := checkFields("spec", &top); err != nil {
		return nil, err
	}
	if len(spec.Containers) == 0 {
		return nil, unsupported("spec.containers", "the pod has no containers")
	}
	p := &podPlan{app: t.app, namespace: t.pod.Namespace, name: t.pod.Name}

	switch spec.RestartPolicy {
	case corev1.RestartPolicyAlways, "":
		p.restart = "always"
	case corev1.RestartPolicyOnFailure:
		p.restart = "on-failure"
	case corev1.RestartPolicyNever:
		p.restart = "no"
	default:
		return nil, unsupported("spec.restartPolicy", "unknown restart policy %q", spec.RestartPolicy)
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil {
		if *g < 0 || *g > 24*3600 {
			return nil, unsupported("spec.terminationGracePeriodSeconds", "%d is outside 0-86400", *g)
		}
		p.stopGrace = g
	}
	if err := t.checkPodLevel(); err != nil {
		return nil, err
	}
	p.hostname = podHostname(t.pod)
	if spec.Hostname != "" && !isDNSLabel(spec.Hostname) {
		return nil, unsupported("spec.hostname", "%q is not a valid DNS-1123 label", spec.Hostname)
	}

	if err := t.planVolumes(); err != nil {
		return nil, err
	}
	for _, name := range t.volumeOrder {
		if v := t.volumes[name]; v.kind == volumeEmptyDir {
			p.volumes = append(p.volumes, v)
		}
	}

	names := map[string]bool{}
	ports := map[string]portMapping{}
	var portKeys []string
	for i := range spec.Containers {
		c := &spec.Containers[i]
		field := fmt.Sprintf("spec.containers[%d]", i)
		if !isDNSLabel(c.Name) {
			return nil, unsupported(field+".name", "%q is not a valid container name (DNS-1123 label)", c.Name)
		}
		if names[c.Name] {
			return nil, unsupported(field+".name", "container name %q is used twice", c.Name)
		}
		names[c.Name] = true
		cp, err := t.planContainer(i, c)
		if err != nil {
			return nil, err
		}
		for j, port := range c.Ports {
			pm, err := planPort(fmt.Sprintf("%s.ports[%d]", field, j), port)
			if err != nil {
				return nil, err
			}
			key := fmt.Sprintf("%s|%d|%s", pm.hostIP, pm.hostPort, pm.protocol)
			if prev, dup := ports[key]; dup {
				if prev != pm {
					return nil, unsupported(fmt.Sprintf("%s.ports[%d]", field, j),
						"host port %d/%s is already published for container port %d", pm.hostPort, pm.protocol, prev.containerPort)
				}
				continue
			}
			ports[key] = pm
			portKeys = append(portKeys, key)
		}
		p.containers = append(p.containers, *cp)
	}
	for _, k := range portKeys {
		p.ports = append(p.ports, ports[k])
	}
	return p, nil
}

// checkPodLevel validates pod-wide settings whose values, not mere presence,
// decide whether they can be honoured.
func (t *translator) checkPodLevel() error {
	spec := &t.pod.Spec
	if deref(spec.ShareProcessNamespace) {
		return unsupported("spec.shareProcessNamespace", "sharing one process namespace between containers is not supported yet")
	}
	if deref(spec.SetHostnameAsFQDN) {
		return unsupported("spec.setHostnameAsFQDN", "devices have no cluster DNS domain")
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		return unsupported("spec.hostUsers", "user namespaces (hostUsers: false) are not supported yet")
	}
	if spec.OS != nil && spec.OS.Name != corev1.Linux {
		return unsupported("spec.os.name", "devices run Linux containers, not %q", spec.OS.Name)
	}
	sc := spec.SecurityContext
	if sc == nil {
		return nil
	}
	if sc.SupplementalGroupsPolicy != nil && *sc.SupplementalGroupsPolicy != corev1.SupplementalGroupsPolicyMerge {
		return unsupported("spec.securityContext.supplementalGroupsPolicy", "only Merge is supported")
	}
	if sc.FSGroup != nil {
		for _, v := range spec.Volumes {
			if !isServiceAccountVolume(&v) {
				return unsupported("spec.securityContext.fsGroup",
					"volume ownership is not changed on devices; remove fsGroup or make the image's user own its data")
			}
		}
	}
	for i, g := range sc.SupplementalGroups {
		if g < 0 {
			return unsupported(fmt.Sprintf("spec.securityContext.supplementalGroups[%d]", i), "negative group IDs are invalid")
		}
	}
	if err := checkProfiles("spec.securityContext", sc.SeccompProfile, sc.AppArmorProfile); err != nil {
		return err
	}
	return nil
}

func checkProfiles(field string, seccomp *corev1.SeccompProfile, apparmor *corev1.AppArmorProfile) error {
	if seccomp != nil && (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault || seccomp.LocalhostProfile != nil) {
		return unsupported(field+".seccompProfile", "only the RuntimeDefault seccomp profile is supported, got %q", seccomp.Type)
	}
	if apparmor != nil && (apparmor.Type != corev1.AppArmorProfileTypeRuntimeDefault || apparmor.LocalhostProfile != nil) {
		return unsupported(field+".appArmorProfile", "only the RuntimeDefault AppArmor profile is supported, got %q", apparmor.Type)
	}
	return nil
}

// podHostname follows the kubelet: spec.hostname, else the pod name cut to
// 63 characters without trailing '-' or '.'.
func podHostname(pod *corev1.Pod) string {
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	h := pod.Name
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

var capabilityRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

func (t *translator) planContainer(i int, c *corev1.Container) (*containerPlan, error) {
	field := fmt.Sprintf("spec.containers[%d]", i)
	cc := *c
	cc.VolumeMounts = nil // checked per mount, see plan()
	if err := checkFields(field, &cc); err != nil {
		return nil, err
	}
	image, err := NormalizeImage(c.Image)
	if err != nil {
		return nil, unsupported(field+".image", "%v", err)
	}
	cp := &containerPlan{index: i, name: c.Name, image: image}

	if cp.env, err = t.resolveEnv(i, c); err != nil {
		return nil, err
	}
	lookup := func(name string) (string, bool) {
		for _, e := range cp.env {
			if e.name == name {
				return e.value, true
			}
		}
		return "", false
	}
	expand := func(f string, in []string) ([]string, error) {
		if in == nil {
			return nil, nil
		}
		out := make([]string, len(in))
		for j, s := range in {
			out[j] = expandVars(s, lookup)
			if err := checkText(fmt.Sprintf("%s[%d]", f, j), out[j]); err != nil {
				return nil, err
			}
			if err := checkExecString(fmt.Sprintf("%s[%d]", f, j), "the argument", len(out[j])); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if len(c.Command) > 0 {
		if cp.command, err = expand(field+".command", c.Command); err != nil {
			return nil, err
		}
	}
	if len(c.Args) > 0 {
		if cp.args, err = expand(field+".args", c.Args); err != nil {
			return nil, err
		}
	}
	if c.WorkingDir != "" {
		if err := checkContainerPath(field+".workingDir", c.WorkingDir); err != nil {
			return nil, err
		}
		cp.workingDir = c.WorkingDir
	}
	if cp.mounts, err = t.planMounts(i, c); err != nil {
		return nil, err
	}
	if err := planResources(field+".resources", &c.Resources, cp); err != nil {
		return nil, err
	}
	if err := t.planSecurity(field+".securityContext", c.SecurityContext, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

func planResources(field string, r *corev1.ResourceRequirements, cp *containerPlan) error {
	for _, name := range sortedKeys(r.Limits) {
		q := r.Limits[name]
		switch name {
		case corev1.ResourceCPU:
			cp.cpus = planCPULimit(q)
		case corev1.ResourceMemory:
			var err error
			if cp.memory, err = planMemoryLimit(fmt.Sprintf("%s.limits[%s]", field, name), q); err != nil {
				return err
			}
		default:
			return unsupported(fmt.Sprintf("%s.limits[%s]", field, name), "only cpu and memory limits can be enforced on devices")
		}
	}
	for _, name := range sortedKeys(r.Requests) {
		switch name {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			// Requests only steer scheduling, which placement handled.
		default:
			return unsupported(fmt.Sprintf("%s.requests[%s]", field, name), "extended resources and hugepages are not available on devices")
		}
	}
	return nil
}

func formatMilli(milli int64) string {
	s := fmt.Sprintf("%d.%03d", milli/1000, milli%1000)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func (t *translator) planSecurity(field string, sc *corev1.SecurityContext, cp *containerPlan) error {
	psc := t.pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	if deref(sc.Privileged) {
		return unsupported(field+".privileged", "privileged containers are not allowed for device workloads")
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		return unsupported(field+".procMount", "only the Default proc mount is supported")
	}
	if err := checkProfiles(field, sc.SeccompProfile, sc.AppArmorProfile); err != nil {
		return err
	}
	if sc.Capabilities != nil {
		for j, c := range sc.Capabilities.Drop {
			if !capabilityRE.MatchString(string(c)) {
				return unsupported(fmt.Sprintf("%s.capabilities.drop[%d]", field, j), "%q is not a capability name", c)
			}
			cp.capDrop = append(cp.capDrop, string(c))
		}
	}
	cp.readOnlyRoot = deref(sc.ReadOnlyRootFilesystem)
	cp.noNewPrivs = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation

	userField, user := field+".runAsUser", sc.RunAsUser
	if user == nil {
		userField, user = "spec.securityContext.runAsUser", psc.RunAsUser
	}
	groupField, group := field+".runAsGroup", sc.RunAsGroup
	if group == nil {
		groupField, group = "spec.securityContext.runAsGroup", psc.RunAsGroup
	}
	nonRootField, nonRoot := field+".runAsNonRoot", sc.RunAsNonRoot
	if nonRoot == nil {
		nonRootField, nonRoot = "spec.securityContext.runAsNonRoot", psc.RunAsNonRoot
	}
	if user != nil && (*user < 0 || *user > 1<<31-2) {
		return unsupported(userField, "%d is not a valid user ID", *user)
	}
	if group != nil && (*group < 0 || *group > 1<<31-2) {
		return unsupported(groupField, "%d is not a valid group ID", *group)
	}
	if group != nil && user == nil {
		return unsupported(groupField, "runAsGroup needs runAsUser on devices: podman cannot keep the image's user while changing its group")
	}
	if deref(nonRoot) {
		if user == nil {
			return unsupported(nonRootField, "the image's user cannot be checked before the container starts on the device; also set runAsUser to a non-zero UID")
		}
		if *user == 0 {
			return unsupported(nonRootField, "runAsNonRoot contradicts runAsUser 0")
		}
	}
	cp.user, cp.group = user, group
	cp.groupAdd = append(cp.groupAdd, psc.SupplementalGroups...)
	if psc.FSGroup != nil {
		// Without volumes (checked in checkPodLevel) fsGroup only adds a
		// supplemental group, which podman can do.
		cp.groupAdd = append(cp.groupAdd, *psc.FSGroup)
	}
	return nil
}

func planPort(field string, port corev1.ContainerPort) (portMapping, error) {
	pm := portMapping{containerPort: port.ContainerPort, hostPort: port.HostPort}
	switch port.Protocol {
	case corev1.ProtocolTCP, "":
		pm.protocol = "tcp"
	case corev1.ProtocolUDP:
		pm.protocol = "udp"
	default:
		return pm, unsupported(field+".protocol", "protocol %q is not supported; use TCP or UDP", port.Protocol)
	}
	if pm.containerPort < 1 || pm.containerPort > 65535 {
		return pm, unsupported(field+".containerPort", "%d is not a valid port", pm.containerPort)
	}
	if pm.hostPort < 0 || pm.hostPort > 65535 {
		return pm, unsupported(field+".hostPort", "%d is not a valid port", pm.hostPort)
	}
	// Devices have no pod network, so a container port is reachable only
	// if published; without hostPort it is published on the same number.
	if pm.hostPort == 0 {
		pm.hostPort = pm.containerPort
	}
	if port.HostIP != "" {
		ip := net.ParseIP(port.HostIP)
		if ip == nil {
			return pm, unsupported(field+".hostIP", "%q is not an IP address", port.HostIP)
		}
		pm.hostIP = ip.String()
	}
	return pm, nil
}

// publishSpec renders a mapping the way both podman --publish and compose
// short syntax expect it.
func (pm portMapping) publishSpec() string {
	s := fmt.Sprintf("%d:%d/%s", pm.hostPort, pm.containerPort, pm.protocol)
	switch {
	case pm.hostIP == "":
		return s
	case strings.Contains(pm.hostIP, ":"):
		return "[" + pm.hostIP + "]:" + s
	default:
		return pm.hostIP + ":" + s
	}
}

// contentHash covers everything that ends up on the device, in a fixed
// order; JSON of plain structs (sorted map keys) keeps it deterministic.
func contentHash(app flightctl.ApplicationSpec, files []VolumeFile) string {
	type file struct {
		Path     string `json:"path"`
		Content  string `json:"content"`
		Encoding string `json:"encoding,omitempty"`
		Mode     int32  `json:"mode,omitempty"`
	}
	doc := struct {
		Name    string            `json:"name"`
		AppType string            `json:"appType"`
		Image   string            `json:"image,omitempty"`
		EnvVars map[string]string `json:"envVars,omitempty"`
		Inline  []file            `json:"inline"`
		Volumes []file            `json:"volumes"`
	}{Name: app.Name, AppType: app.AppType, Image: app.Image, EnvVars: app.EnvVars}
	for _, f := range app.Inline {
		doc.Inline = append(doc.Inline, file{Path: f.Path, Content: f.Content, Encoding: f.ContentEncoding})
	}
	sorted := append([]VolumeFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		doc.Volumes = append(doc.Volumes, file{Path: f.Path, Content: base64.StdEncoding.EncodeToString(f.Content), Mode: f.Mode})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Plain strings and ints always marshal.
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
