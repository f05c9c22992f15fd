package translate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Pods at the limits of what Kubernetes accepts: each either translates to
// an application the Flightctl server accepts, carrying exactly what the pod
// asked for, or fails with an UnsupportedError naming the field to change.

// TestLongestNamesStayWithinFlightctlLimits builds the longest names the
// API server accepts (a 253-character pod name with dots, a 63-character
// namespace, container and volume names) and checks every name and path
// that reaches Flightctl or the device against its limit.
func TestLongestNamesStayWithinFlightctlLimits(t *testing.T) {
	label := func(c byte) string { return strings.Repeat(string(c), 63) }
	podName := label('a') + "." + label('b') + "." + label('c') + "." + strings.Repeat("d", 61)
	if len(podName) != 253 {
		t.Fatalf("test pod name is %d characters", len(podName))
	}
	for _, format := range []Format{FormatQuadlet, FormatCompose} {
		t.Run(string(format), func(t *testing.T) {
			pod := basePod(func(p *corev1.Pod) {
				p.Name, p.Namespace = podName, label('n')
				p.Spec.Containers[0].Name = label('x')
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: label('y'), Image: "busybox"})
				p.Spec.Volumes = []corev1.Volume{
					{Name: label('e'), VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					{Name: label('f'), VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
				}
				p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: label('e'), MountPath: "/e"}, {Name: label('f'), MountPath: "/f"}}
			})
			key := strings.Repeat("k", 253) // the longest ConfigMap key
			resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{label('n') + "/cm": {Data: map[string]string{key: "v"}}}}
			res := mustTranslate(t, pod, Options{Format: format, Resolver: resolver})
			assertServerValid(t, res)

			if n := len(res.Application.Name); n > 63 {
				t.Errorf("application name is %d characters, want at most 63", n)
			}
			for _, f := range res.Application.Inline {
				// The server refuses inline paths over 253 characters;
				// systemd refuses unit names over 255.
				if len(f.Path) > 253 {
					t.Errorf("inline path %q is %d characters", f.Path, len(f.Path))
				}
			}
			for _, f := range res.VolumeFiles {
				// Inline config paths are absolute, at most 4096 characters;
				// a file name is at most 255 bytes on Linux.
				if len(f.Path) > 4096 || len(f.Path[strings.LastIndexByte(f.Path, '/')+1:]) > 255 {
					t.Errorf("volume file path %q is too long", f.Path)
				}
			}
			wantHost := label('a')
			if format == FormatQuadlet {
				if got := inlineFile(t, res, podUnitName(res.Application.Name)); !strings.Contains(got, "--hostname="+wantHost+"\n") {
					t.Errorf("the pod unit does not set the 63-character hostname:\n%s", got)
				}
				if len(res.Application.Inline) != 4 { // .pod, one .volume, two .container
					t.Errorf("files = %v", inlinePaths(res))
				}
			} else if s := decodeComposeService(t, res, label('x')); s.Hostname != wantHost {
				t.Errorf("hostname = %q, want %q", s.Hostname, wantHost)
			}
		})
	}
}

// TestNamesKubernetesRefuses covers names the API server never stores
// (unicode, upper case, too long): translation refuses them rather than
// inventing a name, and AppName stays a valid name whatever it is given.
func TestNamesKubernetesRefuses(t *testing.T) {
	tests := []struct {
		name  string
		mod   func(*corev1.Pod)
		field string
	}{
		{"unicode pod name", func(p *corev1.Pod) { p.Name = "café-☕" }, "metadata.name"},
		{"pod name over 253", func(p *corev1.Pod) { p.Name = strings.Repeat("a", 254) }, "metadata.name"},
		{"unicode namespace", func(p *corev1.Pod) { p.Namespace = "prod-ü" }, "metadata.namespace"},
		{"unicode container name", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "wéb" }, "spec.containers[0].name"},
		{"container name over 63", func(p *corev1.Pod) { p.Spec.Containers[0].Name = strings.Repeat("c", 64) }, "spec.containers[0].name"},
		{"unicode env name", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "GRÜSSE", Value: "x"}} }, "spec.containers[0].env[0].name"},
		// Kubernetes 1.34+ accepts any printable ASCII but '=' in env
		// names; such names are refused here with the rule that applies.
		{"env name with a space", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MY VAR", Value: "x"}} }, "spec.containers[0].env[0].name"},
		{"env name starting with a digit", func(p *corev1.Pod) { p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "1ST", Value: "x"}} }, "spec.containers[0].env[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := basePod(tt.mod)
			if name := AppName(pod); !IsOwnedAppName(name) {
				t.Errorf("AppName = %q, not a valid owned name", name)
			}
			_, err := ToApplication(pod, Options{})
			assertUnsupported(t, err, tt.field)
		})
	}
}

