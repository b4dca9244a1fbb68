// Package ratelimit is the cost budgets of the API: a token bucket per
// signed-in user and per client address, in the cost points of GraphQL
// operations (their complexity, with mutations and subscriptions priced),
// refilled evenly over a window, with a policy per role.
//
// Budgets hold across instances without a round trip per request: the
// bucket of a key lives in the database (store.LeaseBudget), and an
// instance leases tokens from it in chunks (a sixteenth of the capacity,
// or the cost at hand if more), spending them locally until they run out.
// Every token admitted anywhere was taken from the shared bucket first, so
// N instances together never admit more than one bucket would: over any
// interval, at most the capacity plus the refill of the interval. The
// price is the other way: tokens leased by an instance the client has left
// are idle there until they are spent or forgotten, so a client moving
// between instances may be refused while up to one chunk per other
// instance sits unspent (a sixteenth of the capacity each).
package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/obsqra/obsqra/store"
)

// Policy is one budget: Capacity points, refilled evenly over Window (so a
// client may spend Capacity at once, then Capacity per Window).
type Policy struct {
	// Name names the policy in RateLimit-Policy and in errors.
	Name     string
	Capacity int64
	Window   time.Duration
}

// perSecond is p's refill rate.
func (p *Policy) perSecond() float64 { return float64(p.Capacity) / p.Window.Seconds() }

// chunk is how many points an instance leases at once: enough that most
// requests spend leased points, few enough that idle leases strand little.
func (p *Policy) chunk() float64 { return math.Max(1, float64(p.Capacity)/16) }

// Store shares budgets between instances (*store.DB).
type Store interface {
	LeaseBudget(ctx context.Context, l store.BudgetLease) (store.BudgetGrant, error)
}

// DefaultMaxKeys bounds the budgets an instance keeps in memory.
const DefaultMaxKeys = 1 << 16

// Limiter charges operations' costs to budgets. Its zero value is not
// ready: use New.
type Limiter struct {
	store   Store
	now     func() time.Time
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket
}

// New returns a limiter sharing its budgets through st, with the clock now
// (time.Now when nil).
func New(st Store, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{store: st, now: now, maxKeys: DefaultMaxKeys, buckets: make(map[string]*bucket)}
}

// bucket is an instance's part of one budget: the points it has leased and
// not spent, and what the shared budget held after its last lease.
type bucket struct {
	policy *Policy
	// leasing is held while a lease is asked of the store: requests of
	// the key wait for it rather than each leasing.
	leasing sync.Mutex

	mu       sync.Mutex
	local    float64
	shared   float64
	sharedAt time.Time
	used     time.Time
}

// Decision is the outcome of a charge.
type Decision struct {
	Policy *Policy
	// Allowed reports whether the cost was charged.
	Allowed bool
	// Cost is what was asked.
	Cost int64
	// Remaining estimates the points left: this instance's leased points
	// and the shared budget as of the last lease, refilled since (other
	// instances may have spent some of it).
	Remaining int64
	// RetryAfter, when refused, is how long until the cost fits.
	RetryAfter time.Duration
	// Reset is how long until the budget is full again, spending nothing.
	Reset time.Duration
}

// ErrTooCostly is the error of a cost over the whole capacity of its
// policy: it never fits.
var ErrTooCostly = errors.New("the operation costs more than the whole budget")

// Charge charges cost to the budget of key under p. A refusal is a
// Decision with Allowed false; an error means the shared budget could not
// be read (the database did not answer), or ErrTooCostly.
func (l *Limiter) Charge(ctx context.Context, key string, p *Policy, cost int64) (Decision, error) {
	d := Decision{Policy: p, Cost: cost}
	if cost > p.Capacity {
		return d, ErrTooCostly
	}
	b := l.bucket(key, p)
	now := l.now()
	if b.take(float64(cost), now, &d) {
		return d, nil
	}
	b.leasing.Lock()
	defer b.leasing.Unlock()
	// Another request's lease may have come meanwhile.
	if b.take(float64(cost), now, &d) {
		return d, nil
	}
	b.mu.Lock()
	need := float64(cost) - b.local
	b.mu.Unlock()
	g, err := l.store.LeaseBudget(ctx, store.BudgetLease{
		Key: key, Capacity: float64(p.Capacity), Window: p.Window,
		Need: need, Want: math.Max(need, p.chunk()), Now: now,
	})
	if err != nil {
		return d, err
	}
	b.mu.Lock()
	b.local += g.Granted
	b.shared, b.sharedAt = g.Left, now
	b.mu.Unlock()
	if b.take(float64(cost), now, &d) {
		return d, nil
	}
	d.RetryAfter = time.Duration(math.Ceil((need-g.Left)/p.perSecond())) * time.Second
	d.RetryAfter = max(d.RetryAfter, time.Second)
	return d, nil
}

// take spends cost from b's leased points if they suffice, and fills d.
func (b *bucket) take(cost float64, now time.Time, d *Decision) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = now
	ok := b.local >= cost
	if ok {
		b.local -= cost
	}
	d.Allowed = ok
	shared := b.shared
	if !b.sharedAt.IsZero() {
		shared = math.Min(float64(b.policy.Capacity), shared+now.Sub(b.sharedAt).Seconds()*b.policy.perSecond())
	} else {
		shared = float64(b.policy.Capacity) // never leased: a full bucket
	}
	left := math.Min(float64(b.policy.Capacity), b.local+shared)
	d.Remaining = int64(left)
	d.Reset = time.Duration(math.Ceil((float64(b.policy.Capacity)-left)/b.policy.perSecond())) * time.Second
	return ok
}

// Refund gives back n points of a charge to key's budget (an operation
// that cost less than it was charged): they return to this instance's
// leased points.
func (l *Limiter) Refund(key string, n int64) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	b := l.buckets[key]
	l.mu.Unlock()
	if b == nil {
		return
	}
	b.mu.Lock()
	b.local += float64(n)
	b.mu.Unlock()
}

// bucket returns the bucket of key, made under p if new. When the
// limiter holds maxKeys, the buckets idle for longer than their window
// are forgotten first (a full refill since), then any: forgetting one
// only forgets points leased to this instance, so it can never admit
// more.
func (l *Limiter) bucket(key string, p *Policy) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil && b.policy == p {
		return b
	}
	if len(l.buckets) >= l.maxKeys {
		l.evict()
	}
	// A key whose policy changed (a user's new role) starts a bucket of
	// the new policy; the old one's leased points are forgotten.
	b := &bucket{policy: p}
	l.buckets[key] = b
	return b
}

// evict forgets the buckets idle for longer than their window, and if
// none is, one eighth of the buckets. l.mu is held.
func (l *Limiter) evict() {
	now := l.now()
	for k, b := range l.buckets {
		b.mu.Lock()
		idle := now.Sub(b.used) > b.policy.Window
		b.mu.Unlock()
		if idle {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys-l.maxKeys/8 {
			break
		}
		delete(l.buckets, k)
	}
}

// Keys returns how many budgets the limiter holds in memory.
func (l *Limiter) Keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
