// Package node runs one virtual-kubelet node per FleetBinding inside the
// manager process. A node is a virtual-kubelet NodeController (Node object,
// lease heartbeats) and PodController (pod lifecycle) around a Provider that
// places pods on Flightctl devices, writes them as applications and maps
// device status back to pod status.
//
// Many nodes in one process stay cheap: each node watches only its own pods
// (a field-selected informer), Secrets and ConfigMaps are read on demand
// when a pod is deployed instead of through cluster-wide informers, and one
// event broadcaster serves every node.
package node

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/fleetwriter"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// Manager runs the nodes of all bindings; the FleetBinding reconciler drives
// it through Ensure and Remove.
type Manager struct {
	kube        kubernetes.Interface
	reader      client.Reader
	log         logr.Logger
	opts        Options
	recorder    *recorderProvider
	broadcaster record.EventBroadcaster
	// unused holds ConfigMap, Secret and Service informers that
	// virtual-kubelet insists on but never reads, because env resolution is
	// done by the provider (SkipDownwardAPIResolution). They are never
	// started, so they cost no watch.
	unused informers.SharedInformerFactory
	// triggers asks the FleetBinding controller to reconcile a binding now,
	// e.g. when a device disconnects, so status is persisted promptly.
	triggers chan event.GenericEvent

	nodes *registry
	// feeds share one device event reader among the nodes of one
	// Flightctl connection.
	feeds *eventFeeds
}

// NewManager returns a Manager. Add it to the controller-runtime manager:
// it is a leader-elected Runnable that stops every node on shutdown.
func NewManager(kube kubernetes.Interface, reader client.Reader, scheme *runtime.Scheme, log logr.Logger, o Options) *Manager {
	if o.KubeletVersion == "" {
		o.KubeletVersion = "v1.37.2-vk-flightctl"
	}
	if o.KubeletPort == 0 {
		o.KubeletPort = 10250
	}
	if o.InternalIP == "" {
		o.InternalIP = "127.0.0.1"
	}
	if o.PodSyncWorkers <= 0 {
		o.PodSyncWorkers = DefaultPodSyncWorkers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := record.NewBroadcasterWithCorrelatorOptions(record.CorrelatorOptions{QPS: 50, BurstSize: 200})
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	unused := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace("vk-flightctl-never-watched"))
	return &Manager{
		kube:        kube,
		reader:      reader,
		log:         log,
		opts:        o,
		recorder:    &recorderProvider{b: b, scheme: scheme},
		broadcaster: b,
		unused:      unused,
		triggers:    make(chan event.GenericEvent, 64),
		nodes:       newRegistry(),
		feeds:       newEventFeeds(o.Now),
	}
}

