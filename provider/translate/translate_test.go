package translate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

func TestToApplicationBasics(t *testing.T) {
	res := mustTranslate(t, basePod(), Options{})
	app := res.Application
	if app.AppType != flightctl.AppTypeQuadlet || app.Image != "" || len(app.EnvVars) != 0 {
		t.Fatalf("unexpected application %+v", app)
	}
	wantPaths := []string{app.Name + ".pod", app.Name + "-nginx.container"}
	if !equalSlices(inlinePaths(res), wantPaths) {
		t.Fatalf("inline paths %v, want %v", inlinePaths(res), wantPaths)
	}
	if len(res.Hash) != 64 {
		t.Fatalf("hash %q", res.Hash)
	}
	// On the wire the application is exactly what the server accepted in
	// the transcripts: name, appType and inline files, nothing else.
	raw, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(raw, &wire); err != nil {
		t.Fatal(err)
	}
	if len(wire) != 3 || wire["name"] == nil || wire["appType"] == nil || wire["inline"] == nil {
		t.Errorf("wire form %s", raw)
	}
	if _, err := ToApplication(nil, Options{}); err == nil {
		t.Error("nil pod accepted")
	}
	if _, err := ToApplication(basePod(), Options{Format: "helm"}); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := ToApplication(basePod(func(p *corev1.Pod) { p.UID = "" }), Options{}); err == nil {
		t.Error("pod without UID accepted")
	}
}

func TestRestartPolicies(t *testing.T) {
	for policy, want := range map[corev1.RestartPolicy]string{
		corev1.RestartPolicyAlways:    "always",
		corev1.RestartPolicyOnFailure: "on-failure",
		corev1.RestartPolicyNever:     "no",
	} {
		pod := basePod(func(p *corev1.Pod) { p.Spec.RestartPolicy = policy })
		res := mustTranslate(t, pod, Options{})
		u := quadletUnit(t, res, "nginx")
		if v, _ := lastValue(u.Entries, "Service", "Restart"); v != want {
			t.Errorf("%s: quadlet Restart=%q, want %q", policy, v, want)
		}
		res = mustTranslate(t, pod, Options{Format: FormatCompose})
		if got := decodeComposeService(t, res, "nginx").Restart; got != want {
			t.Errorf("%s: compose restart %q, want %q", policy, got, want)
		}
	}
}

func TestEnvironmentSemantics(t *testing.T) {
	resolver := StaticResolver{
		ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{
			"A": "from-cm", "B": "from-cm", "bad key": "skipped", "1NUM": "skipped",
		}}},
		Secrets: map[string]*corev1.Secret{"default/s": {Data: map[string][]byte{"token": []byte("t0k")}}},
	}
	pod := basePod(func(p *corev1.Pod) {
		c := &p.Spec.Containers[0]
		c.EnvFrom = []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "missing"}, Optional: ptr(true)}},
		}
		c.Env = []corev1.EnvVar{
			{Name: "B", Value: "from-env"}, // env overrides envFrom
			{Name: "C", Value: "$(A)-$(B)-$(D)"},
			{Name: "D", Value: "late"}, // defined after C: not visible to C
			{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "token"}}},
			{Name: "OPT", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "nope", Optional: ptr(true)}}},
			{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "SA", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.serviceAccountName"}}},
			{Name: "UID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}},
			{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
			{Name: "MISSING_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['nope']"}}},
			{Name: "CPU_M", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: qty("1m")}}},
			{Name: "CPU", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}},
			{Name: "MEM_REQ", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "requests.memory"}}},
			{Name: "DEVICE_MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: qty("1Mi")}}},
		}
		c.Command = []string{"run", "$(C)", "$$(C)", "$(UNKNOWN)"}
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: qty("250m")}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: qty("1Ki")}
	})
	res := mustTranslate(t, pod, Options{Resolver: resolver, DeviceIP: "192.0.2.5",
		Allocatable: corev1.ResourceList{corev1.ResourceMemory: qty("2Gi")}})
	want := map[string]string{
		"A": "from-cm", "B": "from-env", "C": "from-cm-from-env-$(D)", "D": "late", "TOKEN": "t0k",
		"NODE": "vk-flightctl-edge", "SA": "default", "UID": string(pod.UID), "HOST_IP": "192.0.2.5",
		"MISSING_LABEL": "", "CPU_M": "250", "CPU": "1", "MEM_REQ": "1024", "DEVICE_MEM": "2048",
	}
	if got := quadletEnv(t, res, "nginx"); !equalMaps(got, want) {
		t.Errorf("env = %v\nwant  %v", got, want)
	}
	if got := quadletEntrypoint(t, res, "nginx"); !equalSlices(got, []string{"run", "from-cm-from-env-$(D)", "$(C)", "$(UNKNOWN)"}) {
		t.Errorf("entrypoint = %q", got)
	}
	if quadletExec(t, res, "nginx") != nil {
		t.Error("command without args must not produce Exec=")
	}
	if len(res.Warnings) != 4 {
		t.Errorf("want 4 warnings (two invalid keys, one optional secret, one optional key), got %q", res.Warnings)
	}
}

