package controllers_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/internal/manager"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/test/envtestenv"
)

// The suite runs the real reconciler in a real manager against a real
// kube-apiserver and etcd (built by hack/build-k8s-binaries.sh), and reads
// through k8sClient, which bypasses the manager's cache.
var (
	testEnv   *envtestenv.Env
	cfg       *rest.Config
	k8sClient client.Client
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
	var err error
	testEnv, err = envtestenv.Start()
	Expect(err).NotTo(HaveOccurred())
	cfg, k8sClient = testEnv.Config, testEnv.Client

	logger, _ := logging.New(logging.Options{Verbosity: 1, Output: io.MultiWriter(GinkgoWriter, managerLogs)})
	ctrl.SetLogger(logger)
	opts := manager.DefaultOptions()
	opts.Namespace = managerNamespace
	opts.EnableNodes = false
	opts.ClientOptions = func(c *flightctl.Config) {
		c.Timeout = 5 * time.Second
		c.Retry.MaxAttempts = 1
	}
	opts.MetricsAddr, opts.ProbeAddr = "0", "0"
	mgr, err := manager.New(cfg, opts, logger)
	Expect(err).NotTo(HaveOccurred())

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
	Expect(testEnv.Stop()).To(Succeed())
})
