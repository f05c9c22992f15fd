package quickstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// RealAgent is a real flightctl-agent v1.2.0 enrolled with an external
// Flightctl, running as a local process without touching /etc or /var:
// FLIGHTCTL_TEST_ROOT_DIR points it at a directory of its own, whose proc
// links to /proc so that its CPU and memory collectors work.
//
// It runs no applications here (the agent needs podman 5 for that), but it
// enrols, reports systemInfo and comes Online like any device.
type RealAgent struct {
	// Name is the device name the agent chose (its key fingerprint).
	Name string
	// Log is the agent's log file.
	Log string

	ext *ExternalFlightctl
	cmd *exec.Cmd
	out chan struct{}
}

// FlightctlBinDir is where hack/build-flightctl.sh caches the Flightctl
// binaries: $FLIGHTCTL_BIN_DIR, else ~/.cache/vk-flightctl/flightctl/v1.2.0.
func FlightctlBinDir() string {
	if d := os.Getenv("FLIGHTCTL_BIN_DIR"); d != "" {
		return d
	}
	base := os.Getenv("VK_FLIGHTCTL_CACHE")
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		base = filepath.Join(cache, "vk-flightctl", "flightctl")
	}
	return filepath.Join(base, "v1.2.0")
}

// enrollURL is how the agent prints the enrollment request it created.
var enrollURL = regexp.MustCompile(`/enroll/([a-z0-9]{16,})`)

