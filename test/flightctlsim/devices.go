package flightctlsim

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Device endpoints of the user API.

// deviceBody is a parsed and validated Device request body.
type deviceBody struct {
	name    *string
	labels  map[string]string
	rv      *string
	spec    []byte
	specObj map[string]any
}

// parseDeviceBody runs the schema checks and the handler validation of a
// Device body, returning the first stage's message on failure.
func parseDeviceBody(raw []byte) (*deviceBody, string) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, "API Error: request body has an error: doesn't match schema #/components/schemas/Device: value must be an object"
	}
	if msg := checkTopLevel(body, "Device", []string{"apiVersion", "kind", "metadata"}); msg != "" {
		return nil, msg
	}
	if msg := checkSpecSchema(body["spec"], "Device", "/spec"); msg != "" {
		return nil, msg
	}
	if msg := checkStatusSchema(body["status"], "Device"); msg != "" {
		return nil, msg
	}
	var in inDevice
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, "API Error: request body has an error: failed to decode request body: " + err.Error()
	}
	b := &deviceBody{name: in.Metadata.Name, labels: in.Metadata.Labels, rv: in.Metadata.ResourceVersion}
	b.specObj, _ = body["spec"].(map[string]any)
	if b.specObj == nil {
		b.specObj = map[string]any{}
	}
	b.spec = mustMarshal(b.specObj)
	errs := append(validateResourceName(b.name), validateLabels(b.labels, "metadata.labels")...)
	errs = append(errs, validateSpec(b.specObj, false)...)
	if len(errs) > 0 {
		return nil, joinLines(errs)
	}
	return b, ""
}

// joinLines joins validation errors the way errors.Join prints them.
func joinLines(errs []string) string { return strings.Join(errs, "\n") }

// createDevice adds a device record. Caller holds s.mu.
func (s *Sim) createDevice(name string, lbls map[string]string, spec []byte, specObj map[string]any, by actor, now time.Time) *device {
	d := &device{
		name:        name,
		labels:      maps.Clone(lbls),
		annotations: map[string]string{},
		rv:          1,
		generation:  1,
		created:     microTime(now),
		status:      newStatus(),
		offline:     true,
	}
	d.setSpec(spec, specObj)
	s.devices[name] = d
	s.deviceNames = insertSorted(s.deviceNames, name)
	s.record(flightctl.KindDevice, name, reasonResourceCreated, "Device was created successfully.", nil, by)
	s.queueDeviceWorker(d)
	return d
}

// updateDevice applies a validated PUT or PATCH to an existing device:
// one write, an event naming what changed, and the worker if needed.
func (s *Sim) updateDevice(d *device, lbls map[string]string, spec []byte, specObj map[string]any, by actor) {
	var fields []string
	if !maps.Equal(d.labels, lbls) && (len(d.labels) != 0 || len(lbls) != 0) {
		d.labels = maps.Clone(lbls)
		fields = append(fields, "labels")
	}
	if !bytes.Equal(d.spec, spec) {
		d.setSpec(spec, specObj)
		d.generation++
		fields = append(fields, "spec")
	}
	d.bump()
	s.recordUpdated(flightctl.KindDevice, d.name, fields, "", "", by)
	if len(fields) > 0 {
		s.queueDeviceWorker(d)
	}
}

