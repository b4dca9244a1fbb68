package live_test

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// setup starts a hub on db and stops it when the test ends.
func setup(t *testing.T, db *store.DB, opts live.Options) *live.Hub {
	t.Helper()
	h := live.NewHub(db, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return h
}

// publish commits one event and returns it.
func publish(t *testing.T, db *store.DB, topic string, owner int64) obsqra.Event {
	t.Helper()
	e := obsqra.Event{Topic: topic, OwnerID: owner, Payload: json.RawMessage(fmt.Sprintf(`{"n":%q}`, topic))}
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.AppendEvent(context.Background(), &e) }); err != nil {
		t.Fatal(err)
	}
	return e
}

// receive reads n events from s, failing after 10 s.
func receive(t *testing.T, s *live.Subscription, n int) []*obsqra.Event {
	t.Helper()
	var got []*obsqra.Event
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(got) < n {
		e, ok := s.Next(ctx)
		if !ok {
			if ctx.Err() != nil {
				t.Fatalf("received %d of %d events within 10 s", len(got), n)
			}
			t.Fatalf("subscription ended after %d of %d events: %v", len(got), n, s.Err())
		}
		got = append(got, e)
	}
	return got
}

// drain takes s's events until it ends, failing after 10 s.
func drain(t *testing.T, s *live.Subscription) []*obsqra.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []*obsqra.Event
	for {
		e, ok := s.Next(ctx)
		if !ok {
			if ctx.Err() != nil {
				t.Fatal("the subscription did not end within 10 s")
			}
			return got
		}
		got = append(got, e)
	}
}

func topics(events []*obsqra.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Topic)
	}
	return out
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func TestLiveDeliversOnlyWhatTheViewerMaySee(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db, live.Options{})
		ctx := context.Background()
		const ada, bob = 1, 2
		adaSub, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		anon, err := h.Subscribe(ctx, 0, topicIs("public1", "bob's", "ada's", "public2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		publish(t, db, "public1", 0)
		publish(t, db, "bob's", bob)
		publish(t, db, "ada's", ada)
		publish(t, db, "skip", 0)
		publish(t, db, "public2", 0)
		if got := topics(receive(t, adaSub, 4)); !equal(got, []string{"public1", "ada's", "skip", "public2"}) {
			t.Errorf("ada received %v", got)
		}
		if got := topics(receive(t, anon, 2)); !equal(got, []string{"public1", "public2"}) {
			t.Errorf("anonymous received %v", got)
		}
	})
}

func TestLiveRollbackEmitsNothing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db, live.Options{})
		s, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rollback := errors.New("rollback")
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			if err := tx.AppendEvent(ctx, &obsqra.Event{Topic: "rolled back"}); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		publish(t, db, "committed", 0)
		if got := topics(receive(t, s, 1)); !equal(got, []string{"committed"}) {
			t.Errorf("received %v, want only the committed event", got)
		}
	})
}

// TestLiveResumeHasNoGapNoDuplicate: while a writer commits events, readers
// subscribe from random cursors; each gets every event after its cursor
// exactly once, in order, replay and live alike.
func TestLiveResumeHasNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db, live.Options{Buffer: 1024, Batch: 7, ReplayPage: 5})
		ctx := context.Background()
		const total = 150
		var (
			mu   sync.Mutex
			ids  []int64
			more = make(chan struct{}, total)
		)
		for i := range 20 {
			e := publish(t, db, fmt.Sprintf("e%d", i), 0)
			ids = append(ids, e.ID)
		}
		writer := make(chan struct{})
		go func() {
			defer close(writer)
			for i := 20; i < total; i++ {
				e := publish(t, db, fmt.Sprintf("e%d", i), 0)
				mu.Lock()
				ids = append(ids, e.ID)
				mu.Unlock()
				more <- struct{}{}
			}
		}()
		r := rand.New(rand.NewPCG(1, 2))
		var wg sync.WaitGroup
		for k := range 8 {
			<-more // readers start at different points of the stream
			mu.Lock()
			cursor := ids[r.IntN(len(ids))]
			mu.Unlock()
			s, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, &cursor)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-writer
				want := 0
				for _, id := range ids {
					if id > cursor {
						want++
					}
				}
				got := receive(t, s, want)
				prev := cursor
				for _, e := range got {
					if e.ID <= prev {
						t.Errorf("reader %d from %d: id %d after %d", k, cursor, e.ID, prev)
						return
					}
					prev = e.ID
				}
				if got[len(got)-1].ID != ids[len(ids)-1] {
					t.Errorf("reader %d: last id %d, want %d", k, got[len(got)-1].ID, ids[len(ids)-1])
				}
				s.Close()
			}()
		}
		wg.Wait()
	})
}

