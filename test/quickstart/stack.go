package quickstart

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// K8sVersion is the Kubernetes version whose binaries hack/ builds and
// whose kubectl the scenarios use.
const K8sVersion = "v1.37.2"

// Binaries the control plane needs, built by hack/build-k8s-binaries.sh.
var k8sBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}

// StackConfig says where a Stack keeps its state and how it behaves.
type StackConfig struct {
	// Root is the repository root (where go.mod is).
	Root string
	// StateDir holds the simulator's and the manager's pid and log files,
	// the manager's kubeconfig and the install overlay.
	StateDir string
	// BinDir receives the vk-flightctl-provider and flightctl-sim binaries.
	BinDir string
	// ClusterDir and Kubeconfig are passed to hack/local-cluster.sh as
	// --dir and --kubeconfig; empty means its defaults (.local/cluster and
	// .local/kubeconfig).
	ClusterDir string
	Kubeconfig string
	// K8sBinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kubectl; empty means <Root>/bin/k8s/<K8sVersion>.
	K8sBinDir string
	// BuildK8s lets hack/local-cluster.sh build missing Kubernetes
	// binaries (10 to 20 minutes cold). Without it a missing binary is an
	// error naming the command that builds it.
	BuildK8s bool
	// Fleet is the fleet to bind; empty means DefaultFleet.
	Fleet string
	// ReconnectTimeout and StatusPollInterval go into the FleetBinding.
	ReconnectTimeout   time.Duration
	StatusPollInterval time.Duration
	// Detach starts the simulator and the manager in their own sessions so
	// they outlive this program (make demo leaves them running). Otherwise
	// they are killed when this program dies, even without Down.
	Detach bool
	// ManagerAsAdmin runs the manager with the cluster-admin kubeconfig
	// instead of the vk-flightctl-provider ServiceAccount's token. The
	// default exercises config/rbac as a real deployment would.
	ManagerAsAdmin bool
	// KubeletListenAddress is the manager's --kubelet-listen-address;
	// empty means 127.0.0.1:0 (a free port), so stacks can share a machine.
	KubeletListenAddress string
	// ManagerArgs are appended to the manager's command line (the bench
	// passes --pprof-bind-address to profile it).
	ManagerArgs []string
	// Install, when set, replaces the step that installs the CRD, RBAC and
	// the manager's ConfigMap from config/ with kustomize (the Helm e2e
	// spec installs dist/chart with helm instead). It runs once the
	// control plane and the simulator are up; InstallTitle narrates it.
	Install      func(ctx context.Context) error
	InstallTitle string
	// ManagerNamespace holds the manager's ServiceAccount, ConfigMap and
	// Lease (its --namespace and POD_NAMESPACE); empty means
	// DefaultBindingNamespace, where the kustomize install puts them.
	ManagerNamespace string
	// External, when set, is a Flightctl the stack uses instead of
	// starting the simulator, e.g. the real v1.2.0 of
	// hack/real-flightctl.sh. The stack then runs fake devices against it
	// (`flightctl-sim agent`: they enrol and act as agents over the mTLS
	// agent endpoint). ExternalFromEnv reads it from FLIGHTCTL_URL & co.
	External *ExternalFlightctl
	// Out receives the narration.
	Out io.Writer
}

// ExternalFlightctl is a Flightctl service the stack did not start.
type ExternalFlightctl struct {
	// URL, Token and CAFile (PEM, may be empty for the system roots)
	// reach the user API.
	URL, Token, CAFile string
	// AgentEndpoint overrides the agent endpoint the server's enrollment
	// config names; empty uses that one.
	AgentEndpoint string
	// DisconnectDetection is the longest the server takes to declare a
	// silent device disconnected: scenario 5 waits that much more.
	// Flightctl v1.2.0 declares a device gone after 5 minutes of
	// silence and checks every 2 minutes (RealDisconnectDetection).
	DisconnectDetection time.Duration
	// OIDCIssuer, OIDCClientID and OIDCClientSecretFile name the identity
	// provider the server trusts and a client of it with the
	// client_credentials grant (FLIGHTCTL_OIDC_*); empty when not given.
	// Rewriting the secret file revokes the old secret at once.
	OIDCIssuer, OIDCClientID, OIDCClientSecretFile string
}

// RealDisconnectDetection is how long Flightctl v1.2.0 may take to mark a
// silent device disconnected: 5 minutes without contact, noticed by a
// check that runs every 2 minutes (both hard-coded in v1.2).
const RealDisconnectDetection = 7 * time.Minute

