// Package manager builds the vk-flightctl controller-runtime manager: its
// options (cache limits, metrics serving, leader election, health checks)
// and every controller and runnable in it. The command and the test suites
// all call New, so tests run what production runs; only the fields of
// Options differ.
package manager

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"

	"github.com/vk-flightctl/vk-flightctl/controllers"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/internal/sharding"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/kubeletapi"
	"github.com/vk-flightctl/vk-flightctl/provider/node"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// Options configure the manager.
type Options struct {
	// MetricsAddr is the /metrics listen address ("0" disables).
	MetricsAddr string
	// ProbeAddr is the health probe listen address.
	ProbeAddr string
	// PprofAddr is where net/http/pprof listens; empty (the default)
	// disables it. CheckPprofAddr keeps it on loopback.
	PprofAddr string
	// LeaderElection turns on leader election.
	LeaderElection bool
	// LeaderElectionID names the Lease.
	LeaderElectionID string
	// LeaseDuration, RenewDeadline and RetryPeriod time the leader Lease;
	// zero keeps controller-runtime's defaults (15 s, 10 s, 2 s). A
	// shorter lease hands over faster after a leader dies, at the cost of
	// more Lease writes.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Sharding runs the manager active-active: every replica runs the
	// nodes of its share of the bindings, each binding fenced by a Lease
	// of its own (internal/sharding). LeaderElection is then ignored; the
	// Lease timings above apply to the shard Leases.
	Sharding bool
	// Replica names this replica among the shards (default $POD_NAME,
	// else the host name); it must be unique.
	Replica string
	// ShardObserver, when set, is told each time a replica starts (true)
	// or has stopped (false) a binding's node in sharded mode; tests use
	// it to prove a node never runs twice.
	ShardObserver func(replica string, binding types.NamespacedName, running bool)
	// MetricsSecure serves /metrics over HTTPS behind the API server's
	// TokenReview and SubjectAccessReview (get on the /metrics URL), as
	// controller-runtime recommends. Off only for loopback-only setups.
	MetricsSecure bool
	// ServiceAccountName is the manager's own ServiceAccount (in
	// Namespace), whose tokens Kubernetes authentication to Flightctl
	// presents.
	ServiceAccountName string
	// SkipControllerNameValidation lets one process build several
	// managers (test suites restart the manager).
	SkipControllerNameValidation bool
	// Namespace holds the settings ConfigMap and the leader Lease.
	Namespace string
	// EnableNodes runs virtual nodes.
	EnableNodes bool
	// KubeletListenAddr is where the nodes' shared kubelet API listens
	// (TLS); its host is advertised as the nodes' InternalIP. Port 0 picks
	// a free port.
	KubeletListenAddr string
	// KubeletCertFile and KubeletKeyFile are the kubelet API's serving key
	// pair; without them KubeletServingCertificate says where it comes from.
	KubeletCertFile, KubeletKeyFile string
	// KubeletServingCertificate is kubeletapi.ServingCSR (a
	// kubernetes.io/kubelet-serving CSR the manager approves for its own
	// nodes; self-signed until issued) or kubeletapi.ServingSelfSigned.
	KubeletServingCertificate string
	// KubeletClientCAFile verifies client certificates of kubelet API
	// callers (the API server's kubelet client certificate).
	KubeletClientCAFile string
	// PodSyncWorkers is each virtual node's pod worker count: how many
	// pods of one node are placed and written at once.
	PodSyncWorkers int
	// GracefulShutdown bounds how long stopping may take.
	GracefulShutdown time.Duration
	// ClientOptions tune every Flightctl client (tests shorten timeouts).
	ClientOptions func(*flightctl.Config)
}

