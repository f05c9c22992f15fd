package node

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/nodeapi"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// forceDeleteTimeout bounds the API call that removes a terminated pod.
const forceDeleteTimeout = 30 * time.Second

// remover takes workloads off devices: a deleted pod's application (and
// then the pod, as a kubelet does), removals that failed, and every owned
// application when the binding goes away.
type remover struct {
	binding  *vkv1.FleetBinding
	store    *podStore
	ledger   *placement.Ledger
	poller   *poller
	writer   *devicewriter.Writer
	flight   flightctlClient
	kube     kubernetes.Interface
	recorder record.EventRecorder
	log      logr.Logger
}

// remove takes the pod's application off its device, then removes the pod
// from Kubernetes, so a deleted pod is gone in seconds rather than after
// its grace period.
func (r *remover) remove(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	if r.store.removedBefore(pod.UID) {
		// virtual-kubelet hands a deleted pod over again (e.g. once its
		// grace period is zero); its workload is already gone.
		return nil
	}
	device, app := pod.Annotations[vkv1.AnnotationDevice], translate.AppName(pod)
	st, _ := r.store.lookup(pod.Namespace, pod.Name)
	if st != nil {
		r.store.with(st, func(st *podState) {
			st.removed = true
			if st.device != "" {
				device = st.device
			}
			if st.app != "" {
				app = st.app
			}
		})
	}
	if device == "" {
		// Deleted before its first status write carried the record (e.g.
		// across a manager restart): the device spec still says where.
		device, _ = r.poller.current().Holder(app)
	}
	if device != "" {
		if _, err := r.writer.Apply(ctx, device, devicewriter.Change{Name: app}); err != nil {
			r.owe(key, st, pod, device, app, err)
			return err
		}
		r.log.Info("Workload removed", "pod", key, "device", device, "application", app)
		r.recorder.Eventf(pod, corev1.EventTypeNormal, vkv1.EventWorkloadRemoved, "Removed the workload from device %s", device)
	}
	r.ledger.Release(placement.PodKey(pod))
	r.store.markRemoved(pod.UID)
	r.store.forget(key, st)
	if pod.DeletionTimestamp != nil {
		go r.forceDelete(pod)
	}
	return nil
}

// owe keeps a failed removal for the status loop. virtual-kubelet retries
// too, but its backoff grows with each failure of an outage and gives up
// after a while; the status loop retries after each good poll so the pod
// does not stay Terminating long after Flightctl is back.
func (r *remover) owe(key string, st *podState, pod *corev1.Pod, device, app string, err error) {
	if cur, _ := r.store.lookup(pod.Namespace, pod.Name); st == nil || cur != st {
		st = &podState{device: device, app: app, removed: true}
		r.store.keep(key, st)
	}
	var first bool
	r.store.with(st, func(st *podState) {
		st.pod = pod.DeepCopy()
		first = !st.removalOwed
		st.removalOwed = true
	})
	if first {
		logging.Warn(r.log, "Removing the workload failed; retrying after the next successful Flightctl poll", "pod", key, "device", device, "error", err.Error())
	}
}

// retry removes again the workloads whose removal failed.
func (r *remover) retry(ctx context.Context) {
	var pods []*corev1.Pod
	r.store.each(func(st *podState) {
		if st.removed && st.removalOwed {
			pods = append(pods, st.pod)
		}
	})
	for _, p := range pods {
		if err := r.remove(ctx, p); err == nil {
			r.log.Info("Deferred workload removal succeeded", "pod", podKey(p.Namespace, p.Name))
		}
	}
}

// forceDelete removes a terminating pod whose workload is gone.
func (r *remover) forceDelete(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), forceDeleteTimeout)
	defer cancel()
	zero := int64(0)
	uid := pod.UID
	err := r.kube.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		r.log.Error(err, "Removing the terminated pod failed", "pod", podKey(pod.Namespace, pod.Name))
	}
}

// removeAll removes every owned application from the binding's devices;
// used when the binding is deleted. The listing is lean (names only): the
// writer reads each device it changes.
func (r *remover) removeAll(ctx context.Context) error {
	owned := map[string][]string{}
	err := r.flight.ForEachListedDevice(ctx, nodeapi.ListOptions(r.binding), nil, func(d *flightctl.ListedDevice) error {
		if d.Metadata.Owner != nil || d.Spec == nil {
			return nil
		}
		for _, a := range d.Spec.Applications {
			if translate.IsOwnedAppName(a.Name) {
				owned[d.Metadata.Name] = append(owned[d.Metadata.Name], a.Name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for device, names := range owned {
		for _, name := range names {
			if _, err := r.writer.Apply(ctx, device, devicewriter.Change{Name: name}); err != nil {
				return err
			}
		}
	}
	return nil
}
