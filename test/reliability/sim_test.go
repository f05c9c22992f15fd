package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// simClient talks to flightctl-sim: the Flightctl REST API (subject to the
// injected faults) and the control API /sim/v1 (never subject to them).
type simClient struct {
	base  string
	token string
	http  *http.Client
}

func newSimClient(base, token, caFile string) (*simClient, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &simClient{
		base:  strings.TrimRight(base, "/"),
		token: token,
		http: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

// simFaults is the body of POST /sim/v1/faults ({} clears every fault).
type simFaults struct {
	ErrorRate    float64 `json:"errorRate,omitempty"`
	Latency      string  `json:"latency,omitempty"`
	ConflictRate float64 `json:"conflictRate,omitempty"`
	Unreachable  bool    `json:"unreachable,omitempty"`
}

func (f simFaults) String() string {
	b, _ := json.Marshal(f)
	return string(b)
}

// simStats is GET /sim/v1/stats.
type simStats struct {
	Requests          map[string]int64 `json:"requests"`
	Responses         map[string]int64 `json:"responses"`
	InjectedErrors    int64            `json:"injectedErrors"`
	InjectedConflicts int64            `json:"injectedConflicts"`
	DroppedRequests   int64            `json:"droppedRequests"`
}

// apiRequests is the number of Flightctl API requests (control API ones,
// prefixed "sim.", left out).
func (s simStats) apiRequests() int64 {
	var n int64
	for op, c := range s.Requests {
		if !strings.HasPrefix(op, "sim.") {
			n += c
		}
	}
	return n
}

func (s simStats) minus(o simStats) simStats {
	return simStats{
		Requests:          map[string]int64{"api": s.apiRequests() - o.apiRequests()},
		InjectedErrors:    s.InjectedErrors - o.InjectedErrors,
		InjectedConflicts: s.InjectedConflicts - o.InjectedConflicts,
		DroppedRequests:   s.DroppedRequests - o.DroppedRequests,
	}
}

func (c *simClient) do(ctx context.Context, method, path string, body any, into any, okCodes ...int) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(okCodes) == 0 {
		okCodes = []int{http.StatusOK}
	}
	ok := false
	for _, code := range okCodes {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			return fmt.Errorf("%s %s: decoding: %w", method, path, err)
		}
	}
	return nil
}

func (c *simClient) setFaults(ctx context.Context, f simFaults) error {
	return c.do(ctx, http.MethodPost, "/sim/v1/faults", f, nil)
}

func (c *simClient) stats(ctx context.Context) (simStats, error) {
	var s simStats
	return s, c.do(ctx, http.MethodGet, "/sim/v1/stats", nil, &s)
}

func (c *simClient) disconnect(ctx context.Context, device string) error {
	return c.do(ctx, http.MethodPost, "/sim/v1/devices/"+url.PathEscape(device)+"/disconnect", nil, nil)
}

// reconnect also gives a device registered through the REST API a
// simulated agent.
func (c *simClient) reconnect(ctx context.Context, device string) error {
	return c.do(ctx, http.MethodPost, "/sim/v1/devices/"+url.PathEscape(device)+"/reconnect", nil, nil)
}

// devices lists every device (the simulator holds only this fleet's),
// following continue tokens.
func (c *simClient) devices(ctx context.Context) ([]flightctl.Device, error) {
	var out []flightctl.Device
	cont := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if cont != "" {
			q.Set("continue", cont)
		}
		var page flightctl.DeviceList
		if err := c.do(ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Items...)
		if cont = page.Metadata.Continue; cont == "" {
			return out, nil
		}
	}
}

// createDevice registers a device through the REST API, as enrollment
// would; reconnect then gives it an agent.
func (c *simClient) createDevice(ctx context.Context, name string, labels map[string]string) error {
	body := map[string]any{
		"apiVersion": "flightctl.io/v1beta1", "kind": "Device",
		"metadata": map[string]any{"name": name, "labels": labels},
		"spec":     map[string]any{},
	}
	return c.do(ctx, http.MethodPost, "/api/v1/devices", body, nil, http.StatusCreated)
}

func (c *simClient) deleteDevice(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/devices/"+url.PathEscape(name), nil, nil)
}

// device reads one device through the REST API.
func (c *simClient) device(ctx context.Context, name string) (*flightctl.Device, error) {
	var d flightctl.Device
	return &d, c.do(ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(name), nil, &d)
}

// setDeviceLabel adds or changes one label with a JSON patch, as an
// administrator relabelling a device would (label changes are accepted
// whoever owns the device).
func (c *simClient) setDeviceLabel(ctx context.Context, device, key, value string) error {
	return c.patchDevice(ctx, device, []map[string]any{{"op": "add", "path": "/metadata/labels/" + jsonPointerEscape(key), "value": value}})
}

// removeDeviceLabel removes one label with a JSON patch.
func (c *simClient) removeDeviceLabel(ctx context.Context, device, key string) error {
	return c.patchDevice(ctx, device, []map[string]any{{"op": "remove", "path": "/metadata/labels/" + jsonPointerEscape(key)}})
}

func (c *simClient) patchDevice(ctx context.Context, device string, ops []map[string]any) error {
	raw, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	path := "/api/v1/devices/" + url.PathEscape(device)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.base+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	// Flightctl takes RFC 6902 patches only.
	req.Header.Set("Content-Type", "application/json-patch+json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("PATCH %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PATCH %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// createFleet creates a Flightctl Fleet: the server's worker gives it the
// devices its selector matches (metadata.owner "Fleet/<name>") and rolls
// its template out to them, replacing their whole spec.
func (c *simClient) createFleet(ctx context.Context, name string, selector map[string]string, templateSpec map[string]any) error {
	body := map[string]any{
		"apiVersion": "flightctl.io/v1beta1", "kind": "Fleet",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": selector},
			"template": map[string]any{"spec": templateSpec},
		},
	}
	return c.do(ctx, http.MethodPost, "/api/v1/fleets", body, nil, http.StatusCreated)
}

func (c *simClient) deleteFleet(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/fleets/"+url.PathEscape(name), nil, nil)
}
