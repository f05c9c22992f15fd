package kubeletapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
)

// Where the kubelet API's serving certificate comes from. A configured key
// pair (Options.CertFile/KeyFile) always wins.
const (
	// ServingSelfSigned makes a self-signed certificate at start: API
	// servers that verify kubelets (--kubelet-certificate-authority)
	// refuse it.
	ServingSelfSigned = "self-signed"
	// ServingCSR asks the cluster for a certificate through a
	// CertificateSigningRequest for the kubernetes.io/kubelet-serving
	// signer, as a kubelet with serverTLSBootstrap does, approves it
	// (Approver) and renews it before it expires. Until it is issued the
	// self-signed certificate answers.
	ServingCSR = "csr"
)

// NodeNamer lists the virtual nodes this manager runs.
type NodeNamer interface {
	// NodeNames returns the node names, sorted.
	NodeNames() []string
}

// nodeUser and nodeGroup are the subject of a kubelet serving certificate:
// kube-controller-manager's kubelet-serving signer issues nothing else.
const (
	nodeUserPrefix = "system:node:"
	nodeGroup      = "system:nodes"
)

// servingUsages are what the CSR asks for: an ECDSA key needs no key
// encipherment.
var servingUsages = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}

// certSource picks the certificate of each TLS handshake: the configured
// key pair, else the CSR-issued one once there is one, else the
// self-signed one.
type certSource struct {
	fixed    *tls.Certificate
	fallback *tls.Certificate

	// csr is set by Start in ServingCSR mode.
	mu  sync.Mutex
	csr certificate.Manager
	// cn is the node the certificate names; it stays the same while that
	// node runs, so new nodes do not make the certificate rotate.
	cn string
}

func (c *certSource) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.fixed != nil {
		return c.fixed, nil
	}
	c.mu.Lock()
	m := c.csr
	c.mu.Unlock()
	if m != nil {
		if cur := m.Current(); cur != nil {
			return cur, nil
		}
	}
	return c.fallback, nil
}

// servingIPs are the addresses a serving certificate names: the listen
// host, which the nodes advertise as their InternalIP and the API server
// dials. An unspecified host (0.0.0.0) names none, and no CSR is made.
func servingIPs(addr string) []net.IP {
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return []net.IP{ip}
}

// template is the CSR the certificate manager sends, nil while there is
// no node to name (it asks again every second). One listener serves every
// node and the API server dials them all at the same address without SNI,
// so one certificate names one of them in its subject, as the signer
// requires, and the shared address.
func (c *certSource) template(nodes NodeNamer, ips []net.IP) func() *x509.CertificateRequest {
	return func() *x509.CertificateRequest {
		names := nodes.NodeNames()
		if len(names) == 0 || len(ips) == 0 {
			return nil
		}
		c.mu.Lock()
		if !slices.Contains(names, c.cn) {
			c.cn = names[0]
		}
		cn := c.cn
		c.mu.Unlock()
		return &x509.CertificateRequest{
			Subject:     pkix.Name{CommonName: nodeUserPrefix + cn, Organization: []string{nodeGroup}},
			DNSNames:    []string{cn},
			IPAddresses: ips,
		}
	}
}

// startCSR starts the certificate manager: it creates the CSR, waits for
// it to be issued, keeps the certificate in memory and renews it at 70-90%
// of its lifetime (client-go's k8s.io/client-go/util/certificate, the
// kubelet's own). A restart asks anew: the key never leaves the process.
func (c *certSource) startCSR(ctx context.Context, kube kubernetes.Interface, nodes NodeNamer, ips []net.IP, log logr.Logger) error {
	lctx := klog.NewContext(ctx, log)
	m, err := certificate.NewManager(&certificate.Config{
		ClientsetFn:      func(*tls.Certificate) (kubernetes.Interface, error) { return kube, nil },
		GetTemplate:      c.template(nodes, ips),
		SignerName:       certificatesv1.KubeletServingSignerName,
		Usages:           servingUsages,
		CertificateStore: &memoryStore{},
		Name:             "vk-flightctl-kubelet-serving",
		Ctx:              &lctx,
	})
	if err != nil {
		return fmt.Errorf("kubelet API: setting up the serving certificate manager: %w", err)
	}
	c.mu.Lock()
	c.csr = m
	c.mu.Unlock()
	m.Start()
	go func() {
		<-ctx.Done()
		m.Stop()
	}()
	log.Info("requesting a serving certificate from the kubernetes.io/kubelet-serving signer", "addresses", ips)
	return nil
}

// memoryStore keeps the issued certificate in memory (certificate.Store).
type memoryStore struct {
	mu   sync.Mutex
	cert *tls.Certificate
}

func (s *memoryStore) Current() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert == nil {
		e := certificate.NoCertKeyError("no serving certificate issued yet")
		return nil, &e
	}
	return s.cert, nil
}

func (s *memoryStore) Update(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	// The manager reads the leaf for the expiry and the rotation deadline.
	if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cert = &c
	s.mu.Unlock()
	return &c, nil
}
