package translate

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// basePod is what the API server stores for a minimal pod, defaults
// included, so tests exercise the fields real pods carry.
func basePod(mods ...func(*corev1.Pod)) *corev1.Pod {
	grace := int64(30)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "web",
			Namespace: "default",
			UID:       types.UID("6f1c2a52-2d7e-4f3e-9d0b-6a1f3c1d2e4f"),
			Labels:    map[string]string{"app": "web"},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:                     "nginx",
				Image:                    "nginx:alpine",
				TerminationMessagePath:   "/dev/termination-log",
				TerminationMessagePolicy: corev1.TerminationMessageReadFile,
				ImagePullPolicy:          corev1.PullIfNotPresent,
			}},
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: &grace,
			DNSPolicy:                     corev1.DNSClusterFirst,
			ServiceAccountName:            "default",
			DeprecatedServiceAccount:      "default",
			NodeName:                      "vk-flightctl-edge",
			SecurityContext:               &corev1.PodSecurityContext{},
			SchedulerName:                 corev1.DefaultSchedulerName,
			Tolerations: []corev1.Toleration{{
				Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute,
			}},
			EnableServiceLinks: ptr(true),
			PreemptionPolicy:   ptr(corev1.PreemptLowerPriority),
			Priority:           ptr(int32(0)),
		},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

// withServiceAccountVolume adds what the ServiceAccount admission plugin
// injects into every pod.
func withServiceAccountVolume(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{
		Name: "kube-api-access-x7k2p",
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			DefaultMode: ptr(int32(0o644)),
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			},
		}},
	})
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].VolumeMounts = append(p.Spec.Containers[i].VolumeMounts, corev1.VolumeMount{
			Name: "kube-api-access-x7k2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
		})
	}
}

func qty(s string) resource.Quantity { return resource.MustParse(s) }

func mustTranslate(t testing.TB, pod *corev1.Pod, opts Options) *Result {
	t.Helper()
	res, err := ToApplication(pod, opts)
	if err != nil {
		t.Fatalf("ToApplication: %v", err)
	}
	return res
}

func inlineFile(t testing.TB, res *Result, path string) string {
	t.Helper()
	for _, f := range res.Application.Inline {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("no inline file %q in %v", path, inlinePaths(res))
	return ""
}

func inlinePaths(res *Result) []string {
	var out []string
	for _, f := range res.Application.Inline {
		out = append(out, f.Path)
	}
	return out
}

// splitQuadletWords splits a value the way quadlet reads Exec=,
// Environment= and PodmanArgs= (podman's extractFirstWord with
// SplitRelax|SplitUnquote|SplitCUnescape). It is an independent
// implementation for tests: if the generator's escaping and this reading
// disagree, a round-trip test fails.
func splitQuadletWords(s string) ([]string, error) {
	var words []string
	i := 0
	for {
		for i < len(s) && strings.ContainsRune(" \t\n\r", rune(s[i])) {
			i++
		}
		if i >= len(s) {
			return words, nil
		}
		var b strings.Builder
		var quote byte
		for i < len(s) {
			c := s[i]
			switch {
			case quote == 0 && strings.ContainsRune(" \t\n\r", rune(c)):
				goto done
			case c == '\\':
				n, adv, err := cunescape(s[i+1:])
				if err != nil {
					return nil, err
				}
				b.WriteString(n)
				i += 1 + adv
				continue
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote != 0 && c == quote:
				quote = 0
			default:
				b.WriteByte(c)
			}
			i++
		}
		if quote != 0 {
			return nil, fmt.Errorf("unterminated quote in %q", s)
		}
	done:
		words = append(words, b.String())
	}
}

func cunescape(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("trailing backslash")
	}
	switch s[0] {
	case 'a':
		return "\a", 1, nil
	case 'b':
		return "\b", 1, nil
	case 'f':
		return "\f", 1, nil
	case 'n':
		return "\n", 1, nil
	case 'r':
		return "\r", 1, nil
	case 't':
		return "\t", 1, nil
	case 'v':
		return "\v", 1, nil
	case 's':
		return " ", 1, nil
	case '\\', '"', '\'':
		return s[:1], 1, nil
	case 'x':
		if len(s) < 3 {
			return "", 0, fmt.Errorf("short \\x escape")
		}
		v, err := strconv.ParseUint(s[1:3], 16, 8)
		if err != nil {
			return "", 0, err
		}
		return string([]byte{byte(v)}), 3, nil
	}
	// SplitRelax keeps unknown escapes verbatim.
	return `\` + s[:1], 1, nil
}

// systemdLiteral undoes the specifier and variable escaping systemd applies
// to ExecStart=, and fails on anything systemd would expand.
func systemdLiteral(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c == '$' {
			if i+1 < len(s) && s[i+1] == c {
				b.WriteByte(c)
				i++
				continue
			}
			return "", fmt.Errorf("unescaped %q at %d in %q", c, i, s)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// quadletValue returns the literal words a quadlet word-list value carries
// to the container.
func quadletValue(t testing.TB, raw string) []string {
	t.Helper()
	words, err := splitQuadletWords(raw)
	if err != nil {
		t.Fatalf("splitting %q: %v", raw, err)
	}
	for i, w := range words {
		lit, err := systemdLiteral(w)
		if err != nil {
			t.Fatalf("value %q: %v", raw, err)
		}
		if !utf8.ValidString(lit) {
			t.Fatalf("value %q decodes to invalid UTF-8", raw)
		}
		words[i] = lit
	}
	return words
}
