package reliability

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
	"github.com/vk-flightctl/vk-flightctl/provider/translate"
)

// The Flightctl fleet the fleet-owned phase creates, and the label that
// puts a device into it.
const (
	takeoverFleet = "reliability-takeover"
	takeoverLabel = "reliability-takeover"
)

// takeoverTemplate is the fleet's device template: one application of its
// own (the one transcript 04 of a real Flightctl v1.2.0 used).
func takeoverTemplate() map[string]any {
	return map[string]any{"applications": []any{map[string]any{
		"name": "fleet-web", "appType": "compose",
		"inline": []any{map[string]any{
			"path":    "docker-compose.yaml",
			"content": "services:\n  web:\n    image: quay.io/flightctl-tests/alpine:v1\n    command: [\"sleep\",\"infinity\"]\n",
		}},
	}}}
}

// fleetTakeover hands the busiest device, a third into the churn, to a
// Flightctl fleet, as an administrator would: the fleet exists first, then
// the device gets the label its selector matches (takeOver).
//
// What the real server then does is recorded in the Flightctl v1.2.0
// transcripts in test/flightctlsim/testdata/transcripts (replayed against
// the simulator by TestTranscriptConformance): about a second after the
// label, its worker sets metadata.owner to "Fleet/<name>" and overwrites
// the device's whole spec with the fleet's template (03 -> 05: device-3
// created with an empty spec, then owned with the template's application;
// 30c -> 30d: a released device given its own application "mine", then
// re-adopted, "mine" gone and the template back). From then on every spec
// write by anyone else gets 409 "updating the resource is not allowed
// because it has an owner" (15, 16). So vk-flightctl's applications are
// gone from the device at once, with no write of ours; the simulator
// models this the same way (controller.go: reconcileOwner, rollout).
//
// Users need: the binding reports the device as unusable, no pod is placed
// there any more, and the pods it held are rescheduled onto other devices
// once the reconnect timeout expires (vk-flightctl treats an owned device
// like a gone one), with none of ours left on the device, in its spec or
// running per its agent. The system counts as healthy again at the
// takeover plus the reconnect timeout.
func (h *harness) fleetTakeover(ctx context.Context, r *phaseResult) (time.Time, error) {
	labelled, ownedAt, err := h.takeOver(ctx, r)
	if err != nil {
		return time.Time{}, err
	}
	if err := h.pause(ctx, time.Until(labelled.Add(h.mode.churn-h.mode.churn/3))); err != nil {
		return time.Time{}, err
	}
	// The pods it held are rescheduled once the reconnect timeout expired.
	return ownedAt.Add(h.mode.reconnectTimeout), nil
}

// briefTakeover is fleetTakeover undone before the reconnect timeout, as
// when an administrator labels the wrong device and corrects it at once.
// The fleet's rollout has replaced the device's spec meanwhile, so when it
// is released our applications are no longer there. The device was away
// for less than the reconnect timeout, so, as in the flapping phase, its
// pods must not be rescheduled: they must run on it again, which needs
// their applications written again. Healthy again at the release.
func (h *harness) briefTakeover(ctx context.Context, r *phaseResult) (time.Time, error) {
	_, ownedAt, err := h.takeOver(ctx, r)
	if err != nil {
		return time.Time{}, err
	}
	if err := h.pause(ctx, time.Until(ownedAt.Add(h.mode.reconnectTimeout/4))); err != nil {
		return time.Time{}, err
	}
	if err := h.release(ctx, r); err != nil {
		return time.Time{}, err
	}
	released := time.Now()
	r.note("released after %s (reconnect timeout %s)", released.Sub(ownedAt).Round(100*time.Millisecond), h.mode.reconnectTimeout)
	// The check on the agent's applications applies to an owned device.
	r.released, r.owned = r.owned, ""
	if err := h.pause(ctx, time.Second); err != nil {
		return time.Time{}, err
	}
	return released, nil
}

