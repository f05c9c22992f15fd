// Package connection turns a FleetBinding and its credentials Secret into a
// Flightctl client, and classifies everything that can go wrong on the way
// into a condition reason a person can act on.
package connection

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Error is a connection problem with the condition reason it maps to. Its
// message never contains the token.
type Error struct {
	// Reason is a FleetBinding condition reason (vkv1.Reason*).
	Reason string
	// Message says what was expected, what was found and what to do.
	Message string
	// Transient is true when retrying later may help without a change by
	// the user (network trouble, 5xx).
	Transient bool
}

func (e *Error) Error() string { return e.Message }

// AsError returns err as *Error when it is one.
func AsError(err error) (*Error, bool) {
	var ce *Error
	ok := errors.As(err, &ce)
	return ce, ok
}

// Resolved is a ready-to-use connection.
type Resolved struct {
	// Client talks to Flightctl with the binding's credentials.
	Client *flightctl.Client
	// URL is the API URL (safe to show).
	URL string
	// Insecure is true when TLS verification is off.
	Insecure bool
	// Fingerprint changes whenever anything that affects the connection
	// changes (URL, token, CA, options); used to rebuild clients and
	// restart nodes only when needed. It is a hash, never the token.
	Fingerprint string
}

// Options tune the clients the Builder makes.
type Options struct {
	// ClientOptions are applied to every client (logger, metrics, timeouts).
	ClientOptions func(*flightctl.Config)
	// Kube requests ServiceAccount tokens for Kubernetes authentication.
	Kube kubernetes.Interface
	// ServiceAccount is the manager's own ServiceAccount, whose tokens
	// Kubernetes authentication presents to Flightctl.
	ServiceAccount types.NamespacedName
}

// Builder resolves connections. It reads Secrets with an uncached reader so
// the manager needs only `get` on Secrets, not a cluster-wide watch.
type Builder struct {
	Reader  client.Reader
	Options Options

	// mu guards resolved: the last connection built per binding, reused
	// while the Secret is unchanged so a refreshing token source (and its
	// token) outlives one reconcile.
	mu       sync.Mutex
	resolved map[types.NamespacedName]*Resolved
}

// Resolve reads the binding's Secret and builds a client. It does not call
// Flightctl; Probe does.
func (b *Builder) Resolve(ctx context.Context, fb *vkv1.FleetBinding) (*Resolved, error) {
	ref := fb.Spec.Flightctl.CredentialsSecretRef.Name
	var s corev1.Secret
	err := b.Reader.Get(ctx, types.NamespacedName{Namespace: fb.Namespace, Name: ref}, &s)
	if apierrors.IsNotFound(err) {
		return nil, &Error{Reason: vkv1.ReasonSecretNotFound, Message: fmt.Sprintf(
			"Secret %s/%s not found: create it with keys %q and %q (kubectl create secret generic %s --from-literal=%s=https://... --from-literal=%s=...)",
			fb.Namespace, ref, vkv1.SecretKeyAPIURL, vkv1.SecretKeyAuthToken, ref, vkv1.SecretKeyAPIURL, vkv1.SecretKeyAuthToken)}
	}
	if err != nil {
		return nil, &Error{Reason: vkv1.ReasonSecretNotFound, Transient: true, Message: fmt.Sprintf("reading Secret %s/%s: %v", fb.Namespace, ref, err)}
	}
	cfg, creds, err := configFromSecret(fb, &s)
	if err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: fb.Namespace, Name: fb.Name}
	fp := fingerprint(cfg, creds.secrets)
	b.mu.Lock()
	prev := b.resolved[key]
	b.mu.Unlock()
	if prev != nil && prev.Fingerprint == fp {
		return prev, nil
	}
	if cfg.TokenSource, err = b.tokenSource(creds, cfg.CAData); err != nil {
		return nil, err
	}
	if b.Options.ClientOptions != nil {
		b.Options.ClientOptions(&cfg)
	}
	c, err := flightctl.New(cfg)
	if err != nil {
		return nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf("Secret %s/%s: %v", fb.Namespace, ref, err)}
	}
	r := &Resolved{Client: c, URL: cfg.Server, Insecure: cfg.InsecureSkipVerify, Fingerprint: fp}
	b.mu.Lock()
	if b.resolved == nil {
		b.resolved = map[types.NamespacedName]*Resolved{}
	}
	b.resolved[key] = r
	b.mu.Unlock()
	return r, nil
}

// Forget drops the connection kept for a deleted binding.
func (b *Builder) Forget(key types.NamespacedName) {
	b.mu.Lock()
	delete(b.resolved, key)
	b.mu.Unlock()
}

func configFromSecret(fb *vkv1.FleetBinding, s *corev1.Secret) (flightctl.Config, *credentials, error) {
	where := fmt.Sprintf("Secret %s/%s", s.Namespace, s.Name)
	var cfg flightctl.Config
	if raw, ok := s.Data[vkv1.SecretKeyClientYAML]; ok && len(raw) > 0 {
		parsed, err := flightctl.ConfigFromClientYAML(raw, "")
		if err != nil {
			return cfg, nil, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf("%s key %s: %v", where, vkv1.SecretKeyClientYAML, err)}
		}
		cfg = parsed
	}
	creds, err := readCredentials(s, where)
	if err != nil {
		return cfg, nil, err
	}
	cfg, err = checkConfig(fb, s, cfg, creds, where)
	return cfg, creds, err
}

