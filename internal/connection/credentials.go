package connection

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Token and identity provider timings. ServiceAccount tokens are asked for
// with the shortest lifetime the API server grants.
const (
	kubeTokenLifetime      = 10 * time.Minute
	renewMargin            = 2 * time.Second
	identityClientTimeout  = 30 * time.Second
	maxRefreshBackoff      = 30 * time.Second
	initialRefreshBackoff  = time.Second
	maxDiscoveryBodyBytes  = 1 << 20
	discoveryWellKnownPath = "/.well-known/openid-configuration"
)

// credentials is what a Secret says about authentication, before any
// identity provider is contacted.
type credentials struct {
	// mode names the keys in use, for messages.
	mode string
	// clientCredentials, refresh and kubeAudience: at most one is set; none
	// means the static token.
	clientCredentials *clientcredentials.Config
	refresh           *refreshConfig
	kubeAudience      string
	// secrets are hashed into the connection fingerprint so a rotation
	// rebuilds the client.
	secrets []string
}

type refreshConfig struct {
	oauth   oauth2.Config
	issuer  string // discovery when oauth.Endpoint.TokenURL is empty
	initial oauth2.Token
}

// clientYAMLAuth is the part of the Flightctl CLI's client.yaml that
// `flightctl login` writes for a refreshable login (v1.2 field names).
type clientYAMLAuth struct {
	Authentication struct {
		AccessToken       string `json:"access-token"`
		AccessTokenExpiry string `json:"access-token-expiry"`
		RefreshToken      string `json:"refresh-token"`
		AuthProvider      *struct {
			AuthProvider struct {
				Spec struct {
					ProviderType string    `json:"providerType"`
					Issuer       *string   `json:"issuer"`
					ClientID     string    `json:"clientId"`
					ClientSecret string    `json:"clientSecret"`
					TokenURL     string    `json:"tokenUrl"`
					Scopes       *[]string `json:"scopes"`
				} `json:"spec"`
			} `json:"auth-provider"`
		} `json:"auth-provider"`
	} `json:"authentication"`
}

// readCredentials checks which authentication the Secret asks for. Keys
// of two modes at once are refused: silently preferring one would leave
// the user guessing which credentials are used.
func readCredentials(s *corev1.Secret, where string) (*credentials, error) {
	key := func(k string) string { return strings.TrimSpace(string(s.Data[k])) }
	var modes []string
	if key(vkv1.SecretKeyAuthToken) != "" {
		modes = append(modes, vkv1.SecretKeyAuthToken)
	}
	if key(vkv1.SecretKeyOAuthClientID) != "" || key(vkv1.SecretKeyOAuthClientSecret) != "" {
		modes = append(modes, vkv1.SecretKeyOAuthClientID+"/"+vkv1.SecretKeyOAuthClientSecret)
	}
	if key(vkv1.SecretKeyKubernetesTokenAudience) != "" {
		modes = append(modes, vkv1.SecretKeyKubernetesTokenAudience)
	}
	if len(modes) > 1 {
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s sets %s: these select different ways to authenticate; keep one", where, strings.Join(modes, " and "))}
	}
	c := &credentials{}
	switch {
	case len(modes) == 1 && modes[0] == vkv1.SecretKeyAuthToken:
		c.mode = vkv1.SecretKeyAuthToken
	case len(modes) == 1 && modes[0] == vkv1.SecretKeyKubernetesTokenAudience:
		c.mode, c.kubeAudience = modes[0], key(vkv1.SecretKeyKubernetesTokenAudience)
		c.secrets = []string{c.kubeAudience}
	case len(modes) == 1:
		cc, err := clientCredentialsFrom(key, where)
		if err != nil {
			return nil, err
		}
		c.mode, c.clientCredentials = "OAuth client credentials", cc
		c.secrets = []string{cc.ClientID, cc.ClientSecret, cc.TokenURL, key(vkv1.SecretKeyOIDCIssuerURL), strings.Join(cc.Scopes, " "), fmt.Sprint(cc.EndpointParams)}
	default:
		rc, err := refreshFrom(s.Data[vkv1.SecretKeyClientYAML], where)
		if err != nil {
			return nil, err
		}
		if rc != nil {
			c.mode, c.refresh = vkv1.SecretKeyClientYAML+" refresh token", rc
			c.secrets = []string{rc.oauth.ClientID, rc.oauth.ClientSecret, rc.oauth.Endpoint.TokenURL, rc.issuer, rc.initial.RefreshToken}
		}
	}
	return c, nil
}

