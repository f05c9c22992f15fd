package flightctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"k8s.io/client-go/rest"
)

// APIVersionHeader is the request header that pins the API version. The
// server answers with the version it used in the same header.
const APIVersionHeader = "Flightctl-API-Version"

// apiVersionValue is what this client asks for.
const apiVersionValue = "v1beta1"

// maxResponseBytes caps how much of a 2xx body is read. A full page of 1000
// devices with inline application files stays far below it; the cap only
// protects the operator from a runaway or hostile endpoint.
const maxResponseBytes = 256 << 20

// Content types the server distinguishes.
const (
	contentTypeJSON      = "application/json"
	contentTypeJSONPatch = "application/json-patch+json"
)

// Client talks to one Flightctl API server. It is safe for concurrent use.
type Client struct {
	base   *url.URL // scheme://host[:port][/prefix]/api/v1, no trailing slash
	token  string
	tokens oauth2.TokenSource
	// lastToken is the newest token tokens gave, kept to redact it.
	lastToken atomic.Pointer[string]
	orgID     string
	timeout   time.Duration
	retry     RetryConfig
	http      *http.Client
	log       logr.Logger
	userAgent string
	stats     *stats
	// rest is the console's WebSocket connection settings; nil when the
	// caller supplied its own Transport.
	rest *rest.Config
}

