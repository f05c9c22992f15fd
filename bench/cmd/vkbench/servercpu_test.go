package main

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// Name with spaces and parentheses; ppid 7; utime 250, stime 75,
	// cutime 30, cstime 5.
	st, err := parseProcStat("4242 (post (gres) x) S 7 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 5 20 0 12 0 100 0 0")
	if err != nil || st.ppid != 7 || st.ticks != 360 {
		t.Fatalf("parseProcStat = %+v, %v; want ppid 7, ticks 360", st, err)
	}
	if _, err := parseProcStat("1 (x) S 0 1 1"); err == nil {
		t.Error("a short stat line parsed")
	}
	raw, err := os.ReadFile("/proc/self/stat")
	if err == nil {
		if st, err := parseProcStat(string(raw)); err != nil || st.ppid != os.Getppid() {
			t.Errorf("/proc/self/stat: %+v, %v; want ppid %d", st, err, os.Getppid())
		}
	}
}

func TestTreeTicks(t *testing.T) {
	procs := map[int]procStat{
		1:  {ppid: 0, ticks: 1000}, // init: not part of the tree
		10: {ppid: 1, ticks: 5},    // postmaster
		11: {ppid: 10, ticks: 7},   // backend
		12: {ppid: 10, ticks: 11},  // backend
		13: {ppid: 12, ticks: 13},  // a backend's child
		20: {ppid: 1, ticks: 100},  // another server
	}
	if got, ok := treeTicks(procs, 10); !ok || got != 36 {
		t.Errorf("treeTicks(postmaster) = %d, %v; want 36", got, ok)
	}
	if got, ok := treeTicks(procs, 20); !ok || got != 100 {
		t.Errorf("treeTicks(20) = %d, %v; want 100", got, ok)
	}
	if _, ok := treeTicks(procs, 99); ok {
		t.Error("a missing root was found")
	}
}

func TestParseServerPids(t *testing.T) {
	s, err := parseServerPids("oidc-issuer 5\nredis 6\nflightctl-api 7\nflightctl-worker 8\npostgres 9\n")
	if err != nil || s.pids["flightctl-api"] != 7 || s.pids["postgres"] != 9 || s.pids["redis"] != 6 {
		t.Fatalf("parseServerPids = %+v, %v", s, err)
	}
	if _, err := parseServerPids("flightctl-api 7\n"); err == nil {
		t.Error("no postgres accepted")
	}
	if _, err := parseServerPids("flightctl-api x\npostgres 9\n"); err == nil {
		t.Error("a bad pid accepted")
	}
}