// StartRealAgent gets an enrollment config with the flightctl CLI
// (`flightctl login`, `flightctl certificate request -s enrollment`),
// starts flightctl-agent in dir, approves its enrollment request with
// labels and waits until the device is Online. Stop ends it.
func StartRealAgent(ctx context.Context, ext *ExternalFlightctl, binDir, dir string, labels map[string]string, out io.Writer) (*RealAgent, error) {
	for _, b := range []string{"flightctl", "flightctl-agent"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("%w: build it with hack/build-flightctl.sh (make flightctl-binaries)", err)
		}
	}
	home, root := filepath.Join(dir, "home"), filepath.Join(dir, "root")
	for _, d := range []string{home, filepath.Join(root, "etc", "flightctl")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cli := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "flightctl"), args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "HOME="+home)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("flightctl %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return b, nil
	}
	fmt.Fprintf(out, "$ flightctl login %s --token $FLIGHTCTL_TOKEN --certificate-authority %s\n", ext.URL, ext.CAFile)
	login := []string{"login", ext.URL, "--token", ext.Token}
	if ext.CAFile != "" {
		login = append(login, "--certificate-authority", ext.CAFile)
	}
	if _, err := cli(login...); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "$ flightctl certificate request -s enrollment -x 365d -o embedded -n real-agent > enrollment.yaml\n")
	enrollment, err := cli("certificate", "request", "-s", "enrollment", "-x", "365d", "-o", "embedded", "-n", "real-agent")
	if err != nil {
		return nil, err
	}
	// Short intervals so the test does not wait a minute for each report;
	// cpuCores and memoryTotalKb are opt-in on the agent.
	cfg := string(enrollment) + "spec-fetch-interval: 5s\nstatus-update-interval: 5s\nlog-level: info\n" +
		"system-info:\n  - hostname\n  - netIpDefault\n  - cpuCores\n  - memoryTotalKb\n"
	if err := os.WriteFile(filepath.Join(root, "etc", "flightctl", "config.yaml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := os.Symlink("/proc", filepath.Join(root, "proc")); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	a := &RealAgent{Log: filepath.Join(dir, "flightctl-agent.log"), ext: ext, out: make(chan struct{})}
	logf, err := os.Create(a.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(out, "$ FLIGHTCTL_TEST_ROOT_DIR=%s flightctl-agent >%s 2>&1 &\n", root, a.Log)
	a.cmd = exec.Command(filepath.Join(binDir, "flightctl-agent"))
	a.cmd.Dir, a.cmd.Stdout, a.cmd.Stderr = dir, logf, logf
	a.cmd.Env = append(os.Environ(), "FLIGHTCTL_TEST_ROOT_DIR="+root, "HOME="+home)
	a.cmd.SysProcAttr = sysProcAttr(false)
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = a.cmd.Wait(); close(a.out) }()
	ok := false
	defer func() {
		if !ok {
			a.Stop()
		}
	}()

	// The agent names its enrollment request after its key and prints
	// the enrollment URL with that name.
	deadline := time.Now().Add(60 * time.Second)
	for a.Name == "" {
		raw, _ := os.ReadFile(a.Log)
		if m := enrollURL.FindSubmatch(raw); m != nil {
			a.Name = string(m[1])
			break
		}
		if err := a.waitStep(ctx, deadline, "print its enrollment request"); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "    agent created enrollment request %s\n", a.Name)
	body, _ := json.Marshal(map[string]any{"approved": true, "labels": labels})
	fmt.Fprintf(out, "$ curl -X PUT $FLIGHTCTL_URL/api/v1/enrollmentrequests/%s/approval -d '%s'\n", a.Name, body)
	for {
		code, msg, err := a.api(ctx, http.MethodPut, "/api/v1/enrollmentrequests/"+a.Name+"/approval", string(body), nil)
		if err == nil && code == http.StatusOK {
			break
		}
		if code != http.StatusNotFound { // not created yet: retry
			return nil, fmt.Errorf("approving %s: %d %s %w", a.Name, code, msg, err)
		}
		if err := a.waitStep(ctx, deadline, "create its enrollment request"); err != nil {
			return nil, err
		}
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		var d device
		code, msg, err := a.api(ctx, http.MethodGet, "/api/v1/devices/"+a.Name, "", &d)
		if err == nil && code == http.StatusOK && d.Status.Summary.Status == "Online" &&
			d.Status.SystemInfo["cpuCores"] != nil && d.Status.SystemInfo["cpuCores"] != "" {
			fmt.Fprintf(out, "    device %s Online: cpuCores %v, memoryTotalKb %v, agentVersion %v\n", a.Name,
				d.Status.SystemInfo["cpuCores"], d.Status.SystemInfo["memoryTotalKb"], d.Status.SystemInfo["agentVersion"])
			break
		}
		if err := a.waitStep(ctx, deadline, fmt.Sprintf("come Online with cpuCores (last: %d %s, summary %q)", code, msg, d.Status.Summary.Status)); err != nil {
			return nil, err
		}
	}
	ok = true
	return a, nil
}

// Device reads the agent's device from the API.
func (a *RealAgent) Device(ctx context.Context) (cpuCores, memoryKb string, err error) {
	var d device
	code, msg, err := a.api(ctx, http.MethodGet, "/api/v1/devices/"+a.Name, "", &d)
	if err != nil || code != http.StatusOK {
		return "", "", fmt.Errorf("GET device %s: %d %s %w", a.Name, code, msg, err)
	}
	cpu, _ := d.Status.SystemInfo["cpuCores"].(string)
	mem, _ := d.Status.SystemInfo["memoryTotalKb"].(string)
	return cpu, mem, nil
}

// UpdateReport is what a device says about its last update: the
// Updating condition, status.updated, the rendered version it runs and
// the one the server rendered, and the raw device JSON it came from.
type UpdateReport struct {
	// ConditionStatus, ConditionReason and ConditionMessage are the
	// device's Updating condition.
	ConditionStatus, ConditionReason, ConditionMessage string
	// UpdatedStatus and UpdatedInfo are status.updated.
	UpdatedStatus, UpdatedInfo string
	// Running is status.config.renderedVersion, Rendered the
	// device-controller/renderedVersion annotation.
	Running, Rendered string
	// Applications are the names in spec.applications.
	Applications []string
	// Raw is the device as the API returned it.
	Raw []byte
}

// Failed reports whether the device says its last update failed
// (Updating False, reason Error), as a real v1.2.0 agent does after a
// failed Prepare and rollback.
func (u UpdateReport) Failed() bool {
	return u.ConditionStatus == "False" && u.ConditionReason == "Error"
}

// UpdateReport reads the agent's device and what it says of its update.
func (a *RealAgent) UpdateReport(ctx context.Context) (UpdateReport, error) {
	code, raw, err := a.api(ctx, http.MethodGet, "/api/v1/devices/"+a.Name, "", nil)
	if err != nil || code != http.StatusOK {
		return UpdateReport{}, fmt.Errorf("GET device %s: %d %s %w", a.Name, code, raw, err)
	}
	var d struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Applications []struct {
				Name string `json:"name"`
			} `json:"applications"`
		} `json:"spec"`
		Status struct {
			Conditions []struct {
				Type, Status, Reason, Message string
			} `json:"conditions"`
			Updated struct {
				Status string `json:"status"`
				Info   string `json:"info"`
			} `json:"updated"`
			Config struct {
				RenderedVersion string `json:"renderedVersion"`
			} `json:"config"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return UpdateReport{}, err
	}
	u := UpdateReport{
		UpdatedStatus: d.Status.Updated.Status, UpdatedInfo: d.Status.Updated.Info,
		Running: d.Status.Config.RenderedVersion, Rendered: d.Metadata.Annotations["device-controller/renderedVersion"],
		Raw: []byte(raw),
	}
	for _, c := range d.Status.Conditions {
		if c.Type == "Updating" {
			u.ConditionStatus, u.ConditionReason, u.ConditionMessage = c.Status, c.Reason, c.Message
		}
	}
	for _, app := range d.Spec.Applications {
		u.Applications = append(u.Applications, app.Name)
	}
	return u, nil
}

// Stop ends the agent process (SIGTERM, then SIGKILL after 10 s).
func (a *RealAgent) Stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.out:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.out
	}
}

// Delete removes the agent's device and enrollment request from the
// server (deletes are idempotent in v1.2.0).
func (a *RealAgent) Delete(ctx context.Context) error {
	var errs []error
	for _, p := range []string{"/api/v1/devices/", "/api/v1/enrollmentrequests/"} {
		if code, msg, err := a.api(ctx, http.MethodDelete, p+a.Name, "", nil); err != nil || code != http.StatusOK {
			errs = append(errs, fmt.Errorf("DELETE %s%s: %d %s %w", p, a.Name, code, msg, err))
		}
	}
	return errors.Join(errs...)
}

func (a *RealAgent) waitStep(ctx context.Context, deadline time.Time, what string) error {
	if time.Now().After(deadline) {
		return fmt.Errorf("flightctl-agent did not %s in time\n%s", what, tailFile(a.Log, 20))
	}
	select {
	case <-a.out:
		return fmt.Errorf("flightctl-agent exited before it would %s\n%s", what, tailFile(a.Log, 20))
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(500 * time.Millisecond):
		return nil
	}
}

// api calls the user API with the external Flightctl's token.
func (a *RealAgent) api(ctx context.Context, method, path, body string, into any) (int, string, error) {
	client, err := httpClientFor(a.ext.CAFile)
	if err != nil {
		return 0, "", err
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.ext.URL, "/")+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.ext.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	if into != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, into); err != nil {
			return resp.StatusCode, "", err
		}
	}
	return resp.StatusCode, strings.TrimSpace(string(raw)), nil
}
