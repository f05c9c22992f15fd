// Package helm installs the Helm chart dist/chart into a real local control
// plane and runs vk-flightctl from it: the chart's CRD, ServiceAccount, RBAC
// and ConfigMap are installed by `helm install`, the manager runs as a
// process with the chart's ServiceAccount token, the arguments of the
// chart's Deployment and its Secret volume (the kubelet API certificate,
// written under the temporary directory as a kubelet would mount it), a
// FleetBinding gets a Ready node whose kubelet endpoint presents that
// certificate, `helm upgrade` changes the ConfigMap the manager reads, and
// `helm uninstall` removes everything but the CRD the chart keeps.
//
// The image cannot be pulled here (there are no kubelets, and nothing is
// published), so the chart's Deployment is installed scaled to zero, as
// test/quickstart leaves out config/default's Deployment: its pod would
// otherwise be scheduled onto the virtual node and sent to a device. What
// that Deployment would run is checked instead: with default values the
// chart renders what `kustomize build config/default` renders.
//
// It is its own package, with its own control plane and simulator, so it
// never shares a cluster with the quickstart suite (two managers would
// both serve every FleetBinding). Prerequisites as for test/e2e, plus helm:
//
//	make helm k8s-binaries-all
//	go test ./test/e2e/helm/... -ginkgo.v
//
// Environment: HELM (default <repo>/bin/helm), K8S_BIN_DIR as for
// test/e2e, E2E_KEEP=1 to leave the temporary directory (logs) in place.
package helm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

const (
	release   = "vk-flightctl"
	namespace = "vk-flightctl-system"
)

// installValues are the values the spec installs with: the Deployment
// scaled to zero (see the package comment), and the kubelet API serving
// certificate from a Secret the suite creates, as a user would.
var installValues = []string{"--set", "replicas=0", "--set", "kubeletTLS.secretName=" + kubeletSecret}

// kubeletSecret is the kubernetes.io/tls Secret for the kubelet API.
const kubeletSecret = "kubelet-tls"

var (
	root    string
	helmBin string
	chart   string
	stack   *quickstart.Stack
	tmp     string
	// installOutput is what `helm install` printed.
	installOutput string
	// secretMounts maps a Secret of the chart's Deployment to the local
	// directory standing in for its volume mount.
	secretMounts map[string]string
	// kubeletCertPEM and kubeletKeyPEM go into the kubeletSecret.
	kubeletCertPEM, kubeletKeyPEM []byte
)

func TestHelm(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vk-flightctl end-to-end: the Helm chart")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	var err error
	root, err = quickstart.RepoRoot()
	Expect(err).NotTo(HaveOccurred())
	helmBin = os.Getenv("HELM")
	if helmBin == "" {
		helmBin = filepath.Join(root, "bin", "helm")
	}
	if fi, err := os.Stat(helmBin); err != nil || fi.Mode()&0o111 == 0 {
		Fail(fmt.Sprintf("the Helm suite cannot run: no helm at %s: build it with `make helm` (hack/build-helm.sh, cached per user)", helmBin))
	}
	chart = filepath.Join(root, "dist", "chart")
	tmp, err = os.MkdirTemp("", "vk-flightctl-helm-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(teardown)

	// The manager's command line is the chart's: the arguments of the
	// Deployment helm renders with the install's values, but for the
	// three addresses that would bind the pod's network, which the stack
	// replaces with free ports on 127.0.0.1, and with the Deployment's
	// Secret volumes under tmp/mounts instead of their mount paths.
	rendered, err := helmOutput(ctx, append([]string{"template", release, chart, "-n", namespace}, installValues...)...)
	Expect(err).NotTo(HaveOccurred())
	dep, err := deploymentOf(rendered)
	Expect(err).NotTo(HaveOccurred())
	var managerArgs []string
	managerArgs, secretMounts, err = processCommand(dep, filepath.Join(tmp, "mounts"))
	Expect(err).NotTo(HaveOccurred())
	fmt.Fprintf(GinkgoWriter, "manager arguments from the chart's Deployment (addresses replaced by the stack's, mounts under %s): %s\n",
		filepath.Join(tmp, "mounts"), strings.Join(managerArgs, " "))
	kubeletCertPEM, kubeletKeyPEM, err = selfSignedCert()
	Expect(err).NotTo(HaveOccurred())

	stack, err = quickstart.NewStack(quickstart.StackConfig{
		Root:               root,
		StateDir:           filepath.Join(tmp, "state"),
		BinDir:             filepath.Join(tmp, "bin"),
		ClusterDir:         filepath.Join(tmp, "cluster"),
		Kubeconfig:         filepath.Join(tmp, "kubeconfig"),
		K8sBinDir:          quickstart.K8sBinDir(root),
		ReconnectTimeout:   15 * time.Second,
		StatusPollInterval: time.Second,
		ManagerNamespace:   namespace,
		ManagerArgs:        managerArgs,
		InstallTitle:       "Install dist/chart with helm into namespace " + namespace,
		Install:            helmInstall,
		Out:                GinkgoWriter,
	})
	Expect(err).NotTo(HaveOccurred())
	// A missing prerequisite fails with instructions; the suite never skips.
	if err := stack.CheckPrerequisites(); err != nil {
		Fail("the Helm suite cannot run: " + err.Error())
	}
	// Should this process die without cleanup (a go test timeout), the
	// reaper stops the control plane and removes tmp.
	Expect(stack.StartReaper(keepOr(tmp))).To(Succeed())
	if err := stack.Up(ctx); err != nil {
		dumpLogs()
		Fail("bringing up the stack with the chart: " + err.Error())
	}
}, NodeTimeout(8*time.Minute))