// TestResourceLimitUnits feeds limits written in every unit Kubernetes
// accepts and checks what podman is told, in both formats.
func TestResourceLimitUnits(t *testing.T) {
	tests := []struct {
		name           string
		cpu, mem       string // "" leaves the limit out
		wantCPUs       string // podman --cpus; "" means none
		wantMem        string // podman --memory in bytes; "" means none
		wantErrField   string
		wantErrMention string
	}{
		{name: "no limits", wantCPUs: "", wantMem: ""},
		{name: "decimal cpu, binary memory", cpu: "0.5", mem: "100Mi", wantCPUs: "0.5", wantMem: "104857600"},
		{name: "milli cpu, decimal memory", cpu: "1500m", mem: "1G", wantCPUs: "1.5", wantMem: "1000000000"},
		{name: "exponents", cpu: "1e3", mem: "1e9", wantCPUs: "1000", wantMem: "1000000000"},
		{name: "kibibytes", cpu: "2", mem: "2048Ki", wantCPUs: "2", wantMem: "2097152"},
		{name: "fractional bytes round up", cpu: "250m", mem: "1.5Mi", wantCPUs: "0.25", wantMem: "1572864"},
		// The kernel refuses CFS quotas under 1ms per 100ms; the kubelet
		// raises such limits to 10m, and so does the translation.
		{name: "1m cpu is raised to 10m", cpu: "1m", wantCPUs: "0.01"},
		{name: "sub-milli cpu is raised to 10m", cpu: "1e-6", wantCPUs: "0.01"},
		{name: "10m cpu is kept", cpu: "10m", wantCPUs: "0.01"},
		// Limits beyond any device mean unlimited, and the kernel would
		// refuse the quota; MilliValue would even wrap past int64.
		{name: "cpu beyond any device is left out", cpu: "1e16", wantCPUs: ""},
		{name: "cpu past int64 milli-units is left out", cpu: "9223372036854775807", wantCPUs: ""},
		{name: "memory past int64 bytes is left out", mem: "1e19", wantMem: ""},
		{name: "8Ei memory is written", mem: "8Ei", wantMem: "9223372036854775807"},
		{name: "zero limits are no limits", cpu: "0", mem: "0", wantCPUs: "", wantMem: ""},
		{name: "milli memory is refused", mem: "500m", wantErrField: "spec.containers[0].resources.limits[memory]", wantErrMention: "for mebibytes write 500Mi"},
		{name: "kibibyte memory is refused", mem: "1Ki", wantErrField: "spec.containers[0].resources.limits[memory]", wantErrMention: "1024 bytes"},
		{name: "just under 1Mi is refused", mem: "1048575", wantErrField: "spec.containers[0].resources.limits[memory]", wantErrMention: "less than the 1Mi"},
		{name: "1Mi is accepted", mem: "1Mi", wantMem: "1048576"},
	}
	for _, tt := range tests {
		for _, format := range []Format{FormatQuadlet, FormatCompose} {
			t.Run(string(format)+"/"+tt.name, func(t *testing.T) {
				pod := basePod(func(p *corev1.Pod) {
					lim := corev1.ResourceList{}
					if tt.cpu != "" {
						lim[corev1.ResourceCPU] = resource.MustParse(tt.cpu)
					}
					if tt.mem != "" {
						lim[corev1.ResourceMemory] = resource.MustParse(tt.mem)
					}
					p.Spec.Containers[0].Resources.Limits = lim
					// Requests never reach the device, whatever their unit.
					p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("1n"), corev1.ResourceMemory: resource.MustParse("500m")}
				})
				res, err := ToApplication(pod, Options{Format: format})
				if tt.wantErrField != "" {
					assertUnsupported(t, err, tt.wantErrField)
					if !strings.Contains(err.Error(), tt.wantErrMention) {
						t.Errorf("message %q does not mention %q", err, tt.wantErrMention)
					}
					return
				}
				if err != nil {
					t.Fatalf("ToApplication: %v", err)
				}
				assertServerValid(t, res)
				cpus, mem := deviceLimits(t, res, format)
				if cpus != tt.wantCPUs || mem != tt.wantMem {
					t.Errorf("cpus=%q memory=%q, want cpus=%q memory=%q", cpus, mem, tt.wantCPUs, tt.wantMem)
				}
			})
		}
	}
}

