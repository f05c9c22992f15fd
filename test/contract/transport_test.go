package contract

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// testTLS covers server verification as a provider configures it: a CA
// bundle, an explicit server name, InsecureSkipVerify, and the two
// failures (wrong name, wrong CA) that must stop at once, without retries.
func testTLS(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	u, err := url.Parse(tg.Config().Server)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := otherCAPEM(t)
	cases := []struct {
		name string
		opt  clientOpt
		// fails says which certificate error is expected; "" is success.
		fails string
	}{
		{name: "trusting the server's CA", opt: func(*flightctl.Config) {}},
		{name: "InsecureSkipVerify without a CA", opt: func(c *flightctl.Config) { c.CAData = nil; c.InsecureSkipVerify = true }},
		{name: "server name equal to the host", opt: func(c *flightctl.Config) { c.TLSServerName = u.Hostname() }},
		{name: "server name the certificate does not carry", opt: func(c *flightctl.Config) { c.TLSServerName = "not-flightctl.invalid" }, fails: "hostname"},
		{name: "CA bundle of another authority", opt: func(c *flightctl.Config) { c.CAData = otherCA }, fails: "authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tg, tc.opt)
			_, err := c.ListDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: f.selector()})
			if tc.fails == "" {
				if err != nil {
					t.Fatalf("ListDevices: %v", err)
				}
				return
			}
			expectCertError(t, tg, c, err, tc.fails)
		})
	}
}

// testTLSWithoutCA covers a client that was not given the server's
// private CA: verification against the system roots must fail with an
// x509 error, which is not retried and not mistaken for an API answer.
func testTLSWithoutCA(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	c := newClient(t, tg, func(cfg *flightctl.Config) { cfg.CAData = nil })
	_, err := c.ListDevices(f.ctx(), flightctl.ListOptions{LabelSelector: f.selector()})
	expectCertError(t, tg, c, err, "authority")
}

// expectCertError checks a certificate failure: an x509 error of the
// given kind ("authority" or "hostname"), no classifier true (retrying
// cannot fix it), one attempt, no token.
func expectCertError(t *testing.T, tg Target, c *flightctl.Client, err error, kind string) {
	t.Helper()
	expectTransportError(t, tg, err)
	var (
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
	)
	switch kind {
	case "authority":
		if !errors.As(err, &authority) {
			t.Errorf("want an x509.UnknownAuthorityError, got %v", err)
		}
	case "hostname":
		if !errors.As(err, &hostname) {
			t.Errorf("want an x509.HostnameError, got %v", err)
		}
	}
	if !strings.Contains(err.Error(), "x509") {
		t.Errorf("error does not say it is a certificate problem: %v", err)
	}
	checkClasses(t, err)
	if n := c.Stats().Requests[flightctl.OpListDevices]; n != 1 {
		t.Errorf("%d requests, want 1: a certificate failure repeats identically", n)
	}
}

// otherCAPEM is a CA certificate unrelated to any server.
func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "vkct unrelated CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// testClientYAML covers building the client from the Flightctl CLI's
// client.yaml, which users hand over as it is: inline CA data, a CA file
// relative to the yaml, and that printing the result hides the token.
func testClientYAML(t *testing.T, tg Target) {
	f := newFixture(t, tg)
	cfg := tg.Config()
	yaml := func(caLine string) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "service:\n  server: %s\n", cfg.Server)
		b.WriteString(caLine)
		fmt.Fprintf(&b, "authentication:\n  access-token: %s\n", cfg.Token)
		return []byte(b.String())
	}
	wantBase := strings.TrimSuffix(strings.TrimRight(cfg.Server, "/"), "/api/v1") + "/api/v1"

	t.Run("NewFromClientYAML with certificate-authority-data", func(t *testing.T) {
		ca := ""
		if len(cfg.CAData) > 0 {
			ca = "  certificate-authority-data: " + base64.StdEncoding.EncodeToString(cfg.CAData) + "\n"
		}
		c, err := flightctl.NewFromClientYAML(yaml(ca))
		if err != nil {
			t.Fatalf("NewFromClientYAML: %v", err)
		}
		if c.BaseURL() != wantBase {
			t.Errorf("BaseURL = %q, want %q", c.BaseURL(), wantBase)
		}
		if _, err := c.ListDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: f.selector()}); err != nil {
			t.Errorf("ListDevices: %v", err)
		}
	})

	t.Run("LoadClientYAML with a relative certificate-authority", func(t *testing.T) {
		dir := t.TempDir()
		ca := ""
		if len(cfg.CAData) > 0 {
			if err := os.WriteFile(filepath.Join(dir, "ca.pem"), cfg.CAData, 0o600); err != nil {
				t.Fatal(err)
			}
			ca = "  certificate-authority: ca.pem\n"
		}
		path := filepath.Join(dir, "client.yaml")
		if err := os.WriteFile(path, yaml(ca), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := flightctl.LoadClientYAML(path)
		if err != nil {
			t.Fatalf("LoadClientYAML: %v", err)
		}
		for _, s := range []string{fmt.Sprintf("%v", loaded), fmt.Sprintf("%+v", loaded), fmt.Sprintf("%#v", loaded)} {
			if strings.Contains(s, cfg.Token) {
				t.Errorf("printed Config shows the token")
			}
		}
		loaded.Retry = suiteRetry
		c, err := flightctl.New(loaded)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if _, err := c.ListDevices(f.at(t).ctx(), flightctl.ListOptions{LabelSelector: f.selector()}); err != nil {
			t.Errorf("ListDevices: %v", err)
		}
	})
}
