package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestLeaseBudget(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		lease := func(key string, need, want float64, at time.Time) store.BudgetGrant {
			t.Helper()
			g, err := db.LeaseBudget(ctx, store.BudgetLease{Key: key, Capacity: 1000, Window: time.Minute, Need: need, Want: want, Now: at})
			if err != nil {
				t.Fatalf("LeaseBudget: %v", err)
			}
			return g
		}
		for _, step := range []struct {
			name          string
			need, want    float64
			at            time.Time
			granted, left float64
		}{
			{"a new key is a full bucket", 100, 400, t0, 400, 600},
			{"the rest, at the limit", 600, 600, t0, 600, 0},
			{"one past it: nothing", 1, 100, t0, 0, 0},
			{"a clock behind refills nothing", 1, 100, t0.Add(-time.Second), 0, 0},
			{"a quarter of the window refills a quarter", 250, 1000, t0.Add(15 * time.Second), 250, 0},
			{"need more than is left: nothing", 251, 1000, t0.Add(30 * time.Second), 0, 250},
			{"a long idle refills to capacity, no more", 1, 5000, t0.Add(time.Hour), 1000, 0},
		} {
			if g := lease("user:1", step.need, step.want, step.at); g.Granted != step.granted || g.Left != step.left {
				t.Errorf("%s: granted %v, left %v; want %v, %v", step.name, g.Granted, g.Left, step.granted, step.left)
			}
		}
		if g := lease("addr:10.0.0.1", 1, 10, t0); g.Granted != 10 || g.Left != 990 {
			t.Errorf("another key: granted %v, left %v; want 10, 990", g.Granted, g.Left)
		}

		// Units of work leasing at once never take more than the bucket.
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0.0
		for range 16 {
			wg.Go(func() {
				g, err := db.LeaseBudget(ctx, store.BudgetLease{Key: "user:2", Capacity: 1000, Window: time.Hour, Need: 100, Want: 100, Now: t0})
				if err != nil {
					t.Errorf("LeaseBudget: %v", err)
					return
				}
				mu.Lock()
				total += g.Granted
				mu.Unlock()
			})
		}
		wg.Wait()
		if total != 1000 {
			t.Errorf("16 concurrent leases of 100 from 1000 took %v, want 1000", total)
		}

		if n, err := db.PruneRateBudgets(ctx, t0.Add(time.Minute)); err != nil || n != 2 {
			t.Errorf("PruneRateBudgets = %d, %v; want the 2 leased at t0", n, err)
		}
		if g := lease("user:2", 1, 1000, t0); g.Granted != 1000 {
			t.Errorf("after pruning, a full bucket again: granted %v", g.Granted)
		}
	})
}
