package flightctlsim

import (
	"net/http"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// The events endpoint: newest first (order=asc: oldest first, as a
// poller reading since a checkpoint asks), with Flightctl's event field
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
	asc := false
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		asc = true
	default:
		writeStatus(w, http.StatusBadRequest, `API Error: parameter "order" in query has an error: value is not one of the allowed values ["asc","desc"]`)
		return
	}
	var items [][]byte
	var meta flightctl.ListMeta
	s.mu.RLock()
	all := s.events.visible()
	// Walk from the first event due (newest or, with asc, oldest) in the
	// listing's direction.
	i, step := len(all)-1, -1
	if asc {
		i, step = 0, 1
	}
	if !after.IsZero() {
		i = s.events.indexBefore(all, after)
		if asc {
			// The token names the next event to return.
			if i < 0 || !all[i].Metadata.CreationTimestamp.Equal(after) {
				i++
			}
		}
	}
	in := func(i int) bool { return i >= 0 && i < len(all) }
	for ; in(i) && len(items) < lp.limit; i += step {
		if e := &all[i]; fs.matches(eventField(e)) {
			items = append(items, mustMarshal(e))
		}
	}
	var remaining int64
	var next *flightctl.Event
	for ; in(i); i += step {
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
