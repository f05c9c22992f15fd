package flightctl

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFromClientYAML(t *testing.T) {
	dir := t.TempDir()
	caFile := []byte("-----BEGIN CERTIFICATE-----\nfile\n-----END CERTIFICATE-----\n")
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caFile, 0o600); err != nil {
		t.Fatal(err)
	}
	inline := []byte("-----BEGIN CERTIFICATE-----\ninline\n-----END CERTIFICATE-----\n")
	inlineB64 := base64.StdEncoding.EncodeToString(inline)

	cases := []struct {
		name    string
		yaml    string
		baseDir string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{
			name: "CLI file with inline CA, org and server name",
			yaml: `authentication:
  access-token: tok-abc
  auth-provider:
    name: oidc
    config:
      client-id: flightctl
organization: 3fa85f64-5717-4562-b3fc-2c963f66afa6
service:
  server: https://api.flightctl.example:3443
  certificate-authority-data: ` + inlineB64 + `
  tls-server-name: api.internal
`,
			check: func(t *testing.T, c Config) {
				if c.Server != "https://api.flightctl.example:3443" || c.Token != "tok-abc" ||
					c.OrgID != "3fa85f64-5717-4562-b3fc-2c963f66afa6" || c.TLSServerName != "api.internal" ||
					string(c.CAData) != string(inline) || c.InsecureSkipVerify {
					t.Errorf("config %+v / CA %q", c, c.CAData)
				}
			},
		},
		{
			name:    "CA file relative to the file's directory",
			yaml:    "service:\n  server: https://h:3443\n  certificate-authority: ca.crt\n",
			baseDir: dir,
			check: func(t *testing.T, c Config) {
				if !strings.Contains(string(c.CAData), "file") {
					t.Errorf("CA %q", c.CAData)
				}
			},
		},
		{
			name: "CA file absolute plus inline: both trusted",
			yaml: "service:\n  server: https://h:3443\n  certificate-authority: " + filepath.Join(dir, "ca.crt") +
				"\n  certificate-authority-data: " + inlineB64 + "\n",
			check: func(t *testing.T, c Config) {
				if !strings.Contains(string(c.CAData), "file") || !strings.Contains(string(c.CAData), "inline") {
					t.Errorf("CA %q", c.CAData)
				}
			},
		},
		{
			name: "insecureSkipVerify",
			yaml: "service:\n  server: https://h:3443\n  insecureSkipVerify: true\n",
			check: func(t *testing.T, c Config) {
				if !c.InsecureSkipVerify || c.Token != "" || c.OrgID != "" {
					t.Errorf("config %+v", c)
				}
			},
		},
		{name: "no server", yaml: "authentication:\n  access-token: x\n", wantErr: "service.server is empty"},
		{name: "bad base64", yaml: "service:\n  server: https://h\n  certificate-authority-data: '%%%'\n", wantErr: "not base64"},
		{name: "missing CA file", yaml: "service:\n  server: https://h\n  certificate-authority: /nonexistent/ca.crt\n", wantErr: "certificate-authority"},
		{name: "not YAML", yaml: "service: [\n", wantErr: "invalid YAML"},
		{name: "wrong type", yaml: "service:\n  insecureSkipVerify: maybe\n  server: https://h\n", wantErr: "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ConfigFromClientYAML([]byte(tc.yaml), tc.baseDir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestNewFromClientYAML(t *testing.T) {
	srv, caPEM := newTLSServer(t)
	var gotOrg, gotAuth string
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotOrg, gotAuth = r.URL.Query().Get("org_id"), r.Header.Get("Authorization")
		writeJSON(w, 200, DeviceList{Items: []Device{}})
	})
	y := "service:\n  server: " + srv.URL + "\n  certificate-authority-data: " + base64.StdEncoding.EncodeToString(caPEM) +
		"\nauthentication:\n  access-token: yaml-token-123\norganization: org-1\n"
	c, err := NewFromClientYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListDevices(context.Background(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if gotOrg != "org-1" || gotAuth != "Bearer yaml-token-123" {
		t.Errorf("org %q auth %q", gotOrg, gotAuth)
	}
	if c.timeout != DefaultTimeout || c.retry.MaxAttempts != DefaultMaxAttempts {
		t.Errorf("defaults not applied: %v %+v", c.timeout, c.retry)
	}
	if _, err := NewFromClientYAML([]byte("organization: x\n")); err == nil {
		t.Error("client.yaml without server accepted")
	}
}

func TestNewValidation(t *testing.T) {
	cases := []struct {
		server  string
		token   string
		wantURL string
		wantErr bool
	}{
		{server: "https://h:3443", wantURL: "https://h:3443/api/v1"},
		{server: "https://h:3443/", wantURL: "https://h:3443/api/v1"},
		{server: "https://h:3443/api/v1/", wantURL: "https://h:3443/api/v1"},
		{server: " https://h/flightctl ", wantURL: "https://h/flightctl/api/v1"},
		{server: "http://127.0.0.1:8080", wantURL: "http://127.0.0.1:8080/api/v1"},
		{server: "", wantErr: true},
		{server: "h:3443", wantErr: true},
		{server: "ftp://h", wantErr: true},
		{server: "https://", wantErr: true},
		{server: "https://user:pw@h", wantErr: true},
		{server: "https://h?x=1", wantErr: true},
		{server: "https://h", token: "a\nb", wantErr: true},
		{server: "https://h", token: "  padded  ", wantURL: "https://h/api/v1"},
	}
	for _, tc := range cases {
		c, err := New(Config{Server: tc.server, Token: tc.token})
		if tc.wantErr {
			if err == nil {
				t.Errorf("New(%q, %q) accepted", tc.server, tc.token)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tc.server, err)
			continue
		}
		if c.BaseURL() != tc.wantURL {
			t.Errorf("New(%q) base %q, want %q", tc.server, c.BaseURL(), tc.wantURL)
		}
	}
	c, _ := New(Config{Server: "https://h", Token: "  padded  ", Timeout: time.Second})
	if c.token != "padded" || c.timeout != time.Second {
		t.Errorf("token %q timeout %v", c.token, c.timeout)
	}
}

func TestLoadClientYAML(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "client.yaml")
	if err := os.WriteFile(path, []byte("service:\n  server: https://h:3443\n  certificate-authority: ca.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadClientYAML(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg.CAData), "PEM") {
		t.Errorf("CA not read relative to the file: %q", cfg.CAData)
	}
	if _, err := LoadClientYAML(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
}
