package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// kubectl logs and exec as a user with ordinary RBAC (a ServiceAccount with
// pods/log and pods/exec in its namespace, no cluster role), through the
// stock API server, which verifies the kubelet API's CSR-issued certificate
// and dials the node's InternalIP: no insecure flag anywhere.
var _ = Describe("kubectl logs and exec", func() {
	const ns = "e2e-console"

	It("as a user with ordinary RBAC: logs, logs -f within a second, exec output and exit codes", func(ctx SpecContext) {
		if stack.External() {
			Skip("fake devices against a real Flightctl open no console session; the simulator's console runs this spec")
		}
		admin := func(args ...string) string {
			out, err := stack.KubectlOutput(ctx, args...)
			Expect(err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), out)
			return out
		}
		_, _ = stack.KubectlOutput(ctx, "create", "namespace", ns)
		DeferCleanup(func(ctx SpecContext) { _, _ = stack.KubectlOutput(ctx, "delete", "namespace", ns, "--wait=false") })
		manifest := filepath.Join(tmp, "console-pod.yaml")
		Expect(os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: console
  namespace: %s
spec:
  nodeName: %s
  tolerations:
  - operator: Exists
  containers:
  - name: web
    image: nginx:alpine
    resources:
      requests: {cpu: 50m, memory: 32Mi}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: developer
  namespace: %[1]s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: developer
  namespace: %[1]s
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: developer
  namespace: %[1]s
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: developer}
subjects:
- {kind: ServiceAccount, name: developer, namespace: %[1]s}
`, ns, env.NodeName())), 0o600)).To(Succeed())
		admin("apply", "-f", manifest)
		admin("wait", "--for=condition=Ready", "pod/console", "-n", ns, "--timeout=90s")

		// The developer's kubeconfig: the cluster of the admin's, a token.
		token := strings.TrimSpace(admin("create", "token", "developer", "-n", ns))
		server := admin("config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
		ca := admin("config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
		kc := filepath.Join(tmp, "developer.kubeconfig")
		Expect(os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: %s, certificate-authority-data: %s}}]
users: [{name: developer, user: {token: %s}}]
contexts: [{name: developer, context: {cluster: local, user: developer, namespace: %s}}]
current-context: developer
`, server, ca, token, ns)), 0o600)).To(Succeed())
		dev := func(ctx context.Context, args ...string) *exec.Cmd {
			c := exec.CommandContext(ctx, stack.Kubectl, args...)
			c.Env = append(os.Environ(), "KUBECONFIG="+kc)
			return c
		}
		run := func(args ...string) (string, error) {
			out, err := dev(ctx, args...).CombinedOutput()
			fmt.Fprintf(GinkgoWriter, "$ kubectl %s   # as system:serviceaccount:%s:developer\n%s", strings.Join(args, " "), ns, out)
			return string(out), err
		}

		out, err := run("auth", "can-i", "get", "nodes/proxy")
		Expect(err).To(HaveOccurred(), "the developer has no node access: %s", out)
		out, err = run("logs", "console")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(MatchRegexp(`^vk-\S+-web line 1\nvk-\S+-web line 2\nvk-\S+-web line 3\n$`))
		out, err = run("logs", "console", "--tail=1", "--timestamps")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(MatchRegexp(`^2026-01-01T00:00:03Z vk-\S+-web line 3\n$`))
		out, err = run("exec", "console", "--", "echo", "ok")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(Equal("ok\n"))
		_, err = run("exec", "console", "--", "sh", "-c", "exit 3")
		var ee *exec.ExitError
		Expect(errors.As(err, &ee)).To(BeTrue(), "kubectl exec: %v", err)
		Expect(ee.ExitCode()).To(Equal(3))

		// -f: the simulated container writes a line every 200 ms after its
		// first three; each must reach kubectl within a second.
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		follow := dev(fctx, "logs", "-f", "console")
		stdout, err := follow.StdoutPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(follow.Start()).To(Succeed())
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func(within time.Duration) string {
			select {
			case l, ok := <-lines:
				Expect(ok).To(BeTrue(), "kubectl logs -f ended")
				return l
			case <-time.After(within):
				Fail(fmt.Sprintf("no log line within %s", within))
				return ""
			}
		}
		for k := 1; k <= 3; k++ {
			Expect(next(30 * time.Second)).To(HaveSuffix(fmt.Sprintf("-web line %d", k)))
		}
		for k := 4; k <= 6; k++ {
			t0 := time.Now()
			Expect(next(time.Second)).To(HaveSuffix(fmt.Sprintf("-web line %d", k)))
			fmt.Fprintf(GinkgoWriter, "    line %d streamed %s after the one before\n", k, time.Since(t0).Round(time.Millisecond))
		}
		cancel()
		_ = follow.Wait()
	}, SpecTimeout(3*time.Minute))
})
