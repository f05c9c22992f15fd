package translate

import (
	"strings"
	"testing"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The cases mirror requests in the Flightctl v1.2 transcripts
// (/work/shared/flightctl-v1.2-transcripts): what the real server accepted
// must pass, what it refused must fail with a similar message.
func TestValidateApplicationMatchesServer(t *testing.T) {
	quadlet := func(name string, files ...flightctl.InlineFile) flightctl.ApplicationSpec {
		return flightctl.ApplicationSpec{Name: name, AppType: flightctl.AppTypeQuadlet, Inline: files}
	}
	compose := func(content string) flightctl.ApplicationSpec {
		return flightctl.ApplicationSpec{Name: "c", AppType: flightctl.AppTypeCompose,
			Inline: []flightctl.InlineFile{{Path: "docker-compose.yaml", Content: content}}}
	}
	file := func(path, content string) flightctl.InlineFile {
		return flightctl.InlineFile{Path: path, Content: content}
	}
	okContainer := "[Container]\nImage=quay.io/flightctl-tests/alpine:v1\nExec=sleep infinity\n"

	tests := []struct {
		name    string
		app     flightctl.ApplicationSpec
		wantErr string
	}{
		{"11 quadlet accepted", quadlet("quad-app", file("app.container", okContainer)), ""},
		{"12 compose accepted", compose("services:\n  web:\n    image: quay.io/flightctl-tests/alpine:v1\n    command: [\"sleep\",\"infinity\"]\n"), ""},
		{"pod with two containers accepted", quadlet("p",
			file("p.pod", "[Pod]\nPublishPort=8080:80\n"),
			file("a.container", "[Container]\nImage=quay.io/a/b:1\nPod=p.pod\n"),
			file("b.container", "[Container]\nImage=quay.io/a/c:1\nPod=p.pod\n")), ""},
		{"container app with image", flightctl.ApplicationSpec{Name: "c5", AppType: flightctl.AppTypeContainer, Image: "nginx:latest"}, ""},
		{"26a bad app name", quadlet("Bad Name!", file("app.container", okContainer)), "must match"},
		{"26d container without image", quadlet("q1", file("app.container", "[Container]\nExec=sleep infinity\n")), ".container quadlet must have an Image key"},
		{"26e compose service without image", compose("services:\n  web:\n    command: [\"sleep\",\"1\"]\n"), "service web is missing an image"},
		{"26f absolute quadlet path", quadlet("q2", file("/etc/containers/systemd/app.container", okContainer)), "must be a relative path"},
		{"nested quadlet path", quadlet("q2", file("sub/app.container", okContainer)), "quadlet file must be at root level"},
		{"26h missing appType", flightctl.ApplicationSpec{Name: "x", Inline: []flightctl.InlineFile{file("a.container", okContainer)}}, "unknown appType"},
		{"26j no quadlet file", quadlet("q3", file("app.txt", "hello\n")), "no supported quadlet types"},
		{"kube quadlet refused", quadlet("q3", file("app.kube", "[Kube]\nYaml=x.yaml\n"), file("app.container", okContainer)), "unsupported quadlet type"},
		{"26l compose short image", compose("services:\n  web:\n    image: nginx:latest\n"), "fully qualified"},
		{"26m quadlet short image", quadlet("q4", file("app.container", "[Container]\nImage=nginx:latest\n")), "fully qualified"},
		{"compose container_name", compose("services:\n  web:\n    image: quay.io/a/b:1\n    container_name: web\n"), "container_name"},
		{"compose no services", compose("volumes: {}\n"), "no services"},
		{"missing pod reference", quadlet("p", file("a.container", "[Container]\nImage=quay.io/a/b:1\nPod=other.pod\n")), "not defined in the application"},
		{"missing volume reference", quadlet("p", file("a.container", "[Container]\nImage=quay.io/a/b:1\nVolume=data.volume:/d\n")), "not defined in the application"},
		{"extension and section disagree", quadlet("p", file("a.pod", okContainer)), "exactly one [Pod]"},
		{"two type sections", quadlet("p", file("a.container", okContainer+"[Pod]\n")), "exactly one [Container]"},
		{"duplicate paths", quadlet("p", file("a.container", okContainer), file("a.container", okContainer)), "appears twice"},
		{"inline file of exactly 1 MiB", quadlet("p", file("a.container", okContainer+comments(MaxInlineFileBytes-len(okContainer)))), ""},
		{"inline file over 1 MiB", quadlet("p", file("a.container", okContainer+comments(MaxInlineFileBytes-len(okContainer)+1))), "more than 1048576"},
		{"line too long", quadlet("p", file("a.container", okContainer+"Environment=A="+strings.Repeat("x", 2100)+"\n")), "too long"},
		{"key outside section", quadlet("p", file("a.container", "Image=x\n"+okContainer)), "outside of a section"},
		{"garbage line", quadlet("p", file("a.container", okContainer+"garbage\n")), "not a key-value pair"},
		{"image and inline", flightctl.ApplicationSpec{Name: "x", AppType: flightctl.AppTypeQuadlet, Image: "quay.io/a/b:1",
			Inline: []flightctl.InlineFile{file("a.container", okContainer)}}, "exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateApplication(tt.app)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// comments is n bytes of comment lines, to give a unit file a size.
func comments(n int) string {
	var b strings.Builder
	for n > 0 {
		k := min(n, 1000)
		b.WriteString(strings.Repeat("#", k-1) + "\n")
		n -= k
	}
	return b.String()
}

func TestParseUnitContinuation(t *testing.T) {
	u, err := ParseUnit("[Container]\nExec=a \\\n  b\n# comment\n; other\nImage = x \n")
	if err != nil {
		t.Fatal(err)
	}
	want := []UnitEntry{{"Container", "Exec", "a  b"}, {"Container", "Image", "x"}}
	if len(u.Entries) != 2 || u.Entries[0] != want[0] || u.Entries[1] != want[1] {
		t.Fatalf("entries %q", u.Entries)
	}
}
