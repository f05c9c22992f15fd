// Package controllers holds the FleetBinding reconciler: it validates a
// binding, connects to Flightctl with the binding's credentials, keeps the
// device summary in status, and asks the NodeManager to run the binding's
// virtual node.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/connection"
	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
)

// NodeManager runs the virtual node of each binding. The FleetBinding
// reconciler decides when a node should run; the NodeManager owns how.
type NodeManager interface {
	// Ensure starts the binding's node, or restarts it when its inputs
	// changed, and reports how it is doing. It must be cheap when nothing
	// changed: it is called on every reconcile.
	Ensure(ctx context.Context, req nodeapi.Request) (nodeapi.Report, error)
	// Remove stops the binding's node, deletes the Node object and removes
	// the binding's applications from its devices. It is called before the
	// finalizer is released and must be safe to repeat.
	Remove(ctx context.Context, binding client.ObjectKey) error
}

// Shard limits a replica to its share of the bindings (sharded mode).
type Shard interface {
	// Hold reports whether this replica holds the binding now, so runs
	// its node and writes its status; when not, retry says when to ask
	// again (0: Triggers will bring the binding back).
	Hold(key client.ObjectKey) (held bool, retry time.Duration)
	// Name is this replica's name, written to status.shard.
	Name() string
	// Triggers brings back bindings this replica gained or lost.
	Triggers() <-chan event.GenericEvent
}

// notMineResync looks again at a binding another replica runs, in case a
// trigger was missed.
const notMineResync = time.Minute

// FleetBindingReconciler reconciles FleetBinding objects.
type FleetBindingReconciler struct {
	// Client is the manager's cached client.
	Client client.Client
	// APIReader reads without the cache (Secrets, the settings ConfigMap).
	APIReader client.Reader
	// Scheme is the manager's scheme.
	Scheme *runtime.Scheme
	// Recorder emits Kubernetes events on bindings.
	Recorder events.EventRecorder
	// Connections builds Flightctl clients from credentials Secrets.
	Connections *connection.Builder
	// Nodes runs the virtual nodes.
	Nodes NodeManager
	// Namespace holds the vk-flightctl-config ConfigMap.
	Namespace string
	// Triggers, when set, asks for an immediate reconcile of a binding
	// (the NodeManager sends one when a device disconnects or returns, so
	// the reconnection timer is persisted in status promptly).
	Triggers <-chan event.GenericEvent
	// Shard, when set (sharded mode), skips the bindings this replica
	// does not hold: another replica reconciles them.
	Shard Shard
	// ProbeInventory lists devices to fill status when the NodeManager has
	// no inventory yet; tests and the NodeManager may share one.
	ProbeInventory func(ctx context.Context, b *vkv1.FleetBinding, c *connection.Resolved) (*nodeapi.Inventory, error)
}

// scope carries what the steps of one reconcile found. Steps fill it; they
// signal failure only through their returned error.
type scope struct {
	binding  *vkv1.FleetBinding
	settings settings.Effective
	conn     *connection.Resolved
	report   nodeapi.Report
	// failure is the step failure that ended the reconcile, when one did.
	failure *connection.Error
	// nodesEnabled is false when the manager runs without virtual nodes.
	nodesEnabled bool
}

// problem is what keeps the binding from working: the failure that ended
// the reconcile or, when every step passed, the last Flightctl call's
// error as the node (or the probe) saw it.
func (s *scope) problem() *connection.Error {
	if s.failure != nil {
		return s.failure
	}
	if s.report.FlightctlError != nil {
		url := ""
		if s.conn != nil {
			url = s.conn.URL
		}
		return connection.Classify(s.report.FlightctlError, url)
	}
	return nil
}

// step is one phase of a reconcile. A *connection.Error means the binding
// cannot go further as it is (it becomes the condition reason, and the
// periodic resync retries); any other error is returned to
// controller-runtime, which retries with backoff.
type step func(context.Context, *scope) (reconcile.Result, error)