// deviceLimits reads the cpu and memory limits of the pod's only
// container from the generated files.
func deviceLimits(t *testing.T, res *Result, format Format) (cpus, mem string) {
	t.Helper()
	if format == FormatCompose {
		s := decodeComposeService(t, res, "nginx")
		if s.Deploy == nil {
			return "", ""
		}
		return s.Deploy.Resources.Limits.CPUs, s.Deploy.Resources.Limits.Memory
	}
	for _, e := range quadletUnit(t, res, "nginx").Entries {
		if e.Key != "PodmanArgs" {
			continue
		}
		if v, ok := strings.CutPrefix(e.Value, "--cpus="); ok {
			cpus = v
		}
		if v, ok := strings.CutPrefix(e.Value, "--memory="); ok {
			mem = v
		}
	}
	return cpus, mem
}

// TestLargePods covers pods whose size, not their fields, is the problem:
// many containers, many or large environment variables, large volume
// files. Kubernetes stores pods up to about 1.5 MiB; Flightctl takes at
// most MaxInlineFileBytes per file, quadlet lines stop at 2000 bytes and
// the kernel passes no single string over 128 KiB to a process.
func TestLargePods(t *testing.T) {
	envs := func(n, size int) []corev1.EnvVar {
		out := make([]corev1.EnvVar, n)
		for i := range out {
			out[i] = corev1.EnvVar{Name: fmt.Sprintf("VAR_%04d", i), Value: strings.Repeat(string(rune('a'+i%26)), size)}
		}
		return out
	}
	containers := func(n int, env []corev1.EnvVar) []corev1.Container {
		out := make([]corev1.Container, n)
		for i := range out {
			out[i] = corev1.Container{Name: fmt.Sprintf("c%02d", i), Image: "busybox", Env: env}
		}
		return out
	}
	tests := []struct {
		name      string
		mod       func(*corev1.Pod)
		resolver  Resolver
		quadlet   string // "" translates; else the UnsupportedError field
		compose   string
		mentionsQ string // a word the quadlet error must contain
		mentionsC string
	}{
		{name: "20 containers", mod: func(p *corev1.Pod) { p.Spec.Containers = containers(20, nil) }},
		{name: "1000 variables of 100 bytes", mod: func(p *corev1.Pod) { p.Spec.Containers[0].Env = envs(1000, 100) }},
		{name: "1000 variables of 1000 bytes", mod: func(p *corev1.Pod) { p.Spec.Containers[0].Env = envs(1000, 1000) }},
		{
			name:    "one 100 KiB value",
			mod:     func(p *corev1.Pod) { p.Spec.Containers[0].Env = envs(1, 100<<10) },
			quadlet: "spec.containers[0].env[0]", mentionsQ: "use the compose format",
		},
		{
			name:    "one 200 KiB value exceeds what exec passes",
			mod:     func(p *corev1.Pod) { p.Spec.Containers[0].Env = envs(1, 200<<10) },
			quadlet: "spec.containers[0].env[0]", mentionsQ: "MAX_ARG_STRLEN",
			compose: "spec.containers[0].env[0]", mentionsC: "MAX_ARG_STRLEN",
		},
		{
			name:    "a 200 KiB argument",
			mod:     func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"-c", strings.Repeat("x", 200<<10)} },
			quadlet: "spec.containers[0].args[1]", mentionsQ: "MAX_ARG_STRLEN",
			compose: "spec.containers[0].args[1]", mentionsC: "MAX_ARG_STRLEN",
		},
		{
			// The API server stores this pod (1.2 MiB); no Flightctl
			// server stores its unit or compose file.
			name:    "1.2 MiB of environment in one container",
			mod:     func(p *corev1.Pod) { p.Spec.Containers[0].Env = envs(650, 1900) },
			quadlet: "spec.containers[0]", mentionsQ: "1048576 bytes Flightctl accepts",
			compose: "spec.containers", mentionsC: "1048576 bytes Flightctl accepts",
		},
		{
			// A shared ConfigMap multiplies: each quadlet file holds one
			// container's copy, the compose file holds all of them.
			name: "20 containers sharing 100 KiB of envFrom",
			mod: func(p *corev1.Pod) {
				p.Spec.Containers = containers(20, nil)
				for i := range p.Spec.Containers {
					p.Spec.Containers[i].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}}}
				}
			},
			resolver: StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/big": {Data: bigData(100, 1000)}}},
			compose:  "spec.containers", mentionsC: "use the quadlet format",
		},
		{
			name:     "900 KiB text ConfigMap volume",
			mod:      withVolume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "big"}}}),
			resolver: StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/big": {Data: map[string]string{"big.txt": strings.Repeat("t", 900<<10)}}}},
		},
		{
			// Binary content travels as base64, a third larger.
			name:     "800 KiB binary Secret volume",
			mod:      withVolume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "bin"}}),
			resolver: StaticResolver{Secrets: map[string]*corev1.Secret{"default/bin": {Data: map[string][]byte{"blob.bin": binary(800 << 10)}}}},
			quadlet:  "spec.volumes[0].secret", mentionsQ: "as base64",
			compose: "spec.volumes[0].secret", mentionsC: "as base64",
		},
		{
			name:     "700 KiB binary Secret volume",
			mod:      withVolume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "bin"}}),
			resolver: StaticResolver{Secrets: map[string]*corev1.Secret{"default/bin": {Data: map[string][]byte{"blob.bin": binary(700 << 10)}}}},
		},
	}
	for _, tt := range tests {
		for _, format := range []Format{FormatQuadlet, FormatCompose} {
			wantField, mention := tt.quadlet, tt.mentionsQ
			if format == FormatCompose {
				wantField, mention = tt.compose, tt.mentionsC
			}
			t.Run(string(format)+"/"+tt.name, func(t *testing.T) {
				pod := basePod(tt.mod)
				res, err := ToApplication(pod, Options{Format: format, Resolver: tt.resolver})
				if wantField != "" {
					assertUnsupported(t, err, wantField)
					if !strings.Contains(err.Error(), mention) {
						t.Errorf("message %q does not mention %q", err, mention)
					}
					return
				}
				if err != nil {
					t.Fatalf("ToApplication: %v", err)
				}
				assertServerValid(t, res)
				for _, f := range res.Application.Inline {
					if len(f.Content) > MaxInlineFileBytes {
						t.Errorf("%s is %d bytes", f.Path, len(f.Content))
					}
				}
				for _, f := range res.VolumeFiles {
					if n := len(f.Inline().Content); n > MaxInlineFileBytes {
						t.Errorf("volume file %s is %d bytes inline", f.Path, n)
					}
				}
				// Every container arrives with all of its environment.
				for _, c := range pod.Spec.Containers {
					want := len(c.Env)
					if len(c.EnvFrom) > 0 {
						want += 100
					}
					var got int
					if format == FormatQuadlet {
						got = len(quadletEnv(t, res, c.Name))
					} else {
						got = len(decodeComposeService(t, res, c.Name).Environment)
					}
					if got != want {
						t.Errorf("container %s has %d variables, want %d", c.Name, got, want)
					}
				}
				if format == FormatQuadlet && len(res.Application.Inline) != len(pod.Spec.Containers)+1 {
					t.Errorf("files = %d, want one per container plus the .pod", len(res.Application.Inline))
				}
			})
		}
	}
}

func withVolume(src corev1.VolumeSource) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: src}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	}
}

// bigData is n keys of size bytes each.
func bigData(n, size int) map[string]string {
	out := map[string]string{}
	for i := 0; i < n; i++ {
		out[fmt.Sprintf("KEY_%03d", i)] = strings.Repeat("v", size)
	}
	return out
}

// binary is n bytes that are not valid UTF-8.
func binary(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

func assertUnsupported(t *testing.T, err error, field string) {
	t.Helper()
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an UnsupportedError for %s", err, field)
	}
	if ue.Field != field {
		t.Errorf("field = %q, want %q (%v)", ue.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), field+" is not supported on Flightctl devices: ") || ue.Reason == "" {
		t.Errorf("message %q should start with the field and give a reason", err)
	}
}
