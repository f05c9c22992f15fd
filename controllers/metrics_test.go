package controllers_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
)

// The manager's /metrics are served the way config/manager deploys them:
// HTTPS, and only for callers the API server authenticates and authorizes
// for `get` on /metrics (config/rbac/metrics_reader_role.yaml).
var _ = Describe("Metrics endpoint", func() {
	It("answers 401 without a token, 403 without the metrics-reader role, and metrics with it", func(ctx SpecContext) {
		port := freeLoopbackPort()
		opts := manager.DefaultOptions()
		opts.Namespace = managerNamespace
		opts.EnableNodes = false
		opts.ProbeAddr = "0"
		opts.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", port)
		opts.SkipControllerNameValidation = true
		Expect(opts.MetricsSecure).To(BeTrue(), "secure metrics must be the default")
		logger, _ := logging.New(logging.Options{Output: GinkgoWriter})
		m, err := manager.New(cfg, opts, logger)
		Expect(err).NotTo(HaveOccurred())
		mctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Start(mctx) }()
		DeferCleanup(func() {
			cancel()
			Eventually(done, 30*time.Second).Should(Receive(BeNil()))
		})

		kube, err := kubernetes.NewForConfig(cfg)
		Expect(err).NotTo(HaveOccurred())
		reader := readObjects(filepath.Join("..", "config", "rbac", "metrics_reader_role.yaml"))
		Expect(reader).To(HaveLen(1))
		Expect(k8sClient.Create(ctx, reader[0])).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, reader[0]))).To(Succeed()) })
		scraper := tokenFor(ctx, kube, "metrics-scraper")
		stranger := tokenFor(ctx, kube, "metrics-stranger")
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics-scraper"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader[0].GetName()},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "metrics-scraper", Namespace: "default"}},
		}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, binding))).To(Succeed()) })

		url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
		Eventually(func() int { code, _ := scrape(url, ""); return code }, 30*time.Second).Should(Equal(http.StatusUnauthorized))
		code, _ := scrape(url, stranger)
		Expect(code).To(Equal(http.StatusForbidden))
		Eventually(func() int { code, _ := scrape(url, scraper); return code }, 10*time.Second).Should(Equal(http.StatusOK))
		// The controller's series appear once it has started (after its
		// caches synced), which may be after the endpoint first answers.
		Eventually(func() string { _, body := scrape(url, scraper); return body }, 30*time.Second).
			Should(ContainSubstring(`controller_runtime_active_workers{controller="fleetbinding"}`))
	})
})

func freeLoopbackPort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// tokenFor creates a ServiceAccount in namespace default and returns
// a token the API server issued for it.
func tokenFor(ctx context.Context, kube kubernetes.Interface, name string) string {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, sa))).To(Succeed()) })
	tr, err := kube.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// scrape GETs url with an optional bearer token. The serving certificate
// is self-signed, so only this test client skips verification.
func scrape(url, token string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed test certificate
	}}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	Expect(err).NotTo(HaveOccurred())
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
