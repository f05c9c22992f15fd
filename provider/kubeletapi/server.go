// Package kubeletapi serves the kubelet API (logs, exec, attach,
// port-forward, pod lists) for every virtual node of the manager on one TLS
// listener, with kubelet-style authentication (client certificates and
// bearer tokens through TokenReview) and authorization (SubjectAccessReview
// on the pod's node). Flightctl gives no way to stream logs or exec into a
// device's containers except through its console: logs and exec run
// podman there (console.go), and so does attach; port-forward answers a
// clear "not supported by vk-flightctl" instead of hanging or failing TLS.
package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"

	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// NotSupported is the message of every call Flightctl devices cannot serve.
const NotSupported = "not supported by vk-flightctl: Flightctl devices do not stream container %s to Kubernetes; " +
	"use the pod's status and events, or the device's own tooling"

// PodLocator finds the virtual node a pod runs on, and lists all pods.
type PodLocator interface {
	// PodNode returns the node of a pod this manager serves.
	PodNode(namespace, name string) (string, bool)
	// PodPlacement says where a pod's workload runs, for logs and exec.
	PodPlacement(namespace, name string) (nodeapi.Placement, bool)
	// AllPods lists the pods of every node this manager serves.
	AllPods(ctx context.Context) ([]*corev1.Pod, error)
}

// Options configure the server.
type Options struct {
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr string
	// CertFile and KeyFile are the serving key pair. Without them the
	// certificate comes from ServingCertificate.
	CertFile, KeyFile string
	// ServingCertificate is ServingCSR or ServingSelfSigned (empty).
	ServingCertificate string
	// Nodes are the nodes a CSR-issued certificate may name.
	Nodes NodeNamer
	// ClientCAFile verifies client certificates (the API server's kubelet
	// client certificate); empty accepts bearer tokens only.
	ClientCAFile string
	// Kube reviews tokens and access.
	Kube kubernetes.Interface
	// Pods finds pods and their nodes.
	Pods PodLocator
	// Log receives request errors.
	Log logr.Logger
}

// Server is the shared kubelet API listener. It is a controller-runtime
// Runnable.
type Server struct {
	opts     Options
	listener net.Listener
	handler  http.Handler
	certs    *certSource
}

// New binds the listener (so the port is known before nodes advertise it)
// and builds the handler.
func New(o Options) (*Server, error) {
	certs, err := newCertSource(o)
	if err != nil {
		return nil, err
	}
	auth, err := nodeutil.WebhookAuth(o.Kube, "", func(c *nodeutil.WebhookAuthConfig) error {
		if o.ClientCAFile == "" {
			return nil
		}
		ca, err := dynamiccertificates.NewDynamicCAContentFromFile("kubelet-client-ca", o.ClientCAFile)
		if err != nil {
			return fmt.Errorf("reading --kubelet-client-ca-file: %w", err)
		}
		c.AuthnConfig.ClientCertificateCAContentProvider = ca
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("setting up kubelet API authentication: %w", err)
	}
	s := &Server{opts: o, certs: certs}
	mux := http.NewServeMux()
	api.AttachPodRoutes(api.PodHandlerConfig{
		RunInContainer:    s.exec,
		AttachToContainer: s.attach,
		PortForward: func(_ context.Context, ns, pod string, _ int32, _ io.ReadWriteCloser) error {
			return s.unsupported(ns, pod, "port-forward")
		},
		GetContainerLogs:      s.logs,
		GetPods:               o.Pods.AllPods,
		GetPodsFromKubernetes: o.Pods.AllPods,
	}, mux, false)
	s.handler = nodeutil.WithAuth(&perPodAuth{Auth: auth, pods: o.Pods}, mux)

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("kubelet API: listening on %s: %w", o.Addr, err)
	}
	s.listener = tls.NewListener(ln, &tls.Config{
		GetCertificate: certs.get,
		MinVersion:     tls.VersionTLS12,
		// Client certificates are checked by the authenticator, which
		// also accepts bearer tokens, so they are requested, not required.
		ClientAuth: tls.RequestClientCert,
	})
	return s, nil
}

// Port is the bound port, advertised on the virtual nodes.
func (s *Server) Port() int32 { return int32(s.listener.Addr().(*net.TCPAddr).Port) }

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if s.certs.fixed == nil && s.opts.ServingCertificate == ServingCSR {
		if err := s.certs.startCSR(ctx, s.opts.Kube, s.opts.Nodes, servingIPs(s.opts.Addr), s.opts.Log.WithName("serving-certificate")); err != nil {
			return err
		}
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NeedLeaderElection is false: every replica answers, and only the leader
// knows pods (others answer 404).
func (s *Server) NeedLeaderElection() bool { return false }

func (s *Server) unsupported(ns, pod, what string) error {
	if _, ok := s.opts.Pods.PodNode(ns, pod); !ok {
		return errdefs.NotFoundf("pod %s/%s is not on a vk-flightctl node served here", ns, pod)
	}
	return errdefs.InvalidInput(fmt.Sprintf(NotSupported, what))
}

// perPodAuth authorizes each request against the node of the pod it names,
// so one listener can serve many nodes with kubelet semantics; requests
// that name no pod (pod lists) need access to every node.
type perPodAuth struct {
	nodeutil.Auth
	pods PodLocator
}

func (a *perPodAuth) GetRequestAttributes(u user.Info, r *http.Request) authorizer.Attributes {
	node := ""
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) >= 3 {
		if n, ok := a.pods.PodNode(parts[1], parts[2]); ok {
			node = n
		}
	}
	return nodeutil.NodeRequestAttr{NodeName: node}.GetRequestAttributes(u, r)
}

// newCertSource loads the configured key pair, or makes a self-signed one
// for the listen host (the answer until a CSR is issued).
func newCertSource(o Options) (*certSource, error) {
	switch o.ServingCertificate {
	case "", ServingSelfSigned:
	case ServingCSR:
		if o.CertFile == "" && (o.Nodes == nil || len(servingIPs(o.Addr)) == 0) {
			return nil, fmt.Errorf("kubelet API: a serving certificate through a CSR needs the nodes and a listen address with a specific IP, not %q", o.Addr)
		}
	default:
		return nil, fmt.Errorf("kubelet API: unknown serving certificate source %q (want %s or %s)", o.ServingCertificate, ServingCSR, ServingSelfSigned)
	}
	if o.CertFile != "" || o.KeyFile != "" {
		c, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the kubelet serving key pair: %w", err)
		}
		return &certSource{fixed: &c}, nil
	}
	c, err := selfSigned(o.Addr)
	if err != nil {
		return nil, err
	}
	return &certSource{fallback: &c}, nil
}

// selfSigned makes a certificate for addr's host signed by its own key.
func selfSigned(addr string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	host, _, _ := net.SplitHostPort(addr)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vk-flightctl-kubelet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// RBAC for delegated authentication and authorization.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
