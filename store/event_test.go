package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func appendEvent(ctx context.Context, db *store.DB, e *obsqra.Event) error {
	return db.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendEvent(ctx, e) })
}

func TestEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "events@example.com")

		appended := []*obsqra.Event{
			{Topic: "user.updated", OwnerID: u.ID, Payload: json.RawMessage(`{ "id": 1, "name": "Ada", "tags": ["a", "b"] }`)},
			{Topic: "protocol.scored", Payload: nil},
			{Topic: "protocol.scored", Payload: json.RawMessage(`{"nested": {"x": null}}`)},
		}
		for i, e := range appended {
			if err := appendEvent(ctx, db, e); err != nil {
				t.Fatalf("AppendEvent(#%d) = %v, want nil", i, err)
			}
			if e.ID == 0 || e.CreatedAt != stampUTC(testTime) {
				t.Fatalf("AppendEvent(#%d) set ID, CreatedAt = %d, %v, want an id and %v", i, e.ID, e.CreatedAt, stampUTC(testTime))
			}
			if i > 0 && e.ID <= appended[i-1].ID {
				t.Fatalf("AppendEvent(#%d) id %d not above the one before, %d", i, e.ID, appended[i-1].ID)
			}
		}

		got, err := db.EventsAfter(ctx, 0, 100)
		if err != nil || len(got) != len(appended) {
			t.Fatalf("EventsAfter(0, 100) = %d events, %v, want %d", len(got), err, len(appended))
		}
		wantPayloads := []string{`{"id": 1, "name": "Ada", "tags": ["a", "b"]}`, `{}`, `{"nested": {"x": null}}`}
		for i, e := range got {
			w := appended[i]
			if e.ID != w.ID || e.Topic != w.Topic || e.OwnerID != w.OwnerID || e.CreatedAt != w.CreatedAt {
				t.Errorf("EventsAfter(0, 100)[%d] = %+v, want %+v", i, e, w)
			}
			if !jsonEqual(t, e.Payload, json.RawMessage(wantPayloads[i])) {
				t.Errorf("EventsAfter(0, 100)[%d].Payload = %s, want %s as JSON", i, e.Payload, wantPayloads[i])
			}
		}

		if got, err := db.EventsAfter(ctx, appended[0].ID, 1); err != nil || len(got) != 1 || got[0].ID != appended[1].ID {
			t.Errorf("EventsAfter(%d, 1) = %+v, %v, want only event %d", appended[0].ID, got, err, appended[1].ID)
		}
		if got, err := db.EventsAfter(ctx, appended[2].ID, 10); err != nil || len(got) != 0 {
			t.Errorf("EventsAfter(last, 10) = %+v, %v, want none", got, err)
		}
		_, err = db.EventsAfter(ctx, 0, 0)
		wantCode(t, "EventsAfter(0, 0)", err, obsqra.EINVALID)

		for _, p := range []string{`[1, 2]`, `"text"`, `42`, `null`, `{"a":`, `{} {}`} {
			err := appendEvent(ctx, db, &obsqra.Event{Topic: "bad", Payload: json.RawMessage(p)})
			wantCode(t, fmt.Sprintf("AppendEvent(payload %s)", p), err, obsqra.EINVALID)
		}
	})
}

func jsonEqual(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("payload %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestEventsVisibleInIDOrder has many writers append events, some pausing
// inside their units of work, while a reader that remembers only its last
// id polls the outbox. It must see every committed event exactly once: no
// event may become visible below an id the reader has already passed.
func TestEventsVisibleInIDOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		const writers, perWriter = 8, 50

		var mu sync.Mutex
		committed := map[int64]bool{}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				pause := func() {
					if rng.IntN(4) == 0 {
						time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
					}
				}
				for i := range perWriter {
					e := &obsqra.Event{Topic: "test", OwnerID: int64(w + 1), Payload: json.RawMessage(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))}
					err := db.WithTx(ctx, func(tx *store.Tx) error {
						pause()
						if err := tx.AppendEvent(ctx, e); err != nil {
							return err
						}
						pause() // holding an id, not yet committed
						return nil
					})
					if err != nil {
						t.Errorf("writer %d: AppendEvent = %v", w, err)
						return
					}
					mu.Lock()
					committed[e.ID] = true
					mu.Unlock()
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()

		seen := map[int64]int{}
		var last int64
		poll := func() int {
			events, err := db.EventsAfter(ctx, last, 100)
			if err != nil {
				t.Fatalf("EventsAfter(%d, 100) = %v", last, err)
			}
			for _, e := range events {
				if e.ID <= last {
					t.Fatalf("EventsAfter(%d, 100) returned id %d", last, e.ID)
				}
				seen[e.ID]++
				last = e.ID
			}
			return len(events)
		}
	loop:
		for {
			select {
			case <-done:
				break loop
			default:
			}
			if poll() == 0 {
				time.Sleep(100 * time.Microsecond) // an idle poller need not spin
			}
		}
		for poll() > 0 {
		}

		if len(committed) != writers*perWriter {
			t.Fatalf("%d events committed, want %d", len(committed), writers*perWriter)
		}
		missed := 0
		for id := range committed {
			if seen[id] != 1 {
				missed++
				if missed <= 5 {
					t.Errorf("event %d seen %d times by the polling reader, want once", id, seen[id])
				}
			}
		}
		if missed > 0 {
			t.Errorf("%d of %d events not seen exactly once", missed, len(committed))
		}
		if len(seen) != len(committed) {
			t.Errorf("reader saw %d events, %d were committed", len(seen), len(committed))
		}
	})
}

