package oidcissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"
)

// Loopback is an Issuer served over plain HTTP on 127.0.0.1 for tests. It
// counts the token responses it gives and can be told to refuse its client,
// as an identity provider does once a client's secret is revoked.
type Loopback struct {
	*Issuer
	srv     *httptest.Server
	issued  atomic.Int32
	revoked atomic.Bool
}

// StartLoopback starts an issuer whose single client (DefaultAudience)
// authenticates with secret and gets access tokens that live ttl. Close
// stops it.
func StartLoopback(secret string, ttl time.Duration) (*Loopback, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	l := &Loopback{}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	l.Issuer = New(l.srv.URL, key)
	l.ClientSecret = secret
	l.AccessTTL = ttl
	return l, nil
}

// serve refuses the token endpoint while revoked and counts what it issues;
// every other endpoint is the Issuer's own.
func (l *Loopback) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		if l.revoked.Load() {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client secret revoked")
			return
		}
		l.issued.Add(1)
	}
	l.Handler().ServeHTTP(w, r)
}

// SetRevoked makes the token endpoint refuse the client (true), with the
// OAuth2 error "invalid_client: client secret revoked", or accept it again.
func (l *Loopback) SetRevoked(revoked bool) { l.revoked.Store(revoked) }

// Issued is the number of token requests answered while not revoked.
func (l *Loopback) Issued() int32 { return l.issued.Load() }

// URL is the issuer's base address (also its iss claim).
func (l *Loopback) URL() string { return l.srv.URL }

// Close stops the server.
func (l *Loopback) Close() { l.srv.Close() }