// Start implements manager.Runnable: it waits for the manager to stop, then
// stops every node and the event broadcaster.
func (m *Manager) Start(ctx context.Context) error {
	<-ctx.Done()
	m.Shutdown()
	m.broadcaster.Shutdown()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader runs nodes and writes to Flightctl.
func (m *Manager) NeedLeaderElection() bool { return true }

type recorderProvider struct {
	b      record.EventBroadcaster
	scheme *runtime.Scheme
}

func (p *recorderProvider) GetEventRecorderFor(host string) record.EventRecorder {
	return p.b.NewRecorder(p.scheme, corev1.EventSource{Component: vkv1.EventComponent, Host: host})
}

// SetKubeletPort sets the kubelet API port nodes advertise; call it before
// the manager starts.
func (m *Manager) SetKubeletPort(port int32) { m.opts.KubeletPort = port }

// Triggers is a channel of bindings to reconcile now; the FleetBinding
// controller watches it.
func (m *Manager) Triggers() <-chan event.GenericEvent { return m.triggers }

// Ensure starts the binding's node or restarts it when its inputs changed.
func (m *Manager) Ensure(ctx context.Context, req nodeapi.Request) (nodeapi.Report, error) {
	key := types.NamespacedName{Namespace: req.Binding.Namespace, Name: req.Binding.Name}
	fp := fingerprint(req)
	h := m.nodes.get(key)
	if h != nil && h.fingerprint == fp {
		if h.rt.NodeName() == req.Binding.EffectiveNodeName() {
			return h.rt.Report(), nil
		}
	}
	if h != nil {
		m.log.Info("Restarting virtual node after a spec change", "node", h.rt.NodeName(), "fleetbinding", key.String())
		m.stop(h)
		if h.rt.NodeName() != req.Binding.EffectiveNodeName() {
			if err := m.deleteNode(ctx, h.rt.NodeName()); err != nil {
				return nodeapi.Report{}, err
			}
		}
	}
	rt, events := m.newRuntime(req)
	runCtx, cancel := context.WithCancel(context.Background())
	h = &runtimeHandle{rt: rt, fingerprint: fp, cancel: cancel, done: make(chan struct{})}
	m.nodes.put(key, h)
	go func() {
		defer close(h.done)
		if events != nil {
			defer events.close()
		}
		if err := rt.Run(runCtx); err != nil && runCtx.Err() == nil {
			m.log.Error(err, "Virtual node stopped", "node", rt.NodeName())
		}
	}()
	return rt.Report(), nil
}

// Remove stops the node, removes the binding's applications from its
// devices and deletes the Node object.
func (m *Manager) Remove(ctx context.Context, key client.ObjectKey) error {
	h := m.nodes.get(key)
	if h == nil {
		return nil
	}
	m.stop(h)
	if err := h.rt.RemoveAllApplications(ctx); err != nil {
		// Put the handle back so a retry finds the client and devices.
		return fmt.Errorf("removing applications of node %s: %w", h.rt.NodeName(), err)
	}
	if err := m.deleteNode(ctx, h.rt.NodeName()); err != nil {
		return err
	}
	m.nodes.drop(key, h)
	m.log.Info("Virtual node removed", "node", h.rt.NodeName())
	return nil
}

// Release stops the binding's node without touching its devices or its
// Node object, so that another manager replica can take the node over
// (sharded mode hands a binding over this way). It returns once the node
// has stopped; it is safe to repeat.
func (m *Manager) Release(key client.ObjectKey) {
	h := m.nodes.get(key)
	if h == nil {
		return
	}
	m.stop(h)
	m.nodes.drop(key, h)
	m.log.Info("Virtual node released to another replica", "node", h.rt.NodeName(), "fleetbinding", key.String())
}

// Shutdown stops every node without touching devices or Node objects: a
// restarted or newly elected manager takes them over.
func (m *Manager) Shutdown() {
	var wg sync.WaitGroup
	for _, h := range m.nodes.all() {
		wg.Go(func() { m.stop(h) })
	}
	wg.Wait()
}

func (m *Manager) stop(h *runtimeHandle) {
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		m.log.Info("Virtual node did not stop in 30s; continuing", "node", h.rt.NodeName())
	}
}

func (m *Manager) deleteNode(ctx context.Context, name string) error {
	err := m.kube.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", name, err)
	}
	return nil
}

func (m *Manager) trigger(b *vkv1.FleetBinding) {
	select {
	case m.triggers <- event.GenericEvent{Object: b}:
	default:
		// The controller resyncs periodically; dropping one nudge is fine.
	}
}

// newRuntime builds the binding's node and, when its connection has a
// fingerprint, its reader of that connection's shared event feed, which
// the caller closes when the node stops.
func (m *Manager) newRuntime(req nodeapi.Request) (*Runtime, *feedReader) {
	b := req.Binding.DeepCopy()
	c := req.Connection.Client
	marks := newHotMarks(hotHold(req.Settings), m.opts.Now)
	writer := devicewriter.New(markingClient{Client: c, hot: marks}, translate.IsOwnedAppName, m.log.WithName("devicewriter").WithValues("fleet", b.Spec.Fleet))
	var events eventSource
	var reader *feedReader
	if fp := req.Connection.Fingerprint; fp != "" {
		// A poll may take a read up to half its interval old, so the
		// nodes of one connection make about two reads per interval
		// between them rather than one each.
		reader = m.feeds.subscribe(fp, c, timingFor(req.Settings).slack)
		events = reader
	}
	return newRuntime(runtimeConfig{
		binding:  b,
		settings: req.Settings,
		flight:   c,
		writer:   writer,
		fleets:   fleetwriter.New(c, translate.IsOwnedAppName),
		kube:     m.kube,
		reader:   m.reader,
		recorder: m.recorder.GetEventRecorderFor(b.EffectiveNodeName()),
		unused:   m.unused,
		log:      m.log.WithValues("node", b.EffectiveNodeName(), "fleet", b.Spec.Fleet),
		opts:     m.opts,
		trigger:  func() { m.trigger(b) },
		expectedElsewhere: func() map[string]map[string]bool {
			return m.nodes.expectedExcept(b.UID)
		},
		claimedElsewhere: func() map[string]string {
			return m.nodes.claimedByOlder(b)
		},
		marks:  marks,
		events: events,
	}), reader
}

