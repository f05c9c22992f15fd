package flightctlsim

import (
	"net/http"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The events endpoint: newest first, with Flightctl's event field
// selectors and a continue token holding the next event's timestamp and
// name.

// eventField resolves event field selector names.
func eventField(e *flightctl.Event) fieldGetter {
	return func(key string) (string, bool) {
		switch key {
		case "actor":
			return e.Actor, true
		case "involvedObject.kind":
			return e.InvolvedObject.Kind, true
		case "involvedObject.name":
			return e.InvolvedObject.Name, true
		case "metadata.creationTimestamp":
			return e.Metadata.CreationTimestamp.Format(time.RFC3339Nano), true
		case "metadata.name":
			return e.Metadata.Name, true
		case "metadata.owner":
			return "", false
		case "reason":
			return e.Reason, true
		case "type":
			return e.Type, true
		}
		return "", false
	}
}

// listEvents serves GET /api/v1/events.
func (s *Sim) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lp, msg := parseListParams(q)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	var after time.Time
	if lp.cont != nil && len(lp.cont.Names) > 0 {
		t, err := time.Parse(time.RFC3339Nano, lp.cont.Names[0])
		if err != nil {
			writeStatus(w, http.StatusBadRequest, "failed to parse continue parameter: "+err.Error())
			return
		}
		after = t
	}
	fs, msg := parseFieldSelector(q.Get("fieldSelector"), eventFieldSelectors)
	if msg != "" {
		writeStatus(w, http.StatusBadRequest, msg)
		return
	}
	var items [][]byte
	var meta flightctl.ListMeta
	s.mu.RLock()
	all := s.events.visible()
	i := len(all) - 1
	if !after.IsZero() {
		i = s.events.indexBefore(all, after)
	}
	for ; i >= 0 && len(items) < lp.limit; i-- {
		if e := &all[i]; fs.matches(eventField(e)) {
			items = append(items, mustMarshal(e))
		}
	}
	var remaining int64
	var next *flightctl.Event
	for ; i >= 0; i-- {
		if e := &all[i]; fs.matches(eventField(e)) {
			if next == nil {
				next = e
			}
			remaining++
		}
	}
	s.mu.RUnlock()
	if remaining > 0 {
		names := []string{next.Metadata.CreationTimestamp.Format(time.RFC3339Nano), next.Metadata.Name}
		meta = flightctl.ListMeta{Continue: encodeContinue(names, remaining), RemainingItemCount: &remaining}
	}
	writeJSON(w, http.StatusOK, encodeList(listEnvelope{Kind: flightctl.KindEventList, Metadata: meta}, items))
}
