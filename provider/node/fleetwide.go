package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/internal/logging"
	"github.com/vk-flightctl/vk-flightctl/provider/fleetwriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/placement"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

const (
	// fleetRemovalBound is how long a deleted fleet-wide pod waits for the
	// Fleet's devices to report its application removed before the pod is
	// removed anyway (a device that stays away cannot hold it forever).
	fleetRemovalBound = 2 * time.Minute
	// maxFailuresShown bounds the failing devices named in a pod's
	// FleetRollout condition, so a 1,000-device Fleet keeps it small.
	maxFailuresShown = 3
	// maxFailureEventsPerPoll bounds the FleetDeviceFailed events one pod
	// gets from one poll.
	maxFailureEventsPerPoll = 10
)

// fleetWide runs the node's fleet-wide pods (docs/fleets.md): on a binding
// with spec.flightctlFleet each one is an application in that Fleet's
// template, written by fleetwriter and rolled out by Flightctl; its status
// counts the Fleet's devices that run it. It also turns away the pods the
// node's mode cannot run (per-device pods on a Fleet's node, fleet-wide
// pods on a per-device node). It owns the records of those pods and their
// lock; per-device pods never reach it.
type fleetWide struct {
	binding  *vkv1.FleetBinding
	writer   *fleetwriter.Writer
	policy   json.RawMessage
	kubePods *kubePods
	poller   *poller
	reader   client.Reader
	recorder record.EventRecorder
	log      logr.Logger
	now      func() time.Time
	// forceDelete removes a terminating pod whose workload is gone.
	forceDelete func(*corev1.Pod)

	mu   sync.Mutex
	pods map[string]*fleetPod
}

// fleetPod is one pod's record.
type fleetPod struct {
	pod    *corev1.Pod
	app    string
	spec   *flightctl.ApplicationSpec
	digest string
	status corev1.PodStatus
	// settled pods (refused, failed translation) are never written.
	settled bool
	// owed is true while the pod's template write has to be retried.
	owed bool
	// noRoom is true while some device lacks room for it; apply runs
	// again after every poll.
	noRoom bool
	// removing is set once the pod was deleted and its application taken
	// out of the template; removeBy bounds the wait for the devices.
	removing    bool
	removalOwed bool
	removeBy    time.Time
	// reported holds the failure already reported per device, so each
	// failure gets one event.
	reported map[string]string
}

func newFleetWide(cfg runtimeConfig, kp *kubePods, p *poller, forceDelete func(*corev1.Pod)) *fleetWide {
	fw := &fleetWide{
		binding: cfg.binding, kubePods: kp, poller: p, reader: cfg.reader, recorder: cfg.recorder,
		log: cfg.log.WithName("fleetwide"), now: cfg.opts.Now, forceDelete: forceDelete, pods: map[string]*fleetPod{},
	}
	if cfg.binding.FleetWide() && cfg.fleets != nil {
		fw.writer = cfg.fleets
		fw.policy = fleetwriter.RolloutPolicyJSON(cfg.binding.Spec.RolloutPolicy)
	}
	if fw.now == nil {
		fw.now = time.Now
	}
	return fw
}

// handles says whether a pod is this part's: every pod of a Fleet's node,
// and fleet-wide pods anywhere (to turn them away from per-device nodes).
func (fw *fleetWide) handles(pod *corev1.Pod) bool {
	return fw.binding.FleetWide() || translate.IsFleetWide(pod)
}

// active says whether the node is in fleet-wide mode.
func (fw *fleetWide) active() bool { return fw.binding.FleetWide() }

