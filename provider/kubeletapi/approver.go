package kubeletapi

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ApprovedReason is the reason of the Approved condition the Approver sets.
const ApprovedReason = "VKFlightctlNodeServing"

// Approver approves the kubelet-serving CSRs of this manager's own kubelet
// API and nothing else, as kube-controller-manager approves no serving
// certificates. It is narrow on purpose: the request must come from the
// manager's own identity, name a node the manager runs in the signer's
// subject form, name only those nodes and the nodes' address, and ask for
// server use only. Other CSRs are left untouched, for their own approvers.
// It runs on the leader, which runs the nodes.
type Approver struct {
	// Kube reads and approves CSRs.
	Kube kubernetes.Interface
	// Nodes are the nodes this manager runs.
	Nodes NodeNamer
	// IPs are the addresses a certificate may name (the nodes'
	// InternalIP).
	IPs []net.IP
	// Log receives approvals and refusals.
	Log logr.Logger

	user string
}

// NewApprover approves the serving CSRs of a Server listening on addr.
func NewApprover(kube kubernetes.Interface, nodes NodeNamer, addr string, log logr.Logger) *Approver {
	return &Approver{Kube: kube, Nodes: nodes, IPs: servingIPs(addr), Log: log}
}

// NeedLeaderElection is true: only the leader runs nodes.
func (a *Approver) NeedLeaderElection() bool { return true }

// Start watches kubelet-serving CSRs until ctx ends.
func (a *Approver) Start(ctx context.Context) error {
	// Who am I: the CSRs the certificate manager creates carry this
	// username, set by the API server, not by the requester.
	ssr, err := a.Kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("kubelet serving CSR approver: finding the manager's own identity: %w", err)
	}
	a.user = ssr.Status.UserInfo.Username
	f := informers.NewSharedInformerFactoryWithOptions(a.Kube, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", certificatesv1.KubeletServingSignerName).String()
	}))
	inf := f.Certificates().V1().CertificateSigningRequests().Informer()
	handle := func(obj any) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
			a.review(ctx, csr)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	<-ctx.Done()
	f.Shutdown()
	return nil
}

// review approves csr if it is this manager's and well-formed.
func (a *Approver) review(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) {
	if decided(csr) || csr.Spec.Username != a.user {
		return
	}
	node, err := a.check(csr)
	if err != nil {
		a.Log.Info("not approving a kubelet serving CSR of this manager", "csr", csr.Name, "reason", err.Error())
		return
	}
	c := csr.DeepCopy()
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type:           certificatesv1.CertificateApproved,
		Status:         corev1.ConditionTrue,
		Reason:         ApprovedReason,
		Message:        "vk-flightctl approved the kubelet API serving certificate of its node " + node,
		LastUpdateTime: metav1.Now(),
	})
	if _, err := a.Kube.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{}); err != nil {
		a.Log.Error(err, "approving a kubelet serving CSR", "csr", csr.Name)
		return
	}
	a.Log.Info("approved the kubelet API serving CSR", "csr", csr.Name, "node", node)
}

// decided says whether csr was approved or denied already.
func decided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied {
			return true
		}
	}
	return false
}

// check returns the node csr is for, or why it is not acceptable.
func (a *Approver) check(csr *certificatesv1.CertificateSigningRequest) (string, error) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return "", errors.New("the request is no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", err
	}
	if err := req.CheckSignature(); err != nil {
		return "", err
	}
	node, ok := strings.CutPrefix(req.Subject.CommonName, nodeUserPrefix)
	nodes := a.Nodes.NodeNames()
	if !ok || !slices.Contains(nodes, node) {
		return "", fmt.Errorf("subject %q names no node this manager runs", req.Subject.CommonName)
	}
	if !slices.Equal(req.Subject.Organization, []string{nodeGroup}) {
		return "", fmt.Errorf("organization %v is not [%s]", req.Subject.Organization, nodeGroup)
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return "", errors.New("email or URI names are not allowed")
	}
	for _, d := range req.DNSNames {
		if !slices.Contains(nodes, d) {
			return "", fmt.Errorf("DNS name %q is no node this manager runs", d)
		}
	}
	for _, ip := range req.IPAddresses {
		if !slices.ContainsFunc(a.IPs, ip.Equal) {
			return "", fmt.Errorf("address %s is not the nodes' address %v", ip, a.IPs)
		}
	}
	if len(req.IPAddresses) == 0 {
		return "", errors.New("the request names no address")
	}
	allowed := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}
	for _, u := range csr.Spec.Usages {
		if !slices.Contains(allowed, u) {
			return "", fmt.Errorf("usage %q is not for serving", u)
		}
	}
	if !slices.Contains(csr.Spec.Usages, certificatesv1.UsageServerAuth) {
		return "", errors.New("the request does not ask for server auth")
	}
	return node, nil
}

// RBAC of the serving certificate: create and watch its own CSR, approve
// kubelet-serving ones (the Approver checks they are its own), read its own
// identity.
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=create;get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests/approval,verbs=update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=signers,resourceNames=kubernetes.io/kubelet-serving,verbs=approve
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=selfsubjectreviews,verbs=create
