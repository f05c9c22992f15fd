package node

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// orphanSweepEvery spaces out orphan sweeps. Orphans are rare (a pod
// deleted while the manager was down, a failed removal) and deletions
// remove their own workloads, while a sweep compares every pod of every
// node of the manager with every device: at 10,000 pods it was the largest
// share of a poll's CPU.
const orphanSweepEvery = 5 * time.Second

// orphanSweeper removes owned applications whose pod is gone, e.g. deleted
// while the manager was down, or rescheduled after a device timeout, so a
// device that comes back does not run a second copy. It also answers which
// applications this node expects where. lastSweep is touched by the status
// loop only.
type orphanSweeper struct {
	fleet    string
	store    *podStore
	kubePods *kubePods
	poller   *poller
	writer   *devicewriter.Writer
	log      logr.Logger
	// expectedElsewhere returns the applications other nodes of this
	// manager expect, by device, so the sweep never removes a workload
	// another binding owns on a shared device.
	expectedElsewhere func() map[string]map[string]bool
	lastSweep         time.Time
	// swept is the inventory version the last sweep saw; with nothing
	// listed again since, the devices' applications are what that sweep
	// already checked.
	swept uint64
}

// sweepIfDue sweeps when the last sweep is orphanSweepEvery old and the
// inventory changed or was listed in full since.
func (o *orphanSweeper) sweepIfDue(ctx context.Context) {
	v := o.poller.inventoryVersion()
	if time.Since(o.lastSweep) < orphanSweepEvery || (v == o.swept && !o.lastSweep.IsZero()) {
		return
	}
	if o.sweep(ctx) {
		o.swept = v
	}
	o.lastSweep = time.Now()
}

// sweep removes orphans; false when the pods are not known yet.
func (o *orphanSweeper) sweep(ctx context.Context) bool {
	expected := o.expected()
	if expected == nil {
		return false
	}
	if o.expectedElsewhere != nil {
		for dev, apps := range o.expectedElsewhere() {
			for app := range apps {
				if expected[dev] == nil {
					expected[dev] = map[string]bool{}
				}
				expected[dev][app] = true
			}
		}
	}
	for _, dev := range o.poller.current().Devices {
		for _, name := range dev.SpecApplications {
			if !translate.IsOwnedAppName(name) || expected[dev.Name][name] || expected[anyDevice][name] {
				continue
			}
			if _, err := o.writer.Apply(ctx, dev.Name, devicewriter.Change{Name: name}); err != nil {
				o.log.Error(err, "Removing an orphaned workload failed", "device", dev.Name, "application", name)
				continue
			}
			o.log.Info("Removed orphaned workload", "device", dev.Name, "application", name)
			orphansRemoved.WithLabelValues(o.fleet).Inc()
		}
	}
	return true
}

// anyDevice is the key of expected under which the applications of pods
// with no device record yet are kept: wherever such an application is, it
// is the pod's (device names are never empty).
const anyDevice = ""

// expected is every application this node should have, by device: the
// pods in the API server (their recorded device) plus those being deployed
// right now (whose record may not have reached the informer yet). A pod
// records its device with its first status write, after the device write,
// so a manager that stopped in between leaves a pod without a record whose
// application is on a device: it is expected on any device (anyDevice)
// until the pod is deployed again and finds it there.
// Nil means "not known yet", and nothing is removed.
func (o *orphanSweeper) expected() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(dev, app string) {
		if out[dev] == nil {
			out[dev] = map[string]bool{}
		}
		out[dev][app] = true
	}
	// Application names are a hash of the pod's name: reuse the ones
	// already computed rather than hash every pod on every sweep.
	known := map[types.UID]string{}
	o.store.each(func(st *podState) {
		if st.device == "" {
			return
		}
		app := st.app
		if app == "" {
			app = translate.AppName(st.pod)
		}
		known[st.pod.UID] = app
		add(st.device, app)
	})
	pods, ok := o.kubePods.list()
	if !ok {
		return nil
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		app, ok := known[p.UID]
		if !ok {
			app = translate.AppName(p)
		}
		add(p.Annotations[vkv1.AnnotationDevice], app)
	}
	return out
}
