package translate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// hostileValues are strings that would add or alter directives if copied
// into a unit file or compose file without escaping.
var hostileValues = []string{
	"x\nExec=/bin/evil",
	"x\r\nExec=/bin/evil",
	"a%nb",
	"%h/%u %% %",
	"$HOME ${PATH} $$ $",
	"trailing backslash\\",
	"\\",
	"line\\\nExec=/bin/evil",
	"\"quoted\" 'single'",
	"[Service]\nExecStartPre=/bin/evil",
	"tab\there",
	"bell\a escape\x1b del\x7f",
	"; rm -rf /",
	"key: value\nimage: evil/evil",
	"- item\n  - nested",
	"{\"json\": true}",
	"#comment",
	"  leading and trailing spaces  ",
	"ünïcödé ✓ 中文",
	"\u2000unicode spaces\u00a0\u0085",
	"12:30",
	"on",
	"~",
	"",
}

func quadletUnit(t testing.TB, res *Result, container string) *Unit {
	t.Helper()
	u, err := ParseUnit(inlineFile(t, res, containerUnitName(res.Application.Name, container)))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// quadletEnv decodes the environment a quadlet container will receive.
func quadletEnv(t testing.TB, res *Result, container string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range quadletUnit(t, res, container).Entries {
		if e.Key != "Environment" {
			continue
		}
		words := quadletValue(t, e.Value)
		if len(words) != 1 {
			t.Fatalf("Environment=%q is %d words", e.Value, len(words))
		}
		k, v, _ := strings.Cut(words[0], "=")
		out[k] = v
	}
	return out
}

func quadletExec(t testing.TB, res *Result, container string) []string {
	t.Helper()
	for _, e := range quadletUnit(t, res, container).Entries {
		if e.Key == "Exec" {
			return quadletValue(t, e.Value)
		}
	}
	return nil
}

func quadletEntrypoint(t testing.TB, res *Result, container string) []string {
	t.Helper()
	for _, e := range quadletUnit(t, res, container).Entries {
		if e.Key == "Entrypoint" {
			lit, err := systemdLiteral(e.Value)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			if err := json.Unmarshal([]byte(lit), &out); err != nil {
				t.Fatalf("Entrypoint=%q: %v", e.Value, err)
			}
			return out
		}
	}
	return nil
}

// composeService decodes one service, undoing compose's $$ escaping the way
// compose interpolation does.
func decodeComposeService(t testing.TB, res *Result, name string) composeService {
	t.Helper()
	var cf composeFile
	if err := yaml.UnmarshalStrict([]byte(inlineFile(t, res, composeFileName)), &cf); err != nil {
		t.Fatal(err)
	}
	s := cf.Services[name]
	if s == nil {
		t.Fatalf("no service %q", name)
	}
	un := func(v string) string { return strings.ReplaceAll(v, "$$", "$") }
	for k, v := range s.Environment {
		s.Environment[k] = un(v)
	}
	for i := range s.Command {
		s.Command[i] = un(s.Command[i])
	}
	for i := range s.Entrypoint {
		s.Entrypoint[i] = un(s.Entrypoint[i])
	}
	return *s
}

func TestInjectionValuesRoundTrip(t *testing.T) {
	for _, v := range hostileValues {
		pod := basePod(func(p *corev1.Pod) {
			p.Labels["hostile"] = v
			p.Annotations = map[string]string{"hostile": v}
			c := &p.Spec.Containers[0]
			c.Command = []string{"/bin/sh", v}
			c.Args = []string{v, "-x"}
			c.Env = []corev1.EnvVar{
				{Name: "PLAIN", Value: v},
				{Name: "FROM_LABEL", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['hostile']"}}},
				{Name: "FROM_ANNOTATION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['hostile']"}}},
				{Name: "FROM_CM", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
			}
			c.EnvFrom = []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}
		})
		resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{"k": v}}}}
		// Literal values, command and args go through Kubernetes'
		// $(VAR) expansion ($$ becomes $); referenced values do not.
		lit := expandVars(v, func(string) (string, bool) { return "", false })
		wantEnv := map[string]string{"PLAIN": lit, "FROM_LABEL": v, "FROM_ANNOTATION": v, "FROM_CM": v, "CM_k": v}

		t.Run("quadlet/"+v, func(t *testing.T) {
			res, err := ToApplication(pod, Options{Resolver: resolver})
			if err != nil {
				var ue *UnsupportedError
				if v != "" || !errors.As(err, &ue) {
					t.Fatalf("unexpected error: %v", err)
				}
				// Quadlet cannot pass an empty argument; compose can.
				return
			}
			assertServerValid(t, res)
			assertNoInjection(t, res)
			if got := quadletEnv(t, res, "nginx"); !equalMaps(got, wantEnv) {
				t.Errorf("environment = %q, want %q", got, wantEnv)
			}
			if got := quadletExec(t, res, "nginx"); !equalSlices(got, []string{lit, "-x"}) {
				t.Errorf("Exec = %q", got)
			}
			if got := quadletEntrypoint(t, res, "nginx"); !equalSlices(got, []string{"/bin/sh", lit}) {
				t.Errorf("Entrypoint = %q", got)
			}
		})
		t.Run("compose/"+v, func(t *testing.T) {
			res := mustTranslate(t, pod, Options{Format: FormatCompose, Resolver: resolver})
			assertServerValid(t, res)
			assertNoInjection(t, res)
			s := decodeComposeService(t, res, "nginx")
			if !equalMaps(s.Environment, wantEnv) {
				t.Errorf("environment = %q, want %q", s.Environment, wantEnv)
			}
			if !equalSlices(s.Command, []string{lit, "-x"}) || !equalSlices(s.Entrypoint, []string{"/bin/sh", lit}) {
				t.Errorf("command %q entrypoint %q", s.Command, s.Entrypoint)
			}
		})
	}
}

