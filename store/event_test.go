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
