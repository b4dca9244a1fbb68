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
}

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

// accounts are the bytes charged to connections, addresses and the hub,
// and the subscriptions of each user. Its lock is taken last, under the
// hub's and a subscription's. An entry is deleted when it reaches zero, so
// the maps hold only what is in use.
type accounts struct {
	mu    sync.Mutex
	total usage
	conns map[*obsqra.Client]*usage
	addrs map[string]*usage
	users map[int64]int
	// addrSubs counts the subscriptions of each client address; subs all
	// of them.
	addrSubs map[string]int
	subs     int
}

// usage is the bytes charged to one level; room, made when a replay waits
// for it, is closed when bytes are released.
type usage struct {
	bytes int64
	room  chan struct{}
}

// wait returns the channel closed when u next releases bytes.
func (u *usage) wait() <-chan struct{} {
	if u.room == nil {
		u.room = make(chan struct{})
	}
	return u.room
}

func (u *usage) release(n int64) {
	u.bytes -= n
	if u.room != nil {
		close(u.room)
		u.room = nil
	}
}

// fits reports whether cost more bytes keep used within limit; a replay
// may fill only half of it (see Limits). An event alone in an empty level
// always fits.
func fits(used, cost, limit int64, replay bool) bool {
	if used == 0 {
		return true
	}
	if replay {
		limit /= 2
	}
	return used+cost <= limit
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

// Subscription is one subscriber's stream of events. Its events wait in a
// queue that holds no memory while empty (a waiting subscription costs a
// few hundred bytes, not its budget), bounded by Options.Buffer and
// Options.Limits.
type Subscription struct {
	h      *Hub
	viewer int64
	filter obsqra.EventFilter
	conn   *obsqra.Client // the connection its queue is charged to
	addr   string         // the address its queue is charged to; "" for none
	max    int
	stop   func()

	ready chan struct{} // signalled when an event is queued or the subscription ends
	space chan struct{} // signalled when the receiver takes an event (the replay waits on it)
	done  chan struct{} // closed by end

	mu       sync.Mutex
	queue    []*obsqra.Event // events for the receiver, in order
	queued   int64           // the bytes of queue, as Cost counts them
	reserved int64           // bytes a replay charged for a page it is reading (see reserve)
	direct   bool            // the hub queues live events itself (the replay is over)
	seen     int64           // events up to this id are not to be queued (again)
	err      error
	ended    bool
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
	s.releaseLocked(Cost(e))
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

// Close ends the subscription and drops the events still waiting.
func (s *Subscription) Close() {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(context.Canceled)
	s.dropLocked()
}

// visible reports whether the viewer may see e and the filter wants it.
func (s *Subscription) visible(e *obsqra.Event) bool {
	if e.OwnerID != 0 && e.OwnerID != s.viewer {
		return false
	}
	return s.filter.Match(e)
}

// signal wakes the one waiting on c, if any; a signal already pending
// stands for both.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reserveLocked charges cost to s, its connection, its address and the
// hub if every budget has room (a replay's room, or a live event's; see
// Limits). Otherwise it charges nothing and returns a channel that
// receives when the level that refused releases bytes. Called with s.mu
// held.
func (s *Subscription) reserveLocked(cost int64, replay bool) (ok bool, wait <-chan struct{}) {
	lim := &s.h.opts.Limits
	if !fits(s.queued, cost, lim.Subscription, replay) {
		return false, s.space
	}
	a := &s.h.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	conn := a.conns[s.conn]
	if conn != nil && !fits(conn.bytes, cost, lim.Connection, replay) {
		return false, conn.wait()
	}
	var addr *usage
	if s.addr != "" {
		addr = a.addrs[s.addr]
		if addr != nil && !fits(addr.bytes, cost, lim.Address, replay) {
			return false, addr.wait()
		}
	}
	if !fits(a.total.bytes, cost, lim.Total, replay) {
		return false, a.total.wait()
	}
	s.chargeAcctLocked(cost)
	s.queued += cost
	return true, nil
}

// chargeAcctLocked charges n bytes to s's connection, address and the hub,
// whatever their limits. Called with s.mu and the accounts' lock held.
func (s *Subscription) chargeAcctLocked(n int64) {
	a := &s.h.acct
	conn := a.conns[s.conn]
	if conn == nil {
		conn = &usage{}
		a.conns[s.conn] = conn
	}
	conn.bytes += n
	if s.addr != "" {
		addr := a.addrs[s.addr]
		if addr == nil {
			addr = &usage{}
			a.addrs[s.addr] = addr
		}
		addr.bytes += n
	}
	a.total.bytes += n
}

// releaseLocked gives back n bytes of s's queue, waking the replays
// waiting for them. Called with s.mu held.
func (s *Subscription) releaseLocked(n int64) {
	if n == 0 {
		return
	}
	s.queued -= n
	s.releaseAcctLocked(n)
}

// releaseAcctLocked gives back n bytes charged to s's connection, address
// and the hub. Called with s.mu held.
func (s *Subscription) releaseAcctLocked(n int64) {
	a := &s.h.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	if conn := a.conns[s.conn]; conn != nil {
		if conn.release(n); conn.bytes == 0 {
			delete(a.conns, s.conn)
		}
	}
	if addr := a.addrs[s.addr]; addr != nil {
		if addr.release(n); addr.bytes == 0 {
			delete(a.addrs, s.addr)
		}
	}
	a.total.release(n)
}

// deliver is called by the hub, under its lock, for every new event.
func (s *Subscription) deliver(e *obsqra.Event) {
	if !s.visible(e) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.direct || e.ID <= s.seen {
		return
	}
	if len(s.queue) >= s.max {
		s.endLocked(ErrSlowConsumer)
		return
	}
	if ok, _ := s.reserveLocked(Cost(e), false); !ok {
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

// endLocked ends the subscription with err. The events waiting stay for
// the receiver of a slow consumer, which takes them before it learns why
// the stream ended; otherwise no one will take them.
func (s *Subscription) endLocked(err error) {
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	close(s.done)
	signal(s.ready)
	if !errors.Is(err, ErrSlowConsumer) {
		s.dropLocked()
	}
	s.h.acct.uncount(s)
}

// count counts s against the subscriptions of its user, its address and
// the hub, or returns ERATELIMIT naming the limit it would pass.
func (a *accounts) count(s *Subscription, lim *Limits) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case s.viewer != 0 && a.users[s.viewer] >= lim.SubscriptionsPerUser:
		return obsqra.Errorf(obsqra.ERATELIMIT, "at most %d subscriptions per user; end one first", lim.SubscriptionsPerUser)
	case s.addr != "" && a.addrSubs[s.addr] >= lim.SubscriptionsPerAddress:
		return obsqra.Errorf(obsqra.ERATELIMIT, "at most %d subscriptions from one address; end one first", lim.SubscriptionsPerAddress)
	case a.subs >= lim.Subscriptions:
		return obsqra.Errorf(obsqra.ERATELIMIT, "the server holds as many subscriptions as it may (%d); try again later", lim.Subscriptions)
	}
	if s.viewer != 0 {
		a.users[s.viewer]++
	}
	if s.addr != "" {
		a.addrSubs[s.addr]++
	}
	a.subs++
	return nil
}

// uncount gives back what count counted for s.
func (a *accounts) uncount(s *Subscription) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.viewer != 0 {
		if a.users[s.viewer]--; a.users[s.viewer] <= 0 {
			delete(a.users, s.viewer)
		}
	}
	if s.addr != "" {
		if a.addrSubs[s.addr]--; a.addrSubs[s.addr] <= 0 {
			delete(a.addrSubs, s.addr)
		}
	}
	a.subs--
}

// dropLocked drops the events waiting and releases their bytes.
func (s *Subscription) dropLocked() {
	clear(s.queue)
	s.queue = nil
	s.releaseLocked(s.queued)
	if s.reserved > 0 {
		s.releaseAcctLocked(s.reserved)
		s.reserved = 0
	}
}

// replay queues the events after the cursor from the outbox, page by page,
// then hands the stream over to the hub (join). Before it reads a page it
// charges the page's estimated bytes to its budgets, waiting while they have
// no room, so a replay waiting for its receiver holds no event it has not
// paid for: what thousands of replays hold together stays within the
// budgets (plus what a page of unusually large payloads exceeds its
// estimate by). The page's events are then queued against that charge,
// and what is left of it is given back.
func (s *Subscription) replay(ctx context.Context, after int64) {
	h := s.h
	last := after
	estimate := int64(h.opts.ReplayPage) * ReplayEventEstimate
	for {
		if s.join(last, false) {
			return
		}
		if !s.reserve(ctx, estimate, h.opts.ReplayPage) {
			return
		}
		events, err := h.src.EventsAfter(ctx, last, h.opts.ReplayPage)
		if err != nil {
			s.refund(estimate)
			h.remove(s)
			s.end(fmt.Errorf("live: replay: %w", err))
			return
		}
		h.recent.share(events)
		if len(events) == 0 {
			s.refund(estimate)
			// The hub dispatched events that are gone (pruned meanwhile):
			// nothing is left to replay before its position.
			s.join(last, true)
			return
		}
		prepaid := estimate
		for i := range events {
			last = events[i].ID
			if !s.visible(&events[i]) {
				continue
			}
			// A copy: the queue keeps what it paid for, not the page.
			e := events[i]
			prepaid -= Cost(&e)
			if !s.enqueuePaid(&e, max(-prepaid, 0)) {
				return
			}
			prepaid = max(prepaid, 0)
		}
		s.refund(prepaid)
	}
}

// ReplayEventEstimate is what a replay reserves per event of a page before
// reading it: the overhead and a payload of a risk score or a sample with
// room to spare.
const ReplayEventEstimate = EventOverhead + 512

// join hands the subscription over to the hub when the replay has reached
// the last event the hub dispatched (or always, with force), and reports
// whether it did. Under the hub's lock, no event is dispatched between the
// check and the handover: the hub queues exactly the events after
// max(last, its position), so none is missed and none comes twice.
func (s *Subscription) join(last int64, force bool) bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if last < s.h.last && !force {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.direct = true
	s.seen = max(last, s.h.last)
	return true
}

// reserve charges n bytes to s and its budgets for a page of at most
// count events, waiting while a budget has no room or the queue has no
// slots: a replay goes at its receiver's pace. It reports false when the
// subscription has ended or ctx is done.
func (s *Subscription) reserve(ctx context.Context, n int64, count int) bool {
	s.mu.Lock()
	for {
		if s.ended {
			s.mu.Unlock()
			return false
		}
		wait := (<-chan struct{})(s.space)
		if len(s.queue) == 0 || len(s.queue)+count <= s.max {
			var ok bool
			// Charged as queued to pass the same checks as an event,
			// then held apart as reserved.
			if ok, wait = s.reserveLocked(n, true); ok {
				s.queued -= n
				s.reserved += n
				s.mu.Unlock()
				return true
			}
		}
		s.mu.Unlock()
		if s.h.testReplayWaits != nil {
			s.h.testReplayWaits(s)
		}
		select {
		case <-wait:
		case <-s.done:
		case <-ctx.Done():
			return false // ctx's AfterFunc ends the subscription
		}
		s.mu.Lock()
	}
}

// enqueuePaid queues a replayed event whose cost was reserved, but for
// extra bytes, which are charged now whatever the budgets say (a payload
// larger than the page's estimate). It reports false when the subscription
// has ended (and gives the event's charge back).
func (s *Subscription) enqueuePaid(e *obsqra.Event, extra int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false // its reservation was given back when it ended
	}
	cost := Cost(e)
	paid := min(cost-extra, s.reserved)
	s.reserved -= paid
	if unpaid := cost - paid; unpaid > 0 {
		a := &s.h.acct
		a.mu.Lock()
		s.chargeAcctLocked(unpaid)
		a.mu.Unlock()
	}
	s.queued += cost
	s.queue = append(s.queue, e)
	signal(s.ready)
	return true
}

