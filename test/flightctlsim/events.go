package flightctlsim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Events are kept in creation order with strictly increasing timestamps,
// so that the newest-first listing and its continue token (timestamp plus
// name, like the real server's) need no sorting.

// Event reasons the simulator records, named as on the real server.
const (
	reasonResourceCreated        = "ResourceCreated"
	reasonResourceUpdated        = "ResourceUpdated"
	reasonResourceDeleted        = "ResourceDeleted"
	reasonDeviceSpecValid        = "DeviceSpecValid"
	reasonFleetValid             = "FleetValid"
	reasonDeviceConnected        = flightctl.EventReasonDeviceConnected
	reasonDeviceDisconnected     = flightctl.EventReasonDeviceDisconnected
	reasonContentUpToDate        = "DeviceContentUpToDate"
	reasonContentOutOfDate       = "DeviceContentOutOfDate"
	reasonContentUpdating        = "DeviceContentUpdating"
	reasonAppHealthy             = "DeviceApplicationHealthy"
	reasonAppDegraded            = "DeviceApplicationDegraded"
	reasonAppError               = "DeviceApplicationError"
	reasonMultipleOwnersDetected = "DeviceMultipleOwnersDetected"
)

// warningReasons are the reasons the real server records as Warning.
var warningReasons = map[string]bool{
	reasonDeviceDisconnected:     true,
	reasonAppDegraded:            true,
	reasonAppError:               true,
	reasonMultipleOwnersDetected: true,
	"DeviceSpecInvalid":          true,
	"DeviceUpdateFailed":         true,
	"ResourceCreationFailed":     true,
	"ResourceUpdateFailed":       true,
	"ResourceDeletionFailed":     true,
}

// actor says who caused an event: the user API (with the request ID the
// real server puts in an annotation), the server's worker, the periodic
// disconnect check, or a device's agent.
type actor struct {
	name      string
	component string
	requestID string
}

var (
	actorWorker   = actor{name: "service:flightctl-worker", component: "flightctl-worker"}
	actorPeriodic = actor{name: "service:flightctl-periodic", component: "flightctl-periodic"}
)

// userActor is the actor of a user API request. The simulator has one
// identity, and a real server names a token without a username "none".
func userActor(requestID string) actor {
	return actor{name: "user:none", component: "flightctl-api", requestID: requestID}
}

// agentActor is the actor of a device agent's status report.
func agentActor(name string) actor {
	return actor{name: "device:" + name, component: "flightctl-api"}
}

// eventLog is the bounded, time-ordered event store.
type eventLog struct {
	items []flightctl.Event
	last  time.Time
	max   int
}

// add appends an event, giving it a timestamp after every earlier one.
func (l *eventLog) add(e flightctl.Event, now time.Time) {
	t := microTime(now)
	if !t.After(l.last) {
		t = l.last.Add(time.Microsecond)
	}
	l.last = t
	e.Metadata.CreationTimestamp = &t
	l.items = append(l.items, e)
	// Trim in batches so that adding stays O(1) amortised.
	if over := len(l.items) - l.max; over > l.max/4 {
		l.items = append([]flightctl.Event(nil), l.items[over:]...)
	}
}

// visible returns the retained events, oldest first.
func (l *eventLog) visible() []flightctl.Event {
	if len(l.items) > l.max {
		return l.items[len(l.items)-l.max:]
	}
	return l.items
}

// indexBefore returns the index of the newest event at or before t.
func (l *eventLog) indexBefore(items []flightctl.Event, t time.Time) int {
	i := sort.Search(len(items), func(i int) bool { return items[i].Metadata.CreationTimestamp.After(t) })
	return i - 1
}

// record adds an event about an object. Caller holds Sim.mu.
func (s *Sim) record(kind, name, reason, message string, details map[string]json.RawMessage, by actor) {
	typ := "Normal"
	if warningReasons[reason] {
		typ = "Warning"
	}
	var ann map[string]string
	if by.requestID != "" {
		ann = map[string]string{"event-controller/requestID": by.requestID}
	}
	s.events.add(flightctl.Event{
		APIVersion:     flightctl.APIVersion,
		Kind:           flightctl.KindEvent,
		Metadata:       flightctl.ObjectMeta{Name: newUUID(), Annotations: ann},
		InvolvedObject: flightctl.ObjectReference{Kind: kind, Name: name},
		Reason:         reason,
		Message:        message,
		Type:           typ,
		Source:         flightctl.EventSource{Component: by.component},
		Actor:          by.name,
		Details:        details,
	}, s.now())
}

// recordUpdated adds a ResourceUpdated event listing the changed fields.
func (s *Sim) recordUpdated(kind, name string, fields []string, prevOwner, newOwner string, by actor) {
	if len(fields) == 0 {
		return
	}
	ownerJSON := func(o string) json.RawMessage {
		if o == "" {
			return json.RawMessage("null")
		}
		return mustMarshal(o)
	}
	details := map[string]json.RawMessage{
		"detailType":    json.RawMessage(`"ResourceUpdated"`),
		"updatedFields": mustMarshal(fields),
		"previousOwner": ownerJSON(prevOwner),
		"newOwner":      ownerJSON(newOwner),
	}
	msg := fmt.Sprintf("%s was updated successfully (%s).", kind, strings.Join(fields, ", "))
	s.record(kind, name, reasonResourceUpdated, msg, details, by)
}

// newUUID returns a random RFC 4122 version 4 UUID, the form event names
// take on the real server.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
