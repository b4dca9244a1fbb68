package live_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/store/storetest"
)

// observer records what a hub tells its Observer.
type observer struct {
	mu         sync.Mutex
	dispatched int
	lags       []time.Duration
	tooSlow    int
	// more is signalled (without blocking) after each EventsDispatched:
	// the hub reports a batch after it has delivered it, so a subscriber
	// can hold an event before its dispatch is counted.
	more chan struct{}
}

func (o *observer) EventsDispatched(n int) {
	o.mu.Lock()
	o.dispatched += n
	o.mu.Unlock()
	if o.more != nil {
		select {
		case o.more <- struct{}{}:
		default:
		}
	}
}

// waitDispatched waits until the hub has reported n events dispatched.
func (o *observer) waitDispatched(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if d, _, _ := o.counts(); d >= n {
			return
		}
		select {
		case <-o.more:
		case <-deadline:
			d, _, _ := o.counts()
			t.Fatalf("the hub reported %d events dispatched, want %d", d, n)
		}
	}
}

func (o *observer) EventDelivered(lag time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lags = append(o.lags, lag)
}

func (o *observer) SubscriptionTooSlow() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tooSlow++
}

func (o *observer) counts() (dispatched, delivered, tooSlow int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dispatched, len(o.lags), o.tooSlow
}

// TestLiveObserver: the observer hears of every event dispatched, of the
// live events taken (with their lag since commit) but not of replayed
// ones, and of subscriptions ended as too slow.
func TestLiveObserver(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	obs := &observer{more: make(chan struct{}, 1)}
	h := setup(t, db, live.Options{Buffer: 2, Observer: obs})
	ctx := context.Background()
	start := time.Now()
	// Once probe has both events, the hub has dispatched them: the
	// replaying subscription below replays the second.
	probe, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := publish(t, db, "before", 0)
	publish(t, db, "before too", 0)
	receive(t, probe, 2)
	probe.Close()

	fast, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Replays the second event, then goes on live.
	replaying, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, &first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := topics(receive(t, replaying, 1)); !equal(got, []string{"before too"}) {
		t.Fatalf("replay = %v", got)
	}
	for i := range 3 {
		publish(t, db, fmt.Sprintf("live %d", i), 0)
		receive(t, fast, 1)
		receive(t, replaying, 1)
	}
	if got := len(drain(t, slow)); got != 2 || !errors.Is(slow.Err(), live.ErrSlowConsumer) {
		t.Fatalf("slow subscriber got %d events and %v, want 2 and ErrSlowConsumer", got, slow.Err())
	}
	took := time.Since(start)

	obs.waitDispatched(t, 5)
	dispatched, delivered, tooSlow := obs.counts()
	if dispatched != 5 {
		t.Errorf("dispatched %d events, want 5", dispatched)
	}
	// probe took 2 live events, fast and replaying 3 each, slow 2; the
	// replayed event is not one.
	if delivered != 10 {
		t.Errorf("delivered %d live events, want 10", delivered)
	}
	if tooSlow != 1 {
		t.Errorf("%d subscriptions too slow, want 1", tooSlow)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, lag := range obs.lags {
		if lag < 0 || lag > took {
			t.Errorf("lag %v, want between 0 and %v", lag, took)
		}
	}
}