// New checks cfg and builds a client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	base, err := parseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	token := strings.TrimSpace(cfg.Token)
	if strings.ContainsAny(token, "\r\n\t ") {
		// Do not quote the token: this message may be logged.
		return nil, errors.New("flightctl: token contains whitespace or line breaks")
	}
	rt := cfg.Transport
	if rt == nil {
		rt, err = newTransport(cfg)
		if err != nil {
			return nil, err
		}
	}
	c := &Client{
		base:      base,
		token:     token,
		tokens:    cfg.TokenSource,
		orgID:     cfg.OrgID,
		timeout:   cfg.Timeout,
		retry:     cfg.Retry.withDefaults(),
		log:       cfg.Logger,
		userAgent: cfg.UserAgent,
		stats:     newStats(),
		http: &http.Client{
			Transport: rt,
			// The API never redirects; following one could hand the
			// token to another origin or turn a PUT into a GET.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if cfg.Transport == nil {
		c.rest = restConfig(cfg, base.Scheme+"://"+base.Host, token)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.userAgent == "" {
		c.userAgent = "vk-flightctl"
	}
	return c, nil
}

// parseServer turns "https://host:port" into the API base URL.
func parseServer(server string) (*url.URL, error) {
	server = strings.TrimSpace(server)
	if server == "" {
		return nil, errors.New("flightctl: server URL is empty")
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("flightctl: server URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("flightctl: server URL %q: scheme must be https (or http for tests)", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("flightctl: server URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("flightctl: server URL must not carry credentials; use the token")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("flightctl: server URL %q must not have a query or fragment", u.Redacted())
	}
	p := strings.TrimRight(u.Path, "/")
	p = strings.TrimSuffix(p, "/api/v1")
	u.Path = p + "/api/v1"
	u.RawPath = ""
	return u, nil
}

// newTransport clones the default transport (proxy from environment,
// keep-alives, HTTP/2) and sets up server verification.
func newTransport(cfg Config) (*http.Transport, error) {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		// Someone replaced the default transport; start from scratch.
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.TLSServerName,
		InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // only when explicitly configured
	}
	if len(bytes.TrimSpace(cfg.CAData)) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			return nil, errors.New("flightctl: CA bundle holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	t.TLSClientConfig = tc
	return t, nil
}

// BaseURL is the API root the client sends requests under, ending in
// /api/v1.
func (c *Client) BaseURL() string { return c.base.String() }

// Stats returns a snapshot of this client's traffic since it was created or
// last reset.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// ResetStats zeroes the counters behind Stats, e.g. between benchmark
// iterations.
func (c *Client) ResetStats() { c.stats.reset() }

// request describes one API call.
type request struct {
	op          string
	method      string
	path        string // below /api/v1, already escaped, starting with "/"
	query       url.Values
	body        []byte
	contentType string
	// stream, when set, takes a 2xx body as it arrives instead of it
	// being read whole; its error is a body that does not decode.
	stream func(io.Reader) error
	// repeatable marks a request that is safe to send again although its
	// method is not idempotent (a patch guarded by a resourceVersion test).
	repeatable bool
}

// response is a 2xx answer with its body read.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// call runs r and, when out is non-nil, decodes the 2xx body into it. It
// is the single exit of every API method: stats are counted and the token
// is scrubbed from any error here.
func (c *Client) call(ctx context.Context, r request, out typed, wantKind string) (*response, error) {
	resp, err := c.doRetry(ctx, r)
	if err == nil && out != nil {
		err = c.decode(r, resp, out, wantKind)
	}
	return resp, c.finish(r.op, err)
}

// finish records the outcome of a call and scrubs its error.
func (c *Client) finish(op string, err error) error {
	c.stats.call(op, err)
	return c.scrub(err)
}

// doRetry runs r with retries and turns non-2xx answers into *APIError.
func (c *Client) doRetry(ctx context.Context, r request) (*response, error) {
	u := c.url(r.path, r.query)
	bo := c.retry.backoff()
	var lastErr error
	for attempt := 1; ; attempt++ {
		resp, retryAfter, err := c.attempt(ctx, r, u, attempt)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		code, transportErr := 0, err
		if ae, ok := asAPIError(err); ok {
			code, transportErr = ae.Code, nil
		}
		if attempt >= c.retry.MaxAttempts || !shouldRetry(ctx, r.method, r.repeatable, code, transportErr) {
			if attempt > 1 {
				return nil, fmt.Errorf("%w (after %d attempts)", lastErr, attempt)
			}
			return nil, lastErr
		}
		// The server's Retry-After wins over the backoff, within reason:
		// MaxBackoff caps it so a confused proxy cannot park a reconcile.
		wait := max(bo.Step(), min(retryAfter, c.retry.MaxBackoff))
		if err := sleep(ctx, wait); err != nil {
			// Keep the server's answer: "503 after 3 attempts, then
			// the context ended" is more useful than "context canceled".
			return nil, fmt.Errorf("%w (after %d attempts, gave up retrying: %w)", lastErr, attempt, err)
		}
	}
}

// attempt sends one HTTP request. It returns the server's Retry-After hint
// alongside retryable errors.
func (c *Client) attempt(ctx context.Context, r request, u string, n int) (*response, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(actx, r.method, u, body)
	if err != nil {
		return nil, 0, fmt.Errorf("flightctl %s: %w: %w", r.op, errPermanent, err)
	}
	req.Header.Set("Accept", contentTypeJSON)
	req.Header.Set(APIVersionHeader, apiVersionValue)
	req.Header.Set("User-Agent", c.userAgent)
	bearer, err := c.bearer()
	if err != nil {
		return nil, 0, fmt.Errorf("flightctl %s: %w: %w", r.op, errPermanent, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", r.contentType)
	}

	c.stats.attempt(r.op, n > 1)
	start := time.Now()
	hresp, err := c.http.Do(req)
	var (
		raw       []byte
		streamErr error
		received  int64
	)
	if err == nil {
		if r.stream != nil && success(hresp.StatusCode) {
			received, streamErr, err = c.streamBody(r, hresp)
		} else {
			raw, err = readBody(hresp)
			received = int64(len(raw))
		}
	}
	elapsed := time.Since(start)
	// Body bytes, counted whether or not the call succeeded: a refused
	// or cut-off exchange still crossed the network.
	observeBytes(r.op, int64(len(r.body)), received)

	code := 0
	if hresp != nil {
		code = hresp.StatusCode
	}
	if err != nil {
		observe(r.op, 0, elapsed.Seconds())
		c.log.V(1).Info("flightctl request failed", "op", r.op, "method", r.method, "path", req.URL.Path,
			"attempt", n, "duration", elapsed, "error", c.scrubString(err.Error()))
		// net/http's *url.Error carries the full URL (selectors, org_id,
		// never the token) and the cause; callers match the cause with
		// errors.Is.
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, 0, fmt.Errorf("flightctl %s: no answer within %s: %w", r.op, c.timeout, err)
		}
		return nil, 0, fmt.Errorf("flightctl %s: %w", r.op, err)
	}
	observe(r.op, code, elapsed.Seconds())
	c.log.V(1).Info("flightctl request", "op", r.op, "method", r.method, "path", req.URL.Path,
		"code", code, "attempt", n, "duration", elapsed)

	if success(code) {
		if streamErr != nil {
			return nil, 0, streamErr
		}
		return &response{code: code, header: hresp.Header, body: raw}, 0, nil
	}
	apiErr := c.apiError(r, req.URL.Path, hresp, raw)
	return nil, apiErr.RetryAfter, apiErr
}

func success(code int) bool { return code >= 200 && code <= 299 }

// readBody reads and closes a whole body, within maxResponseBytes for a
// 2xx one and maxErrorBodyToRead for any other.
func readBody(hresp *http.Response) ([]byte, error) {
	defer func() { _ = hresp.Body.Close() }()
	limit := int64(maxResponseBytes)
	if !success(hresp.StatusCode) {
		limit = maxErrorBodyToRead
	}
	var buf bytes.Buffer
	if n := hresp.ContentLength; n > 0 && n <= limit {
		// A device is ~10-15 KB; io.ReadAll would grow its buffer from
		// 512 bytes, leaving two to three times the body as garbage for
		// every write's answer.
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(hresp.Body, limit+1))
	raw := buf.Bytes()
	if err == nil && int64(len(raw)) > limit && success(hresp.StatusCode) {
		err = fmt.Errorf("%w: response body larger than %d bytes", errPermanent, limit)
	}
	return raw, err
}

// streamBody hands a 2xx body to r.stream and closes it, returning how
// many body bytes the decoder read. A failure to
// read the body is a transport error (readErr), retried like any other; a
// body that does not decode is decodeErr, which is not.
func (c *Client) streamBody(r request, hresp *http.Response) (n int64, decodeErr, readErr error) {
	body := &streamedBody{r: io.LimitReader(hresp.Body, maxResponseBytes+1)}
	err := r.stream(body)
	if err == nil && body.err == nil {
		// A decoder stops at the end of its value; the rest (a newline,
		// or pages a stopped caller did not want) still crossed the wire,
		// and reading it lets the connection be reused.
		_, _ = io.Copy(io.Discard, body)
	}
	_ = hresp.Body.Close()
	switch {
	case body.err != nil:
		return body.n, nil, body.err
	case err != nil:
		return body.n, c.decodeError(r, hresp, body.head, err), nil
	}
	return body.n, nil, nil
}

// decodeError describes a 2xx body that could not be decoded, quoting
// its start.
func (c *Client) decodeError(r request, hresp *http.Response, head []byte, err error) error {
	where := fmt.Sprintf("flightctl %s (%s %s)", r.op, r.method, c.base.Path+r.path)
	if errors.Is(err, errEmptyBody) {
		return fmt.Errorf("%s: %w: empty body with status %d", where, errDecode, hresp.StatusCode)
	}
	return fmt.Errorf("%s: %w (%s, status %d): %w; body starts: %s", where, errDecode,
		hresp.Header.Get("Content-Type"), hresp.StatusCode, err, c.scrubString(truncate(string(head), len(head))))
}

// streamedBody is a 2xx body being decoded. It keeps its first bytes for
// an error message, enforces maxResponseBytes, and remembers a failure
// to read, which tells a broken transfer from a body that does not
// decode.
type streamedBody struct {
	r    io.Reader
	n    int64
	head []byte
	err  error
}

// headLen is how much of a streamed body an error message quotes.
const headLen = 200

// Read reads from the body, recording what streamedBody keeps.
func (b *streamedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if keep := min(n, headLen-len(b.head)); keep > 0 {
		b.head = append(b.head, p[:keep]...)
	}
	b.n += int64(n)
	if b.n > maxResponseBytes {
		err = fmt.Errorf("%w: response body larger than %d bytes", errPermanent, maxResponseBytes)
	}
	if err != nil && !errors.Is(err, io.EOF) && b.err == nil {
		b.err = err
	}
	return n, err
}

// apiError builds an *APIError from a non-2xx answer.
func (c *Client) apiError(r request, path string, hresp *http.Response, raw []byte) *APIError {
	e := &APIError{
		Code:       hresp.StatusCode,
		Operation:  r.op,
		Method:     r.method,
		Path:       path,
		RequestID:  hresp.Header.Get("X-Request-Id"),
		RetryAfter: parseRetryAfter(hresp.Header.Get("Retry-After"), time.Now()),
	}
	var st Status
	if err := json.Unmarshal(raw, &st); err == nil && (st.Kind == KindStatus || st.Message != "" || st.Code != 0) {
		e.Reason = st.Reason
		e.Message = c.scrubString(st.Message)
		return e
	}
	e.NotStatus = true
	e.Reason = http.StatusText(hresp.StatusCode)
	if len(bytes.TrimSpace(raw)) > 0 {
		ct := hresp.Header.Get("Content-Type")
		if ct == "" {
			ct = "no content type"
		}
		e.Message = fmt.Sprintf("non-Status body (%s): %s", ct,
			c.scrubString(truncate(string(raw), maxErrorBodyInMsg)))
	}
	return e
}

// url joins the base, path and query, adding org_id.
func (c *Client) url(path string, q url.Values) string {
	if c.orgID != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("org_id", c.orgID)
	}
	s := c.base.String() + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// bearer is the token for the next request: the static one, or a fresh
// one from the token source (which refreshes it when it is about to
// expire). A source that fails yields a *TokenError.
func (c *Client) bearer() (string, error) {
	if c.tokens == nil {
		return c.token, nil
	}
	t, err := c.tokens.Token()
	if err != nil {
		return "", &TokenError{Err: err}
	}
	if t.AccessToken != "" {
		c.lastToken.Store(&t.AccessToken)
	}
	return t.AccessToken, nil
}

// scrub wraps err so its text cannot reveal the token.
func (c *Client) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := c.scrubString(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactingError{err: err, msg: msg}
}

func (c *Client) scrubString(s string) string {
	s = redact(s, c.token)
	if t := c.lastToken.Load(); t != nil {
		s = redact(s, *t)
	}
	return s
}

// typed is implemented by the wire types that carry apiVersion and kind.
type typed interface {
	typeMeta() (apiVersion, kind string)
}

func (d *Device) typeMeta() (string, string)       { return d.APIVersion, d.Kind }
func (d *deviceHeader) typeMeta() (string, string) { return d.APIVersion, d.Kind }
func (l *DeviceList) typeMeta() (string, string)   { return l.APIVersion, l.Kind }
func (f *Fleet) typeMeta() (string, string)        { return f.APIVersion, f.Kind }
func (l *FleetList) typeMeta() (string, string)    { return l.APIVersion, l.Kind }
func (l *EventList) typeMeta() (string, string)    { return l.APIVersion, l.Kind }
func (l *LastSeen) typeMeta() (string, string)     { return "", "" }

// decode unmarshals a 2xx body into out and checks apiVersion and kind
// loosely: missing values are accepted (simulators and older servers omit
// them), wrong ones are not, because they mean the URL points at something
// that is not the Flightctl API.
func (c *Client) decode(r request, resp *response, out typed, wantKind string) error {
	where := fmt.Sprintf("flightctl %s (%s %s)", r.op, r.method, c.base.Path+r.path)
	if len(bytes.TrimSpace(resp.body)) == 0 {
		return fmt.Errorf("%s: %w: empty body with status %d", where, errDecode, resp.code)
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("%s: %w (%s, status %d): %w; body starts: %s", where, errDecode,
			resp.header.Get("Content-Type"), resp.code, err, c.scrubString(truncate(string(resp.body), 200)))
	}
	av, kind := out.typeMeta()
	if err := checkTypeMeta(av, kind, wantKind); err != nil {
		return fmt.Errorf("%s: %w: %w", where, errDecode, err)
	}
	return nil
}

// encode marshals a request body.
func encode(op string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("flightctl %s: encode request: %w", op, err)
	}
	return b, nil
}

// objectPath builds "/<collection>/<name>[/sub]" with the name escaped.
func objectPath(collection, name string, sub ...string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("flightctl: empty %s name", strings.TrimSuffix(collection, "s"))
	}
	p := "/" + collection + "/" + url.PathEscape(name)
	for _, s := range sub {
		p += "/" + s
	}
	return p, nil
}