// ExternalFromEnv returns the Flightctl named by FLIGHTCTL_URL,
// FLIGHTCTL_TOKEN, FLIGHTCTL_CA and FLIGHTCTL_AGENT_ENDPOINT (what
// `hack/real-flightctl.sh env` prints), nil when FLIGHTCTL_URL is unset,
// and an error when it is set without a token: whoever set it meant the
// stack to use it.
func ExternalFromEnv() (*ExternalFlightctl, error) {
	u := strings.TrimSpace(os.Getenv("FLIGHTCTL_URL"))
	if u == "" {
		return nil, nil
	}
	tok := strings.TrimSpace(os.Getenv("FLIGHTCTL_TOKEN"))
	if tok == "" {
		return nil, errors.New("FLIGHTCTL_URL is set but FLIGHTCTL_TOKEN is empty")
	}
	ca := strings.TrimSpace(os.Getenv("FLIGHTCTL_CA"))
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			return nil, fmt.Errorf("FLIGHTCTL_CA: %w", err)
		}
	}
	return &ExternalFlightctl{URL: u, Token: tok, CAFile: ca,
		AgentEndpoint: strings.TrimSpace(os.Getenv("FLIGHTCTL_AGENT_ENDPOINT")), DisconnectDetection: RealDisconnectDetection,
		OIDCIssuer:           strings.TrimSpace(os.Getenv("FLIGHTCTL_OIDC_ISSUER")),
		OIDCClientID:         strings.TrimSpace(os.Getenv("FLIGHTCTL_OIDC_CLIENT_ID")),
		OIDCClientSecretFile: strings.TrimSpace(os.Getenv("FLIGHTCTL_OIDC_CLIENT_SECRET_FILE")),
	}, nil
}

// Stack is a running vk-flightctl setup: control plane, simulator, manager
// and FleetBinding, all on 127.0.0.1.
type Stack struct {
	cfg StackConfig

	// Kubectl is the v1.37 kubectl; Kubeconfig the cluster-admin kubeconfig.
	Kubectl    string
	Kubeconfig string
	// SimURL, SimToken and SimCA (a PEM file) reach the Flightctl API:
	// the simulator, which serves HTTPS like a real Flightctl API, or the
	// External one.
	SimURL   string
	SimToken string
	SimCA    string
	// SimBin and ManagerBin are the built binaries.
	SimBin     string
	ManagerBin string
	// SimLog and ManagerLog are the processes' log files.
	SimLog     string
	ManagerLog string
	// ManagerHealthURL is the /readyz of the manager named DefaultManager.
	ManagerHealthURL string
	// ManagerMetricsURL is its /metrics (plain HTTP on loopback).
	ManagerMetricsURL string

	// ControlURL and ControlToken reach the device control API (the
	// simulator's own, or that of the fake devices run against an
	// External Flightctl) that `flightctl-sim disconnect` uses.
	ControlURL   string
	ControlToken string

	// managerKC is the kubeconfig file managers run with, written once.
	managerKC string
	// mu guards procs, ManagerHealthURL and ManagerMetricsURL: a test may kill and start
	// managers while its cleanup stops the stack.
	mu      sync.Mutex
	procs   map[string]*proc
	reaper  int
	started bool
}

// DefaultManager names the manager process Up starts.
const DefaultManager = "manager"

// ManagerOptions are the settings of one manager process (StartManager).
type ManagerOptions struct {
	// Name tells manager processes apart: the pid file is
	// <StateDir>/<Name>.pid, the log <StateDir>/<Name>.log. Empty means
	// DefaultManager, whose log is ManagerLog.
	Name string
	// LeaderElect runs the manager with --leader-elect, as the replicas of
	// a Deployment would run: only the holder of the Lease runs nodes and
	// writes to Flightctl.
	LeaderElect bool
	// Sharded runs the manager with --sharding --replica-name <Name>: it
	// runs the nodes of its share of the bindings (docs/sharding.md).
	Sharded bool
	// Args are appended to this process's command line (e.g. Lease
	// timings).
	Args []string
}

// managerNamespace is StackConfig.ManagerNamespace with its default.
func (s *Stack) managerNamespace() string {
	if s.cfg.ManagerNamespace != "" {
		return s.cfg.ManagerNamespace
	}
	return DefaultBindingNamespace
}

// kubeletListenAddress is where the manager's kubelet API listens.
func (s *Stack) kubeletListenAddress() string {
	if s.cfg.KubeletListenAddress != "" {
		return s.cfg.KubeletListenAddress
	}
	return "127.0.0.1:0"
}

