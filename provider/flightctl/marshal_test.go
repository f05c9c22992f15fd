package flightctl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// jsonEqual compares two JSON documents by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal a: %v\n%s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal b: %v\n%s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

// specOf pulls the raw "spec" member out of a device or fleet template body.
func specOf(t *testing.T, body []byte, path ...string) json.RawMessage {
	t.Helper()
	cur := json.RawMessage(body)
	for _, p := range path {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(cur, &m); err != nil {
			t.Fatalf("descend %v: %v", path, err)
		}
		var ok bool
		if cur, ok = m[p]; !ok {
			t.Fatalf("no %q in %v", p, path)
		}
	}
	return cur
}

const richSpec = `{
  "applications": [
    {
      "name": "web",
      "appType": "container",
      "image": "nginx:latest",
      "envVars": {"A": "1"},
      "ports": ["8080:80"],
      "resources": {"limits": {"cpu": "0.5", "memory": "256m"}},
      "runAs": "",
      "volumes": [{"name": "data", "mount": {"path": "/data"}}]
    },
    {
      "name": "q",
      "appType": "quadlet",
      "inline": [{"path": "a.container", "content": "W0NvbnRhaW5lcl0K", "contentEncoding": "base64"}],
      "futureField": null
    }
  ],
  "os": {"image": "quay.io/example/os:1"},
  "config": [{"name": "motd", "inline": [{"path": "/etc/motd", "content": "hi"}]}],
  "systemd": {"matchPatterns": ["*.service"]},
  "updatePolicy": {"downloadSchedule": {"at": "* * * * *"}},
  "consoles": []
}`

func TestSpecRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		raw  json.RawMessage
	}{
		{"empty spec (01)", specOf(t, loadTranscript(t, "01-create-device-1.txt").ResponseBody, "spec")},
		{"quadlet (11)", specOf(t, loadTranscript(t, "11-put-device-1-quadlet-no-resourceVersion.txt").ResponseBody, "spec")},
		{"fleet-owned compose (05)", specOf(t, loadTranscript(t, "05-get-device-3-owned.txt").ResponseBody, "spec")},
		{"fleet rendered with runAs (29b)", specOf(t, loadTranscript(t, "29b-get-device-3-after-fleet-change.txt").ResponseBody, "spec")},
		{"fleet template (29)", specOf(t, loadTranscript(t, "29-put-fleet-template-change.txt").RequestBody, "spec", "template", "spec")},
		{"unmodelled fields", json.RawMessage(richSpec)},
		{"empty applications", json.RawMessage(`{"applications": []}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s DeviceSpec
			if err := json.Unmarshal(tc.raw, &s); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			out, err := json.Marshal(s)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if !jsonEqual(t, tc.raw, out) {
				t.Fatalf("round trip changed the spec\nin:  %s\nout: %s", tc.raw, out)
			}
			// A second pass must be byte-identical: keys are sorted.
			var s2 DeviceSpec
			if err := json.Unmarshal(out, &s2); err != nil {
				t.Fatalf("unmarshal 2: %v", err)
			}
			out2, err := json.Marshal(s2)
			if err != nil {
				t.Fatalf("marshal 2: %v", err)
			}
			if !bytes.Equal(out, out2) {
				t.Fatalf("not deterministic:\n%s\n%s", out, out2)
			}
		})
	}
}

func TestSpecReadModifyWriteKeepsExtras(t *testing.T) {
	var s DeviceSpec
	if err := json.Unmarshal([]byte(richSpec), &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"os", "config", "systemd", "updatePolicy", "consoles"} {
		if _, ok := s.Extra[k]; !ok {
			t.Errorf("spec.%s not kept in Extra", k)
		}
	}
	if _, ok := s.Extra["applications"]; ok {
		t.Errorf("applications leaked into Extra")
	}
	web := s.Applications[0]
	if web.Name != "web" || web.AppType != AppTypeContainer || web.Image != "nginx:latest" || web.EnvVars["A"] != "1" {
		t.Errorf("modelled app fields wrong: %+v", web)
	}
	for _, k := range []string{"ports", "resources", "runAs", "volumes"} {
		if _, ok := web.Extra[k]; !ok {
			t.Errorf("application field %s not kept in Extra", k)
		}
	}
	q := s.Applications[1]
	if len(q.Inline) != 1 || q.Inline[0].ContentEncoding != "base64" {
		t.Errorf("inline not decoded: %+v", q.Inline)
	}

	// Modify: change the image, add an app, and make sure the rest survives.
	s.Applications[0].Image = "docker.io/library/nginx:1.27"
	s.Applications = append(s.Applications, ApplicationSpec{Name: "new", AppType: AppTypeCompose, Image: "quay.io/x/y:1"})
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"os", "config", "systemd", "updatePolicy", "consoles", "applications"} {
		if _, ok := back[k]; !ok {
			t.Errorf("spec.%s dropped on write: %s", k, out)
		}
	}
	apps := back["applications"].([]any)
	if len(apps) != 3 {
		t.Fatalf("want 3 apps, got %d", len(apps))
	}
	w := apps[0].(map[string]any)
	if w["image"] != "docker.io/library/nginx:1.27" {
		t.Errorf("image not updated: %v", w["image"])
	}
	if _, ok := w["runAs"]; !ok {
		t.Errorf("runAs dropped: %v", w)
	}
	if _, ok := apps[1].(map[string]any)["futureField"]; !ok {
		t.Errorf("null-valued unknown field dropped: %v", apps[1])
	}
}

func TestSpecMarshalShape(t *testing.T) {
	cases := []struct {
		name string
		spec DeviceSpec
		want string
	}{
		{"zero", DeviceSpec{}, `{}`},
		{"nil apps keep extra", DeviceSpec{Extra: map[string]json.RawMessage{"os": json.RawMessage(`{"image":"x"}`)}}, `{"os":{"image":"x"}}`},
		{"empty apps", DeviceSpec{Applications: []ApplicationSpec{}}, `{"applications":[]}`},
		{"modelled wins over extra", DeviceSpec{
			Applications: []ApplicationSpec{{Name: "a", AppType: "compose", Extra: map[string]json.RawMessage{"name": json.RawMessage(`"stale"`), "runAs": json.RawMessage(`"u"`)}}},
			Extra:        map[string]json.RawMessage{"applications": json.RawMessage(`[]`), "z": json.RawMessage(`1`), "a": json.RawMessage(`2`)},
		}, `{"a":2,"applications":[{"appType":"compose","name":"a","runAs":"u"}],"z":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %s want %s", got, tc.want)
			}
		})
	}
}