// DefaultOptions are safe defaults: everything on loopback.
func DefaultOptions() Options {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	sa := os.Getenv("POD_SERVICE_ACCOUNT")
	if sa == "" {
		sa = "vk-flightctl-provider"
	}
	replica := os.Getenv("POD_NAME")
	if replica == "" {
		replica, _ = os.Hostname()
	}
	return Options{
		Replica:                   replica,
		ServiceAccountName:        sa,
		MetricsAddr:               "127.0.0.1:8443",
		MetricsSecure:             true,
		ProbeAddr:                 "127.0.0.1:8081",
		LeaderElectionID:          "vk-flightctl-provider",
		Namespace:                 ns,
		EnableNodes:               true,
		KubeletListenAddr:         "127.0.0.1:10250",
		KubeletServingCertificate: kubeletapi.ServingCSR,
		GracefulShutdown:          30 * time.Second,
		PodSyncWorkers:            node.DefaultPodSyncWorkers,
	}
}

// Scheme is every API type the manager reads or writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vkv1.AddToScheme(s))
	return s
}

// New builds the manager with every controller, runnable and health check.
func New(cfg *rest.Config, o Options, logger logr.Logger) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(cfg, controllerOptions(o))
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := setup(mgr, o, logger); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// controllerOptions are the controller-runtime options for o.
func controllerOptions(o Options) ctrl.Options {
	gracefulShutdown := o.GracefulShutdown
	mo := ctrl.Options{
		Scheme: Scheme(),
		Metrics: metricsserver.Options{
			BindAddress:   o.MetricsAddr,
			SecureServing: o.MetricsSecure,
			// HTTP/2 stays off: its stream multiplexing has had denial of
			// service flaws (CVE-2023-44487, CVE-2023-39325) and /metrics
			// gains nothing from it.
			TLSOpts: []func(*tls.Config){disableHTTP2},
		},
		HealthProbeBindAddress: o.ProbeAddr,
		PprofBindAddress:       o.PprofAddr,
		// Sharded replicas all run; the shard Leases fence each binding.
		LeaderElection:          o.LeaderElection && !o.Sharding,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.Namespace,
		// A stopping leader hands over at once instead of after the lease.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &gracefulShutdown,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// The only ConfigMap the manager watches is its settings.
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{o.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", settings.ConfigMapName),
			},
			// Secrets are watched as metadata only, to notice rotations.
			// kubectl apply keeps a copy of the data in an annotation, so
			// annotations never enter the cache.
			secretMetadata(): {Transform: stripSecretMetadata},
		}},
	}
	if o.MetricsSecure {
		mo.Metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if o.LeaseDuration > 0 {
		mo.LeaseDuration = &o.LeaseDuration
	}
	if o.RenewDeadline > 0 {
		mo.RenewDeadline = &o.RenewDeadline
	}
	if o.RetryPeriod > 0 {
		mo.RetryPeriod = &o.RetryPeriod
	}
	if o.SkipControllerNameValidation {
		skip := true
		mo.Controller = config.Controller{SkipNameValidation: &skip}
	}
	return mo
}

func disableHTTP2(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }

func secretMetadata() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
}

// stripSecretMetadata keeps a Secret's name, namespace and version: all
// the rotation watch needs.
func stripSecretMetadata(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetAnnotations(nil)
		a.SetManagedFields(nil)
		a.SetLabels(nil)
	}
	return obj, nil
}

