package flightctlsim

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// agentFailure is how the real v1.2 agent starts a failure message: the
// time of the failure in brackets (internal/agent/device/errors).
var agentFailure = regexp.MustCompile(`^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] While `)

// A prepare that fails rolls back the way the real v1.2 agent does (see
// ../shared/flightctl-real-server.md): the previous rendered version stays
// applied with its applications, condition Updating is False with reason
// Error and the agent's message, and status.updated is OutOfDate with that
// message appended. The failed version is not retried.
func TestAgentFailedPrepareRollsBack(t *testing.T) {
	s := startSim(t, Options{})
	c := newClient(t, s)
	if err := s.AddDevice(DeviceConfig{Name: "dev", Labels: map[string]string{"fleet": "edge"}}); err != nil {
		t.Fatal(err)
	}
	settle(t, s, time.Second)
	put := func(image string) {
		t.Helper()
		doc := deviceDoc("dev", map[string]string{"fleet": "edge"}, specWith(podSpec("web", image)))
		if r := c.do("PUT", "/api/v1/devices/dev", doc, ""); r.code != 200 {
			t.Fatalf("PUT: %d %s", r.code, r.body)
		}
	}
	put("quay.io/acme/web:1")
	waitFor(t, "web Running", 3*time.Second, func() bool {
		a, ok := appStatus(s, "dev", "web")
		return ok && a.Status == "Running"
	})
	good, _ := s.GetDevice("dev")

	put("quay.io/acme/web:fail-prepare")
	waitFor(t, "Updating Error", 3*time.Second, func() bool {
		snap, _ := s.GetDevice("dev")
		c := findCondition(snap.Status.Conditions, conditionUpdating)
		return c != nil && c.Reason == "Error"
	})
	snap, _ := s.GetDevice("dev")
	st := snap.Status
	cond := findCondition(st.Conditions, conditionUpdating)
	if cond.Status != "False" || !agentFailure.MatchString(cond.Message) || !strings.HasSuffix(cond.Message, "] While Preparing: prefetch failed for web: internal error occurred") {
		t.Errorf("Updating condition %+v", cond)
	}
	if st.Config.RenderedVersion != good.Status.Config.RenderedVersion {
		t.Errorf("applied version %s, want the previous %s", st.Config.RenderedVersion, good.Status.Config.RenderedVersion)
	}
	if st.Updated.Status != "OutOfDate" || st.Updated.Info != "Device has not been updated to the latest device spec: "+cond.Message {
		t.Errorf("updated %+v", st.Updated)
	}
	if a, _ := appStatus(s, "dev", "web"); a.Status != "Running" {
		t.Errorf("web after rollback: %+v, want the old version Running", a)
	}

	put("quay.io/acme/web:2")
	waitFor(t, "update after the failure", 3*time.Second, func() bool {
		snap, _ := s.GetDevice("dev")
		c := findCondition(snap.Status.Conditions, conditionUpdating)
		return snap.Status.Updated.Status == "UpToDate" && c != nil && c.Reason == "Updated" && c.Message == ""
	})
}
