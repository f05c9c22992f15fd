package flightctlsim

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The provider's wire types are used wherever their shape is fixed
// (status, events, errors, list metadata) so that a drift between client and
// simulator shows up at compile time. Specs are kept as raw JSON here: the
// simulator must echo back every spec field a client sent, including the
// ones neither side models, and must not depend on the client's own
// marshalling code being correct.

// wireMeta is object metadata as the server writes it. It is not the
// provider's ObjectMeta because the real server always writes "labels" and
// "annotations", even empty, and clients rely on that: a JSON patch that
// adds /metadata/labels/x fails on a document without a labels object.
type wireMeta struct {
	Annotations       map[string]string `json:"annotations"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	Generation        *int64            `json:"generation,omitempty"`
	Labels            map[string]string `json:"labels"`
	Name              string            `json:"name"`
	Owner             *string           `json:"owner,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
}

// wireDevice is a Device as the server writes it.
type wireDevice struct {
	APIVersion string                  `json:"apiVersion"`
	Kind       string                  `json:"kind"`
	Metadata   wireMeta                `json:"metadata"`
	Spec       json.RawMessage         `json:"spec"`
	Status     *flightctl.DeviceStatus `json:"status,omitempty"`
}

// wireFleet is a Fleet as the server writes it.
type wireFleet struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   wireMeta        `json:"metadata"`
	Spec       wireFleetSpec   `json:"spec"`
	Status     wireFleetStatus `json:"status"`
}

type wireFleetSpec struct {
	Selector      *wireSelector   `json:"selector,omitempty"`
	Template      wireTemplate    `json:"template"`
	RolloutPolicy json.RawMessage `json:"rolloutPolicy,omitempty"`
}

type wireSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

type wireTemplate struct {
	Metadata wireTemplateMeta `json:"metadata"`
	Spec     json.RawMessage  `json:"spec"`
}

type wireTemplateMeta struct {
	Labels map[string]string `json:"labels,omitempty"`
}

type wireFleetStatus struct {
	Conditions     []flightctl.Condition     `json:"conditions"`
	DevicesSummary *flightctl.DevicesSummary `json:"devicesSummary,omitempty"`
}

// inMeta is the metadata of a request body. Fields the server manages
// (owner, annotations, generation, creationTimestamp) are not decoded at
// all: the real server nils them out before looking at a body.
type inMeta struct {
	Name            *string           `json:"name"`
	Labels          map[string]string `json:"labels"`
	ResourceVersion *string           `json:"resourceVersion"`
}

// inDevice is the typed part of a Device request body; the spec is taken
// from the generic decoding so that no field is lost.
type inDevice struct {
	Metadata inMeta `json:"metadata"`
}

// inFleet is the typed part of a Fleet request body.
type inFleet struct {
	Metadata inMeta       `json:"metadata"`
	Spec     *inFleetSpec `json:"spec"`
}

type inFleetSpec struct {
	Selector      *wireSelector   `json:"selector"`
	RolloutPolicy json.RawMessage `json:"rolloutPolicy"`
	Template      struct {
		Metadata wireTemplateMeta `json:"metadata"`
	} `json:"template"`
}

// listEnvelope is the fixed part of every list response. Items are spliced
// in as pre-encoded JSON so that a 1000-device page costs one copy per
// device rather than a fresh encoding.
type listEnvelope struct {
	Kind     string
	Metadata flightctl.ListMeta
	Summary  *flightctl.DevicesSummary
}

// marshal encodes v without HTML escaping. The real server does not escape
// '<', '>' or '&' either, and compose files are full of '&&'.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// mustMarshal is marshal for values built by the simulator itself, which
// cannot fail to encode.
func mustMarshal(v any) []byte {
	b, err := marshal(v)
	if err != nil {
		panic("flightctlsim: encoding internal value: " + err.Error())
	}
	return b
}

// encodeList writes a list response around pre-encoded items, with keys in
// the order the real server uses (alphabetical).
func encodeList(env listEnvelope, items [][]byte) []byte {
	size := 128
	for _, it := range items {
		size += len(it) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	buf.WriteString(`{"apiVersion":"` + flightctl.APIVersion + `","items":[`)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it)
	}
	buf.WriteString(`],"kind":"` + env.Kind + `","metadata":`)
	buf.Write(mustMarshal(env.Metadata))
	if env.Summary != nil {
		buf.WriteString(`,"summary":`)
		buf.Write(mustMarshal(env.Summary))
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