// listDevices serves GET /api/v1/devices.
func (s *Sim) listDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lp, msg := parseListParams(q)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	fs, msg := parseFieldSelector(q.Get("fieldSelector"), deviceFieldSelectors)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	sel, msg := parseLabelSelector(q.Get("labelSelector"))
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	summaryOnly := q.Get("summaryOnly") == "true"
	if summaryOnly && (q.Has("limit") || q.Has("continue")) {
		writeStatus(w, http.StatusBadRequest, "parameters such as 'limit', and 'continue' are not supported when 'summaryOnly' is true")
		return
	}
	match := func(d *device) bool {
		return sel.Matches(labels.Set(d.labels)) && matchDevice(fs, d)
	}
	counter := newSummaryCounter()
	var items [][]byte
	var meta flightctl.ListMeta
	s.mu.RLock()
	if summaryOnly {
		for _, name := range s.deviceNames {
			if d := s.devices[name]; match(d) {
				counter.add(d)
			}
		}
	} else {
		start := 0
		if lp.cont != nil && len(lp.cont.Names) > 0 {
			start = sort.SearchStrings(s.deviceNames, lp.cont.Names[0])
		}
		i := start
		for ; i < len(s.deviceNames) && len(items) < lp.limit; i++ {
			d := s.devices[s.deviceNames[i]]
			if match(d) {
				items = append(items, d.encoded())
				counter.add(d)
			}
		}
		var remaining int64
		next := ""
		for ; i < len(s.deviceNames); i++ {
			if d := s.devices[s.deviceNames[i]]; match(d) {
				if next == "" {
					next = d.name
				}
				remaining++
			}
		}
		if remaining > 0 {
			meta = flightctl.ListMeta{Continue: encodeContinue([]string{next}, remaining), RemainingItemCount: &remaining}
		}
	}
	s.mu.RUnlock()
	s.stats.listed(len(items))
	noteListed(r, len(items))
	writeJSON(w, http.StatusOK, encodeList(listEnvelope{Kind: flightctl.KindDeviceList, Metadata: meta, Summary: counter.result()}, items))
}

// createDeviceHandler serves POST /api/v1/devices.
func (s *Sim) createDeviceHandler(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	b, msg := parseDeviceBody(raw)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	if _, exists := s.devices[*b.name]; exists {
		s.mu.Unlock()
		writeStatus(w, http.StatusConflict, msgExists)
		return
	}
	body := s.createdDevice(*b.name, b, userActor(requestID(r)))
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
}

// createdDevice creates a device from a body and encodes the response.
// Caller holds s.mu.
func (s *Sim) createdDevice(name string, b *deviceBody, by actor) []byte {
	now := s.now()
	d := s.createDevice(name, b.labels, b.spec, b.specObj, by, now)
	if s.opts.APIDevicesConnected {
		d.agent = newAgent(name, DeviceConfig{}, 0)
		d.agent.connected = true
		s.agentReport(d)
	}
	wd := d.wire()
	// The creation response shows the creation time at full precision;
	// later reads show what the database kept (microseconds).
	full := now.UTC()
	wd.Metadata.CreationTimestamp = &full
	return mustMarshal(wd)
}

// getDevice serves GET /api/v1/devices/{name} and .../status.
func (s *Sim) getDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.RLock()
	d := s.devices[name]
	var body []byte
	if d != nil {
		body = d.encoded()
	}
	s.mu.RUnlock()
	if d == nil {
		notFound(w, flightctl.KindDevice, name)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// replaceDevice serves PUT /api/v1/devices/{name}: an upsert, conditional
// when the body carries metadata.resourceVersion.
func (s *Sim) replaceDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	b, msg := parseDeviceBody(raw)
	if msg == "" {
		msg = s.faults.rejected(b.spec)
	}
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	if *b.name != name {
		writeStatus(w, http.StatusBadRequest, msgNameMismatch)
		return
	}
	var wantRV int64 = -1
	if b.rv != nil && *b.rv != "" {
		n, err := strconv.ParseInt(*b.rv, 10, 64)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, msgBadRV)
			return
		}
		wantRV = n
	}
	by := userActor(requestID(r))
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		body := s.createdDevice(name, b, by)
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, body)
		return
	}
	code, msg := s.writeAllowed(d, b.spec, wantRV)
	if code != 0 {
		s.mu.Unlock()
		writeStatus(w, code, msg)
		return
	}
	s.updateDevice(d, b.labels, b.spec, b.specObj, by)
	body := d.encoded()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// writeAllowed applies the real server's write preconditions in order:
