package quickstart

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// The quickstart reads devices the way its reader would with curl:
// GET /api/v1/devices/<name> shows the applications vk-flightctl wrote
// (spec.applications) and what the agent reports (status.applications).
// Flightctl has no /devices/<id>/workloads endpoint, which the seed
// quickstart assumed.

// device is the part of a Flightctl Device the scenarios look at.
type device struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Applications []application `json:"applications"`
	} `json:"spec"`
	Status struct {
		Applications []applicationStatus `json:"applications"`
		Summary      struct {
			Status string `json:"status"`
			Info   string `json:"info"`
		} `json:"summary"`
		SystemInfo map[string]any `json:"systemInfo"`
	} `json:"status"`
}

// application is one entry of spec.applications.
type application struct {
	Name    string            `json:"name"`
	AppType string            `json:"appType"`
	Image   string            `json:"image"`
	EnvVars map[string]string `json:"envVars"`
	Inline  []struct {
		Path            string `json:"path"`
		Content         string `json:"content"`
		ContentEncoding string `json:"contentEncoding"`
	} `json:"inline"`
}

// text is everything the application says, inline files decoded, so a
// check can look for an image reference or an environment variable
// whatever the application format (quadlet, compose).
func (a application) text() string {
	var b strings.Builder
	b.WriteString(a.Image + "\n")
	keys := make([]string, 0, len(a.EnvVars))
	for k := range a.EnvVars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, a.EnvVars[k])
	}
	for _, f := range a.Inline {
		content := f.Content
		if f.ContentEncoding == "base64" {
			if raw, err := base64.StdEncoding.DecodeString(f.Content); err == nil {
				content = string(raw)
			}
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", f.Path, content)
	}
	return b.String()
}

// files lists the inline file paths, for display.
func (a application) files() []string {
	out := make([]string, len(a.Inline))
	for i, f := range a.Inline {
		out[i] = f.Path
	}
	return out
}

// applicationStatus is one entry of status.applications.
type applicationStatus struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Ready    string `json:"ready"`
	Restarts int    `json:"restarts"`
}

func (d *device) app(name string) (application, bool) {
	for _, a := range d.Spec.Applications {
		if a.Name == name {
			return a, true
		}
	}
	return application{}, false
}

func (d *device) appStatus(name string) (applicationStatus, bool) {
	for _, a := range d.Status.Applications {
		if a.Name == name {
			return a, true
		}
	}
	return applicationStatus{}, false
}

// appsWithPrefix lists spec.applications whose name starts with prefix.
func (d *device) appsWithPrefix(prefix string) []application {
	var out []application
	for _, a := range d.Spec.Applications {
		if strings.HasPrefix(a.Name, prefix) {
			out = append(out, a)
		}
	}
	return out
}

// ip is the address the agent reports (systemInfo.netIpDefault), without
// the prefix length the real agent adds ("192.0.2.2/24").
func (d *device) ip() string {
	s, _ := d.Status.SystemInfo["netIpDefault"].(string)
	addr, _, _ := strings.Cut(s, "/")
	return addr
}

// appName is the application name docs/CONVENTIONS.md promises for a pod:
// vk-<namespace>-<name>-<first 10 hex of sha256(uid)>, the middle part
// mapped to the DNS-label alphabet and cut so the whole is at most 63
// characters. It is computed here from the documentation, not taken from
// the product code, so the scenarios check the contract.
func appName(namespace, name, uid string) string {
	sum := sha256.Sum256([]byte(uid))
	hash := hex.EncodeToString(sum[:])[:10]
	var b strings.Builder
	for _, c := range strings.ToLower(namespace + "-" + name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	middle := b.String()
	if budget := 63 - len("vk-") - 1 - 10; len(middle) > budget {
		middle = middle[:budget]
	}
	middle = strings.Trim(middle, "-")
	if middle == "" {
		return "vk-" + hash
	}
	return "vk-" + middle + "-" + hash
}

// clients caches one HTTP client per CA file, so polling reuses
// connections instead of opening new ones.
var clients = struct {
	sync.Mutex
	m map[string]*http.Client
}{m: map[string]*http.Client{}}

// httpClientFor trusts caFile (PEM) when given, else the system roots.
func httpClientFor(caFile string) (*http.Client, error) {
	clients.Lock()
	defer clients.Unlock()
	if c := clients.m[caFile]; c != nil {
		return c, nil
	}
	c := &http.Client{Timeout: 15 * time.Second}
	if caFile == "" {
		clients.m[caFile] = c
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	clients.m[caFile] = c
	return c, nil
}

// flightctlGet GETs a Flightctl API path quietly.
func (r *run) flightctlGet(path string, into any) error {
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.e.FlightctlURL, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.e.FlightctlToken)
	client, err := httpClientFor(r.e.FlightctlCA)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, into)
}