// TestInjectionThroughNamesIsRefused covers fields that become part of
// file names, keys or tokens: they are validated, not escaped.
func TestInjectionThroughNamesIsRefused(t *testing.T) {
	evil := "x\nExec=/bin/evil"
	tests := map[string]struct {
		mod   func(*corev1.Pod)
		field string
	}{
		"container name":              {func(p *corev1.Pod) { p.Spec.Containers[0].Name = evil }, "spec.containers[0].name"},
		"container name with percent": {func(p *corev1.Pod) { p.Spec.Containers[0].Name = "a%n" }, "spec.containers[0].name"},
		"env name": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A\nExec", Value: "x"}}
		}, "spec.containers[0].env[0].name"},
		"env name with equals": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A=B", Value: "x"}}
		}, "spec.containers[0].env[0].name"},
		"image":     {func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx\nExec=/bin/evil" }, "spec.containers[0].image"},
		"namespace": {func(p *corev1.Pod) { p.Namespace = evil }, "metadata.namespace"},
		"pod name":  {func(p *corev1.Pod) { p.Name = evil }, "metadata.name"},
		"hostname":  {func(p *corev1.Pod) { p.Spec.Hostname = evil }, "spec.hostname"},
		"working dir": {func(p *corev1.Pod) { p.Spec.Containers[0].WorkingDir = "/srv\nExec=/bin/evil" },
			"spec.containers[0].workingDir"},
		"working dir with space": {func(p *corev1.Pod) { p.Spec.Containers[0].WorkingDir = "/my dir" }, "spec.containers[0].workingDir"},
		"mount path": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/data:rw\nExec=/bin/evil"}}
		}, "spec.containers[0].volumeMounts[0].mountPath"},
		"mount path with colon": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/data:/etc"}}
		}, "spec.containers[0].volumeMounts[0].mountPath"},
		"volume name": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d\nx", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, "spec.volumes[0].name"},
		"configmap item path escaping the volume": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Items: []corev1.KeyToPath{{Key: "k", Path: "../../etc/passwd"}},
			}}}}
		}, "spec.volumes[0].configMap.items[0].path"},
		"capability": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL\nAddCapability=SYS_ADMIN"}}}
		}, "spec.containers[0].securityContext.capabilities.drop[0]"},
		"env value with NUL": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "a\x00b"}}
		}, "spec.containers[0].env[0]"},
		"arg with invalid UTF-8":  {func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"\xff"} }, "spec.containers[0].args[0]"},
		"lone semicolon argument": {func(p *corev1.Pod) { p.Spec.Containers[0].Args = []string{"find", ";"} }, "spec.containers[0].args[1]"},
		"overlong value": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 3000)}}
		}, "spec.containers[0].env[0]"},
	}
	resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{"k": "v"}}}}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ToApplication(basePod(tt.mod), Options{Resolver: resolver})
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want an UnsupportedError", err)
			}
			if ue.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ue.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestComposeAcceptsWhatQuadletCannot(t *testing.T) {
	pod := basePod(func(p *corev1.Pod) {
		p.Spec.Containers[0].Args = []string{"", ";", strings.Repeat("y", 3000)}
	})
	res := mustTranslate(t, pod, Options{Format: FormatCompose})
	if got := decodeComposeService(t, res, "nginx").Command; !equalSlices(got, pod.Spec.Containers[0].Args) {
		t.Errorf("command = %q", got)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func equalSlices(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