// apply admits or updates a pod: refuse what the mode cannot run,
// translate, write the Fleet's template.
func (fw *fleetWide) apply(ctx context.Context, pod *corev1.Pod) {
	key := podKey(pod.Namespace, pod.Name)
	switch {
	case !fw.binding.FleetWide():
		fw.settle(key, pod, translate.PendingStatus(pod, vkv1.ReasonFleetWideWithoutFleet, fmt.Sprintf(
			"pod is fleet-wide (a DaemonSet's, or annotated %s: \"true\") but FleetBinding %s/%s has no spec.flightctlFleet; "+
				"fleet-wide pods run on the node of a FleetBinding that names a Flightctl Fleet (docs/fleets.md)",
			vkv1.AnnotationFleetWide, fw.binding.Namespace, fw.binding.Name)), vkv1.ReasonFleetWideWithoutFleet)
		return
	case !translate.IsFleetWide(pod):
		fw.settle(key, pod, translate.PendingStatus(pod, vkv1.ReasonPerDeviceOnFleetNode, fmt.Sprintf(
			"node %s stands for Flightctl Fleet %s, whose devices take only fleet-wide pods (a DaemonSet's, or annotated %s: \"true\"); "+
				"per-device pods need a FleetBinding without spec.flightctlFleet (docs/fleets.md)",
			fw.binding.EffectiveNodeName(), fw.binding.Spec.FlightctlFleet, vkv1.AnnotationFleetWide)), vkv1.ReasonPerDeviceOnFleetNode)
		return
	}
	app := translate.FleetAppName(pod)
	res, err := translate.ToApplication(pod, translate.Options{
		Format:   translate.Format(fw.binding.Spec.ApplicationFormat),
		Resolver: newAPIResolver(ctx, fw.reader),
		AppName:  app,
	})
	var unsupported *translate.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		fw.settle(key, pod, translate.FailedStatus(pod, vkv1.EventUnsupportedPodSpec, unsupported.Error()), vkv1.EventUnsupportedPodSpec)
		return
	case err != nil:
		fw.owe(key, pod, app, nil, fmt.Errorf("translating the pod: %w", err))
		return
	case len(res.VolumeFiles) > 0:
		msg := "fleet-wide pods cannot mount ConfigMap, Secret or downward API volumes yet: they would need files in the Fleet's template; use a per-device FleetBinding for this pod"
		fw.settle(key, pod, translate.FailedStatus(pod, vkv1.EventUnsupportedPodSpec, msg), vkv1.EventUnsupportedPodSpec)
		return
	}
	spec := res.Application
	if short := fw.roomShort(pod, app); short != "" {
		fw.waitForRoom(key, pod, app, short)
		return
	}
	fw.mu.Lock()
	rec := fw.pods[key]
	if rec == nil || rec.pod.UID != pod.UID {
		rec = &fleetPod{app: app, reported: map[string]string{}, status: translate.PendingStatus(pod, "", "waiting for its application to be written into the Flightctl Fleet's template")}
		fw.pods[key] = rec
	}
	rec.pod, rec.spec, rec.digest, rec.noRoom = pod, &spec, inventory.AppDigest(spec), false
	writer := fw.newestClaimant(app) == rec
	status := rec.status
	fw.mu.Unlock()
	fw.kubePods.notifyStatus(pod, status)
	if writer {
		fw.write(ctx, key, rec)
	}
}

// roomShort says why some online device of the Fleet cannot hold the pod
// ("" when all can). A fleet-wide pod runs on every device, so its
// requests count once per device: with the other fleet-wide
// applications' requests they must fit each device's allocatable.
func (fw *fleetWide) roomShort(pod *corev1.Pod, app string) string {
	want := placement.PodRequests(pod)
	fw.mu.Lock()
	taken := corev1.ResourceList{}
	counted := map[string]bool{app: true}
	for _, r := range fw.pods {
		if r.settled || r.removing || r.noRoom || r.spec == nil || counted[r.app] {
			continue
		}
		if c := fw.newestClaimant(r.app); c != nil {
			counted[r.app] = true
			addResources(taken, placement.PodRequests(c.pod))
		}
	}
	fw.mu.Unlock()
	for _, d := range fw.poller.current().Devices {
		if !d.Online {
			continue
		}
		for name, q := range want {
			alloc, ok := d.Allocatable[name]
			if !ok {
				continue
			}
			need := q.DeepCopy()
			if t, ok := taken[name]; ok {
				need.Add(t)
			}
			if need.Cmp(alloc) > 0 {
				used := taken[name]
				return fmt.Sprintf("device %s has %s %s allocatable, %s of it requested by other fleet-wide pods; this pod requests %s on every device of the Fleet",
					d.Name, alloc.String(), name, used.String(), q.String())
			}
		}
	}
	return ""
}

func addResources(sum, add corev1.ResourceList) {
	for name, q := range add {
		v := sum[name]
		v.Add(q)
		sum[name] = v
	}
}

// waitForRoom keeps a pod that does not fit every device Pending; apply
// runs again after each poll.
func (fw *fleetWide) waitForRoom(key string, pod *corev1.Pod, app, short string) {
	st := translate.PendingStatus(pod, vkv1.ReasonWaitingForDevice, "not written into the Flightctl Fleet's template: "+short)
	fw.mu.Lock()
	rec := fw.pods[key]
	if rec == nil || rec.pod.UID != pod.UID {
		rec = &fleetPod{app: app, reported: map[string]string{}}
		fw.pods[key] = rec
	}
	first := !rec.noRoom
	rec.pod, rec.noRoom, rec.status = pod, true, st
	fw.mu.Unlock()
	if first {
		fw.recorder.Event(pod, corev1.EventTypeWarning, vkv1.EventFailedScheduling, "Insufficient resources on the Fleet's devices: "+short)
	}
	fw.kubePods.notifyStatus(pod, st)
}

