package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vk-flightctl/vk-flightctl/provider/flightctl"
)

// maxEventsPerPoll bounds one poll's event read. More device events than
// this since the last poll means so much changed that a full listing is
// the cheaper way to learn it.
const maxEventsPerPoll = 5000

// errEventGap says the event read could not be trusted to have seen every
// event since the checkpoint; the poller then lists every device.
var errEventGap = errors.New("device events since the checkpoint could not all be read")

// eventLister is what the cursor needs from Flightctl.
type eventLister interface {
	ForEachEvent(ctx context.Context, opts flightctl.ListOptions, fn func(*flightctl.Event) error) error
}

// eventCursor reads Flightctl's device events since a checkpoint, in the
// server's own time, so the poller learns which settled devices changed
// without listing them. Flightctl v1.2 records a device event only when a
// summary changes (connected, applications healthy/degraded/error, content
// up to date or not) and never names the application, so an event only
// says "read this device again". It implements eventSource for a poller
// of its own; nodes of one connection share one through an eventFeed.
type eventCursor struct {
	events eventLister
	// since is the newest event's creationTimestamp seen; the next read
	// asks for events at or after it.
	since time.Time
	// atSince names the events seen at exactly since, which ">=" returns
	// again.
	atSince map[string]bool
	primed  bool
}

// prime sets the checkpoint to the newest device event, before the full
// listing that makes every older event moot. With no event yet, the
// checkpoint stays at the beginning and the first read returns everything
// recorded from then on.
func (c *eventCursor) prime(ctx context.Context) error {
	c.since, c.atSince, c.primed = time.Time{}, map[string]bool{}, false
	err := c.events.ForEachEvent(ctx, flightctl.ListOptions{FieldSelector: "involvedObject.kind=" + flightctl.KindDevice, Limit: 1},
		func(e *flightctl.Event) error {
			if e.Metadata.CreationTimestamp != nil {
				c.since = *e.Metadata.CreationTimestamp
				c.atSince[e.Metadata.Name] = true
			}
			return flightctl.ErrStopIteration
		})
	if err != nil {
		return err
	}
	c.primed = true
	return nil
}

// read returns the devices named by events since the checkpoint and moves
// the checkpoint on. An error (errEventGap included) leaves the cursor
// unprimed, events may have been missed, unless ctx ended.
func (c *eventCursor) read(ctx context.Context) (map[string]bool, error) {
	if !c.primed {
		return nil, errEventGap
	}
	sel := "involvedObject.kind=" + flightctl.KindDevice
	if !c.since.IsZero() {
		sel += ",metadata.creationTimestamp>=" + c.since.UTC().Format(time.RFC3339Nano)
	}
	named := map[string]bool{}
	n := 0
	since, atSince := c.since, c.atSince
	err := c.events.ForEachEvent(ctx, flightctl.ListOptions{FieldSelector: sel, Order: "asc", Limit: flightctl.MaxPageSize},
		func(e *flightctl.Event) error {
			ts := e.Metadata.CreationTimestamp
			if ts == nil {
				return nil
			}
			if ts.Equal(since) && atSince[e.Metadata.Name] {
				return nil
			}
			if n++; n > maxEventsPerPoll {
				return fmt.Errorf("more than %d device events in one poll: %w", maxEventsPerPoll, errEventGap)
			}
			if ts.After(since) {
				since, atSince = *ts, map[string]bool{}
			}
			atSince[e.Metadata.Name] = true
			named[e.InvolvedObject.Name] = true
			return nil
		})
	if err != nil {
		// The checkpoint moves only on success, so a read its caller
		// gave up on missed nothing; any other failure may have.
		if ctx.Err() == nil {
			c.primed = false
		}
		return nil, err
	}
	c.since, c.atSince = since, atSince
	return named, nil
}