func clientCredentialsFrom(key func(string) string, where string) (*clientcredentials.Config, error) {
	id, secret := key(vkv1.SecretKeyOAuthClientID), key(vkv1.SecretKeyOAuthClientSecret)
	if id == "" || secret == "" {
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s: OAuth client credentials need both %q and %q", where, vkv1.SecretKeyOAuthClientID, vkv1.SecretKeyOAuthClientSecret)}
	}
	tokenURL, issuer := key(vkv1.SecretKeyOAuthTokenURL), key(vkv1.SecretKeyOIDCIssuerURL)
	if (tokenURL == "") == (issuer == "") {
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s: OAuth client credentials need exactly one of %q (the token endpoint) and %q (found through OIDC discovery)",
			where, vkv1.SecretKeyOAuthTokenURL, vkv1.SecretKeyOIDCIssuerURL)}
	}
	for k, v := range map[string]string{vkv1.SecretKeyOAuthTokenURL: tokenURL, vkv1.SecretKeyOIDCIssuerURL: issuer} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, &Error{Reason: vkv1.ReasonInvalidURL, Message: fmt.Sprintf("%s key %s: %q is not an http(s) URL with a host", where, k, v)}
		}
	}
	cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: tokenURL,
		Scopes: strings.FieldsFunc(key(vkv1.SecretKeyOAuthScopes), func(r rune) bool { return r == ',' || r == ' ' })}
	if aud := key(vkv1.SecretKeyOAuthAudience); aud != "" {
		cc.EndpointParams = url.Values{"audience": {aud}}
	}
	if tokenURL == "" {
		// Resolved through discovery when the source is built; the issuer
		// travels in TokenURL's place until then.
		cc.TokenURL = discoveryPrefix + issuer
	}
	return cc, nil
}

// discoveryPrefix marks a TokenURL that is still an issuer to discover.
const discoveryPrefix = "discover:"

// refreshFrom reads a refreshable login from a client.yaml; nil when the
// file has no refresh token.
func refreshFrom(raw []byte, where string) (*refreshConfig, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var y clientYAMLAuth
	if err := yaml.Unmarshal(raw, &y); err != nil {
		// configFromSecret reports the file's syntax.
		return nil, nil //nolint:nilerr // the same file is parsed, and its error reported, by ConfigFromClientYAML
	}
	a := y.Authentication
	if a.RefreshToken == "" {
		return nil, nil
	}
	if a.AuthProvider == nil {
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s key %s has a refresh-token but no auth-provider to refresh it with: run `flightctl login` again and store the new file", where, vkv1.SecretKeyClientYAML)}
	}
	spec := a.AuthProvider.AuthProvider.Spec
	rc := &refreshConfig{oauth: oauth2.Config{ClientID: spec.ClientID, ClientSecret: spec.ClientSecret}}
	if spec.Scopes != nil {
		rc.oauth.Scopes = *spec.Scopes
	}
	switch strings.ToLower(spec.ProviderType) {
	case "oidc":
		if spec.Issuer == nil || *spec.Issuer == "" {
			return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf("%s key %s: the OIDC auth-provider has no issuer", where, vkv1.SecretKeyClientYAML)}
		}
		rc.issuer = *spec.Issuer
	case "oauth2":
		if spec.TokenURL == "" {
			return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf("%s key %s: the OAuth2 auth-provider has no tokenUrl", where, vkv1.SecretKeyClientYAML)}
		}
		rc.oauth.Endpoint.TokenURL = spec.TokenURL
	default:
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s key %s: refreshing tokens of auth provider type %q is not supported (oidc and oauth2 are); use %s, %s or %s instead",
			where, vkv1.SecretKeyClientYAML, spec.ProviderType, vkv1.SecretKeyAuthToken, vkv1.SecretKeyOAuthClientID, vkv1.SecretKeyKubernetesTokenAudience)}
	}
	rc.initial = oauth2.Token{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken}
	if a.AccessTokenExpiry != "" {
		if t, err := time.Parse(time.RFC3339Nano, a.AccessTokenExpiry); err == nil {
			rc.initial.Expiry = t
		}
	}
	if rc.initial.Expiry.IsZero() {
		// Unknown expiry: refresh at once rather than trust an old token.
		rc.initial.AccessToken = ""
	}
	return rc, nil
}

