package flightctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// ForEachEvent calls fn for every event matching opts, newest first
// unless opts.Order says otherwise, following metadata.continue with a
// bounded page size. A poller returns ErrStopIteration from fn at the first
// event it has already seen. Each page is decoded as it arrives and fn sees
// each event as soon as it is decoded, so memory follows one event rather
// than a page (a busy fleet's page of 1,000 events is about a megabyte,
// and every binding reads one per poll). A page whose transfer breaks is
// read again when the client retries, so fn may then see an event twice;
// an error from fn stops the walk and is returned as is.
func (c *Client) ForEachEvent(ctx context.Context, opts ListOptions, fn func(*Event) error) error {
	return forEachPage(ctx, opts, func(o ListOptions) (string, error) {
		var (
			fnErr error
			meta  ListMeta
		)
		r := request{op: OpListEvents, method: http.MethodGet, path: "/events", query: o.query(),
			stream: func(body io.Reader) error {
				fnErr = nil
				var err error
				meta, err = readList(body, KindEventList, func(dec *json.Decoder) error {
					var e Event
					if err := dec.Decode(&e); err != nil {
						return fmt.Errorf("decode event: %w", err)
					}
					if fnErr = fn(&e); fnErr != nil {
						return errStopped
					}
					return nil
				})
				if errors.Is(err, errStopped) {
					// The caller stopped reading; the answer itself was fine.
					err = nil
				}
				return err
			}}
		if _, err := c.call(ctx, r, nil, KindEventList); err != nil {
			return "", err
		}
		if fnErr != nil {
			return "", fnErr
		}
		return meta.Continue, nil
	})
}
