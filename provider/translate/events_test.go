package translate

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func eventList(evs []Event) string {
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("%s/%s %s: %s", e.Type, e.Reason, e.FieldPath, e.Message))
	}
	return strings.Join(parts, "\n")
}

func TestEvents(t *testing.T) {
	pod := basePod(func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever })
	at := func(st corev1.PodStatus) *corev1.Pod { p := pod.DeepCopy(); p.Status = st; return p }
	none := corev1.PodStatus{}
	preparing := PodStatus(pod, appStatus("Preparing", "0/1", 0), online, t0)
	running := PodStatus(at(preparing), appStatus("Running", "1/1", 0), online, t1)
	restarted := PodStatus(at(running), appStatus("Running", "1/1", 1), online, t2)
	failed := PodStatus(at(running), appStatus("Error", "0/1", 0), online, t2)
	offline := DisconnectedStatus(at(running), DeviceInfo{Name: "edge-1"}, t2)
	recovered := PodStatus(at(offline), appStatus("Running", "1/1", 0), online, t2)

	img := `"docker.io/library/nginx:alpine"`
	path := "spec.containers{nginx}"
	tests := []struct {
		name       string
		prev, next corev1.PodStatus
		want       string
	}{
		{"pulling", none, preparing, "Normal/Pulling " + path + ": Pulling image " + img},
		{"started after pulling", preparing, running, strings.Join([]string{
			"Normal/Pulled " + path + ": Successfully pulled image " + img,
			"Normal/Created " + path + ": Created container nginx",
			"Normal/Started " + path + ": Started container nginx"}, "\n")},
		{"started without seeing the pull", none, running, strings.Join([]string{
			"Normal/Pulled " + path + ": Successfully pulled image " + img,
			"Normal/Created " + path + ": Created container nginx",
			"Normal/Started " + path + ": Started container nginx"}, "\n")},
		{"restart", running, restarted, strings.Join([]string{
			"Normal/Created " + path + ": Created container nginx",
			"Normal/Started " + path + ": Started container nginx"}, "\n")},
		{"failure", running, failed, "Warning/Failed " + path + ": Error: application vk-default-web-63d4eceb4b on device edge-1 is Error (ready 0/1, restarts 0)"},
		{"disconnect", running, offline, "Warning/DeviceDisconnected : Flightctl device edge-1 is disconnected; last seen 2026-11-25T20:02:00Z"},
		{"reconnect", offline, recovered, "Normal/DeviceConnected : the Flightctl device reports status again"},
		{"no change", running, running, ""},
		{"no change while pulling", preparing, preparing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventList(Events(tt.prev, tt.next)); got != tt.want {
				t.Errorf("events:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
