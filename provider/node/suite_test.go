package node_test

import (
	"context"
	"runtime/pprof"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/envtestenv"
)

// The suite runs the whole manager, virtual nodes included, against a real
// kube-apiserver and etcd, with the Flightctl simulator over real HTTP.
// envtest has no scheduler or controller-manager, so pods name their node;
// Deployments are covered by the end-to-end suite.
var (
	testEnv   *envtestenv.Env
	cfg       *rest.Config
	k8sClient client.Client
	kube      kubernetes.Interface
	mgr       *runningManager
)

func TestNode(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Virtual node suite")
}

// runningManager is a manager that specs can stop and start again, to
// check that a restart places nothing twice and loses nothing.
type runningManager struct {
	cancel context.CancelFunc
	done   chan error
}

func startManager() *runningManager { return startManagerWith(nil) }

// startManagerWith starts a manager whose options mutate adjusts (leader
// election for the HA specs).
func startManagerWith(mutate func(*manager.Options)) *runningManager {
	logger, _ := logging.New(logging.Options{Verbosity: 0, Output: GinkgoWriter})
	ctrl.SetLogger(logger)
	opts := manager.DefaultOptions()
	opts.Namespace = "vk-system"
	// Managers may overlap (HA specs): let each kubelet API pick a port.
	opts.KubeletListenAddr = "127.0.0.1:0"
	opts.ClientOptions = func(c *flightctl.Config) {
		c.Timeout = 5 * time.Second
	}
	opts.MetricsAddr, opts.ProbeAddr = "0", "0"
	// Specs restart the manager in one process; controller names are
	// unique per manager, not per process.
	opts.SkipControllerNameValidation = true
	if mutate != nil {
		mutate(&opts)
	}
	m, err := manager.New(cfg, opts, logger)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	rm := &runningManager{cancel: cancel, done: make(chan error, 1)}
	go func() {
		defer GinkgoRecover()
		rm.done <- m.Start(ctx)
	}()
	return rm
}

func (m *runningManager) stop() {
	m.cancel()
	select {
	case err := <-m.done:
		Expect(err).NotTo(HaveOccurred())
	case <-time.After(60 * time.Second):
		// Show where it is stuck before failing.
		_ = pprof.Lookup("goroutine").WriteTo(GinkgoWriter, 1)
		Fail("the manager did not stop within 60s")
	}
}

var _ = BeforeSuite(func() {
	var err error
	testEnv, err = envtestenv.Start()
	Expect(err).NotTo(HaveOccurred())
	cfg, k8sClient, kube = testEnv.Config, testEnv.Client, testEnv.Kube
	mgr = startManager()
})

var _ = AfterSuite(func() {
	if mgr != nil {
		mgr.stop()
	}
	Expect(testEnv.Stop()).To(Succeed())
})
