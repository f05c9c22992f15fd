// Package fleetwriter writes vk-flightctl's fleet-wide applications into a
// Flightctl Fleet's device template (spec.template.spec.applications), which
// Flightctl then rolls out to every device the Fleet owns. Every write is a
// read-modify-write of the Fleet with its resourceVersion, retried after a
// 409 on a stale version, and touches only the applications it is asked to
// change (plus spec.rolloutPolicy when a policy is given): other
// applications, the template's other fields and the selector stay as read.
package fleetwriter

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// Client is the part of the Flightctl client the writer uses.
type Client interface {
	GetFleet(ctx context.Context, name string) (*flightctl.Fleet, error)
	ReplaceFleet(ctx context.Context, f *flightctl.Fleet) (*flightctl.Fleet, error)
}

// OwnedFunc says whether an application name belongs to vk-flightctl.
// Applications it rejects are never written or removed.
type OwnedFunc func(name string) bool

// Change is the desired state of owned applications in one Fleet's
// template.
type Change struct {
	// Upsert adds or replaces these applications, by name.
	Upsert []flightctl.ApplicationSpec
	// Remove takes these applications out of the template.
	Remove []string
	// RemoveAllOwned takes every owned application out of the template
	// (the binding is going away).
	RemoveAllOwned bool
	// RolloutPolicy, when not nil, replaces spec.rolloutPolicy; nil leaves
	// the Fleet's own policy.
	RolloutPolicy json.RawMessage
}

// Result says how a change landed.
type Result struct {
	// Changed is false when the template already was as desired (nothing
	// was written, so Flightctl starts no rollout).
	Changed bool
	// Fleet is the Fleet as the server returned it after the write (or as
	// read, when nothing changed).
	Fleet *flightctl.Fleet
}

// Writer serialises template writes; one Writer serves one binding, whose
// node is the only vk-flightctl writer of its Fleet's owned applications.
type Writer struct {
	client  Client
	owned   OwnedFunc
	backoff wait.Backoff

	// mu serialises read-modify-writes, so two pods of the node never race
	// each other into 409s.
	mu sync.Mutex
}

// New returns a Writer.
func New(c Client, owned OwnedFunc) *Writer {
	return &Writer{
		client:  c,
		owned:   owned,
		backoff: wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 8, Cap: 2 * time.Second},
	}
}

// Apply reads the Fleet, applies ch to its template and writes it back
// with the resourceVersion it read; a stale version is re-read and retried.
func (w *Writer) Apply(ctx context.Context, fleet string, ch Change) (Result, error) {
	for _, a := range ch.Upsert {
		if !w.owned(a.Name) {
			return Result{}, fmt.Errorf("refusing to write application %q into Flightctl Fleet %s: vk-flightctl only manages applications it owns", a.Name, fleet)
		}
	}
	for _, n := range ch.Remove {
		if !w.owned(n) {
			return Result{}, fmt.Errorf("refusing to remove application %q from Flightctl Fleet %s: vk-flightctl only manages applications it owns", n, fleet)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var res Result
	err := retry.OnError(w.backoff, flightctl.IsStale, func() error {
		f, err := w.client.GetFleet(ctx, fleet)
		if err != nil {
			return err
		}
		ch := ch
		if ch.RemoveAllOwned {
			ch.Remove = append(append([]string(nil), ch.Remove...), Owned(f, w.owned)...)
		}
		if !apply(f, ch) {
			res = Result{Changed: false, Fleet: f}
			return nil
		}
		out, err := w.client.ReplaceFleet(ctx, f)
		if err != nil {
			return err
		}
		res = Result{Changed: true, Fleet: out}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("writing the template of Flightctl Fleet %s: %w", fleet, err)
	}
	return res, nil
}

// Owned lists the owned applications in a Fleet's template.
func Owned(f *flightctl.Fleet, owned OwnedFunc) []string {
	var out []string
	for _, a := range f.Spec.Template.Spec.Applications {
		if owned(a.Name) {
			out = append(out, a.Name)
		}
	}
	return out
}

// apply changes f's template in place and says whether anything changed.
// Upserted applications keep their position; new ones go last, so a
// template's order (which the agent follows) moves as little as possible.
func apply(f *flightctl.Fleet, ch Change) bool {
	apps := f.Spec.Template.Spec.Applications
	changed := false
	remove := make(map[string]bool, len(ch.Remove))
	for _, n := range ch.Remove {
		remove[n] = true
	}
	kept := apps[:0:0]
	for _, a := range apps {
		if remove[a.Name] {
			changed = true
			continue
		}
		kept = append(kept, a)
	}
	for _, want := range ch.Upsert {
		i := indexOf(kept, want.Name)
		switch {
		case i < 0:
			kept = append(kept, want)
			changed = true
		case !sameApp(kept[i], want):
			kept[i] = want
			changed = true
		}
	}
	f.Spec.Template.Spec.Applications = kept
	if ch.RolloutPolicy != nil && !jsonEqual(f.Spec.RolloutPolicy, ch.RolloutPolicy) {
		f.Spec.RolloutPolicy = ch.RolloutPolicy
		changed = true
	}
	return changed
}

func indexOf(apps []flightctl.ApplicationSpec, name string) int {
	for i := range apps {
		if apps[i].Name == name {
			return i
		}
	}
	return -1
}

// sameApp compares two applications by their JSON form, ignoring fields
// the server fills in (runAs "" on quadlet and container applications).
func sameApp(a, b flightctl.ApplicationSpec) bool {
	return jsonEqual(normalized(a), normalized(b))
}

func normalized(a flightctl.ApplicationSpec) json.RawMessage {
	if raw, ok := a.Extra["runAs"]; ok && string(raw) == `""` {
		extra := make(map[string]json.RawMessage, len(a.Extra))
		for k, v := range a.Extra {
			if k != "runAs" {
				extra[k] = v
			}
		}
		a.Extra = extra
	}
	raw, _ := json.Marshal(a)
	return raw
}

// jsonEqual compares two JSON documents by value.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
