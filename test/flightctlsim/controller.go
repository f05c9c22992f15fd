package flightctlsim

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The controller is the simulated server worker: it renders specs, keeps
// fleet ownership and rolls fleet templates out, and computes the
// server-side parts of device status. The write counts of each step follow
// the real server, so resourceVersion moves by the same amounts:
//
//	render:              +2 (annotations, then server-side status)
//	first validation:    +1 (SpecValid condition)
//	owner change:        +1
//	fleet rollout:       +2 (spec with templateVersion, renderedTemplateVersion)
//
// All functions here run with Sim.mu held for writing.

// queueDeviceWorker schedules the server worker for a device once.
func (s *Sim) queueDeviceWorker(d *device) {
	if d.workerEpoch != 0 {
		return
	}
	d.workerEpoch = s.newEpoch()
	s.schedule(taskDeviceWorker, d.name, s.opts.RenderDelay, d.workerEpoch)
}

// queueFleetWorker schedules the fleet controller for a fleet once.
func (s *Sim) queueFleetWorker(f *fleet) {
	if f.workerEpoch != 0 {
		return
	}
	f.workerEpoch = s.newEpoch()
	s.schedule(taskFleetWorker, f.name, s.opts.RenderDelay, f.workerEpoch)
}

// deviceWorker renders a changed spec, validates a new device and
// reconciles its fleet ownership.
func (s *Sim) deviceWorker(d *device, epoch uint64) {
	if epoch != d.workerEpoch {
		return
	}
	d.workerEpoch = 0
	first := !d.specValid
	if d.generation != d.renderedGen {
		s.render(d)
	}
	if first {
		d.specValid = true
		d.status.Conditions = append(d.status.Conditions, flightctl.Condition{
			Type: conditionSpecValid, Status: "True", Reason: "Valid", LastTransitionTime: s.now().UTC(),
		})
		d.bump()
		s.record(flightctl.KindDevice, d.name, reasonDeviceSpecValid, "Device specification is valid.", nil, actorWorker)
	}
	s.reconcileOwner(d)
}

// render publishes the current spec to the agent: a new renderedVersion
// and spec hash, then the server-side status that depends on them.
func (s *Sim) render(d *device) {
	d.renderedVersion++
	d.renderedGen = d.generation
	d.renderedSpec = d.spec
	if v, err := decodeJSON(d.spec); err == nil {
		obj, _ := v.(map[string]any)
		d.renderedApps = appsOf(obj)
	}
	if d.annotations == nil {
		d.annotations = map[string]string{}
	}
	d.annotations[flightctl.AnnotationRenderedVersion] = d.renderedAnnotation()
	d.annotations[flightctl.AnnotationRenderedSpecHash] = specHash(d.spec)
	d.bump()
	before := statusKeys(d)
	s.serverSideStatus(d)
	d.bump()
	s.statusEvents(d, before, actorWorker)
	s.agentPoke(d)
}

// matchingFleets returns the names of the fleets that select a device.
func (s *Sim) matchingFleets(d *device) []string {
	var out []string
	for _, name := range s.fleetNames {
		if s.fleets[name].selects(d.labels) {
			out = append(out, name)
		}
	}
	return out
}

// reconcileOwner gives a device to the one fleet that selects it, or takes
// it away when none (or several) do.
func (s *Sim) reconcileOwner(d *device) {
	matches := s.matchingFleets(d)
	want := ""
	switch len(matches) {
	case 0:
		d.multiOwners = ""
	case 1:
		d.multiOwners = ""
		want = s.fleets[matches[0]].ownerRef()
	default:
		// The real server leaves such a device without a new owner and
		// warns; the warning is recorded once per set of fleets.
		key := strings.Join(matches, ", ")
		if d.multiOwners != key {
			d.multiOwners = key
			s.record(flightctl.KindDevice, d.name, reasonMultipleOwnersDetected,
				fmt.Sprintf("Device matches multiple fleets: %s.", key), nil, actorWorker)
		}
	}
	if want == d.owner {
		return
	}
	prev := d.owner
	d.owner = want
	d.bump()
	s.recordUpdated(flightctl.KindDevice, d.name, []string{"owner"}, prev, want, actorWorker)
	if want != "" {
		s.rollout(d, s.fleets[matches[0]])
	}
}

// rollout overwrites an owned device's spec with its fleet's template.
func (s *Sim) rollout(d *device, f *fleet) {
	if f.templateVersion == 0 {
		// The fleet controller has not versioned the template yet; its own
		// worker run will roll it out.
		return
	}
	spec, obj := templateForDevice(f)
	changed := !bytes.Equal(spec, d.spec)
	d.setSpec(spec, obj)
	if changed {
		d.generation++
	}
	version := fmt.Sprintf("v%d", f.templateVersion)
	if d.annotations == nil {
		d.annotations = map[string]string{}
	}
	d.annotations[annotationTemplateVersion] = version
	d.bump()
	if changed {
		s.recordUpdated(flightctl.KindDevice, d.name, []string{"spec"}, "", "", actorWorker)
	}
	d.annotations[annotationRenderedTemplateVersion] = version
	d.bump()
	if d.generation != d.renderedGen {
		s.render(d)
	}
}

