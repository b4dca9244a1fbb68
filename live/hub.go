// Package live delivers the outbox to subscribers: a Hub follows the
// events table (woken by commits in this process and by NOTIFY from
// others), and fans each event out to the subscriptions whose viewer may
// see it and whose filter selects it by its routing keys (never by its
// payload, which the hub does not decode), each through a bounded buffer. A
// subscription may start from a cursor: it then replays the events after it
// from the outbox and continues live, with no gap and no duplicate.
package live

import (
	"context"
	"fmt"
	"log/slog"
	"math"
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
	PruneEvents(ctx context.Context, before time.Time) (int64, error)
}

// Options tune a Hub. Zero fields take their defaults.
type Options struct {
	// Buffer is how many events a subscriber may have waiting before it is
	// closed as too slow. Default 2048: one commit of ingestMetrics (at
	// most 1,000 samples, 2,000 events) or a backfill chunk arrives at
	// once, and must not end every subscriber. The queue takes memory only
	// while events wait in it. Limits bound the same queue in bytes, which
	// is what memory is; this count is a second, coarser guard.
	Buffer int
	// Limits bound, in bytes, the events waiting for their receivers, per
	// subscription, per connection, per client address and in total, and
	// the subscriptions of one user. Zero fields take their defaults.
	Limits Limits
	// Tracer, when set, traces the dispatch of each event appended inside
	// a trace (see Tracer). Default nil: none.
	Tracer Tracer
	// Batch is how many events one outbox read of the hub returns. Default
	// 500.
	Batch int
	// ReplayPage is how many events one outbox read of a replay returns.
	// A replay reads its next page only once the previous one is queued,
	// and queues only while its budgets have room, so what it holds is
	// bounded by its budgets plus one page. Default 64: about 40 KB of risk
	// scores, small next to a subscription's budget, and a replay of 5,000
	// events still takes only 80 reads.
	ReplayPage int
	// Poll is how often the hub reads the outbox with no signal at all, a
	// guard against a notification lost without a reconnect. Default 5s.
	Poll time.Duration
	// Logger receives read errors. Default slog.Default().
	Logger *slog.Logger
	// Observer is told what the hub does with events, for metrics.
	// Default: nobody.
	Observer Observer
}

// Observer is told what a hub does with the outbox's events
// (*telemetry.Live is one). Its methods are called on the hub's and the
// receivers' goroutines, some under the hub's locks: they must be quick
// and must not call the hub.
type Observer interface {
	// EventsDispatched: n events were read from the outbox and
	// dispatched to the subscriptions.
	EventsDispatched(n int)
	// EventDelivered: a subscription took a live event (one the hub
	// queued, not a replayed one) lag after its commit (its CreatedAt).
	EventDelivered(lag time.Duration)
	// SubscriptionTooSlow: a subscription ended with ErrSlowConsumer.
	SubscriptionTooSlow()
}

// nobody is the Observer that ignores everything.
type nobody struct{}

func (nobody) EventsDispatched(int)         {}
func (nobody) EventDelivered(time.Duration) {}
func (nobody) SubscriptionTooSlow()         {}

// Limits bound the memory that events waiting for slow receivers may take,
// in bytes as Cost counts them, at four levels: one subscription, one
// connection (all subscriptions made with the same *obsqra.Client, which
// the server makes once per HTTP request or WebSocket connection), one
// client address (obsqra.Client.LimitKey; none is charged for an empty
// one), and the whole hub. A live event that would take any level past its
// budget ends its subscription with ErrSlowConsumer (the client resumes
// from its cursor); a replay never ends for that, it waits for room. A
// replay may fill each level only to half its budget, so that live events
// always find room that replays cannot take: a connection replaying a
// hundred subscriptions does not end its live ones, nor do replaying
// clients end everyone else's. An event alone in an empty level always
// fits, so an event larger than a budget is still delivered.
type Limits struct {
	// Subscription is the budget of one subscription. Default 1 MiB
	// (DefaultSubscriptionBytes).
	Subscription int64
	// Connection is the budget of one connection. Default 2 MiB
	// (DefaultConnectionBytes).
	Connection int64
	// Address is the budget of one client address. Default 16 MiB
	// (DefaultAddressBytes).
	Address int64
	// Total is the budget of the hub. Default 256 MiB (DefaultTotalBytes).
	Total int64
	// SubscriptionsPerUser is how many subscriptions one signed-in user may
	// hold at once; Subscribe refuses more with ERATELIMIT. Anonymous
	// viewers are bounded by the server's operations per connection and
	// connections per address instead. Default 200
	// (DefaultSubscriptionsPerUser).
	SubscriptionsPerUser int
	// SubscriptionsPerAddress is how many subscriptions may be held at
	// once for one client address, anonymous or not; Subscribe refuses
	// more with ERATELIMIT. A subscription costs memory beyond its queue
	// (its goroutines and execution state, a few tens of KB while it
	// replays): this bounds that per address as the byte budgets bound the
	// queues. Default 1000 (DefaultSubscriptionsPerAddress).
	SubscriptionsPerAddress int
	// Subscriptions is how many subscriptions the hub holds at once;
	// Subscribe refuses more with ERATELIMIT. Default 20000
	// (DefaultSubscriptions).
	Subscriptions int
}

