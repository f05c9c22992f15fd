package flightctlsim

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Fleet endpoints of the user API.

// fleetBody is a parsed and validated Fleet request body.
type fleetBody struct {
	name           string
	labels         map[string]string
	rv             *string
	selector       map[string]string
	hasSelector    bool
	templateLabels map[string]string
	spec           []byte
	specObj        map[string]any
	rolloutPolicy  []byte
}

// parseFleetBody runs the schema checks and validation of a Fleet body.
func parseFleetBody(raw []byte) (*fleetBody, string) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, "API Error: request body has an error: doesn't match schema #/components/schemas/Fleet: value must be an object"
	}
	if msg := checkTopLevel(body, "Fleet", []string{"apiVersion", "kind", "metadata", "spec"}); msg != "" {
		return nil, msg
	}
	spec, ok := body["spec"].(map[string]any)
	if !ok {
		return nil, requestBodyError("Fleet", "/spec", "value must be an object")
	}
	tmpl, ok := spec["template"].(map[string]any)
	if !ok {
		return nil, requestBodyError("Fleet", "/spec/template", `property "template" is missing`)
	}
	if _, ok := tmpl["spec"]; !ok {
		return nil, requestBodyError("Fleet", "/spec/template/spec", `property "spec" is missing`)
	}
	if msg := checkSpecSchema(tmpl["spec"], "Fleet", "/spec/template/spec"); msg != "" {
		return nil, msg
	}
	var in inFleet
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	fb := &fleetBody{labels: in.Metadata.Labels, rv: in.Metadata.ResourceVersion}
	if in.Metadata.Name != nil {
		fb.name = *in.Metadata.Name
	}
	if in.Spec.Selector != nil {
		fb.selector, fb.hasSelector = in.Spec.Selector.MatchLabels, true
	}
	fb.templateLabels = in.Spec.Template.Metadata.Labels
	if len(in.Spec.RolloutPolicy) > 0 && string(in.Spec.RolloutPolicy) != "null" {
		var buf bytes.Buffer
		if err := json.Compact(&buf, in.Spec.RolloutPolicy); err == nil {
			fb.rolloutPolicy = buf.Bytes()
		}
	}
	fb.specObj, _ = tmpl["spec"].(map[string]any)
	if fb.specObj == nil {
		fb.specObj = map[string]any{}
	}
	fb.spec = mustMarshal(fb.specObj)
	errs := append(validateResourceName(in.Metadata.Name), validateLabels(fb.labels, "metadata.labels")...)
	errs = append(errs, validateLabels(fb.selector, "spec.selector.matchLabels")...)
	errs = append(errs, validateSpec(fb.specObj, true)...)
	if len(errs) > 0 {
		return nil, joinLines(errs)
	}
	return fb, ""
}

// createFleet adds a fleet record. Caller holds s.mu.
func (s *Sim) createFleet(fb fleetBody, by actor) *fleet {
	f := &fleet{
		name:           fb.name,
		labels:         maps.Clone(fb.labels),
		annotations:    map[string]string{},
		rv:             1,
		generation:     1,
		created:        microTime(s.now()),
		selector:       maps.Clone(fb.selector),
		hasSelector:    fb.hasSelector,
		templateLabels: maps.Clone(fb.templateLabels),
		templateSpec:   fb.spec,
		rolloutPolicy:  fb.rolloutPolicy,
	}
	s.fleets[f.name] = f
	s.fleetNames = insertSorted(s.fleetNames, f.name)
	s.record(flightctl.KindFleet, f.name, reasonResourceCreated, "Fleet was created successfully.", nil, by)
	s.queueFleetWorker(f)
	return f
}

// fleetJSON encodes a fleet, with its devices summary when asked for.
// Caller holds s.mu (read).
func (s *Sim) fleetJSON(f *fleet, withSummary bool) []byte {
	var summary *flightctl.DevicesSummary
	if withSummary {
		c := newSummaryCounter()
		for _, d := range s.ownedDevices(f) {
			c.add(d)
		}
		summary = c.result()
	}
	return mustMarshal(f.wire(summary))
}

// listFleets serves GET /api/v1/fleets.
func (s *Sim) listFleets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lp, msg := parseListParams(q)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	fs, msg := parseFieldSelector(q.Get("fieldSelector"), fleetFieldSelectors)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	sel, msg := parseLabelSelector(q.Get("labelSelector"))
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	withSummary := q.Get("addDevicesSummary") == "true"
	match := func(f *fleet) bool {
		return sel.Matches(labels.Set(f.labels)) && fs.matches(fleetField(f))
	}
	var items [][]byte
	var meta flightctl.ListMeta
	s.mu.RLock()
	start := 0
	if lp.cont != nil && len(lp.cont.Names) > 0 {
		start = sort.SearchStrings(s.fleetNames, lp.cont.Names[0])
	}
	i := start
	for ; i < len(s.fleetNames) && len(items) < lp.limit; i++ {
		if f := s.fleets[s.fleetNames[i]]; match(f) {
			items = append(items, s.fleetJSON(f, withSummary))
		}
	}
	var remaining int64
	next := ""
	for ; i < len(s.fleetNames); i++ {
		if f := s.fleets[s.fleetNames[i]]; match(f) {
			if next == "" {
				next = f.name
			}
			remaining++
		}
	}
	s.mu.RUnlock()
	if remaining > 0 {
		meta = flightctl.ListMeta{Continue: encodeContinue([]string{next}, remaining), RemainingItemCount: &remaining}
	}
	writeJSON(w, http.StatusOK, encodeList(listEnvelope{Kind: flightctl.KindFleetList, Metadata: meta}, items))
}

