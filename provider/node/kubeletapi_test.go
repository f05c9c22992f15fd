package node_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

var _ = Describe("Kubelet API", func() {
	ctx := context.Background()

	It("authenticates, authorizes per node, and serves logs through the device console", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("logs", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "logs"), 30*time.Second).Should(BeTrue())
		var n corev1.Node
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n)).To(Succeed())
		port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
		Expect(port).NotTo(BeZero())

		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "viewer"}}
		Expect(k8sClient.Create(ctx, sa)).To(Succeed())
		tr, err := kube.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, "viewer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		call := func(token, path string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", port, path), nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			// The serving certificate is self-signed unless configured, as
			// API servers do not verify kubelet certificates by default.
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			resp, err := c.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body)
		}
		logs := fmt.Sprintf("/containerLogs/%s/logs/app", f.ns)

		code, _ := call("", logs)
		Expect(code).To(Equal(http.StatusUnauthorized), "no credentials")
		code, _ = call(tr.Status.Token, logs)
		Expect(code).To(Equal(http.StatusForbidden), "a token without nodes/proxy access")

		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-node-proxy"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get", "create"}, ResourceNames: []string{f.node}}}}
		Expect(k8sClient.Create(ctx, role)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-node-proxy"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: f.ns, Name: "viewer"}}})).To(Succeed())
		Eventually(func() int { c, _ := call(tr.Status.Token, logs); return c }, 60*time.Second, time.Second).Should(Equal(http.StatusOK))
		// The simulator's containers wrote three lines each; the podman
		// name is <application>-<container>.
		code, body := call(tr.Status.Token, logs)
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(MatchRegexp(`^vk-\S+-app line 1\nvk-\S+-app line 2\nvk-\S+-app line 3\n$`))
		code, body = call(tr.Status.Token, logs+"?tailLines=1")
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(MatchRegexp(`^vk-\S+-app line 3\n$`))
		code, body = call(tr.Status.Token, logs+"?timestamps=true&tailLines=1")
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(MatchRegexp(`^2026-01-01T00:00:03Z vk-\S+-app line 3\n$`))
		code, body = call(tr.Status.Token, logs+"?limitBytes=5")
		Expect(code).To(Equal(http.StatusOK))
		Expect(body).To(Equal("vk-"+body[3:5]), "at most 5 bytes")
		Expect(body).To(HaveLen(5))
		code, body = call(tr.Status.Token, logs+"?previous=true")
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(body).To(ContainSubstring("--previous is not supported"))
		code, _ = call(tr.Status.Token, fmt.Sprintf("/containerLogs/%s/no-such-pod/app", f.ns))
		Expect(code).To(Equal(http.StatusForbidden), "a pod on no node of this manager is authorized against no node")

		// kubectl exec's path: client-go's executor against the kubelet API.
		execIn := func(cmd ...string) (string, error) {
			q := url.Values{"command": cmd, "output": {"1"}, "error": {"1"}, "container": {"app"}}
			u, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d/exec/%s/logs/app?%s", port, f.ns, q.Encode()))
			ex, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: u.Host, BearerToken: tr.Status.Token,
				TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, http.MethodPost, u)
			Expect(err).NotTo(HaveOccurred())
			// Separate buffers: client-go copies stdout and stderr in two
			// goroutines, and one bytes.Buffer for both loses output
			// (ReadFrom on stderr truncates what stdout wrote meanwhile).
			var out, errOut bytes.Buffer
			ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err = ex.StreamWithContext(ectx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
			return out.String() + errOut.String(), err
		}
		// The command's stdout reaches the client on every try, and so
		// does its exit code.
		for range 8 {
			out, err := execIn("echo", "ok")
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(Equal("ok\n"))
		}
		_, err = execIn("sh", "-c", "exit 3")
		var ee utilexec.CodeExitError
		Expect(errors.As(err, &ee)).To(BeTrue(), "error %v", err)
		Expect(ee.Code).To(Equal(3))

		// kubectl attach: the container's output from now on, until the
		// client leaves (podman attach --no-stdin --sig-proxy=false).
		q := url.Values{"output": {"1"}, "error": {"1"}, "container": {"app"}}
		au, _ := url.Parse(fmt.Sprintf("https://127.0.0.1:%d/attach/%s/logs/app?%s", port, f.ns, q.Encode()))
		ax, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: au.Host, BearerToken: tr.Status.Token,
			TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, http.MethodPost, au)
		Expect(err).NotTo(HaveOccurred())
		actx, acancel := context.WithTimeout(ctx, 20*time.Second)
		pr, pw := io.Pipe()
		attached := make(chan error, 1)
		go func() {
			attached <- ax.StreamWithContext(actx, remotecommand.StreamOptions{Stdout: pw, Stderr: io.Discard})
			_ = pw.Close()
		}()
		line, err := bufio.NewReader(pr).ReadString('\n')
		Expect(err).NotTo(HaveOccurred())
		Expect(line).To(MatchRegexp(`^vk-\S+-app line 4\n$`), "attach shows new output, not the history")
		acancel()
		go func() { _, _ = io.Copy(io.Discard, pr) }()
		Eventually(attached, 10*time.Second).Should(Receive(), "attach ends when the client leaves")

		// An offline device: Flightctl answers 504 after waiting for the
		// agent, and the user is told so.
		dev := f.placedOn(ctx, "logs")()
		Expect(f.sim.Disconnect(dev)).To(Succeed())
		code, body = call(tr.Status.Token, logs)
		Expect(code).To(Equal(http.StatusInternalServerError))
		Expect(body).To(ContainSubstring("did not open the console in time"))
		Expect(body).To(ContainSubstring("probably offline"))
		Expect(f.sim.Reconnect(dev)).To(Succeed())

		// A paused or decommissioned device: Flightctl answers 409.
		Expect(f.sim.RefuseConsole(dev, http.StatusConflict)).To(Succeed())
		_, body = call(tr.Status.Token, logs)
		Expect(body).To(ContainSubstring("flightctl refused a console on device " + dev + " (409)"))
		Expect(body).To(ContainSubstring("paused, decommissioned or awaiting reconnection"))
		// The binding's Flightctl identity may not open consoles: 403.
		Expect(f.sim.RefuseConsole(dev, http.StatusForbidden)).To(Succeed())
		code, body = call(tr.Status.Token, logs)
		Expect(code).To(Equal(http.StatusBadRequest))
		Expect(body).To(ContainSubstring("may not open consoles (403): grant it `get` on `devices/console` in Flightctl's RBAC"))
		Expect(f.sim.RefuseConsole(dev, 0)).To(Succeed())
		// A container the pod does not have: answered without a console.
		code, body = call(tr.Status.Token, fmt.Sprintf("/containerLogs/%s/logs/nope", f.ns))
		Expect(code).To(Equal(http.StatusNotFound))
		Expect(body).To(ContainSubstring(`has no container "nope"; its containers are app`))
		code, _ = call(tr.Status.Token, logs)
		Expect(code).To(Equal(http.StatusOK), "sessions open again")
	})

	It("tells the user to use the quadlet format for a compose pod", func() {
		f := newFixture(ctx, flightctlsim.Options{}, func(b *vkv1.FleetBinding) {
			b.Spec.ApplicationFormat = vkv1.ApplicationFormatCompose
		})
		Expect(k8sClient.Create(ctx, f.pod("compose", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "compose"), 30*time.Second).Should(BeTrue())
		var n corev1.Node
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n)).To(Succeed())
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "viewer"}}
		Expect(k8sClient.Create(ctx, sa)).To(Succeed())
		Expect(k8sClient.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-node-proxy"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: f.ns, Name: "viewer"}}})).To(Succeed())
		tr, err := kube.CoreV1().ServiceAccounts(f.ns).CreateToken(ctx, "viewer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/containerLogs/%s/compose/app", n.Status.DaemonEndpoints.KubeletEndpoint.Port, f.ns), nil)
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		var resp *http.Response
		var body []byte
		// The binding takes effect once RBAC caches catch up.
		Eventually(func() int {
			resp, err = c.Do(req)
			Expect(err).NotTo(HaveOccurred())
			defer resp.Body.Close()
			body, _ = io.ReadAll(resp.Body)
			return resp.StatusCode
		}, 30*time.Second, 500*time.Millisecond).Should(Equal(http.StatusBadRequest))
		Expect(string(body)).To(ContainSubstring("runs as a compose application"))
		Expect(string(body)).To(ContainSubstring("use the quadlet application format (FleetBinding spec.applicationFormat)"))
	})
})