func TestLiveSlowConsumerIsClosedAndOthersGoOn(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db, live.Options{Buffer: 2})
		ctx := context.Background()
		slow, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 6 {
			publish(t, db, fmt.Sprintf("e%d", i), 0)
			receive(t, fast, 1) // the fast one keeps up, one event at a time
		}
		got := len(drain(t, slow))
		if got != 2 || !errors.Is(slow.Err(), live.ErrSlowConsumer) {
			t.Errorf("slow subscriber got %d events and %v, want 2 and ErrSlowConsumer", got, slow.Err())
		}
	})
}

func TestLiveExpiredCursor(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db, live.Options{})
		ctx := context.Background()
		old := publish(t, db, "old", 0)
		publish(t, db, "new", 0)
		if _, err := db.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		cursor := old.ID - 1
		if _, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, &cursor); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Fatalf("Subscribe(expired cursor) = %v, want EINVALID", err)
		}
	})
}

func TestLiveEndsWithContextAndHub(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	h := live.NewHub(db, live.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	subCtx, subCancel := context.WithCancel(context.Background())
	s, err := h.Subscribe(subCtx, 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	subCancel()
	drain(t, s)
	if !errors.Is(s.Err(), context.Canceled) {
		t.Errorf("Err after its context ended = %v", s.Err())
	}

	other, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	drain(t, other)
	if !errors.Is(other.Err(), live.ErrStopped) {
		t.Errorf("Err after the hub stopped = %v, want ErrStopped", other.Err())
	}
	if _, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil); !errors.Is(err, live.ErrStopped) {
		t.Errorf("Subscribe on a stopped hub = %v, want ErrStopped", err)
	}
}

// TestLiveAcrossInstances: an event committed through one server process
// reaches a subscriber of another sharing the PostgreSQL database.
func TestLiveAcrossInstances(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	other := storetest.Reopen(t, db)
	h := setup(t, db, live.Options{Poll: time.Hour}) // only NOTIFY can wake it
	s, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, other, "from the other instance", 0)
	if got := topics(receive(t, s, 1)); !equal(got, []string{"from the other instance"}) {
		t.Errorf("received %v", got)
	}
}

