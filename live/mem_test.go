package live_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
)

// memSource is an in-memory outbox, to measure the hub alone and to give
// tests exact payload sizes (PostgreSQL's jsonb rewrites payloads). It
// records every read, so tests can wait for the hub's progress and count a
// replay's pages.
type memSource struct {
	mu        sync.Mutex
	events    []obsqra.Event
	committed chan struct{}
	// read is closed and replaced at every EventsAfter.
	read chan struct{}
	// reads are the (after, limit, returned) of every EventsAfter.
	reads []memRead
}

type memRead struct {
	after           int64
	limit, returned int
}

func newMemSource() *memSource {
	return &memSource{committed: make(chan struct{}), read: make(chan struct{})}
}

func (m *memSource) append(e obsqra.Event) obsqra.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.ID = int64(len(m.events) + 1)
	m.events = append(m.events, e)
	close(m.committed)
	m.committed = make(chan struct{})
	return e
}

func (m *memSource) EventsAfter(_ context.Context, after int64, limit int) ([]obsqra.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []obsqra.Event
	if int(after) < len(m.events) {
		end := min(len(m.events), int(after)+limit)
		// Each read gets its own payloads, as from a database.
		out = append([]obsqra.Event(nil), m.events[after:end]...)
		for i := range out {
			out[i].Payload = bytes.Clone(out[i].Payload)
		}
	}
	m.reads = append(m.reads, memRead{after: after, limit: limit, returned: len(out)})
	close(m.read)
	m.read = make(chan struct{})
	return out, nil
}

func (m *memSource) LastEventID(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.events)), nil
}

func (m *memSource) CheckEventCursor(context.Context, int64) error { return nil }

// PruneEvents keeps every event: the hub's tests do not prune.
func (m *memSource) PruneEvents(context.Context, time.Time) (int64, error) { return 0, nil }

func (m *memSource) EventsCommitted() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed
}

func (m *memSource) ListenEvents(ctx context.Context) (<-chan struct{}, error) {
	c := make(chan struct{})
	context.AfterFunc(ctx, func() { close(c) })
	return c, nil
}

// readsWith returns the reads made with limit.
func (m *memSource) readsWith(limit int) []memRead {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []memRead
	for _, r := range m.reads {
		if r.limit == limit {
			out = append(out, r)
		}
	}
	return out
}

// waitRead waits until a read with limit asks for the events after id or
// later: with Options.Batch 1 the hub reads after each event it
// dispatched, so a read with limit 1 after id says the hub has dispatched
// every event up to id to every subscriber.
func (m *memSource) waitRead(t *testing.T, limit int, id int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		m.mu.Lock()
		for _, r := range m.reads {
			if r.limit == limit && r.after >= id {
				m.mu.Unlock()
				return
			}
		}
		read := m.read
		m.mu.Unlock()
		select {
		case <-read:
		case <-timeout:
			t.Fatalf("no read with limit %d after %d within 10 s", limit, id)
		}
	}
}

// setupMem starts a hub on src, after prefill has appended the events that
// are past when it starts, and stops it when the test ends; hook, if not
// nil, is called whenever a replay starts waiting for room.
func setupMem(t *testing.T, opts live.Options, prefill func(src *memSource), hook func(*live.Subscription)) (*live.Hub, *memSource) {
	t.Helper()
	src := newMemSource()
	if prefill != nil {
		prefill(src)
	}
	h := live.NewHub(src, opts)
	if hook != nil {
		live.SetReplayWaitsHook(h, hook)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h, src
}

// appendN appends n events of topic "e" with payloads of size bytes.
func appendN(n, size int) func(src *memSource) {
	return func(src *memSource) {
		for range n {
			src.append(obsqra.Event{Topic: "e", Payload: payload(size)})
		}
	}
}
