package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/quickstart"
)

// Against a real Flightctl whose OIDC issuer hands out short-lived tokens
// (hack/real-flightctl.sh: 10 s), the quickstart binding is switched to
// OAuth client credentials, as a user moving off a static token would:
// it must stay connected through many expiries with no 401 from
// Flightctl, say TokenRefreshFailed once the client secret is revoked,
// and use a rotated Secret within 5 s. The simulator's variant of this
// (and the Kubernetes-auth mode) runs in provider/node's envtest suite.
var _ = Describe("Refreshing credentials against a real Flightctl", func() {
	It("client credentials: connected through many token lifetimes, TokenRefreshFailed when revoked, a rotated Secret in use within 5 s", func(ctx SpecContext) {
		if !stack.External() {
			Skip("needs a real Flightctl and its OIDC issuer (FLIGHTCTL_URL, FLIGHTCTL_OIDC_*): make test-real runs it; " +
				"against the simulator the same checks run in provider/node (\"Refreshing credentials\")")
		}
		ext, err := quickstart.ExternalFromEnv()
		Expect(err).NotTo(HaveOccurred())
		Expect(ext.OIDCIssuer).NotTo(BeEmpty(), "FLIGHTCTL_OIDC_ISSUER (hack/real-flightctl.sh env prints it)")
		Expect(ext.OIDCClientID).NotTo(BeEmpty(), "FLIGHTCTL_OIDC_CLIENT_ID")
		Expect(ext.OIDCClientSecretFile).NotTo(BeEmpty(), "FLIGHTCTL_OIDC_CLIENT_SECRET_FILE")
		rawSecret, err := os.ReadFile(ext.OIDCClientSecretFile)
		Expect(err).NotTo(HaveOccurred())
		clientSecret := strings.TrimSpace(string(rawSecret))

		cfg, err := clientcmd.BuildConfigFromFlags("", stack.Kubeconfig)
		Expect(err).NotTo(HaveOccurred())
		kube, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		secrets := kube.CoreV1().Secrets(quickstart.DefaultBindingNamespace)
		orig, err := secrets.Get(ctx, quickstart.SecretName, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			// Give the issuer its secret and the binding its static token
			// back, for whatever runs next.
			Expect(os.WriteFile(ext.OIDCClientSecretFile, rawSecret, 0o600)).To(Succeed())
			s, err := secrets.Get(ctx, quickstart.SecretName, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			s.Data = orig.Data
			_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(connected(ctx)).WithTimeout(30 * time.Second).Should(Equal("True/" + vkv1.ReasonConnected))
		})
		setSecret := func(change func(map[string][]byte)) {
			GinkgoHelper()
			s, err := secrets.Get(ctx, quickstart.SecretName, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			change(s.Data)
			_, err = secrets.Update(ctx, s, metav1.UpdateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}

		before := scrape(ctx)
		By("switching the binding's Secret from auth-token to client credentials of the issuer")
		setSecret(func(d map[string][]byte) {
			delete(d, vkv1.SecretKeyAuthToken)
			d[vkv1.SecretKeyOIDCIssuerURL] = []byte(ext.OIDCIssuer)
			d[vkv1.SecretKeyOAuthClientID] = []byte(ext.OIDCClientID)
			d[vkv1.SecretKeyOAuthClientSecret] = []byte(clientSecret)
		})
		Eventually(func() float64 { return scrape(ctx).refreshOK - before.refreshOK }).WithTimeout(15*time.Second).WithPolling(500*time.Millisecond).
			Should(BeNumerically(">", 0), "the manager never fetched a token with the client credentials")

		By("running a pod and holding it through at least five token lifetimes")
		pods := kube.CoreV1().Pods("default")
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "token-refresh-web", Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: env.NodeName(), Containers: []corev1.Container{{
				Name: "web", Image: "nginx:alpine",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
			}}},
		}
		_, err = pods.Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{})
		})
		phase := func() corev1.PodPhase {
			p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return ""
			}
			return p.Status.Phase
		}
		Eventually(phase).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Equal(corev1.PodRunning))
		start := scrape(ctx)
		const hold = 60 * time.Second // the issuer's tokens live 10 s
		Consistently(connected(ctx)).WithTimeout(hold).WithPolling(2 * time.Second).Should(Equal("True/" + vkv1.ReasonConnected))
		Expect(phase()).To(Equal(corev1.PodRunning))
		end := scrape(ctx)
		refreshed, refused := end.refreshOK-start.refreshOK, end.unauthorized-before.unauthorized
		fmt.Fprintf(GinkgoWriter, "    [ok]   %s of client credentials: %.0f tokens fetched, %.0f Flightctl requests, %.0f answered 401 since the switch\n",
			hold, refreshed, end.requests-start.requests, refused)
		AddReportEntry("real Flightctl, client credentials", map[string]float64{"tokens fetched in 60 s": refreshed, "401 since the switch": refused})
		Expect(refreshed).To(BeNumerically(">=", 5), "10 s tokens must be renewed before they end")
		Expect(refused).To(BeZero(), "no request may reach Flightctl with an expired token")

		By("revoking the client secret at the issuer")
		Expect(os.WriteFile(ext.OIDCClientSecretFile, []byte(randomSecret()+"\n"), 0o600)).To(Succeed())
		revoked := time.Now()
		Eventually(connected(ctx)).WithTimeout(40*time.Second).WithPolling(200*time.Millisecond).
			Should(Equal("False/"+vkv1.ReasonTokenRefreshFailed), "a revoked client must say so within one token lifetime and a retry")
		fmt.Fprintf(GinkgoWriter, "    [ok]   revoked client: FlightctlConnected=False/TokenRefreshFailed after %s\n", time.Since(revoked).Round(100*time.Millisecond))
		Expect(message(ctx)).To(ContainSubstring("invalid_client"))
		Expect(message(ctx)).NotTo(ContainSubstring(clientSecret))

		By("rotating the Secret to the issuer's new client secret")
		newSecret, err := os.ReadFile(ext.OIDCClientSecretFile)
		Expect(err).NotTo(HaveOccurred())
		setSecret(func(d map[string][]byte) {
			d[vkv1.SecretKeyOAuthClientSecret] = []byte(strings.TrimSpace(string(newSecret)))
		})
		rotated := time.Now()
		Eventually(connected(ctx)).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal("True/" + vkv1.ReasonConnected))
		took := time.Since(rotated)
		fmt.Fprintf(GinkgoWriter, "    [ok]   rotated Secret in use after %s\n", took.Round(time.Millisecond))
		AddReportEntry("real Flightctl, rotated Secret in use after", took.String())
		Expect(took).To(BeNumerically("<", 5*time.Second))
		Expect(phase()).To(Equal(corev1.PodRunning))
	}, SpecTimeout(6*time.Minute))
})

