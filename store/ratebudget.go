package store

import (
	"context"
	"math"
	"time"
)

// BudgetLease asks LeaseBudget for tokens of one shared budget, a token
// bucket of Capacity tokens refilled evenly over Window.
type BudgetLease struct {
	Key      string
	Capacity float64
	Window   time.Duration
	// Need is the fewest tokens worth taking: when fewer are left, none
	// are taken.
	Need float64
	// Want is how many to take when there are that many (at least Need).
	Want float64
	// Now is the clock of the instance asking.
	Now time.Time
}

// BudgetGrant is LeaseBudget's answer.
type BudgetGrant struct {
	// Granted is what was taken: 0, or between Need and Want.
	Granted float64
	// Left is what the budget holds after the lease.
	Left float64
}

// LeaseBudget takes tokens from the shared budget of l.Key, refilled up to
// l.Now, in one unit of work that locks the budget's row: leases from any
// number of instances never take more than the bucket holds. A key
// without a row is a full bucket. A clock behind the row's last lease
// refills nothing.
// Errors: EUNAVAILABLE when the database does not answer in time;
// otherwise only internal ones.
func (db *DB) LeaseBudget(ctx context.Context, l BudgetLease) (BudgetGrant, error) {
	var g BudgetGrant
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		now := l.Now.UnixMicro()
		if _, err := c.exec(ctx, "INSERT INTO rate_budgets (key, tokens, refilled_us) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
			l.Key, l.Capacity, now); err != nil {
			return translate(err, "create rate budget", "rate budget")
		}
		var tokens float64
		var refilled int64
		if err := c.queryRow(ctx, "SELECT tokens, refilled_us FROM rate_budgets WHERE key = ?"+c.d.forUpdate, l.Key).
			Scan(&tokens, &refilled); err != nil {
			return translate(err, "lock rate budget", "rate budget")
		}
		if elapsed := now - refilled; elapsed > 0 && l.Window > 0 {
			tokens += float64(elapsed) * l.Capacity / float64(l.Window.Microseconds())
		} else {
			now = max(now, refilled)
		}
		tokens = math.Min(tokens, l.Capacity)
		if tokens >= l.Need {
			g.Granted = math.Min(tokens, l.Want)
		}
		g.Left = tokens - g.Granted
		_, err := c.exec(ctx, "UPDATE rate_budgets SET tokens = ?, refilled_us = ? WHERE key = ?", g.Left, now, l.Key)
		return translate(err, "lease rate budget", "rate budget")
	})
	return g, err
}

// PruneRateBudgets deletes the budgets last leased from before before (by
// then refilled, if their window is shorter than the time since), and
// returns how many it deleted.
// Errors: only internal ones.
func (db *DB) PruneRateBudgets(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.conn().execCount(ctx, "DELETE FROM rate_budgets WHERE refilled_us < ?", before.UnixMicro())
		return translate(err, "prune rate budgets", "rate budget")
	})
	return n, err
}