// takeOver hands the busiest device, a third into the churn, to the
// takeover fleet and waits until the server's worker made it owned and
// rolled the template out. The churn leaves the device's bare pods alone
// from then on; one of them is re-imaged while the device is owned (a
// write the server refuses).
func (h *harness) takeOver(ctx context.Context, r *phaseResult) (labelled, ownedAt time.Time, err error) {
	if err := h.pause(ctx, h.mode.churn/3); err != nil {
		return labelled, ownedAt, err
	}
	// The fleet exists before it selects anything, as when an
	// administrator creates it and then labels devices into it.
	if err := h.sim.createFleet(ctx, takeoverFleet, map[string]string{takeoverLabel: "yes"}, takeoverTemplate()); err != nil {
		return labelled, ownedAt, err
	}
	dev, apps, err := h.busiestDevice(ctx)
	if err != nil {
		return labelled, ownedAt, err
	}
	pods, err := h.kube.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return labelled, ownedAt, err
	}
	r.ownedPods = map[types.UID]string{}
	var on []string
	for _, p := range pods.Items {
		if p.Annotations[vkv1.AnnotationDevice] == dev && p.DeletionTimestamp == nil {
			r.ownedPods[p.UID] = p.Name
			on = append(on, p.Name)
			if p.Labels[appLabel] == bareApp {
				r.heldPods = append(r.heldPods, p.Name)
			}
		}
	}
	sort.Strings(on)
	sort.Strings(r.heldPods)
	// What happens to the device's bare pods must be the product's doing,
	// not the churn deleting them first.
	h.model.hold(r.heldPods)
	// A churn deletion chosen just before the hold may still land: let it,
	// and judge only the pods that are still there.
	if err := h.pause(ctx, time.Second); err != nil {
		return labelled, ownedAt, err
	}
	r.heldPods = h.keepPresent(ctx, r, r.heldPods)
	if err := h.sim.setDeviceLabel(ctx, dev, takeoverLabel, "yes"); err != nil {
		return labelled, ownedAt, err
	}
	labelled = time.Now()
	r.owned = dev
	if ownedAt, err = h.waitTakenOver(ctx, dev, 30*time.Second); err != nil {
		return labelled, ownedAt, err
	}
	// A pod created now may still be placed on the device before the
	// next status poll sees the owner.
	h.sentinel(ctx, r)
	if len(r.heldPods) > 0 {
		name := r.heldPods[0]
		if err := h.churn.reimage(ctx, name, true); err != nil {
			h.fail(r, "re-imaging pod %s on the owned device: %v", name, err)
		} else {
			r.sentinels = append(r.sentinels, name+" (re-imaged on the owned device)")
		}
	}
	r.note("labelled %s (%d applications; pods %s) into Flightctl fleet %s: owned, spec replaced by the template %s later",
		dev, apps, strings.Join(on, ","), takeoverFleet, ownedAt.Sub(labelled).Round(100*time.Millisecond))

	// The binding must say why the device is no longer used.
	if took, err := h.waitUnusable(ctx, dev, 3*statusPollInterval+10*time.Second); err != nil {
		h.fail(r, "%v", err)
	} else {
		r.note("binding reported %s unusable (%s) %s after the takeover", dev, inventory.ReasonOwnedByFleet, took.Round(100*time.Millisecond))
	}
	return labelled, ownedAt, nil
}

// keepPresent returns the named pods that exist and are not terminating,
// and forgets the others as pods of the owned device.
func (h *harness) keepPresent(ctx context.Context, r *phaseResult, names []string) []string {
	var out []string
	for _, n := range names {
		p, err := h.kube.CoreV1().Pods(testNamespace).Get(ctx, n, metav1.GetOptions{})
		if err == nil && p.DeletionTimestamp == nil {
			out = append(out, n)
			continue
		}
		for uid, name := range r.ownedPods {
			if name == n {
				delete(r.ownedPods, uid)
			}
		}
		h.logf("pod %s went before the takeover (deleted by the churn); not judged", n)
	}
	return out
}

