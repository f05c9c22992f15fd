package fleetwriter

import (
	"encoding/json"
	"strconv"
	"strings"

	vkv1 "github.com/vk-flightctl/vk-flightctl/api/v1alpha1"
)

// Wire form of Flightctl v1.2's spec.rolloutPolicy (RolloutPolicy,
// BatchSequence, Batch, DisruptionBudget in api/core/v1beta1/openapi.yaml).
type wirePolicy struct {
	DeviceSelection  *wireSelection `json:"deviceSelection,omitempty"`
	SuccessThreshold string         `json:"successThreshold,omitempty"`
	DisruptionBudget *wireBudget    `json:"disruptionBudget,omitempty"`
}

type wireSelection struct {
	Strategy string      `json:"strategy"`
	Sequence []wireBatch `json:"sequence"`
}

type wireBatch struct {
	Selector *wireLabels `json:"selector,omitempty"`
	// Limit is an integer or a percentage string on the wire.
	Limit any `json:"limit,omitempty"`
}

type wireLabels struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type wireBudget struct {
	MinAvailable   *int32 `json:"minAvailable,omitempty"`
	MaxUnavailable *int32 `json:"maxUnavailable,omitempty"`
}

// RolloutPolicyJSON is the Fleet's spec.rolloutPolicy for a binding's
// policy; nil (leave the Fleet's own policy) when p is nil.
func RolloutPolicyJSON(p *vkv1.RolloutPolicy) json.RawMessage {
	if p == nil {
		return nil
	}
	w := wirePolicy{SuccessThreshold: p.SuccessThreshold}
	if len(p.Batches) > 0 {
		w.DeviceSelection = &wireSelection{Strategy: "BatchSequence"}
		for _, b := range p.Batches {
			wb := wireBatch{Limit: batchLimit(b.Limit)}
			if len(b.Selector) > 0 {
				wb.Selector = &wireLabels{MatchLabels: b.Selector}
			}
			w.DeviceSelection.Sequence = append(w.DeviceSelection.Sequence, wb)
		}
	}
	if d := p.DisruptionBudget; d != nil {
		w.DisruptionBudget = &wireBudget{MinAvailable: d.MinAvailable, MaxUnavailable: d.MaxUnavailable}
	}
	raw, _ := json.Marshal(w)
	return raw
}

// batchLimit is a number for "3" and the percentage string for "50%", as
// the Batch schema's oneOf wants.
func batchLimit(s string) any {
	if strings.HasSuffix(s, "%") {
		return s
	}
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return s
}
