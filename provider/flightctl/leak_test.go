package flightctl

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
)

// leakToken is distinctive so that any copy of it is found.
const leakToken = "eyLEAKCHECK.Zq7xW3vN9pT2kR5mJ8hB.sEcReT-4f1c9e"

// TestTokenNeverLeaks drives every error path with a distinctive token and
// checks that neither errors nor log lines contain it, including when a
// broken server echoes the Authorization header back.
func TestTokenNeverLeaks(t *testing.T) {
	var (
		mu   sync.Mutex
		logs []string
	)
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		logs = append(logs, prefix+" "+args)
		mu.Unlock()
	}, funcr.Options{Verbosity: 10})

	var sawToken sync.Map
	echo := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+leakToken {
			sawToken.Store(r.URL.Path, true)
		}
		auth := r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/api/v1/devices/unauthorized":
			writeStatus(w, 401, "failed to validate token")
		case "/api/v1/devices/noauth":
			writeStatus(w, 400, "failed to get auth token")
		case "/api/v1/devices/missing":
			writeStatus(w, 404, `Device of name "missing" not found`)
		case "/api/v1/devices/conflict":
			writeStatus(w, 409, "the object has been modified; please apply your changes to the latest version and try again")
		case "/api/v1/devices/status-echo":
			writeStatus(w, 400, "bad token "+auth)
		case "/api/v1/devices/html-echo":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "<html><body>proxy error, you sent %s</body></html>", auth)
		case "/api/v1/devices/ok-garbage":
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "not json %s", auth)
		case "/api/v1/devices/wrong-kind":
			writeJSON(w, 200, map[string]string{"kind": "Secret", "apiVersion": "v1", "data": auth})
		case "/api/v1/devices/redirect":
			http.Redirect(w, r, "https://elsewhere.example/?t="+auth, http.StatusFound)
		case "/api/v1/devices/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
	plain := newServer(t, echo)
	tlsSrv, _ := newTLSServer(t)

	mk := func(server string, mod ...func(*Config)) *Client {
		cfg := Config{Server: server, Token: leakToken, Logger: logger, Retry: fastRetry, Timeout: 200 * time.Millisecond}
		for _, m := range mod {
			m(&cfg)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	var errs []error
	add := func(err error) {
		if err == nil {
			t.Errorf("expected an error")
			return
		}
		errs = append(errs, err)
	}
	c := mk(plain.URL)
	for _, name := range []string{"unauthorized", "noauth", "missing", "conflict", "status-echo", "html-echo", "ok-garbage", "wrong-kind", "redirect", "slow"} {
		_, err := c.GetDevice(ctx, name)
		add(err)
		if v, _ := sawToken.Load("/api/v1/devices/" + name); v == nil {
			t.Errorf("%s: server did not receive the token, the test proves nothing", name)
		}
	}
	// Writes too: the request body path is different.
	d := testDevice("html-echo")
	_, err := c.ReplaceDevice(ctx, &d)
	add(err)
	_, err = c.CreateDevice(ctx, &d)
	add(err)
	_, err = c.PatchDevice(ctx, "status-echo", []PatchOperation{{Op: "remove", Path: "/metadata/labels/x"}})
	add(err)
	_, err = c.GetLastSeen(ctx, "ok-garbage")
	add(err)
	// TLS failure, network failure, cancelled context.
	_, err = mk(tlsSrv.URL).ListDevices(ctx, ListOptions{})
	add(err)
	_, err = mk("http://"+closedAddr(t)).ListDevices(ctx, ListOptions{})
	add(err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.ListDevices(cctx, ListOptions{})
	add(err)
	// Construction and configuration errors.
	_, err = New(Config{Server: plain.URL, Token: leakToken + "\nX-Injected: 1"})
	add(err)
	_, err = New(Config{Server: "ftp://h", Token: leakToken})
	add(err)
	_, err = ConfigFromClientYAML([]byte("service:\n  server: https://h\nauthentication:\n  access-token: ["+leakToken+"\n"), "")
	add(err)
	_, err = ConfigFromClientYAML([]byte("authentication: {access-token: "+leakToken+"}\nservice: {server: [x]}\n"), "")
	add(err)

	for i, err := range errs {
		for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(s, leakToken) || strings.Contains(s, leakToken[:20]) {
				t.Errorf("error %d leaks the token: %s", i, s)
			}
		}
	}
	cfg := Config{Server: plain.URL, Token: leakToken}
	for _, s := range []string{fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg), fmt.Sprint(cfg)} {
		if strings.Contains(s, leakToken) {
			t.Errorf("printed Config leaks the token: %s", s)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) == 0 {
		t.Fatal("no log lines: the logger was not used")
	}
	for _, l := range logs {
		if strings.Contains(l, leakToken) || strings.Contains(l, leakToken[:20]) || strings.Contains(strings.ToLower(l), "authorization") {
			t.Errorf("log line leaks: %s", l)
		}
	}
	t.Logf("%d errors, %d log lines checked", len(errs), len(logs))
	if testing.Verbose() {
		for _, e := range errs {
			t.Log(e)
		}
		for _, l := range logs[:5] {
			t.Log(l)
		}
	}
}