func TestMissingReferences(t *testing.T) {
	required := basePod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{
			ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}}}
	})
	notFound := apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "cm")
	tests := map[string]Resolver{
		"no resolver":       nil,
		"static resolver":   StaticResolver{},
		"client NotFound":   resolverFunc(func(string, string) (*corev1.ConfigMap, error) { return nil, notFound }),
		"key missing":       StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {}}},
		"wrapped not found": resolverFunc(func(string, string) (*corev1.ConfigMap, error) { return nil, fmt.Errorf("x: %w", ErrMissingReference) }),
	}
	for name, r := range tests {
		_, err := ToApplication(required, Options{Resolver: r})
		if !errors.Is(err, ErrMissingReference) {
			t.Errorf("%s: got %v, want ErrMissingReference", name, err)
		} else if !strings.Contains(err.Error(), "spec.containers[0].env[0].valueFrom.configMapKeyRef") {
			t.Errorf("%s: message %q does not name the field", name, err)
		}
	}
	boom := errors.New("apiserver unavailable")
	_, err := ToApplication(required, Options{Resolver: resolverFunc(func(string, string) (*corev1.ConfigMap, error) { return nil, boom })})
	if !errors.Is(err, boom) || errors.Is(err, ErrMissingReference) {
		t.Errorf("resolver failures must be passed through, got %v", err)
	}

	podIP := basePod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
	})
	if _, err := ToApplication(podIP, Options{DeviceName: "edge-1"}); !errors.Is(err, ErrDeviceIPUnknown) {
		t.Errorf("got %v, want ErrDeviceIPUnknown", err)
	}
}

type resolverFunc func(ns, name string) (*corev1.ConfigMap, error)

func (f resolverFunc) ConfigMap(ns, name string) (*corev1.ConfigMap, error) { return f(ns, name) }
func (f resolverFunc) Secret(ns, name string) (*corev1.Secret, error) {
	return nil, ErrMissingReference
}

func TestVolumes(t *testing.T) {
	resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{
		"default/cm": {Data: map[string]string{"a.conf": "A"}, BinaryData: map[string][]byte{"b.bin": {0xff, 2}}},
	}}
	pod := basePod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{
			{Name: "all", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, DefaultMode: ptr(int32(0o600))}}},
			{Name: "absent", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: ptr(true)}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"},
					Items: []corev1.KeyToPath{{Key: "a.conf", Path: "conf/a", Mode: ptr(int32(0o640))}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
					{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "nginx", Resource: "requests.memory"}},
				}}},
			}}}},
		}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
			{Name: "all", MountPath: "/etc/all"},
			{Name: "absent", MountPath: "/etc/absent"},
			{Name: "proj", MountPath: "/etc/proj/a", SubPath: "conf/a"},
		}
	})
	res := mustTranslate(t, pod, Options{Resolver: resolver})
	dir := AppDataDir(res.Application.Name) + "/volumes/"
	want := []VolumeFile{
		{Path: dir + "all/a.conf", Content: []byte("A"), Mode: 0o600},
		{Path: dir + "all/b.bin", Content: []byte{0xff, 2}, Mode: 0o600},
		{Path: dir + "absent/" + emptyVolumeMarker, Mode: 0o644},
		{Path: dir + "proj/conf/a", Content: []byte("A"), Mode: 0o640},
		{Path: dir + "proj/mem", Content: []byte("0"), Mode: 0o644},
		{Path: dir + "proj/name", Content: []byte("web"), Mode: 0o644},
	}
	if fmt.Sprint(res.VolumeFiles) != fmt.Sprint(want) {
		t.Errorf("volume files\n got %v\nwant %v", res.VolumeFiles, want)
	}
	if in := res.VolumeFiles[1].Inline(); in.ContentEncoding != "base64" || in.Content != "/wI=" {
		t.Errorf("binary file inline form %+v", in)
	}
	var volumes []string
	for _, e := range quadletUnit(t, res, "nginx").Entries {
		if e.Key == "Volume" {
			volumes = append(volumes, e.Value)
		}
	}
	wantVolumes := []string{dir + "all:/etc/all:ro,z", dir + "absent:/etc/absent:ro,z", dir + "proj/conf/a:/etc/proj/a:ro,z"}
	if !equalSlices(volumes, wantVolumes) {
		t.Errorf("Volume= %q\nwant %q", volumes, wantVolumes)
	}

	// A required ConfigMap that is missing is an error the caller retries.
	pod.Spec.Volumes[1].ConfigMap.Optional = nil
	if _, err := ToApplication(pod, Options{Resolver: resolver}); !errors.Is(err, ErrMissingReference) {
		t.Errorf("got %v, want ErrMissingReference", err)
	}
}

