package flightctlsim

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// A simulated agent is a small state machine on the device record, driven
// by the shared scheduler: no goroutine per device. Its status reports
// mirror what a real v1.2 agent sends: applications per application (not
// per container), an applications summary in the agent's words, the
// Updating condition while a spec is applied, and systemInfo.

// SimAgentVersion is the agentVersion simulated agents report.
const SimAgentVersion = "v1.2.0-sim"

// maxAppSummaryInfo is the real agent's limit on the summary info text.
const maxAppSummaryInfo = 256

// agentPhase is where an agent is in applying a rendered spec.
type agentPhase int

const (
	phaseIdle agentPhase = iota
	phaseFetching
	phasePreparing
	phaseStarting
	// phaseCrashing is idle with a timer: an application tagged
	// ":crashloop" fails and is restarted on every tick. A newer rendered
	// spec is taken up as from idle.
	phaseCrashing
)

// agentApp is one application as the agent runs it.
type agentApp struct {
	name    string
	appType string
	total   int
	fail    bool
	// failPrepare makes the whole update fail while preparing, as a real
	// agent does when it cannot prefetch an image (see prepareFailure).
	failPrepare bool
	// crash makes the application fail and restart for ever
	// (":crashloop"); complete makes it exit successfully (":complete").
	crash, complete bool
	// stuck keeps the update in Preparing for ever (":stuck-preparing"),
	// like an agent whose image pull never ends; a newer spec is taken up.
	stuck    bool
	hash     string
	status   string
	restarts int32
}

// agent is a simulated device agent.
type agent struct {
	connected bool
	reported  bool
	phase     agentPhase
	// target is the rendered version being applied, applied the one in
	// effect (0 before the first).
	target, applied int64
	updating        bool
	apps            []agentApp
	// prevApps are the applications of the applied version while a newer
	// one is prepared: a failed prepare rolls back to them.
	prevApps []agentApp
	// failedVersion is the rendered version whose update failed; the real
	// agent does not retry it until a newer version is rendered.
	failedVersion int64
	// updateError is the Updating condition's message after a failed
	// update, empty once an update succeeds.
	updateError string
	epoch       uint64
	sysInfo     map[string]string
	// failApps makes every application this agent (re)starts end in
	// Error, as a device that cannot run a Fleet's workload (a missing
	// device, a full disk) would: DeviceConfig.FailApplications.
	failApps bool
}

// newAgent builds an agent with the system information a device reports.
// cpuCores and memoryTotalKb are opt-in on a real agent, so they are only
// reported when configured.
func newAgent(name string, cfg DeviceConfig, memoryKB int64) *agent {
	arch := cfg.Architecture
	if arch == "" {
		arch = "amd64"
	}
	host := cfg.Hostname
	if host == "" {
		host = name
	}
	info := map[string]string{
		"agentVersion":               SimAgentVersion,
		"architecture":               arch,
		"bootID":                     newUUID(),
		"operatingSystem":            "linux",
		flightctl.SystemInfoHostname: host,
	}
	if cfg.IP != "" {
		// As the real agent does: the interface's address with its
		// prefix length (internal/agent/device/systeminfo in v1.2.0).
		info[flightctl.SystemInfoNetIPDefault] = cfg.IP + "/24"
	}
	if cfg.CPU > 0 {
		info[flightctl.SystemInfoCPUCores] = strconv.Itoa(cfg.CPU)
	}
	if memoryKB > 0 {
		info[flightctl.SystemInfoMemoryTotalKb] = strconv.FormatInt(memoryKB, 10)
	}
	return &agent{sysInfo: info, failApps: cfg.FailApplications}
}

// scheduleAgent queues the agent's next step; older queued steps become
// stale through the epoch.
func (s *Sim) scheduleAgent(d *device, delay time.Duration) {
	d.agent.epoch = s.newEpoch()
	s.schedule(taskAgent, d.name, delay, d.agent.epoch)
}

// agentPoke starts applying a newer rendered spec if the agent is free.
func (s *Sim) agentPoke(d *device) {
	a := d.agent
	if a == nil || !a.connected || (a.phase != phaseIdle && a.phase != phaseCrashing && !stuckPreparing(a)) {
		return
	}
	if d.renderedVersion == 0 || d.renderedVersion == a.applied || d.renderedVersion == a.failedVersion {
		return
	}
	a.phase = phaseFetching
	s.scheduleAgent(d, s.opts.Agent.Fetch)
}

