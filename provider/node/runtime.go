package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/controllers"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
)

type runtimeConfig struct {
	binding  *vkv1.FleetBinding
	settings settings.Effective
	flight   flightctlClient
	writer   *devicewriter.Writer
	kube     kubernetes.Interface
	reader   client.Reader
	recorder record.EventRecorder
	unused   informers.SharedInformerFactory
	log      logr.Logger
	opts     Options
	trigger  func()
	// expectedElsewhere returns the applications other nodes of this
	// manager expect, by device, so the orphan sweep never removes a
	// workload another binding owns on a shared device.
	expectedElsewhere func() map[string]map[string]bool
	// claimedElsewhere returns devices older bindings of this manager
	// already use, with the binding's name; this binding leaves them alone.
	claimedElsewhere func() map[string]string
}

// Runtime is one binding's virtual node: it implements virtual-kubelet's
// PodLifecycleHandler, PodNotifier and NodeProvider.
type Runtime struct {
	cfg      runtimeConfig
	nodeName string
	invOpts  inventory.Options
	ledger   *placement.Ledger
	log      logr.Logger

	// kick asks the status loop to poll now (after a write).
	kick chan struct{}

	mu    sync.Mutex
	pods  map[string]*podState
	fleet *inventory.Fleet
	// listedFrom is when the listing behind fleet started: writes that
	// finished before it show in fleet.
	listedFrom time.Time
	// lastSweep is when the orphan sweep last ran (status loop only).
	lastSweep time.Time
	// removedUIDs remembers pods whose workload is already removed:
	// virtual-kubelet hands a deleted pod over more than once.
	removedUIDs *utilcache.LRUExpireCache
	pollErr     error
	running     bool
	podLister   corelisters.PodLister
	notifyPod   func(*corev1.Pod)
	notifyNode  func(*corev1.Node)
	lastNode    *corev1.Node
	disconnects *disconnectTracker
}

func newRuntime(cfg runtimeConfig) (*Runtime, error) {
	rt := &Runtime{
		cfg:      cfg,
		nodeName: cfg.binding.EffectiveNodeName(),
		invOpts:  inventory.OptionsFor(cfg.binding),
		ledger:   placement.NewLedger(),
		log:      cfg.log,
		kick:     make(chan struct{}, 1),
		pods:     map[string]*podState{},
		// Enough for a large node's mass deletion; entries expire anyway.
		removedUIDs: utilcache.NewLRUExpireCache(4096),
	}
	rt.disconnects = newDisconnectTracker(cfg.binding.Status.DisconnectedDevices, cfg.settings.ReconnectTimeout)
	return rt, nil
}

// NodeName is the node this runtime registers.
func (rt *Runtime) NodeName() string { return rt.nodeName }

// Report summarises the runtime for the FleetBinding's status.
func (rt *Runtime) Report() controllers.NodeReport {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r := controllers.NodeReport{
		Running:             rt.running,
		FlightctlError:      rt.pollErr,
		DisconnectedDevices: rt.disconnects.persisted(),
		Pods:                int32(len(rt.pods)),
	}
	if rt.fleet != nil {
		r.Inventory = controllers.InventoryFromFleet(rt.fleet)
	}
	if !rt.running {
		r.Message = fmt.Sprintf("virtual node %s is starting", rt.nodeName)
	}
	return r
}

