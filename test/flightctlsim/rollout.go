package flightctlsim

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Batched rollouts: a Fleet whose spec.rolloutPolicy has a BatchSequence
// gives a new template version to its devices batch by batch, as Flightctl
// v1.2's rollout controller does (internal/rollout/device_selection): a
// batch takes at most limit devices (a number, or a percentage of the
// Fleet's devices counted cumulatively, rounded), the devices no batch took
// form a last batch, and the next batch starts once every device of the
// current one completed its update (applied it, or failed it) and the
// share that succeeded reaches successThreshold (default 90%). Below it
// the rollout stops, as Flightctl's does until someone intervenes.

const (
	annotationDeployingTemplateVersion = "fleet-controller/deployingTemplateVersion"
	annotationBatchNumber              = "fleet-controller/batchNumber"
	defaultSuccessThreshold            = 90

	reasonRolloutStarted         = "FleetRolloutStarted"
	reasonRolloutBatchDispatched = "FleetRolloutBatchDispatched"
	reasonRolloutBatchCompleted  = "FleetRolloutBatchCompleted"
	reasonRolloutCompleted       = "FleetRolloutCompleted"
	reasonRolloutFailed          = "FleetRolloutFailed"
)

// rolloutPolicy is the part of spec.rolloutPolicy the simulator acts on.
type rolloutPolicy struct {
	DeviceSelection *struct {
		Strategy string `json:"strategy"`
		Sequence []struct {
			Selector *struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Limit            json.RawMessage `json:"limit"`
			SuccessThreshold string          `json:"successThreshold"`
		} `json:"sequence"`
	} `json:"deviceSelection"`
	SuccessThreshold string `json:"successThreshold"`
}

// batchPlan is a rollout in progress.
type batchPlan struct {
	version   int
	batches   []batch
	current   int
	completed bool
	failed    bool
}

type batch struct {
	devices   []string
	threshold int
}

// batched reports whether the fleet rolls out in batches.
func (f *fleet) batched() (*rolloutPolicy, bool) {
	if len(f.rolloutPolicy) == 0 {
		return nil, false
	}
	var p rolloutPolicy
	if json.Unmarshal(f.rolloutPolicy, &p) != nil || p.DeviceSelection == nil || len(p.DeviceSelection.Sequence) == 0 {
		return nil, false
	}
	return &p, true
}

// percentage parses "90%".
func percentage(s string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSuffix(s, "%")); err == nil && strings.HasSuffix(s, "%") {
		return n
	}
	return def
}

// planBatches splits the fleet's devices into batches. Caller holds s.mu.
func (s *Sim) planBatches(f *fleet, p *rolloutPolicy) []batch {
	owned := s.ownedDevices(f)
	taken := map[string]bool{}
	fleetThreshold := percentage(p.SuccessThreshold, defaultSuccessThreshold)
	var out []batch
	for _, b := range p.DeviceSelection.Sequence {
		limit := -1
		var n int
		var pct string
		switch {
		case json.Unmarshal(b.Limit, &n) == nil:
			limit = n
		case json.Unmarshal(b.Limit, &pct) == nil && percentage(pct, 100) < 100:
			limit = int(math.Round(float64(len(owned))*float64(percentage(pct, 100))/100)) - len(taken)
		}
		var devs []string
		for _, d := range owned {
			if taken[d.name] || limit >= 0 && len(devs) >= limit {
				continue
			}
			if b.Selector != nil && !labels.SelectorFromSet(b.Selector.MatchLabels).Matches(labels.Set(d.labels)) {
				continue
			}
			devs = append(devs, d.name)
			taken[d.name] = true
		}
		out = append(out, batch{devices: devs, threshold: percentage(b.SuccessThreshold, fleetThreshold)})
	}
	var rest []string
	for _, d := range owned {
		if !taken[d.name] {
			rest = append(rest, d.name)
		}
	}
	if len(rest) > 0 {
		out = append(out, batch{devices: rest, threshold: fleetThreshold})
	}
	return out
}

