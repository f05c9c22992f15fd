package flightctlsim

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// seedDevices adds n agentless devices named dev-0001... with the given
// labels, directly through the Go API.
func seedDevices(t testing.TB, s *Sim, n int, lbls map[string]string) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if err := s.AddDevice(DeviceConfig{Name: fmt.Sprintf("dev-%04d", i), Labels: lbls, NoAgent: true}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListLimitErrors(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	tests := []struct {
		query, msg string
	}{
		{"limit=100000", `API Error: parameter "limit" in query has an error: number must be at most 1000`},
		{"limit=1001", `API Error: parameter "limit" in query has an error: number must be at most 1000`},
		{"limit=-1", `API Error: parameter "limit" in query has an error: number must be at least 0`},
		{"limit=abc", `API Error: parameter "limit" in query has an error: value abc: an invalid integer: invalid syntax`},
		{"limit=1&continue=garbage", "failed to parse continue parameter: illegal base64 data at input byte 4"},
		{"continue=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("not json"))), "failed to parse continue parameter: invalid character 'o' in literal null (expecting 'u')"},
		{"continue=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`{"Version":2,"Names":["x"],"Count":1}`))), "failed to parse continue parameter: unsupported version 2"},
	}
	for _, path := range []string{"/api/v1/devices", "/api/v1/fleets", "/api/v1/events"} {
		for _, tc := range tests {
			t.Run(path+"?"+tc.query, func(t *testing.T) {
				r := c.do("GET", path+"?"+tc.query, nil, "")
				if r.code != 400 || r.message(t) != tc.msg {
					t.Errorf("got %d %q, want 400 %q", r.code, r.message(t), tc.msg)
				}
			})
		}
	}
}

func TestDevicePagination(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	seedDevices(t, s, 25, map[string]string{"fleet": "edge"})
	if err := s.AddDevice(DeviceConfig{Name: "zz-other", NoAgent: true}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		limit int
		pages []int
	}{
		{"limit 10", 10, []int{10, 10, 5}},
		{"limit 25 exact", 25, []int{25}},
		{"limit 1", 1, nil},
		{"limit 0 means the maximum page", 0, []int{25}},
		{"no limit", -1, []int{25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := "labelSelector=fleet%3Dedge"
			if tc.limit >= 0 {
				q += fmt.Sprintf("&limit=%d", tc.limit)
			}
			var seen []string
			var pages []int
			cont := ""
			for i := 0; i < 100; i++ {
				path := "/api/v1/devices?" + q
				if cont != "" {
					path += "&continue=" + url.QueryEscape(cont)
				}
				r := c.do("GET", path, nil, "")
				if r.code != 200 {
					t.Fatalf("page %d: %d %s", i, r.code, r.body)
				}
				m := r.json(t)
				items := m["items"].([]any)
				pages = append(pages, len(items))
				for _, it := range items {
					seen = append(seen, str(it, "metadata.name"))
				}
				if int(get(m, "summary.total").(float64)) != len(items) {
					t.Errorf("summary counts %v items, page has %d", get(m, "summary.total"), len(items))
				}
				meta := m["metadata"].(map[string]any)
				cont, _ = meta["continue"].(string)
				if cont == "" {
					if len(meta) != 0 {
						t.Errorf("last page metadata %v, want {}", meta)
					}
					break
				}
				remaining := int(meta["remainingItemCount"].(float64))
				if remaining != 25-len(seen) {
					t.Errorf("remainingItemCount %d, want %d", remaining, 25-len(seen))
				}
				// The token has the real server's shape.
				raw, _ := base64.StdEncoding.DecodeString(cont)
				want := fmt.Sprintf(`{"Version":1,"Names":["dev-%04d"],"Count":%d}`, len(seen)+1, remaining)
				if string(raw) != want {
					t.Errorf("token %s, want %s", raw, want)
				}
			}
			if len(seen) != 25 || seen[0] != "dev-0001" || seen[24] != "dev-0025" {
				t.Fatalf("saw %d devices %v", len(seen), seen)
			}
			if tc.pages != nil && fmt.Sprint(pages) != fmt.Sprint(tc.pages) {
				t.Errorf("pages %v, want %v", pages, tc.pages)
			}
		})
	}
}

func TestPaginationEdges(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	seedDevices(t, s, 3, nil)

	t.Run("empty result", func(t *testing.T) {
		r := c.do("GET", "/api/v1/devices?labelSelector=none%3Dx&limit=2", nil, "")
		m := r.json(t)
		if len(m["items"].([]any)) != 0 || len(m["metadata"].(map[string]any)) != 0 || get(m, "summary.total").(float64) != 0 {
			t.Errorf("empty list: %s", r.body)
		}
		if !strings.Contains(string(r.body), `"items":[]`) {
			t.Errorf("items must be [] not null: %s", r.body)
		}
	})
	t.Run("continue past the end", func(t *testing.T) {
		tok := encodeContinue([]string{"zzz"}, 1)
		r := c.do("GET", "/api/v1/devices?limit=2&continue="+url.QueryEscape(tok), nil, "")
		m := r.json(t)
		if r.code != 200 || len(m["items"].([]any)) != 0 || len(m["metadata"].(map[string]any)) != 0 {
			t.Errorf("past the end: %d %s", r.code, r.body)
		}
	})
	t.Run("continue survives deletion of the next item", func(t *testing.T) {
		first := c.do("GET", "/api/v1/devices?limit=1", nil, "").json(t)
		cont := get(first, "metadata.continue").(string)
		if r := c.do("DELETE", "/api/v1/devices/dev-0002", nil, ""); r.code != 200 {
			t.Fatalf("delete: %d %s", r.code, r.body)
		}
		next := c.do("GET", "/api/v1/devices?limit=1&continue="+url.QueryEscape(cont), nil, "").json(t)
		if got := str(next, "items.0.metadata.name"); got != "dev-0003" {
			t.Errorf("next page starts at %q, want dev-0003", got)
		}
		if len(next["metadata"].(map[string]any)) != 0 {
			t.Errorf("last page metadata: %v", next["metadata"])
		}
	})
	t.Run("unauthenticated page request", func(t *testing.T) {
		r := c.doToken("GET", "/api/v1/devices?limit=1", nil, "", "Bearer wrong")
		if r.code != 401 || r.message(t) != "failed to validate token" {
			t.Errorf("got %d %s", r.code, r.body)
		}
	})
}

func TestMaxPageWithoutLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 1001 devices")
	}
	s := startSim(t, Options{})
	c := newClient(t, s)
	seedDevices(t, s, MaxPageSize+1, nil)
	m := c.do("GET", "/api/v1/devices", nil, "").json(t)
	if n := len(m["items"].([]any)); n != MaxPageSize {
		t.Fatalf("page of %d, want %d", n, MaxPageSize)
	}
	if get(m, "metadata.remainingItemCount").(float64) != 1 {
		t.Errorf("remainingItemCount %v", get(m, "metadata.remainingItemCount"))
	}
}

func TestEventPagination(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	seedDevices(t, s, 7, nil)
	settle(t, s, 0)
	all := c.do("GET", "/api/v1/events?limit=1000", nil, "").json(t)["items"].([]any)
	var walked []string
	cont := ""
	for {
		path := "/api/v1/events?limit=4"
		if cont != "" {
			path += "&continue=" + url.QueryEscape(cont)
		}
		m := c.do("GET", path, nil, "").json(t)
		for _, it := range m["items"].([]any) {
			walked = append(walked, str(it, "metadata.name"))
		}
		cont, _ = get(m, "metadata.continue").(string)
		if cont == "" {
			break
		}
		lp, msg := parseListParams(url.Values{"continue": {cont}})
		if msg != "" || len(lp.cont.Names) != 2 {
			t.Fatalf("event token %q: %s", cont, msg)
		}
	}
	if len(walked) != len(all) {
		t.Fatalf("walked %d events, list has %d", len(walked), len(all))
	}
	for i := range all {
		if walked[i] != str(all[i], "metadata.name") {
			t.Fatalf("event %d differs between paged and full list", i)
		}
	}
}