// checkConfig completes cfg from the Secret's keys and the binding's spec
// and refuses what cannot work.
func checkConfig(fb *vkv1.FleetBinding, s *corev1.Secret, cfg flightctl.Config, creds *credentials, where string) (flightctl.Config, error) {
	refreshing := creds.clientCredentials != nil || creds.refresh != nil || creds.kubeAudience != ""
	if refreshing {
		// A refreshing mode brings its own tokens; a client.yaml's
		// access-token is only the refresh mode's first one.
		cfg.Token = ""
	}
	if v := strings.TrimSpace(string(s.Data[vkv1.SecretKeyAPIURL])); v != "" {
		cfg.Server = v
	}
	if v := strings.TrimSpace(string(s.Data[vkv1.SecretKeyAuthToken])); v != "" {
		cfg.Token = v
	}
	if v := s.Data[vkv1.SecretKeyCACert]; len(v) > 0 {
		cfg.CAData = v
	}
	if cfg.Server == "" {
		return cfg, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf("%s has no %q key (nor a %s with service.server): add the Flightctl API URL, e.g. https://flightctl.example.com:3443", where, vkv1.SecretKeyAPIURL, vkv1.SecretKeyClientYAML)}
	}
	if cfg.Token == "" && !refreshing {
		return cfg, &Error{Reason: vkv1.ReasonSecretInvalid, Message: fmt.Sprintf(
			"%s has no credentials: add a Flightctl bearer token (%q), OAuth client credentials (%q, %q and %q or %q), %q for Kubernetes authentication, or a %s with an access or refresh token",
			where, vkv1.SecretKeyAuthToken, vkv1.SecretKeyOAuthClientID, vkv1.SecretKeyOAuthClientSecret, vkv1.SecretKeyOAuthTokenURL,
			vkv1.SecretKeyOIDCIssuerURL, vkv1.SecretKeyKubernetesTokenAudience, vkv1.SecretKeyClientYAML)}
	}
	u, err := url.Parse(cfg.Server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return cfg, &Error{Reason: vkv1.ReasonInvalidURL, Message: fmt.Sprintf("%s key %s: %q is not an http(s) URL with a host; want e.g. https://flightctl.example.com:3443", where, vkv1.SecretKeyAPIURL, cfg.Server)}
	}
	if len(cfg.CAData) > 0 {
		if ok := x509.NewCertPool().AppendCertsFromPEM(cfg.CAData); !ok {
			return cfg, &Error{Reason: vkv1.ReasonInvalidCA, Message: fmt.Sprintf("%s key %s holds no PEM certificate: put the CA bundle that signed the Flightctl API certificate there", where, vkv1.SecretKeyCACert)}
		}
	}
	conn := fb.Spec.Flightctl
	if conn.InsecureSkipTLSVerify {
		cfg.InsecureSkipVerify = true
	}
	if conn.TLSServerName != "" {
		cfg.TLSServerName = conn.TLSServerName
	}
	if conn.Organization != "" {
		cfg.OrgID = conn.Organization
	}
	return cfg, nil
}

// Classify maps an error from a Flightctl call to a condition reason and a
// message a person can act on.
func Classify(err error, apiURL string) *Error {
	if err == nil {
		return nil
	}
	if ce, ok := AsError(err); ok {
		return ce
	}
	switch {
	case flightctl.IsTokenError(err):
		return &Error{Reason: vkv1.ReasonTokenRefreshFailed, Transient: true, Message: fmt.Sprintf(
			"getting an access token for Flightctl at %s failed (%s): check the credentials in the Secret; retrying with backoff", apiURL, refreshFailure(err))}
	case flightctl.IsUnauthorized(err):
		return &Error{Reason: vkv1.ReasonUnauthorized, Message: fmt.Sprintf("Flightctl at %s refused the token (%v): put a valid token in the credentials Secret's %s key", apiURL, err, vkv1.SecretKeyAuthToken)}
	case isTLSError(err):
		return &Error{Reason: vkv1.ReasonTLSVerificationFailed, Message: fmt.Sprintf("cannot verify the TLS certificate of %s (%v): put the CA that signed it in the Secret's %s key, or set spec.flightctl.tlsServerName", apiURL, err, vkv1.SecretKeyCACert)}
	case flightctl.IsInvalid(err):
		return &Error{Reason: vkv1.ReasonFlightctlError, Message: fmt.Sprintf("Flightctl at %s rejected the request: %v", apiURL, err)}
	default:
		var apiErr *flightctl.APIError
		if errors.As(err, &apiErr) {
			return &Error{Reason: vkv1.ReasonFlightctlError, Transient: true, Message: fmt.Sprintf("Flightctl at %s answered with an error: %v", apiURL, err)}
		}
		return &Error{Reason: vkv1.ReasonFlightctlUnreachable, Transient: true, Message: fmt.Sprintf("cannot reach Flightctl at %s: %v", apiURL, err)}
	}
}

func isTLSError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "tls: failed to verify certificate") ||
		strings.Contains(err.Error(), "x509: ")
}

// fingerprint hashes every input of the client so a change to any of them
// (a rotated token included) is noticed without keeping the token around.
func fingerprint(cfg flightctl.Config, secrets []string) string {
	h := sha256.New()
	for _, part := range append([]string{cfg.Server, cfg.Token, string(cfg.CAData), cfg.TLSServerName, cfg.OrgID, fmt.Sprint(cfg.InsecureSkipVerify)}, secrets...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
