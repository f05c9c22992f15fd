package flightctl

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers the n-th request (from 1) with codes[n-1], and the last
// code once the script runs out. Code 0 kills the connection without an
// answer, code -1 stalls until the client gives up.
func scripted(t *testing.T, codes ...int) (*atomic.Int32, string) {
	t.Helper()
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		// Drain the body: the server notices a client hang-up (and
		// cancels r.Context) only once the body has been read.
		_, _ = io.Copy(io.Discard, r.Body)
		i := int(n.Add(1))
		code := codes[min(i, len(codes))-1]
		switch {
		case code == 0:
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
		case code == -1:
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case code >= 200 && code < 300:
			d := testDevice("d1")
			writeJSON(w, code, &d)
		case code == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			writeStatus(w, code, "slow down")
		default:
			writeStatus(w, code, "scripted failure")
		}
	})
	return &n, srv.URL
}

func TestRetryPolicy(t *testing.T) {
	newDev := func() *Device { d := testDevice("d1"); return &d }
	get := func(c *Client) error { _, err := c.GetDevice(context.Background(), "d1"); return err }
	put := func(c *Client) error { _, err := c.ReplaceDevice(context.Background(), newDev()); return err }
	putNoRV := func(c *Client) error {
		d := newDev()
		d.Metadata.ResourceVersion = ""
		_, err := c.ReplaceDevice(context.Background(), d)
		return err
	}
	post := func(c *Client) error { _, err := c.CreateDevice(context.Background(), newDev()); return err }
	patch := func(c *Client) error {
		_, err := c.PatchDevice(context.Background(), "d1", []PatchOperation{{Op: "add", Path: "/metadata/labels/a", Value: "b"}})
		return err
	}
	guardedPatch := func(c *Client) error {
		_, err := c.PatchDevice(context.Background(), "d1", []PatchOperation{
			{Op: "test", Path: "/metadata/resourceVersion", Value: "7"}, {Op: "add", Path: "/spec", Value: map[string]any{}}})
		return err
	}
	del := func(c *Client) error { return c.DeleteDevice(context.Background(), "d1") }

	cases := []struct {
		name     string
		codes    []int
		call     func(*Client) error
		wantOK   bool
		attempts int32
	}{
		{"GET 503 then 200", []int{503, 503, 200}, get, true, 3},
		{"GET 500 every time gives up after 4", []int{500}, get, false, 4},
		{"GET 429 then 200", []int{429, 200}, get, true, 2},
		{"GET connection dropped then 200", []int{0, 200}, get, true, 2},
		{"GET 404 not retried", []int{404, 200}, get, false, 1},
		{"GET 401 not retried", []int{401, 200}, get, false, 1},
		{"GET 501 not retried", []int{501, 200}, get, false, 1},
		{"PUT with resourceVersion 502 then 200", []int{502, 200}, put, true, 2},
		{"PUT without resourceVersion 503 then 200", []int{503, 200}, putNoRV, true, 2},
		{"PUT 409 not retried", []int{409, 200}, put, false, 1},
		{"DELETE 504 then 200", []int{504, 200}, del, true, 2},
		{"POST 503 not retried", []int{503, 201}, post, false, 1},
		{"POST 429 not retried", []int{429, 201}, post, false, 1},
		{"POST connection dropped not retried", []int{0, 201}, post, false, 1},
		{"PATCH 502 not retried", []int{502, 200}, patch, false, 1},
		{"PATCH connection dropped not retried", []int{0, 200}, patch, false, 1},
		{"PATCH guarded by resourceVersion 502 then 200", []int{502, 200}, guardedPatch, true, 2},
		{"PATCH guarded by resourceVersion connection dropped then 200", []int{0, 200}, guardedPatch, true, 2},
		{"PATCH guarded by resourceVersion 400 not retried", []int{400, 200}, guardedPatch, false, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, url := scripted(t, tc.codes...)
			c := newTestClient(t, url)
			err := tc.call(c)
			if tc.wantOK != (err == nil) {
				t.Fatalf("wantOK=%v, err=%v", tc.wantOK, err)
			}
			if got := n.Load(); got != tc.attempts {
				t.Errorf("server saw %d attempts, want %d", got, tc.attempts)
			}
			st := c.Stats()
			if st.TotalRequests() != int64(tc.attempts) || st.Retries != int64(tc.attempts-1) {
				t.Errorf("stats %+v", st)
			}
			if err != nil {
				if _, isAPI := asAPIError(err); isAPI && IsRetryable(err) != retryableStatus(tc.codes[min(int(tc.attempts), len(tc.codes))-1]) {
					t.Errorf("IsRetryable wrong for %v", err)
				}
			}
		})
	}
}