// templateForDevice is the device spec a fleet's template produces. The
// real server passes the template through its typed API structs, which
// adds `"runAs": ""` to quadlet and container applications that lack it;
// the simulator does the same so that owned devices look alike.
func templateForDevice(f *fleet) ([]byte, map[string]any) {
	v, err := decodeJSON(f.templateSpec)
	if err != nil {
		return f.templateSpec, map[string]any{}
	}
	obj, _ := v.(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	list, _ := obj["applications"].([]any)
	for _, it := range list {
		app, ok := it.(map[string]any)
		if !ok {
			continue
		}
		t, _ := app["appType"].(string)
		if _, has := app["runAs"]; !has && (t == flightctl.AppTypeQuadlet || t == flightctl.AppTypeContainer) {
			app["runAs"] = ""
		}
	}
	return mustMarshal(obj), obj
}

// fleetWorker validates a fleet, versions a changed template, and
// reconciles every device's ownership, rolling the template out to the
// devices the fleet owns.
func (s *Sim) fleetWorker(f *fleet, epoch uint64) {
	if epoch != f.workerEpoch {
		return
	}
	f.workerEpoch = 0
	if !f.validated {
		f.validated = true
		f.conditions = []flightctl.Condition{{Type: "Valid", Status: "True", Reason: "Valid", LastTransitionTime: s.now().UTC()}}
		f.bump()
		s.record(flightctl.KindFleet, f.name, reasonFleetValid, "Fleet specification is valid.", nil, actorWorker)
	}
	templateChanged := false
	if key := f.templateKey(); f.templateVersion == 0 || !bytes.Equal(key, f.versionedTemplate) {
		f.templateVersion++
		f.versionedTemplate = key
		if f.annotations == nil {
			f.annotations = map[string]string{}
		}
		f.annotations[annotationTemplateVersion] = fmt.Sprintf("v%d", f.templateVersion)
		f.bump()
		templateChanged = true
	}
	policy, batched := f.batched()
	if !batched {
		f.plan = nil
	}
	for _, name := range s.deviceNames {
		d := s.devices[name]
		before := d.owner
		s.reconcileOwner(d)
		if templateChanged && !batched && before == f.ownerRef() && d.owner == before {
			s.rollout(d, f)
		}
	}
	if templateChanged && batched {
		s.startBatchedRollout(f, policy)
	}
}

// statusKeys captures the three statuses whose transitions produce events.
type statusSnapshot struct {
	summary, updated, apps string
}

func statusKeys(d *device) statusSnapshot {
	return statusSnapshot{d.status.Summary.Status, d.status.Updated.Status, d.status.ApplicationsSummary.Status}
}

// serverSideStatus computes summary, updated and applicationsSummary the
// way the real server does after every status change.
func (s *Sim) serverSideStatus(d *device) {
	st := &d.status
	// summary: connectivity first, then resource health.
	if d.offline {
		st.Summary = flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryUnknown, Info: infoDisconnected}
	} else {
		st.Summary = resourceSummary(st.Resources)
	}
	// updated: disconnected (only once it has ever reported), updating,
	// out of date, or up to date.
	switch {
	case d.offline && !d.statusSeen.IsZero():
		st.Updated = flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUnknown, Info: infoDisconnected}
	case isUpdating(st):
		info := infoUpdating
		if c := findCondition(st.Conditions, conditionUpdating); c != nil && c.Message != "" {
			info = c.Message
		}
		st.Updated = flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpdating, Info: info}
	case st.Config.RenderedVersion != d.renderedAnnotation():
		info := infoOutOfDate
		// After a failed update the real server appends the agent's
		// Updating message (transcript in flightctl-real-server.md).
		if c := findCondition(st.Conditions, conditionUpdating); c != nil && c.Reason == "Error" && c.Message != "" {
			info = strings.TrimSuffix(infoOutOfDate, ".") + ": " + c.Message
		}
		st.Updated = flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedOutOfDate, Info: info}
	case d.owner != "":
		st.Updated = flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpToDate, Info: infoFleetUpToDate}
	default:
		st.Updated = flightctl.StatusWithInfo{Status: flightctl.DeviceUpdatedUpToDate, Info: infoUpToDate}
	}
	// applicationsSummary: the agent's verdict, except when disconnected
	// or when there is nothing to judge.
	switch {
	case d.offline:
		st.ApplicationsSummary = flightctl.ApplicationsSummaryStatus{Status: flightctl.ApplicationsSummaryUnknown, Info: infoDisconnected}
	case len(st.Applications) == 0:
		st.ApplicationsSummary = flightctl.ApplicationsSummaryStatus{Status: flightctl.ApplicationsSummaryNoApplications, Info: infoAppsUndefined}
	case st.ApplicationsSummary.Status == flightctl.ApplicationsSummaryHealthy && st.ApplicationsSummary.Info == "":
		st.ApplicationsSummary.Info = infoAppsHealthy
	}
}

// isUpdating reports whether the agent says it is applying a spec.
func isUpdating(st *flightctl.DeviceStatus) bool {
	c := findCondition(st.Conditions, conditionUpdating)
	return c != nil && c.Status == "True"
}