// Run registers the node and serves it until ctx ends.
func (rt *Runtime) Run(ctx context.Context) error {
	rt.log.Info("Provider starting", "selector", rt.cfg.binding.EffectiveDeviceSelector())
	// Poll once before registering so the node starts with real capacity;
	// if Flightctl is down, start with what status last recorded.
	if err := rt.pollDevices(ctx); err != nil {
		rt.log.Error(err, "First device listing failed; registering the node with the last known capacity")
	} else {
		rt.log.Info("Connected to Flightctl API", "devices", len(rt.currentFleet().Devices))
	}

	factory := informers.NewSharedInformerFactoryWithOptions(rt.cfg.kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + rt.nodeName }),
		informers.WithTransform(stripManagedFields))
	podInformer := factory.Core().V1().Pods()
	podInformer.Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	rt.mu.Lock()
	rt.podLister = podInformer.Lister()
	rt.mu.Unlock()
	rt.rebuildLedger()

	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:                 rt.cfg.kube.CoreV1(),
		PodInformer:               podInformer,
		EventRecorder:             rt.cfg.recorder,
		Provider:                  rt,
		ConfigMapInformer:         rt.cfg.unused.Core().V1().ConfigMaps(),
		SecretInformer:            rt.cfg.unused.Core().V1().Secrets(),
		ServiceInformer:           rt.cfg.unused.Core().V1().Services(),
		SkipDownwardAPIResolution: true,
		// client-go's default controller limiter caps every queue at 10
		// items/s after a burst of 100, which made pod start-up serial at
		// ~10 pods/s. Per-item backoff still spaces out retries of a
		// failing pod; the API server's priority and fairness guards it.
		SyncPodsFromKubernetesRateLimiter:    podQueueLimiter(),
		DeletePodsFromKubernetesRateLimiter:  podQueueLimiter(),
		SyncPodStatusFromProviderRateLimiter: podQueueLimiter(),
	})
	if err != nil {
		return fmt.Errorf("creating pod controller: %w", err)
	}
	nc, err := node.NewNodeController(rt, rt.nodeObject(), rt.cfg.kube.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(nodeutil.NodeLeaseV1Client(rt.cfg.kube), node.DefaultLeaseDuration),
		node.WithNodeStatusUpdateErrorHandler(rt.onNodeStatusError))
	if err != nil {
		return fmt.Errorf("creating node controller: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = pc.Run(ctx, rt.cfg.opts.PodSyncWorkers) }()
	select {
	case <-pc.Ready():
	case <-pc.Done():
		return pc.Err()
	case <-ctx.Done():
		return nil
	}
	go func() { _ = nc.Run(ctx) }()
	select {
	case <-nc.Ready():
	case <-nc.Done():
		return nc.Err()
	case <-ctx.Done():
		return nil
	}
	if err := rt.syncNodeSpec(ctx); err != nil {
		rt.log.Error(err, "Setting node taints failed")
	}
	rt.mu.Lock()
	rt.running = true
	rt.mu.Unlock()
	rt.log.Info("Virtual node registered")
	rt.cfg.trigger()

	rt.statusLoop(ctx)
	rt.mu.Lock()
	rt.running = false
	rt.mu.Unlock()
	rt.forgetGauges()
	<-pc.Done()
	<-nc.Done()
	return nil
}

// stripManagedFields drops server-side apply bookkeeping from cached pods:
// nothing here reads it, and at 10,000 pods it is a large share of the
// manager's memory. Status updates sent from a stripped copy leave the
// stored managedFields alone (an empty list never resets them).
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// podQueueLimiter is per-item exponential backoff (5 ms to 1000 s, like
// client-go's default) without the shared 10/s bucket.
func podQueueLimiter() workqueue.TypedRateLimiter[any] {
	return workqueue.NewTypedItemExponentialFailureRateLimiter[any](5*time.Millisecond, 1000*time.Second)
}

// Ping reports the provider healthy whenever the manager is: the lease must
// not depend on Flightctl, or a Flightctl outage would make Kubernetes evict
// the whole fleet. Flightctl reachability is a node condition instead.
func (rt *Runtime) Ping(ctx context.Context) error { return ctx.Err() }

// NotifyNodeStatus registers virtual-kubelet's node status callback.
func (rt *Runtime) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	rt.mu.Lock()
	rt.notifyNode = cb
	rt.mu.Unlock()
}

