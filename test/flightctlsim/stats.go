package flightctlsim

import (
	"maps"
	"strconv"
	"sync"
)

// Stats counts what clients did to the simulator, so that tests can check
// a provider's request volume (polling cost, retries) and not just its
// results.
type Stats struct {
	// Requests counts API requests by operation, named after the real
	// API's operation IDs (listDevices, replaceDevice, ...), plus control
	// API requests prefixed "sim.".
	Requests map[string]int64 `json:"requests"`
	// Responses counts responses by HTTP status code.
	Responses map[string]int64 `json:"responses"`
	// BytesIn is the total of request body bytes.
	BytesIn int64 `json:"bytesIn"`
	// BytesOut is the total of response body bytes.
	BytesOut int64 `json:"bytesOut"`
	// InjectedErrors counts requests answered with an injected 5xx.
	InjectedErrors int64 `json:"injectedErrors"`
	// InjectedConflicts counts writes answered with an injected 409.
	InjectedConflicts int64 `json:"injectedConflicts"`
	// DroppedRequests counts requests dropped by the Unreachable fault.
	DroppedRequests int64 `json:"droppedRequests"`
	// DevicesListed counts the devices device listings returned, which
	// is what a listing costs the real server (per device, not per call).
	DevicesListed int64 `json:"devicesListed"`
}

// statsState accumulates Stats.
type statsState struct {
	mu sync.Mutex
	s  Stats
}

func newStatsState() *statsState {
	st := &statsState{}
	st.reset()
	return st
}

func (st *statsState) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s = Stats{Requests: map[string]int64{}, Responses: map[string]int64{}}
}

func (st *statsState) snapshot() Stats {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := st.s
	out.Requests = maps.Clone(st.s.Requests)
	out.Responses = maps.Clone(st.s.Responses)
	return out
}

// request records a finished request.
func (st *statsState) request(op string, code int, in, out int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Requests[op]++
	if code > 0 {
		st.s.Responses[strconv.Itoa(code)]++
	}
	st.s.BytesIn += in
	st.s.BytesOut += out
}

// listed records the devices one listing returned.
func (st *statsState) listed(n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.DevicesListed += int64(n)
}

// fault records an injected fault.
func (st *statsState) fault(kind string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch kind {
	case "error":
		st.s.InjectedErrors++
	case "conflict":
		st.s.InjectedConflicts++
	case "drop":
		st.s.DroppedRequests++
	}
}
