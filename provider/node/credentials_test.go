package node_test

import (
	"context"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
	"github.com/vk-flightctl/vk-flightctl/test/oidcissuer"
)

// startTestIssuer starts a loopback OIDC issuer whose client secret is
// client-s3cret, stopped when the spec ends.
func startTestIssuer(ttl time.Duration) *oidcissuer.Loopback {
	is, err := oidcissuer.StartLoopback("client-s3cret", ttl)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(is.Close)
	return is
}

var _ = Describe("Refreshing credentials", func() {
	It("client credentials: 3 s tokens are renewed while the node serves, a revoked client says TokenRefreshFailed, a rotated Secret is used within seconds", func(ctx SpecContext) {
		is := startTestIssuer(3 * time.Second)
		var accepted, refused atomic.Int32
		verify := func(tok string) bool {
			if _, err := is.Verify(tok); err != nil {
				refused.Add(1)
				return false
			}
			accepted.Add(1)
			return true
		}
		creds := func(sim *flightctlsim.Sim) map[string]string {
			return map[string]string{"api-url": sim.URL(), "oidc-issuer-url": is.URL(),
				"oauth-client-id": oidcissuer.DefaultAudience, "oauth-client-secret": "client-s3cret"}
		}
		f := newFixtureWithCredentials(ctx, flightctlsim.Options{TokenVerifier: verify}, creds, nil)
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 30*time.Second).Should(Equal("True/" + vkv1.ReasonConnected))

		By("serving through at least five token lifetimes")
		issuedBefore := is.Issued()
		p := f.pod("oauth-web", "100m", "64Mi")
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		Eventually(f.phase(ctx, "oauth-web"), 30*time.Second).Should(Equal(corev1.PodRunning))
		Consistently(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 16*time.Second, time.Second).Should(Equal("True/" + vkv1.ReasonConnected))
		renewed := is.Issued() - issuedBefore
		AddReportEntry("client-credentials refresh", map[string]any{"tokens issued in 16 s": renewed, "accepted requests": accepted.Load(), "refused (401)": refused.Load()})
		Expect(renewed).To(BeNumerically(">=", 5), "tokens of 3 s must be renewed before they expire")
		Expect(refused.Load()).To(BeZero(), "no request may reach Flightctl with an expired or foreign token")
		Expect(f.nodeCondition(ctx, corev1.NodeConditionType(vkv1.NodeConditionFlightctlReachable))()).To(Equal(corev1.ConditionTrue))

		By("revoking the client at the identity provider")
		is.SetRevoked(true)
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 30*time.Second).Should(Equal("False/" + vkv1.ReasonTokenRefreshFailed))
		var b vkv1.FleetBinding
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(f.binding), &b)).To(Succeed())
		for _, c := range b.Status.Conditions {
			if c.Type == vkv1.ConditionFlightctlConnected {
				Expect(c.Message).To(ContainSubstring("invalid_client: client secret revoked"))
				Expect(c.Message).NotTo(ContainSubstring("client-s3cret"))
			}
		}
		Expect(refused.Load()).To(BeZero(), "without a token nothing is sent")

		By("rotating the Secret to a new client secret")
		is.SetRevoked(false)
		is.ClientSecret = "rotated-s3cret"
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "flightctl-credentials"}, &s)).To(Succeed())
		s.Data["oauth-client-secret"] = []byte("rotated-s3cret")
		rotated := time.Now()
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 10*time.Second, 100*time.Millisecond).Should(Equal("True/" + vkv1.ReasonConnected))
		took := time.Since(rotated)
		AddReportEntry("rotated Secret in use after", took.String())
		Expect(took).To(BeNumerically("<", 5*time.Second))
		Expect(f.phase(ctx, "oauth-web")()).To(Equal(corev1.PodRunning))
	})

	It("Kubernetes auth: the manager presents its own ServiceAccount's tokens with the configured audience", func(ctx SpecContext) {
		const audience = "vk-flightctl-test-flightctl"
		Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vk-system"}}))).To(Succeed())
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "vk-system", Name: "vk-flightctl-provider"}}
		if err := k8sClient.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		var reviewed atomic.Int32
		// As Flightctl's k8s auth provider does: a TokenReview with the
		// audience it is configured for.
		verify := func(tok string) bool {
			tr, err := kube.AuthenticationV1().TokenReviews().Create(context.Background(), &authenticationv1.TokenReview{
				Spec: authenticationv1.TokenReviewSpec{Token: tok, Audiences: []string{audience}}}, metav1.CreateOptions{})
			if err != nil || !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:vk-system:vk-flightctl-provider" {
				return false
			}
			reviewed.Add(1)
			return true
		}
		creds := func(sim *flightctlsim.Sim) map[string]string {
			return map[string]string{"api-url": sim.URL(), "kubernetes-token-audience": audience}
		}
		f := newFixtureWithCredentials(ctx, flightctlsim.Options{TokenVerifier: verify}, creds, nil)
		Eventually(f.bindingCondition(ctx, vkv1.ConditionFlightctlConnected), 30*time.Second).Should(Equal("True/" + vkv1.ReasonConnected))
		Expect(k8sClient.Create(ctx, f.pod("k8s-auth-web", "100m", "64Mi"))).To(Succeed())
		Eventually(f.phase(ctx, "k8s-auth-web"), 30*time.Second).Should(Equal(corev1.PodRunning))
		Expect(reviewed.Load()).To(BeNumerically(">", 0))

		By("a token for another audience is refused")
		tr, err := kube.CoreV1().ServiceAccounts("vk-system").CreateToken(ctx, "vk-flightctl-provider",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"someone-else"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(verify(tr.Status.Token)).To(BeFalse())
	})
})
