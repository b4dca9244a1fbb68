package store

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
)

// Alert is one thing a user is to be mailed about (the alerts table):
// package alert records it from an outbox event and later mails it in a
// digest.
type Alert struct {
	// ID is the alert's id, set by AddAlert.
	ID int64
	// UserID is the user the alert is for.
	UserID int64
	// Kind names what happened ("rebalance_suggestion", "transaction_failed",
	// "risk_rise").
	Kind string
	// SubjectKey names what the alert is about within its kind (a
	// suggestion's id, a transaction's id and status, a risk score's id):
	// a user gets one alert per (Kind, SubjectKey), however often the
	// event is read.
	SubjectKey string
	// ProtocolID is the protocol of a risk rise; 0 for other kinds.
	ProtocolID int64
	// Detail is the alert's line in the digest, plain text.
	Detail string
	// CreatedAt is when the alert was recorded, set by AddAlert.
	CreatedAt time.Time
	// MailedAt is when the alert went into a queued mail, nil until then.
	MailedAt *time.Time
}

var alertColumns = columns("", "id", "user_id", "kind", "subject_key", "protocol_id", "detail", "created_at", "mailed_at")

// alertable is the condition on users (unqualified columns) of those who
// get alerts: an active account, a verified address, alerts on.
const alertable = "active AND email_verified AND email_alerts"

// AlertCursor returns the id of the last outbox event the alerts job has
// processed; with no cursor yet it stores start as the cursor and returns
// it (so a new server does not alert on history).
// Errors: only internal ones.
func (db *DB) AlertCursor(ctx context.Context, start int64) (int64, error) {
	var id int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		if _, err := c.exec(ctx, "INSERT INTO alert_state (id, event_id) VALUES (1, ?) ON CONFLICT (id) DO NOTHING", start); err != nil {
			return translate(err, "start alert cursor", "alert cursor")
		}
		return translate(c.queryRow(ctx, "SELECT event_id FROM alert_state WHERE id = 1").Scan(&id), "read alert cursor", "alert cursor")
	})
	return id, err
}

// MoveAlertCursor moves the alerts job's cursor from from to to in this
// unit of work.
// Errors: ECONFLICT when the cursor is no longer at from (another run
// moved it: this one's alerts must roll back); otherwise internal ones.
func (tx *Tx) MoveAlertCursor(ctx context.Context, from, to int64) error {
	n, err := tx.conn().execCount(ctx, "UPDATE alert_state SET event_id = ? WHERE id = 1 AND event_id = ?", to, from)
	if err != nil {
		return translate(err, "move alert cursor", "alert cursor")
	}
	if n == 0 {
		return obsqra.Errorf(obsqra.ECONFLICT, "the alert cursor is no longer at %d", from)
	}
	return nil
}

// AddAlert records a for its user in this unit of work and reports whether
// it did: it does not when the user gets no alerts (inactive, unverified
// address, alerts off), when the user has an alert of the same Kind and
// SubjectKey already, or, for quiet > 0, when the user has an alert of the
// same Kind and ProtocolID recorded less than quiet ago. It sets a.ID and
// a.CreatedAt when it adds it.
// Errors: EINVALID when UserID, Kind, SubjectKey or Detail is missing;
// otherwise internal ones.
func (tx *Tx) AddAlert(ctx context.Context, a *Alert, quiet time.Duration) (bool, error) {
	if a.UserID == 0 || a.Kind == "" || a.SubjectKey == "" || a.Detail == "" {
		return false, obsqra.Errorf(obsqra.EINVALID, "an alert needs a user, a kind, a subject key and a detail")
	}
	c := tx.conn()
	now := tx.now()
	query := `
		INSERT INTO alerts (user_id, kind, subject_key, protocol_id, detail, created_at)
		SELECT id, ?, ?, ?, ?, ? FROM users WHERE id = ? AND ` + alertable
	args := []any{a.Kind, a.SubjectKey, idArg(a.ProtocolID), a.Detail, c.d.timeArg(now), a.UserID}
	if quiet > 0 {
		query += " AND NOT EXISTS (SELECT 1 FROM alerts q WHERE q.user_id = users.id AND q.kind = ? AND q.protocol_id = ? AND q.created_at > ?)"
		args = append(args, a.Kind, idArg(a.ProtocolID), c.d.timeArg(now.Add(-quiet)))
	}
	query += " ON CONFLICT (user_id, kind, subject_key) DO NOTHING RETURNING id"
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return false, translate(err, "add alert", "alert")
	}
	defer rows.Close()
	added := false
	for rows.Next() {
		if err := rows.Scan(&a.ID); err != nil {
			return false, translate(err, "add alert", "alert")
		}
		added = true
	}
	if err := rows.Err(); err != nil {
		return false, translate(err, "add alert", "alert")
	}
	if added {
		a.CreatedAt, a.MailedAt = now, nil
	}
	return added, nil
}