// onNodeStatusError recreates the Node when someone deleted it.
func (rt *Runtime) onNodeStatusError(ctx context.Context, err error) error {
	rt.log.Error(err, "Updating node status failed; re-creating the node if it is gone")
	_, cerr := rt.cfg.kube.CoreV1().Nodes().Create(ctx, rt.nodeObject(), metav1.CreateOptions{})
	if cerr != nil {
		return err
	}
	return nil
}

// rebuildLedger restores which pod holds what on which device from the
// pods' flightctl.io/device annotations, so a restarted manager never
// places a pod twice and never overcommits.
func (rt *Runtime) rebuildLedger() {
	pods, err := rt.podLister.List(everything)
	if err != nil {
		return
	}
	var as []placement.Assignment
	for _, p := range pods {
		if a, ok := placement.AssignmentFromPod(p); ok {
			as = append(as, a)
		}
	}
	rt.ledger.Rebuild(as)
	if len(as) > 0 {
		rt.log.Info("Restored placements from pod annotations", "pods", len(as))
	}
}

func (rt *Runtime) currentFleet() *inventory.Fleet {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.fleet == nil {
		return &inventory.Fleet{}
	}
	return rt.fleet
}

// pollNow asks the status loop for an early poll.
func (rt *Runtime) pollNow() {
	select {
	case rt.kick <- struct{}{}:
	default:
	}
}

// statusLoop polls Flightctl and pushes node and pod status until ctx ends.
func (rt *Runtime) statusLoop(ctx context.Context) {
	interval := rt.cfg.settings.StatusPollInterval
	if interval <= 0 {
		interval = settings.DefaultStatusPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		rt.syncOnce(ctx)
		took := time.Since(start)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rt.kick:
			// A write asks for an early poll so the pod turns Running
			// soon. Waiting a little coalesces a burst of writes into one
			// poll, and waiting at least as long as the last poll took
			// keeps a large fleet's listing from running back to back.
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(minKickDelay, took)):
			}
		}
	}
}

// minKickDelay is the shortest wait between a write and the poll it asks
// for. Every pod start waits for that poll, so it is short; `make bench`
// showed the former 200 ms as a floor on start latency.
const minKickDelay = 50 * time.Millisecond

// syncOnce is one status poll: devices, node, pods, timers, orphans.
func (rt *Runtime) syncOnce(ctx context.Context) {
	start := time.Now()
	err := rt.pollDevices(ctx)
	rt.pushNodeStatus()
	if err != nil {
		// Pods keep their last known status while Flightctl is away.
		rt.log.Error(err, "Listing devices failed; pods keep their last known status")
		return
	}
	rt.trackConnectivity(ctx)
	rt.updatePodStatuses()
	rt.retryPods(ctx)
	if time.Since(rt.lastSweep) >= orphanSweepEvery {
		rt.removeOrphans(ctx)
		rt.lastSweep = time.Now()
	}
	rt.recordGauges()
	statusLoopDuration.WithLabelValues(rt.cfg.binding.Spec.Fleet).Observe(time.Since(start).Seconds())
}

// pollDevices lists the binding's devices page by page.
func (rt *Runtime) pollDevices(ctx context.Context) error {
	started := time.Now()
	devs, err := rt.cfg.flight.ListAllDevices(ctx, listOptions(rt.cfg.binding))
	if err != nil {
		rt.mu.Lock()
		rt.pollErr = err
		rt.mu.Unlock()
		return err
	}
	var claimed map[string]string
	if rt.cfg.claimedElsewhere != nil {
		claimed = rt.cfg.claimedElsewhere()
	}
	fleet := inventory.BuildExcluding(devs, rt.invOpts, rt.cfg.opts.Now(), claimed)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.pollErr = nil
	rt.fleet = fleet
	rt.listedFrom = started
	return nil
}

// deviceNames are the devices this node uses (claimed ones excluded).
func (rt *Runtime) deviceNames() []string {
	f := rt.currentFleet()
	out := make([]string, 0, len(f.Devices))
	for _, d := range f.Devices {
		out = append(out, d.Name)
	}
	return out
}
