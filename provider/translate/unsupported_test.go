package translate

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestUnsupportedFields(t *testing.T) {
	emptyDir := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	tests := []struct {
		name  string
		mod   func(*corev1.Pod)
		field string
	}{
		{"hostPath volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}
		}, "spec.volumes[0].hostPath"},
		{"PVC volume after a supported one", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "ok", VolumeSource: emptyDir}, {Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
		}, "spec.volumes[1].persistentVolumeClaim"},
		{"image volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "i", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: "x"}}}}
		}, "spec.volumes[0].image"},
		{"volume without source", func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v"}} }, "spec.volumes[0]"},
		{"hugepages emptyDir", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}}}}
		}, "spec.volumes[0].emptyDir.medium"},
		{"service account token outside the injected volume", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "t"}}}}}}}
		}, "spec.volumes[0].projected.sources[0].serviceAccountToken"},
		{"init containers", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
		}, "spec.initContainers"},
		{"ephemeral containers", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "dbg"}}}
		}, "spec.ephemeralContainers"},
		{"hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, "spec.hostNetwork"},
		{"hostPID", func(p *corev1.Pod) { p.Spec.HostPID = true }, "spec.hostPID"},
		{"hostIPC", func(p *corev1.Pod) { p.Spec.HostIPC = true }, "spec.hostIPC"},
		{"shareProcessNamespace", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = ptr(true) }, "spec.shareProcessNamespace"},
		{"hostUsers false", func(p *corev1.Pod) { p.Spec.HostUsers = ptr(false) }, "spec.hostUsers"},
		{"windows", func(p *corev1.Pod) { p.Spec.OS = &corev1.PodOS{Name: corev1.Windows} }, "spec.os.name"},
		{"activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr(int64(5)) }, "spec.activeDeadlineSeconds"},
		{"hostAliases", func(p *corev1.Pod) { p.Spec.HostAliases = []corev1.HostAlias{{IP: "1.2.3.4"}} }, "spec.hostAliases"},
		{"runtimeClassName", func(p *corev1.Pod) { p.Spec.RuntimeClassName = ptr("kata") }, "spec.runtimeClassName"},
		{"pod resources", func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{}
			p.Spec.Resources.Limits = corev1.ResourceList{"cpu": qty("1")}
		}, "spec.resources"},
		{"sysctls", func(p *corev1.Pod) {
			p.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}
		}, "spec.securityContext.sysctls"},
		{"pod SELinux options", func(p *corev1.Pod) {
			p.Spec.SecurityContext.SELinuxOptions = &corev1.SELinuxOptions{Level: "s0"}
		}, "spec.securityContext.seLinuxOptions"},
		{"unconfined seccomp", func(p *corev1.Pod) {
			p.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}, "spec.securityContext.seccompProfile"},
		{"fsGroup with volumes", func(p *corev1.Pod) {
			p.Spec.SecurityContext.FSGroup = ptr(int64(2000))
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: emptyDir}}
		}, "spec.securityContext.fsGroup"},
		{"privileged", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr(true)}
		}, "spec.containers[0].securityContext.privileged"},
		{"capabilities add", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}}
		}, "spec.containers[0].securityContext.capabilities.add"},
		{"unmasked proc", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: ptr(corev1.UnmaskedProcMount)}
		}, "spec.containers[0].securityContext.procMount"},
		{"localhost AppArmor", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: ptr("x")}}
		}, "spec.containers[0].securityContext.appArmorProfile"},
		{"runAsNonRoot without runAsUser", func(p *corev1.Pod) {
			p.Spec.SecurityContext.RunAsNonRoot = ptr(true)
		}, "spec.securityContext.runAsNonRoot"},
		{"runAsNonRoot with root", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(0))}
		}, "spec.containers[0].securityContext.runAsNonRoot"},
		{"runAsGroup alone", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsGroup: ptr(int64(5))}
		}, "spec.containers[0].securityContext.runAsGroup"},
		{"lifecycle hooks", func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"x"}}}}
		}, "spec.containers[0].lifecycle"},
		{"volumeDevices", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "d", DevicePath: "/dev/xvda"}}
		}, "spec.containers[0].volumeDevices"},
		{"tty", func(p *corev1.Pod) { p.Spec.Containers[0].TTY = true }, "spec.containers[0].tty"},
		{"stdin", func(p *corev1.Pod) { p.Spec.Containers[0].Stdin = true }, "spec.containers[0].stdin"},
		{"sidecar restart policy", func(p *corev1.Pod) {
			p.Spec.Containers[0].RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		}, "spec.containers[0].restartPolicy"},
		{"GPU limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": qty("1")}
		}, "spec.containers[0].resources.limits[nvidia.com/gpu]"},
		{"ephemeral-storage limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceEphemeralStorage: qty("1Gi")}
		}, "spec.containers[0].resources.limits[ephemeral-storage]"},
		{"hugepages request", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"hugepages-2Mi": qty("2Mi")}
		}, "spec.containers[0].resources.requests[hugepages-2Mi]"},
		{"resource claims", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
		}, "spec.containers[0].resources.claims"},
		{"SCTP port", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 9, Protocol: corev1.ProtocolSCTP}}
		}, "spec.containers[0].ports[0].protocol"},
		{"conflicting host ports", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Image: "busybox",
				Ports: []corev1.ContainerPort{{ContainerPort: 81, HostPort: 8080}}})
		}, "spec.containers[1].ports[0]"},
		{"subPathExpr", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: emptyDir}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/d", SubPathExpr: "$(POD)"}}
		}, "spec.containers[0].volumeMounts[0].subPathExpr"},
		{"subPath on emptyDir", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: emptyDir}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/d", SubPath: "x"}}
		}, "spec.containers[0].volumeMounts[0].subPath"},
		{"subPath naming no file", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "c", MountPath: "/c", SubPath: "missing"}}
		}, "spec.containers[0].volumeMounts[0].subPath"},
		{"bidirectional propagation", func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: emptyDir}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/d", MountPropagation: ptr(corev1.MountPropagationBidirectional)}}
		}, "spec.containers[0].volumeMounts[0].mountPropagation"},
		{"mount of an unknown volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/d"}}
		}, "spec.containers[0].volumeMounts[0].name"},
		{"file env source", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FileKeyRef: &corev1.FileKeySelector{Key: "k"}}}}
		}, "spec.containers[0].env[0].valueFrom.fileKeyRef"},
		{"unknown downward field", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.phase"}}}}
		}, "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"},
		{"limit from unknown device capacity", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}}
		}, "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource"},
		{"container named like the pod unit", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "pod" }, "spec.containers[0].name"},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, "spec.containers"},
		{"short name image stays invalid", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "Nginx" }, "spec.containers[0].image"},
	}
	resolver := StaticResolver{ConfigMaps: map[string]*corev1.ConfigMap{"default/cm": {Data: map[string]string{"k": "v"}}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ToApplication(basePod(tt.mod), Options{Resolver: resolver})
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want an UnsupportedError", err)
			}
			if ue.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ue.Field, tt.field, err)
			}
			if ue.Reason == "" || !strings.HasPrefix(err.Error(), tt.field+" ") {
				t.Errorf("message %q should start with the field and give a reason", err)
			}
		})
	}
}

