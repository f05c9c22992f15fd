package flightctl

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// lostPaths lists the JSON paths present in in but missing or different in
// out. Arrays are compared element by element.
func lostPaths(in, out any, path string, lost *[]string) {
	switch iv := in.(type) {
	case map[string]any:
		ov, ok := out.(map[string]any)
		if !ok {
			*lost = append(*lost, path)
			return
		}
		for k, v := range iv {
			o, ok := ov[k]
			if !ok {
				*lost = append(*lost, path+"."+k)
				continue
			}
			lostPaths(v, o, path+"."+k, lost)
		}
	case []any:
		ov, ok := out.([]any)
		if !ok || len(ov) != len(iv) {
			*lost = append(*lost, path)
			return
		}
		for i := range iv {
			lostPaths(iv[i], ov[i], fmt.Sprintf("%s[%d]", path, i), lost)
		}
	default:
		if !reflect.DeepEqual(in, out) {
			*lost = append(*lost, path)
		}
	}
}

// tolerated says which losses do not matter: empty maps the Go types omit
// (the server treats a missing map and an empty one alike) and empty lists
// outside a spec (status lists the client never writes back). Empty lists
// in a spec must survive: "applications": [] clears the apps.
func tolerated(path string, in any) bool {
	if m, ok := in.(map[string]any); ok && len(m) == 0 {
		return true
	}
	if a, ok := in.([]any); ok && len(a) == 0 && !strings.Contains(path, ".spec") {
		return true
	}
	return false
}

func valueAt(doc any, path string) any {
	cur := doc
	for _, p := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		if p == "" {
			continue
		}
		name, idx, hasIdx := strings.Cut(p, "[")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[name]
		for hasIdx {
			var i int
			if _, err := fmt.Sscanf(idx, "%d]", &i); err != nil {
				return nil // not an index: the path names nothing
			}
			a, ok := cur.([]any)
			if !ok || i >= len(a) {
				return nil
			}
			cur = a[i]
			_, idx, hasIdx = strings.Cut(idx, "[")
		}
	}
	return cur
}

// TestDecodeAllTranscripts decodes every JSON body of every transcript of
// the real server into the matching type and checks that re-encoding keeps
// every field (empty maps aside).
func TestDecodeAllTranscripts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "transcripts", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	newFor := map[string]func() any{
		KindDevice:     func() any { return &Device{} },
		KindDeviceList: func() any { return &DeviceList{} },
		KindFleet:      func() any { return &Fleet{} },
		KindFleetList:  func() any { return &FleetList{} },
		KindEvent:      func() any { return &Event{} },
		KindEventList:  func() any { return &EventList{} },
		KindStatus:     func() any { return &Status{} },
	}
	notModelled := map[string]bool{"TemplateVersion": true, "TemplateVersionList": true}
	decoded := map[string]int{}
	for _, f := range files {
		ex := loadTranscript(t, filepath.Base(f))
		for part, body := range map[string][]byte{"request": ex.RequestBody, "response": ex.ResponseBody} {
			if len(body) == 0 || body[0] != '{' {
				continue
			}
			name := filepath.Base(f) + " " + part
			var generic map[string]any
			if err := json.Unmarshal(body, &generic); err != nil {
				t.Errorf("%s: not JSON: %v", name, err)
				continue
			}
			kind, _ := generic["kind"].(string)
			var target any
			switch {
			case notModelled[kind]:
				continue
			case kind == "" && generic["lastSeen"] != nil:
				target = &LastSeen{}
				kind = "LastSeen"
			case newFor[kind] != nil:
				target = newFor[kind]()
			default:
				t.Errorf("%s: unexpected kind %q", name, kind)
				continue
			}
			if err := json.Unmarshal(body, target); err != nil {
				t.Errorf("%s: decode %s: %v", name, kind, err)
				continue
			}
			decoded[kind]++
			out, err := json.Marshal(target)
			if err != nil {
				t.Errorf("%s: encode: %v", name, err)
				continue
			}
			var back any
			_ = json.Unmarshal(out, &back)
			var lost []string
			lostPaths(any(generic), back, "", &lost)
			var bad []string
			for _, p := range lost {
				if !tolerated(p, valueAt(any(generic), p)) {
					bad = append(bad, p)
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				t.Errorf("%s: %s lost or changed %v", name, kind, bad)
			}
		}
	}
	t.Logf("decoded: %v", decoded)
	if os.Getenv("VERBOSE_TRANSCRIPTS") != "" {
		t.Log(files)
	}
}