func TestRetryConnectionRefused(t *testing.T) {
	addr := closedAddr(t)
	for _, tc := range []struct {
		name string
		call func(*Client) error
	}{
		{"GET", func(c *Client) error { _, err := c.GetDevice(context.Background(), "d1"); return err }},
		{"POST (nothing was sent)", func(c *Client) error {
			d := testDevice("d1")
			_, err := c.CreateDevice(context.Background(), &d)
			return err
		}},
		{"PATCH (nothing was sent)", func(c *Client) error {
			_, err := c.PatchDevice(context.Background(), "d1", nil)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, "http://"+addr)
			err := tc.call(c)
			if err == nil {
				t.Fatal("want error")
			}
			if !IsRetryable(err) {
				t.Errorf("connection refused should be retryable: %v", err)
			}
			if got := c.Stats().TotalRequests(); got != DefaultMaxAttempts {
				t.Errorf("%d attempts, want %d", got, DefaultMaxAttempts)
			}
		})
	}
}

func TestRetryPerAttemptTimeout(t *testing.T) {
	n, url := scripted(t, -1, 200)
	c := newTestClient(t, url, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	if _, err := c.GetDevice(context.Background(), "d1"); err != nil {
		t.Fatalf("GET after a stalled attempt: %v", err)
	}
	if n.Load() != 2 {
		t.Errorf("attempts %d", n.Load())
	}

	// A stalled POST may have been processed: no retry.
	n, url = scripted(t, -1, 201)
	c = newTestClient(t, url, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	d := testDevice("d1")
	if _, err := c.CreateDevice(context.Background(), &d); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout, got %v", err)
	}
	if n.Load() != 1 {
		t.Errorf("POST attempts %d", n.Load())
	}
}

func TestRetryStopsOnContextCancel(t *testing.T) {
	n, url := scripted(t, 503)
	c := newTestClient(t, url, func(c *Config) {
		c.Retry = RetryConfig{MaxAttempts: 10, InitialBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.GetDevice(ctx, "d1")
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("retry loop ignored the context: %v", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want DeadlineExceeded in %v", err)
	}
	if e, ok := asAPIError(err); !ok || e.Code != 503 {
		t.Errorf("the server's last answer should stay visible: %v", err)
	}
	if n.Load() != 1 {
		t.Errorf("attempts %d", n.Load())
	}

	// Already cancelled: nothing is sent more than once.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	c.ResetStats()
	if _, err := c.GetDevice(ctx, "d1"); !errors.Is(err, context.Canceled) {
		t.Errorf("want Canceled, got %v", err)
	}
	if got := c.Stats().TotalRequests(); got > 1 {
		t.Errorf("%d attempts with a cancelled context", got)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	_, url := scripted(t, 429, 200)
	c := newTestClient(t, url, func(c *Config) {
		c.Retry = RetryConfig{InitialBackoff: time.Millisecond, MaxBackoff: 200 * time.Millisecond, Jitter: -1}
	})
	start := time.Now()
	if _, err := c.GetDevice(context.Background(), "d1"); err != nil {
		t.Fatal(err)
	}
	// Retry-After: 1 is capped at MaxBackoff, but beats the 1 ms backoff.
	if elapsed := time.Since(start); elapsed < 190*time.Millisecond {
		t.Errorf("Retry-After ignored: retried after %v", elapsed)
	}
}

func TestRetryDisabled(t *testing.T) {
	n, url := scripted(t, 503, 200)
	c := newTestClient(t, url, func(c *Config) { c.Retry.MaxAttempts = 1 })
	if _, err := c.GetDevice(context.Background(), "d1"); err == nil {
		t.Fatal("want error")
	}
	if n.Load() != 1 {
		t.Errorf("attempts %d", n.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"-1", 0},
		{"soon", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