// fleet ownership, resourceVersion, then any injected conflict. Caller
// holds s.mu.
func (s *Sim) writeAllowed(d *device, spec []byte, wantRV int64) (int, string) {
	if d.owner != "" && !bytes.Equal(spec, d.spec) {
		return http.StatusConflict, msgOwned
	}
	if wantRV >= 0 && wantRV != d.rv {
		return http.StatusConflict, msgConflict
	}
	if s.faults.conflict() {
		s.stats.fault("conflict")
		return http.StatusConflict, msgConflict
	}
	return 0, ""
}

// patchDevice serves PATCH /api/v1/devices/{name}.
func (s *Sim) patchDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if msg := checkPatchContentType(r); msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	patch, msg := decodePatch(raw)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		notFound(w, flightctl.KindDevice, name)
		return
	}
	current := d.encoded()
	patched, msg := applyPatch(patch, current)
	if msg != "" {
		s.mu.Unlock()
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	b, msg := parsePatchedDevice(current, patched)
	if msg == "" {
		// The patched device is validated as a PUT's body is, so refused
		// content is refused whichever way it is written.
		msg = s.faults.rejected(b.spec)
	}
	if msg != "" {
		s.mu.Unlock()
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	if code, msg := s.writeAllowed(d, b.spec, -1); code != 0 {
		s.mu.Unlock()
		writeStatus(w, code, msg)
		return
	}
	s.updateDevice(d, b.labels, b.spec, b.specObj, userActor(requestID(r)))
	body := d.encoded()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// parsePatchedDevice validates a patched device document against the
// current one. Only labels and spec may change; changes to server-managed
// metadata are ignored, and name, apiVersion, kind and status are
// immutable. No schema stage runs here (the real server only schema-checks
// the patch itself), so application errors come from the handler checks.
func parsePatchedDevice(current, patched []byte) (*deviceBody, string) {
	nv, err := decodeJSON(patched)
	if err != nil {
		return nil, err.Error()
	}
	next, ok := nv.(map[string]any)
	if !ok {
		return nil, "failed to apply JSON patch: document is not an object"
	}
	var in inDevice
	if err := json.Unmarshal(patched, &in); err != nil {
		return nil, err.Error()
	}
	b := &deviceBody{name: in.Metadata.Name, labels: in.Metadata.Labels}
	switch spec := next["spec"].(type) {
	case nil:
		b.specObj = map[string]any{}
	case map[string]any:
		b.specObj = spec
	default:
		return nil, "json: cannot unmarshal spec into Go struct field Device.spec of type v1beta1.DeviceSpec"
	}
	b.spec = mustMarshal(b.specObj)
	errs := append(validateResourceName(b.name), validateLabels(b.labels, "metadata.labels")...)
	errs = append(errs, validateSpec(b.specObj, false)...)
	cv, _ := decodeJSON(current)
	cur, _ := cv.(map[string]any)
	curMeta, _ := cur["metadata"].(map[string]any)
	if b.name == nil || curMeta["name"] != *b.name {
		errs = append(errs, "metadata.name is immutable")
	}
	if next["apiVersion"] != cur["apiVersion"] {
		errs = append(errs, "apiVersion is immutable")
	}
	if next["kind"] != cur["kind"] {
		errs = append(errs, "kind is immutable")
	}
	if !reflect.DeepEqual(next["status"], cur["status"]) {
		errs = append(errs, msgStatusImmut)
	}
	if len(errs) > 0 {
		return nil, joinLines(errs)
	}
	return b, ""
}

// deleteDevice serves DELETE /api/v1/devices/{name}. Like Flightctl
// v1.2.0 it is idempotent: deleting a device that does not exist answers
// 200 Status Success too (and records no event).
func (s *Sim) deleteDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	if _, ok := s.devices[name]; !ok {
		s.mu.Unlock()
		writeStatus(w, http.StatusOK, "")
		return
	}
	delete(s.devices, name)
	s.deviceNames = removeSorted(s.deviceNames, name)
	s.record(flightctl.KindDevice, name, reasonResourceDeleted, "Device was deleted successfully.", nil, userActor(requestID(r)))
	s.mu.Unlock()
	writeStatus(w, http.StatusOK, "")
}

// replaceDeviceStatus serves PUT /api/v1/devices/{name}/status: a client
// (normally the agent) replaces the whole status. The server keeps its own
// view where the body says Unknown, recomputes the server-side parts, and
// treats the report as a sign of life for disconnect detection, but it
// does not move lastSeen (only the agent endpoint does).
func (s *Sim) replaceDeviceStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	v, err := decodeJSON(raw)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "API Error: request body has an error: failed to decode request body: "+err.Error())
		return
	}
	body, _ := v.(map[string]any)
	if body == nil {
		writeStatus(w, http.StatusBadRequest, "API Error: request body has an error: doesn't match schema #/components/schemas/Device: value must be an object")
		return
	}
	msg := checkTopLevel(body, "Device", []string{"apiVersion", "kind", "metadata"})
	if msg == "" {
		msg = checkStatusSchema(body["status"], "Device")
	}
	if msg == "" && body["status"] == nil {
		msg = requestBodyError("Device", "/status", `property "status" is missing`)
	}
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	var in struct {
		Metadata inMeta                 `json:"metadata"`
		Status   flightctl.DeviceStatus `json:"status"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		writeStatus(w, http.StatusBadRequest, "API Error: request body has an error: failed to decode request body: "+err.Error())
		return
	}
	if errs := validateResourceName(in.Metadata.Name); len(errs) > 0 {
		writeStatus(w, http.StatusBadRequest, joinLines(errs))
		return
	}
	if *in.Metadata.Name != name {
		writeStatus(w, http.StatusBadRequest, msgNameMismatch)
		return
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		notFound(w, flightctl.KindDevice, name)
		return
	}
	before := statusKeys(d)
	d.status = keepServerStatus(in.Status, d.status)
	d.statusSeen = s.now()
	d.offline = false
	s.serverSideStatus(d)
	d.bump()
	s.statusEvents(d, before, userActor(requestID(r)))
	if d.agent == nil || !d.agent.connected {
		s.armDetection(d)
	}
	out := d.encoded()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// keepServerStatus merges a reported status with the stored one: where
// the report says Unknown the server keeps what it knew, as the real
// server does so that a placeholder cannot erase a real state.
func keepServerStatus(next, stored flightctl.DeviceStatus) flightctl.DeviceStatus {
	if next.Summary.Status == flightctl.DeviceSummaryUnknown {
		next.Summary.Status = stored.Summary.Status
	}
	if next.Lifecycle.Status == "Unknown" {
		next.Lifecycle.Status = stored.Lifecycle.Status
	}
	if next.Updated.Status == flightctl.DeviceUpdatedUnknown {
		next.Updated.Status = stored.Updated.Status
	}
	if next.ApplicationsSummary.Status == flightctl.ApplicationsSummaryUnknown {
		next.ApplicationsSummary.Status = stored.ApplicationsSummary.Status
	}
	if string(next.Integrity["status"]) == `"Unknown"` {
		next.Integrity = stored.Integrity
	}
	if next.Applications == nil {
		next.Applications = []flightctl.ApplicationStatus{}
	}
	if next.Conditions == nil {
		next.Conditions = []flightctl.Condition{}
	}
	if next.SystemInfo == nil {
		next.SystemInfo = map[string]string{}
	}
	return cloneStatus(next)
}

// patchDeviceStatus serves PATCH /api/v1/devices/{name}/status with the
// v1.2 server's observable behaviour: for a device whose spec has
// applications it answers 400 "spec is immutable"; otherwise it accepts
// the patch, counts a write, and leaves the status as it was.
func (s *Sim) patchDeviceStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if msg := checkPatchContentType(r); msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	patch, msg := decodePatch(raw)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		notFound(w, flightctl.KindDevice, name)
		return
	}
	if _, msg := applyPatch(patch, d.encoded()); msg != "" {
		s.mu.Unlock()
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	if d.hasApplications() {
		s.mu.Unlock()
		writeStatus(w, http.StatusBadRequest, msgSpecImmutable)
		return
	}
	d.bump()
	body := d.encoded()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// getDeviceLastSeen serves GET /api/v1/devices/{name}/lastseen: 200 with
// the time, 204 with no body if the agent never reported.
func (s *Sim) getDeviceLastSeen(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.RLock()
	d := s.devices[name]
	var seen flightctl.LastSeen
	if d != nil {
		seen.LastSeen = s.currentLastSeen(d)
	}
	s.mu.RUnlock()
	switch {
	case d == nil:
		notFound(w, flightctl.KindDevice, name)
	case seen.LastSeen.IsZero():
		writeNoContent(w)
	default:
		writeJSON(w, http.StatusOK, mustMarshal(seen))
	}
}

// getRenderedDevice serves GET /api/v1/devices/{name}/rendered: the device
// with the last rendered spec, as an agent receives it (with the empty
// config and consoles lists the renderer adds). 204 when the caller
// already has that version (knownRenderedVersion) or nothing is rendered.
func (s *Sim) getRenderedDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.RLock()
	d := s.devices[name]
	var body []byte
	noContent := false
	if d != nil {
		known := r.URL.Query().Get("knownRenderedVersion")
		if d.renderedVersion == 0 || (known != "" && known == d.renderedAnnotation()) {
			noContent = true
		} else {
			v, _ := decodeJSON(d.renderedSpec)
			rendered, _ := v.(map[string]any)
			if rendered == nil {
				rendered = map[string]any{}
			}
			for _, k := range []string{"applications", "config", "consoles"} {
				if _, ok := rendered[k]; !ok {
					rendered[k] = []any{}
				}
			}
			wd := d.wire()
			wd.Spec = mustMarshal(rendered)
			body = mustMarshal(wd)
		}
	}
	s.mu.RUnlock()
	switch {
	case d == nil:
		notFound(w, flightctl.KindDevice, name)
	case noContent:
		writeNoContent(w)
	default:
		writeJSON(w, http.StatusOK, body)
	}
}

// decommissionDevice serves PUT /api/v1/devices/{name}/decommission as
// v1.2.0 does: the request ({"target": "Unenroll"|"FactoryReset"}) becomes
// spec.decommissioning and the lifecycle turns Decommissioning. The
// simulated agent goes no further (a real one wipes its workloads and
// reports Decommissioned); what matters to clients is that the device
// runs no workloads any more.
func (s *Sim) decommissionDevice(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	raw, ok := readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Target string `json:"target"`
	}
	if err := json.Unmarshal(raw, &req); err != nil || (req.Target != "Unenroll" && req.Target != "FactoryReset") {
		writeStatus(w, http.StatusBadRequest, `request body has an error: doesn't match schema #/components/schemas/DeviceDecommission: target must be one of "FactoryReset", "Unenroll"`)
		return
	}
	by := userActor(requestID(r))
	s.mu.Lock()
	d := s.devices[name]
	if d == nil {
		s.mu.Unlock()
		notFound(w, flightctl.KindDevice, name)
		return
	}
	obj := map[string]any{}
	if len(d.spec) > 0 {
		_ = json.Unmarshal(d.spec, &obj)
	}
	obj[flightctl.SpecDecommissioning] = map[string]any{"target": req.Target}
	spec, _ := json.Marshal(obj)
	s.updateDevice(d, d.labels, spec, obj, by)
	d.decommissioning = true
	d.status.Lifecycle = flightctl.StatusWithInfo{Status: flightctl.DeviceLifecycleDecommissioning}
	body := d.encoded()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}