// +kubebuilder:rbac:groups=vk.flightctl.io,resources=fleetbindings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=vk.flightctl.io,resources=fleetbindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vk.flightctl.io,resources=fleetbindings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create,resourceNames=vk-flightctl-provider
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile moves one FleetBinding towards its spec.
func (r *FleetBindingReconciler) Reconcile(ctx context.Context, req reconcile.Request) (result reconcile.Result, retErr error) {
	logger := log.FromContext(ctx).WithValues("fleetbinding", req.NamespacedName)
	ctx = log.IntoContext(ctx, logger)

	binding := &vkv1.FleetBinding{}
	if err := r.Client.Get(ctx, req.NamespacedName, binding); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	logger = logger.WithValues("fleet", binding.Spec.Fleet)
	ctx = log.IntoContext(ctx, logger)
	if r.Shard != nil {
		if held, retry := r.Shard.Hold(req.NamespacedName); !held {
			if retry == 0 {
				retry = notMineResync
			}
			return reconcile.Result{RequeueAfter: retry}, nil
		}
	}

	if !binding.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, binding)
	}
	// Adding the finalizer is its own write so no node ever runs without
	// the finalizer that will clean it up. The update does not change the
	// generation, so the watch filters it out: requeue explicitly.
	if controllerutil.AddFinalizer(binding, vkv1.FleetBindingFinalizer) {
		return reconcile.Result{RequeueAfter: time.Millisecond}, r.Client.Update(ctx, binding)
	}

	base := binding.DeepCopy()
	s := &scope{binding: binding, nodesEnabled: r.Nodes != nil}
	defer func() {
		if err := r.patchStatus(ctx, base, s); err != nil && retErr == nil {
			retErr = err
		}
	}()

	for _, step := range []step{
		r.resolveSettings,
		r.checkSelector,
		r.checkNodeName,
		r.connect,
		r.reconcileNode,
	} {
		res, err := step(ctx, s)
		if failure, ok := connection.AsError(err); ok {
			s.failure = failure
			return r.reconcileInvalid(ctx, s)
		}
		if err != nil || !res.IsZero() {
			return res, err
		}
	}
	return reconcile.Result{RequeueAfter: resyncAfter(s)}, nil
}

