// Command vk-flightctl-provider is the vk-flightctl manager: it reconciles
// FleetBindings and runs one virtual-kubelet node per binding.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "vk-flightctl-provider:", err)
		os.Exit(1)
	}
}

func run() error {
	opts := manager.DefaultOptions()
	var verbosity int
	var devLogs bool
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", opts.MetricsAddr, "address of the /metrics endpoint (\"0\" disables it)")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", opts.ProbeAddr, "address of the /healthz and /readyz endpoints")
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", opts.PprofAddr, "loopback address of the net/http/pprof endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; empty (default) disables profiling")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection, "elect a leader so only one replica registers nodes and writes to Flightctl")
	flag.StringVar(&opts.LeaderElectionID, "leader-election-id", opts.LeaderElectionID, "name of the leader election Lease")
	flag.StringVar(&opts.Namespace, "namespace", opts.Namespace, "namespace of the vk-flightctl-config ConfigMap and the leader Lease (default $POD_NAMESPACE, else default)")
	flag.BoolVar(&opts.EnableNodes, "enable-nodes", opts.EnableNodes, "run virtual nodes (false: only validate bindings and report status)")
	flag.StringVar(&opts.KubeletListenAddr, "kubelet-listen-address", opts.KubeletListenAddr, "host:port of the TLS kubelet API all virtual nodes share; the host is advertised as the nodes' InternalIP (port 0: a free port)")
	flag.StringVar(&opts.KubeletCertFile, "kubelet-tls-cert-file", "", "kubelet API serving certificate (PEM); empty: self-signed")
	flag.StringVar(&opts.KubeletKeyFile, "kubelet-tls-key-file", "", "kubelet API serving key (PEM)")
	flag.StringVar(&opts.KubeletClientCAFile, "kubelet-client-ca-file", "", "CA that signs kubelet API client certificates (the API server's --kubelet-client-certificate); empty: bearer tokens only")
	flag.IntVar(&opts.PodSyncWorkers, "pod-sync-workers", opts.PodSyncWorkers, "pods of one virtual node placed and written to Flightctl at once")
	flag.DurationVar(&opts.GracefulShutdown, "graceful-shutdown-timeout", opts.GracefulShutdown, "how long to wait for controllers and nodes to stop")
	flag.IntVar(&verbosity, "v", 0, "log verbosity (0 info, 1 debug, 2 trace)")
	flag.BoolVar(&devLogs, "dev-logs", false, "human-readable console logs instead of JSON")
	flag.Parse()
	if err := manager.CheckPprofAddr(opts.PprofAddr); err != nil {
		return err
	}

	logger, zl := logging.New(logging.Options{Verbosity: verbosity, Development: devLogs})
	defer func() { _ = zl.Sync() }()
	ctrl.SetLogger(logger)

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vkv1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (set KUBECONFIG or run in a cluster): %w", err)
	}
	mgrOpts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.ProbeAddr,
		PprofBindAddress:        opts.PprofAddr,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: opts.Namespace,
		// A stopping leader hands over at once instead of after the lease.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &opts.GracefulShutdown,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// The only ConfigMap the manager watches is its settings.
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{opts.Namespace: {}},
				Field:      fields.OneTermEqualSelector("metadata.name", "vk-flightctl-config"),
			},
		}},
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := manager.Setup(mgr, opts, logger); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	logger.Info("Provider starting", "namespace", opts.Namespace, "leaderElection", opts.LeaderElection, "nodes", opts.EnableNodes)
	ctx := ctrl.SetupSignalHandler()
	start := time.Now()
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("manager stopped: %w", err)
	}
	logger.Info("Provider stopped", "uptime", time.Since(start).Round(time.Second).String())
	return nil
}
