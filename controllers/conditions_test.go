package controllers

import (
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// The conditions are a pure function of what a reconcile found; these
// tables pin each outcome without an API server.
func TestSetConditions(t *testing.T) {
	conn := &connection.Resolved{URL: "https://flightctl.test:3443"}
	online := &nodeapi.Inventory{Summary: vkv1.DeviceSummary{Total: 3, Online: 2, Disconnected: 1}}
	type want struct{ status, reason string }
	cases := []struct {
		name  string
		scope scope
		want  map[string]want
	}{{
		name:  "healthy binding with a running node",
		scope: scope{conn: conn, nodesEnabled: true, report: nodeapi.Report{Running: true, Inventory: &nodeapi.Inventory{Summary: vkv1.DeviceSummary{Total: 2, Online: 2}}}},
		want: map[string]want{
			vkv1.ConditionFlightctlConnected: {"True", vkv1.ReasonConnected},
			vkv1.ConditionNodeRegistered:     {"True", vkv1.ReasonNodeRunning},
			vkv1.ConditionDevicesAvailable:   {"True", vkv1.ReasonDevicesOnline},
			vkv1.ConditionDegraded:           {"False", vkv1.ReasonHealthy},
			vkv1.ConditionReady:              {"True", vkv1.ReasonReady},
		},
	}, {
		name:  "missing Secret: configuration error, node not started",
		scope: scope{nodesEnabled: true, failure: &connection.Error{Reason: vkv1.ReasonSecretNotFound, Message: "secret default/x not found"}},
		want: map[string]want{
			vkv1.ConditionFlightctlConnected: {"False", vkv1.ReasonSecretNotFound},
			vkv1.ConditionNodeRegistered:     {"False", vkv1.ReasonWaitingForFlightctl},
			vkv1.ConditionDevicesAvailable:   {"Unknown", vkv1.ReasonWaitingForFlightctl},
			vkv1.ConditionDegraded:           {"False", vkv1.ReasonHealthy},
			vkv1.ConditionReady:              {"False", vkv1.ReasonSecretNotFound},
		},
	}, {
		name:  "node name held by an older binding",
		scope: scope{nodesEnabled: true, failure: &connection.Error{Reason: vkv1.ReasonNodeNameConflict, Message: "node taken"}},
		want: map[string]want{
			vkv1.ConditionNodeRegistered: {"False", vkv1.ReasonNodeNameConflict},
			vkv1.ConditionReady:          {"False", vkv1.ReasonNodeNameConflict},
		},
	}, {
		name: "Flightctl unreachable while the node runs: transient, degraded",
		scope: scope{conn: conn, nodesEnabled: true, report: nodeapi.Report{Running: true, Inventory: online,
			FlightctlError: errors.New("dial tcp 127.0.0.1:3443: connection refused")}},
		want: map[string]want{
			vkv1.ConditionFlightctlConnected: {"False", vkv1.ReasonFlightctlUnreachable},
			vkv1.ConditionNodeRegistered:     {"True", vkv1.ReasonNodeRunning},
			vkv1.ConditionDegraded:           {"True", vkv1.ReasonFlightctlUnreachable},
			vkv1.ConditionReady:              {"False", vkv1.ReasonFlightctlUnreachable},
		},
	}, {
		name:  "no device matches the selector",
		scope: scope{conn: conn, nodesEnabled: true, report: nodeapi.Report{Running: true, Inventory: &nodeapi.Inventory{}}},
		want: map[string]want{
			vkv1.ConditionDevicesAvailable: {"False", vkv1.ReasonNoDevices},
			vkv1.ConditionReady:            {"False", vkv1.ReasonNoDevices},
		},
	}, {
		name:  "devices all offline or fleet-owned",
		scope: scope{conn: conn, nodesEnabled: true, report: nodeapi.Report{Running: true, Inventory: &nodeapi.Inventory{Summary: vkv1.DeviceSummary{Total: 2, Disconnected: 1, Owned: 1}}}},
		want: map[string]want{
			vkv1.ConditionDevicesAvailable: {"False", vkv1.ReasonNoUsableDevices},
			vkv1.ConditionDegraded:         {"True", vkv1.ReasonDevicesDisconnected},
		},
	}, {
		name: "insecure TLS is reported as degraded",
		scope: scope{conn: &connection.Resolved{URL: conn.URL, Insecure: true}, nodesEnabled: true, report: nodeapi.Report{Running: true,
			Inventory: &nodeapi.Inventory{Summary: vkv1.DeviceSummary{Total: 1, Online: 1}}}},
		want: map[string]want{
			vkv1.ConditionDegraded: {"True", vkv1.ReasonInsecureTLS},
			vkv1.ConditionReady:    {"True", vkv1.ReasonReady},
		},
	}, {
		name:  "manager without virtual nodes",
		scope: scope{conn: conn, report: nodeapi.Report{Inventory: online}},
		want: map[string]want{
			vkv1.ConditionNodeRegistered: {"False", vkv1.ReasonNodeStarting},
			vkv1.ConditionReady:          {"False", vkv1.ReasonNodeStarting},
		},
	}, {
		name:  "node failed to start",
		scope: scope{conn: conn, nodesEnabled: true, report: nodeapi.Report{Message: "creating pod controller: boom"}},
		want: map[string]want{
			vkv1.ConditionFlightctlConnected: {"Unknown", vkv1.ReasonWaitingForFlightctl},
			vkv1.ConditionNodeRegistered:     {"False", vkv1.ReasonNodeFailed},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.scope
			s.binding = &vkv1.FleetBinding{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "default", Generation: 3}, Spec: vkv1.FleetBindingSpec{Fleet: "f"}}
			setConditions(&s)
			for typ, w := range tc.want {
				c := findCondition(s.binding, typ)
				if c == nil {
					t.Fatalf("condition %s not set", typ)
				}
				if string(c.Status) != w.status || c.Reason != w.reason {
					t.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, w.status, w.reason)
				}
				if c.ObservedGeneration != 3 || c.Message == "" {
					t.Errorf("%s: observedGeneration %d, message %q: want 3 and a message", typ, c.ObservedGeneration, c.Message)
				}
			}
		})
	}
}

func TestResyncAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    scope
		want time.Duration
	}{
		{"transient failure retries soon", scope{failure: &connection.Error{Transient: true}}, 15 * time.Second},
		{"configuration error waits for the user (and the Secret)", scope{failure: &connection.Error{Reason: vkv1.ReasonSecretInvalid}}, time.Minute},
		{"healthy: six polls, at least 10s", scope{settings: settingsWithPoll(time.Second)}, 10 * time.Second},
		{"healthy with a slow poll", scope{settings: settingsWithPoll(5 * time.Second)}, 30 * time.Second},
	} {
		if got := resyncAfter(&tc.s); got != tc.want {
			t.Errorf("%s: resyncAfter = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func settingsWithPoll(d time.Duration) settings.Effective {
	return settings.Effective{StatusPollInterval: d}
}
