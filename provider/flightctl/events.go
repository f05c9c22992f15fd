package flightctl

import (
	"context"
	"net/http"
	"strings"
)

// DeviceEventsSelector returns the field selector for the events of one
// device, optionally narrowed to one reason. Names cannot contain the
// selector's separators (Flightctl names are DNS labels), so no escaping is
// needed.
func DeviceEventsSelector(device, reason string) string {
	parts := []string{"involvedObject.kind=" + KindDevice, "involvedObject.name=" + device}
	if reason != "" {
		parts = append(parts, "reason="+reason)
	}
	return strings.Join(parts, ",")
}

// ListEvents returns one page of events, newest first. Supported field
// selectors: actor, involvedObject.kind, involvedObject.name,
// metadata.creationTimestamp, metadata.name, metadata.owner, reason, type.
func (c *Client) ListEvents(ctx context.Context, opts ListOptions) (*EventList, error) {
	var out EventList
	if _, err := c.call(ctx, request{op: OpListEvents, method: http.MethodGet, path: "/events", query: opts.query()}, &out, KindEventList); err != nil {
		return nil, err
	}
	return &out, nil
}

// ForEachEvent calls fn for every event matching opts, newest first,
// following metadata.continue with a bounded page size. A poller returns
// ErrStopIteration from fn at the first event it has already seen.
func (c *Client) ForEachEvent(ctx context.Context, opts ListOptions, fn func(*Event) error) error {
	return forEachItem(ctx, opts, func(o ListOptions) ([]Event, string, error) {
		page, err := c.ListEvents(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return page.Items, page.Metadata.Continue, nil
	}, fn)
}
