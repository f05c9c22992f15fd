package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	vklog "github.com/virtual-kubelet/virtual-kubelet/log"
	vkslog "github.com/virtual-kubelet/virtual-kubelet/log/slog"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/fleetwriter"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// runtimeConfig is what the Manager hands a new node.
type runtimeConfig struct {
	binding  *vkv1.FleetBinding
	settings settings.Effective
	flight   flightctlClient
	writer   *devicewriter.Writer
	// fleets writes the Flightctl Fleet's template (fleet-wide mode).
	fleets   *fleetwriter.Writer
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
	// marks are the devices the writer wrote lately (markingClient).
	marks *hotMarks
	// events is the node's reader of its connection's shared event feed;
	// nil gives the poller a cursor of its own.
	events eventSource
}

// Runtime is one binding's virtual node. It is the adapter virtual-kubelet
// talks to (PodLifecycleHandler, PodNotifier, NodeProvider) and composes
// the parts that do the work; it keeps no pod or device state itself:
//
//   - podStore: the pods' records and their lock (podstore.go)
//   - kubePods: the pod informer and virtual-kubelet's status callback
//   - poller: the device listing (poller.go)
//   - deployer: place, translate, write, retry (deployer.go, retry.go)
//   - remover: removals and binding clean-up (removal.go)
//   - statusMapper: device status to pod status (statusmapper.go)
//   - reconnector: reconnection timers (disconnect.go)
//   - orphanSweeper: applications whose pod is gone (orphans.go)
//   - fleetWide: pods written into a Flightctl Fleet's template (fleetwide.go)
//   - nodeObject: the Node and its status (nodeobject.go)
//   - statusLoop: the order they act in each poll (loop.go)
type Runtime struct {
	cfg      runtimeConfig
	nodeName string
	running  atomic.Bool

	ledger      *placement.Ledger
	store       *podStore
	kubePods    *kubePods
	poller      *poller
	node        *nodeObject
	reconnector *reconnector
	deployer    *deployer
	remover     *remover
	sweeper     *orphanSweeper
	fleetWide   *fleetWide
	loop        *statusLoop
}

func newRuntime(cfg runtimeConfig) *Runtime {
	b, fleet := cfg.binding, cfg.binding.Spec.Fleet
	rt := &Runtime{
		cfg:      cfg,
		nodeName: b.EffectiveNodeName(),
		ledger:   placement.NewLedger(),
		store:    newPodStore(),
		kubePods: &kubePods{},
		poller:   newPoller(cfg.flight, b, cfg.opts.Now, cfg.claimedElsewhere, timingFor(cfg.settings), cfg.marks, cfg.events),
	}
	if cfg.writer != nil {
		rt.poller.observe = cfg.writer.Observe
	}
	rt.node = &nodeObject{name: rt.nodeName, binding: b, opts: cfg.opts, poller: rt.poller, kube: cfg.kube, log: cfg.log}
	rt.reconnector = newReconnector(b.Status.DisconnectedDevices, cfg.settings.ReconnectTimeout)
	rt.reconnector.fleet, rt.reconnector.kube, rt.reconnector.recorder = fleet, cfg.kube, cfg.recorder
	rt.reconnector.log, rt.reconnector.now = cfg.log, cfg.opts.Now
	rt.deployer = &deployer{
		binding: b, store: rt.store, kubePods: rt.kubePods, poller: rt.poller, ledger: rt.ledger,
		writer: cfg.writer, flight: cfg.flight, reader: cfg.reader, recorder: cfg.recorder, log: cfg.log,
	}
	rt.remover = &remover{
		binding: b, store: rt.store, ledger: rt.ledger, poller: rt.poller, writer: cfg.writer, flight: cfg.flight,
		kube: cfg.kube, recorder: cfg.recorder, log: cfg.log,
	}
	rt.sweeper = &orphanSweeper{
		fleet: fleet, store: rt.store, kubePods: rt.kubePods, poller: rt.poller, writer: cfg.writer,
		log: cfg.log, expectedElsewhere: cfg.expectedElsewhere,
	}
	rt.fleetWide = newFleetWide(cfg, rt.kubePods, rt.poller, rt.remover.forceDelete)
	mapper := &statusMapper{store: rt.store, kubePods: rt.kubePods, poller: rt.poller, reconnector: rt.reconnector, recorder: cfg.recorder, now: cfg.opts.Now,
		deployDeadline: cfg.settings.DeployDeadline}
	rt.loop = &statusLoop{
		fleet: fleet, interval: cfg.settings.StatusPollInterval, poller: rt.poller, node: rt.node, store: rt.store,
		reconnector: rt.reconnector, mapper: mapper, deployer: rt.deployer, remover: rt.remover, sweeper: rt.sweeper,
		fleetWide: rt.fleetWide, trigger: cfg.trigger, log: cfg.log,
	}
	return rt
}

