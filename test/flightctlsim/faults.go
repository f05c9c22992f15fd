package flightctlsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// Faults make the simulated server misbehave the ways a real one behind a
// network does, so that the provider's retries, backoff and conflict
// handling can be tested. They apply to the Flightctl API (/api/v1), never
// to the control API (/sim/v1), so a test can always switch them off.
type Faults struct {
	// ErrorRate is the fraction (0..1) of API requests answered with
	// ErrorCode and a Status body instead of being served.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// ErrorCode is the status of injected errors; zero means 503.
	ErrorCode int `json:"errorCode,omitempty"`
	// Latency is added to every API request before it is served.
	Latency Duration `json:"latency,omitempty"`
	// ConflictCount answers the next N device or fleet writes (PUT, PATCH)
	// with the resourceVersion conflict a concurrent writer would cause.
	ConflictCount int `json:"conflictCount,omitempty"`
	// ConflictRate is the fraction (0..1) of such writes answered with a
	// conflict once ConflictCount is used up.
	ConflictRate float64 `json:"conflictRate,omitempty"`
	// Unreachable drops every API connection without an answer, as when
	// the server or the network path to it is down.
	Unreachable bool `json:"unreachable,omitempty"`
	// RejectImage makes device writes (PUT or PATCH) whose resulting spec
	// names this image fail validation (400), modelling content the server
	// refuses that the client did not foresee.
	RejectImage string `json:"rejectImage,omitempty"`
}

// validate rejects nonsensical fault settings.
func (f Faults) validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return fmt.Errorf("errorRate must be between 0 and 1, got %v", f.ErrorRate)
	}
	if f.ConflictRate < 0 || f.ConflictRate > 1 {
		return fmt.Errorf("conflictRate must be between 0 and 1, got %v", f.ConflictRate)
	}
	if f.ErrorCode != 0 && (f.ErrorCode < 500 || f.ErrorCode > 599) {
		return fmt.Errorf("errorCode must be a 5xx status, got %d", f.ErrorCode)
	}
	if f.ConflictCount < 0 || f.Latency < 0 {
		return fmt.Errorf("conflictCount and latency must not be negative")
	}
	return nil
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("250ms"); a bare number is taken as milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "250ms" or 250 (milliseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration must be a string like \"250ms\" or a number of milliseconds: %s", b)
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// faultState is the injector: current settings and a random source.
type faultState struct {
	mu  sync.Mutex
	f   Faults
	rng *rand.Rand
}

func newFaultState(f Faults, seed uint64) *faultState {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &faultState{f: f, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (fs *faultState) get() Faults {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.f
}

func (fs *faultState) set(f Faults) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.f = f
}

// request decides the fate of an API request: dropped, delayed, or
// answered with an error code (0 means serve it).
func (fs *faultState) request() (drop bool, delay time.Duration, code int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.f.Unreachable {
		return true, 0, 0
	}
	delay = time.Duration(fs.f.Latency)
	if fs.f.ErrorRate > 0 && fs.rng.Float64() < fs.f.ErrorRate {
		code = fs.f.ErrorCode
		if code == 0 {
			code = 503
		}
	}
	return false, delay, code
}

// conflict decides whether a write gets a forced conflict.
func (fs *faultState) conflict() bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.f.ConflictCount > 0 {
		fs.f.ConflictCount--
		return true
	}
	return fs.f.ConflictRate > 0 && fs.rng.Float64() < fs.f.ConflictRate
}

// rejected returns the validation message for a device spec the
// RejectImage fault refuses, or "".
func (fs *faultState) rejected(spec []byte) string {
	fs.mu.Lock()
	img := fs.f.RejectImage
	fs.mu.Unlock()
	if img == "" || !bytes.Contains(spec, []byte(img)) {
		return ""
	}
	return fmt.Sprintf("spec.applications: image %q is not allowed (injected fault)", img)
}
