package flightctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func newTLSServer(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, DeviceList{APIVersion: APIVersion, Kind: KindDeviceList, Items: []Device{}})
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	return srv, caPEM
}

func TestTLSVerification(t *testing.T) {
	srv, caPEM := newTLSServer(t)
	otherCA := selfSignedPEM(t) // httptest servers all share one certificate

	cases := []struct {
		name    string
		cfg     func(*Config)
		wantErr bool
	}{
		{"system roots reject self-signed", func(c *Config) {}, true},
		{"wrong CA bundle", func(c *Config) { c.CAData = otherCA }, true},
		{"CA bundle", func(c *Config) { c.CAData = caPEM }, false},
		{"CA bundle with matching server name", func(c *Config) { c.CAData = caPEM; c.TLSServerName = "example.com" }, false},
		{"CA bundle with wrong server name", func(c *Config) { c.CAData = caPEM; c.TLSServerName = "flightctl.other.test" }, true},
		{"insecure skip verify", func(c *Config) { c.InsecureSkipVerify = true }, false},
		{"insecure false is verified", func(c *Config) { c.InsecureSkipVerify = false }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, srv.URL, tc.cfg)
			_, err := c.ListDevices(context.Background(), ListOptions{})
			if tc.wantErr != (err != nil) {
				t.Fatalf("wantErr=%v, got %v", tc.wantErr, err)
			}
			if err == nil {
				return
			}
			var herr x509.HostnameError
			var uerr x509.UnknownAuthorityError
			if !errors.As(err, &uerr) && !errors.As(err, &herr) {
				t.Errorf("want a certificate error, got %v", err)
			}
			if IsRetryable(err) {
				t.Errorf("certificate errors must not be retryable: %v", err)
			}
			if n := c.Stats().Requests[OpListDevices]; n != 1 {
				t.Errorf("certificate failure retried: %d attempts", n)
			}
		})
	}
}

// selfSignedPEM makes an unrelated CA certificate.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "other-ca"},
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

func TestBadCAData(t *testing.T) {
	if _, err := New(Config{Server: "https://h:3443", CAData: []byte("not a pem")}); err == nil {
		t.Fatal("garbage CA bundle accepted")
	}
}
