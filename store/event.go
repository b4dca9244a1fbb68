package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/obsqra/obsqra"
)

var eventColumns = columns("", "id", "topic", "owner_user_id", "payload", "created_at")

// AppendEvent adds e to the outbox in this unit of work, so the event
// commits, or not, with the change it describes. It sets e.ID and
// e.CreatedAt. e.OwnerID 0 means a public event. A nil Payload is stored as
// {}; a Payload is stored compacted, and PostgreSQL (jsonb) may give it back
// with its keys reordered and spaces added: equal as JSON, not as bytes.
//
// Ids become visible in id order, so a reader that remembers the last id it
// saw never skips one: on PostgreSQL, AppendEvent first takes a
// transaction-level advisory lock, held until commit or rollback, so a unit
// of work that got id N commits before any other can get N+1. Units of work
// that append events therefore commit one at a time; append late in them.
// Errors: EINVALID when Payload is not a JSON object; otherwise internal
// ones.
func (tx *Tx) AppendEvent(ctx context.Context, e *obsqra.Event) error {
	payload, err := eventPayload(e.Payload)
	if err != nil {
		return err
	}
	c := tx.conn()
	if c.d.eventLock != "" {
		if _, err := c.exec(ctx, c.d.eventLock, eventLockKey); err != nil {
			return translate(err, "lock event outbox", "event")
		}
	}
	var owner any
	if e.OwnerID != 0 {
		owner = e.OwnerID
	}
	now := tx.now()
	err = c.queryRow(ctx,
		"INSERT INTO events (topic, owner_user_id, payload, created_at) VALUES (?, ?, ?, ?) RETURNING id",
		e.Topic, owner, payload, c.d.timeArg(now)).Scan(&e.ID)
	if err != nil {
		return translate(err, "append event", "event")
	}
	e.CreatedAt = now
	return nil
}

// eventPayload checks that p is a JSON object and returns it compacted, as
// a string: lib/pq would send []byte as bytea, which jsonb does not take.
func eventPayload(p json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(p)) == 0 {
		return "{}", nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return "", obsqra.Errorf(obsqra.EINVALID, "event payload must be a JSON object")
	}
	return buf.String(), nil
}

// EventsAfter returns at most limit events with ids above afterID, in id
// order. A reader that passes the last id it saw gets every event once.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) EventsAfter(ctx context.Context, afterID int64, limit int) ([]obsqra.Event, error) {
	return eventsAfter(ctx, db.conn(), afterID, limit)
}

// EventsAfter is (*DB).EventsAfter as this unit of work sees the outbox.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (tx *Tx) EventsAfter(ctx context.Context, afterID int64, limit int) ([]obsqra.Event, error) {
	return eventsAfter(ctx, tx.conn(), afterID, limit)
}

func eventsAfter(ctx context.Context, c conn, afterID int64, limit int) ([]obsqra.Event, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	rows, err := c.query(ctx, "SELECT "+eventColumns+" FROM events WHERE id > ? ORDER BY id LIMIT ?", afterID, limit)
	if err != nil {
		return nil, translate(err, "list events", "event")
	}
	defer rows.Close()
	var events []obsqra.Event
	for rows.Next() {
		var e obsqra.Event
		var owner sql.NullInt64
		var payload []byte
		if err := rows.Scan(&e.ID, &e.Topic, &owner, &payload, scanTime(&e.CreatedAt)); err != nil {
			return nil, translate(err, "scan event", "event")
		}
		e.OwnerID = owner.Int64
		e.Payload = json.RawMessage(payload)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}