// setup adds every controller and runnable to mgr.
func setup(mgr ctrl.Manager, o Options, logger logr.Logger) error {
	clientOpts := func(c *flightctl.Config) {
		c.Logger = logger.WithName("flightctl")
		if o.ClientOptions != nil {
			o.ClientOptions(c)
		}
	}
	if err := flightctl.RegisterMetrics(metrics.Registry); err != nil {
		return fmt.Errorf("registering Flightctl client metrics: %w", err)
	}
	kube, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("creating a Kubernetes client: %w", err)
	}
	builder := &connection.Builder{Reader: mgr.GetAPIReader(), Options: connection.Options{
		ClientOptions:  clientOpts,
		Kube:           kube,
		ServiceAccount: types.NamespacedName{Namespace: o.Namespace, Name: o.ServiceAccountName},
	}}
	r := &controllers.FleetBindingReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Scheme:         mgr.GetScheme(),
		Recorder:       mgr.GetEventRecorder("vk-flightctl-provider"),
		Connections:    builder,
		Namespace:      o.Namespace,
		ProbeInventory: nodeapi.ListInventory,
	}
	if o.EnableNodes {
		host, _, err := splitHostPort(o.KubeletListenAddr)
		if err != nil {
			return err
		}
		nodes := node.NewManager(kube, mgr.GetAPIReader(), mgr.GetScheme(), logger.WithName("node"), node.Options{InternalIP: host, PodSyncWorkers: o.PodSyncWorkers})
		kubelet, err := kubeletapi.New(kubeletapi.Options{
			Addr: o.KubeletListenAddr, CertFile: o.KubeletCertFile, KeyFile: o.KubeletKeyFile,
			ServingCertificate: o.KubeletServingCertificate, Nodes: nodes,
			ClientCAFile: o.KubeletClientCAFile, Kube: kube, Pods: nodes, Log: logger.WithName("kubelet-api"),
		})
		if err != nil {
			return err
		}
		if o.KubeletCertFile == "" && o.KubeletServingCertificate == kubeletapi.ServingCSR {
			if err := mgr.Add(kubeletapi.NewApprover(kube, nodes, o.KubeletListenAddr, logger.WithName("kubelet-serving-approver"))); err != nil {
				return err
			}
		}
		nodes.SetKubeletPort(kubelet.Port())
		if err := mgr.Add(kubelet); err != nil {
			return err
		}
		// Nodes run only on the elected leader, and stop (without touching
		// devices or Node objects) when the manager stops.
		if err := mgr.Add(nodes); err != nil {
			return err
		}
		r.Nodes = nodes
		r.Triggers = nodes.Triggers()
		if o.Sharding {
			sharder, err := newSharder(mgr, kube, nodes, o, logger)
			if err != nil {
				return err
			}
			r.Nodes, r.Shard = sharder, sharder
		}
	} else if o.Sharding {
		return fmt.Errorf("--sharding spreads virtual nodes over replicas and needs --enable-nodes")
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the FleetBinding controller: %w", err)
	}
	return nil
}

// Shard Lease timings when none are given: controller-runtime's leader
// election defaults.
const (
	defaultLeaseDuration = 15 * time.Second
	defaultRenewDeadline = 10 * time.Second
	defaultRetryPeriod   = 2 * time.Second
)

// newSharder adds the sharder that gates nodes to this replica's bindings.
func newSharder(mgr ctrl.Manager, kube kubernetes.Interface, nodes *node.Manager, o Options, logger logr.Logger) (*sharding.Sharder, error) {
	if o.Replica == "" {
		return nil, fmt.Errorf("--sharding needs a replica name (--replica-name or $POD_NAME)")
	}
	lease, renew, retry := orDefault(o.LeaseDuration, defaultLeaseDuration), orDefault(o.RenewDeadline, defaultRenewDeadline), orDefault(o.RetryPeriod, defaultRetryPeriod)
	if err := sharding.CheckTimings(lease, renew, retry); err != nil {
		return nil, err
	}
	if err := sharding.RegisterMetrics(metrics.Registry); err != nil {
		return nil, fmt.Errorf("registering sharding metrics: %w", err)
	}
	s := sharding.New(kube, mgr.GetClient(), nodes, sharding.Options{
		Replica: o.Replica, Namespace: o.Namespace,
		LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry,
		Log: logger.WithName("sharding"), OnNodeChange: o.ShardObserver,
	})
	return s, mgr.Add(s)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// CheckPprofAddr accepts an empty address (profiling off) or a loopback
// host:port. Profiles expose heap contents and can cost CPU, so they are
// never served on a routable interface; kubectl port-forward reaches a
// loopback listener inside the pod.
func CheckPprofAddr(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-bind-address %q: want host:port, e.g. 127.0.0.1:6060: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--pprof-bind-address %q: bad port %q", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--pprof-bind-address %q: profiles must stay on loopback (127.0.0.1 or ::1), not %q; use kubectl port-forward to reach them", addr, host)
	}
	return nil
}

func splitHostPort(addr string) (string, int32, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("--kubelet-listen-address %q: want host:port: %w", addr, err)
	}
	port, err := strconv.ParseInt(portStr, 10, 32)
	if err != nil || port < 0 {
		return "", 0, fmt.Errorf("--kubelet-listen-address %q: bad port", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return host, int32(port), nil
}
