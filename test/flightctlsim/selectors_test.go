package flightctlsim

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

func TestParseLabelSelector(t *testing.T) {
	tests := []struct {
		sel     string
		labels  map[string]string
		match   bool
		wantErr string
	}{
		{sel: "", labels: map[string]string{"a": "b"}, match: true},
		{sel: "fleet=edge-fleet-1", labels: map[string]string{"fleet": "edge-fleet-1"}, match: true},
		{sel: "fleet==edge-fleet-1", labels: map[string]string{"fleet": "other"}, match: false},
		{sel: "fleet in (a),!owned", labels: map[string]string{"fleet": "a"}, match: true},
		{sel: "fleet in (a),!owned", labels: map[string]string{"fleet": "a", "owned": "yes"}, match: false},
		{sel: "fleet notin (a,b)", labels: map[string]string{"fleet": "c"}, match: true},
		{sel: "gpu", labels: map[string]string{"gpu": ""}, match: true},
		{sel: "site=lab,gpu in (yes)", labels: map[string]string{"site": "lab", "gpu": "yes"}, match: true},
		{sel: "fleet in edge", wantErr: "failed to parse label selector: invalid label selector syntax: unable to parse requirement: found 'edge' expected: '('"},
		{sel: "a=b=c", wantErr: "failed to parse label selector: invalid label selector syntax: found '=', expected: ',' or 'end of string'"},
	}
	for _, tc := range tests {
		t.Run(tc.sel, func(t *testing.T) {
			sel, msg := parseLabelSelector(tc.sel)
			if msg != tc.wantErr {
				t.Fatalf("error %q, want %q", msg, tc.wantErr)
			}
			if msg != "" {
				return
			}
			if got := sel.Matches(labels.Set(tc.labels)); got != tc.match {
				t.Errorf("match %v, want %v", got, tc.match)
			}
		})
	}
}

func TestParseFieldSelector(t *testing.T) {
	supported := "Supported selectors are: [metadata.alias metadata.creationTimestamp metadata.name metadata.nameOrAlias metadata.owner status.applicationsSummary.status status.lifecycle.status status.summary.status status.updated.status]"
	tests := []struct {
		sel     string
		wantErr string
		reqs    int
	}{
		{sel: "", reqs: 0},
		{sel: "metadata.owner=Fleet/edge", reqs: 1},
		{sel: "metadata.owner!=Fleet/edge,status.summary.status=Online", reqs: 2},
		{sel: "metadata.name in (device-1, device-2)", reqs: 1},
		{sel: "metadata.name notin (device-1)", reqs: 1},
		{sel: "!metadata.owner", reqs: 1},
		{sel: "metadata.owner", reqs: 1},
		{sel: "metadata.creationTimestamp>=2026-01-01T00:00:00Z", reqs: 1},
		{sel: "spec.foo=bar", wantErr: `unknown or unsupported selector: unable to resolve selector name "spec.foo". ` + supported},
		{sel: "metadata.name>x", wantErr: `failed to parse field selector: failed to resolve operation for selector "metadata.name": operator ">" is not supported for this field`},
		{sel: "metadata.creationTimestamp>yesterday", wantErr: `failed to parse field selector: failed to parse value for selector "metadata.creationTimestamp"`},
		{sel: "metadata.name in x", wantErr: "invalid field selector syntax: found 'x', expected: '('"},
		{sel: "metadata.name=a,,b", wantErr: "invalid field selector syntax: empty requirement"},
	}
	for _, tc := range tests {
		t.Run(tc.sel, func(t *testing.T) {
			fs, msg := parseFieldSelector(tc.sel, deviceFieldSelectors)
			if tc.wantErr != "" {
				if !strings.HasPrefix(msg, tc.wantErr) {
					t.Fatalf("error %q, want prefix %q", msg, tc.wantErr)
				}
				return
			}
			if msg != "" {
				t.Fatalf("unexpected error %q", msg)
			}
			if len(fs) != tc.reqs {
				t.Errorf("%d requirements, want %d", len(fs), tc.reqs)
			}
		})
	}
}

