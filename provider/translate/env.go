package translate

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// envNameRE is Kubernetes' classic rule for environment variable names.
// Newer API servers accept any printable ASCII except '=', but such names
// could carry quotes, '%' or '$' into unit files for no practical benefit,
// so they are refused.
var envNameRE = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

type envVar struct {
	name, value string
	field       string // where the value was defined, for messages
}

// resolveEnv computes a container's environment in Kubernetes order: envFrom
// sources first, then env entries, a later definition replacing an earlier
// one. Literal env values may refer to variables defined before them with
// $(NAME), as in Kubernetes.
func (t *translator) resolveEnv(ci int, c *corev1.Container) ([]envVar, error) {
	var out []envVar
	index := map[string]int{}
	set := func(name, value, field string) {
		if i, ok := index[name]; ok {
			out[i].value, out[i].field = value, field
			return
		}
		index[name] = len(out)
		out = append(out, envVar{name: name, value: value, field: field})
	}
	lookup := func(name string) (string, bool) {
		if i, ok := index[name]; ok {
			return out[i].value, true
		}
		return "", false
	}
	base := fmt.Sprintf("spec.containers[%d]", ci)

	for j, from := range c.EnvFrom {
		field := fmt.Sprintf("%s.envFrom[%d]", base, j)
		var obj *objectData
		var err error
		switch {
		case from.ConfigMapRef != nil:
			obj, err = t.lookupObject(field+".configMapRef", "configmap", from.ConfigMapRef.Name, deref(from.ConfigMapRef.Optional))
		case from.SecretRef != nil:
			obj, err = t.lookupObject(field+".secretRef", "secret", from.SecretRef.Name, deref(from.SecretRef.Optional))
		default:
			return nil, unsupported(field, "envFrom needs a configMapRef or secretRef")
		}
		if err != nil {
			return nil, err
		}
		if obj == nil {
			continue
		}
		for _, key := range sortedKeys(obj.data) {
			name := from.Prefix + key
			if !envNameRE.MatchString(name) {
				// Kubernetes skips such keys too (with an event).
				t.warnf("%s: key %q of the %s is not a valid environment variable name; skipped", field, key, obj.kind)
				continue
			}
			value := string(obj.data[key])
			if err := checkText(field, value); err != nil {
				return nil, err
			}
			set(name, value, field)
		}
	}

	for j := range c.Env {
		e := &c.Env[j]
		field := fmt.Sprintf("%s.env[%d]", base, j)
		if !envNameRE.MatchString(e.Name) {
			return nil, unsupported(field+".name", "%q is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)", e.Name)
		}
		var value string
		if e.ValueFrom == nil {
			value = expandVars(e.Value, lookup)
		} else {
			v, skip, err := t.envSource(ci, c, field+".valueFrom", e.ValueFrom)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			value = v
		}
		if err := checkText(field, value); err != nil {
			return nil, err
		}
		set(e.Name, value, field)
	}
	for _, e := range out {
		if err := checkExecString(e.field, fmt.Sprintf("environment variable %s", e.name), len(e.name)+1+len(e.value)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// envSource resolves one valueFrom. skip is true for a missing optional
// ConfigMap/Secret key, which Kubernetes leaves unset.
func (t *translator) envSource(ci int, c *corev1.Container, field string, src *corev1.EnvVarSource) (value string, skip bool, err error) {
	switch {
	case src.FieldRef != nil:
		v, err := t.fieldRefValue(field+".fieldRef", src.FieldRef, false)
		return v, false, err
	case src.ResourceFieldRef != nil:
		v, err := t.resourceFieldValue(field+".resourceFieldRef", src.ResourceFieldRef, c)
		return v, false, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		return t.keyValue(field+".configMapKeyRef", "configmap", ref.Name, ref.Key, deref(ref.Optional))
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		return t.keyValue(field+".secretKeyRef", "secret", ref.Name, ref.Key, deref(ref.Optional))
	}
	return "", false, unsupported(field, "valueFrom needs fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef")
}

func (t *translator) keyValue(field, kind, name, key string, optional bool) (string, bool, error) {
	obj, err := t.lookupObject(field, kind, name, optional)
	if err != nil {
		return "", false, err
	}
	if obj == nil {
		return "", true, nil
	}
	v, ok := obj.data[key]
	if !ok {
		if optional {
			t.warnf("%s: %s %s/%s has no key %q; skipped because the reference is optional", field, kind, t.pod.Namespace, name, key)
			return "", true, nil
		}
		return "", false, fmt.Errorf("%s: %s %s/%s has no key %q; add it or mark the reference optional: %w",
			field, kind, t.pod.Namespace, name, key, ErrMissingReference)
	}
	return string(v), false, nil
}

// fieldRefValue implements the downward API for what a pod on a device can
// know. inVolume selects Kubernetes' stricter volume rules, where only
// metadata may be projected but whole label and annotation maps are allowed.
func (t *translator) fieldRefValue(field string, ref *corev1.ObjectFieldSelector, inVolume bool) (string, error) {
	if ref.APIVersion != "" && ref.APIVersion != "v1" {
		return "", unsupported(field+".apiVersion", "only apiVersion v1 is supported, got %q", ref.APIVersion)
	}
	p := ref.FieldPath
	pod := t.pod
	if key, ok := subscript(p, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(p, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch p {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	}
	if inVolume {
		switch p {
		case "metadata.labels":
			return formatMap(pod.Labels), nil
		case "metadata.annotations":
			return formatMap(pod.Annotations), nil
		}
		return "", unsupported(field+".fieldPath", "%q cannot be projected into a volume", p)
	}
	switch p {
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP", "status.podIPs", "status.hostIPs":
		// Pods share the device's network namespace through published
		// ports, so the device address is both the pod and the host IP.
		if t.opts.DeviceIP == "" {
			return "", fmt.Errorf("%s: %s is requested but the IP address of device %q is unknown: %w",
				field, p, t.opts.DeviceName, ErrDeviceIPUnknown)
		}
		return t.opts.DeviceIP, nil
	}
	return "", unsupported(field+".fieldPath", "%q is not available on Flightctl devices", p)
}

// subscript parses "prefix['key']".
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	key, ok := strings.CutSuffix(rest, "']")
	return key, ok
}

// formatMap renders labels or annotations the way the kubelet writes them
// into downward API files: sorted key="value" lines, Go-quoted.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// resourceFieldValue follows the kubelet: values are rounded up in units of
// the divisor, and an unset limit falls back to the node's allocatable,
// here the device's (Options.Allocatable).
func (t *translator) resourceFieldValue(field string, ref *corev1.ResourceFieldSelector, self *corev1.Container) (string, error) {
	c := self
	if ref.ContainerName != "" {
		c = nil
		for i := range t.pod.Spec.Containers {
			if t.pod.Spec.Containers[i].Name == ref.ContainerName {
				c = &t.pod.Spec.Containers[i]
			}
		}
		if c == nil {
			return "", unsupported(field+".containerName", "no container named %q", ref.ContainerName)
		}
	}
	if c == nil {
		return "", unsupported(field+".containerName", "a containerName is required here")
	}
	kind, res, ok := strings.Cut(ref.Resource, ".")
	name := corev1.ResourceName(res)
	if !ok || (kind != "limits" && kind != "requests") ||
		(name != corev1.ResourceCPU && name != corev1.ResourceMemory && name != corev1.ResourceEphemeralStorage) {
		return "", unsupported(field+".resource", "%q is not supported; use limits or requests of cpu, memory or ephemeral-storage", ref.Resource)
	}
	var q resource.Quantity
	var found bool
	if kind == "limits" {
		q, found = c.Resources.Limits[name]
		if !found {
			q, found = t.opts.Allocatable[name]
		}
		if !found {
			return "", unsupported(field+".resource",
				"container %q has no %s limit and the allocatable %s of device %q is unknown; set the limit", c.Name, name, name, t.opts.DeviceName)
		}
	} else {
		q, found = c.Resources.Requests[name]
		if !found {
			// Kubernetes defaults requests to limits.
			q = c.Resources.Limits[name]
		}
	}
	divisor := ref.Divisor
	if name == corev1.ResourceCPU {
		d := divisor.MilliValue()
		if d <= 0 {
			d = 1000
		}
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(d)))), nil
	}
	d := divisor.Value()
	if d <= 0 {
		d = 1
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(d)))), nil
}

// expandVars implements Kubernetes' $(VAR) syntax: $(NAME) is replaced when
// NAME is defined and kept verbatim otherwise, $$ is an escaped '$', and any
// other '$' is literal. Shell syntax ($NAME, ${NAME}) is not touched.
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(s[i+1])
			i++
		}
	}
	return b.String()
}

// checkText refuses strings no container runtime can receive intact: NUL
// cannot cross exec(2), and invalid UTF-8 would be rewritten by the JSON and
// YAML encoders on the way to the device.
func checkText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return unsupported(field, "the value contains a NUL character")
	}
	if !utf8.ValidString(s) {
		return unsupported(field, "the value is not valid UTF-8")
	}
	return nil
}

func deref(b *bool) bool { return b != nil && *b }

func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
