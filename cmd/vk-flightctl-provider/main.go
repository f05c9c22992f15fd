// Command vk-flightctl-provider is the vk-flightctl manager: it reconciles
// FleetBindings and runs one virtual-kubelet node per binding.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

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
	flag.BoolVar(&opts.MetricsSecure, "metrics-secure", opts.MetricsSecure, "serve /metrics over HTTPS, authenticated and authorized through the API server (false: plain HTTP, for loopback-only setups)")
	flag.StringVar(&opts.ProbeAddr, "health-probe-bind-address", opts.ProbeAddr, "address of the /healthz and /readyz endpoints")
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", opts.PprofAddr, "loopback address of the net/http/pprof endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; empty (default) disables profiling")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection, "elect a leader so only one replica registers nodes and writes to Flightctl")
	flag.StringVar(&opts.LeaderElectionID, "leader-election-id", opts.LeaderElectionID, "name of the leader election Lease")
	flag.DurationVar(&opts.LeaseDuration, "leader-elect-lease-duration", opts.LeaseDuration, "how long a standby (or, with --sharding, the next owner of a binding) waits before taking over a holder that stopped renewing (0: 15s)")
	flag.DurationVar(&opts.RenewDeadline, "leader-elect-renew-deadline", opts.RenewDeadline, "how long a Lease holder keeps retrying to renew before it gives up and stops what the Lease guards (0: 10s)")
	flag.DurationVar(&opts.RetryPeriod, "leader-elect-retry-period", opts.RetryPeriod, "how often leader election (and, with --sharding, membership and rebalancing) acts (0: 2s)")
	flag.BoolVar(&opts.Sharding, "sharding", opts.Sharding, "active-active: spread FleetBindings over all replicas by rendezvous hashing, each binding's node fenced by its own Lease (--leader-elect is then ignored; see docs/sharding.md)")
	flag.StringVar(&opts.Replica, "replica-name", opts.Replica, "this replica's unique name in --sharding mode, shown in status.shard (default $POD_NAME, else the host name)")
	flag.StringVar(&opts.Namespace, "namespace", opts.Namespace, "namespace of the vk-flightctl-config ConfigMap and the leader Lease (default $POD_NAMESPACE, else default)")
	flag.StringVar(&opts.ServiceAccountName, "service-account-name", opts.ServiceAccountName, "the manager's own ServiceAccount in --namespace, whose tokens a binding with kubernetes-token-audience presents to Flightctl (default $POD_SERVICE_ACCOUNT, else vk-flightctl-provider)")
	flag.BoolVar(&opts.EnableNodes, "enable-nodes", opts.EnableNodes, "run virtual nodes (false: only validate bindings and report status)")
	flag.StringVar(&opts.KubeletListenAddr, "kubelet-listen-address", opts.KubeletListenAddr, "host:port of the TLS kubelet API all virtual nodes share; the host is advertised as the nodes' InternalIP (port 0: a free port)")
	flag.StringVar(&opts.KubeletCertFile, "kubelet-tls-cert-file", "", "kubelet API serving certificate (PEM); empty: see --kubelet-serving-certificate")
	flag.StringVar(&opts.KubeletServingCertificate, "kubelet-serving-certificate", opts.KubeletServingCertificate, "without --kubelet-tls-cert-file: csr (a kubernetes.io/kubelet-serving CertificateSigningRequest the manager approves for its own nodes and renews; self-signed until issued) or self-signed")
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

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes configuration (set KUBECONFIG or run in a cluster): %w", err)
	}
	mgr, err := manager.New(cfg, opts, logger)
	if err != nil {
		return err
	}
	logger.Info("Provider starting", "namespace", opts.Namespace, "leaderElection", opts.LeaderElection && !opts.Sharding, "sharding", opts.Sharding, "replica", opts.Replica, "nodes", opts.EnableNodes)
	ctx := ctrl.SetupSignalHandler()
	start := time.Now()
	if err := mgr.Start(ctx); err != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("manager stopped: %w", err)
	}
	logger.Info("Provider stopped", "uptime", time.Since(start).Round(time.Second).String())
	return nil
}