// tokenSource builds the refreshing token source for c, or nil for a
// static token. Identity providers are reached with the system roots plus
// the Secret's CA bundle, TLS verification always on.
func (b *Builder) tokenSource(c *credentials, caData []byte) (oauth2.TokenSource, error) {
	switch {
	case c.kubeAudience != "":
		if b.Options.Kube == nil || b.Options.ServiceAccount.Name == "" {
			return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
				"%s needs the manager's ServiceAccount (--service-account-name, POD_NAMESPACE), which this manager was not given", vkv1.SecretKeyKubernetesTokenAudience)}
		}
		src := &tokenRequestSource{kube: b.Options.Kube, sa: b.Options.ServiceAccount, audience: c.kubeAudience}
		return newRenewingSource(src.Token, nil), nil
	case c.clientCredentials == nil && c.refresh == nil:
		return nil, nil
	}
	hc, err := identityClient(caData)
	if err != nil {
		return nil, err
	}
	// The source outlives the reconcile that built it, so its context is
	// not the reconcile's; it only carries the HTTP client.
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	endpoint := &tokenEndpoint{http: hc}
	if cc := c.clientCredentials; cc != nil {
		endpoint.url = cc.TokenURL
		return newRenewingSource(func() (*oauth2.Token, error) {
			u, err := endpoint.resolve()
			if err != nil {
				return nil, err
			}
			cfg := *cc
			cfg.TokenURL = u
			return cfg.Token(ctx)
		}, nil), nil
	}
	rc := c.refresh
	endpoint.url = rc.oauth.Endpoint.TokenURL
	if endpoint.url == "" {
		endpoint.url = discoveryPrefix + rc.issuer
	}
	var mu sync.Mutex
	refreshToken := rc.initial.RefreshToken
	initial := rc.initial
	return newRenewingSource(func() (*oauth2.Token, error) {
		u, err := endpoint.resolve()
		if err != nil {
			return nil, err
		}
		cfg := rc.oauth
		cfg.Endpoint.TokenURL = u
		mu.Lock()
		rt := refreshToken
		mu.Unlock()
		// A token without an access token makes the library refresh now.
		t, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			return nil, err
		}
		if t.RefreshToken != "" {
			// Providers that rotate refresh tokens accept each one once;
			// it lives in memory only (see docs/reference/credentials.md).
			mu.Lock()
			refreshToken = t.RefreshToken
			mu.Unlock()
		}
		return t, nil
	}, &initial), nil
}

// tokenEndpoint is a token URL, found through OIDC discovery on first use
// when the Secret names an issuer (it may be down when the binding is
// created).
type tokenEndpoint struct {
	http *http.Client
	mu   sync.Mutex
	url  string
}

func (e *tokenEndpoint) resolve() (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	issuer, ok := strings.CutPrefix(e.url, discoveryPrefix)
	if !ok {
		return e.url, nil
	}
	u, err := discoverTokenURL(e.http, issuer)
	if err != nil {
		return "", err
	}
	e.url = u
	return u, nil
}

func identityClient(caData []byte) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if len(caData) > 0 {
		pool.AppendCertsFromPEM(caData)
	}
	return &http.Client{Timeout: identityClientTimeout, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool},
	}}, nil
}

