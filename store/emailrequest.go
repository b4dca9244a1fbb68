package store

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
)

// EmailRequest is a request for a mailed link, made without signing in
// and waiting to be worked: its Purpose is TokenResetPassword or
// TokenVerifyEmail.
type EmailRequest struct {
	ID          int64
	Purpose     string
	Email       string
	RequestedAt time.Time
}

// QueueEmailRequest records a request of purpose for email (as typed,
// trimmed), in this unit of work: the same one row whether or not an
// account has the email. A commit of any then signals
// EmailRequestsQueued.
// Errors: only internal ones.
func (tx *Tx) QueueEmailRequest(ctx context.Context, purpose, email string) error {
	c := tx.conn()
	if _, err := c.exec(ctx, "INSERT INTO email_requests (purpose, email, requested_at) VALUES (?, ?, ?)",
		purpose, email, c.d.timeArg(tx.now())); err != nil {
		return translate(err, "queue email request", "email request")
	}
	tx.requestsQueued++
	return nil
}

// EmailRequestsQueued returns a channel closed when a unit of work of this
// process that queued email requests next commits.
func (db *DB) EmailRequestsQueued() <-chan struct{} { return db.requestsQueued.wait() }

// TakeEmailRequests removes at most limit of the oldest email requests in
// this unit of work and returns them, oldest first: they are gone if and
// only if the unit of work that works them commits. On PostgreSQL those
// another unit of work has taken are skipped (FOR UPDATE SKIP LOCKED).
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (tx *Tx) TakeEmailRequests(ctx context.Context, limit int) ([]EmailRequest, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	c := tx.conn()
	rows, err := c.query(ctx, "SELECT id, purpose, email, requested_at FROM email_requests ORDER BY id LIMIT ?"+c.d.skipLocked, limit)
	if err != nil {
		return nil, translate(err, "list email requests", "email request")
	}
	var out []EmailRequest
	for rows.Next() {
		var r EmailRequest
		if err := rows.Scan(&r.ID, &r.Purpose, &r.Email, scanTime(&r.RequestedAt)); err != nil {
			rows.Close()
			return nil, translate(err, "scan email request", "email request")
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list email requests", "row")
	}
	for _, r := range out {
		if _, err := c.exec(ctx, "DELETE FROM email_requests WHERE id = ?", r.ID); err != nil {
			return nil, translate(err, "take email request", "email request")
		}
	}
	return out, nil
}
