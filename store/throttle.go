package store

import (
	"context"
	"time"
)

// Throttle is the login-failure state of one key (an email, a client
// address): how many failures in the window that began at WindowStart, and
// the penalty level that lengthens the lockout of a key that keeps failing.
// A zero WindowStart means no window is open.
type Throttle struct {
	Key         string
	Failures    int
	WindowStart time.Time
	Penalty     int
}

// LockThrottle returns the throttle of key and locks it for the rest of the
// unit of work, so that concurrent attempts on one key read, decide and save
// one after another. A key without a row yields a zero Throttle with Key set.
//
// To lock a key that has no row yet, an empty row is inserted first (ON
// CONFLICT DO NOTHING), then selected FOR UPDATE on PostgreSQL: two units of
// work can never both see "no row" and go on unlocked. On SQLite the unit of
// work holds the database's write lock from its first statement anyway.
// The empty row reads as a zero Throttle, so leaving it costs nothing.
// Errors: only internal ones.
func (tx *Tx) LockThrottle(ctx context.Context, key string) (Throttle, error) {
	c := tx.conn()
	if _, err := c.exec(ctx, "INSERT INTO login_throttle (key) VALUES (?) ON CONFLICT (key) DO NOTHING", key); err != nil {
		return Throttle{}, translate(err, "create login throttle", "login throttle")
	}
	t := Throttle{}
	var start *time.Time // NULL: no window, the zero time
	err := c.queryRow(ctx, "SELECT key, failures, window_start, penalty FROM login_throttle WHERE key = ?"+c.d.forUpdate, key).
		Scan(&t.Key, &t.Failures, scanNullTime(&start), &t.Penalty)
	if err != nil {
		return Throttle{}, translate(err, "lock login throttle", "login throttle")
	}
	if start != nil {
		t.WindowStart = *start
	}
	return t, nil
}

// SaveThrottle stores t, inserting or replacing the row of t.Key. A zero
// t.WindowStart is stored as no window.
// Errors: only internal ones.
func (tx *Tx) SaveThrottle(ctx context.Context, t Throttle) error {
	c := tx.conn()
	var window any
	if !t.WindowStart.IsZero() {
		window = c.d.timeArg(t.WindowStart)
	}
	_, err := c.exec(ctx, `
		INSERT INTO login_throttle (key, failures, window_start, penalty) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET
			failures = excluded.failures, window_start = excluded.window_start, penalty = excluded.penalty`,
		t.Key, t.Failures, window, t.Penalty)
	return translate(err, "save login throttle", "login throttle")
}

// DeleteThrottle forgets the throttle of key; a key without one is fine.
// Errors: only internal ones.
func (tx *Tx) DeleteThrottle(ctx context.Context, key string) error {
	_, err := tx.conn().exec(ctx, "DELETE FROM login_throttle WHERE key = ?", key)
	return translate(err, "delete login throttle", "login throttle")
}
