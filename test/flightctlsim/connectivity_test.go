package flightctlsim

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDisconnectAndReconnect(t *testing.T) {
	detect := 200 * time.Millisecond
	s := startSim(t, Options{DisconnectDetection: detect})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "dev", Spec: json.RawMessage(`{"applications":[{"name":"a","appType":"container","image":"nginx"}]}`)}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, time.Second)
	snap, _ := s.GetDevice("dev")
	if snap.Status.Summary.Status != "Online" {
		t.Fatalf("not online: %+v", snap.Status.Summary)
	}

	// Through the control API, with the same token.
	if r := c.doToken("POST", "/sim/v1/devices/dev/disconnect", nil, "", "Bearer wrong"); r.code != 401 {
		t.Fatalf("control API without the token: %d", r.code)
	}
	r := c.do("POST", "/sim/v1/devices/dev/disconnect", nil, "")
	if r.code != 200 || get(r.json(t), "agentConnected") != false {
		t.Fatalf("disconnect: %d %s", r.code, r.body)
	}
	seen1 := c.do("GET", "/api/v1/devices/dev/lastseen", nil, "")
	time.Sleep(20 * time.Millisecond)
	seen2 := c.do("GET", "/api/v1/devices/dev/lastseen", nil, "")
	if seen1.code != 200 || string(seen1.body) != string(seen2.body) {
		t.Errorf("lastSeen moves while disconnected: %s then %s", seen1.body, seen2.body)
	}
	// Not yet detected.
	if snap, _ := s.GetDevice("dev"); snap.Status.Summary.Status != "Online" {
		t.Errorf("detected before the delay: %+v", snap.Status.Summary)
	}
	waitFor(t, "disconnection to be detected", 3*time.Second, func() bool {
		snap, _ := s.GetDevice("dev")
		return snap.Disconnected
	})
	d := c.do("GET", "/api/v1/devices/dev", nil, "").json(t)
	for _, p := range []string{"status.summary", "status.applicationsSummary", "status.updated"} {
		if str(d, p+".status") != "Unknown" || str(d, p+".info") != "Device is disconnected (last seen more than 5 minutes ago)." {
			t.Errorf("%s = %s", p, js(get(d, p)))
		}
	}
	// The applications the agent last reported are kept.
	if str(d, "status.applications.0.status") != "Running" {
		t.Errorf("applications after disconnect: %s", js(get(d, "status.applications")))
	}
	ev := c.do("GET", "/api/v1/events?fieldSelector=involvedObject.name%3Ddev,reason%3DDeviceDisconnected", nil, "").json(t)["items"].([]any)
	if len(ev) == 0 || str(ev[0], "type") != "Warning" || str(ev[0], "message") != infoDisconnected {
		t.Fatalf("DeviceDisconnected events: %s", js(ev))
	}
	list := c.do("GET", "/api/v1/devices?fieldSelector=status.summary.status%3DUnknown", nil, "").json(t)
	if str(list, "items.0.metadata.name") != "dev" {
		t.Errorf("field selector on summary status: %s", js(list["items"]))
	}

	// A spec written while the device is away is applied after it returns.
	spec := map[string]any{"applications": []any{map[string]any{"name": "b", "appType": "container", "image": "nginx"}}}
	if r := c.do("PUT", "/api/v1/devices/dev", deviceDoc("dev", nil, spec), ""); r.code != 200 {
		t.Fatalf("PUT while away: %d %s", r.code, r.body)
	}
	settle(t, s, 0)
	if _, ok := appStatus(s, "dev", "b"); ok {
		t.Fatal("disconnected agent applied a spec")
	}
	r = c.do("POST", "/sim/v1/devices/dev/reconnect", nil, "")
	if r.code != 200 || get(r.json(t), "agentConnected") != true {
		t.Fatalf("reconnect: %d %s", r.code, r.body)
	}
	settle(t, s, time.Second)
	snap, _ = s.GetDevice("dev")
	if snap.Status.Summary.Status != "Online" || snap.Status.Updated.Status != "UpToDate" || snap.Disconnected {
		t.Errorf("after reconnect: %+v %+v", snap.Status.Summary, snap.Status.Updated)
	}
	if a, ok := appStatus(s, "dev", "b"); !ok || a.Status != "Running" {
		t.Errorf("spec not applied after reconnect: %+v", snap.Status.Applications)
	}
	connected := c.do("GET", "/api/v1/events?fieldSelector=involvedObject.name%3Ddev,reason%3DDeviceConnected&limit=1", nil, "").json(t)["items"].([]any)
	if len(connected) != 1 || str(connected[0], "type") != "Normal" {
		t.Errorf("DeviceConnected: %s", js(connected))
	}
	if r := c.do("POST", "/sim/v1/devices/nope/reconnect", nil, ""); r.code != 404 {
		t.Errorf("unknown device: %d", r.code)
	}
}

