package flightctl

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/oauth2"
	"sigs.k8s.io/yaml"
)

// DefaultTimeout bounds one HTTP attempt. It is generous because a token
// signed by an unknown key can take about ten seconds to be refused.
const DefaultTimeout = 30 * time.Second

// Config says how to reach and authenticate to a Flightctl API server.
type Config struct {
	// Server is the API endpoint, https://host:port (the CLI's
	// service.server). "/api/v1" is appended; a trailing "/api/v1" is
	// accepted and not doubled.
	Server string
	// Token is sent as "Authorization: Bearer <Token>". It never appears in
	// errors or logs.
	Token string
	// TokenSource, when set, is asked for the bearer token on every
	// request instead of Token: an OAuth2/OIDC source that refreshes
	// before expiry (wrap it in oauth2.ReuseTokenSource), or one that
	// re-reads a projected ServiceAccount token. Its tokens are kept out
	// of errors and logs like Token.
	TokenSource oauth2.TokenSource
	// CAData is a PEM bundle of CAs trusted for the server's certificate.
	// Empty means the system roots.
	CAData []byte
	// TLSServerName overrides the name checked against the server's
	// certificate, for servers reached by IP or through a tunnel.
	TLSServerName string
	// InsecureSkipVerify turns off certificate verification. Only for
	// throw-away test setups; it must be asked for explicitly.
	InsecureSkipVerify bool
	// OrgID selects the organization when the identity belongs to several.
	// It is sent as the org_id query parameter on every call.
	OrgID string
	// Timeout bounds each HTTP attempt, body included. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Transport replaces the HTTP transport. When set, CAData,
	// TLSServerName and InsecureSkipVerify are ignored: the caller owns TLS.
	// Tests use it to inject faults.
	Transport http.RoundTripper
	// Retry tunes retries of safe calls. Zero fields take defaults.
	Retry RetryConfig
	// Logger receives one V(1) line per HTTP attempt. The zero value
	// discards.
	Logger logr.Logger
	// UserAgent is sent as User-Agent. Empty means "vk-flightctl".
	UserAgent string
}

// String hides the token so that printing a Config with %v or %+v is safe.
func (c Config) String() string {
	tok := ""
	if c.Token != "" || c.TokenSource != nil {
		tok = "[REDACTED]"
	}
	return fmt.Sprintf("flightctl.Config{Server:%q Token:%q CAData:%d bytes TLSServerName:%q InsecureSkipVerify:%t OrgID:%q Timeout:%s}",
		c.Server, tok, len(c.CAData), c.TLSServerName, c.InsecureSkipVerify, c.OrgID, c.Timeout)
}

// GoString hides the token from %#v as well.
func (c Config) GoString() string { return c.String() }

var yamlLineRE = regexp.MustCompile(`line \d+`)

// clientYAML is the subset of the Flightctl CLI's client.yaml this project
// understands. Unknown keys (the CLI's auth provider settings, for example)
// are ignored so a file written by a newer CLI still loads.
type clientYAML struct {
	Service struct {
		Server                   string `json:"server"`
		CertificateAuthority     string `json:"certificate-authority"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
		TLSServerName            string `json:"tls-server-name"`
		InsecureSkipVerify       bool   `json:"insecureSkipVerify"`
	} `json:"service"`
	Authentication struct {
		AccessToken string `json:"access-token"`
	} `json:"authentication"`
	Organization string `json:"organization"`
}

// ConfigFromClientYAML reads the Flightctl CLI's client.yaml
// (~/.config/flightctl/client.yaml) so users can hand that file over as it
// is. A relative certificate-authority path is resolved against baseDir
// (the file's directory), as the CLI does; pass "" to use the working
// directory. Fields that are not in the file stay zero in the result, so
// callers can layer their own Timeout, Retry or Logger on top.
func ConfigFromClientYAML(data []byte, baseDir string) (Config, error) {
	var y clientYAML
	if err := yaml.Unmarshal(data, &y); err != nil {
		// Parser errors may quote the offending value, which may be the
		// token: keep only the line number.
		msg := "parse client.yaml: invalid YAML"
		if m := yamlLineRE.FindString(err.Error()); m != "" {
			msg += " at " + m
		}
		// encoding/json type errors name the field and the JSON kind,
		// never the value: safe and more useful.
		if _, typeErr, ok := strings.Cut(err.Error(), "json: cannot unmarshal "); ok {
			msg += ": cannot unmarshal " + typeErr
		}
		return Config{}, errors.New(msg)
	}
	cfg := Config{
		Server:             strings.TrimSpace(y.Service.Server),
		Token:              strings.TrimSpace(y.Authentication.AccessToken),
		TLSServerName:      y.Service.TLSServerName,
		InsecureSkipVerify: y.Service.InsecureSkipVerify,
		OrgID:              strings.TrimSpace(y.Organization),
	}
	if cfg.Server == "" {
		return Config{}, errors.New("client.yaml: service.server is empty")
	}
	if d := strings.TrimSpace(y.Service.CertificateAuthorityData); d != "" {
		pem, err := base64.StdEncoding.DecodeString(d)
		if err != nil {
			return Config{}, fmt.Errorf("client.yaml: service.certificate-authority-data is not base64: %w", err)
		}
		cfg.CAData = pem
	}
	if p := strings.TrimSpace(y.Service.CertificateAuthority); p != "" {
		if !filepath.IsAbs(p) && baseDir != "" {
			p = filepath.Join(baseDir, p)
		}
		pem, err := os.ReadFile(p)
		if err != nil {
			return Config{}, fmt.Errorf("client.yaml: service.certificate-authority: %w", err)
		}
		// Both may be set; trust both rather than guess which one wins.
		cfg.CAData = append(append(cfg.CAData, '\n'), pem...)
	}
	return cfg, nil
}

// LoadClientYAML reads a client.yaml file, resolving a relative
// certificate-authority path against the file's directory.
func LoadClientYAML(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read client.yaml: %w", err)
	}
	return ConfigFromClientYAML(data, filepath.Dir(path))
}

// NewFromClientYAML builds a client from the contents of the Flightctl CLI's
// client.yaml with default timeout and retries. Use ConfigFromClientYAML to
// adjust the configuration first.
func NewFromClientYAML(data []byte) (*Client, error) {
	cfg, err := ConfigFromClientYAML(data, "")
	if err != nil {
		return nil, err
	}
	return New(cfg)
}