// agentStep advances the agent by one phase and reports status.
func (s *Sim) agentStep(d *device, epoch uint64) {
	a := d.agent
	if a == nil || epoch != a.epoch || !a.connected {
		return
	}
	switch a.phase {
	case phaseFetching:
		a.target = d.renderedVersion
		a.prevApps = a.apps
		a.apps = reconcileApps(a.apps, d.renderedApps)
		if a.failApps {
			for i := range a.apps {
				if a.apps[i].status == flightctl.ApplicationStatusPreparing {
					a.apps[i].fail = true
				}
			}
		}
		a.updating = true
		a.phase = phasePreparing
		s.agentReport(d)
		s.scheduleAgent(d, s.opts.Agent.Preparing)
	case phasePreparing:
		for _, app := range a.apps {
			if app.stuck && app.status == flightctl.ApplicationStatusPreparing {
				// Nothing is scheduled: the agent stays in Preparing
				// until a newer spec arrives (agentPoke).
				return
			}
		}
		if msg := prepareFailure(a.apps, s.now()); msg != "" {
			// The real agent marks the rendered version failed and rolls
			// back: the previous version stays applied with its
			// applications as they were, and condition Updating says why.
			a.failedVersion, a.target = a.target, a.applied
			a.apps, a.prevApps = a.prevApps, nil
			a.updating = false
			a.updateError = msg
			a.phase = phaseIdle
			s.agentReport(d)
			s.agentPoke(d)
			return
		}
		a.applied = a.target
		a.updating = false
		a.updateError = ""
		a.prevApps = nil
		starting := false
		for i := range a.apps {
			app := &a.apps[i]
			if app.status != flightctl.ApplicationStatusPreparing {
				continue
			}
			if app.fail {
				app.status = flightctl.ApplicationStatusError
				continue
			}
			app.status = flightctl.ApplicationStatusStarting
			starting = true
		}
		if starting {
			a.phase = phaseStarting
			s.agentReport(d)
			s.scheduleAgent(d, s.opts.Agent.Starting)
			return
		}
		a.phase = phaseIdle
		s.agentReport(d)
		s.agentPoke(d)
	case phaseStarting:
		for i := range a.apps {
			app := &a.apps[i]
			if app.status != flightctl.ApplicationStatusStarting {
				continue
			}
			switch {
			case app.complete:
				app.status = flightctl.ApplicationStatusCompleted
			case app.crash:
				app.status = flightctl.ApplicationStatusError
			default:
				app.status = flightctl.ApplicationStatusRunning
			}
		}
		s.agentSettle(d)
	case phaseCrashing:
		// The crashed application is restarted and fails again; the
		// agent counts each restart.
		for i := range a.apps {
			if app := &a.apps[i]; app.crash && app.status == flightctl.ApplicationStatusError {
				app.restarts++
			}
		}
		s.agentSettle(d)
	}
}

// stuckPreparing reports whether the agent is held in Preparing by an
// application tagged ":stuck-preparing".
func stuckPreparing(a *agent) bool {
	if a.phase != phasePreparing {
		return false
	}
	for _, app := range a.apps {
		if app.stuck && app.status == flightctl.ApplicationStatusPreparing {
			return true
		}
	}
	return false
}

// crashLoopDelay is the time between two restarts of a crashing
// application.
func (s *Sim) crashLoopDelay() time.Duration {
	if s.opts.Agent.CrashLoop > 0 {
		return s.opts.Agent.CrashLoop
	}
	return DefaultCrashLoop
}

// agentSettle ends a step with the agent idle, reporting; with a crashing
// application it keeps a restart timer, and a newer spec is taken up.
func (s *Sim) agentSettle(d *device) {
	a := d.agent
	a.phase = phaseIdle
	for _, app := range a.apps {
		if app.crash && app.status == flightctl.ApplicationStatusError {
			a.phase = phaseCrashing
		}
	}
	s.agentReport(d)
	if a.phase == phaseCrashing {
		s.scheduleAgent(d, s.crashLoopDelay())
	}
	s.agentPoke(d)
}

