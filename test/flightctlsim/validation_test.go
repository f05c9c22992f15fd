package flightctlsim

import (
	"encoding/base64"
	"strings"
	"testing"
)

// inline builds an inline application.
func inline(name, appType string, files ...string) map[string]any {
	var list []any
	for i := 0; i+1 < len(files); i += 2 {
		list = append(list, map[string]any{"path": files[i], "content": files[i+1]})
	}
	return map[string]any{"name": name, "appType": appType, "inline": list}
}

// specWith builds a spec with the given applications.
func specWith(apps ...any) map[string]any {
	return map[string]any{"applications": apps}
}

const strictRegex = `((?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:[.](?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?(?:\/[a-z0-9]+(?:(?:(?:[._]|__|[-]*)[a-z0-9]+)+)?)*)(?:\:([\w][\w.-]{0,127}))?(?:\@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))?`

func TestValidationErrors(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	quad := "[Container]\nImage=quay.io/flightctl-tests/alpine:v1\n"
	tests := []struct {
		name string
		doc  map[string]any
		// msg is the exact message, or a prefix when it ends in "...".
		msg string
	}{
		{"bad app name", deviceDoc("d", nil, specWith(inline("Bad Name!", "quadlet", "app.container", quad))),
			`spec.applications[].name: Invalid value: "Bad Name!": Invalidpattern (regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		{"app name too long", deviceDoc("d", nil, specWith(inline(strings.Repeat("a", 254), "quadlet", "app.container", quad))),
			"spec.applications[].name: Too long: may not be more than 253 bytes"},
		{"duplicate app names", deviceDoc("d", nil, specWith(inline("dup", "quadlet", "a.container", quad), inline("dup", "quadlet", "b.container", quad))),
			"duplicate application name: dup"},
		{"missing appType", deviceDoc("d", nil, specWith(map[string]any{"name": "x", "inline": []any{map[string]any{"path": "a.container", "content": quad}}})),
			`API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/spec/applications/0": input does not contain the discriminator property "appType"`},
		{"unknown appType", deviceDoc("d", nil, specWith(map[string]any{"name": "x", "appType": "rpm", "image": "x"})),
			`API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/spec/applications/0": discriminator property "appType" has invalid value`},
		{"container without image", deviceDoc("d", nil, specWith(map[string]any{"name": "c1", "appType": "container"})),
			"API Error: 1 API errors found. The most relevant is likely:\nError at \"/spec/applications/0\": doesn't match schema due to: Error at \"/image\": property \"image\" is missing\n..."},
		{"compose without image or inline", deviceDoc("d", nil, specWith(map[string]any{"name": "c2", "appType": "compose"})),
			"API Error: 1 API errors found. The most relevant is likely:\nError at \"/spec/applications/0\": doesn't match schema due to: doesn't match schema due to: doesn't match schema due to: Error at \"/image\"..."},
		{"quadlet container without Image", deviceDoc("d", nil, specWith(inline("q1", "quadlet", "app.container", "[Container]\nExec=sleep infinity\n"))),
			".container quadlet must have an Image key"},
		{"compose service without image", deviceDoc("d", nil, specWith(inline("c3", "compose", "docker-compose.yaml", "services:\n  web:\n    command: [\"sleep\",\"1\"]\n"))),
			"service web is missing an image\nservices.web.image: Required value\nservices.web.image: Invalid value: \"\": Invalidpattern (e.g. 'quay.io/flightctl/flightctl:latest', regex used for validation is '" + strictRegex + "')"},
		{"absolute quadlet path", deviceDoc("d", nil, specWith(inline("q2", "quadlet", "/etc/containers/systemd/app.container", quad))),
			"spec.applications[].inline[0].path: Invalid value: \"/etc/containers/systemd/app.container\": must be a relative path\nspec.applications[].inline[].path: quadlet file must be at root level: \"/etc/containers/systemd/app.container\""},
		{"non-root quadlet path", deviceDoc("d", nil, specWith(inline("q2", "quadlet", "sub/app.container", quad))),
			"spec.applications[].inline[].path: quadlet file must be at root level: \"sub/app.container\""},
		{"parent path", deviceDoc("d", nil, specWith(inline("q2", "quadlet", "../app.container", quad))),
			"spec.applications[].inline[0].path: Invalid value: \"../app.container\": must not contain '..' (parent directory references)\n..."},
		{"unsupported quadlet extension", deviceDoc("d", nil, specWith(inline("q3", "quadlet", "app.txt", "hello\n"))),
			"spec.applications[].inline[].path: no paths provided"},
		{"kube quadlet", deviceDoc("d", nil, specWith(inline("q3", "quadlet", "app.kube", "[Kube]\nYaml=x.yaml\n"))),
			`parse quadlet spec "app.kube": unsupported quadlet type: type: Kube` + "\n..."},
		{"quadlet without workload", deviceDoc("d", nil, specWith(inline("q5", "quadlet", "data.volume", "[Volume]\n"))),
			"spec.applications[].inline[].path: at least one quadlet workload must be supplied"},
		{"pod reference missing", deviceDoc("d", nil, specWith(inline("q6", "quadlet", "web.container", quad+"Pod=missing.pod\n"))),
			`quadlet file "web.container" references "missing.pod" which is not defined in the application`},
		{"bad label", deviceDoc("d", map[string]string{"fleet": "bad value with spaces"}, map[string]any{}),
			`metadata.labels: Invalid value: "bad value with spaces": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`},
		// Refused by the OpenAPI request validator (maxLength 63), before
		// the handler's label validation, as Flightctl v1.2.0 does.
		{"label value too long", deviceDoc("d", map[string]string{"fleet": strings.Repeat("x", 64)}, map[string]any{}),
			`API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/metadata/labels/fleet": maximum string length is 63`},
		{"bad image reference", deviceDoc("d", nil, specWith(map[string]any{"name": "badimg", "appType": "container", "image": "UPPER CASE:::bad"})),
			`spec.applications[badimg].image: Invalid value: "UPPER CASE:::bad": Invalidpattern (e.g. 'quay.io/flightctl/flightctl:latest', regex used for validation is '...`},
		{"compose short image", deviceDoc("d", nil, specWith(inline("c4", "compose", "docker-compose.yaml", "services:\n  web:\n    image: nginx:latest\n"))),
			`services.web.image: Invalid value: "nginx:latest": Invalidpattern (e.g. 'quay.io/flightctl/flightctl:latest', regex used for validation is '` + strictRegex + `')`},
		{"quadlet short image", deviceDoc("d", nil, specWith(inline("q4", "quadlet", "app.container", "[Container]\nImage=nginx:latest\n"))),
			`container.image: Invalid value: "nginx:latest": Invalidpattern (e.g. 'quay.io/flightctl/flightctl:latest', regex used for validation is '` + strictRegex + `')`},
		{"compose container_name", deviceDoc("d", nil, specWith(inline("c5", "compose", "docker-compose.yaml", "services:\n  web:\n    image: quay.io/a/b:1\n    container_name: web\n"))),
			`service web has a hardcoded container_name "web" which is not supported`},
		{"compose file name", deviceDoc("d", nil, specWith(inline("c6", "compose", "compose.yaml", "services:\n  web:\n    image: quay.io/a/b:1\n"))),
			`spec.applications[].inline[].path: invalid compose path: "compose.yaml", supported paths: docker-compose.yaml, docker-compose.yml, podman-compose.yaml, podman-compose.yml`},
		{"compose no services", deviceDoc("d", nil, specWith(inline("c7", "compose", "podman-compose.yaml", "version: '3'\n"))),
			"compose spec has no services"},
		{"duplicate inline path", deviceDoc("d", nil, specWith(inline("q7", "quadlet", "a.container", quad, "a.container", quad))),
			"duplicate inline path: a.container"},
		{"bad base64", deviceDoc("d", nil, specWith(map[string]any{"name": "q8", "appType": "quadlet", "inline": []any{map[string]any{"path": "a.container", "content": "!!!", "contentEncoding": "base64"}}})),
			"decode base64 content: illegal base64 data at input byte 0\n..."},
		{"bad port", deviceDoc("d", nil, specWith(map[string]any{"name": "c8", "appType": "container", "image": "nginx", "ports": []any{"80"}})),
			"spec.applications[c8].ports[0]: must be in format 'portnumber:portnumber', got \"80\""},
		{"bad memory limit", deviceDoc("d", nil, specWith(map[string]any{"name": "c9", "appType": "container", "image": "nginx", "resources": map[string]any{"limits": map[string]any{"memory": "256Mi"}}})),
			`spec.applications[c9].resources.limits.memory: must be in format 'number[unit]' where unit is b, k, m, or g, got "256Mi"`},
		{"bad env var name", deviceDoc("d", nil, specWith(map[string]any{"name": "c10", "appType": "container", "image": "nginx", "envVars": map[string]any{"1BAD": "x"}})),
			`spec.applications[c10].envVars: Invalid value: "1BAD": Invalidpattern (regex used for validation is '')`},
		{"bad device name", deviceDoc("Bad_Name", nil, map[string]any{}),
			`metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"partial status", func() map[string]any {
			d := deviceDoc("d", nil, map[string]any{})
			d["status"] = map[string]any{"summary": map[string]any{"status": "Online"}}
			return d
		}(), `API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/status/conditions": property "conditions" is missing`},
		{"unknown top-level field", func() map[string]any {
			d := deviceDoc("d", nil, map[string]any{})
			d["extra"] = true
			return d
		}(), `API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/extra": property "extra" is unsupported`},
		{"missing metadata", map[string]any{"apiVersion": "flightctl.io/v1beta1", "kind": "Device", "spec": map[string]any{}},
			`API Error: request body has an error: doesn't match schema #/components/schemas/Device: Error at "/metadata": property "metadata" is missing`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "d"
			if n := str(tc.doc, "metadata.name"); n != "" {
				name = n
			}
			for _, method := range []string{"POST", "PUT"} {
				path := "/api/v1/devices"
				if method == "PUT" {
					path += "/" + name
				}
				r := c.do(method, path, tc.doc, "")
				if r.code != 400 {
					t.Fatalf("%s: status %d, want 400: %s", method, r.code, r.body)
				}
				got := r.message(t)
				if prefix, ok := strings.CutSuffix(tc.msg, "..."); ok {
					if !strings.HasPrefix(got, prefix) {
						t.Errorf("%s: message\n%q\nwant prefix\n%q", method, got, prefix)
					}
				} else if got != tc.msg {
					t.Errorf("%s: message\n%q\nwant\n%q", method, got, tc.msg)
				}
			}
		})
	}
	if names := s.DeviceNames(); len(names) != 0 {
		t.Errorf("rejected requests created devices: %v", names)
	}
}

func TestValidationAccepts(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	podFile := "[Pod]\nPublishPort=8080:80\n"
	ctr := func(img string) string { return "[Container]\nImage=" + img + "\nPod=web.pod\n" }
	tests := []struct {
		name string
		spec map[string]any
	}{
		{"quadlet pod with two containers and envVars", specWith(map[string]any{
			"name": "vk-default-web-0123456789", "appType": "quadlet", "envVars": map[string]any{"A": "1"},
			"inline": []any{
				map[string]any{"path": "web.pod", "content": podFile},
				map[string]any{"path": "web-nginx.container", "content": ctr("docker.io/library/nginx:latest")},
				map[string]any{"path": "web-sidecar.container", "content": ctr("quay.io/example/sidecar:1.0")},
			}})},
		{"compose with two services", specWith(inline("two", "compose", "podman-compose.yaml",
			"services:\n  a:\n    image: docker.io/library/nginx:latest\n  b:\n    image: quay.io/x/y@sha256:"+strings.Repeat("a", 64)+"\n"))},
		{"compose base and override", specWith(inline("ovr", "compose", "docker-compose.yaml",
			"services:\n  a:\n    image: quay.io/x/y:1\n", "docker-compose.override.yaml", "services:\n  a:\n    image: quay.io/x/y:2\n"))},
		{"container with ports and limits, short image", specWith(map[string]any{
			"name": "ctr", "appType": "container", "image": "nginx:latest", "ports": []any{"8080:80"},
			"resources": map[string]any{"limits": map[string]any{"cpu": "0.5", "memory": "256m"}}})},
		{"image-based compose package", specWith(map[string]any{"name": "pkg", "appType": "compose", "image": "quay.io/example/app:1"})},
		{"unnamed container app named after its image", specWith(map[string]any{"appType": "container", "image": "quay.io/example/app:1"})},
		{"name of 253 bytes", specWith(inline(strings.Repeat("a", 253), "quadlet", "a.container", ctr("quay.io/a/b:1")[:len("[Container]\nImage=quay.io/a/b:1\n")]))},
		{"base64 quadlet", specWith(map[string]any{"name": "b64", "appType": "quadlet", "inline": []any{map[string]any{
			"path": "a.container", "contentEncoding": "base64",
			"content": base64.StdEncoding.EncodeToString([]byte("[Container]\nImage=quay.io/a/b:1\n"))}}})},
		{"quadlet with config file and volume", specWith(inline("cfg", "quadlet", "app.container", "[Container]\nImage=quay.io/a/b:1\nVolume=data.volume:/data\n",
			"data.volume", "[Volume]\n", "app.conf", "key=value\n"))},
		{"other spec fields kept", map[string]any{"os": map[string]any{"image": "quay.io/os:1"}, "updatePolicy": map[string]any{}, "applications": []any{}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "ok-" + string(rune('a'+i))
			r := c.do("PUT", "/api/v1/devices/"+name, deviceDoc(name, nil, tc.spec), "")
			if r.code != 201 {
				t.Fatalf("status %d: %s", r.code, r.body)
			}
			if js(get(r.json(t), "spec")) != js(normalizeJSON(t, tc.spec)) {
				t.Errorf("spec not kept verbatim:\n got %s\nwant %s", js(get(r.json(t), "spec")), js(tc.spec))
			}
		})
	}
}

// normalizeJSON round-trips a value through JSON for comparison.
func normalizeJSON(t *testing.T, v any) any {
	t.Helper()
	var out any
	raw := []byte(js(v))
	if err := jsonUnmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFailingImagePatterns(t *testing.T) {
	tests := map[string]bool{
		"quay.io/example/app:1":              false,
		"quay.io/does-not-exist/app:1":       true,
		"registry:5000/x/does-not-exist":     true,
		"quay.io/example/app:fail-pull":      true,
		"registry:5000/fail-pull":            false,
		"quay.io/example/fail-pull:1":        false,
		"quay.io/example/app:fail-pull@sha1": true,
	}
	for ref, want := range tests {
		if got := failingImage(ref); got != want {
			t.Errorf("failingImage(%q) = %v, want %v", ref, got, want)
		}
	}
}