// newestClaimant is the newest live pod naming app: the one whose content
// the template carries (a DaemonSet's new pod replaces the old one's
// content while the old one still exists). Caller holds fw.mu.
func (fw *fleetWide) newestClaimant(app string) *fleetPod {
	var best *fleetPod
	for _, r := range fw.pods {
		if r.app != app || r.settled || r.removing || r.spec == nil {
			continue
		}
		if best == nil || best.pod.CreationTimestamp.Before(&r.pod.CreationTimestamp) ||
			best.pod.CreationTimestamp.Equal(&r.pod.CreationTimestamp) && best.pod.Name < r.pod.Name {
			best = r
		}
	}
	return best
}

// write puts the record's application into the Fleet's template.
func (fw *fleetWide) write(ctx context.Context, key string, rec *fleetPod) {
	fw.mu.Lock()
	pod, spec := rec.pod, *rec.spec
	fw.mu.Unlock()
	res, err := fw.writer.Apply(ctx, fw.binding.Spec.FlightctlFleet, fleetwriter.Change{
		Upsert: []flightctl.ApplicationSpec{spec}, RolloutPolicy: fw.policy,
	})
	if flightctl.IsInvalid(err) {
		fw.settle(key, pod, translate.FailedStatus(pod, vkv1.ReasonRejectedByFlightctl, err.Error()), vkv1.EventFleetTemplateFailed)
		return
	}
	if err != nil {
		fw.owe(key, pod, rec.app, rec.spec, err)
		return
	}
	fw.mu.Lock()
	rec.owed = false
	fw.mu.Unlock()
	if res.Changed {
		fw.log.Info("Fleet template updated", "pod", key, "application", rec.app)
		fw.recorder.Eventf(pod, corev1.EventTypeNormal, vkv1.EventFleetTemplateUpdated,
			"Wrote application %s into the template of Flightctl Fleet %s; Flightctl rolls it out to the Fleet's devices", rec.app, fw.binding.Spec.FlightctlFleet)
	}
	fw.poller.pollNow()
}

// settle records a pod that will not be written (refused, unsupported, or
// rejected by Flightctl), with a Warning event.
func (fw *fleetWide) settle(key string, pod *corev1.Pod, st corev1.PodStatus, reason string) {
	fw.mu.Lock()
	rec := fw.pods[key]
	first := rec == nil || rec.pod.UID != pod.UID || !rec.settled
	rec = &fleetPod{pod: pod, status: st, settled: true, reported: map[string]string{}}
	fw.pods[key] = rec
	fw.mu.Unlock()
	if first {
		msg := st.Message
		if msg == "" && len(st.ContainerStatuses) > 0 && st.ContainerStatuses[0].State.Waiting != nil {
			msg = st.ContainerStatuses[0].State.Waiting.Message
		}
		fw.recorder.Event(pod, corev1.EventTypeWarning, reason, msg)
	}
	fw.kubePods.notifyStatus(pod, st)
}

// owe keeps a failed write for the next poll.
func (fw *fleetWide) owe(key string, pod *corev1.Pod, app string, spec *flightctl.ApplicationSpec, err error) {
	fw.mu.Lock()
	rec := fw.pods[key]
	if rec == nil || rec.pod.UID != pod.UID {
		rec = &fleetPod{pod: pod, app: app, reported: map[string]string{}}
		fw.pods[key] = rec
	}
	first := !rec.owed
	rec.owed, rec.spec = true, spec
	if spec != nil {
		rec.digest = inventory.AppDigest(*spec)
	}
	rec.status = translate.PendingStatus(pod, vkv1.ReasonDeployRetrying, fmt.Sprintf("%v; retrying after the next successful Flightctl poll", err))
	st := rec.status
	fw.mu.Unlock()
	if first {
		logging.Warn(fw.log, "Writing the Fleet template failed; retrying after the next poll", "pod", key, "error", err.Error())
		fw.recorder.Eventf(pod, corev1.EventTypeWarning, vkv1.EventFleetTemplateFailed, "Writing Flightctl Fleet %s's template failed (retrying): %v", fw.binding.Spec.FlightctlFleet, err)
	}
	fw.kubePods.notifyStatus(pod, st)
}