// reconcileApps keeps applications whose definition did not change (a
// real agent leaves them running) and restarts the others from Preparing.
// Removed applications disappear. The result is in name order, as the
// real agent reports it.
func reconcileApps(current []agentApp, desired []appInfo) []agentApp {
	byName := map[string]agentApp{}
	for _, a := range current {
		byName[a.name] = a
	}
	out := make([]agentApp, 0, len(desired))
	for _, want := range desired {
		if have, ok := byName[want.name]; ok && have.hash == want.hash {
			out = append(out, have)
			continue
		}
		app := agentApp{name: want.name, appType: want.appType, total: want.total, hash: want.hash,
			status: flightctl.ApplicationStatusPreparing}
		for _, img := range want.images {
			app.fail = app.fail || failingImage(img)
			switch imageTag(img) {
			case tagFailPrepare:
				app.failPrepare = true
			case tagCrashLoop:
				app.crash = true
			case tagComplete:
				app.complete = true
			case tagStuckPreparing:
				app.stuck = true
			}
		}
		out = append(out, app)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// agentReport writes the agent's view into the device status: one status
// write, with the events the real server derives from it.
func (s *Sim) agentReport(d *device) {
	a := d.agent
	now := s.now()
	before := statusKeys(d)
	st := &d.status
	st.Applications, st.ApplicationsSummary = appStatuses(a.apps)
	if a.applied > 0 {
		st.Config.RenderedVersion = strconv.FormatInt(a.applied, 10)
	} else {
		st.Config.RenderedVersion = ""
	}
	setUpdatingCondition(st, a, now)
	st.Integrity = map[string]json.RawMessage{
		"deviceIdentity": json.RawMessage(`{"status":"Unsupported"}`),
		"info":           json.RawMessage(`"TPM not present or not enabled on this device"`),
		"status":         json.RawMessage(`"Unsupported"`),
		"tpm":            json.RawMessage(`{"status":"Unsupported"}`),
	}
	st.Lifecycle = flightctl.StatusWithInfo{Status: flightctl.DeviceLifecycleEnrolled}
	if d.decommissioning {
		st.Lifecycle.Status = flightctl.DeviceLifecycleDecommissioning
	}
	st.Resources = flightctl.DeviceResourceStatus{CPU: "Healthy", Disk: "Healthy", Memory: "Healthy"}
	st.SystemInfo = a.sysInfo
	a.reported = true
	d.statusSeen = now
	d.lastSeen = s.heartbeat(now)
	d.offline = false
	s.serverSideStatus(d)
	d.bump()
	s.statusEvents(d, before, agentActor(d.name))
}

// appStatuses is what an agent reports for its applications: one entry per
// application and the summary in the real agent's words. The simulated
// agents and the remote agents (remote.go) report through it alike.
func appStatuses(apps []agentApp) ([]flightctl.ApplicationStatus, flightctl.ApplicationsSummaryStatus) {
	out := make([]flightctl.ApplicationStatus, 0, len(apps))
	var errored, degraded []string
	overall := ""
	for _, app := range apps {
		healthy := 0
		if app.status == flightctl.ApplicationStatusRunning {
			healthy = app.total
		}
		out = append(out, flightctl.ApplicationStatus{
			Name: app.name, AppType: app.appType, Ready: fmt.Sprintf("%d/%d", healthy, app.total),
			Restarts: app.restarts, Status: app.status,
		})
		// The agent's per-application verdicts, in its own words.
		switch app.status {
		case flightctl.ApplicationStatusError:
			errored = append(errored, fmt.Sprintf("%s is in status %s", app.name, flightctl.ApplicationsSummaryError))
			overall = flightctl.ApplicationsSummaryError
		case flightctl.ApplicationStatusStarting:
			degraded = append(degraded, fmt.Sprintf("%s is in status %s", app.name, flightctl.ApplicationsSummaryDegraded))
			if overall != flightctl.ApplicationsSummaryError {
				overall = flightctl.ApplicationsSummaryDegraded
			}
		case flightctl.ApplicationStatusPreparing:
			degraded = append(degraded, "Not started: "+app.name)
			if overall != flightctl.ApplicationsSummaryError {
				overall = flightctl.ApplicationsSummaryDegraded
			}
		default:
			if overall == "" {
				overall = flightctl.ApplicationsSummaryHealthy
			}
		}
	}
	info := strings.Join(append(errored, degraded...), ", ")
	if len(info) > maxAppSummaryInfo {
		info = info[:maxAppSummaryInfo-3] + "..."
	}
	if overall == "" {
		overall = flightctl.ApplicationsSummaryNoApplications
	}
	return out, flightctl.ApplicationsSummaryStatus{Status: overall, Info: info}
}

// setUpdatingCondition keeps the Updating condition in line with what the
// agent is doing, moving lastTransitionTime only on a change.
func setUpdatingCondition(st *flightctl.DeviceStatus, a *agent, now time.Time) {
	want := flightctl.Condition{Type: conditionUpdating, Status: "False", Reason: "Updated"}
	if a.updateError != "" {
		want = flightctl.Condition{Type: conditionUpdating, Status: "False", Reason: "Error", Message: a.updateError}
	}
	if a.updating {
		want = flightctl.Condition{Type: conditionUpdating, Status: "True", Reason: "ApplyingUpdate"}
	}
	c := findCondition(st.Conditions, conditionUpdating)
	if c == nil {
		want.LastTransitionTime = now.UTC()
		st.Conditions = append([]flightctl.Condition{want}, st.Conditions...)
		return
	}
	if c.Status != want.Status || c.Reason != want.Reason || c.Message != want.Message {
		want.LastTransitionTime = now.UTC()
		*c = want
	}
}

// Image tags that make the simulated agent's applications crash and
// restart for ever (status Error, restarts counting up on every Starting
// delay) or complete (status Completed).
const (
	tagCrashLoop      = "crashloop"
	tagComplete       = "complete"
	tagStuckPreparing = "stuck-preparing"
)

// tagFailPrepare is the image tag that makes an update fail while
// preparing and roll back (what a real agent does when it cannot
// prefetch an image).
const tagFailPrepare = "fail-prepare"

// prepareFailure is the Updating condition message of a failed prepare at
// now, in the real v1.2 agent's words (its StructuredError: "[<time>]
// While Preparing: prefetch failed for <app>: internal error occurred"),
// or "" when every application can be prepared.
func prepareFailure(apps []agentApp, now time.Time) string {
	for _, app := range apps {
		if app.failPrepare && app.status == flightctl.ApplicationStatusPreparing {
			return fmt.Sprintf("[%s] While Preparing: prefetch failed for %s: internal error occurred", now.UTC().Format(time.DateTime), app.name)
		}
	}
	return ""
}

// heartbeat is lastSeen for a device heard from at now, rounded down to
// the heartbeat interval the way a polling agent's contacts would be.
func (s *Sim) heartbeat(now time.Time) time.Time {
	t := now.UTC()
	if s.opts.HeartbeatInterval > 0 {
		t = t.Truncate(s.opts.HeartbeatInterval)
	}
	return microTime(t)
}

// currentLastSeen is a device's lastSeen as of now: live while its agent
// is connected, frozen otherwise.
func (s *Sim) currentLastSeen(d *device) time.Time {
	if a := d.agent; a != nil && a.connected && a.reported {
		return s.heartbeat(s.now())
	}
	return d.lastSeen
}

// disconnect cuts a device's agent off: it stops reporting and lastSeen
// freezes; the server notices after the detection delay.
func (s *Sim) disconnect(d *device) {
	a := d.agent
	if a == nil || !a.connected {
		return
	}
	now := s.now()
	if a.reported {
		d.lastSeen = s.heartbeat(now)
		d.statusSeen = now
	}
	a.connected = false
	a.epoch = s.newEpoch()
	s.armDetection(d)
}

// reconnect brings a device's agent back (attaching one if the device had
// none): it reports at once and resumes whatever it was doing.
func (s *Sim) reconnect(d *device) {
	if d.agent == nil {
		d.agent = newAgent(d.name, DeviceConfig{}, 0)
	}
	a := d.agent
	if a.connected {
		return
	}
	a.connected = true
	d.detectEpoch = s.newEpoch()
	s.agentReport(d)
	switch a.phase {
	case phaseFetching:
		s.scheduleAgent(d, s.opts.Agent.Fetch)
	case phasePreparing:
		s.scheduleAgent(d, s.opts.Agent.Preparing)
	case phaseStarting:
		s.scheduleAgent(d, s.opts.Agent.Starting)
	case phaseCrashing:
		s.scheduleAgent(d, s.crashLoopDelay())
		s.agentPoke(d)
	default:
		s.agentPoke(d)
	}
}
