package flightctlsim

import (
	"container/heap"
	"context"
	"time"
)

// One goroutine runs every delayed action of the simulation (renders,
// fleet reconciliation, agent phases, disconnect detection) from a timer
// heap. Thousands of devices therefore cost heap entries, not goroutines,
// and all state changes happen under Sim.mu in a single, ordered stream.

// taskKind says what a scheduled task does.
type taskKind int

const (
	taskDeviceWorker taskKind = iota
	taskFleetWorker
	taskAgent
	taskDetect
	taskFleetBatch
)

// task is one scheduled action on a named object. epoch lets a task that
// was superseded (a newer agent step, a reconnect, an object deleted and
// created again under the same name) be ignored cheaply: epochs come from
// one counter, so a stale task can never match a newer object's epoch.
type task struct {
	due   time.Time
	seq   uint64
	kind  taskKind
	name  string
	epoch uint64
}

// taskHeap orders tasks by due time, then by scheduling order so that
// tasks due at the same moment run in the order they were queued.
type taskHeap []task

// Len, Less, Swap, Push and Pop implement heap.Interface.
func (h taskHeap) Len() int { return len(h) }

// Less orders by due time, then queueing order.
func (h taskHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}

// Swap swaps two tasks.
func (h taskHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

// Push adds a task.
func (h *taskHeap) Push(x any) { *h = append(*h, x.(task)) }

// Pop removes the last task.
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// maxTasksPerLock bounds how long the scheduler holds the lock in one go,
// so that API requests keep being served while a large batch (seeding ten
// thousand devices) is worked through.
const maxTasksPerLock = 256

// newEpoch returns a fresh task epoch. Caller holds Sim.mu for writing.
func (s *Sim) newEpoch() uint64 {
	s.epochSeq++
	return s.epochSeq
}

// schedule queues a task. Caller holds Sim.mu for writing.
func (s *Sim) schedule(kind taskKind, name string, delay time.Duration, epoch uint64) {
	s.taskSeq++
	heap.Push(&s.tasks, task{due: s.now().Add(delay), seq: s.taskSeq, kind: kind, name: name, epoch: epoch})
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runScheduler is the scheduler goroutine.
func (s *Sim) runScheduler() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := s.now()
		ran := 0
		for len(s.tasks) > 0 && !s.tasks[0].due.After(now) && ran < maxTasksPerLock {
			t := heap.Pop(&s.tasks).(task)
			s.runTask(t)
			ran++
		}
		wait := time.Duration(-1)
		if len(s.tasks) > 0 {
			wait = max(s.tasks[0].due.Sub(now), 0)
		}
		s.mu.Unlock()
		if wait == 0 {
			// More work is due right away; yield to waiting requests first.
			select {
			case <-s.stop:
				return
			default:
				continue
			}
		}
		if wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-timer.C:
		case <-s.wake:
		case <-s.stop:
			return
		}
	}
}

// runTask executes one task. Tasks for objects that no longer exist are
// dropped.
func (s *Sim) runTask(t task) {
	switch t.kind {
	case taskDeviceWorker:
		if d := s.devices[t.name]; d != nil {
			s.deviceWorker(d, t.epoch)
		}
	case taskFleetWorker:
		if f := s.fleets[t.name]; f != nil {
			s.fleetWorker(f, t.epoch)
		}
	case taskFleetBatch:
		if f := s.fleets[t.name]; f != nil {
			s.checkBatch(f, t.epoch)
		}
	case taskAgent:
		if d := s.devices[t.name]; d != nil {
			s.agentStep(d, t.epoch)
		}
	case taskDetect:
		if d := s.devices[t.name]; d != nil {
			s.detectDisconnect(d, t.epoch)
		}
	}
}

// WaitIdle blocks until no scheduled work is due within horizon from now:
// with the default zero delays, WaitIdle(ctx, 0) returns once every render,
// ownership change and agent step triggered so far has happened. Work
// scheduled further out (a five-minute disconnect detection, say) does not
// hold it up. It returns ctx's error if ctx ends first.
func (s *Sim) WaitIdle(ctx context.Context, horizon time.Duration) error {
	for {
		s.mu.RLock()
		idle := len(s.tasks) == 0 || s.tasks[0].due.After(s.now().Add(horizon))
		s.mu.RUnlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