// AlertHolders returns the ids of the users who get alerts (see AddAlert)
// and whose latest allocation holds protocolID (a weight above 0), in one
// statement, in id order.
// Errors: only internal ones.
func (tx *Tx) AlertHolders(ctx context.Context, protocolID int64) ([]int64, error) {
	// The weights are a JSON array, which the two dialects read
	// differently; the eligible users' latest allocations are read in one
	// statement and filtered here.
	rows, err := tx.conn().query(ctx, `
		SELECT u.id, a.weights FROM users u
		JOIN allocations a ON a.id = (SELECT s.id FROM allocations s WHERE s.user_id = u.id
			ORDER BY s.created_at DESC, s.id DESC LIMIT 1)
		WHERE u.active AND u.email_verified AND u.email_alerts
		ORDER BY u.id`)
	if err != nil {
		return nil, translate(err, "list alert holders", "user")
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		var weights []obsqra.Weight
		if err := rows.Scan(&id, weightsScanner{&weights}); err != nil {
			return nil, translate(err, "scan alert holder", "user")
		}
		for _, w := range weights {
			if w.ProtocolID == protocolID && w.WeightBps > 0 {
				ids = append(ids, id)
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list alert holders", "row")
	}
	return ids, nil
}

// MinRiskScore returns the lowest score of protocolID observed in [from,
// to), leaving out the score excludeID; false when there is none.
// Errors: only internal ones.
func (tx *Tx) MinRiskScore(ctx context.Context, protocolID int64, from, to time.Time, excludeID int64) (int, bool, error) {
	c := tx.conn()
	var score *int64
	err := c.queryRow(ctx, "SELECT MIN(score) FROM risk_scores WHERE protocol_id = ? AND observed_at >= ? AND observed_at < ? AND id <> ?",
		protocolID, c.d.timeArg(from), c.d.timeArg(to), excludeID).Scan(&score)
	if err != nil {
		return 0, false, translate(err, "read minimum risk score", "risk score")
	}
	if score == nil {
		return 0, false, nil
	}
	return int(*score), true, nil
}

// DigestUsers returns the ids of the users who get alerts (see AddAlert),
// have unmailed alerts, and whose last alert was mailed at or before
// mailedBefore (or never), in id order.
// Errors: only internal ones.
func (db *DB) DigestUsers(ctx context.Context, mailedBefore time.Time) ([]int64, error) {
	c := db.conn()
	rows, err := c.query(ctx, `
		SELECT u.id FROM users u
		WHERE u.active AND u.email_verified AND u.email_alerts
		AND EXISTS (SELECT 1 FROM alerts a WHERE a.user_id = u.id AND a.mailed_at IS NULL)
		AND NOT EXISTS (SELECT 1 FROM alerts m WHERE m.user_id = u.id AND m.mailed_at IS NOT NULL AND m.mailed_at > ?)
		ORDER BY u.id`, c.d.timeArg(mailedBefore))
	if err != nil {
		return nil, translate(err, "list digest users", "user")
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, translate(err, "scan digest user", "user")
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list digest users", "row")
	}
	return ids, nil
}

// UnmailedAlerts returns the user's alerts not mailed yet, oldest first.
// Errors: only internal ones.
func (tx *Tx) UnmailedAlerts(ctx context.Context, userID int64) ([]Alert, error) {
	rows, err := tx.conn().query(ctx, "SELECT "+alertColumns+" FROM alerts WHERE user_id = ? AND mailed_at IS NULL ORDER BY id", userID)
	if err != nil {
		return nil, translate(err, "list unmailed alerts", "alert")
	}
	defer rows.Close()
	var alerts []Alert
	for rows.Next() {
		var a Alert
		if err := rows.Scan(&a.ID, &a.UserID, &a.Kind, &a.SubjectKey, idScanner{&a.ProtocolID}, &a.Detail,
			scanTime(&a.CreatedAt), scanNullTime(&a.MailedAt)); err != nil {
			return nil, translate(err, "scan alert", "alert")
		}
		alerts = append(alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list unmailed alerts", "row")
	}
	return alerts, nil
}

// MarkAlertsMailed records, in this unit of work, that the alerts ids went
// into a mail queued now.
// Errors: ECONFLICT when one of them is mailed already (another run
// mailed it: this one's mail must roll back); otherwise internal ones.
func (tx *Tx) MarkAlertsMailed(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	c := tx.conn()
	args := []any{c.d.timeArg(tx.now())}
	for _, id := range ids {
		args = append(args, id)
	}
	n, err := c.execCount(ctx, "UPDATE alerts SET mailed_at = ? WHERE mailed_at IS NULL AND id IN ("+placeholders(len(ids))+")", args...)
	if err != nil {
		return translate(err, "mark alerts mailed", "alert")
	}
	if n != int64(len(ids)) {
		return obsqra.Errorf(obsqra.ECONFLICT, "%d of %d alerts are mailed already", int64(len(ids))-n, len(ids))
	}
	return nil
}

// DropUnwantedAlerts deletes the unmailed alerts of the users who no
// longer get alerts (alerts turned off, or the account deactivated, since
// they were recorded) and returns how many: they will never be mailed.
// Errors: only internal ones.
func (db *DB) DropUnwantedAlerts(ctx context.Context) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.conn().execCount(ctx, "DELETE FROM alerts WHERE mailed_at IS NULL AND user_id IN (SELECT id FROM users WHERE NOT ("+alertable+"))")
		return translate(err, "drop unwanted alerts", "alert")
	})
	return n, err
}

// PruneAlerts deletes the alerts mailed before before and returns how
// many: an alert's row is what keeps its event from alerting twice, so it
// must outlive the event in the outbox and the 24 hours of a risk rise's
// quiet period, and no more.
// Errors: only internal ones.
func (db *DB) PruneAlerts(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx, "DELETE FROM alerts WHERE mailed_at IS NOT NULL AND mailed_at < ?", c.d.timeArg(before))
		return translate(err, "prune alerts", "alert")
	})
	return n, err
}