// Defaults of Limits.
const (
	// DefaultSubscriptionBytes holds one maximal commit of one topic: an
	// ingestMetrics of 1,000 samples is 1,000 risk scores of about 560
	// bytes each plus EventOverhead, about 690 KB, and must not end a
	// subscriber of every score (the hub queues a commit faster than any
	// receiver takes it).
	DefaultSubscriptionBytes = 1 << 20
	// DefaultConnectionBytes holds such a commit for a client's metrics
	// and risk subscriptions together (about 1.1 MB), with room to spare;
	// a connection's 100 operations share it, so a hundred replays on one
	// socket hold at most 1 MiB (half, see Limits), not a hundred times a
	// subscription's budget.
	DefaultConnectionBytes = 2 << 20
	// DefaultAddressBytes is eight connections' budgets: enough for the
	// few tabs, or the office behind one NAT, that subscribe to different
	// things at once (identical public subscriptions share one stream and
	// cost once), and it stops one host that opens many sockets that never
	// read at 16 MiB.
	DefaultAddressBytes = 16 << 20
	// DefaultTotalBytes is what one instance may hold for slow receivers:
	// sixteen full addresses, a quarter of a 1 GiB instance, beside the
	// about 400 MiB that 15,000 idle connections take.
	DefaultTotalBytes = 256 << 20
	// DefaultSubscriptionsPerUser is two connections' worth of the
	// server's 100 operations per socket: far above what the frontend
	// opens (about five per tab), and it stops one account that opens
	// sockets from many addresses from multiplying its budgets.
	DefaultSubscriptionsPerUser = 200
	// DefaultSubscriptionsPerAddress is ten sockets' worth of the
	// server's 100 operations per socket: an office behind one NAT fits
	// (identical public subscriptions share one stream and count once),
	// while one host holding thousands of replays that never read is
	// refused before they cost hundreds of MiB.
	DefaultSubscriptionsPerAddress = 1000
	// DefaultSubscriptions is one subscription for each of the 20,000
	// files a process may hold open here: every socket resuming with a
	// cursor after a restart fits.
	DefaultSubscriptions = 20000
)

// EventOverhead is what an event costs in a queue besides its payload: the
// obsqra.Event (112 bytes with its routing keys), its topic, the queue's slot and allocation
// rounding.
const EventOverhead = 128

// Cost is what e counts against the budgets of Limits.
func Cost(e *obsqra.Event) int64 { return int64(len(e.Payload)) + EventOverhead }

func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = 2048
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.ReplayPage <= 0 {
		o.ReplayPage = 64
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nobody{}
	}
	l := &o.Limits
	if l.Subscription <= 0 {
		l.Subscription = DefaultSubscriptionBytes
	}
	if l.Connection <= 0 {
		l.Connection = DefaultConnectionBytes
	}
	if l.Address <= 0 {
		l.Address = DefaultAddressBytes
	}
	if l.Total <= 0 {
		l.Total = DefaultTotalBytes
	}
	if l.SubscriptionsPerUser <= 0 {
		l.SubscriptionsPerUser = DefaultSubscriptionsPerUser
	}
	if l.SubscriptionsPerAddress <= 0 {
		l.SubscriptionsPerAddress = DefaultSubscriptionsPerAddress
	}
	if l.Subscriptions <= 0 {
		l.Subscriptions = DefaultSubscriptions
	}
	return o
}

// Why a subscription ends, besides its context.
var (
	// ErrSlowConsumer: a live event would have taken the subscriber's
	// queue past Options.Buffer or one of its Limits. It can resume from
	// the cursor of the last event it received. It is the domain's
	// obsqra.ErrSlowSubscriber, so that the API tells it apart without
	// importing live.
	ErrSlowConsumer = obsqra.ErrSlowSubscriber
	// ErrStopped: the hub stopped (the server is shutting down). It is
	// obsqra.ErrEventsStopped.
	ErrStopped = obsqra.ErrEventsStopped
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

	acct accounts

	// recent shares the decoded payloads of the latest events among the
	// hub's readers (see recentEvents).
	recent recentEvents

	// testReplayWaits, set by tests only before the hub is used, is
	// called when a replay starts waiting for room.
	testReplayWaits func(*Subscription)
}

