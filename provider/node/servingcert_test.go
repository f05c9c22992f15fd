package node_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vk-flightctl/vk-flightctl/provider/kubeletapi"
	"github.com/vk-flightctl/vk-flightctl/test/flightctlsim"
)

// envtest runs no kube-controller-manager, so the spec signs the approved
// CSR itself, as the kubelet-serving signer would; test/e2e runs the real
// signer.
var _ = Describe("Kubelet API serving certificate", func() {
	ctx := context.Background()

	It("requests a kubelet-serving certificate, approves only its own nodes' CSRs and serves the issued certificate", func() {
		f := newFixture(ctx, flightctlsim.Options{}, nil)
		Expect(k8sClient.Create(ctx, f.pod("cert", "100m", "128Mi"))).To(Succeed())
		Eventually(f.ready(ctx, "cert"), 30*time.Second).Should(BeTrue())
		var n corev1.Node
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.node}, &n)).To(Succeed())
		port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
		me, err := kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// Until a CSR is issued the kubelet API answers with its
		// self-signed certificate; once issued, with the CA's, verified as
		// an API server with --kubelet-certificate-authority verifies it.
		caCert, caKey := testCA()
		pool := x509.NewCertPool()
		pool.AddCert(caCert)
		dial := func() (*x509.Certificate, error) {
			c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
			if err != nil {
				return nil, err
			}
			defer c.Close()
			return c.ConnectionState().PeerCertificates[0], nil
		}
		_, err = dial()
		Expect(err).To(HaveOccurred(), "the self-signed certificate is not trusted")

		// The spec signs as kube-controller-manager's signer would: every
		// approved, unissued kubelet-serving CSR. The suite's manager
		// outlives earlier specs' nodes and may still wait for a CSR made
		// for one of them (nothing issues CSRs here, and client-go's
		// certificate manager, holding no certificate yet, keeps waiting
		// for the one it sent), so which CSR it waits for is not this
		// spec's to choose. Each must be the manager's: the signer's
		// subject for one of its nodes, the nodes' address, approved by it.
		var served *x509.Certificate
		issued := map[string]string{}
		Eventually(func(g Gomega) {
			l, err := kube.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			for i := range l.Items {
				c := &l.Items[i]
				if c.Spec.SignerName != certificatesv1.KubeletServingSignerName || c.Spec.Username != me.Status.UserInfo.Username ||
					len(c.Status.Certificate) != 0 || !approved(c) {
					continue
				}
				req := parseCSR(c.Spec.Request)
				Expect(req.Subject.CommonName).To(HavePrefix("system:node:vk-flightctl-"))
				Expect(req.Subject.Organization).To(Equal([]string{"system:nodes"}))
				Expect(req.IPAddresses).To(HaveLen(1))
				Expect(req.IPAddresses[0].String()).To(Equal("127.0.0.1"))
				Expect(c.Spec.Usages).To(ConsistOf(certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth))
				Expect(conditionReason(c)).To(Equal(kubeletapi.ApprovedReason))
				c.Status.Certificate = issue(req, caCert, caKey)
				_, err = kube.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, c, metav1.UpdateOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				issued[req.Subject.CommonName] = c.Name
			}
			served, err = dial()
			g.Expect(err).NotTo(HaveOccurred(), "serving a certificate of the CA (issued so far: %v)", issued)
		}, 90*time.Second, 500*time.Millisecond).Should(Succeed())
		Expect(issued).To(HaveKey(served.Subject.CommonName), "the served certificate is one of those issued")

		// Narrow: the manager's identity asking for a node it does not run
		// or another address, and another identity asking for its node,
		// stay pending.
		node := f.node
		other := impersonated("someone-else")
		pending := []string{
			createCSR(ctx, kube, "vk-flightctl-serving-foreign-node", "system:node:not-ours", "127.0.0.1"),
			createCSR(ctx, kube, "vk-flightctl-serving-foreign-ip", "system:node:"+node, "10.1.2.3"),
			createCSR(ctx, other, "vk-flightctl-serving-foreign-user", "system:node:"+node, "127.0.0.1"),
		}
		DeferCleanup(func() {
			for _, name := range pending {
				_ = kube.CertificatesV1().CertificateSigningRequests().Delete(ctx, name, metav1.DeleteOptions{})
			}
		})
		Consistently(func() []string {
			var got []string
			for _, name := range pending {
				c, err := kube.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
				if err == nil && approved(c) {
					got = append(got, name)
				}
			}
			return got
		}, 3*time.Second, 300*time.Millisecond).Should(BeEmpty(), "CSRs the approver must leave alone")
	})
})

func approved(c *certificatesv1.CertificateSigningRequest) bool {
	return slices.ContainsFunc(c.Status.Conditions, func(x certificatesv1.CertificateSigningRequestCondition) bool {
		return x.Type == certificatesv1.CertificateApproved
	})
}

func conditionReason(c *certificatesv1.CertificateSigningRequest) string {
	for _, x := range c.Status.Conditions {
		if x.Type == certificatesv1.CertificateApproved {
			return x.Reason
		}
	}
	return ""
}

func parseCSR(p []byte) *x509.CertificateRequest {
	b, _ := pem.Decode(p)
	Expect(b).NotTo(BeNil())
	r, err := x509.ParseCertificateRequest(b.Bytes)
	Expect(err).NotTo(HaveOccurred())
	return r
}

func testCA() (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test kubelet-serving signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	c, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return c, key
}

// issue signs req as the kubelet-serving signer does: its subject and
// names, for server auth.
func issue(req *x509.CertificateRequest, ca *x509.Certificate, caKey *ecdsa.PrivateKey) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject,
		DNSNames: req.DNSNames, IPAddresses: req.IPAddresses, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, req.PublicKey, caKey)
	Expect(err).NotTo(HaveOccurred())
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func impersonated(user string) kubernetes.Interface {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:masters"}}
	k, err := kubernetes.NewForConfig(c)
	Expect(err).NotTo(HaveOccurred())
	return k
}

// createCSR asks for a serving certificate as k's user and returns its name.
func createCSR(ctx context.Context, k kubernetes.Interface, name, cn, ip string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, IPAddresses: []net.IP{net.ParseIP(ip)},
	}, key)
	Expect(err).NotTo(HaveOccurred())
	_, err = k.CertificatesV1().CertificateSigningRequests().Create(ctx, &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeletServingSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
		},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return name
}