// refund gives back up to n reserved bytes a page did not use (none once
// the subscription has ended: ending gave them back).
func (s *Subscription) refund(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, s.reserved)
	if n <= 0 {
		return
	}
	s.reserved -= n
	s.releaseAcctLocked(n)
	signal(s.space)
}

// recentCount is how many of the latest events the hub keeps to share
// their decoded payloads: a restart's reconnecting clients resume from
// about the same cursors, and a replay's pages are read again by every
// subscription replaying them. At a few hundred bytes of payload and as
// much decoded, it holds a few MiB at most.
const recentCount = 4096

// recentEvents are the latest events the hub's readers read (the
// dispatcher and the replays), by id modulo recentCount, so that an event
// read again shares the decoded payload of its first reading (see
// obsqra.Event.ShareValue): an event's payload is decoded once per
// process while it is among the latest recentCount read, however many
// subscriptions deliver or replay it.
type recentEvents struct {
	mu     sync.Mutex
	events [recentCount]obsqra.Event
}

// share makes each of events share the decoded payload of the same event
// read before, or remembers it for the next reader.
func (r *recentEvents) share(events []obsqra.Event) {
	if len(events) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range events {
		e := &events[i]
		slot := &r.events[uint64(e.ID)%recentCount]
		if !e.ShareValue(slot) && e.ID >= slot.ID {
			*slot = *e
		}
	}
}