// proc is a process the stack started and reaps.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// NewStack checks the configuration and fills in defaults.
func NewStack(cfg StackConfig) (*Stack, error) {
	if cfg.Root == "" || cfg.StateDir == "" || cfg.BinDir == "" {
		return nil, errors.New("quickstart.StackConfig needs Root, StateDir and BinDir")
	}
	if cfg.Fleet == "" {
		cfg.Fleet = DefaultFleet
	}
	if cfg.K8sBinDir == "" {
		cfg.K8sBinDir = filepath.Join(cfg.Root, "bin", "k8s", K8sVersion)
	}
	if cfg.Kubeconfig == "" {
		if cfg.ClusterDir == "" {
			cfg.Kubeconfig = filepath.Join(cfg.Root, ".local", "kubeconfig")
		} else {
			cfg.Kubeconfig = filepath.Join(cfg.ClusterDir, "kubeconfig")
		}
	}
	if cfg.ReconnectTimeout < 10*time.Second {
		return nil, fmt.Errorf("ReconnectTimeout %s: the FleetBinding requires at least 10s", cfg.ReconnectTimeout)
	}
	if cfg.StatusPollInterval < time.Second {
		return nil, fmt.Errorf("StatusPollInterval %s: the FleetBinding requires at least 1s", cfg.StatusPollInterval)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	s := &Stack{
		cfg:        cfg,
		Kubectl:    filepath.Join(cfg.K8sBinDir, "kubectl"),
		Kubeconfig: cfg.Kubeconfig,
		SimBin:     filepath.Join(cfg.BinDir, "flightctl-sim"),
		ManagerBin: filepath.Join(cfg.BinDir, "vk-flightctl-provider"),
		SimLog:     filepath.Join(cfg.StateDir, "flightctl-sim.log"),
		ManagerLog: filepath.Join(cfg.StateDir, "manager.log"),
		procs:      map[string]*proc{},
	}
	return s, nil
}

// Env is the scenarios' view of the running stack.
func (s *Stack) Env(out io.Writer) *Env {
	return &Env{
		Kubectl: s.Kubectl, Kubeconfig: s.Kubeconfig,
		FlightctlURL: s.SimURL, FlightctlToken: s.SimToken, FlightctlCA: s.SimCA, SimCLI: s.SimBin,
		ControlURL: s.ControlURL, ControlToken: s.ControlToken, DisconnectDetection: s.disconnectDetection(),
		ManagerLog: s.ManagerLog, Fleet: s.cfg.Fleet, BindingNamespace: DefaultBindingNamespace,
		ReconnectTimeout: s.cfg.ReconnectTimeout, Out: out, NoConsole: s.cfg.External != nil,
	}
}

// disconnectDetection is how long the Flightctl server may take to notice
// a silent device: 0 for the simulator, which the stack runs with
// --disconnect-detection 0s.
func (s *Stack) disconnectDetection() time.Duration {
	if s.cfg.External != nil {
		return s.cfg.External.DisconnectDetection
	}
	return 0
}

// External reports whether the stack uses an external Flightctl.
func (s *Stack) External() bool { return s.cfg.External != nil }

// NodeName is the node the stack waits for.
func (s *Stack) NodeName() string { return "vk-flightctl-" + s.cfg.Fleet }

func (s *Stack) printf(format string, args ...any) { fmt.Fprintf(s.cfg.Out, format, args...) }

// CheckPrerequisites fails with what is missing and how to get it.
func (s *Stack) CheckPrerequisites() error {
	var problems []string
	for _, tool := range []string{"go", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			problems = append(problems, tool+" is not in PATH")
		}
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Root, "hack", "local-cluster.sh")); err != nil {
		problems = append(problems, "hack/local-cluster.sh is missing under "+s.cfg.Root)
	}
	if !s.cfg.BuildK8s {
		var missing []string
		for _, b := range k8sBinaries {
			if fi, err := os.Stat(filepath.Join(s.cfg.K8sBinDir, b)); err != nil || fi.Mode()&0o111 == 0 {
				missing = append(missing, b)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s lacks %s: build them with `make k8s-binaries-all` (hack/build-k8s-binaries.sh %s; 10-20 min cold, cached afterwards)",
				s.cfg.K8sBinDir, strings.Join(missing, ", "), strings.Join(k8sBinaries, " ")))
		}
	}
	for _, dir := range []string{"cmd/vk-flightctl-provider", "cmd/flightctl-sim", "config/crd", "config/rbac", "config/manager/config.yaml", "config/samples/vk_v1alpha1_fleetbinding.yaml"} {
		if _, err := os.Stat(filepath.Join(s.cfg.Root, dir)); err != nil {
			problems = append(problems, dir+" is missing")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("prerequisites missing:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// Up brings everything up, narrating each step: builds the binaries,
// starts the control plane, the simulator and the manager, installs the
// CRD, RBAC, ConfigMap and Secret, applies the FleetBinding and waits for
// the node to be Ready with the fleet's capacity.
func (s *Stack) Up(ctx context.Context) error {
	if err := s.CheckPrerequisites(); err != nil {
		return err
	}
	if err := os.MkdirAll(s.cfg.StateDir, 0o755); err != nil {
		return err
	}
	s.started = true
	installTitle, install := "Install the CRD, RBAC and the manager's ConfigMap in namespace default", s.install
	if s.cfg.Install != nil {
		installTitle, install = s.cfg.InstallTitle, s.cfg.Install
		if installTitle == "" {
			installTitle = "Install vk-flightctl"
		}
	}
	for _, step := range []struct {
		title string
		fn    func(context.Context) error
	}{
		{"Build vk-flightctl-provider and flightctl-sim", s.build},
		{"Start the Kubernetes control plane (hack/local-cluster.sh)", s.startCluster},
		{s.flightctlStepTitle(), s.startFlightctl},
		{installTitle, install},
		{"Create the Flightctl credentials Secret", s.createSecret},
		{"Start the manager", s.startFirstManager},
		{"Apply the FleetBinding", s.applyBinding},
		{"Wait for the virtual node", s.waitNode},
	} {
		start := time.Now()
		s.printf("\n### %s\n", step.title)
		if err := step.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", step.title, err)
		}
		s.printf("    (%s)\n", round(time.Since(start)))
	}
	return nil
}

// ---------------------------------------------------------------- steps

func (s *Stack) build(ctx context.Context) error {
	for _, b := range []struct{ out, pkg string }{
		{s.ManagerBin, "./cmd/vk-flightctl-provider"},
		{s.SimBin, "./cmd/flightctl-sim"},
	} {
		if err := s.runShown(ctx, s.cfg.Root, nil, "go", "build", "-o", b.out, b.pkg); err != nil {
			return err
		}
	}
	return nil
}

// clusterCA is the local control plane's CA (hack/local-cluster.sh's
// state directory), or "" when the stack runs none.
func (s *Stack) clusterCA() string {
	dir := s.cfg.ClusterDir
	if dir == "" {
		dir = filepath.Join(s.cfg.Root, ".local", "cluster")
	}
	ca := filepath.Join(dir, "pki", "ca.crt")
	if _, err := os.Stat(ca); err != nil {
		return ""
	}
	return ca
}

func (s *Stack) clusterScript() string { return filepath.Join(s.cfg.Root, "hack", "local-cluster.sh") }

func (s *Stack) clusterArgs(verb string) []string {
	args := []string{verb}
	if s.cfg.ClusterDir != "" {
		args = append(args, "--dir", s.cfg.ClusterDir, "--kubeconfig", s.cfg.Kubeconfig)
	}
	return args
}

func (s *Stack) clusterEnv() []string {
	return []string{"K8S_VERSION=" + K8sVersion, "K8S_BIN_DIR=" + s.cfg.K8sBinDir}
}

func (s *Stack) startCluster(ctx context.Context) error {
	return s.runShown(ctx, s.cfg.Root, s.clusterEnv(), s.clusterScript(), s.clusterArgs("up")...)
}

func (s *Stack) flightctlStepTitle() string {
	if s.cfg.External != nil {
		return "Start fake devices against the Flightctl at " + s.cfg.External.URL + " (flightctl-sim agent)"
	}
	return "Start the Flightctl simulator"
}

func (s *Stack) startFlightctl(ctx context.Context) error {
	if s.cfg.External != nil {
		return s.startAgents(ctx)
	}
	return s.startSim(ctx)
}

// startAgents runs `flightctl-sim agent` against the external Flightctl:
// two devices of 4 CPU / 8Gi in the fleet, as the simulator's built-in
// configuration, which enrol and then act as agents. The process is named
// flightctl-sim like the simulator, so Down and the reaper stop it alike.
func (s *Stack) startAgents(ctx context.Context) error {
	ext := s.cfg.External
	s.SimURL, s.SimToken, s.SimCA = ext.URL, ext.Token, ext.CAFile
	s.ControlToken = randomHex(16)
	port, err := freePort()
	if err != nil {
		return err
	}
	s.ControlURL = "http://127.0.0.1:" + strconv.Itoa(port)
	args := []string{"agent", "--server", ext.URL, "--control", "127.0.0.1:" + strconv.Itoa(port),
		"--agent-delay", "1s", "--heartbeat", "10s", "--labels", "fleet=" + s.cfg.Fleet}
	if ext.CAFile != "" {
		args = append(args, "--ca", ext.CAFile)
	}
	if ext.AgentEndpoint != "" {
		args = append(args, "--agent-endpoint", ext.AgentEndpoint)
	}
	// Tokens go through the environment, not the command line (ps).
	env := []string{"FLIGHTCTL_TOKEN=" + ext.Token, "FLIGHTCTL_SIM_CONTROL_TOKEN=" + s.ControlToken}
	s.printf("$ FLIGHTCTL_TOKEN=... flightctl-sim %s >%s 2>&1 &\n", strings.Join(args, " "), s.SimLog)
	p, err := s.start(ctx, "flightctl-sim", s.SimLog, env, s.SimBin, args...)
	if err != nil {
		return err
	}
	if err := s.waitHTTP(ctx, p, s.ControlURL+"/sim/v1/agents", s.ControlToken, "", 90*time.Second); err != nil {
		return fmt.Errorf("%w\n%s", err, tailFile(s.SimLog, 20))
	}
	s.printf("    fake devices enrolled with %s and reporting (pid %d, control %s, log %s)\n", ext.URL, p.cmd.Process.Pid, s.ControlURL, s.SimLog)
	return nil
}

func (s *Stack) startSim(ctx context.Context) error {
	s.SimToken = randomHex(16)
	s.SimCA = filepath.Join(s.cfg.StateDir, "flightctl-ca.crt")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.SimURL = "https://127.0.0.1:" + strconv.Itoa(port)
		// HTTPS with a generated CA, as a real Flightctl API; disconnects
		// show at once (a real server waits 5 minutes without hearing from
		// a device).
		_ = os.Remove(s.SimCA)
		args := []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--token", s.SimToken,
			"--tls", "--ca-out", s.SimCA, "--disconnect-detection", "0s"}
		s.printf("$ flightctl-sim %s >%s 2>&1 &\n", strings.Join(replace(args, s.SimToken, "$FLIGHTCTL_TOKEN"), " "), s.SimLog)
		p, err := s.start(ctx, "flightctl-sim", s.SimLog, nil, s.SimBin, args...)
		if err != nil {
			return err
		}
		lastErr = s.waitHTTP(ctx, p, s.SimURL+"/api/v1/devices", s.SimToken, s.SimCA, 20*time.Second)
		if lastErr == nil {
			s.ControlURL, s.ControlToken = s.SimURL, s.SimToken
			s.printf("    simulator at %s (pid %d, log %s)\n", s.SimURL, p.cmd.Process.Pid, s.SimLog)
			return nil
		}
		_ = s.stop("flightctl-sim")
		if !logSays(s.SimLog, "address already in use") {
			break
		}
	}
	return fmt.Errorf("%w\n%s", lastErr, tailFile(s.SimLog, 20))
}

