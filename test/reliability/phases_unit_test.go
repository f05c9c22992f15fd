package reliability

import (
	"strings"
	"testing"
)

func TestSelectPhases(t *testing.T) {
	known := phaseNames(quickMode)
	if strings.Join(known, ",") != "baseline,errors,latency,conflicts,unreachable,flapping,restarts,leader-handover,fleet-owned-brief,fleet-owned,device-deleted,sharded" {
		t.Fatalf("phase order changed: %v (update doc.go)", known)
	}
	if want, err := selectPhases(" ", known); err != nil || want != nil {
		t.Fatalf("empty: got %v, %v; want every phase (nil)", want, err)
	}
	want, err := selectPhases("fleet-owned, leader-handover,", known)
	if err != nil || len(want) != 2 || !want["fleet-owned"] || !want["leader-handover"] {
		t.Fatalf("got %v, %v", want, err)
	}
	if _, err := selectPhases("baseline,restart", known); err == nil || !strings.Contains(err.Error(), `"restart"`) || !strings.Contains(err.Error(), "restarts") {
		t.Fatalf("an unknown name must be refused with the known ones listed: %v", err)
	}
	if _, err := selectPhases(",", known); err == nil {
		t.Fatal("a list naming no phase must be refused")
	}
}
