package node

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/inventory"
)

// retry deploys again, oldest first, the pods that found no room and the
// pods whose last change did not reach Flightctl, and writes again the
// workloads a device's spec lost (a device deleted and registered again,
// an application removed by hand). Room that appears goes to the pod that
// waited longest. The status loop calls it only after a successful poll,
// so placement sees the current devices.
func (d *deployer) retry(ctx context.Context) {
	fleet, listedFrom, _ := d.poller.state()
	if fleet == nil {
		fleet = &inventory.Fleet{}
	}
	var todo []*podState
	d.store.each(func(st *podState) {
		switch {
		case st.removed || st.phase == phaseFailed:
		case st.phase == phaseWaiting:
			todo = append(todo, st)
		case st.phase == phaseDeployed && !writable(fleet, st.device):
			// Unknown while its device is away; written when it is back.
		case st.owed:
			todo = append(todo, st)
		case st.phase == phaseDeployed && lostApp(fleet, st, listedFrom):
			d.log.Info("Workload missing from the device's spec; writing it again", "pod", podKey(st.pod.Namespace, st.pod.Name), "device", st.device, "application", st.app)
			todo = append(todo, st)
		}
	})
	views := make(map[*podState]podState, len(todo))
	for _, st := range todo {
		views[st] = d.store.view(st)
	}
	sort.Slice(todo, func(i, j int) bool {
		a, b := views[todo[i]].pod, views[todo[j]].pod
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
	for _, st := range todo {
		var err error
		if d.store.view(st).phase == phaseDeployed {
			// Not an update: write even when the content hash is the one
			// last written, since that write failed or was lost.
			err = d.write(ctx, st, false)
		} else {
			err = d.deploy(ctx, st)
		}
		d.owe(st, err)
	}
}

// writable reports whether a device is listed and no Flightctl fleet owns
// it, so a write to it can succeed.
func writable(fleet *inventory.Fleet, device string) bool {
	dev, ok := fleet.Get(device)
	return ok && dev.OwnedBy == ""
}

// lostApp reports a deployed pod whose application is missing from its
// device's spec in a listing that started after the pod's last write; the
// store's lock is held.
func lostApp(fleet *inventory.Fleet, st *podState, listedFrom time.Time) bool {
	if st.writtenAt.IsZero() || !st.writtenAt.Before(listedFrom) {
		return false
	}
	dev, ok := fleet.Get(st.device)
	if !ok {
		return false
	}
	return !slices.Contains(dev.SpecApplications, st.app)
}