// fingerprint changes when anything that needs a node restart changes.
func fingerprint(req nodeapi.Request) string {
	b := req.Binding
	return fmt.Sprintf("%d/%s/%s/%s/%s/%s", b.Generation, req.Connection.Fingerprint, req.Settings.ReconnectTimeout, req.Settings.StatusPollInterval, req.Settings.DeployDeadline, req.Settings.FullResyncInterval)
}

// RBAC the virtual nodes need: their pods (status, which also carries the
// placement annotation and label, and removal after the workload stopped),
// their Node objects and leases, pod events, and reads of the ConfigMaps
// and Secrets pods reference.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups="",resources=nodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update

// PodNode returns the virtual node of a pod this manager serves; the
// kubelet API uses it to authorize a request against the right node.
func (m *Manager) PodNode(namespace, name string) (string, bool) {
	for _, h := range m.nodes.all() {
		if _, ok := h.rt.store.lookup(namespace, name); ok {
			return h.rt.NodeName(), true
		}
	}
	return "", false
}

// AllPods lists the pods of every node this manager serves.
func (m *Manager) AllPods(ctx context.Context) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	for _, h := range m.nodes.all() {
		pods, err := h.rt.GetPods(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, pods...)
	}
	return out, nil
}

// PodPlacement returns where a pod of this manager runs: its node, device,
// application, format and the node's console. The kubelet API uses it for
// logs and exec.
func (m *Manager) PodPlacement(namespace, name string) (nodeapi.Placement, bool) {
	for _, h := range m.nodes.all() {
		if p, ok := h.rt.placement(namespace, name); ok {
			return p, true
		}
	}
	return nodeapi.Placement{}, false
}

// NodeNames lists the virtual nodes this manager runs, sorted; the kubelet
// API's serving certificate names one of them and its approver accepts
// requests for them only.
func (m *Manager) NodeNames() []string {
	var out []string
	for _, h := range m.nodes.all() {
		out = append(out, h.rt.NodeName())
	}
	sort.Strings(out)
	return out
}

// vkEventRecorder is the recorder virtual-kubelet's pod controller gets.
// It drops the controller's Normal ProviderCreateSuccess,
// ProviderUpdateSuccess and ProviderDeleteSuccess events: this provider
// records what they would say in its own words (DeviceSelected, Replacing,
// WorkloadRemoved), and each event is one more API write per pod start
// and per delete, a sixth of a start's writes. The Failed ones pass.
type vkEventRecorder struct {
	record.EventRecorder
}

// vkSuccessReasons are virtual-kubelet's own success event reasons
// (node/pod.go of virtual-kubelet v1.14).
var vkSuccessReasons = map[string]bool{"ProviderCreateSuccess": true, "ProviderUpdateSuccess": true, "ProviderDeleteSuccess": true}

func (r vkEventRecorder) drop(eventtype, reason string) bool {
	return eventtype == corev1.EventTypeNormal && vkSuccessReasons[reason]
}

// Event implements record.EventRecorder.
func (r vkEventRecorder) Event(object runtime.Object, eventtype, reason, message string) {
	if !r.drop(eventtype, reason) {
		r.EventRecorder.Event(object, eventtype, reason, message)
	}
}

// Eventf implements record.EventRecorder.
func (r vkEventRecorder) Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if !r.drop(eventtype, reason) {
		r.EventRecorder.Eventf(object, eventtype, reason, messageFmt, args...)
	}
}

// AnnotatedEventf implements record.EventRecorder.
func (r vkEventRecorder) AnnotatedEventf(object runtime.Object, annotations map[string]string, eventtype, reason, messageFmt string, args ...any) {
	if !r.drop(eventtype, reason) {
		r.EventRecorder.AnnotatedEventf(object, annotations, eventtype, reason, messageFmt, args...)
	}
}