// TestKnowinglyIgnoredFields checks that fields the documentation lists as
// ignored do not make translation fail and do not change the output.
func TestKnowinglyIgnoredFields(t *testing.T) {
	plain := mustTranslate(t, basePod(), Options{})
	pod := basePod(withServiceAccountVolume, func(p *corev1.Pod) {
		s := &p.Spec
		s.NodeSelector = map[string]string{"flightctl.io/fleet": "edge"}
		s.Affinity = &corev1.Affinity{}
		s.PriorityClassName = "high"
		s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		s.AutomountServiceAccountToken = ptr(true)
		s.Subdomain = "svc"
		s.SchedulingGates = []corev1.PodSchedulingGate{{Name: "g"}}
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1}}
		s.Overhead = corev1.ResourceList{corev1.ResourceCPU: qty("10m")}
		c := &s.Containers[0]
		c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/"}}}
		c.StartupProbe = &corev1.Probe{}
		c.ImagePullPolicy = corev1.PullAlways
		c.ResizePolicy = []corev1.ContainerResizePolicy{{ResourceName: "cpu", RestartPolicy: corev1.NotRequired}}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: qty("1"), corev1.ResourceEphemeralStorage: qty("1Gi")}
	})
	res := mustTranslate(t, pod, Options{})
	if res.Hash != plain.Hash {
		t.Errorf("ignored fields changed the application:\n%s\nvs\n%s", renderGolden(res), renderGolden(plain))
	}
}

// TestFieldRulesCoverAPI walks every struct type reachable from PodSpec
// through honoured fields and requires a rule for each of its fields, so a
// k8s.io/api upgrade that adds a field is classified by a person instead of
// being refused at runtime only.
func TestFieldRulesCoverAPI(t *testing.T) {
	leaf := map[reflect.Type]bool{reflect.TypeFor[resource.Quantity](): true}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || leaf[typ] || seen[typ] {
			return
		}
		seen[typ] = true
		rules, ok := fieldRules[typ]
		if !ok {
			t.Errorf("%s (%s) has no field rules", path, typ)
			return
		}
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			rule, ok := rules[f.Name]
			if !ok {
				if defaultRejectReason[typ] != "" {
					continue
				}
				t.Errorf("%s.%s (%s) is not classified in fields.go", path, f.Name, typ)
				continue
			}
			if rule.policy == honour {
				walk(f.Type, path+"."+f.Name)
			}
		}
		for name := range rules {
			if _, ok := typ.FieldByName(name); !ok {
				t.Errorf("rule for %s.%s names a field that does not exist", typ, name)
			}
		}
	}
	walk(reflect.TypeFor[corev1.PodSpec](), "PodSpec")
}