func (s *Stack) install(ctx context.Context) error {
	dir := filepath.Join(s.cfg.StateDir, "install")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cm, err := os.ReadFile(filepath.Join(s.cfg.Root, "config", "manager", "config.yaml"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), cm, 0o644); err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, filepath.Join(s.cfg.Root, "config"))
	if err != nil {
		return err
	}
	// config/default would also create the manager's Deployment, which has
	// no image here (and would be scheduled onto the virtual node); the
	// manager runs as a local process instead.
	kust := fmt.Sprintf(`# Generated by test/quickstart: config/crd, config/rbac and the manager's
# ConfigMap (a copy of config/manager/config.yaml) in namespace default.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
- %s/crd
- %s/rbac
- config.yaml
`, DefaultBindingNamespace, rel, rel)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		return err
	}
	s.printf("$ cat %s\n%s", filepath.Join(dir, "kustomization.yaml"), indent(kust, "    ")+"\n")
	if err := s.kubectlShown(ctx, "", "apply", "-k", dir); err != nil {
		return err
	}
	return s.kubectlShown(ctx, "", "wait", "--for=condition=Established", "crd/fleetbindings.vk.flightctl.io", "--timeout=60s")
}

func (s *Stack) createSecret(ctx context.Context) error {
	s.printf("$ kubectl create secret generic %s -n %s --from-literal=api-url=%s \\\n"+
		"    --from-literal=auth-token=$FLIGHTCTL_TOKEN --from-file=ca.crt=%s\n", SecretName, DefaultBindingNamespace, s.SimURL, s.SimCA)
	_, err := s.kubectlQuiet(ctx, "", "create", "secret", "generic", SecretName, "-n", DefaultBindingNamespace,
		"--from-literal=api-url="+s.SimURL, "--from-literal=auth-token="+s.SimToken, "--from-file=ca.crt="+s.SimCA)
	return err
}