// NodeName is the node this runtime registers.
func (rt *Runtime) NodeName() string { return rt.nodeName }

// Report summarises the runtime for the FleetBinding's status.
func (rt *Runtime) Report() nodeapi.Report {
	running := rt.running.Load()
	fleet, _, pollErr := rt.poller.state()
	r := nodeapi.Report{
		Running:             running,
		FlightctlError:      pollErr,
		DisconnectedDevices: rt.reconnector.persisted(),
		Pods:                int32(rt.store.count() + rt.fleetWide.count()),
	}
	if fleet != nil {
		r.Inventory = nodeapi.InventoryOf(fleet)
	}
	if !running {
		r.Message = fmt.Sprintf("virtual node %s is starting", rt.nodeName)
	}
	return r
}

// Run registers the node and serves it until ctx ends.
func (rt *Runtime) Run(ctx context.Context) error {
	log := rt.cfg.log
	log.Info("Provider starting", "selector", rt.cfg.binding.EffectiveDeviceSelector(), "flightctlFleet", rt.cfg.binding.Spec.FlightctlFleet)
	// Poll once before registering so the node starts with real capacity;
	// if Flightctl is down, start with what status last recorded.
	if err := rt.poller.poll(ctx, nil); err != nil {
		log.Error(err, "First device listing failed; registering the node with the last known capacity")
	} else {
		log.Info("Connected to Flightctl API", "devices", len(rt.poller.current().Devices))
	}

	podCache := &podCache{}
	factory := informers.NewSharedInformerFactoryWithOptions(rt.cfg.kube, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = podFieldSelector(rt.nodeName) }),
		informers.WithTransform(podCache.transform))
	podInformer := factory.Core().V1().Pods()
	podCache.store = podInformer.Informer().GetStore()
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: rt.adoptStatus}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	rt.kubePods.setLister(podInformer.Lister())
	rt.rebuildLedger()

	pc, nc, err := rt.controllers(podInformer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// virtual-kubelet logs through its own interface, silently by
	// default: without this its failed pod status writes are invisible.
	ctx = vklog.WithLogger(ctx, vkslog.FromSlog(slog.New(logr.ToSlogHandler(log.WithName("virtual-kubelet")))))
	go func() {
		if err := pc.Run(ctx, rt.cfg.opts.PodSyncWorkers); err != nil && ctx.Err() == nil {
			log.Error(err, "Pod controller stopped")
		}
	}()
	select {
	case <-pc.Ready():
	case <-pc.Done():
		return pc.Err()
	case <-ctx.Done():
		return nil
	}
	go func() {
		if err := nc.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Node controller stopped")
		}
	}()
	select {
	case <-nc.Ready():
	case <-nc.Done():
		return nc.Err()
	case <-ctx.Done():
		return nil
	}
	if err := rt.node.syncSpec(ctx); err != nil {
		log.Error(err, "Setting node taints failed")
	}
	rt.running.Store(true)
	log.Info("Virtual node registered")
	rt.cfg.trigger()

	rt.loop.run(ctx)
	rt.running.Store(false)
	forgetGauges(rt.cfg.binding.Spec.Fleet)
	<-pc.Done()
	<-nc.Done()
	return nil
}

// controllers builds virtual-kubelet's pod and node controllers around rt.
func (rt *Runtime) controllers(podInformer coreinformers.PodInformer) (*node.PodController, *node.NodeController, error) {
	pc, err := node.NewPodController(node.PodControllerConfig{
		PodClient:                 rt.cfg.kube.CoreV1(),
		PodInformer:               podInformer,
		EventRecorder:             vkEventRecorder{rt.cfg.recorder},
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
		return nil, nil, fmt.Errorf("creating pod controller: %w", err)
	}
	nc, err := node.NewNodeController(rt, rt.node.build(), rt.cfg.kube.CoreV1().Nodes(),
		node.WithNodeEnableLeaseV1(nodeutil.NodeLeaseV1Client(rt.cfg.kube), node.DefaultLeaseDuration),
		node.WithNodeStatusUpdateErrorHandler(rt.node.onStatusError))
	if err != nil {
		return nil, nil, fmt.Errorf("creating node controller: %w", err)
	}
	return pc, nc, nil
}

// rebuildLedger restores which pod holds what on which device from the
// pods' flightctl.io/device annotations, so a restarted manager never
// places a pod twice and never overcommits.
func (rt *Runtime) rebuildLedger() {
	pods, ok := rt.kubePods.list()
	if !ok {
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
		rt.cfg.log.Info("Restored placements from pod annotations", "pods", len(as))
	}
}

// CreatePod places a new pod on a device and deploys it. Failures are kept
// for the status loop (see deployer.owe), so it never returns an error.
func (rt *Runtime) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	if rt.fleetWide.handles(pod) {
		rt.fleetWide.apply(ctx, pod)
		return nil
	}
	rt.deployer.apply(ctx, pod)
	return nil
}

