package translate

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func podMeta(ns, name, uid string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
}

func TestAppName(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		name, ns, pod, uid string
		want               string
	}{
		{"short", "default", "web", "uid-1", "vk-default-web-" + hashOf("uid-1")},
		{"dots become dashes", "default", "backup.nightly", "u", "vk-default-backup-nightly-" + hashOf("u")},
		{"long names are cut in the middle part", long, long, "u", "vk-" + (long + "-" + long)[:49] + "-" + hashOf("u")},
		{"cut never leaves a dash before the hash", "ns", strings.Repeat("b", 45) + "-xyz", "u", "vk-ns-" + strings.Repeat("b", 45) + "-" + hashOf("u")},
		{"empty middle", "", "", "u", "vk-" + hashOf("u")},
		{"upper case and junk are sanitised", "NS", "Web_1", "u", "vk-ns-web-1-" + hashOf("u")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppName(podMeta(tt.ns, tt.pod, tt.uid))
			if got != tt.want {
				t.Errorf("AppName = %q, want %q", got, tt.want)
			}
			if len(got) > 63 || !isDNSLabel(got) || !serverAppName.MatchString(got) {
				t.Errorf("%q is not a valid DNS-1123 label of at most 63 characters", got)
			}
			if !IsOwnedAppName(got) {
				t.Errorf("IsOwnedAppName(%q) = false", got)
			}
		})
	}
}

func hashOf(uid string) string {
	return AppName(podMeta("", "", uid))[len("vk-"):]
}

func TestAppNameDistinguishesPodsThatLookAlike(t *testing.T) {
	long := strings.Repeat("x", 80)
	a := AppName(podMeta("ns", long+"-a", "uid-a"))
	b := AppName(podMeta("ns", long+"-b", "uid-b"))
	if a == b {
		t.Fatalf("pods differing after the cut got the same name %q", a)
	}
	// The same pod re-created (new UID) gets a new application.
	if AppName(podMeta("ns", "web", "1")) == AppName(podMeta("ns", "web", "2")) {
		t.Fatal("re-created pod reuses the application name")
	}
	if first, again := AppName(podMeta("ns", "web", "1")), AppName(podMeta("ns", "web", "1")); first != again {
		t.Fatal("AppName is not deterministic")
	}
}

func TestIsOwnedAppName(t *testing.T) {
	tests := map[string]bool{
		"vk-default-web-0123456789":                     true,
		"vk-0123456789":                                 true,
		"vk-default-web-012345678":                      false, // 9 hex digits
		"vk-default-web-012345678g":                     false,
		"vk-default-web-0123456789-":                    false,
		"my-app-0123456789":                             false,
		"VK-default-web-0123456789":                     false,
		"vk-default-web-ABCDEF0123":                     false,
		"vk-" + strings.Repeat("a", 50) + "-0123456789": false, // 64 characters
		"": false,
	}
	for name, want := range tests {
		if got := IsOwnedAppName(name); got != want {
			t.Errorf("IsOwnedAppName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNormalizeImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0f", 32)
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "nginx", want: "docker.io/library/nginx:latest"},
		{in: "nginx:alpine", want: "docker.io/library/nginx:alpine"},
		{in: "foo/bar", want: "docker.io/foo/bar:latest"},
		{in: "foo/bar/baz:1.2", want: "docker.io/foo/bar/baz:1.2"},
		{in: "quay.io/x/y:v1", want: "quay.io/x/y:v1"},
		{in: "localhost/app", want: "localhost/app:latest"},
		{in: "localhost:5000/app:dev", want: "localhost:5000/app:dev"},
		{in: "registry:5000/app", want: "registry:5000/app:latest"},
		{in: "nginx@" + digest, want: "docker.io/library/nginx@" + digest},
		{in: "quay.io/x/y:v1@" + digest, want: "quay.io/x/y:v1@" + digest},
		{in: "", wantErr: true},
		{in: "UPPER/case", wantErr: true},
		{in: "nginx:bad tag", wantErr: true},
		{in: "nginx\nImage=evil", wantErr: true},
		{in: "quay.io/", wantErr: true},
		{in: "nginx@sha256:short", wantErr: true},
		{in: "nginx:%n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := NormalizeImage(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("NormalizeImage(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if !qualifiedImage.MatchString(got) {
			t.Errorf("NormalizeImage(%q) = %q does not pass the server pattern", tt.in, got)
		}
	}
}

func TestExpandVars(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two words", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := map[string]string{
		"$(A)":        "1",
		"x$(A)y$(B)z": "x1ytwo wordsz",
		"$(MISSING)":  "$(MISSING)",
		"$$(A)":       "$(A)",
		"$$$(A)":      "$1",
		"$A ${A}":     "$A ${A}",
		"$(EMPTY)|":   "|",
		"$(unclosed":  "$(unclosed",
		"trailing$":   "trailing$",
		"$()":         "$()",
		"no vars":     "no vars",
		"$(A)$(A)":    "11",
		"100%":        "100%",
		"$$":          "$",
		"$(A":         "$(A",
		"$(A)$":       "1$",
	}
	for in, want := range tests {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}