// remove takes a deleted pod's application out of the template, unless a
// newer pod carries the same application; the pod itself goes once the
// devices report the application gone (sync), at most fleetRemovalBound
// later.
func (fw *fleetWide) remove(ctx context.Context, pod *corev1.Pod) error {
	key := podKey(pod.Namespace, pod.Name)
	fw.mu.Lock()
	rec := fw.pods[key]
	if rec != nil && rec.pod.UID != pod.UID {
		rec = nil
	}
	if rec == nil || rec.settled || rec.spec == nil {
		// Never written: nothing to take out of the template.
		delete(fw.pods, key)
		fw.mu.Unlock()
		fw.gone(pod)
		return nil
	}
	if rec.removing && !rec.removalOwed {
		// virtual-kubelet hands a deleted pod over again; the removal is
		// written and sync waits for the devices.
		fw.mu.Unlock()
		return nil
	}
	rec.removing, rec.pod = true, pod
	if rec.removeBy.IsZero() {
		rec.removeBy = fw.now().Add(fleetRemovalBound)
	}
	shared := fw.newestClaimant(rec.app) != nil
	if shared {
		delete(fw.pods, key)
	}
	fw.mu.Unlock()
	if shared {
		// A newer pod of the DaemonSet carries the application: the
		// template keeps it and this pod simply goes.
		fw.gone(pod)
		return nil
	}
	if _, err := fw.writer.Apply(ctx, fw.binding.Spec.FlightctlFleet, fleetwriter.Change{Remove: []string{rec.app}}); err != nil {
		fw.mu.Lock()
		rec.removalOwed = true
		fw.mu.Unlock()
		return err
	}
	fw.mu.Lock()
	rec.removalOwed = false
	fw.mu.Unlock()
	fw.log.Info("Application removed from the Fleet template", "pod", key, "application", rec.app)
	fw.poller.pollNow()
	return nil
}

// gone removes a terminating pod from Kubernetes.
func (fw *fleetWide) gone(pod *corev1.Pod) {
	if pod.DeletionTimestamp != nil && fw.forceDelete != nil {
		go fw.forceDelete(pod)
	}
}

// sync is the fleet-wide step of a poll: retry owed writes and removals,
// then map the listing to every pod's status and events.
func (fw *fleetWide) sync(ctx context.Context) {
	if !fw.active() {
		return
	}
	type job struct {
		key string
		rec *fleetPod
	}
	var writes, removals []job
	var waiting []*corev1.Pod
	fw.mu.Lock()
	for key, rec := range fw.pods {
		switch {
		case rec.noRoom:
			waiting = append(waiting, rec.pod)
		case rec.removing && rec.removalOwed:
			removals = append(removals, job{key, rec})
		case rec.owed && rec.spec != nil && fw.newestClaimant(rec.app) == rec:
			writes = append(writes, job{key, rec})
		}
	}
	fw.mu.Unlock()
	for _, j := range writes {
		fw.write(ctx, j.key, j.rec)
	}
	for _, j := range removals {
		_ = fw.remove(ctx, j.rec.pod)
	}
	for _, p := range waiting {
		fw.apply(ctx, p)
	}

	devs := fw.poller.current().Devices
	fw.mu.Lock()
	recs := make([]job, 0, len(fw.pods))
	for key, rec := range fw.pods {
		if !rec.settled && rec.spec != nil && !rec.owed && !rec.noRoom {
			recs = append(recs, job{key, rec})
		}
	}
	fw.mu.Unlock()
	for _, j := range recs {
		fw.syncPod(j.key, j.rec, devs)
	}
}