// connected polls the quickstart binding's FlightctlConnected condition as
// "status/reason".
func connected(ctx context.Context) func() string {
	return func() string {
		out, _ := stack.KubectlOutput(ctx, "get", "fleetbinding", quickstart.DefaultFleet, "-n", quickstart.DefaultBindingNamespace,
			"-o", `jsonpath={.status.conditions[?(@.type=="FlightctlConnected")].status}/{.status.conditions[?(@.type=="FlightctlConnected")].reason}`)
		return strings.TrimSpace(out)
	}
}

func message(ctx context.Context) string {
	out, err := stack.KubectlOutput(ctx, "get", "fleetbinding", quickstart.DefaultFleet, "-n", quickstart.DefaultBindingNamespace,
		"-o", `jsonpath={.status.conditions[?(@.type=="FlightctlConnected")].message}`)
	Expect(err).NotTo(HaveOccurred())
	return out
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// managerCounters are the manager's own counts of Flightctl requests and
// token fetches, read from its /metrics.
type managerCounters struct {
	requests, unauthorized, refreshOK float64
}

func scrape(ctx context.Context) managerCounters {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, stack.ManagerMetricsURL, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var c managerCounters
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "flightctl_client_requests_total":
			c.requests += v
			if strings.Contains(labels, `code="401"`) {
				c.unauthorized += v
			}
		case name == "vk_flightctl_token_refreshes_total" && strings.Contains(labels, `result="ok"`):
			c.refreshOK += v
		}
	}
	Expect(sc.Err()).NotTo(HaveOccurred())
	return c
}