// resourceSummary derives summary from resource health.
func resourceSummary(r flightctl.DeviceResourceStatus) flightctl.StatusWithInfo {
	var errs, warns []string
	for _, x := range []struct{ name, status string }{{"CPU", r.CPU}, {"Memory", r.Memory}, {"Disk", r.Disk}} {
		switch x.status {
		case "Critical":
			errs = append(errs, x.name+" utilization reached critical level")
		case "Warning":
			warns = append(warns, x.name+" utilization reached warning level")
		}
	}
	switch {
	case len(errs) > 0:
		return flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryError, Info: strings.Join(errs, ", ")}
	case len(warns) > 0:
		return flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryDegraded, Info: strings.Join(warns, ", ")}
	}
	return flightctl.StatusWithInfo{Status: flightctl.DeviceSummaryOnline, Info: infoResourcesHealthy}
}

// statusEvents records the events the real server derives from status
// transitions. Like the real server, a disconnection can produce up to
// three DeviceDisconnected events (summary, updated, applications).
func (s *Sim) statusEvents(d *device, before statusSnapshot, by actor) {
	st := &d.status
	if st.Summary.Status != before.summary {
		switch st.Summary.Status {
		case flightctl.DeviceSummaryUnknown:
			s.record(flightctl.KindDevice, d.name, reasonDeviceDisconnected, st.Summary.Info, nil, by)
		case flightctl.DeviceSummaryOnline:
			s.record(flightctl.KindDevice, d.name, reasonDeviceConnected, st.Summary.Info, nil, by)
		}
	}
	if st.Updated.Status != before.updated {
		reason := ""
		switch st.Updated.Status {
		case flightctl.DeviceUpdatedUnknown:
			reason = reasonDeviceDisconnected
		case flightctl.DeviceUpdatedUpdating:
			reason = reasonContentUpdating
		case flightctl.DeviceUpdatedOutOfDate:
			reason = reasonContentOutOfDate
		case flightctl.DeviceUpdatedUpToDate:
			if before.updated != flightctl.DeviceUpdatedUnknown {
				reason = reasonContentUpToDate
			}
		}
		if reason != "" {
			s.record(flightctl.KindDevice, d.name, reason, st.Updated.Info, nil, by)
		}
	}
	if st.ApplicationsSummary.Status != before.apps {
		reason := ""
		switch st.ApplicationsSummary.Status {
		case flightctl.ApplicationsSummaryUnknown:
			reason = reasonDeviceDisconnected
		case flightctl.ApplicationsSummaryError:
			reason = reasonAppError
		case flightctl.ApplicationsSummaryDegraded:
			reason = reasonAppDegraded
		case flightctl.ApplicationsSummaryHealthy, flightctl.ApplicationsSummaryNoApplications:
			reason = reasonAppHealthy
		}
		if reason != "" {
			s.record(flightctl.KindDevice, d.name, reason, st.ApplicationsSummary.Info, nil, by)
		}
	}
}

// detectDisconnect marks a silent device disconnected once the detection
// delay has passed since its last report.
func (s *Sim) detectDisconnect(d *device, epoch uint64) {
	if epoch != d.detectEpoch || d.offline {
		return
	}
	if d.agent != nil && d.agent.connected {
		return
	}
	if wait := d.statusSeen.Add(s.opts.DisconnectDetection).Sub(s.now()); wait > 0 {
		s.schedule(taskDetect, d.name, wait, epoch)
		return
	}
	before := statusKeys(d)
	d.offline = true
	s.serverSideStatus(d)
	d.bump()
	s.statusEvents(d, before, actorPeriodic)
}

// armDetection (re)starts the disconnect timer of a device that just
// reported without a connected agent behind it.
func (s *Sim) armDetection(d *device) {
	d.detectEpoch = s.newEpoch()
	s.schedule(taskDetect, d.name, s.opts.DisconnectDetection, d.detectEpoch)
}

// devicesSummary counts devices by status, as list responses and fleets
// with addDevicesSummary show them.
type summaryCounter struct {
	apps, summary, updated map[string]int64
	total                  int64
}

func newSummaryCounter() *summaryCounter {
	return &summaryCounter{apps: map[string]int64{}, summary: map[string]int64{}, updated: map[string]int64{}}
}

func (c *summaryCounter) add(d *device) {
	c.apps[d.status.ApplicationsSummary.Status]++
	c.summary[d.status.Summary.Status]++
	c.updated[d.status.Updated.Status]++
	c.total++
}

func (c *summaryCounter) result() *flightctl.DevicesSummary {
	return &flightctl.DevicesSummary{ApplicationStatus: c.apps, SummaryStatus: c.summary, UpdateStatus: c.updated, Total: c.total}
}

// ownedDevices lists, in name order, the devices a fleet owns.
func (s *Sim) ownedDevices(f *fleet) []*device {
	var out []*device
	for _, name := range s.deviceNames {
		if d := s.devices[name]; d.owner == f.ownerRef() {
			out = append(out, d)
		}
	}
	return out
}
