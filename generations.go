package obsqra

import (
	"sync"
	"sync/atomic"
)

// Generations follow the outbox as one instance's hub dispatches it, for
// the read models that keep what they read until an event changes it (the
// server's read cache, the sessions authentication reads): a model stamps
// what it reads with Stamp, taken before it reads, and may reuse it while
// Current says the stamp is current. So what it answers never reflects
// less than the events this instance had dispatched when the request
// started.
//
//   - Observe counts each dispatched event: a public one (no owner) moves
//     the public generation, a user's own moves that user's.
//   - This process's own writes are seen at once: while the hub is behind
//     the last event this process committed (localEventID), Stamp says
//     no, and the reader reads the database.
//   - Until Start (the hub has its starting position, so every later
//     commit will be observed) and after Stop (the hub no longer follows
//     the outbox), Stamp says no.
//
// Safe for concurrent use; Observe never blocks on a reader.
type Generations struct {
	localEventID func() int64

	running, stopped atomic.Bool
	// seen is the highest event id observed.
	seen atomic.Int64
	// public counts public events observed, Starts and Stops.
	public atomic.Uint64

	mu     sync.RWMutex
	owners map[int64]uint64 // user id → count of their events observed
}

// Stamp is what a read depended on when it started: the public
// generation and its user's.
type Stamp struct {
	Public, Owner uint64
}

// NewGenerations returns generations that say no until Start.
// localEventID returns the highest outbox id this process has committed
// (store.DB.LastLocalEventID); nil when this process writes no events.
func NewGenerations(localEventID func() int64) *Generations {
	return &Generations{localEventID: localEventID, owners: make(map[int64]uint64)}
}

// Start turns the generations on: call it once the hub that calls Observe
// has its starting position. After Stop it does nothing.
func (g *Generations) Start() {
	g.public.Add(1)
	if !g.stopped.Load() {
		g.running.Store(true)
	}
}

// Stop turns them off for good: the hub stopped following the outbox.
func (g *Generations) Stop() {
	g.stopped.Store(true)
	g.running.Store(false)
	g.public.Add(1)
}

// Observe records an event the hub dispatched (live.Hub.OnEvent).
func (g *Generations) Observe(e *Event) {
	if e.OwnerID == 0 {
		g.public.Add(1)
	} else {
		g.mu.Lock()
		g.owners[e.OwnerID]++
		g.mu.Unlock()
	}
	// After the generations: a reader that sees this id sees its bump.
	for {
		s := g.seen.Load()
		if e.ID <= s || g.seen.CompareAndSwap(s, e.ID) {
			return
		}
	}
}

// Stamp returns the generations now, for user (0: none), or false when
// nothing read may be kept or reused now: not started, stopped, or behind
// this process's own writes.
func (g *Generations) Stamp(user int64) (Stamp, bool) {
	if g == nil || !g.running.Load() {
		return Stamp{}, false
	}
	// In this order: the generations are read after seen, which Observe
	// sets after bumping them.
	if g.localEventID != nil && g.seen.Load() < g.localEventID() {
		return Stamp{}, false
	}
	s := Stamp{Public: g.public.Load()}
	if user != 0 {
		g.mu.RLock()
		s.Owner = g.owners[user]
		g.mu.RUnlock()
	}
	return s, true
}

// Running reports whether the generations are between Start and Stop.
func (g *Generations) Running() bool { return g != nil && g.running.Load() }

// Peek returns the generations now for user, even when Stamp would say
// no: for checking whether something stamped earlier is still current.
func (g *Generations) Peek(user int64) Stamp {
	s := Stamp{Public: g.public.Load()}
	if user != 0 {
		g.mu.RLock()
		s.Owner = g.owners[user]
		g.mu.RUnlock()
	}
	return s
}