func TestSpecUnmarshalNullAndErrors(t *testing.T) {
	var d Device
	if err := json.Unmarshal([]byte(`{"spec":null}`), &d); err != nil || d.Spec != nil {
		t.Errorf("null spec: %v %+v", err, d.Spec)
	}
	var s DeviceSpec
	if err := json.Unmarshal([]byte(`{"applications":null}`), &s); err != nil || s.Applications != nil || s.Extra != nil {
		t.Errorf("null applications: %v %+v", err, s)
	}
	if err := json.Unmarshal([]byte(`[]`), &s); err == nil {
		t.Errorf("array spec accepted")
	}
	if err := json.Unmarshal([]byte(`{"applications":[{"name":5}]}`), &s); err == nil {
		t.Errorf("numeric app name accepted")
	}
}

func TestNilCollectionsMarshalLikeTheServer(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"status", DeviceStatus{}, `"applications":[]`},
		{"status conditions", &DeviceStatus{}, `"conditions":[]`},
		{"status systemInfo", DeviceStatus{}, `"systemInfo":{}`},
		{"device list", DeviceList{}, `"items":[]`},
		{"device list pointer", &DeviceList{}, `"items":[]`},
		{"last page metadata", DeviceList{}, `"metadata":{}`},
		{"fleet list", FleetList{}, `"items":[]`},
		{"event list", EventList{}, `"items":[]`},
		{"device in list keeps its spec extras", DeviceList{Items: []Device{{Spec: &DeviceSpec{Extra: map[string]json.RawMessage{"os": json.RawMessage(`{"image":"i"}`)}}}}}, `"spec":{"os":{"image":"i"}}`},
	}
	for _, tc := range cases {
		b, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !bytes.Contains(b, []byte(tc.want)) {
			t.Errorf("%s: %s lacks %s", tc.name, b, tc.want)
		}
	}
	// Set values are kept.
	b, _ := json.Marshal(DeviceStatus{Applications: []ApplicationStatus{{Name: "a", Ready: "1/1", Status: ApplicationStatusRunning}}})
	if !bytes.Contains(b, []byte(`"applications":[{"name":"a","embedded":false,"ready":"1/1","restarts":0,"status":"Running"}]`)) {
		t.Errorf("status %s", b)
	}
}
