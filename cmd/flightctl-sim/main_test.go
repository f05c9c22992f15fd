package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// readyLine waits for the "ready" log line and returns its fields.
func readyLine(t *testing.T, logs *syncBuffer) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "flightctl-sim ready" {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("simulator not ready; logs:\n%s", logs.String())
	return nil
}

// runCmd runs a command line and returns its exit code and output.
func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestServeAndControl(t *testing.T) {
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	clientPath := filepath.Join(dir, "client.yaml")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--token", "tok", "--tls", "--ca-out", caPath,
			"--client-config-out", clientPath, "--render-delay", "0", "--agent-delay", "0",
			"--disconnect-detection", "100ms"}, &bytes.Buffer{}, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d; logs:\n%s", code, logs.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	ready := readyLine(t, logs)
	url, _ := ready["url"].(string)
	if !strings.HasPrefix(url, "https://127.0.0.1:") || ready["caFile"] != caPath || ready["token"] != nil {
		t.Fatalf("ready line: %v", ready)
	}
	client := clientYAML(t, clientPath)
	if !strings.Contains(client, "server: "+url) || !strings.Contains(client, "access-token: tok") || !strings.Contains(client, "certificate-authority-data: ") {
		t.Errorf("client config:\n%s", client)
	}

	// The default configuration is served, over TLS with the written CA.
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/devices?labelSelector=fleet%3Dedge-fleet-1", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Items) != 2 || list.Items[0].Metadata.Name != "device-1" {
		t.Fatalf("devices: %+v %v", list, err)
	}

	ctl := func(args ...string) (int, string, string) {
		return runCmd(append(args, "--server", url, "--token", "tok", "--ca", caPath)...)
	}
	code, out, errOut := ctl("disconnect", "device-1")
	if code != 0 || !strings.Contains(out, `"agentConnected": false`) {
		t.Fatalf("disconnect: %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, out, _ = ctl("status", "device-1")
		if strings.Contains(out, `"summaryStatus": "Unknown"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never detected: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Flags may also come first.
	code, out, _ = runCmd("reconnect", "--server", url, "--token", "tok", "--ca", caPath, "device-1")
	if code != 0 || !strings.Contains(out, `"summaryStatus": "Online"`) {
		t.Errorf("reconnect: %d %s", code, out)
	}
	if code, out, _ := ctl("faults", `{"latency":"1ms"}`); code != 0 || !strings.Contains(out, `"latency": "1ms"`) {
		t.Errorf("faults: %d %s", code, out)
	}
	if code, out, _ := ctl("stats"); code != 0 || !strings.Contains(out, `"listDevices": 1`) {
		t.Errorf("stats: %d %s", code, out)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"disconnect", "nope", "--server", url, "--token", "tok", "--ca", caPath}, `404 Not Found: Device of name "nope" not found`},
		{[]string{"disconnect", "device-1", "--server", url, "--token", "bad", "--ca", caPath}, "401 Unauthorized: failed to validate token"},
		{[]string{"disconnect", "device-1", "--server", url, "--token", "tok"}, "certificate"},
		{[]string{"disconnect", "--server", url, "--token", "tok"}, "usage: flightctl-sim disconnect DEVICE"},
		{[]string{"faults", `{"errorRate":7}`, "--server", url, "--token", "tok", "--ca", caPath}, "errorRate must be between 0 and 1"},
	} {
		code, _, errOut := runCmd(tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: %d %q, want %q", tc.args, code, errOut, tc.msg)
		}
	}
}

func clientYAML(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("client config mode %v", fi.Mode().Perm())
	}
	return string(b)
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("devices: [{name: a, bogus: 1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"--listen", ":0"}, "not a loopback address"},
		{[]string{"--agent-delay", "soon"}, "--agent-delay"},
		{[]string{"--agent-delay", "1s,2s"}, "--agent-delay"},
		{[]string{"--ca-out", "x.pem"}, "--ca-out needs --tls"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"--config", badConfig}, "unknown field"},
		{[]string{"--faults", `{"errorRate":"lots"}`}, "--faults"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--cost-model", "cheap"}, `--cost-model: unknown cost model "cheap"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"serve", "extra"}, "serve takes no arguments"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"stats", "--token", ""}, "--token"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("FLIGHTCTL_SIM_TOKEN", "")
			code, _, errOut := runCmd(tc.args...)
			if code != 1 || !strings.Contains(errOut, tc.msg) {
				t.Errorf("exit %d, stderr %q, want %q", code, errOut, tc.msg)
			}
		})
	}
	if code, out, _ := runCmd("help"); code != 0 || !strings.Contains(out, "flightctl-sim disconnect DEVICE") {
		t.Errorf("help: %d %s", code, out)
	}
}

func TestParseAgentDelays(t *testing.T) {
	tests := []struct {
		in   string
		want flightctlsim.AgentDelays
		ok   bool
	}{
		{"1s", flightctlsim.AgentDelays{Fetch: time.Second, Preparing: time.Second, Starting: time.Second}, true},
		{"0", flightctlsim.AgentDelays{}, true},
		{"100ms, 2s ,3s", flightctlsim.AgentDelays{Fetch: 100 * time.Millisecond, Preparing: 2 * time.Second, Starting: 3 * time.Second}, true},
		{"-1s", flightctlsim.AgentDelays{}, false},
		{"1s,2s", flightctlsim.AgentDelays{}, false},
	}
	for _, tc := range tests {
		got, err := parseAgentDelays(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
}

func TestServeGeneratedToken(t *testing.T) {
	t.Setenv("FLIGHTCTL_SIM_TOKEN", "")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0"}, &bytes.Buffer{}, logs) }()
	ready := readyLine(t, logs)
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	if tok, _ := ready["token"].(string); len(tok) < 32 {
		t.Errorf("generated token not logged: %v", ready)
	}
	if !strings.HasPrefix(ready["url"].(string), "http://127.0.0.1:") {
		t.Errorf("url %v", ready["url"])
	}
}