// Stats describe what a hub holds.
type Stats struct {
	// Queued is the bytes of the events waiting in every subscription's
	// queue, as Cost counts them.
	Queued int64
	// Connections and Addresses are how many connections and client
	// addresses have events waiting.
	Connections, Addresses int
	// Subscriptions is how many subscriptions run; Users how many
	// signed-in users hold them.
	Subscriptions, Users int
}

// Stats returns what the hub holds now, between two dispatches: an event
// the hub has begun to dispatch is queued for every subscriber it goes to.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.subs)
	h.acct.mu.Lock()
	defer h.acct.mu.Unlock()
	return Stats{Queued: h.acct.total.bytes, Connections: len(h.acct.conns), Addresses: len(h.acct.addrs),
		Subscriptions: n, Users: len(h.acct.users)}
}

// PruneEvents deletes the outbox's events created before before, for
// every instance: a replay from a cursor among them is refused from then
// on (CheckEventCursor), and the client must start afresh. It returns how
// many events it deleted. Errors: only internal ones.
func (h *Hub) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	return h.src.PruneEvents(ctx, before)
}

// NewHub returns a hub reading src.
func NewHub(src Source, opts Options) *Hub {
	return &Hub{src: src, opts: opts.withDefaults(), subs: make(map[*Subscription]struct{}), ready: make(chan struct{}),
		acct: accounts{conns: make(map[*obsqra.Client]*usage), addrs: make(map[string]*usage), users: make(map[int64]int), addrSubs: make(map[string]int)}}
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
			h.opts.Logger.Error("live: read outbox", "error", err)
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
		h.recent.share(events)
		h.mu.Lock()
		for i := range events {
			e := &events[i]
			dispatched := h.traceDispatch(ctx, e)
			for s := range h.subs {
				s.deliver(e)
			}
			dispatched(len(h.subs))
			for _, f := range h.observers {
				f(e)
			}
			h.last = e.ID
		}
		h.mu.Unlock()
		if len(events) > 0 {
			h.opts.Observer.EventsDispatched(len(events))
		}
		if len(events) < h.opts.Batch {
			return nil
		}
	}
}

// Ready returns a channel closed once Run has its starting position (from
// then on, every event committed later is dispatched to OnEvent's
// observers) or has stopped.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

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

// Subscribe starts a subscription for viewer (a user id, 0 for anonymous)
// to the events filter selects by their keys (the zero filter selects
// all; the hub matches it under its lock, and a replay on its own
// goroutine, see obsqra.EventFilter.Match). Whatever the filter, a viewer receives only
// public events (OwnerID 0) and its own. With after nil the subscription
// starts with the next event; with a cursor (an event id) it first replays
// the events after it. It ends when ctx does, when the hub stops, or when
// a live event would take its queue past Options.Buffer or Options.Limits.
// The events waiting in its queue are charged to the connection and the
// address of obsqra.ClientFromContext(ctx).
// Errors: ERATELIMIT when viewer holds Limits.SubscriptionsPerUser
// subscriptions already; EINVALID for a cursor whose events were pruned;
// ErrStopped; internal ones.
func (h *Hub) Subscribe(ctx context.Context, viewer int64, filter obsqra.EventFilter, after *int64) (*Subscription, error) {
	select {
	case <-h.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	client := obsqra.ClientFromContext(ctx)
	s := &Subscription{
		h:      h,
		viewer: viewer,
		filter: filter,
		conn:   client,
		addr:   client.LimitKey(),
		ready:  make(chan struct{}, 1),
		space:  make(chan struct{}, 1),
		done:   make(chan struct{}),
		max:    h.opts.Buffer,
	}
	// Counted before anything is read: a refusal costs no query.
	if err := h.acct.count(s, &h.opts.Limits); err != nil {
		return nil, err
	}
	if after != nil {
		if err := h.src.CheckEventCursor(ctx, *after); err != nil {
			s.end(context.Canceled) // gives the counts back
			return nil, err
		}
	}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		s.end(ErrStopped) // gives the user's count back
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
	// The events after liveAfter are the hub's live ones; a replay's
	// join sets it.
	s.liveAfter = s.seen
	if replay {
		s.liveAfter = math.MaxInt64
	}
	// A replaying subscription is here too, so that stop ends it, but
	// the hub does not queue for it until the replay joins (see replay).
	h.subs[s] = struct{}{}
	h.mu.Unlock()

	stop := context.AfterFunc(ctx, func() {
		h.remove(s)
		s.end(ctx.Err())
	})
	s.stop = func() { stop(); h.remove(s) }
	if replay {
		go s.replay(ctx, *after)
	}
	return s, nil
}