func TestNeverReportedDevice(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	r := c.do("POST", "/api/v1/devices", deviceDoc("rec", nil, map[string]any{}), "")
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	if r := c.do("GET", "/api/v1/devices/rec/lastseen", nil, ""); r.code != 204 || len(r.body) != 0 || r.header.Get("Content-Type") != "" {
		t.Errorf("lastseen of a silent device: %d %q %v", r.code, r.body, r.header)
	}
	if r := c.do("GET", "/api/v1/devices/nope/lastseen", nil, ""); r.code != 404 || r.message(t) != `Device of name "nope" not found` {
		t.Errorf("lastseen of an unknown device: %d %s", r.code, r.body)
	}
	settle(t, s, 0)
	d := c.do("GET", "/api/v1/devices/rec", nil, "").json(t)
	if str(d, "status.summary.status") != "Unknown" || str(d, "status.updated.status") != "OutOfDate" {
		t.Errorf("silent device: %s", js(d["status"]))
	}
	// Reconnect gives it an agent.
	if err := s.Reconnect("rec"); err != nil {
		t.Fatal(err)
	}
	settle(t, s, 0)
	if snap, _ := s.GetDevice("rec"); !snap.HasAgent || snap.Status.Summary.Status != "Online" || snap.Status.Updated.Status != "UpToDate" {
		t.Errorf("after reconnect: %+v", snap)
	}
}

func TestAPIDevicesConnected(t *testing.T) {
	s := startSim(t, Options{APIDevicesConnected: true})
	c := newClient(t, s)
	if r := c.do("PUT", "/api/v1/devices/d", deviceDoc("d", nil, map[string]any{}), ""); r.code != 201 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	settle(t, s, 0)
	if r := c.do("GET", "/api/v1/devices/d/lastseen", nil, ""); r.code != 200 {
		t.Errorf("lastseen: %d", r.code)
	}
}

func TestStatusPutKeepsDeviceOnlineUntilDetection(t *testing.T) {
	s := startSim(t, Options{DisconnectDetection: 100 * time.Millisecond})
	c := newClient(t, s)
	c.do("POST", "/api/v1/devices", deviceDoc("d", nil, map[string]any{}), "")
	settle(t, s, 0)
	body := strings.ReplaceAll(`{"apiVersion":"flightctl.io/v1beta1","kind":"Device","metadata":{"name":"d"},"status":{"applications":[],"applicationsSummary":{"status":"Healthy"},"conditions":[],"config":{"renderedVersion":"1"},"integrity":{"status":"Unknown"},"lifecycle":{"status":"Unknown"},"os":{"image":"","imageDigest":""},"resources":{"cpu":"Healthy","disk":"Healthy","memory":"Healthy"},"summary":{"status":"Unknown"},"systemInfo":{"agentVersion":"x","architecture":"amd64","bootID":"b","operatingSystem":"linux"},"updated":{"status":"Unknown"}}}`, "\n", "")
	r := c.do("PUT", "/api/v1/devices/d/status", body, "application/json")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	m := r.json(t)
	if str(m, "status.summary.status") != "Online" || str(m, "status.applicationsSummary.status") != "NoApplications" || str(m, "status.updated.status") != "UpToDate" {
		t.Errorf("after status PUT: %s", js(m["status"]))
	}
	// The user API does not move lastSeen (only an agent does).
	if r := c.do("GET", "/api/v1/devices/d/lastseen", nil, ""); r.code != 204 {
		t.Errorf("lastseen after status PUT: %d", r.code)
	}
	waitFor(t, "detection", 3*time.Second, func() bool {
		snap, _ := s.GetDevice("d")
		return snap.Status.Summary.Status == "Unknown"
	})
}
