package node

import (
	"context"
	"sync"
	"time"
)

// eventSource tells a poller which devices changed since it last asked.
// prime starts a new stretch, before a full listing: what it returns
// afterwards happened no earlier than the prime. read returns the devices
// named since the last prime or read; errEventGap (or any error) means
// some may have been missed and only a full listing is sure.
type eventSource interface {
	prime(ctx context.Context) error
	read(ctx context.Context) (map[string]bool, error)
}

// eventFeeds shares one event cursor among the nodes that reach Flightctl
// with the same connection. Flightctl's events API has no per-binding
// filter a device selector could use, so every binding reads every device
// event of its organisation: ten bindings on one Flightctl used to read the
// same events ten times per poll interval. Nodes share a feed only when
// their connection fingerprints are equal (server, organisation, CA, TLS
// options and credentials), so a feed never shows a node what its own
// credentials could not read.
type eventFeeds struct {
	now func() time.Time

	mu    sync.Mutex
	feeds map[string]*eventFeed
}

func newEventFeeds(now func() time.Time) *eventFeeds {
	return &eventFeeds{now: now, feeds: map[string]*eventFeed{}}
}

// subscribe returns a reader of the feed for key (a connection
// fingerprint), creating the feed for its first reader. events is the
// subscriber's own client; maxAge is how old a shared read may be and
// still answer this reader (half its poll interval). close the reader
// when the node stops.
func (fs *eventFeeds) subscribe(key string, events eventLister, maxAge time.Duration) *feedReader {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.feeds[key]
	if f == nil {
		f = &eventFeed{readers: map[*feedReader]bool{}}
		fs.feeds[key] = f
	}
	r := &feedReader{feeds: fs, key: key, feed: f, events: events, maxAge: maxAge, pending: map[string]bool{}, gap: true}
	f.mu.Lock()
	f.readers[r] = true
	f.mu.Unlock()
	return r
}

// release drops r from its feed, and the feed once it has no reader.
func (fs *eventFeeds) release(r *feedReader) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := r.feed
	f.mu.Lock()
	delete(f.readers, r)
	empty := len(f.readers) == 0
	f.mu.Unlock()
	if empty && fs.feeds[r.key] == f {
		delete(fs.feeds, r.key)
	}
}

// count is the number of live feeds.
func (fs *eventFeeds) count() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.feeds)
}

// eventFeed is one connection's cursor and the devices its reads named
// that each reader has not taken yet. mu is held across a read, so readers
// that ask together wait for one call instead of making their own.
type eventFeed struct {
	mu     sync.Mutex
	cursor eventCursor
	// readAt is when the last successful read started.
	readAt  time.Time
	readers map[*feedReader]bool
}

// feedReader is one node's view of a shared feed; it implements
// eventSource. Its fields below events are guarded by feed.mu.
type feedReader struct {
	feeds  *eventFeeds
	key    string
	feed   *eventFeed
	events eventLister
	maxAge time.Duration

	// pending are the devices named by reads since this reader's last
	// read or prime.
	pending map[string]bool
	// gap says a read failed (for every reader: the cursor lost its
	// place) or this reader was never primed.
	gap bool
}

// prime implements eventSource. It primes the shared cursor only when the
// cursor has lost its place; otherwise the reader just starts afresh:
// whatever the feed reads from now on is no older than the cursor's
// checkpoint, and the reader's listing that follows covers the rest.
func (r *feedReader) prime(ctx context.Context) error {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cursor.primed {
		f.cursor.events = r.events
		if err := f.cursor.prime(ctx); err != nil {
			r.gap = true
			return err
		}
		// The checkpoint moved to now: what readers were owed from
		// before is lost to them, so they list everything too.
		for other := range f.readers {
			other.gap = true
		}
	}
	r.pending, r.gap = map[string]bool{}, false
	return nil
}

// read implements eventSource. It reads events only when the feed's last
// read is older than maxAge; a reader polling right after another gets
// what that read found. The call is made with this reader's own client,
// which is alive for as long as its node runs (all readers' clients carry
// the same credentials).
func (r *feedReader) read(ctx context.Context) (map[string]bool, error) {
	f := r.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.gap {
		return nil, errEventGap
	}
	if start := r.feeds.now(); start.Sub(f.readAt) > r.maxAge {
		f.cursor.events = r.events
		named, err := f.cursor.read(ctx)
		if err != nil {
			if !f.cursor.primed {
				for other := range f.readers {
					other.gap = true
				}
			}
			return nil, err
		}
		f.readAt = start
		for other := range f.readers {
			if other.gap {
				continue
			}
			for name := range named {
				other.pending[name] = true
			}
		}
	}
	out := r.pending
	r.pending = map[string]bool{}
	return out, nil
}

// close drops the reader from its feed; its node calls it on stopping.
func (r *feedReader) close() { r.feeds.release(r) }