// syncPod maps the listing to one pod.
func (fw *fleetWide) syncPod(key string, rec *fleetPod, devs []inventory.Device) {
	fw.mu.Lock()
	pod, app, digest, removing, removeBy, owed := rec.pod, rec.app, rec.digest, rec.removing, rec.removeBy, rec.removalOwed
	fw.mu.Unlock()
	if removing && owed {
		// The template still has the application: the pod waits for the
		// removal to be written (retried above), however long it takes.
		return
	}
	if removing {
		left := devicesWithApp(devs, app)
		if left == 0 || fw.now().After(removeBy) {
			if left > 0 {
				logging.Warn(fw.log, "Devices still report the removed application; removing the pod anyway", "pod", key, "application", app, "devices", left)
			}
			fw.recorder.Eventf(pod, corev1.EventTypeNormal, vkv1.EventWorkloadRemoved, "Removed application %s from Flightctl Fleet %s", app, fw.binding.Spec.FlightctlFleet)
			fw.mu.Lock()
			if fw.pods[key] == rec {
				delete(fw.pods, key)
			}
			fw.mu.Unlock()
			fw.gone(pod)
		}
		return
	}
	r, failures := rolloutOf(devs, app, digest)
	st := translate.FleetPodStatus(pod, r, fw.now())
	var events []translate.DeviceFailure
	fw.mu.Lock()
	changed := !apiequality.Semantic.DeepEqual(rec.status, st)
	rec.status = st
	for _, f := range failures {
		if rec.reported[f.Device] != f.Message && len(events) < maxFailureEventsPerPoll {
			rec.reported[f.Device] = f.Message
			events = append(events, f)
		}
	}
	for dev := range rec.reported {
		if !failed(failures, dev) {
			delete(rec.reported, dev)
		}
	}
	fw.mu.Unlock()
	for _, f := range events {
		fw.recorder.Eventf(pod, corev1.EventTypeWarning, vkv1.EventFleetDeviceFailed, "Device %s: %s", f.Device, f.Message)
	}
	if changed {
		fw.kubePods.notifyStatus(pod, st)
	}
}

func failed(fs []translate.DeviceFailure, dev string) bool {
	for _, f := range fs {
		if f.Device == dev {
			return true
		}
	}
	return false
}

// rolloutOf counts, over the Fleet's devices, those that run the written
// version (digest) of app. It returns every failing device, in name order;
// the rollout names the first few.
func rolloutOf(devs []inventory.Device, app, digest string) (translate.FleetRollout, []translate.DeviceFailure) {
	var r translate.FleetRollout
	var failures []translate.DeviceFailure
	for i := range devs {
		d := &devs[i]
		if !d.Online {
			r.Offline++
			continue
		}
		r.Target++
		if d.SpecDigests[app] != digest {
			// Flightctl has not given this device the version yet (a
			// later batch, or the template is not rendered yet).
			continue
		}
		applied := d.AppliedVersion >= d.RenderedVersion
		st, reported := d.Applications[app]
		switch {
		case !applied && d.UpdateFailure != "":
			failures = append(failures, translate.DeviceFailure{Device: d.Name, Message: d.UpdateFailure})
		case !applied || !reported:
		case st.Status == flightctl.ApplicationStatusRunning:
			r.Running++
		case st.Status == flightctl.ApplicationStatusError:
			failures = append(failures, translate.DeviceFailure{Device: d.Name, Message: fmt.Sprintf("application %s reports %s (ready %s)", app, st.Status, st.Ready)})
		}
	}
	sort.Slice(failures, func(i, j int) bool { return failures[i].Device < failures[j].Device })
	r.Failed = len(failures)
	r.Failures = failures[:min(len(failures), maxFailuresShown)]
	return r, failures
}

// devicesWithApp counts the online devices whose spec or status still has
// app.
func devicesWithApp(devs []inventory.Device, app string) int {
	n := 0
	for i := range devs {
		d := &devs[i]
		if !d.Online {
			continue
		}
		_, inSpec := d.SpecDigests[app]
		_, inStatus := d.Applications[app]
		if inSpec || inStatus {
			n++
		}
	}
	return n
}

// pod returns a record's pod with its current status.
func (fw *fleetWide) pod(ns, name string) (*corev1.Pod, bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	rec := fw.pods[podKey(ns, name)]
	if rec == nil {
		return nil, false
	}
	return podWithStatus(rec.pod, rec.status), true
}

// all returns every record's pod with its status.
func (fw *fleetWide) all() []*corev1.Pod {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(fw.pods))
	for _, rec := range fw.pods {
		out = append(out, podWithStatus(rec.pod, rec.status))
	}
	return out
}

func (fw *fleetWide) count() int {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return len(fw.pods)
}

// removeAll takes every owned application out of the Fleet's template;
// the binding is being deleted.
func (fw *fleetWide) removeAll(ctx context.Context) error {
	if fw.writer == nil {
		return nil
	}
	_, err := fw.writer.Apply(ctx, fw.binding.Spec.FlightctlFleet, fleetwriter.Change{RemoveAllOwned: true})
	return err
}

func podWithStatus(pod *corev1.Pod, st corev1.PodStatus) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: pod.TypeMeta, ObjectMeta: *pod.ObjectMeta.DeepCopy(), Spec: pod.Spec}
	p.Status = *st.DeepCopy()
	return p
}
