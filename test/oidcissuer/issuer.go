// Package oidcissuer is a minimal OpenID Connect issuer for tests: enough of
// OIDC for a real Flightctl API server to authenticate users with it, and
// nothing more. It serves the discovery document and the JWKS over plain
// HTTP on loopback, signs RS256 JWTs, and has a token endpoint with the
// client_credentials and refresh_token grants, so that a client can get
// short-lived tokens and renew them the way it would against Keycloak or
// Dex.
//
// Flightctl v1.2.0 has no unauthenticated mode; its OIDC provider fetches
// <issuer>/.well-known/openid-configuration, then the jwks_uri, and accepts
// a token whose signature verifies, whose exp is in the future and whose
// aud contains its configured client id. The issuer is meant to be run by
// hack/real-flightctl.sh (through hack/oidc-issuer) next to such a server.
package oidcissuer

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultAudience is the client id Flightctl's OIDC configuration expects
// in a token's aud claim.
const DefaultAudience = "flightctl-client"

// Issuer signs tokens with one RSA key. It is safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier (iss) and the base of its endpoints,
	// e.g. http://127.0.0.1:8090.
	URL string
	// Audience goes into aud (and azp) of every token.
	Audience string
	// ClientSecret, when set, is required of token endpoint clients
	// (client_id must equal Audience).
	ClientSecret string
	// ClientSecretFunc, when set, supplies the client secret for each
	// request instead of ClientSecret, so a test can revoke or rotate it
	// while the issuer runs.
	ClientSecretFunc func() string
	// AccessTTL is the lifetime of tokens the token endpoint issues.
	AccessTTL time.Duration

	key *rsa.PrivateKey
	kid string
	now func() time.Time

	mu      sync.Mutex
	refresh map[string]refreshGrant
}

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	subject string
	expires time.Time
}

// New returns an issuer for url signing with key.
func New(url string, key *rsa.PrivateKey) *Issuer {
	der := x509.MarshalPKCS1PublicKey(&key.PublicKey)
	sum := sha256.Sum256(der)
	return &Issuer{
		URL:       strings.TrimRight(url, "/"),
		Audience:  DefaultAudience,
		AccessTTL: 15 * time.Minute,
		key:       key,
		kid:       hex.EncodeToString(sum[:8]),
		now:       time.Now,
		refresh:   map[string]refreshGrant{},
	}
}

// LoadOrCreateKey reads an RSA private key (PKCS#1 PEM) from path, or
// generates one and writes it there (mode 0600) when the file is missing,
// so that tokens minted by one process verify against the JWKS another
// process serves.
func LoadOrCreateKey(path string) (*rsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(raw)
		if block == nil || block.Type != "RSA PRIVATE KEY" {
			return nil, fmt.Errorf("%s: no RSA PRIVATE KEY block", path)
		}
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// Claims are the claims of a token besides iss, aud, azp, iat, nbf and exp.
type Claims struct {
	// Subject is sub and preferred_username.
	Subject string
	// Extra claims are merged in as they are (e.g. groups, roles).
	Extra map[string]any
}

// Mint returns a signed token for c valid for ttl.
func (i *Issuer) Mint(c Claims, ttl time.Duration) (string, error) {
	if c.Subject == "" {
		return "", errors.New("oidcissuer: a token needs a subject")
	}
	if ttl <= 0 {
		return "", errors.New("oidcissuer: a token needs a positive lifetime")
	}
	now := i.now().UTC()
	claims := map[string]any{}
	for k, v := range c.Extra {
		claims[k] = v
	}
	claims["iss"] = i.URL
	claims["sub"] = c.Subject
	claims["preferred_username"] = c.Subject
	claims["aud"] = []string{i.Audience}
	claims["azp"] = i.Audience
	claims["iat"] = now.Unix()
	// A little leeway for clocks of other processes on the same machine.
	claims["nbf"] = now.Add(-5 * time.Second).Unix()
	claims["exp"] = now.Add(ttl).Unix()
	jti := make([]byte, 8)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims["jti"] = hex.EncodeToString(jti)
	return i.sign(claims)
}

func (i *Issuer) sign(claims map[string]any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": i.kid})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, i.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signingInput + "." + enc.EncodeToString(sig), nil
}

// Verify checks a token's signature, issuer, audience and lifetime and
// returns its claims. The test suite uses it to check minted tokens; a
// Flightctl server does its own verification through the JWKS.
func (i *Issuer) Verify(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWS compact token")
	}
	enc := base64.RawURLEncoding
	sig, err := enc.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&i.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, errors.New("bad signature")
	}
	raw, err := enc.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if claims["iss"] != i.URL {
		return nil, fmt.Errorf("iss %v, want %s", claims["iss"], i.URL)
	}
	exp, _ := claims["exp"].(float64)
	if int64(exp) <= i.now().Unix() {
		return nil, errors.New("token expired")
	}
	return claims, nil
}

// Handler serves discovery, JWKS and the token endpoint.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.discovery)
	mux.HandleFunc("GET /jwks", i.jwks)
	mux.HandleFunc("POST /token", i.token)
	return mux
}

func (i *Issuer) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.URL + "/jwks",
		"token_endpoint":                        i.URL + "/token",
		"authorization_endpoint":                i.URL + "/authorize",
		"response_types_supported":              []string{"token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"grant_types_supported":                 []string{"client_credentials", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
	})
}

func (i *Issuer) jwks(w http.ResponseWriter, _ *http.Request) {
	pub := i.key.PublicKey
	enc := base64.RawURLEncoding
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": i.kid,
		"n": enc.EncodeToString(pub.N.Bytes()),
		"e": enc.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
}

// token implements the client_credentials grant (the client is the
// subject) and the refresh_token grant, with OAuth2 error bodies.
func (i *Issuer) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if !basic {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	want := i.ClientSecret
	if i.ClientSecretFunc != nil {
		want = i.ClientSecretFunc()
	}
	if clientID != i.Audience || (want != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	subject := ""
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
		subject = r.PostForm.Get("subject")
		if subject == "" {
			subject = "service-" + clientID
		}
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		i.mu.Lock()
		g, ok := i.refresh[rt]
		delete(i.refresh, rt) // refresh tokens are single use
		i.mu.Unlock()
		if !ok || i.now().After(g.expires) {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired refresh token")
			return
		}
		subject = g.subject
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "supported: client_credentials, refresh_token")
		return
	}
	access, err := i.Mint(Claims{Subject: subject}, i.AccessTTL)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	rt := make([]byte, 24)
	if _, err := rand.Read(rt); err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	refresh := base64.RawURLEncoding.EncodeToString(rt)
	i.mu.Lock()
	i.refresh[refresh] = refreshGrant{subject: subject, expires: i.now().Add(24 * time.Hour)}
	i.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"expires_in":    int(i.AccessTTL / time.Second),
		"refresh_token": refresh,
	})
}

func oauthError(w http.ResponseWriter, code int, kind, desc string) {
	writeJSON(w, code, map[string]string{"error": kind, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
