package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newClock() *clock { return &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)} }

func charge(t *testing.T, l *ratelimit.Limiter, key string, p *ratelimit.Policy, cost int64) ratelimit.Decision {
	t.Helper()
	d, err := l.Charge(context.Background(), key, p, cost)
	if err != nil {
		t.Fatalf("Charge(%s, %d): %v", key, cost, err)
	}
	return d
}

// The budget admits its capacity at once, at the limit, and refuses one
// point past it, with the time until that point has refilled.
func TestChargeAtTheLimit(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		c := newClock()
		l := ratelimit.New(db, c.now)
		p := &ratelimit.Policy{Name: "user", Capacity: 600, Window: time.Minute} // 10 points a second
		for i := range 6 {
			if d := charge(t, l, "user:1", p, 100); !d.Allowed || d.Remaining != int64(500-100*i) {
				t.Fatalf("charge %d of 100: allowed %v, remaining %d; want allowed, %d", i, d.Allowed, d.Remaining, 500-100*i)
			}
		}
		d := charge(t, l, "user:1", p, 1)
		if d.Allowed || d.RetryAfter != time.Second || d.Remaining != 0 || d.Reset != time.Minute {
			t.Fatalf("one past the limit: %+v; want refused, retry after 1s, 0 remaining, reset in 1m", d)
		}
		d = charge(t, l, "user:1", p, 50)
		if d.Allowed || d.RetryAfter != 5*time.Second {
			t.Fatalf("50 past the limit: %+v; want refused, retry after 5s", d)
		}
		// Another key has its own budget.
		if d := charge(t, l, "addr:10.0.0.1", p, 600); !d.Allowed {
			t.Fatalf("another key: %+v, want allowed", d)
		}
		c.advance(5 * time.Second)
		if d := charge(t, l, "user:1", p, 50); !d.Allowed {
			t.Fatalf("after 5 s: %+v, want the 50 points refilled", d)
		}
		if d := charge(t, l, "user:1", p, 1); d.Allowed {
			t.Fatalf("after spending the refill: %+v, want refused", d)
		}
		// A refund returns points to the key's budget.
		l.Refund("user:1", 30)
		if d := charge(t, l, "user:1", p, 30); !d.Allowed {
			t.Fatalf("after a refund of 30: %+v, want allowed", d)
		}
		if _, err := l.Charge(context.Background(), "user:1", p, 601); !errors.Is(err, ratelimit.ErrTooCostly) {
			t.Fatalf("a cost over the capacity: %v, want ErrTooCostly", err)
		}
	})
}

// Two limiters on one database (two instances) never admit together more
// than one budget would: the capacity, plus the refill of the time since.
func TestChargeAcrossInstances(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		c := newClock()
		a, b := ratelimit.New(db, c.now), ratelimit.New(db, c.now)
		p := &ratelimit.Policy{Name: "anonymous", Capacity: 1600, Window: 160 * time.Second} // 10 a second
		var admitted int64
		var mu sync.Mutex
		for step := range 20 {
			var wg sync.WaitGroup
			for _, l := range []*ratelimit.Limiter{a, b, a, b} {
				wg.Go(func() {
					for range 20 {
						d, err := l.Charge(context.Background(), "addr:192.0.2.1", p, 7)
						if err != nil {
							t.Error(err)
							return
						}
						if d.Allowed {
							mu.Lock()
							admitted += 7
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Duration(step) * time.Second
			if limit := 1600 + int64(elapsed.Seconds()*10); admitted > limit {
				t.Fatalf("after %v the two instances admitted %d, over %d", elapsed, admitted, limit)
			}
			c.advance(time.Second)
		}
		// Both instances were refused at times, and together they spent
		// most of what the budget allowed (the leases they hold unspent
		// are at most a chunk, a sixteenth of the capacity, each).
		if limit := int64(1600 + 19*10); admitted < limit-2*100-7*2 {
			t.Errorf("admitted %d of %d: the leases stranded too much", admitted, limit)
		}
	})
}

// failingStore is a shared budget that does not answer.
type failingStore struct{}

func (failingStore) LeaseBudget(context.Context, store.BudgetLease) (store.BudgetGrant, error) {
	return store.BudgetGrant{}, errors.New("database did not answer")
}

func TestChargeStoreFails(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(failingStore{}, nil)
	p := &ratelimit.Policy{Name: "user", Capacity: 100, Window: time.Minute}
	if _, err := l.Charge(context.Background(), "user:1", p, 1); err == nil {
		t.Fatal("Charge with the shared budget unreachable succeeded")
	}
}

// The budgets held in memory are bounded: at the bound, a new key evicts
// idle ones (which only forgets points leased here).
func TestLimiterKeysBounded(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	c := newClock()
	l := ratelimit.New(db, c.now)
	ratelimit.SetMaxKeys(l, 64)
	p := &ratelimit.Policy{Name: "anonymous", Capacity: 100, Window: time.Second}
	for i := range 64 {
		charge(t, l, "addr:"+string(rune('a'+i)), p, 1)
	}
	if n := l.Keys(); n != 64 {
		t.Fatalf("%d keys, want 64", n)
	}
	c.advance(2 * time.Second)
	charge(t, l, "addr:new", p, 1)
	if n := l.Keys(); n != 1 {
		t.Fatalf("after the idle ones were evicted: %d keys, want 1", n)
	}
	for i := range 200 {
		charge(t, l, "addr:busy"+string(rune('a'+i)), p, 1)
		if n := l.Keys(); n > 64 {
			t.Fatalf("%d keys, over the bound of 64", n)
		}
	}
}
