package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The real-Flightctl bench charges the server's CPU to the processes
// hack/real-flightctl.sh started, read from /proc: PostgreSQL serves each
// connection from a child of its postmaster, so a process counts with
// every descendant. A descendant that exited was reaped by its parent,
// whose cutime/cstime then hold its time; summing utime+stime+cutime+cstime
// over the live tree therefore keeps counting it, and two samples of the
// same tree subtract to the CPU it spent in between.

// procStat is what the bench reads of one /proc/<pid>/stat.
type procStat struct {
	ppid int
	// ticks is utime+stime+cutime+cstime, in clock ticks.
	ticks int64
}

// parseProcStat reads ppid (field 4), utime, stime, cutime and cstime
// (fields 14-17). The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last closing parenthesis.
func parseProcStat(stat string) (procStat, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procStat{}, errors.New("no ')' in /proc/<pid>/stat")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/<pid>/stat has %d fields after the name, want at least 15", len(f))
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("ppid %q: %w", f[1], err)
	}
	var ticks int64
	for _, s := range f[11:15] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("time field %q: %w", s, err)
		}
		ticks += v
	}
	return procStat{ppid: ppid, ticks: ticks}, nil
}

// readProcs reads every process's stat under procRoot (/proc), by pid.
// Processes that exit while it reads are skipped.
func readProcs(procRoot string) (map[int]procStat, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	out := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		st, err := parseProcStat(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s/%d/stat: %w", procRoot, pid, err)
		}
		out[pid] = st
	}
	return out, nil
}

// treeTicks sums the ticks of root and all its live descendants in procs.
// It reports false when root is not running.
func treeTicks(procs map[int]procStat, root int) (int64, bool) {
	if _, ok := procs[root]; !ok {
		return 0, false
	}
	children := map[int][]int{}
	for pid, st := range procs {
		children[st.ppid] = append(children[st.ppid], pid)
	}
	var sum int64
	stack := []int{root}
	seen := map[int]bool{}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		sum += procs[pid].ticks
		stack = append(stack, children[pid]...)
	}
	return sum, true
}

// serverProcs are the processes of a real Flightctl, by role, as
// hack/real-flightctl.sh records their pids.
type serverProcs struct {
	pids map[string]int
}

// serverRoles are the processes of hack/real-flightctl.sh, in report
// order. The server's cost, as issue 17 counts it, is flightctl-api plus
// PostgreSQL; the others are reported beside it.
var serverRoles = []string{"flightctl-api", "postgres", "flightctl-worker", "flightctl-periodic", "redis"}

// costRoles are the roles summed into the server's cost.
var costRoles = []string{"flightctl-api", "postgres"}

// parseServerPids reads `hack/real-flightctl.sh pids` ("<name> <pid>" per
// line); flightctl-api and postgres must be there.
func parseServerPids(out string) (*serverProcs, error) {
	s := &serverProcs{pids: map[string]int{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("pid of %s: %q: %w", f[0], f[1], err)
		}
		s.pids[f[0]] = pid
	}
	for _, role := range costRoles {
		if s.pids[role] == 0 {
			return nil, fmt.Errorf("no running %s in %q (is hack/real-flightctl.sh up?)", role, out)
		}
	}
	return s, nil
}

// sample reads the CPU seconds of every role's process tree.
func (s *serverProcs) sample() (map[string]float64, error) {
	procs, err := readProcs("/proc")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, role := range serverRoles {
		pid, ok := s.pids[role]
		if !ok {
			continue
		}
		t, ok := treeTicks(procs, pid)
		if !ok {
			return nil, fmt.Errorf("%s (pid %d) is no longer running", role, pid)
		}
		out[role] = float64(t) / clockTicks()
	}
	return out, nil
}
