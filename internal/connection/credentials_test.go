package connection

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/oidcissuer"
)

func secret(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "creds"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestReadCredentialsModes(t *testing.T) {
	cases := []struct {
		name    string
		data    map[string]string
		want    string // mode, or the reason of the error
		wantErr string // part of the error message
	}{
		{"static token", map[string]string{"auth-token": "t0ken-value"}, "auth-token", ""},
		{"client credentials with discovery", map[string]string{"oauth-client-id": "c", "oauth-client-secret": "s", "oidc-issuer-url": "https://idp.example"}, "OAuth client credentials", ""},
		{"client credentials with a token URL", map[string]string{"oauth-client-id": "c", "oauth-client-secret": "s", "oauth-token-url": "https://idp.example/token", "oauth-scopes": "openid, flightctl"}, "OAuth client credentials", ""},
		{"Kubernetes", map[string]string{"kubernetes-token-audience": "flightctl"}, "kubernetes-token-audience", ""},
		{"two modes", map[string]string{"auth-token": "t0ken-value", "kubernetes-token-audience": "flightctl"}, vkv1.ReasonSecretInvalid, "auth-token and kubernetes-token-audience"},
		{"secret without id", map[string]string{"oauth-client-secret": "s", "oauth-token-url": "https://idp.example/token"}, vkv1.ReasonSecretInvalid, "need both"},
		{"no endpoint", map[string]string{"oauth-client-id": "c", "oauth-client-secret": "s"}, vkv1.ReasonSecretInvalid, "exactly one of"},
		{"both endpoints", map[string]string{"oauth-client-id": "c", "oauth-client-secret": "s", "oauth-token-url": "https://a/t", "oidc-issuer-url": "https://a"}, vkv1.ReasonSecretInvalid, "exactly one of"},
		{"bad token URL", map[string]string{"oauth-client-id": "c", "oauth-client-secret": "s", "oauth-token-url": "idp/token"}, vkv1.ReasonInvalidURL, "not an http(s) URL"},
		{"client.yaml refresh without provider", map[string]string{"client.yaml": "authentication:\n  refresh-token: r\n"}, vkv1.ReasonSecretInvalid, "no auth-provider"},
		{"client.yaml refresh with an unsupported provider", map[string]string{"client.yaml": "authentication:\n  refresh-token: r\n  auth-provider:\n    auth-provider:\n      spec:\n        providerType: openshift\n"}, vkv1.ReasonSecretInvalid, "not supported"},
		{"client.yaml refresh with OIDC", map[string]string{"client.yaml": "authentication:\n  refresh-token: r\n  auth-provider:\n    auth-provider:\n      spec:\n        providerType: oidc\n        issuer: https://idp.example\n        clientId: flightctl\n"}, "client.yaml refresh token", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := readCredentials(secret(tc.data), "Secret ns/creds")
			if tc.wantErr != "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Reason != tc.want || !strings.Contains(ce.Message, tc.wantErr) {
					t.Fatalf("readCredentials = %v, want %s containing %q", err, tc.want, tc.wantErr)
				}
				return
			}
			if err != nil || c.mode != tc.want {
				t.Fatalf("readCredentials = %+v, %v; want mode %q", c, err, tc.want)
			}
		})
	}
}

func TestCredentialsChangeTheFingerprint(t *testing.T) {
	base := map[string]string{"api-url": "https://f.example", "oauth-client-id": "c", "oauth-client-secret": "s1", "oauth-token-url": "https://idp.example/token"}
	fb := &vkv1.FleetBinding{}
	fp := func(data map[string]string) string {
		cfg, creds, err := configFromSecret(fb, secret(data))
		if err != nil {
			t.Fatal(err)
		}
		return fingerprint(cfg, creds.secrets)
	}
	rotated := map[string]string{}
	for k, v := range base {
		rotated[k] = v
	}
	rotated["oauth-client-secret"] = "s2"
	if fp(base) == fp(rotated) {
		t.Fatal("a rotated client secret must change the fingerprint, so the client is rebuilt")
	}
	if first, again := fp(base), fp(base); first != again {
		t.Fatal("fingerprint is not stable")
	}
	if strings.Contains(fp(base), "s1") {
		t.Fatal("fingerprint leaks the secret")
	}
}

