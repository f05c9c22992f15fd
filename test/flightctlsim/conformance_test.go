package flightctlsim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The conformance test replays the requests recorded against a real
// Flightctl v1.2.0 server (provider/flightctl/testdata/transcripts), in the order they were
// made, on a simulator seeded the same way (empty, then built up by the
// requests themselves), and compares each answer with the recorded one:
// status codes, error messages word for word, resourceVersion and
// generation, annotations, specs, the status fields clients read, list
// metadata and summaries, and the events of a device.

// exchange is one recorded request and response.
type exchange struct {
	file        string
	when        time.Time
	method      string
	target      string
	auth        string
	contentType string
	reqBody     []byte
	code        int
	respHeader  http.Header
	respBody    []byte
}

// parseExchange reads a transcript file.
func parseExchange(path string) (*exchange, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	reqPart, respPart, ok := strings.Cut(string(raw), "=== RESPONSE")
	if !ok {
		return nil, fmt.Errorf("no response section")
	}
	ex := &exchange{file: filepath.Base(path), respHeader: http.Header{}}
	sc := bufio.NewScanner(strings.NewReader(reqPart))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	sc.Scan()
	if m := regexp.MustCompile(`\((\S+Z)\)`).FindStringSubmatch(sc.Text()); m != nil {
		ex.when, _ = time.Parse(time.RFC3339, m[1])
	}
	sc.Scan()
	method, rawURL, _ := strings.Cut(sc.Text(), " ")
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	ex.method, ex.target = method, u.RequestURI()
	var body strings.Builder
	inBody := false
	for sc.Scan() {
		line := sc.Text()
		if !inBody {
			if line == "" {
				inBody = true
				continue
			}
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "Authorization":
				ex.auth = v
			case "Content-Type":
				ex.contentType = v
			}
			continue
		}
		body.WriteString(line + "\n")
	}
	ex.reqBody = []byte(strings.TrimSpace(body.String()))

	lines := strings.Split(respPart, "\n")
	m := regexp.MustCompile(`status (\d+)`).FindStringSubmatch(lines[0])
	if m == nil {
		return nil, fmt.Errorf("no status in %q", lines[0])
	}
	ex.code, _ = strconv.Atoi(m[1])
	i := 2
	for ; i < len(lines) && lines[i] != ""; i++ {
		k, v, _ := strings.Cut(lines[i], ": ")
		ex.respHeader.Add(k, v)
	}
	rb := strings.TrimSpace(strings.Join(lines[i:], "\n"))
	if rb != "(empty body)" {
		ex.respBody = []byte(rb)
	}
	return ex, nil
}

// transcriptDir holds the recorded exchanges with a real Flightctl v1.2.0;
// the client's tests read the same files.
var transcriptDir = filepath.Join("..", "..", "provider", "flightctl", "testdata", "transcripts")

// notReplayed are the transcripts the simulator cannot replay, with why.
// loadExchanges fails if one of them disappears, so the list cannot rot.
var notReplayed = map[string]string{
	"21c-list-templateversions.txt":                 "template versions are not simulated",
	"34-get-device-from-enrollment.txt":             "the enrolled device came from a real agent's enrollment",
	"35-agent-get-rendered.txt":                     "agent API (mTLS, port 7443)",
	"36-put-enrolled-device-spec.txt":               "the enrolled device came from a real agent's enrollment",
	"37-agent-get-rendered-after-spec.txt":          "agent API (mTLS, port 7443)",
	"38-agent-put-status-apps-running.txt":          "agent API (mTLS, port 7443)",
	"39-get-enrolled-device-after-agent-status.txt": "the enrolled device came from a real agent's enrollment",
	"39b-get-enrolled-device-lastseen.txt":          "the enrolled device came from a real agent's enrollment",
	"40-agent-put-status-app-error.txt":             "agent API (mTLS, port 7443)",
	"40b-agent-put-status-no-apps.txt":              "agent API (mTLS, port 7443)",
	"40c-agent-put-status-device-1-fullbody.txt":    "agent API (mTLS, port 7443)",
	"40d-agent-put-status-other-device.txt":         "agent API (mTLS, port 7443)",
	"40e-agent-get-other-device-rendered.txt":       "agent API (mTLS, port 7443)",
}

// loadExchanges reads the replayable transcripts in replay order.
func loadExchanges(t *testing.T) []*exchange {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(transcriptDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", transcriptDir, err)
	}
	left := map[string]bool{}
	for name := range notReplayed {
		left[name] = true
	}
	var out []*exchange
	for _, f := range files {
		if _, skip := notReplayed[filepath.Base(f)]; skip {
			delete(left, filepath.Base(f))
			continue
		}
		ex, err := parseExchange(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, ex)
	}
	if len(left) > 0 {
		t.Fatalf("notReplayed names transcripts that do not exist: %v", left)
	}
	t.Logf("replaying %d of %d transcripts (%d not replayable, see notReplayed)", len(out), len(files), len(notReplayed))
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].when.Equal(out[j].when) {
			return out[i].when.Before(out[j].when)
		}
		return out[i].file < out[j].file
	})
	return out
}

