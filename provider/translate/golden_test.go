package translate

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

// goldenResolver serves the objects the golden pods refer to.
var goldenResolver = StaticResolver{
	ConfigMaps: map[string]*corev1.ConfigMap{
		"shop/frontend-config": {Data: map[string]string{
			"nginx.conf": "server {\n  listen 8080;\n}\n",
			"LOG_LEVEL":  "debug",
			"mode":       "edge",
		}},
	},
	Secrets: map[string]*corev1.Secret{
		"shop/db": {Data: map[string][]byte{
			"password": []byte("s3cr%t$HOME"),
			"tls.key":  {0xff, 0x00, 0x10},
		}},
	},
}

func goldenPods() map[string]*corev1.Pod {
	return map[string]*corev1.Pod{
		// The shape of a typical Deployment pod after admission.
		"simple": basePod(withServiceAccountVolume, func(p *corev1.Pod) {
			c := &p.Spec.Containers[0]
			c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
			c.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello world"}}
			c.Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: qty("500m"), corev1.ResourceMemory: qty("128Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: qty("100m"), corev1.ResourceMemory: qty("64Mi")},
			}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}),
		// Two containers with the features most pods combine.
		"sidecar": basePod(withServiceAccountVolume, func(p *corev1.Pod) {
			p.Namespace, p.Name = "shop", "frontend-7d9c5-abcde"
			p.Annotations = map[string]string{"team": "edge"}
			p.Spec.Hostname = "frontend"
			p.Spec.SecurityContext = &corev1.PodSecurityContext{
				RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(1000)), RunAsNonRoot: ptr(true),
				SupplementalGroups: []int64{2000},
				SeccompProfile:     &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			}
			p.Spec.Volumes = append(p.Spec.Volumes,
				corev1.Volume{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "frontend-config"},
					Items:                []corev1.KeyToPath{{Key: "nginx.conf", Path: "nginx.conf"}},
				}}},
				corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: "db", DefaultMode: ptr(int32(0o400)),
					Items: []corev1.KeyToPath{{Key: "tls.key", Path: "keys/tls.key"}},
				}}},
				corev1.Volume{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
				}}},
				corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					Medium: corev1.StorageMediumMemory, SizeLimit: ptr(qty("64Mi")),
				}}},
			)
			web := &p.Spec.Containers[0]
			web.Image = "quay.io/acme/frontend:v2"
			web.Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 80}, {ContainerPort: 8443, HostPort: 443, HostIP: "192.168.1.10"}}
			web.EnvFrom = []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "frontend-config"}}}}
			web.Env = []corev1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "TEAM", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['team']"}}},
				{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}},
				{Name: "MEM_LIMIT_MI", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: qty("1Mi")}}},
				{Name: "LISTEN", Value: "0.0.0.0:$(PORT)"},
			}
			web.Command = []string{"/usr/sbin/nginx"}
			web.Args = []string{"-g", "daemon off; pid /tmp/nginx.pid;", "-c", "/etc/nginx/nginx.conf"}
			web.WorkingDir = "/srv"
			web.VolumeMounts = append(web.VolumeMounts,
				corev1.VolumeMount{Name: "config", MountPath: "/etc/nginx/nginx.conf", SubPath: "nginx.conf"},
				corev1.VolumeMount{Name: "tls", MountPath: "/etc/tls"},
				corev1.VolumeMount{Name: "cache", MountPath: "/var/cache/nginx"},
				corev1.VolumeMount{Name: "podinfo", MountPath: "/etc/podinfo"},
			)
			web.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: qty("1500m"), corev1.ResourceMemory: qty("256Mi")}
			web.SecurityContext = &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr(false),
				ReadOnlyRootFilesystem:   ptr(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
				Name:  "log-shipper",
				Image: "fluent/fluent-bit",
				Args:  []string{"--input=tail", "--path=/var/cache/nginx/*.log", "--tag=$(POD_NAME)"},
				Env: []corev1.EnvVar{
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "frontend-config"}, Key: "mode"}}},
					{Name: "OPTIONAL", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "x", Optional: ptr(true)}}},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "cache", MountPath: "/var/cache/nginx", ReadOnly: true},
					{Name: "scratch", MountPath: "/scratch"},
				},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: qty("32Mi")}},
			})
		}),
		// A run-to-completion pod whose arguments and values carry every
		// character that is special to systemd, quadlet or compose.
		"job-special-chars": basePod(func(p *corev1.Pod) {
			p.Name = "backup.nightly"
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
			p.Spec.TerminationGracePeriodSeconds = ptr(int64(120))
			c := &p.Spec.Containers[0]
			c.Image = "registry.example.com:5000/tools/backup@sha256:" + strings.Repeat("ab", 32)
			c.Command = []string{"/bin/sh", "-c"}
			c.Args = []string{"echo \"100%\" done > $HOME/log; printf 'a\\tb\\n'\nExec=/bin/evil", "%n", "$(NOT_DEFINED)", "$$(ESCAPED)"}
			c.Env = []corev1.EnvVar{
				{Name: "MULTILINE", Value: "line1\nline2\n[Service]\nExecStartPre=/bin/evil"},
				{Name: "QUOTES", Value: `it's "quoted" \ back\slash\`},
				{Name: "SPECIFIERS", Value: "%h %n ${HOME} $HOME $$"},
				{Name: "UNICODE", Value: "grüße ✓"},
			}
		}),
	}
}

func renderGolden(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# application %s (%s)\n", res.Application.Name, res.Application.AppType)
	for _, f := range res.Application.Inline {
		fmt.Fprintf(&b, "--- inline %s\n%s", f.Path, f.Content)
	}
	for _, f := range res.VolumeFiles {
		in := f.Inline()
		fmt.Fprintf(&b, "--- volume file %s mode %#o encoding %q\n%s\n", f.Path, f.Mode, in.ContentEncoding, in.Content)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(&b, "--- warning\n%s\n", w)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for name, pod := range goldenPods() {
		for _, format := range []Format{FormatQuadlet, FormatCompose} {
			t.Run(name+"/"+string(format), func(t *testing.T) {
				res := mustTranslate(t, pod, Options{Format: format, Resolver: goldenResolver, DeviceName: "edge-1", DeviceIP: "10.0.0.7"})
				got := renderGolden(res)
				file := filepath.Join("testdata", "golden", name+"."+string(format)+".golden")
				if *update {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run go test -run TestGolden -update)", err)
				}
				if got != string(want) {
					t.Errorf("output differs from %s (run with -update after checking):\n%s", file, got)
				}
				assertServerValid(t, res)
				assertNoInjection(t, res)
			})
		}
	}
}
