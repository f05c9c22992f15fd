package translate

import (
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// This file is the explicit allow-list of Kubernetes API fields. Every field
// of every struct listed in fieldRules is classified; translation refuses a
// pod that sets (to a non-zero value) any field that is rejected or that this
// list does not know. Unknown fields fail closed so that a k8s.io/api upgrade
// adding, say, a new volume type or security knob cannot be dropped silently;
// TestFieldRulesCoverAPI then names the fields to classify.

type fieldPolicy int

const (
	// honour: translated; the translation code validates the value and
	// rejects values it cannot express (e.g. privileged: true).
	honour fieldPolicy = iota + 1
	// ignore: knowingly not enforced on the device; the package
	// documentation lists these and says why.
	ignore
	// reject: cannot be honoured at all; the rule's reason is reported.
	reject
)

type fieldRule struct {
	policy fieldPolicy
	reason string
}

var (
	honoured = fieldRule{policy: honour}
	ignored  = fieldRule{policy: ignore}
)

func rejected(reason string) fieldRule { return fieldRule{policy: reject, reason: reason} }

const volumeTypesReason = "only configMap, secret, emptyDir, downwardAPI and projected volumes can be provided on Flightctl devices"

// fieldRules maps a struct type to the rule for each of its Go fields.
var fieldRules = map[reflect.Type]map[string]fieldRule{
	reflect.TypeFor[corev1.PodSpec](): {
		"Volumes":                       honoured,
		"InitContainers":                rejected("init containers are not supported yet"),
		"Containers":                    honoured,
		"EphemeralContainers":           rejected("ephemeral (debug) containers cannot be attached to device workloads"),
		"RestartPolicy":                 honoured,
		"TerminationGracePeriodSeconds": honoured,
		"ActiveDeadlineSeconds":         rejected("active deadlines are not enforced on devices"),
		"DNSPolicy":                     ignored,
		"NodeSelector":                  ignored,
		"ServiceAccountName":            ignored,
		"DeprecatedServiceAccount":      ignored,
		"AutomountServiceAccountToken":  ignored,
		"NodeName":                      ignored,
		"HostNetwork":                   rejected("host networking is not allowed for device workloads"),
		"HostPID":                       rejected("sharing the device's PID namespace is not allowed"),
		"HostIPC":                       rejected("sharing the device's IPC namespace is not allowed"),
		"ShareProcessNamespace":         honoured,
		"SecurityContext":               honoured,
		"ImagePullSecrets":              ignored,
		"Hostname":                      honoured,
		"Subdomain":                     ignored,
		"Affinity":                      ignored,
		"SchedulerName":                 ignored,
		"Tolerations":                   ignored,
		"HostAliases":                   rejected("/etc/hosts entries are not supported yet"),
		"PriorityClassName":             ignored,
		"Priority":                      ignored,
		"DNSConfig":                     rejected("custom DNS configuration is not supported yet"),
		"ReadinessGates":                honoured,
		"RuntimeClassName":              rejected("devices have a single podman runtime"),
		"EnableServiceLinks":            ignored,
		"PreemptionPolicy":              ignored,
		"Overhead":                      ignored,
		"TopologySpreadConstraints":     ignored,
		"SetHostnameAsFQDN":             honoured,
		"OS":                            honoured,
		"HostUsers":                     honoured,
		"SchedulingGates":               ignored,
		"ResourceClaims":                rejected("dynamic resource allocation is not available on devices"),
		"Resources":                     rejected("pod-level resources are not supported yet; set limits on each container"),
		"HostnameOverride":              rejected("hostname overrides are not supported yet; use spec.hostname"),
		"SchedulingGroup":               ignored,
		"EvictionResponders":            rejected("eviction responders are not supported"),
	},
	reflect.TypeFor[corev1.Container](): {
		"Name":                     honoured,
		"Image":                    honoured,
		"Command":                  honoured,
		"Args":                     honoured,
		"WorkingDir":               honoured,
		"Ports":                    honoured,
		"EnvFrom":                  honoured,
		"Env":                      honoured,
		"Resources":                honoured,
		"ResizePolicy":             ignored,
		"RestartPolicy":            rejected("per-container restart policies (sidecars) are not supported"),
		"RestartPolicyRules":       rejected("per-container restart rules are not supported"),
		"VolumeMounts":             honoured,
		"VolumeDevices":            rejected("raw block devices are not supported"),
		"LivenessProbe":            ignored,
		"ReadinessProbe":           ignored,
		"StartupProbe":             ignored,
		"Lifecycle":                rejected("postStart and preStop hooks are not supported"),
		"TerminationMessagePath":   ignored,
		"TerminationMessagePolicy": ignored,
		"ImagePullPolicy":          ignored,
		"SecurityContext":          honoured,
		"Stdin":                    rejected("interactive containers (stdin) are not supported"),
		"StdinOnce":                rejected("interactive containers (stdinOnce) are not supported"),
		"TTY":                      rejected("interactive containers (tty) are not supported"),
	},
	reflect.TypeFor[corev1.SecurityContext](): {
		"Capabilities":             honoured,
		"Privileged":               honoured,
		"SELinuxOptions":           rejected("custom SELinux labels are not supported"),
		"WindowsOptions":           rejected("devices run Linux containers"),
		"RunAsUser":                honoured,
		"RunAsGroup":               honoured,
		"RunAsNonRoot":             honoured,
		"ReadOnlyRootFilesystem":   honoured,
		"AllowPrivilegeEscalation": honoured,
		"ProcMount":                honoured,
		"SeccompProfile":           honoured,
		"AppArmorProfile":          honoured,
	},
	reflect.TypeFor[corev1.PodSecurityContext](): {
		"SELinuxOptions":           rejected("custom SELinux labels are not supported"),
		"WindowsOptions":           rejected("devices run Linux containers"),
		"RunAsUser":                honoured,
		"RunAsGroup":               honoured,
		"RunAsNonRoot":             honoured,
		"SupplementalGroups":       honoured,
		"SupplementalGroupsPolicy": honoured,
		"FSGroup":                  honoured,
		"Sysctls":                  rejected("sysctls are not supported"),
		"FSGroupChangePolicy":      ignored,
		"SeccompProfile":           honoured,
		"AppArmorProfile":          honoured,
		"SELinuxChangePolicy":      ignored,
	},
	reflect.TypeFor[corev1.Capabilities](): {
		"Add":  rejected("adding Linux capabilities is not allowed for device workloads"),
		"Drop": honoured,
	},
	reflect.TypeFor[corev1.Volume](): {
		"Name":         honoured,
		"VolumeSource": honoured,
	},
	reflect.TypeFor[corev1.VolumeSource](): {
		"ConfigMap":   honoured,
		"Secret":      honoured,
		"EmptyDir":    honoured,
		"DownwardAPI": honoured,
		"Projected":   honoured,
		// Everything else (hostPath, persistentVolumeClaim, nfs, csi,
		// ephemeral, image, ...) falls under the default reason.
	},
	reflect.TypeFor[corev1.VolumeMount](): {
		"Name":              honoured,
		"ReadOnly":          honoured,
		"RecursiveReadOnly": honoured,
		"MountPath":         honoured,
		"SubPath":           honoured,
		"MountPropagation":  honoured,
		"SubPathExpr":       rejected("subPathExpr is not supported"),
		"BindMountOptions":  rejected("custom bind mount options are not supported"),
	},
	reflect.TypeFor[corev1.EnvVar](): {
		"Name":      honoured,
		"Value":     honoured,
		"ValueFrom": honoured,
	},
	reflect.TypeFor[corev1.EnvVarSource](): {
		"FieldRef":         honoured,
		"ResourceFieldRef": honoured,
		"ConfigMapKeyRef":  honoured,
		"SecretKeyRef":     honoured,
		"FileKeyRef":       rejected("environment variables from files are not supported"),
	},
	reflect.TypeFor[corev1.EnvFromSource](): {
		"Prefix":       honoured,
		"ConfigMapRef": honoured,
		"SecretRef":    honoured,
	},
	reflect.TypeFor[corev1.ContainerPort](): {
		"Name":          ignored,
		"HostPort":      honoured,
		"ContainerPort": honoured,
		"Protocol":      honoured,
		"HostIP":        honoured,
	},
	reflect.TypeFor[corev1.ResourceRequirements](): {
		"Limits":   honoured,
		"Requests": honoured,
		"Claims":   rejected("dynamic resource allocation is not available on devices"),
	},
	reflect.TypeFor[corev1.EmptyDirVolumeSource](): {
		"Medium":    honoured,
		"SizeLimit": honoured,
		"Mode":      rejected("setting the permissions of emptyDir volumes is not supported"),
	},
	reflect.TypeFor[corev1.ConfigMapVolumeSource](): {
		"LocalObjectReference": honoured,
		"Items":                honoured,
		"DefaultMode":          honoured,
		"Optional":             honoured,
		"DefaultUser":          rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.SecretVolumeSource](): {
		"SecretName":  honoured,
		"Items":       honoured,
		"DefaultMode": honoured,
		"Optional":    honoured,
		"DefaultUser": rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.DownwardAPIVolumeSource](): {
		"Items":       honoured,
		"DefaultMode": honoured,
		"DefaultUser": rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.DownwardAPIVolumeFile](): {
		"Path":             honoured,
		"FieldRef":         honoured,
		"ResourceFieldRef": honoured,
		"Mode":             honoured,
		"User":             rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.ProjectedVolumeSource](): {
		"Sources":     honoured,
		"DefaultMode": honoured,
		"DefaultUser": rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.VolumeProjection](): {
		"Secret":              honoured,
		"DownwardAPI":         honoured,
		"ConfigMap":           honoured,
		"ServiceAccountToken": rejected("service account tokens are not provided to devices"),
		"ClusterTrustBundle":  rejected("cluster trust bundles are not provided to devices"),
		"PodCertificate":      rejected("pod certificates are not provided to devices"),
	},
	reflect.TypeFor[corev1.ConfigMapProjection](): {
		"LocalObjectReference": honoured,
		"Items":                honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.SecretProjection](): {
		"LocalObjectReference": honoured,
		"Items":                honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.DownwardAPIProjection](): {
		"Items": honoured,
	},
	reflect.TypeFor[corev1.KeyToPath](): {
		"Key":  honoured,
		"Path": honoured,
		"Mode": honoured,
		"User": rejected("setting the owner of volume files is not supported"),
	},
	reflect.TypeFor[corev1.ObjectFieldSelector](): {
		"APIVersion": honoured,
		"FieldPath":  honoured,
	},
	reflect.TypeFor[corev1.ResourceFieldSelector](): {
		"ContainerName": honoured,
		"Resource":      honoured,
		"Divisor":       honoured,
	},
	reflect.TypeFor[corev1.ConfigMapKeySelector](): {
		"LocalObjectReference": honoured,
		"Key":                  honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.SecretKeySelector](): {
		"LocalObjectReference": honoured,
		"Key":                  honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.ConfigMapEnvSource](): {
		"LocalObjectReference": honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.SecretEnvSource](): {
		"LocalObjectReference": honoured,
		"Optional":             honoured,
	},
	reflect.TypeFor[corev1.LocalObjectReference](): {
		"Name": honoured,
	},
	reflect.TypeFor[corev1.SeccompProfile](): {
		"Type":             honoured,
		"LocalhostProfile": honoured,
	},
	reflect.TypeFor[corev1.AppArmorProfile](): {
		"Type":             honoured,
		"LocalhostProfile": honoured,
	},
	reflect.TypeFor[corev1.PodOS](): {
		"Name": honoured,
	},
	reflect.TypeFor[corev1.PodReadinessGate](): {
		"ConditionType": honoured,
	},
}

// defaultRejectReason applies to fields a struct's rule map does not list.
var defaultRejectReason = map[reflect.Type]string{
	reflect.TypeFor[corev1.VolumeSource](): volumeTypesReason,
}

// checkFields walks v (a struct, or a pointer to one) and everything below it
// that fieldRules knows, and returns an UnsupportedError for the first
// non-zero field that is rejected or unknown. path is the Kubernetes field
// path of v, e.g. "spec" or "spec.containers[0]".
func checkFields(path string, v any) error {
	return checkValue(path, reflect.ValueOf(v))
}

func checkValue(path string, v reflect.Value) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkValue(path, v.Elem())
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := checkValue(fmt.Sprintf("%s[%d]", path, i), v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	rules, known := fieldRules[v.Type()]
	if !known {
		// Leaf types (resource.Quantity, metav1.Time, ...) carry no
		// policy of their own.
		return nil
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fv := v.Field(i)
		if !f.IsExported() || isEmpty(fv) {
			continue
		}
		fieldPath := path
		if name := jsonName(f); name != "" {
			fieldPath = path + "." + name
		}
		rule, ok := rules[f.Name]
		if !ok {
			reason := defaultRejectReason[t]
			if reason == "" {
				reason = "this field is not known to this version of vk-flightctl"
			}
			return &UnsupportedError{Field: fieldPath, Reason: reason}
		}
		switch rule.policy {
		case reject:
			return &UnsupportedError{Field: fieldPath, Reason: rule.reason}
		case ignore:
			continue
		}
		if err := checkValue(fieldPath, fv); err != nil {
			return err
		}
	}
	return nil
}

// isEmpty treats empty slices and maps like nil ones: the API server and
// clients produce both for "not set".
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	default:
		return v.IsZero()
	}
}

// jsonName returns the wire name of a field, or "" for inlined structs so
// that their fields appear directly under the parent path.
func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return f.Name
	}
	if name == "" {
		if f.Anonymous {
			return ""
		}
		return f.Name
	}
	return name
}
