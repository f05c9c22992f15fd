package controllers_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The suite runs the real reconciler in a real manager against a real
// kube-apiserver and etcd (built by hack/build-k8s-binaries.sh), and reads
// through k8sClient, which bypasses the manager's cache.
var (
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	scheme    = runtime.NewScheme()
	cancelMgr context.CancelFunc
	mgrDone   chan error
)

const managerNamespace = "vk-system"

// managerLogs keeps every manager log line so specs can check that no
// secret ever reaches the logs.
var managerLogs = &syncBuffer{}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	Expect(os.Getenv("KUBEBUILDER_ASSETS")).NotTo(BeEmpty(),
		"KUBEBUILDER_ASSETS must point at etcd and kube-apiserver: run through `make test`, which builds them with hack/build-k8s-binaries.sh")
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vkv1.AddToScheme(scheme))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	logger, _ := logging.New(logging.Options{Verbosity: 1, Output: io.MultiWriter(GinkgoWriter, managerLogs)})
	ctrl.SetLogger(logger)
	opts := manager.DefaultOptions()
	opts.Namespace = managerNamespace
	opts.EnableNodes = false
	opts.ClientOptions = func(c *flightctl.Config) {
		c.Timeout = 5 * time.Second
		c.Retry.MaxAttempts = 1
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(manager.Setup(mgr, opts, logger)).To(Succeed())

	var ctx context.Context
	ctx, cancelMgr = context.WithCancel(context.Background())
	mgrDone = make(chan error, 1)
	go func() {
		defer GinkgoRecover()
		mgrDone <- mgr.Start(ctx)
	}()
})

var _ = AfterSuite(func() {
	if cancelMgr != nil {
		cancelMgr()
		Eventually(mgrDone, 30*time.Second).Should(Receive(BeNil()))
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