// helmInstall is the stack's install step: the kubelet certificate
// Secret, `helm install`, then the Deployment's Secret volumes written
// where the manager process reads them (a kubelet's job in a cluster).
func helmInstall(ctx context.Context) error {
	dir, err := os.MkdirTemp(tmp, "kubelet-cert-")
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, kubeletCertPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, kubeletKeyPEM, 0o600); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"create", "namespace", namespace},
		{"create", "secret", "tls", kubeletSecret, "-n", namespace, "--cert", certFile, "--key", keyFile},
	} {
		fmt.Fprintf(GinkgoWriter, "$ kubectl %s\n", strings.Join(args, " "))
		if _, err := kubectl(ctx, args...); err != nil {
			return err
		}
	}
	args := append([]string{"install", release, chart, "-n", namespace, "--create-namespace", "--wait", "--timeout", "2m"}, installValues...)
	fmt.Fprintf(GinkgoWriter, "$ helm %s\n", strings.Join(args, " "))
	out, err := helmOutput(ctx, args...)
	installOutput = out
	fmt.Fprintln(GinkgoWriter, indent(out))
	if err != nil {
		return err
	}
	return writeSecretMounts(ctx)
}

// teardown stops everything, also after a failure or an interrupt.
func teardown(ctx SpecContext) {
	if stack != nil && stack.Started() {
		Expect(stack.Down(ctx)).To(Succeed())
	}
	if os.Getenv("E2E_KEEP") != "" {
		fmt.Fprintf(GinkgoWriter, "E2E_KEEP set: logs left in %s\n", tmp)
		return
	}
	Expect(os.RemoveAll(tmp)).To(Succeed())
}

func keepOr(dir string) string {
	if os.Getenv("E2E_KEEP") != "" {
		return ""
	}
	return dir
}

// helmOutput runs helm against the stack's cluster (once it exists) and
// returns its combined output.
func helmOutput(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := execCommand(ctx, helmBin, args...)
	// Helm's own state (repositories, cache) stays in the temporary
	// directory, never in the user's home.
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(tmp, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "helm", "config"),
		"HELM_DATA_HOME="+filepath.Join(tmp, "helm", "data"))
	if stack != nil {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+stack.Kubeconfig)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func kubectl(ctx context.Context, args ...string) (string, error) {
	return stack.KubectlOutput(ctx, args...)
}

// dumpLogs prints what helps to understand a failure.
func dumpLogs() {
	if stack == nil {
		return
	}
	w := GinkgoWriter
	fmt.Fprintf(w, "\n==== diagnostics (temporary directory %s)\n", tmp)
	fmt.Fprintln(w, quickstart.TailFile(stack.ManagerLog, 80))
	fmt.Fprintln(w, quickstart.TailFile(stack.SimLog, 20))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "fleetbindings", "-A", "-o", "yaml"},
		{"get", "all,configmaps,serviceaccounts,roles,rolebindings,leases", "-n", namespace},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		fmt.Fprintf(w, "    --- kubectl %s\n", strings.Join(args, " "))
		out, err := stack.KubectlOutput(ctx, args...)
		if err != nil {
			out += err.Error()
		}
		fmt.Fprintln(w, indent(out))
	}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