// startIssuer starts a loopback OIDC issuer whose client secret is s3cret.
func startIssuer(t *testing.T, ttl time.Duration) *oidcissuer.Loopback {
	t.Helper()
	is, err := oidcissuer.StartLoopback("s3cret", ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(is.Close)
	return is
}

func TestClientCredentialsRefreshBeforeExpiry(t *testing.T) {
	for _, viaDiscovery := range []bool{true, false} {
		is := startIssuer(t, 2*time.Second)
		data := map[string]string{"oauth-client-id": oidcissuer.DefaultAudience, "oauth-client-secret": "s3cret"}
		if viaDiscovery {
			data["oidc-issuer-url"] = is.URL()
		} else {
			data["oauth-token-url"] = is.URL() + "/token"
		}
		c, err := readCredentials(secret(data), "test")
		if err != nil {
			t.Fatal(err)
		}
		src, err := (&Builder{}).tokenSource(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		first, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := is.Verify(first.AccessToken); err != nil {
			t.Fatalf("issued token does not verify: %v", err)
		}
		again, _ := src.Token()
		if again.AccessToken != first.AccessToken {
			// A 2 s token is within the 10 s early-refresh window, so it is
			// renewed on every use; that is the point of refreshing early.
			t.Logf("renewed at once (lifetime under the early-refresh window)")
		}
		if n := is.Issued(); n < 1 {
			t.Fatalf("issuer saw %d token requests", n)
		}
	}
}

func TestRefreshFailureIsClassifiedWithTheProvidersWords(t *testing.T) {
	is := startIssuer(t, time.Minute)
	is.SetRevoked(true)
	c, err := readCredentials(secret(map[string]string{"oauth-client-id": oidcissuer.DefaultAudience, "oauth-client-secret": "s3cret", "oauth-token-url": is.URL() + "/token"}), "test")
	if err != nil {
		t.Fatal(err)
	}
	src, err := (&Builder{}).tokenSource(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := flightctl.New(flightctl.Config{Server: "http://127.0.0.1:1", TokenSource: src, Retry: flightctl.RetryConfig{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.ListDevices(t.Context(), flightctl.ListOptions{})
	if !flightctl.IsTokenError(err) {
		t.Fatalf("ListDevices = %v, want a token error (no request sent)", err)
	}
	ce := Classify(err, "https://f.example")
	if ce.Reason != vkv1.ReasonTokenRefreshFailed || !strings.Contains(ce.Message, "invalid_client: client secret revoked") {
		t.Fatalf("Classify = %+v, want %s with the provider's error", ce, vkv1.ReasonTokenRefreshFailed)
	}
}

func TestRefreshTokenFromClientYAML(t *testing.T) {
	is := startIssuer(t, time.Minute)
	// A login as `flightctl login` leaves it: a refresh token and the
	// provider it came from.
	resp, err := http.PostForm(is.URL()+"/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {oidcissuer.DefaultAudience}, "client_secret": {"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&login); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	yaml := "service:\n  server: https://f.example\nauthentication:\n  refresh-token: " + login.RefreshToken +
		"\n  auth-provider:\n    auth-provider:\n      spec:\n        providerType: oidc\n        issuer: " + is.URL() +
		"\n        clientId: " + oidcissuer.DefaultAudience + "\n        clientSecret: s3cret\n"
	c, err := readCredentials(secret(map[string]string{"client.yaml": yaml}), "test")
	if err != nil {
		t.Fatal(err)
	}
	src, err := (&Builder{}).tokenSource(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Token()
	if err != nil {
		t.Fatalf("refreshing through the client.yaml's provider: %v", err)
	}
	if _, err := is.Verify(tok.AccessToken); err != nil {
		t.Fatalf("refreshed token does not verify: %v", err)
	}
}

func TestRenewingSource(t *testing.T) {
	now := time.Unix(1000, 0)
	calls, fail := 0, false
	r := newRenewingSource(func() (*oauth2.Token, error) {
		calls++
		if fail {
			return nil, errors.New("idp down")
		}
		return &oauth2.Token{AccessToken: fmt.Sprint("t", calls), Expiry: now.Add(20 * time.Second)}, nil
	}, nil)
	r.now = func() time.Time { return now }
	tok := func() string {
		t.Helper()
		got, err := r.Token()
		if err != nil {
			return "error: " + err.Error()
		}
		return got.AccessToken
	}
	if got := tok(); got != "t1" {
		t.Fatalf("first token %q", got)
	}
	now = now.Add(5 * time.Second)
	if got := tok(); got != "t1" || calls != 1 {
		t.Fatalf("before 3/4 of its life the token is reused: %q after %d calls", got, calls)
	}
	now = now.Add(11 * time.Second) // 16 s of 20: renew
	if got := tok(); got != "t2" {
		t.Fatalf("after 3/4 of its life a new token is fetched, got %q", got)
	}
	fail = true
	now = now.Add(16 * time.Second) // t2 due for renewal, 4 s left: still usable
	if got := tok(); got != "t2" || calls != 3 {
		t.Fatalf("a failed renewal keeps the valid token: %q after %d calls", got, calls)
	}
	for i := 0; i < 5; i++ {
		_ = tok()
	}
	if calls != 3 {
		t.Fatalf("identity provider called %d times within the backoff, want 3", calls)
	}
	now = now.Add(3 * time.Second) // 1 s left: t2 could expire in flight; backoff (1 s) over
	if got := tok(); !strings.Contains(got, "idp down") || calls != 4 {
		t.Fatalf("an expired token is not handed out: %q after %d calls", got, calls)
	}
	fail = false
	now = now.Add(2100 * time.Millisecond)
	if got := tok(); got != "t5" {
		t.Fatalf("after the provider recovered: %q", got)
	}
}