// skippedItem reports list items the simulator does not have: the device
// a real agent enrolled, whose exchanges are not replayable.
func skippedItem(item map[string]any) bool {
	return strings.HasPrefix(str(item, "metadata.name"), "agentdev")
}

func TestTranscriptConformance(t *testing.T) {
	exchanges := loadExchanges(t)
	// Seeded like the recording server: empty, API-created devices without
	// agents, the real five-minute disconnect timeout (so a status report
	// keeps a device online for the rest of the replay), instant workers.
	s := startSim(t, Options{DisconnectDetection: RealDisconnectTimeout})
	c := newClient(t, s)
	for _, ex := range exchanges {
		t.Run(ex.file, func(t *testing.T) {
			auth := "Bearer " + s.Token()
			switch {
			case ex.auth == "(none)":
				auth = ""
			case strings.Contains(ex.file, "bad-token") || strings.Contains(ex.file, "jwt-wrong"):
				auth = "Bearer not-the-token"
			}
			var body any
			if len(ex.reqBody) > 0 {
				body = ex.reqBody
			}
			got := c.doToken(ex.method, ex.target, body, ex.contentType, auth)
			settle(t, s, 0)
			if got.code != ex.code {
				t.Fatalf("%s %s: status %d, want %d; body %s", ex.method, ex.target, got.code, ex.code, got.body)
			}
			for _, h := range []string{"Flightctl-Api-Version", "Content-Type"} {
				if (ex.respHeader.Get(h) == "") != (got.header.Get(h) == "") || (ex.respHeader.Get(h) != "" && ex.respHeader.Get(h) != got.header.Get(h)) {
					t.Errorf("header %s = %q, want %q", h, got.header.Get(h), ex.respHeader.Get(h))
				}
			}
			if len(ex.respBody) == 0 {
				if len(got.body) != 0 {
					t.Errorf("body %q, want empty", got.body)
				}
				return
			}
			var want, have map[string]any
			if err := json.Unmarshal(ex.respBody, &want); err != nil {
				t.Fatalf("recorded body: %v", err)
			}
			if err := json.Unmarshal(got.body, &have); err != nil {
				t.Fatalf("body %s: %v", got.body, err)
			}
			compareDocument(t, ex.file, want, have)
		})
	}
}

// compareDocument compares a response with the recorded one by kind.
func compareDocument(t *testing.T, file string, want, have map[string]any) {
	t.Helper()
	switch want["kind"] {
	case "Status":
		for _, k := range []string{"apiVersion", "code", "reason", "status", "message"} {
			if !reflect.DeepEqual(want[k], have[k]) {
				t.Errorf("%s: %q\n got: %v\nwant: %v", file, k, have[k], want[k])
			}
		}
	case "Device":
		compareDevice(t, "", want, have)
	case "DeviceList":
		compareList(t, want, have, compareDevice)
		compareSummary(t, want, have)
	case "Fleet":
		compareFleet(t, "", want, have)
	case "FleetList":
		compareList(t, want, have, compareFleet)
	case "EventList":
		compareEvents(t, file, want, have)
	default:
		t.Fatalf("%s: no comparison for kind %v", file, want["kind"])
	}
}

// diff reports differences at the given paths.
func diff(t *testing.T, where string, want, have map[string]any, paths ...string) {
	t.Helper()
	for _, p := range paths {
		w, h := normalize(get(want, p)), normalize(get(have, p))
		if !reflect.DeepEqual(w, h) {
			t.Errorf("%s%s:\n got: %s\nwant: %s", where, p, js(h), js(w))
		}
	}
}

