package flightctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Messages of the real server that classify errors more finely than the
// status code does. Matching on them is brittle but the server offers
// nothing better: a stale resourceVersion, a duplicate name and a
// fleet-owned device all come back as a bare 409.
const (
	msgOwnedByFleet    = "updating the resource is not allowed because it has an owner"
	msgStaleObject     = "the object has been modified"
	msgAlreadyExists   = "already exists"
	msgNoAuthToken     = "failed to get auth token"
	maxErrorBodyInMsg  = 512
	maxErrorBodyToRead = 64 << 10
)

// APIError is a non-2xx answer from the Flightctl API. Code is the HTTP
// status code (which the server repeats in the Status body); Reason and
// Message come from the Status body when there is one. When the body is not
// a Status (a proxy's HTML page, say), Message holds its beginning so the
// operator's log still says what went wrong.
type APIError struct {
	// Code is the HTTP status code.
	Code int
	// Reason is the HTTP reason phrase the server put in the Status body.
	Reason string
	// Message is the server's explanation, or the start of a non-Status body.
	Message string
	// Operation is the client call that failed, e.g. "replace_device".
	Operation string
	// Method is the HTTP method of the failed request.
	Method string
	// Path is the request path without the query string: selectors may be
	// long and are not needed to understand the failure.
	Path string
	// RequestID is the server's X-Request-Id, for matching server logs.
	RequestID string
	// RetryAfter is the server's Retry-After hint on 429 and 503, if any.
	RetryAfter time.Duration
	// NotStatus is true when the body was not a Flightctl Status object.
	NotStatus bool
}

// Error renders the failure without any request header, so it cannot carry
// the bearer token.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("flightctl ")
	b.WriteString(e.Operation)
	if e.Method != "" {
		fmt.Fprintf(&b, " (%s %s)", e.Method, e.Path)
	}
	fmt.Fprintf(&b, ": %d", e.Code)
	reason := e.Reason
	if reason == "" {
		reason = http.StatusText(e.Code)
	}
	if reason != "" {
		b.WriteString(" ")
		b.WriteString(reason)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// asAPIError unwraps err to an *APIError.
func asAPIError(err error) (*APIError, bool) {
	var e *APIError
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// IsNotFound reports whether the object does not exist.
func IsNotFound(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.Code == http.StatusNotFound
}

// IsConflict reports a 409 that a re-read and retry can resolve: a stale
// resourceVersion or a name that already exists. A 409 because the device
// belongs to a fleet is not one of those (see IsOwnedByFleet): retrying it
// can never succeed while the owner stays.
func IsConflict(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.Code == http.StatusConflict && !strings.Contains(e.Message, msgOwnedByFleet)
}

// IsStale reports a conditional write refused because the object changed
// since it was read. A failed JSON patch "test" on /metadata/resourceVersion
// is reported by the server as 400, and counts too.
func IsStale(err error) bool {
	e, ok := asAPIError(err)
	if !ok {
		return false
	}
	switch e.Code {
	case http.StatusConflict:
		return strings.Contains(e.Message, msgStaleObject)
	case http.StatusBadRequest:
		return strings.Contains(e.Message, "testing value /metadata/resourceVersion failed")
	}
	return false
}

// IsAlreadyExists reports a create refused because the name is taken.
func IsAlreadyExists(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.Code == http.StatusConflict && strings.Contains(e.Message, msgAlreadyExists)
}

// IsOwnedByFleet reports a spec change refused because the device belongs
// to a fleet. Such devices must be reported, never silently taken over.
func IsOwnedByFleet(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.Code == http.StatusConflict && strings.Contains(e.Message, msgOwnedByFleet)
}

// IsUnauthorized reports a missing or rejected credential. The server says
// 400 "failed to get auth token" when no token reached it at all (a proxy
// that strips the header produces the same), and 401 for a bad token.
func IsUnauthorized(err error) bool {
	e, ok := asAPIError(err)
	if !ok {
		return false
	}
	return e.Code == http.StatusUnauthorized ||
		(e.Code == http.StatusBadRequest && strings.Contains(e.Message, msgNoAuthToken))
}

// IsForbidden reports that the identity may not do this.
func IsForbidden(err error) bool {
	e, ok := asAPIError(err)
	return ok && e.Code == http.StatusForbidden
}

// IsInvalid reports a request the server refused as malformed: a spec that
// fails validation, a bad selector, a bad continue token, a failed patch.
// Retrying the same request cannot help.
func IsInvalid(err error) bool {
	e, ok := asAPIError(err)
	if !ok {
		return false
	}
	return (e.Code == http.StatusBadRequest || e.Code == http.StatusUnprocessableEntity) && !IsUnauthorized(err)
}

// IsRetryable reports whether the same request may succeed later without
// any change: server errors, throttling and transport failures that are not
// TLS or certificate problems. It says nothing about whether a retry is
// safe; the client only retries calls that are.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := asAPIError(err); ok {
		return retryableStatus(e.Code)
	}
	if errors.Is(err, errDecode) || errors.Is(err, errPermanent) || errors.Is(err, context.Canceled) {
		return false
	}
	return !isPermanentTransportError(err)
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// isPermanentTransportError spots failures that repeat identically on every
// attempt: the server's certificate is not trusted or names another host.
func isPermanentTransportError(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verify) || errors.As(err, &recordHeader)
}

// TokenError is a failure to get a bearer token from the client's token
// source: the identity provider refused the client credentials or the
// refresh token, or could not be reached. No request was sent.
type TokenError struct {
	// Err is the token source's error; for an OAuth2 token endpoint that
	// answered, an *oauth2.RetrieveError with the provider's error code.
	Err error
}

func (e *TokenError) Error() string { return "getting a Flightctl access token: " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

// IsTokenError reports whether err is a failure to get a token.
func IsTokenError(err error) bool {
	var te *TokenError
	return errors.As(err, &te)
}

// errPermanent marks failures on the client side that a retry would
// repeat: a request that cannot be built, a response too large to accept.
var errPermanent = errors.New("permanent failure")

// errDecode marks a 2xx response whose body could not be understood. It is
// not retried: the server will say the same thing again.
var errDecode = errors.New("cannot decode response")

// redactingError keeps the bearer token out of an error string even when a
// lower layer (or a misbehaving server echoing headers) put it there. The
// text is redacted once, when wrapping, so the error never holds the token
// itself (%#v would print it). The wrapped error stays reachable for
// errors.Is and errors.As.
type redactingError struct {
	err error
	msg string
}

func (e *redactingError) Error() string    { return e.msg }
func (e *redactingError) GoString() string { return fmt.Sprintf("flightctl error %q", e.msg) }
func (e *redactingError) Unwrap() error    { return e.err }

// redact removes token from s. Very short tokens are not redacted: replacing
// every "a" in a message would garble it, and such a token is no secret.
func redact(s, token string) string {
	if len(token) < minRedactLen || !strings.Contains(s, token) {
		return s
	}
	return strings.ReplaceAll(s, token, "[REDACTED]")
}

const minRedactLen = 6

// truncate shortens a body snippet for an error message.
func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	// Cutting may split a multi-byte character; drop the broken tail.
	return strings.ToValidUTF8(s[:n], "") + fmt.Sprintf("... (%d bytes)", len(s))
}