// startBatchedRollout plans a new template version's rollout and
// dispatches its first batch. Caller holds s.mu.
func (s *Sim) startBatchedRollout(f *fleet, p *rolloutPolicy) {
	f.plan = &batchPlan{version: f.templateVersion, batches: s.planBatches(f, p)}
	f.annotations[annotationDeployingTemplateVersion] = fmt.Sprintf("v%d", f.templateVersion)
	s.record(flightctl.KindFleet, f.name, reasonRolloutStarted,
		fmt.Sprintf("Fleet rollout of template version v%d started.", f.templateVersion), nil, actorWorker)
	s.dispatchBatch(f)
}

// dispatchBatch gives the current batch the new version, skipping empty
// batches. Caller holds s.mu.
func (s *Sim) dispatchBatch(f *fleet) {
	pl := f.plan
	for pl.current < len(pl.batches) && len(pl.batches[pl.current].devices) == 0 {
		pl.current++
	}
	if pl.current >= len(pl.batches) {
		pl.completed = true
		delete(f.annotations, annotationBatchNumber)
		f.bump()
		s.record(flightctl.KindFleet, f.name, reasonRolloutCompleted,
			fmt.Sprintf("Fleet rollout of template version v%d completed.", pl.version), nil, actorWorker)
		return
	}
	f.annotations[annotationBatchNumber] = strconv.Itoa(pl.current)
	f.bump()
	b := pl.batches[pl.current]
	s.record(flightctl.KindFleet, f.name, reasonRolloutBatchDispatched,
		fmt.Sprintf("Fleet rollout batch %d dispatched to %d device(s).", pl.current+1, len(b.devices)), nil, actorWorker)
	for _, name := range b.devices {
		if d := s.devices[name]; d != nil && d.owner == f.ownerRef() {
			s.rollout(d, f)
		}
	}
	s.scheduleBatchCheck(f)
}

// minBatchCheck spaces the checks of a batch whose devices are still
// updating, so a simulator without delays does not spin on one.
const minBatchCheck = 100 * time.Millisecond

// scheduleBatchCheck looks at the current batch again shortly.
func (s *Sim) scheduleBatchCheck(f *fleet) {
	f.batchEpoch = s.newEpoch()
	s.schedule(taskFleetBatch, f.name, max(s.opts.RenderDelay, minBatchCheck), f.batchEpoch)
}

// checkBatch moves a rollout on once its batch completed. Caller holds
// s.mu.
func (s *Sim) checkBatch(f *fleet, epoch uint64) {
	pl := f.plan
	if epoch != f.batchEpoch || pl == nil || pl.completed || pl.failed || pl.version != f.templateVersion {
		return
	}
	b := pl.batches[pl.current]
	ok, done := 0, 0
	for _, name := range b.devices {
		d := s.devices[name]
		if d == nil || d.owner != f.ownerRef() {
			done++
			continue
		}
		applied := d.status.Config.RenderedVersion == d.renderedAnnotation() && !isUpdating(&d.status)
		c := findCondition(d.status.Conditions, conditionUpdating)
		failedUpdate := c != nil && c.Reason == flightctl.UpdatingReasonError
		switch {
		case applied:
			ok++
			done++
		case failedUpdate:
			done++
		}
	}
	if done < len(b.devices) {
		s.scheduleBatchCheck(f)
		return
	}
	success := 100
	if len(b.devices) > 0 {
		success = ok * 100 / len(b.devices)
	}
	if success < b.threshold {
		pl.failed = true
		s.record(flightctl.KindFleet, f.name, reasonRolloutFailed, fmt.Sprintf(
			"Fleet rollout batch %d failed: %d%% of its devices updated successfully, below the success threshold of %d%%.",
			pl.current+1, success, b.threshold), nil, actorWorker)
		return
	}
	s.record(flightctl.KindFleet, f.name, reasonRolloutBatchCompleted, fmt.Sprintf(
		"Fleet rollout batch %d completed: %d%% of its devices updated successfully.", pl.current+1, success), nil, actorWorker)
	pl.current++
	s.dispatchBatch(f)
}