// normalize treats an empty object like an absent one (the simulator
// writes some empty maps the real server omits, and vice versa).
func normalize(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return v
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// compareDevice compares the parts of a device clients depend on.
func compareDevice(t *testing.T, where string, want, have map[string]any) {
	t.Helper()
	diff(t, where, want, have,
		"apiVersion", "kind", "metadata.name", "metadata.labels", "metadata.owner",
		"metadata.resourceVersion", "metadata.generation", "spec",
		"status.summary", "status.applicationsSummary", "status.updated", "status.config",
		"status.applications", "status.lifecycle", "status.resources", "status.integrity",
		"status.os", "status.systemInfo")
	// Annotations: same keys; values equal except the spec hash, which
	// depends on the real server's JSON layout (equal for an empty spec).
	wa, _ := get(want, "metadata.annotations").(map[string]any)
	ha, _ := get(have, "metadata.annotations").(map[string]any)
	if len(wa) != len(ha) {
		t.Errorf("%sannotations: got %s, want %s", where, js(ha), js(wa))
	}
	for k, v := range wa {
		if k == "device-controller/renderedSpecHash" {
			if js(get(want, "spec")) == "{}" && ha[k] != v {
				t.Errorf("%sspec hash of {}: got %v, want %v", where, ha[k], v)
			}
			if h, _ := ha[k].(string); len(h) != 64 {
				t.Errorf("%sspec hash %q is not a SHA-256", where, h)
			}
			continue
		}
		if ha[k] != v {
			t.Errorf("%sannotation %s: got %v, want %v", where, k, ha[k], v)
		}
	}
	compareConditions(t, where, get(want, "status.conditions"), get(have, "status.conditions"))
}

// compareConditions compares conditions without their timestamps.
func compareConditions(t *testing.T, where string, want, have any) {
	t.Helper()
	strip := func(v any) []string {
		list, _ := v.([]any)
		var out []string
		for _, it := range list {
			m, _ := it.(map[string]any)
			out = append(out, fmt.Sprintf("%v/%v/%v", m["type"], m["status"], m["reason"]))
		}
		return out
	}
	if w, h := strip(want), strip(have); !reflect.DeepEqual(w, h) {
		t.Errorf("%sconditions: got %v, want %v", where, h, w)
	}
}

// compareFleet compares a fleet.
func compareFleet(t *testing.T, where string, want, have map[string]any) {
	t.Helper()
	diff(t, where, want, have,
		"apiVersion", "kind", "metadata.name", "metadata.labels", "metadata.annotations",
		"metadata.resourceVersion", "metadata.generation", "spec", "status.devicesSummary")
	compareConditions(t, where, get(want, "status.conditions"), get(have, "status.conditions"))
}

// compareList compares list items (minus skipped ones) and list metadata.
func compareList(t *testing.T, want, have map[string]any, item func(*testing.T, string, map[string]any, map[string]any)) {
	t.Helper()
	var wantItems []map[string]any
	for _, it := range want["items"].([]any) {
		if m := it.(map[string]any); !skippedItem(m) {
			wantItems = append(wantItems, m)
		}
	}
	haveItems, _ := have["items"].([]any)
	if len(haveItems) != len(wantItems) {
		var names []string
		for _, it := range haveItems {
			names = append(names, str(it, "metadata.name"))
		}
		t.Fatalf("got %d items %v, want %d", len(haveItems), names, len(wantItems))
	}
	for i, w := range wantItems {
		item(t, fmt.Sprintf("items[%d] (%s): ", i, str(w, "metadata.name")), w, haveItems[i].(map[string]any))
	}
	diff(t, "", want, have, "metadata")
}

// compareSummary compares a DeviceList summary after removing the
// skipped items' contributions from the recorded one.
func compareSummary(t *testing.T, want, have map[string]any) {
	t.Helper()
	sum, _ := want["summary"].(map[string]any)
	adjust := func(key, path string, it map[string]any) {
		m, _ := sum[key].(map[string]any)
		s := str(it, path)
		if n, ok := m[s].(float64); ok {
			if n <= 1 {
				delete(m, s)
			} else {
				m[s] = n - 1
			}
		}
	}
	for _, it := range want["items"].([]any) {
		if m := it.(map[string]any); skippedItem(m) {
			adjust("applicationStatus", "status.applicationsSummary.status", m)
			adjust("summaryStatus", "status.summary.status", m)
			adjust("updateStatus", "status.updated.status", m)
			sum["total"] = sum["total"].(float64) - 1
		}
	}
	diff(t, "", want, have, "summary.applicationStatus", "summary.summaryStatus", "summary.updateStatus", "summary.total")
}

// compareEvents compares event lists by what clients read from events.
// The simulator does not record every event kind the real server does
// (fleet rollout and template version events, for instance), so an
// unfiltered list is compared on its head only.
func compareEvents(t *testing.T, file string, want, have map[string]any) {
	t.Helper()
	key := func(v any) string {
		m := v.(map[string]any)
		return js([]any{m["reason"], m["message"], m["type"], m["actor"], m["source"], m["involvedObject"], m["details"]})
	}
	wi, _ := want["items"].([]any)
	hi, _ := have["items"].([]any)
	if len(wi) != len(hi) {
		t.Fatalf("%s: got %d events, want %d:\n%s", file, len(hi), len(wi), js(hi))
	}
	for i := range wi {
		if key(wi[i]) != key(hi[i]) {
			t.Errorf("%s: event %d:\n got: %s\nwant: %s", file, i, key(hi[i]), key(wi[i]))
		}
	}
	wc, _ := get(want, "metadata.continue").(string)
	hc, _ := get(have, "metadata.continue").(string)
	if (wc == "") != (hc == "") {
		t.Errorf("%s: continue %q, want one like %q", file, hc, wc)
	}
	if hc != "" {
		lp, msg := parseListParams(url.Values{"continue": {hc}})
		if msg != "" || len(lp.cont.Names) != 2 || lp.cont.Count <= 0 {
			t.Errorf("%s: continue token %q does not have the real server's shape (%s)", file, hc, msg)
		}
	}
}

// TestConformanceSeesEveryTranscript guards against a transcript being
// silently dropped from the replay (a file that fails to parse or has no
// request line).
func TestConformanceSeesEveryTranscript(t *testing.T) {
	ex := loadExchanges(t)
	if len(ex) < 90 {
		t.Fatalf("only %d transcripts loaded", len(ex))
	}
	for _, e := range ex {
		if e.method == "" || !strings.HasPrefix(e.target, "/api/v1/") || e.when.IsZero() {
			t.Errorf("%s: bad parse: %q %q %v", e.file, e.method, e.target, e.when)
		}
	}
}
