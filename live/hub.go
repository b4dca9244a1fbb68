// Package live delivers the outbox to subscribers: a Hub follows the
// events table (woken by commits in this process and by NOTIFY from
// others), and fans each event out to the subscriptions whose viewer may
// see it and whose filter wants it, each through a bounded buffer. A
// subscription may start from a cursor: it then replays the events after it
// from the outbox and continues live, with no gap and no duplicate.
package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
)

// Source is the outbox as the hub reads it (*store.DB).
type Source interface {
	EventsAfter(ctx context.Context, afterID int64, limit int) ([]obsqra.Event, error)
	LastEventID(ctx context.Context) (int64, error)
	CheckEventCursor(ctx context.Context, afterID int64) error
	EventsCommitted() <-chan struct{}
	ListenEvents(ctx context.Context) (<-chan struct{}, error)
}

// Options tune a Hub. Zero fields take their defaults.
type Options struct {
	// Buffer is how many events a subscriber may have waiting before it is
	// closed as too slow. Default 2048: one commit of ingestMetrics (at
	// most 1,000 samples, 2,000 events) or a backfill chunk arrives at
	// once, and must not end every subscriber. The queue takes memory only
	// while events wait in it.
	Buffer int
	// Batch is how many events one outbox read returns. Default 500.
	Batch int
	// Poll is how often the hub reads the outbox with no signal at all, a
	// guard against a notification lost without a reconnect. Default 5s.
	Poll time.Duration
	// Logger receives read errors. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = 2048
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Why a subscription ends, besides its context.
var (
	// ErrSlowConsumer: the subscriber's buffer overflowed. It can resume
	// from the cursor of the last event it received.
	ErrSlowConsumer = errors.New("live: subscriber too slow, its buffer overflowed; resume from the last cursor")
	// ErrStopped: the hub stopped (the server is shutting down).
	ErrStopped = errors.New("live: hub stopped")
)

// Hub fans the outbox out to subscriptions. Run must be running for live
// events to flow.
type Hub struct {
	src  Source
	opts Options

	mu      sync.Mutex
	last    int64 // id of the last event dispatched
	stopped bool
	subs    map[*Subscription]struct{}
	// observers see every event dispatched (see OnEvent).
	observers []func(*obsqra.Event)

	// ready is closed once Run has its starting position, or has stopped.
	ready     chan struct{}
	readyOnce sync.Once
}

// NewHub returns a hub reading src.
func NewHub(src Source, opts Options) *Hub {
	return &Hub{src: src, opts: opts.withDefaults(), subs: make(map[*Subscription]struct{}), ready: make(chan struct{})}
}

// Run follows the outbox until ctx ends, then closes every subscription
// with ErrStopped. It LISTENs before it reads, so no commit falls between.
// Errors: ctx's error at the end; an error opening the listener.
func (h *Hub) Run(ctx context.Context) error {
	defer h.stop()
	listen, err := h.src.ListenEvents(ctx)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	last, err := h.src.LastEventID(ctx)
	if err != nil {
		return fmt.Errorf("live: %w", err)
	}
	h.mu.Lock()
	h.last = last
	h.mu.Unlock()
	h.readyOnce.Do(func() { close(h.ready) })

	poll := time.NewTicker(h.opts.Poll)
	defer poll.Stop()
	for {
		// Take the signal before reading: a commit during the read closes
		// a channel we already hold.
		committed := h.src.EventsCommitted()
		if err := h.catchUp(ctx); err != nil && ctx.Err() == nil {
			h.opts.Logger.Error("live: read outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-committed:
		case _, ok := <-listen:
			if !ok {
				listen = nil // the listener ended with ctx
			}
		case <-poll.C:
		}
	}
}

// catchUp dispatches every event after the last one dispatched.
func (h *Hub) catchUp(ctx context.Context) error {
	for {
		h.mu.Lock()
		after := h.last
		h.mu.Unlock()
		events, err := h.src.EventsAfter(ctx, after, h.opts.Batch)
		if err != nil {
			return err
		}
		h.mu.Lock()
		for i := range events {
			e := &events[i]
			for s := range h.subs {
				s.deliver(e)
			}
			for _, f := range h.observers {
				f(e)
			}
			h.last = e.ID
		}
		h.mu.Unlock()
		if len(events) < h.opts.Batch {
			return nil
		}
	}
}

// OnEvent makes the hub call f with every event it dispatches from now on,
// whoever owns it, in id order: the server's own consumers that no
// subscription stands for (the server closing the sockets of a session that
// ended, on every instance) follow the outbox through it. f runs on the
// hub's goroutine under its lock: it must be quick, and must neither block
// nor call the hub.
func (h *Hub) OnEvent(f func(*obsqra.Event)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observers = append(h.observers, f)
}

func (h *Hub) stop() {
	h.readyOnce.Do(func() { close(h.ready) })
	h.mu.Lock()
	h.stopped = true
	subs := h.subs
	h.subs = make(map[*Subscription]struct{})
	h.mu.Unlock()
	for s := range subs {
		s.end(ErrStopped)
	}
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Filter says whether a subscription wants an event. It runs for every
// event the viewer may see, on the hub's goroutine and, while the
// subscription replays, on the replaying one: it must be quick, must not
// block, and must be safe for concurrent use.
type Filter func(e *obsqra.Event) bool

// Subscribe starts a subscription for viewer (a user id, 0 for anonymous)
// to the events filter wants. Whatever the filter, a viewer receives only
// public events (OwnerID 0) and its own. With after nil the subscription
// starts with the next event; with a cursor (an event id) it first replays
// the events after it. It ends when ctx does, when the hub stops, or when
// the subscriber falls Options.Buffer events behind.
// Errors: EINVALID for a cursor whose events were pruned; ErrStopped;
// internal ones.
func (h *Hub) Subscribe(ctx context.Context, viewer int64, filter Filter, after *int64) (*Subscription, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if after != nil {
		if err := h.src.CheckEventCursor(ctx, *after); err != nil {
			return nil, err
		}
	}
	s := &Subscription{
		viewer: viewer,
		filter: filter,
		ready:  make(chan struct{}, 1),
		space:  make(chan struct{}, 1),
		done:   make(chan struct{}),
		max:    h.opts.Buffer,
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return nil, ErrStopped
	}
	upTo := h.last
	replay := after != nil && *after < upTo
	s.direct = !replay
	if after != nil && *after > upTo {
		// A cursor from an instance ahead of this one: what it has seen
		// is still to come here.
		s.seen = *after
	} else {
		s.seen = upTo
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()

	stop := context.AfterFunc(ctx, func() {
		h.remove(s)
		s.end(ctx.Err())
	})
	s.stop = func() { stop(); h.remove(s) }
	if replay {
		go s.replay(ctx, h, *after, upTo)
	}
	return s, nil
}

// Subscription is one subscriber's stream of events. Its events wait in a
// queue that holds no memory while empty (a waiting subscription costs a
// few hundred bytes, not its Options.Buffer), bounded by Options.Buffer.
type Subscription struct {
	viewer int64
	filter Filter
	max    int
	stop   func()

	ready chan struct{} // signalled when an event is queued or the subscription ends
	space chan struct{} // signalled when the receiver takes an event (the replay waits on it)
	done  chan struct{} // closed by end

	mu      sync.Mutex
	queue   []*obsqra.Event // events for the receiver, in order
	direct  bool            // the hub queues live events itself (the replay is over)
	seen    int64           // events up to this id are not to be queued (again)
	pending []*obsqra.Event // live events held while replaying
	err     error
	ended   bool
}

// Ready returns a channel that receives when events are waiting or the
// subscription has ended: the receiver then calls Take until it reports
// none. Every subscriber of an event receives the same *Event: it must not
// be modified.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the next waiting event, or nil when none is; open is false
// once the subscription has ended and every event queued before has been
// taken (Err then says why).
func (s *Subscription) Take() (e *obsqra.Event, open bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil, !s.ended
	}
	e = s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // an idle subscription holds no queue
	}
	signal(s.space)
	return e, true
}

// Next returns the next event, waiting for it; ok is false when the
// subscription has ended (Err says why) or ctx is done.
func (s *Subscription) Next(ctx context.Context) (e *obsqra.Event, ok bool) {
	for {
		e, open := s.Take()
		if e != nil || !open {
			return e, e != nil
		}
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// Waiting reports whether an event is waiting to be taken.
func (s *Subscription) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) > 0
}

// Err returns why the subscription ended: ErrSlowConsumer, ErrStopped,
// the context's error, or a read error during replay; nil while it runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.stop()
	s.end(context.Canceled)
}

// visible reports whether the viewer may see e and the filter wants it.
func (s *Subscription) visible(e *obsqra.Event) bool {
	if e.OwnerID != 0 && e.OwnerID != s.viewer {
		return false
	}
	return s.filter == nil || s.filter(e)
}

// signal wakes the one waiting on c, if any; a signal already pending
// stands for both.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// deliver is called by the hub, under its lock, for every new event.
func (s *Subscription) deliver(e *obsqra.Event) {
	if !s.visible(e) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || e.ID <= s.seen {
		return
	}
	if !s.direct {
		if len(s.pending) >= s.max {
			s.endLocked(ErrSlowConsumer)
			return
		}
		s.pending = append(s.pending, e)
		return
	}
	if len(s.queue) >= s.max {
		s.endLocked(ErrSlowConsumer)
		return
	}
	s.queue = append(s.queue, e)
	s.seen = e.ID
	signal(s.ready)
}

// end ends the subscription with err (the first reason wins).
func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(err)
}