// TestEventsCommittedSignal: a commit that appended events closes the
// channel taken before it, and counts them in Stats; a rollback and a
// commit without events do neither.
func TestEventsCommittedSignal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		closed := func(ch <-chan struct{}) bool {
			select {
			case <-ch:
				return true
			default:
				return false
			}
		}
		ch := db.EventsCommitted()
		errRollback := fmt.Errorf("roll back")
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			if err := tx.AppendEvent(ctx, &obsqra.Event{Topic: "t"}); err != nil {
				return err
			}
			return errRollback
		})
		if err != errRollback || closed(ch) {
			t.Fatalf("after a rollback: err %v, signalled %v; want the rollback and no signal", err, closed(ch))
		}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return nil }); err != nil || closed(ch) {
			t.Fatalf("after a commit without events: err %v, signalled %v; want no signal", err, closed(ch))
		}
		if n := db.Stats().EventsCommitted; n != 0 {
			t.Fatalf("after a rollback and a commit without events: Stats().EventsCommitted = %d, want 0", n)
		}
		if err := db.WithTx(ctx, func(tx *store.Tx) error {
			for range 2 {
				if err := tx.AppendEvent(ctx, &obsqra.Event{Topic: "t"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !closed(ch) {
			t.Fatal("a commit with events did not signal")
		}
		if n := db.Stats().EventsCommitted; n != 2 {
			t.Fatalf("after a commit of 2 events: Stats().EventsCommitted = %d, want 2", n)
		}
		if closed(db.EventsCommitted()) {
			t.Fatal("the next channel is closed before the next commit")
		}
	})
}

// TestListenEventsAcrossProcesses: a commit through another connection pool
// (another server process) reaches ListenEvents; on SQLite the channel
// closes with its context.
func TestListenEventsAcrossProcesses(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db := storetest.Postgres(t)
		other := storetest.Reopen(t, db)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := db.ListenEvents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e := &obsqra.Event{Topic: "t"}
		if err := appendEvent(ctx, other, e); err != nil {
			t.Fatal(err)
		}
		// Other tests share the database and its channel, so wait for a
		// signal after which our event is readable.
		deadline := time.After(10 * time.Second)
		for {
			select {
			case <-ch:
			case <-deadline:
				t.Fatal("no notification within 10 s of the commit")
			}
			got, err := db.EventsAfter(ctx, e.ID-1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 1 && got[0].ID == e.ID {
				break
			}
		}
		cancel()
		for range ch { // closed when the listener stops
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		db := storetest.SQLite(t)
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := db.ListenEvents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, ok := <-ch; ok {
			t.Fatal("ListenEvents on SQLite sent a signal")
		}
	})
}

func TestPruneEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		var ids []int64
		for day := range 4 {
			db.Now = fixedClock(testTime.Add(time.Duration(day) * 24 * time.Hour))
			e := &obsqra.Event{Topic: "t"}
			if err := appendEvent(ctx, db, e); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		if err := db.CheckEventCursor(ctx, 0); err != nil {
			t.Fatalf("CheckEventCursor(0) before pruning = %v, want nil", err)
		}
		if last, err := db.LastEventID(ctx); err != nil || last != ids[3] {
			t.Fatalf("LastEventID = %d, %v; want %d", last, err, ids[3])
		}
		// Everything before day 2 goes: the events of days 0 and 1.
		n, err := db.PruneEvents(ctx, testTime.Add(2*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("PruneEvents = %d, %v; want 2 deleted", n, err)
		}
		left, err := db.EventsAfter(ctx, 0, 10)
		if err != nil || len(left) != 2 || left[0].ID != ids[2] {
			t.Fatalf("after pruning EventsAfter(0) = %v, %v; want the events of days 2 and 3", left, err)
		}
		for _, tt := range []struct {
			after int64
			ok    bool
		}{{0, false}, {ids[0], false}, {ids[1], true}, {ids[3], true}, {ids[3] + 1, false}, {ids[3] + 1000, false}} {
			err := db.CheckEventCursor(ctx, tt.after)
			if tt.ok != (err == nil) || (err != nil && obsqra.ErrorCode(err) != obsqra.EINVALID) {
				t.Errorf("CheckEventCursor(%d) = %v, want ok %v (EINVALID otherwise)", tt.after, err, tt.ok)
			}
		}
		// Pruning an already pruned range changes nothing.
		if n, err := db.PruneEvents(ctx, testTime); err != nil || n != 0 {
			t.Fatalf("PruneEvents(earlier) = %d, %v; want 0", n, err)
		}
		if err := db.CheckEventCursor(ctx, ids[1]); err != nil {
			t.Fatalf("the watermark went back: %v", err)
		}
	})
}