func TestMatchDevice(t *testing.T) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	owned := &device{name: "d1", owner: "Fleet/edge", labels: map[string]string{"alias": "kiosk"}, created: created, status: newStatus()}
	free := &device{name: "d2", labels: map[string]string{}, created: created.Add(time.Hour), status: newStatus()}
	free.status.Summary.Status = "Online"
	tests := []struct {
		sel         string
		owned, free bool
	}{
		{"metadata.owner=Fleet/edge", true, false},
		// != also selects devices without an owner, like the real server.
		{"metadata.owner!=Fleet/edge", false, true},
		{"metadata.owner!=Fleet/other", true, true},
		{"!metadata.owner", false, true},
		{"metadata.owner", true, false},
		{"metadata.name in (d1,d3)", true, false},
		{"metadata.nameOrAlias=kiosk", true, false},
		{"metadata.nameOrAlias=d2", false, true},
		{"metadata.alias=kiosk", true, false},
		{"status.summary.status=Online", false, true},
		{"status.summary.status!=Online", true, false},
		{"metadata.creationTimestamp>2026-05-01T12:30:00Z", false, true},
		{"metadata.creationTimestamp<=2026-05-01T12:00:00Z", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.sel, func(t *testing.T) {
			fs, msg := parseFieldSelector(tc.sel, deviceFieldSelectors)
			if msg != "" {
				t.Fatal(msg)
			}
			if got := matchDevice(fs, owned); got != tc.owned {
				t.Errorf("owned device: %v, want %v", got, tc.owned)
			}
			if got := matchDevice(fs, free); got != tc.free {
				t.Errorf("free device: %v, want %v", got, tc.free)
			}
		})
	}
}

func TestListSelectorsOverHTTP(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	for _, d := range []DeviceConfig{
		{Name: "a", Labels: map[string]string{"fleet": "edge", "site": "lab"}},
		{Name: "b", Labels: map[string]string{"fleet": "edge", "owned": "yes"}},
		{Name: "c", Labels: map[string]string{"fleet": "other"}},
	} {
		if err := s.AddDevice(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddFleet(FleetConfig{Name: "own", Selector: map[string]string{"owned": "yes"}}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	tests := []struct {
		query string
		names string
		code  int
	}{
		{"labelSelector=" + url.QueryEscape("fleet in (edge),!owned"), "a", 200},
		{"labelSelector=" + url.QueryEscape("fleet=edge"), "a,b", 200},
		{"fieldSelector=" + url.QueryEscape("metadata.owner=Fleet/own"), "b", 200},
		{"fieldSelector=" + url.QueryEscape("metadata.owner!=Fleet/own"), "a,c", 200},
		{"labelSelector=fleet%3Dedge&fieldSelector=" + url.QueryEscape("metadata.name!=a"), "b", 200},
		{"labelSelector=nomatch%3Dx", "", 200},
		{"labelSelector=" + url.QueryEscape("fleet in edge"), "", 400},
		{"fieldSelector=spec.foo%3Dbar", "", 400},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := c.do("GET", "/api/v1/devices?"+tc.query, nil, "")
			if r.code != tc.code {
				t.Fatalf("status %d: %s", r.code, r.body)
			}
			if r.code != 200 {
				return
			}
			m := r.json(t)
			var names []string
			for _, it := range m["items"].([]any) {
				names = append(names, str(it, "metadata.name"))
			}
			if got := strings.Join(names, ","); got != tc.names {
				t.Errorf("items %q, want %q", got, tc.names)
			}
			if total := get(m, "summary.total").(float64); int(total) != len(names) {
				t.Errorf("summary.total %v for %d items", total, len(names))
			}
		})
	}
}

func TestEventFieldSelectors(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "d1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddDevice(DeviceConfig{Name: "d2"}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	r := c.do("GET", "/api/v1/events?fieldSelector="+url.QueryEscape("involvedObject.kind=Device,involvedObject.name=d2,reason=ResourceCreated"), nil, "")
	items := r.json(t)["items"].([]any)
	if len(items) != 1 || str(items[0], "involvedObject.name") != "d2" || str(items[0], "message") != "Device was created successfully." {
		t.Fatalf("events: %s", r.body)
	}
	r = c.do("GET", "/api/v1/events?fieldSelector=foo%3Dbar", nil, "")
	want := `unknown or unsupported selector: unable to resolve selector name "foo". Supported selectors are: [actor involvedObject.kind involvedObject.name metadata.creationTimestamp metadata.name metadata.owner reason type]`
	if r.code != 400 || r.message(t) != want {
		t.Errorf("bad selector: %d %s", r.code, r.body)
	}
	// Newest first.
	all := c.do("GET", "/api/v1/events", nil, "").json(t)["items"].([]any)
	for i := 1; i < len(all); i++ {
		prev, _ := time.Parse(time.RFC3339Nano, str(all[i-1], "metadata.creationTimestamp"))
		cur, _ := time.Parse(time.RFC3339Nano, str(all[i], "metadata.creationTimestamp"))
		if !prev.After(cur) {
			t.Fatalf("events not newest first at %d: %v then %v", i, prev, cur)
		}
	}
}
