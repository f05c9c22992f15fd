package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// Disconnect workload devices: both in fleet bench-dx; dxB starts offline
// so that every pod lands on dxA.
const (
	dxFleet = "bench-dx"
	dxA     = "bench-dx-a"
	dxB     = "bench-dx-b"
)

// benchSimConfig is the bench simulator's configuration: the start and
// churn node's generated devices and the disconnect workload's two.
func benchSimConfig(cfg config) string {
	return fmt.Sprintf(`devices:
  - {name: %[3]s, labels: {fleet: %[4]s}, cpu: 4, memory: 8Gi, ip: 198.19.0.1}
  - {name: %[5]s, labels: {fleet: %[4]s}, cpu: 4, memory: 8Gi, ip: 198.19.0.2, disconnected: true}
generate:
  - prefix: bench-
    count: %[1]d
    labels: {fleet: %[2]s}
    cpu: 4
    memory: 8Gi
    ipStart: 198.18.0.1
`, cfg.Devices, benchFleet, dxA, dxFleet, dxB)
}

// ------------------------------------------------------------ simulator

// simProc is a flightctl-sim process and a client for its API.
type simProc struct {
	cmd        *exec.Cmd
	url, token string
	ca         []byte
	client     *http.Client
}

// startSim starts flightctl-sim (HTTPS, random token, instant agents) with
// the given YAML configuration; its files are <state>/<name>.*.
func startSim(ctx context.Context, state, name, bin, conf string, extra ...string) (*simProc, error) {
	cfgPath := filepath.Join(state, name+"-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ca := filepath.Join(state, name+"-ca.crt")
	logPath := filepath.Join(state, name+".log")
	_ = os.Remove(ca)
	args := append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--token", token,
		"--tls", "--ca-out", ca, "--config", cfgPath, "--agent-delay", "0", "--render-delay", "0", "--log-level", "warn"}, extra...)
	cmd, err := startProc(logPath, bin, args...)
	if err != nil {
		return nil, err
	}
	s := &simProc{cmd: cmd, url: "https://127.0.0.1:" + strconv.Itoa(port), token: token}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pem, err := os.ReadFile(ca); err == nil && len(pem) > 0 {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				s.ca = pem
				s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
				var out map[string]any
				if err := s.do(ctx, http.MethodGet, "/api/v1/devices?limit=1", &out); err == nil {
					return s, nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stopProc(cmd)
			return nil, fmt.Errorf("%s not ready after 30s:\n%s", name, quickstart.TailFile(logPath, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *simProc) do(ctx context.Context, method, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, body)
	}
	if into == nil || len(body) == 0 {
		return nil
	}
	return json.Unmarshal(body, into)
}

// simStats is the part of GET /sim/v1/stats the bench reads.
type simStats struct {
	Requests map[string]float64 `json:"requests"`
	BytesIn  float64            `json:"bytesIn"`
	BytesOut float64            `json:"bytesOut"`
}

// apiRequests is the Flightctl API requests, without the simulator's
// control API ("sim." operations: the bench's own stats and disconnect
// calls).
func (st simStats) apiRequests() (map[string]float64, float64) {
	api := map[string]float64{}
	total := 0.0
	for k, v := range st.Requests {
		if strings.HasPrefix(k, "sim.") {
			continue
		}
		api[k] = v
		total += v
	}
	return api, total
}

func (s *simProc) resetStats(ctx context.Context) error {
	return s.do(ctx, http.MethodPost, "/sim/v1/stats/reset", nil)
}

func (s *simProc) stats(ctx context.Context) (simStats, error) {
	var st simStats
	err := s.do(ctx, http.MethodGet, "/sim/v1/stats", &st)
	return st, err
}

// ------------------------------------------------------------ bindings

// bindingSpec is what differs between the bench's FleetBindings.
type bindingSpec struct {
	Fleet            string
	MaxPods          int
	ReconnectTimeout string
	// PollInterval is statusPollInterval; 0 means the bench's 1 s.
	PollInterval time.Duration
}

// applyBinding creates the credentials Secret for sim (once per name) and
// a FleetBinding selecting fleet=<Fleet> with a 1 s status poll.
func (b *bench) applyBinding(ctx context.Context, sim *simProc, secretName string, spec bindingSpec) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: quickstart.DefaultBindingNamespace},
		StringData: map[string]string{"api-url": sim.url, "auth-token": sim.token, "ca.crt": string(sim.ca)},
	}
	if _, err := b.cs.CoreV1().Secrets(secret.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	poll := pollInterval
	if spec.PollInterval > 0 {
		poll = spec.PollInterval
	}
	if spec.MaxPods < 110 {
		spec.MaxPods = 110
	}
	manifest := fmt.Sprintf(`apiVersion: vk.flightctl.io/v1alpha1
kind: FleetBinding
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  fleet: %[1]s
  deviceSelector: fleet=%[1]s
  flightctl:
    credentialsSecretRef:
      name: %[6]s
  deviceReserve: {cpu: 250m, memory: 512Mi}
  statusPollInterval: %[3]s
  reconnectTimeout: %[5]s
  maxPods: %[4]d
  applicationFormat: quadlet
`, spec.Fleet, quickstart.DefaultBindingNamespace, poll, spec.MaxPods, spec.ReconnectTimeout, secretName)
	path := filepath.Join(b.state, "fleetbinding-"+spec.Fleet+".yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		return err
	}
	out, err := b.stack.KubectlOutput(ctx, "apply", "-f", path)
	if err != nil {
		return fmt.Errorf("kubectl apply FleetBinding %s: %w: %s", spec.Fleet, err, out)
	}
	return nil
}

