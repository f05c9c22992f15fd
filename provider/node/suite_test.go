package node_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The suite runs the whole manager, virtual nodes included, against a real
// kube-apiserver and etcd, with the Flightctl simulator over real HTTP.
// envtest has no scheduler or controller-manager, so pods name their node;
// Deployments are covered by the end-to-end suite.
var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	kube      kubernetes.Interface
	scheme    = runtime.NewScheme()
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

// startManagerWith starts a manager whose controller-runtime options mutate
// adjusts (leader election for the HA specs).
func startManagerWith(mutate func(*ctrl.Options)) *runningManager {
	logger, _ := logging.New(logging.Options{Verbosity: 0, Output: GinkgoWriter})
	ctrl.SetLogger(logger)
	opts := manager.DefaultOptions()
	opts.Namespace = "vk-system"
	// Managers may overlap (HA specs): let each kubelet API pick a port.
	opts.KubeletListenAddr = "127.0.0.1:0"
	opts.ClientOptions = func(c *flightctl.Config) {
		c.Timeout = 5 * time.Second
	}
	skip := true
	mo := ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Specs restart the manager in one process; controller names are
		// unique per manager, not per process.
		Controller: config.Controller{SkipNameValidation: &skip},
	}
	if mutate != nil {
		mutate(&mo)
	}
	m, err := ctrl.NewManager(cfg, mo)
	Expect(err).NotTo(HaveOccurred())
	Expect(manager.Setup(m, opts, logger)).To(Succeed())
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
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS must point at etcd and kube-apiserver: run through `make test`")
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vkv1.AddToScheme(scheme))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	kube, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	mgr = startManager()
})

var _ = AfterSuite(func() {
	if mgr != nil {
		mgr.stop()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