// reconcileInvalid stops the node of a binding that cannot work as it is
// (bad configuration, a node name another binding holds), so a broken
// Secret never leaves a node that nobody updates. Transient trouble keeps
// the node: it reports and recovers on its own.
func (r *FleetBindingReconciler) reconcileInvalid(ctx context.Context, s *scope) (reconcile.Result, error) {
	if r.Nodes != nil && (s.failure.Reason == vkv1.ReasonNodeNameConflict || !s.failure.Transient) {
		if err := r.Nodes.Remove(ctx, client.ObjectKeyFromObject(s.binding)); err != nil {
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{RequeueAfter: resyncAfter(s)}, nil
}

// resolveSettings folds the ConfigMap defaults and the spec together. A bad
// ConfigMap is reported but does not stop the binding: built-in defaults
// apply to the keys that failed.
func (r *FleetBindingReconciler) resolveSettings(ctx context.Context, s *scope) (reconcile.Result, error) {
	defaults, err := settings.Load(ctx, r.APIReader, r.Namespace)
	if err != nil {
		log.FromContext(ctx).Error(err, "Using built-in defaults for invalid settings")
		r.Recorder.Eventf(s.binding, nil, corev1.EventTypeWarning, "InvalidSettings", "Reconcile", "%v", err)
	}
	s.settings = settings.For(s.binding, defaults)
	return reconcile.Result{}, nil
}

// checkSelector refuses a device selector Flightctl would reject.
func (r *FleetBindingReconciler) checkSelector(_ context.Context, s *scope) (reconcile.Result, error) {
	if _, err := labels.Parse(s.binding.EffectiveDeviceSelector()); err != nil {
		return reconcile.Result{}, &connection.Error{Reason: vkv1.ReasonInvalidSelector, Message: fmt.Sprintf(
			"spec.deviceSelector %q is not a valid label selector: %v; use Kubernetes syntax such as fleet=edge-fleet-1,site in (a,b)",
			s.binding.EffectiveDeviceSelector(), err)}
	}
	return reconcile.Result{}, nil
}

// checkNodeName refuses to run a second node under a name another binding
// already uses; the older binding keeps it.
func (r *FleetBindingReconciler) checkNodeName(ctx context.Context, s *scope) (reconcile.Result, error) {
	var all vkv1.FleetBindingList
	if err := r.Client.List(ctx, &all); err != nil {
		return reconcile.Result{}, err
	}
	me := s.binding
	for i := range all.Items {
		other := &all.Items[i]
		if other.UID == me.UID || !other.DeletionTimestamp.IsZero() || other.EffectiveNodeName() != me.EffectiveNodeName() {
			continue
		}
		if olderThan(other, me) {
			return reconcile.Result{}, &connection.Error{Reason: vkv1.ReasonNodeNameConflict, Message: fmt.Sprintf(
				"node %s is already registered by FleetBinding %s/%s; set spec.nodeName to a different name",
				me.EffectiveNodeName(), other.Namespace, other.Name)}
		}
	}
	return reconcile.Result{}, nil
}

func olderThan(a, b *vkv1.FleetBinding) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// connect resolves the credentials Secret into a client.
func (r *FleetBindingReconciler) connect(ctx context.Context, s *scope) (reconcile.Result, error) {
	conn, err := r.Connections.Resolve(ctx, s.binding)
	if err != nil {
		return reconcile.Result{}, connection.Classify(err, "")
	}
	s.conn = conn
	return reconcile.Result{}, nil
}

// reconcileNode runs the binding's node and collects its report. Flightctl
// errors the node saw are part of the report, not a failure of this step:
// the node keeps running and recovers when Flightctl does.
func (r *FleetBindingReconciler) reconcileNode(ctx context.Context, s *scope) (reconcile.Result, error) {
	if r.Nodes != nil {
		report, err := r.Nodes.Ensure(ctx, nodeapi.Request{Binding: s.binding, Connection: s.conn, Settings: s.settings})
		if err != nil {
			s.report = nodeapi.Report{Message: err.Error()}
			return reconcile.Result{}, err
		}
		s.report = report
	}
	// Without an inventory from the node (not started yet, or no
	// NodeManager), probe Flightctl directly so status and the
	// FlightctlConnected condition are still true to life.
	if s.report.Inventory == nil && r.ProbeInventory != nil {
		inv, err := r.ProbeInventory(ctx, s.binding, s.conn)
		if err != nil {
			s.report.FlightctlError = err
		} else {
			s.report.Inventory = inv
		}
	}
	return reconcile.Result{}, nil
}

// resyncAfter keeps conditions fresh between events: bindings have no watch
// on Flightctl, so status would otherwise go stale.
func resyncAfter(s *scope) time.Duration {
	if p := s.problem(); p != nil {
		if p.Transient {
			return 15 * time.Second
		}
		return time.Minute
	}
	interval := 6 * s.settings.StatusPollInterval
	if interval < 10*time.Second {
		interval = 10 * time.Second
	}
	return interval
}

// reconcileDelete removes the node and the binding's applications, then
// releases the finalizer.
func (r *FleetBindingReconciler) reconcileDelete(ctx context.Context, b *vkv1.FleetBinding) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(b, vkv1.FleetBindingFinalizer) {
		return reconcile.Result{}, nil
	}
	if r.Nodes != nil {
		if err := r.Nodes.Remove(ctx, client.ObjectKeyFromObject(b)); err != nil {
			log.FromContext(ctx).Error(err, "Cleaning up the virtual node failed; will retry")
			return reconcile.Result{}, err
		}
	}
	r.Connections.Forget(client.ObjectKeyFromObject(b))
	controllerutil.RemoveFinalizer(b, vkv1.FleetBindingFinalizer)
	if err := r.Client.Update(ctx, b); err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	log.FromContext(ctx).Info("FleetBinding cleaned up", "node", b.EffectiveNodeName())
	return reconcile.Result{}, nil
}

// setCondition is meta.SetStatusCondition with the binding's generation.
func setCondition(b *vkv1.FleetBinding, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&b.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: b.Generation,
	})
}