func discoverTokenURL(hc *http.Client, issuer string) (string, error) {
	u := strings.TrimSuffix(issuer, "/") + discoveryWellKnownPath
	resp, err := hc.Get(u) //nolint:noctx // bounded by the client's timeout; the source has no context
	if err != nil {
		return "", fmt.Errorf("OIDC discovery at %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscoveryBodyBytes))
	if err != nil {
		return "", fmt.Errorf("OIDC discovery at %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("OIDC discovery at %s answered %s", u, resp.Status)
	}
	var doc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.TokenEndpoint == "" {
		return "", fmt.Errorf("OIDC discovery at %s: no token_endpoint in the answer", u)
	}
	return doc.TokenEndpoint, nil
}

// tokenRequestSource asks the API server for a token of the manager's own
// ServiceAccount with the audience Flightctl's k8s auth provider expects.
type tokenRequestSource struct {
	kube     kubernetes.Interface
	sa       types.NamespacedName
	audience string
}

func (t *tokenRequestSource) Token() (*oauth2.Token, error) {
	seconds := int64(kubeTokenLifetime / time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), identityClientTimeout)
	defer cancel()
	tr, err := t.kube.CoreV1().ServiceAccounts(t.sa.Namespace).CreateToken(ctx, t.sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{t.audience}, ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s with audience %q: %w", t.sa, t.audience, err)
	}
	return &oauth2.Token{AccessToken: tr.Status.Token, TokenType: "Bearer", Expiry: tr.Status.ExpirationTimestamp.Time}, nil
}

// renewingSource hands out one token until three quarters of its life
// have passed (half, for tokens of a few seconds), then fetches the next, so requests never carry an expired
// token whatever lifetime the provider chose. A failed renewal keeps the
// current token while it is still valid (a provider that is briefly down
// costs nothing), and further attempts are spaced out (1 s doubling to
// 30 s) so a refused client secret is not hammered on every request.
type renewingSource struct {
	fetch func() (*oauth2.Token, error)
	now   func() time.Time

	mu      sync.Mutex
	tok     *oauth2.Token
	renewAt time.Time
	// usableUntil is a margin before the token's end: past it the token
	// could expire in flight, so it is not handed out even when renewal
	// failed.
	usableUntil time.Time
	err         error
	wait        time.Duration
	retryAt     time.Time
}

func newRenewingSource(fetch func() (*oauth2.Token, error), initial *oauth2.Token) *renewingSource {
	r := &renewingSource{fetch: fetch, now: time.Now}
	if initial != nil && initial.AccessToken != "" && !initial.Expiry.IsZero() {
		r.keep(initial)
	}
	return r
}

// Token implements oauth2.TokenSource.
func (r *renewingSource) Token() (*oauth2.Token, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	valid := r.tok != nil && (r.tok.Expiry.IsZero() || now.Before(r.usableUntil))
	if valid && now.Before(r.renewAt) {
		return r.tok, nil
	}
	if r.err != nil && now.Before(r.retryAt) {
		if valid {
			return r.tok, nil
		}
		return nil, r.err
	}
	t, err := r.fetch()
	if err != nil {
		tokenRefreshes.WithLabelValues("error").Inc()
		r.wait = min(max(2*r.wait, initialRefreshBackoff), maxRefreshBackoff)
		r.err, r.retryAt = err, now.Add(r.wait)
		if valid {
			return r.tok, nil
		}
		return nil, err
	}
	tokenRefreshes.WithLabelValues("ok").Inc()
	r.err, r.wait = nil, 0
	r.keep(t)
	return t, nil
}

func (r *renewingSource) keep(t *oauth2.Token) {
	now := r.now()
	r.tok = t
	if t.Expiry.IsZero() {
		r.renewAt = now.Add(time.Hour)
		return
	}
	// Three quarters of the life, but at least a margin before the end:
	// the provider's clock and its whole-second exp claims may put the
	// real end up to a second or two earlier than expires_in says.
	life := t.Expiry.Sub(now)
	renewIn := max(min(life*3/4, life-renewMargin), life/2)
	r.renewAt = now.Add(renewIn)
	r.usableUntil = t.Expiry.Add(-min(renewMargin, life/2))
}

// refreshFailure explains a token error in a condition message: the
// provider's own error code and description when it answered.
func refreshFailure(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		if msg == "" && re.Response != nil {
			msg = re.Response.Status
		}
		return "the identity provider refused: " + msg
	}
	return err.Error()
}