// waitTakenOver waits until the device is owned by the takeover fleet and
// its spec holds none of vk-flightctl's applications (the rollout).
func (h *harness) waitTakenOver(ctx context.Context, device string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		d, err := h.sim.device(ctx, device)
		if err == nil {
			owner := ""
			if d.Metadata.Owner != nil {
				owner = *d.Metadata.Owner
			}
			ours := ownedAppNames(d)
			if owner == "Fleet/"+takeoverFleet && len(ours) == 0 {
				return time.Now(), nil
			}
			last = fmt.Sprintf("owner %q, vk-flightctl applications in the spec [%s]", owner, strings.Join(ours, ","))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("device %s not taken over by fleet %s within %s (last: %s)", device, takeoverFleet, timeout, last)
		}
		if err := h.pause(ctx, 100*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

func ownedAppNames(d *flightctl.Device) []string {
	var out []string
	if d.Spec != nil {
		for _, a := range d.Spec.Applications {
			if strings.HasPrefix(a.Name, translate.AppNamePrefix) {
				out = append(out, a.Name)
			}
		}
	}
	return out
}

// waitUnusable waits until the binding lists the device among its unusable
// ones, owned by a fleet, and counts it as owned.
func (h *harness) waitUnusable(ctx context.Context, device string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		b, err := h.binding(ctx)
		if err != nil {
			last = err.Error()
		} else {
			var listed []string
			found := false
			for _, u := range b.Status.UnusableDevices {
				listed = append(listed, u.Name+"("+u.Reason+")")
				found = found || (u.Name == device && u.Reason == inventory.ReasonOwnedByFleet)
			}
			owned := int32(-1)
			if b.Status.Devices != nil {
				owned = b.Status.Devices.Owned
			}
			if found && owned == 1 {
				return time.Since(start), nil
			}
			last = fmt.Sprintf("status.unusableDevices [%s], status.devices.owned %d", strings.Join(listed, ","), owned)
		}
		if err := h.pause(ctx, 250*time.Millisecond); err != nil {
			return time.Since(start), err
		}
	}
	return time.Since(start), fmt.Errorf("the FleetBinding does not report device %s as unusable (%s) within %s (last: %s)",
		device, inventory.ReasonOwnedByFleet, timeout, last)
}

// releaseDevice runs once the fleet-owned phase converged: it reports how
// the pods the device held ended, then takes the device out of the fleet
// and checks the fleet's application is left alone.
func (h *harness) releaseDevice(ctx context.Context, r *phaseResult) error {
	if r.owned == "" {
		return nil
	}
	timedOut, err := deviceTimeouts(ctx, h.kube)
	if err != nil {
		return err
	}
	var resched, other []string
	held := map[string]bool{}
	for _, n := range r.heldPods {
		held[n] = true
	}
	for uid, name := range r.ownedPods {
		switch {
		case timedOut[uid]:
			resched = append(resched, name)
		case held[name] && !h.model.churnDeleted(name):
			// (A churn operation under way when the pod was held may
			// still have deleted it.)
			h.fail(r, "bare pod %s (uid %s), on %s when the fleet took it and left alone by the churn, has no DeviceTimeout event", name, uid, r.owned)
		default:
			other = append(other, name)
		}
	}
	sort.Strings(resched)
	sort.Strings(other)
	r.note("of the %d pods on %s at the takeover: rescheduled by DeviceTimeout [%s], deleted by the churn or a scale-down [%s]",
		len(r.ownedPods), r.owned, strings.Join(resched, ","), strings.Join(other, ","))
	if err := h.release(ctx, r); err != nil {
		return err
	}
	return h.checkFleetAppKept(ctx, r, r.owned)
}

// checkBriefTakeover runs once the fleet-owned-brief phase converged: the
// pods are back on the released device, beside the fleet's application.
func (h *harness) checkBriefTakeover(ctx context.Context, r *phaseResult) error {
	if r.released == "" {
		return nil
	}
	return h.checkFleetAppKept(ctx, r, r.released)
}

// release takes the device out of the takeover fleet (label removed, fleet
// deleted) and waits until the server cleared the owner and the binding
// uses the device again.
func (h *harness) release(ctx context.Context, r *phaseResult) error {
	dev := r.owned
	if err := h.sim.removeDeviceLabel(ctx, dev, takeoverLabel); err != nil {
		return err
	}
	if err := h.sim.deleteFleet(ctx, takeoverFleet); err != nil {
		return err
	}
	took, err := h.waitOnline(ctx, len(h.devices))
	if err != nil {
		return fmt.Errorf("after releasing %s: %w", dev, err)
	}
	d, err := h.sim.device(ctx, dev)
	if err != nil {
		return err
	}
	if d.Metadata.Owner != nil {
		h.fail(r, "device %s still owned by %s after its release", dev, *d.Metadata.Owner)
	}
	r.note("%s released (label removed, fleet deleted), online in the binding after %s", dev, took.Round(100*time.Millisecond))
	return nil
}

// checkFleetAppKept: as on the real server (transcript 30b), a released
// device keeps the template's spec; vk-flightctl must leave that
// application alone.
func (h *harness) checkFleetAppKept(ctx context.Context, r *phaseResult, dev string) error {
	d, err := h.sim.device(ctx, dev)
	if err != nil {
		return err
	}
	kept := false
	if d.Spec != nil {
		for _, a := range d.Spec.Applications {
			kept = kept || a.Name == "fleet-web"
		}
	}
	if !kept {
		h.fail(r, "the fleet's application fleet-web left on released device %s is gone: vk-flightctl must only touch its own applications", dev)
	}
	return nil
}
