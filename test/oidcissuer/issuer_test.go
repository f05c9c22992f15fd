package oidcissuer

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestIssuer(t *testing.T) (*Issuer, *httptest.Server) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	iss := New(srv.URL, key)
	iss.ClientSecret = "s3cret"
	srv.Config.Handler = iss.Handler()
	return iss, srv
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestDiscoveryAndJWKS checks the two documents an OIDC relying party
// (Flightctl's OIDC provider) reads before it can verify a token.
func TestDiscoveryAndJWKS(t *testing.T) {
	iss, srv := newTestIssuer(t)
	var disc map[string]any
	getJSON(t, srv.URL+"/.well-known/openid-configuration", &disc)
	if disc["issuer"] != iss.URL || disc["jwks_uri"] != iss.URL+"/jwks" || disc["token_endpoint"] != iss.URL+"/token" {
		t.Fatalf("discovery document: %v", disc)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	getJSON(t, srv.URL+"/jwks", &set)
	if len(set.Keys) != 1 || set.Keys[0]["kty"] != "RSA" || set.Keys[0]["alg"] != "RS256" || set.Keys[0]["e"] != "AQAB" || set.Keys[0]["kid"] != iss.kid {
		t.Fatalf("jwks: %v", set)
	}
}

// TestMintVerify checks the claims Flightctl checks: aud, exp, iss.
func TestMintVerify(t *testing.T) {
	iss, _ := newTestIssuer(t)
	tok, err := iss.Mint(Claims{Subject: "alice"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	aud, _ := claims["aud"].([]any)
	if len(aud) != 1 || aud[0] != DefaultAudience || claims["sub"] != "alice" || claims["preferred_username"] != "alice" {
		t.Fatalf("claims: %v", claims)
	}
	if _, err := iss.Verify(tok[:len(tok)-4] + "AAAA"); err == nil {
		t.Fatal("a token with a tampered signature verified")
	}
	iss.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := iss.Verify(tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := iss.Mint(Claims{}, time.Minute); err == nil {
		t.Fatal("minted a token without a subject")
	}
}

func postToken(t *testing.T, srv *httptest.Server, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(srv.URL+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestTokenEndpointGrants checks client_credentials, a single-use
// refresh_token and the refusals.
func TestTokenEndpointGrants(t *testing.T) {
	iss, srv := newTestIssuer(t)
	code, body := postToken(t, srv, url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAudience}, "client_secret": {"wrong"}})
	if code != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", code, body)
	}
	code, body = postToken(t, srv, url.Values{"grant_type": {"password"}, "client_id": {DefaultAudience}, "client_secret": {"s3cret"}})
	if code != http.StatusBadRequest || body["error"] != "unsupported_grant_type" {
		t.Fatalf("password grant: %d %v", code, body)
	}
	code, body = postToken(t, srv, url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultAudience}, "client_secret": {"s3cret"}, "subject": {"bob"}})
	if code != http.StatusOK {
		t.Fatalf("client_credentials: %d %v", code, body)
	}
	claims, err := iss.Verify(body["access_token"].(string))
	if err != nil || claims["sub"] != "bob" {
		t.Fatalf("issued token: %v %v", claims, err)
	}
	rt := body["refresh_token"].(string)
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultAudience}, "client_secret": {"s3cret"}, "refresh_token": {rt}}
	code, body = postToken(t, srv, refresh)
	if code != http.StatusOK {
		t.Fatalf("refresh: %d %v", code, body)
	}
	if claims, err := iss.Verify(body["access_token"].(string)); err != nil || claims["sub"] != "bob" {
		t.Fatalf("refreshed token: %v %v", claims, err)
	}
	if code, body = postToken(t, srv, refresh); code != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", code, body)
	}
}

// TestLoadOrCreateKey checks that a second load reads the same key back,
// which is what lets `mint` and `serve` agree.
func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	a, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Equal(b) {
		t.Fatal("second load returned a different key")
	}
}