// UpdatePod rewrites the pod's application when what runs changed.
func (rt *Runtime) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	if rt.fleetWide.handles(pod) {
		rt.fleetWide.apply(ctx, pod)
		return nil
	}
	rt.deployer.apply(ctx, pod)
	return nil
}

// DeletePod removes the pod's application from its device, then the pod.
func (rt *Runtime) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	if rt.fleetWide.handles(pod) {
		return rt.fleetWide.remove(ctx, pod)
	}
	return rt.remover.remove(ctx, pod)
}

// GetPod returns the pod as last handed over, with its current status.
func (rt *Runtime) GetPod(_ context.Context, namespace, name string) (*corev1.Pod, error) {
	p, ok := rt.store.pod(namespace, name)
	if !ok {
		p, ok = rt.fleetWide.pod(namespace, name)
	}
	if !ok {
		return nil, errdefs.NotFoundf("pod %s/%s is not on node %s", namespace, name, rt.nodeName)
	}
	return p, nil
}

// GetPodStatus returns the pod's current status.
func (rt *Runtime) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	p, err := rt.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &p.Status, nil
}

// GetPods returns every pod of this node.
func (rt *Runtime) GetPods(context.Context) ([]*corev1.Pod, error) {
	return append(rt.store.all(), rt.fleetWide.all()...), nil
}

// NotifyPods registers virtual-kubelet's pod status callback.
func (rt *Runtime) NotifyPods(_ context.Context, cb func(*corev1.Pod)) {
	rt.kubePods.setCallback(cb)
}

// Ping reports the provider healthy whenever the manager is: the lease must
// not depend on Flightctl, or a Flightctl outage would make Kubernetes evict
// the whole fleet. Flightctl reachability is a node condition instead.
func (rt *Runtime) Ping(ctx context.Context) error { return ctx.Err() }

// NotifyNodeStatus registers virtual-kubelet's node status callback.
func (rt *Runtime) NotifyNodeStatus(_ context.Context, cb func(*corev1.Node)) {
	rt.node.setCallback(cb)
}

// RemoveAllApplications removes every owned application from the binding's
// devices; used when the binding is deleted.
func (rt *Runtime) RemoveAllApplications(ctx context.Context) error {
	if rt.fleetWide.active() {
		return rt.fleetWide.removeAll(ctx)
	}
	return rt.remover.removeAll(ctx)
}

// adoptStatus hands the pod store each new version the informer caches,
// so a record whose status came back unchanged shares it (podStore.adoptStatus).
func (rt *Runtime) adoptStatus(_, obj any) {
	if pod, ok := obj.(*corev1.Pod); ok {
		rt.store.adoptStatus(pod)
	}
}

// podFieldSelector selects the pods of one node: each node's informer
// caches its own pods only.
func podFieldSelector(nodeName string) string { return "spec.nodeName=" + nodeName }

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

// placement looks a pod up in the node's records for the kubelet API.
func (rt *Runtime) placement(ns, name string) (nodeapi.Placement, bool) {
	st, ok := rt.store.lookup(ns, name)
	if !ok {
		return nodeapi.Placement{}, false
	}
	v := rt.store.view(st)
	p := nodeapi.Placement{
		Node:    rt.nodeName,
		App:     v.app,
		Compose: translate.Format(rt.cfg.binding.Spec.ApplicationFormat) == translate.FormatCompose,
	}
	if v.phase == phaseDeployed {
		p.Device = v.device
	}
	if v.pod != nil {
		for _, c := range v.pod.Spec.Containers {
			p.Containers = append(p.Containers, c.Name)
		}
	}
	if c, ok := rt.cfg.flight.(nodeapi.Console); ok {
		p.Console = c
	}
	return p, true
}
