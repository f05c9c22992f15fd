// Package manager wires the controllers of vk-flightctl into a
// controller-runtime manager. The command and the tests share it, so tests
// run exactly what production runs.
package manager

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vk-flightctl/vk-flightctl/controllers"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
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
	// Namespace holds the settings ConfigMap and the leader Lease.
	Namespace string
	// EnableNodes runs virtual nodes.
	EnableNodes bool
	// KubeletListenAddr is where the nodes' shared kubelet API listens
	// (TLS); its host is advertised as the nodes' InternalIP. Port 0 picks
	// a free port.
	KubeletListenAddr string
	// KubeletCertFile and KubeletKeyFile are the kubelet API's serving key
	// pair; empty generates a self-signed one.
	KubeletCertFile, KubeletKeyFile string
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
	return Options{
		MetricsAddr:       "127.0.0.1:8080",
		ProbeAddr:         "127.0.0.1:8081",
		LeaderElectionID:  "vk-flightctl-provider",
		Namespace:         ns,
		EnableNodes:       true,
		KubeletListenAddr: "127.0.0.1:10250",
		GracefulShutdown:  30 * time.Second,
		PodSyncWorkers:    node.DefaultPodSyncWorkers,
	}
}

// Setup adds every controller to mgr.
func Setup(mgr ctrl.Manager, o Options, logger logr.Logger) error {
	clientOpts := func(c *flightctl.Config) {
		c.Logger = logger.WithName("flightctl")
		if o.ClientOptions != nil {
			o.ClientOptions(c)
		}
	}
	if err := flightctl.RegisterMetrics(metrics.Registry); err != nil {
		return fmt.Errorf("registering Flightctl client metrics: %w", err)
	}
	builder := &connection.Builder{Reader: mgr.GetAPIReader(), Options: connection.Options{ClientOptions: clientOpts}}
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
		kube, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return fmt.Errorf("creating a Kubernetes client for the virtual nodes: %w", err)
		}
		host, _, err := splitHostPort(o.KubeletListenAddr)
		if err != nil {
			return err
		}
		nodes := node.NewManager(kube, mgr.GetAPIReader(), mgr.GetScheme(), logger.WithName("node"), node.Options{InternalIP: host, PodSyncWorkers: o.PodSyncWorkers})
		kubelet, err := kubeletapi.New(kubeletapi.Options{
			Addr: o.KubeletListenAddr, CertFile: o.KubeletCertFile, KeyFile: o.KubeletKeyFile,
			ClientCAFile: o.KubeletClientCAFile, Kube: kube, Pods: nodes, Log: logger.WithName("kubelet-api"),
		})
		if err != nil {
			return err
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
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the FleetBinding controller: %w", err)
	}
	return nil
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