func TestPorts(t *testing.T) {
	pod := basePod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{
			{ContainerPort: 80},
			{ContainerPort: 53, HostPort: 5353, Protocol: corev1.ProtocolUDP},
			{ContainerPort: 443, HostPort: 8443, HostIP: "::1"},
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "busybox",
			Ports: []corev1.ContainerPort{{ContainerPort: 80}}}) // same mapping: shared network namespace
	})
	res := mustTranslate(t, pod, Options{})
	u, err := ParseUnit(inlineFile(t, res, res.Application.Name+".pod"))
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, e := range u.Entries {
		if e.Key == "PublishPort" {
			ports = append(ports, e.Value)
		}
	}
	want := []string{"80:80/tcp", "5353:53/udp", "[::1]:8443:443/tcp"}
	if !equalSlices(ports, want) {
		t.Errorf("PublishPort = %q, want %q", ports, want)
	}
	res = mustTranslate(t, pod, Options{Format: FormatCompose})
	if got := decodeComposeService(t, res, "nginx").Ports; !equalSlices(got, want) {
		t.Errorf("compose ports = %q", got)
	}
	if b := decodeComposeService(t, res, "b"); b.NetworkMode != "service:nginx" || len(b.Ports) != 0 || b.Hostname != "" {
		t.Errorf("second service must join the first one's network: %+v", b)
	}
}

func TestHashAndDeterminism(t *testing.T) {
	cm := func(v string) StaticResolver {
		return StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{"k": v, "x": "1", "y": "2", "z": "3"}}}}
	}
	pod := basePod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}}
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "c", MountPath: "/c"}}
	})
	for _, format := range []Format{FormatQuadlet, FormatCompose} {
		first := mustTranslate(t, pod, Options{Format: format, Resolver: cm("v1")})
		for i := 0; i < 20; i++ {
			again := mustTranslate(t, pod, Options{Format: format, Resolver: cm("v1")})
			if again.Hash != first.Hash || renderGolden(again) != renderGolden(first) {
				t.Fatalf("%s: output is not deterministic", format)
			}
		}
		if mustTranslate(t, pod, Options{Format: format, Resolver: cm("v2")}).Hash == first.Hash {
			t.Errorf("%s: ConfigMap change did not change the hash", format)
		}
	}
	if mustTranslate(t, pod, Options{Resolver: cm("v1")}).Hash == mustTranslate(t, pod, Options{Format: FormatCompose, Resolver: cm("v1")}).Hash {
		t.Error("formats share a hash")
	}
}

func TestFSGroupWithoutVolumesAddsGroup(t *testing.T) {
	pod := basePod(withServiceAccountVolume, func(p *corev1.Pod) { p.Spec.SecurityContext.FSGroup = ptr(int64(3000)) })
	res := mustTranslate(t, pod, Options{})
	if !strings.Contains(inlineFile(t, res, containerUnitName(res.Application.Name, "nginx")), "PodmanArgs=--group-add=3000\n") {
		t.Error("fsGroup not added as a supplemental group")
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + ".b"
	for name, want := range map[string]string{"web-0": "web-0", long: strings.Repeat("a", 62)} {
		res := mustTranslate(t, basePod(func(p *corev1.Pod) { p.Name = name }), Options{Format: FormatCompose})
		if got := decodeComposeService(t, res, "nginx").Hostname; got != want {
			t.Errorf("hostname for %q = %q, want %q", name, got, want)
		}
	}
}

type countingResolver struct {
	StaticResolver
	calls map[string]int
}

func (r *countingResolver) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	r.calls["cm/"+name]++
	return r.StaticResolver.ConfigMap(ns, name)
}

// TestResolverCalledOncePerObject makes every reference to one ConfigMap
// see the same version, even if it changes during translation.
func TestResolverCalledOncePerObject(t *testing.T) {
	r := &countingResolver{calls: map[string]int{}, StaticResolver: StaticResolver{
		ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{"k": "v"}}}}}
	ref := &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}
	optionalMissing := &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Key: "k", Optional: ptr(true)}}
	pod := basePod(func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: ref}, {Name: "B", ValueFrom: ref}, {Name: "C", ValueFrom: optionalMissing}, {Name: "D", ValueFrom: optionalMissing}}
		p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
	})
	mustTranslate(t, pod, Options{Resolver: r})
	if r.calls["cm/cm"] != 1 || r.calls["cm/gone"] != 1 {
		t.Errorf("resolver calls %v, want one per object", r.calls)
	}
}
