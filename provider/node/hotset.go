package node

import (
	"context"
	"sync"
	"time"

	"github.com/vk-flightctl/vk-flightctl/internal/settings"
	"github.com/vk-flightctl/vk-flightctl/provider/devicewriter"
	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// hotMarks are devices that must be read by name at every poll for a
// while, whatever their last listing said: one was just written (its
// re-render may not show yet), or a Flightctl event named it. It owns the
// marks and their lock; the poller reads them, writers and the event
// cursor add to them.
type hotMarks struct {
	hold time.Duration
	now  func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
}

func newHotMarks(hold time.Duration, now func() time.Time) *hotMarks {
	if now == nil {
		now = time.Now
	}
	return &hotMarks{hold: hold, now: now, until: map[string]time.Time{}}
}

// mark keeps device hot for the hold period from now.
func (h *hotMarks) mark(device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.until[device] = h.now().Add(h.hold)
}

// active returns the marked devices whose hold has not run out, dropping
// the others.
func (h *hotMarks) active() []string {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.until))
	for name, until := range h.until {
		if now.After(until) {
			delete(h.until, name)
			continue
		}
		out = append(out, name)
	}
	return out
}

// markingClient is the device writer's client: every device it writes
// turns hot before and after the call, so the write in flight and the
// re-render that follows it are read by name rather than waiting for a
// full resync.
type markingClient struct {
	devicewriter.Client
	hot *hotMarks
}

// PatchDeviceMetadata patches the device and keeps it hot.
func (c markingClient) PatchDeviceMetadata(ctx context.Context, name string, ops []flightctl.PatchOperation) (*flightctl.ObjectMeta, error) {
	c.hot.mark(name)
	out, err := c.Client.PatchDeviceMetadata(ctx, name, ops)
	c.hot.mark(name)
	return out, err
}

// hotHold is how long a written or event-named device stays hot: two
// polls, and at least 2 s. The server re-renders within ~20-30 ms of a
// write (v1.2), so the first read after it already shows a newer rendered
// version, and from then on the device's own status (a version not yet
// applied, applications starting) and its unsettled pods keep it hot
// until it settles. A longer hold only re-reads settled devices.
func hotHold(s settings.Effective) time.Duration {
	interval := s.StatusPollInterval
	if interval <= 0 {
		interval = settings.DefaultStatusPollInterval
	}
	return max(2*interval, 2*time.Second)
}
