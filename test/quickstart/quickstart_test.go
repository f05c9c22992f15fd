package quickstart

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

const describeNode = `Name:               vk-flightctl-edge-fleet-1
Capacity:
  cpu:     8
  memory:  16Gi
  pods:    110
Allocatable:
  cpu:     7500m
  memory:  15Gi
  pods:    110
Non-terminated Pods:          (4 in total)
  Namespace  Name  CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource           Requests    Limits
  --------           --------    ------
  cpu                250m (3%)   0 (0%)
  memory             320Mi (2%)  0 (0%)
  ephemeral-storage  0 (0%)      0 (0%)
Events:              <none>
`

func TestParseAllocated(t *testing.T) {
	a, err := parseAllocated(describeNode)
	if err != nil {
		t.Fatal(err)
	}
	if a.CPU.String() != "250m" || a.Memory.String() != "320Mi" {
		t.Fatalf("got %s, want cpu 250m, memory 320Mi", a)
	}
	if _, err := parseAllocated("Name: x\n"); err == nil {
		t.Fatal("want an error without an Allocated resources section")
	}
}

func TestSection(t *testing.T) {
	got := section(describeNode, "Allocatable:")
	want := "Allocatable:\n  cpu:     7500m\n  memory:  15Gi\n  pods:    110"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestAppNameFollowsConventions(t *testing.T) {
	uid := "3f1c2a4e-8d7b-4c59-9a61-0b2e6f4d8c11"
	sum := sha256.Sum256([]byte(uid))
	hash := hex.EncodeToString(sum[:])[:10]
	if got, want := appName("codeco", "nginx-edge", uid), "vk-codeco-nginx-edge-"+hash; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	long := appName("a-very-long-namespace-name", "and-an-even-longer-pod-name.with.dots-x", uid)
	if len(long) > 63 || strings.ContainsAny(long, ".") || !strings.HasSuffix(long, "-"+hash) {
		t.Fatalf("long name %q: want at most 63 DNS-label characters ending in the hash", long)
	}
}

func TestImagesIn(t *testing.T) {
	text := "\n--- nginx-edge.pod\n[Pod]\n--- nginx.container\n[Container]\nImage=docker.io/library/nginx:alpine\nPod=x.pod\n--- compose\nservices:\n  a:\n    image: \"quay.io/x/y:1\"\n"
	got := strings.Join(imagesIn(text), ",")
	if got != "docker.io/library/nginx:alpine,quay.io/x/y:1" {
		t.Fatalf("got %s", got)
	}
	if !hasImage(application{Inline: []struct {
		Path            string `json:"path"`
		Content         string `json:"content"`
		ContentEncoding string `json:"contentEncoding"`
	}{{Path: "a.container", Content: "Image=docker.io/library/nginx:alpine"}}}, "nginx:alpine") {
		t.Fatal("a normalized short name should match")
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"get", "pod", "-o", "jsonpath={.status.phase}", "it's"})
	want := `get pod -o 'jsonpath={.status.phase}' 'it'\''s'`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
