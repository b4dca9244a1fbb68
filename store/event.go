package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/obsqra/obsqra"
)

var eventColumns = columns("", "id", "topic", "owner_user_id", "protocol_id", "kind", "payload", "created_at", "trace_parent")

// AppendEvent adds e to the outbox in this unit of work, so the event
// commits, or not, with the change it describes. It sets e.ID,
// e.CreatedAt and e.TraceParent, the span of ctx (see trace.go), which is
// stored with the event. e.OwnerID 0 means a public event; its other routing keys
// (ProtocolID, Kind) are stored beside it, NULL for none. A nil Payload is stored as
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
	now := tx.now()
	e.TraceParent = traceParent(ctx)
	err = c.queryRow(ctx,
		"INSERT INTO events (topic, owner_user_id, protocol_id, kind, payload, created_at, trace_parent) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
		e.Topic, idArg(e.OwnerID), idArg(e.ProtocolID), textArg(e.Kind), payload, c.d.timeArg(now), textArg(e.TraceParent)).Scan(&e.ID)
	if err != nil {
		return translate(err, "append event", "event")
	}
	if c.d.eventNotify != "" {
		if _, err := c.exec(ctx, c.d.eventNotify, strconv.FormatInt(e.ID, 10)); err != nil {
			return translate(err, "notify event", "event")
		}
	}
	tx.appended++
	tx.lastEventID = max(tx.lastEventID, e.ID)
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
		var payload []byte
		if err := rows.Scan(&e.ID, &e.Topic, idScanner{&e.OwnerID}, idScanner{&e.ProtocolID}, textScanner{&e.Kind},
			&payload, scanTime(&e.CreatedAt), textScanner{&e.TraceParent}); err != nil {
			return nil, translate(err, "scan event", "event")
		}
		// Ready to be decoded once, however many subscribers read it.
		e.SetPayload(json.RawMessage(payload))
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list events", "row")
	}
	return events, nil
}

// EventsChannel is the PostgreSQL notification channel on which every
// commit that appended outbox events announces its last id.
const EventsChannel = "obsqra_events"

// broadcast wakes every waiter once: wait returns a channel that the next
// signal closes.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// EventsCommitted returns a channel that is closed when a unit of work of
// this process that appended outbox events next commits (not on a
// rollback). A reader takes the channel, reads the events after the last id
// it saw, then waits on the channel: it misses nothing, since a commit
// between its read and its wait closed a channel it already holds.
func (db *DB) EventsCommitted() <-chan struct{} { return db.committed.wait() }

// LastLocalEventID returns the highest outbox id that a unit of work of
// this process has committed, 0 before the first: set when WithTx returns,
// before its caller answers anyone. A reader of the outbox that has not
// dispatched that id yet is behind this process's own writes (a read cache
// following the outbox must not answer from what it knew before them).
func (db *DB) LastLocalEventID() int64 { return db.lastLocalEvent.Load() }

// Listener timings: how soon lib/pq retries a lost LISTEN connection, at
// first and at most.
const (
	listenMinReconnect = 100 * time.Millisecond
	listenMaxReconnect = 10 * time.Second
)

// ListenEvents follows the outbox commits of every process sharing a
// PostgreSQL database: it LISTENs on EventsChannel and sends on the
// returned channel (of capacity 1, so signals coalesce) at each
// notification and each time the listening connection is re-established,
// since notifications sent while it was down are lost and the reader must
// catch up. LISTEN is in place when ListenEvents returns, so a reader that
// reads the outbox after that misses nothing. The listener stops when ctx
// ends, and then the channel is closed. On SQLite, whose database one
// process owns, it returns a channel that only closes with ctx:
// EventsCommitted says all.
// Errors: internal ones (the listening connection cannot be opened).
func (db *DB) ListenEvents(ctx context.Context) (<-chan struct{}, error) {
	out := make(chan struct{}, 1)
	if db.dialect != postgresDialect {
		context.AfterFunc(ctx, func() { close(out) })
		return out, nil
	}
	l := pq.NewListener(db.dsn, listenMinReconnect, listenMaxReconnect, func(ev pq.ListenerEventType, _ error) {
		// Reported before the reconnection's nil notification.
		if ev == pq.ListenerEventReconnected {
			db.listenReconnects.Add(1)
		}
	})
	listened := make(chan error, 1)
	go func() { listened <- l.Listen(EventsChannel) }()
	select {
	case err := <-listened:
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listen on %s: %w", EventsChannel, err)
		}
	case <-ctx.Done():
		l.Close()
		return nil, fmt.Errorf("listen on %s: %w", EventsChannel, ctx.Err())
	}
	go func() {
		defer close(out)
		defer l.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-l.Notify:
				if !ok {
					return
				}
				// A nil notification means the connection was re-established:
				// catch up, as for a real one.
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}

// PruneEvents deletes the outbox events created before before and records
// the highest id it deleted, so that CheckEventCursor can tell a cursor
// whose events are gone. It returns how many events it deleted.
// Errors: internal ones.
func (db *DB) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var deleted int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var through int64 // 0: no event to prune (ids start at 1)
		if err := c.queryRow(ctx, "SELECT MAX(id) FROM events WHERE created_at < ?", c.d.timeArg(before)).Scan(idScanner{&through}); err != nil {
			return translate(err, "find prunable events", "event")
		}
		if through == 0 {
			return nil
		}
		var err error
		if deleted, err = c.execCount(ctx, "DELETE FROM events WHERE id <= ?", through); err != nil {
			return translate(err, "prune events", "event")
		}
		if _, err := c.exec(ctx, "UPDATE event_retention SET pruned_through = ? WHERE id = 1 AND pruned_through < ?", through, through); err != nil {
			return translate(err, "record pruned events", "event")
		}
		return nil
	})
	return deleted, err
}

// CheckEventCursor returns nil when every event after afterID is still in
// the outbox, and an EINVALID error telling the client to refetch when some
// were pruned.
// Errors: EINVALID (expired cursor); otherwise internal ones.
func (db *DB) CheckEventCursor(ctx context.Context, afterID int64) error {
	c := db.conn()
	var through, last int64
	if err := c.queryRow(ctx, "SELECT pruned_through, (SELECT COALESCE(MAX(id), 0) FROM events) FROM event_retention WHERE id = 1").
		Scan(&through, &last); err != nil {
		return translate(err, "read event retention", "event")
	}
	if afterID < through {
		return obsqra.Errorf(obsqra.EINVALID, "this cursor is older than the events kept; refetch the data and subscribe again without it")
	}
	// A cursor names a committed event, so one beyond every event there
	// ever was comes from another database (a reset one, say): waiting for
	// the ids to catch up would deliver nothing and say nothing.
	if afterID > max(last, through) {
		return obsqra.Errorf(obsqra.EINVALID, "this cursor is from events this server never had (was the database reset?); refetch the data and subscribe again without it")
	}
	return nil
}

// LastEventID returns the id of the newest outbox event, 0 when there is
// none: where a reader that wants only what happens from now on starts.
// Errors: internal ones.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.conn().queryRow(ctx, "SELECT COALESCE(MAX(id), 0) FROM events").Scan(&id); err != nil {
		return 0, translate(err, "read last event id", "event")
	}
	return id, nil
}