// deleteBinding deletes a FleetBinding; its node goes with it.
func (b *bench) deleteBinding(ctx context.Context, fleet string) {
	if out, err := b.stack.KubectlOutput(ctx, "delete", "fleetbinding", "-n", quickstart.DefaultBindingNamespace, fleet, "--wait=false"); err != nil {
		logf("deleting FleetBinding %s: %v: %s", fleet, err, out)
	}
}

// bindingStatus reads one field of a FleetBinding's status by jsonpath.
func (b *bench) bindingStatus(ctx context.Context, fleet, jsonpath string) string {
	out, err := b.stack.KubectlOutput(ctx, "get", "fleetbinding", "-n", quickstart.DefaultBindingNamespace, fleet, "-o", "jsonpath="+jsonpath)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// ------------------------------------------------------------ kwok

func startKwok(bin, kubeconfig, state string) (*exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startProc(filepath.Join(state, "kwok.log"), bin,
		"--kubeconfig", kubeconfig,
		"--config", filepath.Join(filepath.Dir(bin), "kwok-stages.yaml"),
		"--node-lease-duration-seconds", "40",
		"--manage-all-nodes=false",
		"--manage-nodes-with-label-selector", targetLabel+"=kwok",
		"--node-ip", "127.0.0.1",
		"--cidr", "10.64.0.0/16",
		"--server-address", "127.0.0.1:"+strconv.Itoa(port),
	)
}

func createKwokNode(ctx context.Context, cs kubernetes.Interface, vk *corev1.Node) error {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        kwokNode,
			Labels:      map[string]string{targetLabel: "kwok", "type": "kwok", "kubernetes.io/hostname": kwokNode},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    vk.Status.Capacity.DeepCopy(),
			Allocatable: vk.Status.Allocatable.DeepCopy(),
		},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	if len(created.Status.Allocatable) == 0 {
		created.Status.Capacity, created.Status.Allocatable = n.Status.Capacity, n.Status.Allocatable
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	}
	return err
}

func waitNodeReady(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration, extra func(*corev1.Node) bool) (*corev1.Node, error) {
	deadline := time.Now().Add(timeout)
	last := "not found"
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = fmt.Sprintf("capacity %v", n.Status.Capacity)
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && (extra == nil || extra(n)) {
					return n, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("node %s not Ready after %s (%s)", name, timeout, last)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ------------------------------------------------------------ processes

// startProc starts a process in its own process group that the kernel
// kills if this program dies.
func startProc(logPath, bin string, args ...string) (*exec.Cmd, error) {
	return startProcEnv(logPath, nil, bin, args...)
}

// startProcEnv is startProc with extra environment variables (tokens go
// there, never on the command line, which ps shows).
func startProcEnv(logPath string, env []string, bin string, args ...string) (*exec.Cmd, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

func stopProc(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 50; i++ {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runTool runs a command and returns its standard output; standard error
// joins the error.
func runTool(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