// managerKubeconfig is the kubeconfig the manager runs with: the
// ServiceAccount's token, so the ClusterRole in config/rbac is what
// authorizes it, as in a real deployment.
func (s *Stack) managerKubeconfig(ctx context.Context) (string, error) {
	if s.cfg.ManagerAsAdmin {
		s.printf("    (the manager runs with the cluster-admin kubeconfig: --manager-as-admin)\n")
		return s.Kubeconfig, nil
	}
	s.printf("$ kubectl create token vk-flightctl-provider -n %s --duration=48h   # the manager runs as its ServiceAccount\n", s.managerNamespace())
	token, err := s.kubectlQuiet(ctx, "", "create", "token", "vk-flightctl-provider", "-n", s.managerNamespace(), "--duration=48h")
	if err != nil {
		return "", err
	}
	server, err := s.kubectlQuiet(ctx, "", "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		return "", err
	}
	ca, err := s.kubectlQuiet(ctx, "", "config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
	if err != nil {
		return "", err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: vk-flightctl-provider
  user:
    token: %s
contexts:
- name: vk-flightctl-provider
  context:
    cluster: local
    user: vk-flightctl-provider
    namespace: %s
current-context: vk-flightctl-provider
`, strings.TrimSpace(server), strings.TrimSpace(ca), strings.TrimSpace(token), s.managerNamespace())
	path := filepath.Join(s.cfg.StateDir, "manager.kubeconfig")
	return path, os.WriteFile(path, []byte(kc), 0o600)
}

func (s *Stack) startFirstManager(ctx context.Context) error {
	_, err := s.StartManager(ctx, ManagerOptions{})
	return err
}

func managerName(name string) string {
	if name == "" {
		return DefaultManager
	}
	return name
}

// ManagerLogOf is the log file of the manager process named name ("" is
// DefaultManager).
func (s *Stack) ManagerLogOf(name string) string {
	if name = managerName(name); name == DefaultManager {
		return s.ManagerLog
	}
	return filepath.Join(s.cfg.StateDir, name+".log")
}

// StartManager starts a manager process as Up does (the ServiceAccount's
// kubeconfig, fresh metrics and health ports, the log appended to
// ManagerLogOf(o.Name)) and waits for its /readyz. Tests use it to start a
// manager again after KillManager, or to run a second, leader-elected one.
// A name already running is an error: two managers under one name would
// share a pid file.
func (s *Stack) StartManager(ctx context.Context, o ManagerOptions) (pid int, err error) {
	name := managerName(o.Name)
	s.mu.Lock()
	_, running := s.procs[name]
	s.mu.Unlock()
	if running {
		return 0, fmt.Errorf("manager %q is already running", name)
	}
	if s.managerKC == "" {
		if s.managerKC, err = s.managerKubeconfig(ctx); err != nil {
			return 0, err
		}
	}
	logPath := s.ManagerLogOf(name)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		metrics, err := freePort()
		if err != nil {
			return 0, err
		}
		health, err := freePort()
		if err != nil {
			return 0, err
		}
		args := []string{
			"--metrics-bind-address", "127.0.0.1:" + strconv.Itoa(metrics),
			// The stack listens on loopback only and the bench scrapes
			// without credentials; a deployment serves metrics over HTTPS
			// behind TokenReview/SubjectAccessReview (config/manager).
			"--metrics-secure=false",
			"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(health),
			"--namespace", s.managerNamespace(),
			// Port 0: a free port, so several stacks (e2e, bench,
			// reliability) can run on one machine.
			"--kubelet-listen-address", s.kubeletListenAddress(),
		}
		// The API server calls the kubelet API with its kubelet client
		// certificate, signed by the cluster CA, as on a real cluster.
		if ca := s.clusterCA(); ca != "" {
			args = append(args, "--kubelet-client-ca-file", ca)
		}
		args = append(args, s.cfg.ManagerArgs...)
		if o.LeaderElect {
			args = append(args, "--leader-elect")
		}
		if o.Sharded {
			args = append(args, "--sharding", "--replica-name", name)
		}
		args = append(args, o.Args...)
		s.printf("$ KUBECONFIG=%s vk-flightctl-provider %s >>%s 2>&1 &\n", s.managerKC, strings.Join(args, " "), logPath)
		logStart := fileSize(logPath)
		p, err := s.start(ctx, name, logPath, []string{"KUBECONFIG=" + s.managerKC, "POD_NAMESPACE=" + s.managerNamespace()}, s.ManagerBin, args...)
		if err != nil {
			return 0, err
		}
		healthURL := "http://127.0.0.1:" + strconv.Itoa(health) + "/readyz"
		lastErr = s.waitHTTP(ctx, p, healthURL, "", "", 60*time.Second)
		if lastErr == nil {
			if name == DefaultManager {
				s.mu.Lock()
				s.ManagerHealthURL = healthURL
				s.ManagerMetricsURL = "http://127.0.0.1:" + strconv.Itoa(metrics) + "/metrics"
				s.mu.Unlock()
			}
			s.printf("    %s ready (pid %d, log %s, metrics http://127.0.0.1:%d/metrics)\n", name, p.cmd.Process.Pid, logPath, metrics)
			return p.cmd.Process.Pid, nil
		}
		_ = s.stop(name)
		// Another program took a port between freePort and the bind.
		if !strings.Contains(readFrom(logPath, logStart), "address already in use") {
			break
		}
	}
	return 0, fmt.Errorf("%w\n%s", lastErr, tailFile(logPath, 30))
}

// StopManager stops the manager process named name ("" is DefaultManager)
// as a pod's termination would: SIGTERM, so it releases its Lease and
// shuts its nodes down, then SIGKILL after 15 s.
func (s *Stack) StopManager(name string) error {
	return s.stop(managerName(name))
}

// KillManager sends SIGKILL to the manager process named name ("" is
// DefaultManager), as a node failure or the OOM killer would: no shutdown
// code runs, a leader keeps its Lease until it expires. It returns once the
// process is gone.
func (s *Stack) KillManager(name string) (pid int, err error) {
	name = managerName(name)
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return 0, fmt.Errorf("no manager %q running", name)
	}
	pid = p.cmd.Process.Pid
	s.printf("$ kill -KILL %d   # %s\n", pid, name)
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return pid, fmt.Errorf("kill -KILL %d: %w", pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		return pid, fmt.Errorf("manager %s (pid %d) still there 15s after SIGKILL", name, pid)
	}
	_ = os.Remove(filepath.Join(s.cfg.StateDir, name+".pid"))
	return pid, nil
}

// BindingManifest is config/samples' FleetBinding with the stack's
// reconnect timeout and status poll interval.
func (s *Stack) BindingManifest() (string, error) {
	raw, err := os.ReadFile(filepath.Join(s.cfg.Root, "config", "samples", "vk_v1alpha1_fleetbinding.yaml"))
	if err != nil {
		return "", err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("config/samples/vk_v1alpha1_fleetbinding.yaml: %w", err)
	}
	meta, _ := obj["metadata"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	if meta == nil || spec == nil {
		return "", errors.New("config/samples/vk_v1alpha1_fleetbinding.yaml has no metadata or spec")
	}
	meta["name"] = s.cfg.Fleet
	meta["namespace"] = DefaultBindingNamespace
	spec["fleet"] = s.cfg.Fleet
	spec["deviceSelector"] = "fleet=" + s.cfg.Fleet
	spec["reconnectTimeout"] = s.cfg.ReconnectTimeout.String()
	spec["statusPollInterval"] = s.cfg.StatusPollInterval.String()
	out, err := yaml.Marshal(obj)
	return string(out), err
}

func (s *Stack) applyBinding(ctx context.Context) error {
	m, err := s.BindingManifest()
	if err != nil {
		return err
	}
	s.printf("    # config/samples/vk_v1alpha1_fleetbinding.yaml with a short reconnectTimeout (%s instead of the\n"+
		"    # ConfigMap's 5m) so scenario 5 sees a timeout expire, and statusPollInterval %s.\n", s.cfg.ReconnectTimeout, s.cfg.StatusPollInterval)
	return s.kubectlShown(ctx, m, "apply", "-f", "-")
}

func (s *Stack) waitNode(ctx context.Context) error {
	node := s.NodeName()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for {
		out, err := s.kubectlQuiet(ctx, "", "get", "node", node, "-o",
			`jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.capacity.cpu} {.status.capacity.memory}`)
		if err == nil {
			f := strings.Fields(out)
			last = "Ready=" + strings.Join(f, " capacity ")
			if len(f) == 3 && f[0] == "True" && f[1] == "8" && f[2] == "16Gi" {
				break
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			_ = s.kubectlShown(ctx, "", "get", "fleetbinding", "-A", "-o", "wide")
			return fmt.Errorf("node %s not Ready with capacity cpu 8, memory 16Gi after 90s (last: %s)\nmanager log:\n%s", node, last, tailFile(s.ManagerLog, 30))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	_ = s.kubectlShown(ctx, "", "get", "nodes", "-o", "wide")
	_ = s.kubectlShown(ctx, "", "get", "fleetbinding", "-n", DefaultBindingNamespace)
	describe, err := s.kubectlQuiet(ctx, "", "describe", "node", node)
	if err != nil {
		return err
	}
	s.printf("$ kubectl describe node %s | grep -A 6 -E '^(Capacity|Allocatable):'\n", node)
	s.printf("%s\n%s\n", indent(section(describe, "Capacity:"), "    "), indent(section(describe, "Allocatable:"), "    "))
	s.printf("    node %s Ready: capacity cpu 8, memory 16Gi (two devices of 4 CPU / 8Gi)\n", node)
	return nil
}

// ---------------------------------------------------------------- teardown

// Started reports whether Up got as far as starting anything, so a caller
// knows whether Down has work to do.
func (s *Stack) Started() bool { return s.started }

// Down stops the manager, the simulator and the control plane. It keeps
// going past errors and returns them all.
func (s *Stack) Down(ctx context.Context) error {
	var errs []error
	// Every manager first (they talk to the simulator), then the simulator.
	s.mu.Lock()
	var names []string
	for name := range s.procs {
		if name != "flightctl-sim" {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	for _, name := range append(names, "flightctl-sim") {
		if err := s.stop(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.runShown(ctx, s.cfg.Root, s.clusterEnv(), s.clusterScript(), s.clusterArgs("down")...); err != nil {
		errs = append(errs, err)
	}
	if s.reaper > 0 {
		// Everything is down; the reaper has nothing left to do.
		_ = syscall.Kill(-s.reaper, syscall.SIGTERM)
		s.reaper = 0
	}
	return errors.Join(errs...)
}

// StartReaper starts a watchdog that, once this process is gone (killed
// by a test timeout, say), kills the managers and the simulator, takes the
// control plane down and removes removeDir, so an aborted test run leaves
// nothing behind. Down stops it.
func (s *Stack) StartReaper(removeDir string) error {
	script := `parent=$1 state=$2 bindir=$3 remove=$4; shift 4
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for pidfile in "$state"/*.pid; do
  pid=$(cat "$pidfile" 2>/dev/null) || continue
  # Only a process running one of our binaries: the pid may be reused.
  case "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" in
    "$bindir"/*) kill -KILL "$pid" 2>/dev/null ;;
  esac
done
"$@" >/dev/null 2>&1
[ -n "$remove" ] && rm -rf "$remove"
`
	args := append([]string{"-c", script, "reaper", strconv.Itoa(os.Getpid()), s.cfg.StateDir, s.cfg.BinDir, removeDir, "env"}, s.clusterEnv()...)
	args = append(args, append([]string{s.clusterScript()}, s.clusterArgs("down")...)...)
	cmd := exec.Command("bash", args...)
	cmd.SysProcAttr = sysProcAttr(true)
	if err := cmd.Start(); err != nil {
		return err
	}
	s.reaper = cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	return nil
}

// ---------------------------------------------------------------- processes

func (s *Stack) start(ctx context.Context, name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	// Not CommandContext: a detached process must outlive ctx.
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.cfg.StateDir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.cfg.Detach)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	if err := os.WriteFile(filepath.Join(s.cfg.StateDir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return p, err
	}
	return p, nil
}

// stop ends a process this stack started: SIGTERM, then SIGKILL after 15 s.
func (s *Stack) stop(name string) error {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	defer func() { _ = os.Remove(filepath.Join(s.cfg.StateDir, name+".pid")) }()
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		s.printf("    stopped %s (pid %d)\n", name, p.cmd.Process.Pid)
		return nil
	case <-time.After(15 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
		s.printf("    killed %s (pid %d): it ignored SIGTERM for 15s\n", name, p.cmd.Process.Pid)
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("could not stop %s (pid %d)", name, p.cmd.Process.Pid)
	}
}

// waitHTTP waits for url to answer 200, failing early if p exits.
func (s *Stack) waitHTTP(ctx context.Context, p *proc, url, token, caFile string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		// The CA file appears once the simulator started.
		client, err := httpClientFor(caFile)
		if err != nil {
			client = nil
			last = err.Error()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if client != nil {
			resp, err := client.Do(req)
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				last = resp.Status
			} else {
				last = err.Error()
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited (%s) before %s answered", filepath.Base(p.cmd.Path), p.cmd.ProcessState, url)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s (last: %s)", url, timeout, last)
		}
	}
}

// ---------------------------------------------------------------- commands

// runShown runs a command with its output streamed, indented.
func (s *Stack) runShown(ctx context.Context, dir string, env []string, name string, args ...string) error {
	shown := append([]string{name}, args...)
	for i, a := range shown {
		if rel, err := filepath.Rel(s.cfg.Root, a); err == nil && filepath.IsAbs(a) && !strings.HasPrefix(rel, "..") {
			shown[i] = rel
		}
	}
	s.printf("$ %s\n", shellJoin(shown))
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	w := &prefixWriter{w: s.cfg.Out, prefix: "    "}
	cmd.Stdout, cmd.Stderr = w, w
	err := cmd.Run()
	w.flush()
	if err != nil {
		return fmt.Errorf("%s: %w", shellJoin(shown), err)
	}
	return nil
}

func (s *Stack) kubectlQuiet(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Kubectl, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+s.Kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", shellJoin(args), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (s *Stack) kubectlShown(ctx context.Context, stdin string, args ...string) error {
	if stdin != "" {
		s.printf("$ kubectl %s <<EOF\n%s\nEOF\n", shellJoin(args), strings.TrimRight(stdin, "\n"))
	} else {
		s.printf("$ kubectl %s\n", shellJoin(args))
	}
	out, err := s.kubectlQuiet(ctx, stdin, args...)
	if o := strings.TrimRight(out, "\n"); o != "" {
		s.printf("%s\n", indent(o, "    "))
	}
	return err
}

// prefixWriter indents streamed output line by line.
type prefixWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// ---------------------------------------------------------------- small helpers

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func replace(args []string, old, repl string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, old, repl)
	}
	return out
}

func logSays(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom is a file's content from offset on (at most 16 MiB).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 16<<20))
	return string(b)
}

// tailFile returns the last n lines of a file, indented, for error reports.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "    (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("    --- last %d lines of %s\n%s", len(lines), path, indent(strings.Join(lines, "\n"), "    "))
}

// TailFile is tailFile for callers printing logs after a failure.
func TailFile(path string, n int) string { return tailFile(path, n) }

// KubectlOutput runs kubectl against the stack's cluster and returns its
// output, for diagnostics.
func (s *Stack) KubectlOutput(ctx context.Context, args ...string) (string, error) {
	return s.kubectlQuiet(ctx, "", args...)
}

// KubectlOutputIn runs kubectl with stdin against the stack's cluster and
// returns its output.
func (s *Stack) KubectlOutputIn(ctx context.Context, stdin string, args ...string) (string, error) {
	return s.kubectlQuiet(ctx, stdin, args...)
}
