package flightctl

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Retry defaults. Four attempts with 250 ms doubling cover a server restart
// behind a load balancer (a few seconds) without holding a reconcile for
// long; the caller's context bounds the total anyway.
const (
	DefaultMaxAttempts    = 4
	DefaultInitialBackoff = 250 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultJitter         = 0.5
)

// RetryConfig tunes retries. Only calls that are safe to repeat are retried
// after the request may have reached the server: GET, PUT (conditional or
// not: repeating a PUT stores the same object, or fails with a conflict the
// caller handles) and DELETE. POST and PATCH are retried only when the
// connection could not be opened, because then nothing was sent.
type RetryConfig struct {
	// MaxAttempts counts the first try. Zero means DefaultMaxAttempts; 1
	// disables retries.
	MaxAttempts int
	// InitialBackoff is the wait before the second attempt; it doubles
	// after each attempt. Zero means DefaultInitialBackoff.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between attempts, a server's Retry-After
	// included. Zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Jitter adds up to this fraction of the wait at random so that many
	// clients do not hammer a recovering server in lockstep. Negative
	// disables jitter; zero means DefaultJitter.
	Jitter float64
}

func (r RetryConfig) withDefaults() RetryConfig {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = DefaultInitialBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = DefaultMaxBackoff
	}
	if r.MaxBackoff < r.InitialBackoff {
		r.MaxBackoff = r.InitialBackoff
	}
	switch {
	case r.Jitter < 0:
		r.Jitter = 0
	case r.Jitter == 0:
		r.Jitter = DefaultJitter
	}
	return r
}

// backoff returns a fresh exponential backoff for one call.
func (r RetryConfig) backoff() wait.Backoff {
	return wait.Backoff{
		Duration: r.InitialBackoff,
		Factor:   2,
		Jitter:   r.Jitter,
		Steps:    r.MaxAttempts,
		Cap:      r.MaxBackoff,
	}
}

// idempotent reports whether repeating method leaves the server as one
// successful call would.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// shouldRetry decides after a failed attempt: code is the HTTP status of an
// answer, err a failure to get one; repeatable says the request is safe to
// repeat whatever its method. ctx is the caller's context: once it is done
// nothing is retried, whatever went wrong.
func shouldRetry(ctx context.Context, method string, repeatable bool, code int, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	safe := repeatable || idempotent(method)
	if err != nil {
		if isPermanentTransportError(err) || errors.Is(err, errPermanent) || errors.Is(err, errDecode) {
			return false
		}
		if safe {
			return true
		}
		return notSent(err)
	}
	return safe && retryableStatus(code)
}

// notSent reports a failure to open the connection (refused, unreachable,
// DNS): the request never left, so even a POST may be repeated.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// parseRetryAfter reads a Retry-After header in either of its forms.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