// TestLiveListenReconnect: when the connection that LISTENs is lost (a
// failover, an administrator), the notifications of commits made while it
// is down are lost with it; the hub catches up when it is back, so the
// subscriber still receives every event once, in order.
func TestLiveListenReconnect(t *testing.T) {
	t.Parallel()
	base := storetest.Postgres(t)
	var b [6]byte
	_, _ = crand.Read(b[:])
	name := "obsqra_listen_" + hex.EncodeToString(b[:])
	db := storetest.ReopenAs(t, base, name) // this instance's connections carry name
	other := storetest.Reopen(t, base)
	h := setup(t, db, live.Options{Poll: time.Hour}) // only a notification or a reconnect can wake it
	s, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, other, "before", 0)
	receive(t, s, 1)

	// The listening connection is the one whose last statement was LISTEN.
	kill := fmt.Sprintf(`DO $$ BEGIN
		IF (SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		    WHERE application_name = '%s' AND query LIKE 'LISTEN%%') = 0 THEN
			RAISE EXCEPTION 'no listening connection';
		END IF;
	END $$`, name)
	if err := storetest.Exec(t, base, kill); err != nil {
		t.Fatal(err)
	}
	// Committed at once, before the listener reconnects (it waits at least
	// 100 ms): no one hears their notifications.
	var want []string
	for i := range 3 {
		want = append(want, fmt.Sprintf("during %d", i))
		publish(t, other, want[i], 0)
	}
	if got := topics(receive(t, s, 3)); !equal(got, want) {
		t.Fatalf("after the reconnect: %v, want %v", got, want)
	}
	if n := db.Stats().ListenReconnects; n != 1 {
		t.Errorf("Stats().ListenReconnects = %d, want 1", n)
	}
	publish(t, other, "after", 0)
	if got := topics(receive(t, s, 1)); !equal(got, []string{"after"}) {
		t.Errorf("after the reconnect: %v, want [after] (no event twice)", got)
	}
}

// TestLiveReplayWaitsForItsReceiver: a replay of more events than the
// subscriber's buffer holds goes at the receiver's pace; it does not end
// the subscription as too slow (only live events can outrun a receiver).
func TestLiveReplayWaitsForItsReceiver(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	h := setup(t, db, live.Options{Buffer: 4, Batch: 3, ReplayPage: 3})
	waits := make(chan struct{}, 1)
	live.SetReplayWaitsHook(h, func(*live.Subscription) {
		select {
		case waits <- struct{}{}:
		default:
		}
	})
	first := publish(t, db, "e0", 0)
	want := []string{"e0"}
	for i := 1; i < 30; i++ {
		want = append(want, fmt.Sprintf("e%d", i))
		publish(t, db, want[i], 0)
	}
	cursor := first.ID - 1
	s, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, &cursor)
	if err != nil {
		t.Fatal(err)
	}
	<-waits // the replay filled the queue while the receiver had not begun
	if got := topics(receive(t, s, 30)); !equal(got, want) {
		t.Fatalf("replayed %v, want %v", got, want)
	}
	publish(t, db, "live", 0)
	if got := topics(receive(t, s, 1)); !equal(got, []string{"live"}) {
		t.Errorf("after the replay: %v, want [live]", got)
	}
}

// TestLiveDecodesOncePerProcess: an event delivered live and replayed to
// two subscriptions from a cursor is decoded once: all three hold the very
// same decoded payload.
func TestLiveDecodesOncePerProcess(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	h := setup(t, db, live.Options{Batch: 4, ReplayPage: 3})
	filter := obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored}}}
	direct, err := h.Subscribe(context.Background(), 0, filter, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var first int64
	for i := range n {
		e := obsqra.Event{Topic: obsqra.TopicRiskScored, ProtocolID: 1, Payload: json.RawMessage(fmt.Sprintf(`{"protocolId":1,"score":%d}`, i))}
		if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.AppendEvent(context.Background(), &e) }); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = e.ID
		}
	}
	live := receive(t, direct, n)
	cursor := first - 1
	var replays [][]*obsqra.Event
	for range 2 {
		s, err := h.Subscribe(context.Background(), 0, filter, &cursor)
		if err != nil {
			t.Fatal(err)
		}
		replays = append(replays, receive(t, s, n))
	}
	for i, e := range live {
		v, err := obsqra.EventValue[obsqra.RiskScore](e)
		if err != nil {
			t.Fatal(err)
		}
		if v.Score != i {
			t.Fatalf("event %d: score %d, want %d", i, v.Score, i)
		}
		for r, replay := range replays {
			w, err := obsqra.EventValue[obsqra.RiskScore](replay[i])
			if err != nil {
				t.Fatal(err)
			}
			if w != v {
				t.Errorf("replay %d, event %d: decoded again (%p, the live delivery's %p)", r, i, w, v)
			}
		}
	}
}
