package store

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
)

// ResetRequest is a password reset request waiting to be worked.
type ResetRequest struct {
	ID          int64
	Email       string
	RequestedAt time.Time
}

// QueueResetRequest records a password reset request for email (as
// typed, trimmed), in this unit of work: the same one row whether or not
// an account has the email. A commit of any then signals
// ResetRequestsQueued.
// Errors: only internal ones.
func (tx *Tx) QueueResetRequest(ctx context.Context, email string) error {
	c := tx.conn()
	if _, err := c.exec(ctx, "INSERT INTO reset_requests (email, requested_at) VALUES (?, ?)", email, c.d.timeArg(tx.now())); err != nil {
		return translate(err, "queue reset request", "reset request")
	}
	tx.resetsQueued++
	return nil
}

// ResetRequestsQueued returns a channel closed when a unit of work of this
// process that queued reset requests next commits.
func (db *DB) ResetRequestsQueued() <-chan struct{} { return db.resetsQueued.wait() }

// TakeResetRequests removes at most limit of the oldest reset requests in
// this unit of work and returns them, oldest first: they are gone if and
// only if the unit of work that works them commits. On PostgreSQL those
// another unit of work has taken are skipped (FOR UPDATE SKIP LOCKED).
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (tx *Tx) TakeResetRequests(ctx context.Context, limit int) ([]ResetRequest, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	c := tx.conn()
	rows, err := c.query(ctx, "SELECT id, email, requested_at FROM reset_requests ORDER BY id LIMIT ?"+c.d.skipLocked, limit)
	if err != nil {
		return nil, translate(err, "list reset requests", "reset request")
	}
	var out []ResetRequest
	for rows.Next() {
		var r ResetRequest
		if err := rows.Scan(&r.ID, &r.Email, scanTime(&r.RequestedAt)); err != nil {
			rows.Close()
			return nil, translate(err, "scan reset request", "reset request")
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list reset requests", "row")
	}
	for _, r := range out {
		if _, err := c.exec(ctx, "DELETE FROM reset_requests WHERE id = ?", r.ID); err != nil {
			return nil, translate(err, "take reset request", "reset request")
		}
	}
	return out, nil
}