// fleetField resolves fleet field selector names.
func fleetField(f *fleet) fieldGetter {
	return func(key string) (string, bool) {
		switch key {
		case "metadata.name":
			return f.name, true
		case "metadata.owner":
			return "", false
		case "metadata.creationTimestamp":
			return f.created.Format(time.RFC3339Nano), true
		}
		return "", false
	}
}

// createFleetHandler serves POST /api/v1/fleets.
func (s *Sim) createFleetHandler(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	fb, msg := parseFleetBody(raw)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	if _, exists := s.fleets[fb.name]; exists {
		s.mu.Unlock()
		writeStatus(w, http.StatusConflict, msgExists)
		return
	}
	f := s.createFleet(*fb, userActor(requestID(r)))
	body := s.fleetJSON(f, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// getFleet serves GET /api/v1/fleets/{name}.
func (s *Sim) getFleet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.RLock()
	f := s.fleets[name]
	var body []byte
	if f != nil {
		body = s.fleetJSON(f, r.URL.Query().Get("addDevicesSummary") == "true")
	}
	s.mu.RUnlock()
	if f == nil {
		notFound(w, flightctl.KindFleet, name)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// replaceFleet serves PUT /api/v1/fleets/{name}.
func (s *Sim) replaceFleet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	fb, msg := parseFleetBody(raw)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	if fb.name != name {
		writeStatus(w, http.StatusBadRequest, msgNameMismatch)
		return
	}
	var wantRV int64 = -1
	if fb.rv != nil && *fb.rv != "" {
		n, err := strconv.ParseInt(*fb.rv, 10, 64)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, msgBadRV)
			return
		}
		wantRV = n
	}
	by := userActor(requestID(r))
	s.mu.Lock()
	f := s.fleets[name]
	if f == nil {
		f = s.createFleet(*fb, by)
		body := s.fleetJSON(f, false)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, body)
		return
	}
	if wantRV >= 0 && wantRV != f.rv {
		s.mu.Unlock()
		writeStatus(w, http.StatusConflict, msgConflict)
		return
	}
	if s.faults.conflict() {
		s.stats.fault("conflict")
		s.mu.Unlock()
		writeStatus(w, http.StatusConflict, msgConflict)
		return
	}
	var fields []string
	if !maps.Equal(f.labels, fb.labels) {
		f.labels = maps.Clone(fb.labels)
		fields = append(fields, "labels")
	}
	specChanged := f.hasSelector != fb.hasSelector || !maps.Equal(f.selector, fb.selector) ||
		!maps.Equal(f.templateLabels, fb.templateLabels) || !bytes.Equal(f.templateSpec, fb.spec) ||
		!bytes.Equal(f.rolloutPolicy, fb.rolloutPolicy)
	if specChanged {
		f.selector, f.hasSelector = maps.Clone(fb.selector), fb.hasSelector
		f.templateLabels = maps.Clone(fb.templateLabels)
		f.templateSpec = fb.spec
		f.rolloutPolicy = fb.rolloutPolicy
		f.generation++
		fields = append(fields, "spec")
		s.queueFleetWorker(f)
	}
	f.bump()
	s.recordUpdated(flightctl.KindFleet, f.name, fields, "", "", by)
	body := s.fleetJSON(f, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// deleteFleet serves DELETE /api/v1/fleets/{name}. The devices it owned
// are released by the worker shortly after, as on the real server. A
// missing fleet answers 200 Status Success, as on Flightctl v1.2.0.
func (s *Sim) deleteFleet(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	if _, ok := s.fleets[name]; !ok {
		s.mu.Unlock()
		writeStatus(w, http.StatusOK, "")
		return
	}
	delete(s.fleets, name)
	s.fleetNames = removeSorted(s.fleetNames, name)
	s.record(flightctl.KindFleet, name, reasonResourceDeleted, "Fleet was deleted successfully.", nil, userActor(requestID(r)))
	for _, dn := range s.deviceNames {
		if d := s.devices[dn]; d.owner == "Fleet/"+name || d.multiOwners != "" {
			s.queueDeviceWorker(d)
		}
	}
	s.mu.Unlock()
	writeStatus(w, http.StatusOK, "")
}