// getDevice reads a device quietly.
func (r *run) getDevice(name string) (*device, error) {
	var d device
	if err := r.flightctlGet("/api/v1/devices/"+url.PathEscape(name), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// curlDevice reads a device with the curl command shown.
func (r *run) curlDevice(name string) (*device, error) {
	r.printf("$ curl -s%s -H \"Authorization: Bearer $FLIGHTCTL_TOKEN\" $FLIGHTCTL_URL/api/v1/devices/%s\n", r.caFlag("--cacert"), name)
	d, err := r.getDevice(name)
	if err != nil {
		r.printf("    %v\n", err)
	}
	return d, err
}

// caFlag is " FLAG $FLIGHTCTL_CA" when the API needs a CA file.
func (r *run) caFlag(flag string) string {
	if r.e.FlightctlCA == "" {
		return ""
	}
	return " " + flag + " $FLIGHTCTL_CA"
}

// fleetDevices lists the fleet's devices (label fleet=<fleet>) by name.
func (r *run) fleetDevices() ([]string, error) {
	var list struct {
		Items []device `json:"items"`
	}
	if err := r.flightctlGet("/api/v1/devices?labelSelector="+url.QueryEscape("fleet="+r.e.Fleet), &list); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for _, d := range list.Items {
		names = append(names, d.Metadata.Name)
	}
	sort.Strings(names)
	return names, nil
}

// showApps prints a device's applications whose name starts with prefix,
// spec and status side by side, as `jq` over the curl output would.
func (r *run) showApps(d *device, prefix string) {
	apps := d.appsWithPrefix(prefix)
	r.printf("    device %s (summary %s): %d of %d applications match %s*\n", d.Metadata.Name, orNothing(d.Status.Summary.Status), len(apps), len(d.Spec.Applications), prefix)
	for _, a := range apps {
		st, ok := d.appStatus(a.Name)
		status := "not reported yet"
		if ok {
			status = fmt.Sprintf("status %s, ready %s, restarts %d", st.Status, st.Ready, st.Restarts)
		}
		r.printf("      spec.applications[]:   {name: %s, appType: %s, files: %s}\n", a.Name, a.AppType, strings.Join(a.files(), ","))
		for _, img := range imagesIn(a.text()) {
			r.printf("                             image %s\n", img)
		}
		r.printf("      status.applications[]: %s\n", status)
	}
}

// imagesIn finds image references in an application's text (quadlet
// Image= lines, compose image: keys, the image field).
func imagesIn(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		var img string
		switch {
		case strings.HasPrefix(line, "Image="):
			img = strings.TrimPrefix(line, "Image=")
		case strings.HasPrefix(line, "image:"):
			img = strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, "image:")), `"'`)
		}
		if img != "" && !strings.HasSuffix(img, ".image") && !seen[img] {
			seen[img] = true
			out = append(out, img)
		}
	}
	return out
}

// simctl runs `flightctl-sim disconnect|reconnect DEVICE` against the
// simulator, shown with the URL and token as variables.
func (r *run) simctl(verb, dev string) error {
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	var args []string
	if r.e.ControlURL != "" && r.e.ControlURL != r.e.FlightctlURL {
		// Fake devices against a real Flightctl: their own control API
		// (plain HTTP on loopback) cuts the agent off; the server only
		// notices when its disconnect detection runs.
		r.printf("$ flightctl-sim %s %s --server %s --token $CONTROL_TOKEN\n", verb, dev, r.e.ControlURL)
		args = []string{verb, dev, "--server", r.e.ControlURL, "--token", r.e.ControlToken}
	} else {
		r.printf("$ flightctl-sim %s %s --server $FLIGHTCTL_URL --token $FLIGHTCTL_TOKEN%s\n", verb, dev, r.caFlag("--ca"))
		args = []string{verb, dev, "--server", r.e.FlightctlURL, "--token", r.e.FlightctlToken}
		if r.e.FlightctlCA != "" {
			args = append(args, "--ca", r.e.FlightctlCA)
		}
	}
	cmd := exec.CommandContext(ctx, r.e.SimCLI, args...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if s := strings.TrimSpace(string(out)); s != "" {
		r.printf("%s\n", indent(s, "    "))
	}
	if err != nil {
		return fmt.Errorf("flightctl-sim %s %s: %w", verb, dev, err)
	}
	return nil
}
