package flightctl

import (
	"errors"
	"maps"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names, used as the "operation" label and as Stats keys.
const (
	OpListDevices         = "list_devices"
	OpGetDevice           = "get_device"
	OpCreateDevice        = "create_device"
	OpReplaceDevice       = "replace_device"
	OpPatchDevice         = "patch_device"
	OpDeleteDevice        = "delete_device"
	OpGetDeviceStatus     = "get_device_status"
	OpReplaceDeviceStatus = "replace_device_status"
	OpPatchDeviceStatus   = "patch_device_status"
	OpGetLastSeen         = "get_device_lastseen"
	OpListFleets          = "list_fleets"
	OpGetFleet            = "get_fleet"
	OpCreateFleet         = "create_fleet"
	OpReplaceFleet        = "replace_fleet"
	OpDeleteFleet         = "delete_fleet"
	OpListEvents          = "list_events"
)

// codeTransportError is the "code" label of attempts that got no HTTP
// response at all.
const codeTransportError = "error"

// The collectors are package-level so that any number of clients share one
// set of series and registering twice is harmless; they count even when
// never registered.
var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flightctl_client_requests_total",
		Help: "HTTP requests sent to the Flightctl API, by operation and HTTP status code (\"error\" when no response arrived). Retries count separately.",
	}, []string{"operation", "code"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flightctl_client_request_duration_seconds",
		Help: "Duration of single HTTP requests to the Flightctl API, response body included.",
		// From a loopback simulator (ms) to a slow token check (~10 s).
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})

	// The byte counters are what a poll costs on the wire (issue 17):
	// bodies only, as decoded by the client; HTTP headers and TLS framing
	// add a few hundred bytes per request on top.
	requestBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flightctl_client_request_bytes_total",
		Help: "Request body bytes sent to the Flightctl API, by operation (retries included; headers and TLS not counted).",
	}, []string{"operation"})
	responseBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flightctl_client_response_bytes_total",
		Help: "Response body bytes read from the Flightctl API, by operation (error bodies included; headers and TLS not counted).",
	}, []string{"operation"})
)

// RegisterMetrics exposes the client metrics on reg, for example
// controller-runtime's metrics.Registry. Registering on the same registry
// twice is not an error.
func RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{requestsTotal, requestDuration, requestBytes, responseBytes} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// Stats is a snapshot of one client's traffic. Benchmarks and tests use it
// to count API calls per poll without scraping Prometheus.
type Stats struct {
	// Requests counts HTTP requests sent (retries included) by operation.
	Requests map[string]int64
	// Calls counts client method calls by operation; a paging helper
	// counts one call per page.
	Calls map[string]int64
	// Retries counts attempts after the first, over all operations.
	Retries int64
	// Failures counts calls that returned an error, by operation.
	Failures map[string]int64
}

// TotalRequests sums Requests.
func (s Stats) TotalRequests() int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

type stats struct {
	mu       sync.Mutex
	requests map[string]int64
	calls    map[string]int64
	failures map[string]int64
	retries  int64
}

func newStats() *stats {
	return &stats{requests: map[string]int64{}, calls: map[string]int64{}, failures: map[string]int64{}}
}

func (s *stats) call(op string, err error) {
	s.mu.Lock()
	s.calls[op]++
	if err != nil {
		s.failures[op]++
	}
	s.mu.Unlock()
}

func (s *stats) attempt(op string, retry bool) {
	s.mu.Lock()
	s.requests[op]++
	if retry {
		s.retries++
	}
	s.mu.Unlock()
}

func (s *stats) snapshot() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Requests: maps.Clone(s.requests),
		Calls:    maps.Clone(s.calls),
		Failures: maps.Clone(s.failures),
		Retries:  s.retries,
	}
}

func (s *stats) reset() {
	s.mu.Lock()
	s.requests = map[string]int64{}
	s.calls = map[string]int64{}
	s.failures = map[string]int64{}
	s.retries = 0
	s.mu.Unlock()
}

func observe(op string, code int, seconds float64) {
	label := codeTransportError
	if code > 0 {
		label = strconv.Itoa(code)
	}
	requestsTotal.WithLabelValues(op, label).Inc()
	requestDuration.WithLabelValues(op).Observe(seconds)
}

// observeBytes counts one attempt's body bytes: sent is the request body,
// received what was read of the response body.
func observeBytes(op string, sent, received int64) {
	requestBytes.WithLabelValues(op).Add(float64(sent))
	responseBytes.WithLabelValues(op).Add(float64(received))
}