func (s *Subscription) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	s.pending = nil
	close(s.done)
	signal(s.ready)
}

// replay queues the events in (after, upTo] from the outbox, then the live
// events held meanwhile, then hands the stream over to the hub. It waits
// while the queue is full: a replay is as fast as its receiver.
func (s *Subscription) replay(ctx context.Context, h *Hub, after, upTo int64) {
	push := func(e *obsqra.Event) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for len(s.queue) >= s.max && !s.ended {
			s.mu.Unlock()
			select {
			case <-s.space:
			case <-s.done:
			}
			s.mu.Lock()
		}
		if s.ended {
			return false
		}
		s.queue = append(s.queue, e)
		signal(s.ready)
		return true
	}
	last := after
	for last < upTo {
		events, err := h.src.EventsAfter(ctx, last, h.opts.Batch)
		if err != nil {
			h.remove(s)
			s.end(fmt.Errorf("live: replay: %w", err))
			return
		}
		if len(events) == 0 {
			break
		}
		for i := range events {
			e := &events[i]
			if e.ID > upTo {
				last = upTo
				break
			}
			last = e.ID
			if s.visible(e) && !push(e) {
				return
			}
		}
	}
	for {
		s.mu.Lock()
		if s.ended {
			s.mu.Unlock()
			return
		}
		held := s.pending
		s.pending = nil
		if len(held) == 0 {
			// Caught up: from now on the hub queues, skipping what the
			// replay covered.
			s.direct = true
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		for _, e := range held {
			if !push(e) {
				return
			}
		}
	}
}
