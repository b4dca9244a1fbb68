package live_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
)

// payload returns a JSON object of exactly n bytes (n >= 8).
func payload(n int) []byte {
	return []byte(`{"p":"` + strings.Repeat("x", n-8) + `"}`)
}

// clientCtx is the context of a request from c.
func clientCtx(c *obsqra.Client) context.Context {
	return obsqra.NewContextWithClient(context.Background(), c)
}

func topicIs(topics ...string) obsqra.EventFilter {
	var f obsqra.EventFilter
	for _, t := range topics {
		f.Rules = append(f.Rules, obsqra.EventRule{Topic: t})
	}
	return f
}

// TestLiveBudgets: at each level (subscription, connection, address,
// total), live events that fill the budget exactly are all queued, and the
// event one byte past it ends the subscription it was for, with
// ErrSlowConsumer, and that one only; what was queued before still
// arrives. Bytes are released as the receivers take the events, and the
// per-connection and per-address entries go with them.
func TestLiveBudgets(t *testing.T) {
	t.Parallel()
	const size = 100
	cost := int64(size + live.EventOverhead)
	if got := live.Cost(&obsqra.Event{Payload: payload(size)}); got != cost {
		t.Fatalf("Cost = %d, want %d", got, cost)
	}
	const large = 1 << 30
	ada := &obsqra.Client{Address: "192.0.2.1"}
	adaTab := &obsqra.Client{Address: "192.0.2.1"} // another connection from the same address
	bob := &obsqra.Client{Address: "192.0.2.2"}
	for _, level := range []struct {
		name string
		set  func(l *live.Limits, n int64)
		// x's client and filter; y's client, nil for no y
		x, y *obsqra.Client
	}{
		{"subscription", func(l *live.Limits, n int64) { l.Subscription = n }, ada, nil},
		{"connection", func(l *live.Limits, n int64) { l.Connection = n }, ada, ada},
		{"address", func(l *live.Limits, n int64) { l.Address = n }, ada, adaTab},
		{"total", func(l *live.Limits, n int64) { l.Total = n }, ada, bob},
	} {
		for _, past := range []bool{false, true} {
			name := level.name + "/at the limit"
			if past {
				name = level.name + "/one byte past it"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				limits := live.Limits{Subscription: large, Connection: large, Address: large, Total: large}
				budget := 3 * cost
				if past {
					budget--
				}
				level.set(&limits, budget)
				h, src := setupMem(t, live.Options{Batch: 1, Limits: limits}, nil, nil)
				xFilter, wantX := topicIs("a"), []string{"a", "a"}
				if level.y == nil {
					xFilter, wantX = topicIs("a", "b"), []string{"a", "b", "a"}
				}
				x, err := h.Subscribe(clientCtx(level.x), 0, xFilter, nil)
				if err != nil {
					t.Fatal(err)
				}
				var y *live.Subscription
				if level.y != nil {
					if y, err = h.Subscribe(clientCtx(level.y), 0, topicIs("b"), nil); err != nil {
						t.Fatal(err)
					}
				}
				// Three events of cost bytes each, all charged to the level.
				for _, topic := range []string{"a", "b", "a"} {
					src.append(obsqra.Event{Topic: topic, Payload: payload(size)})
				}
				src.waitRead(t, 1, 3)
				st := h.Stats()
				if !past {
					if x.Err() != nil || (y != nil && y.Err() != nil) || st.Queued != 3*cost {
						t.Fatalf("budget %d: Err = %v, queued %d; want both open and %d bytes queued", budget, x.Err(), st.Queued, 3*cost)
					}
					if got := topics(receive(t, x, len(wantX))); !equal(got, wantX) {
						t.Errorf("x received %v, want %v", got, wantX)
					}
				} else {
					if !errors.Is(x.Err(), live.ErrSlowConsumer) || (y != nil && y.Err() != nil) || st.Queued != 2*cost {
						t.Fatalf("budget %d: x.Err = %v, queued %d; want ErrSlowConsumer for x only and %d bytes queued", budget, x.Err(), st.Queued, 2*cost)
					}
					if got := topics(drain(t, x)); !equal(got, wantX[:len(wantX)-1]) {
						t.Errorf("x received %v before it ended, want %v", got, wantX[:len(wantX)-1])
					}
				}
				if y != nil {
					if got := topics(receive(t, y, 1)); !equal(got, []string{"b"}) {
						t.Errorf("y received %v", got)
					}
				}
				if st := h.Stats(); st.Queued != 0 || st.Connections != 0 || st.Addresses != 0 {
					t.Errorf("after every event was taken: %+v, want nothing queued or kept", st)
				}
			})
		}
	}
}

// TestLiveReplayHoldsAWindow: a replay of 5,000 events to a receiver that
// does not read holds at most half its subscription's budget (replays
// leave the other half to live events), reads the outbox a small page at a
// time only as the queue drains, and holds nothing for the live events
// dispatched meanwhile: they are read from the outbox in their turn. The
// receiver then gets every event once, in order, and live ones after.
func TestLiveReplayHoldsAWindow(t *testing.T) {
	t.Parallel()
	const (
		budget = 64 << 10
		page   = 16
		size   = 300
		total  = 5000
	)
	cost := int64(size + live.EventOverhead)
	waits := make(chan struct{}, 1)
	h, src := setupMem(t, live.Options{ReplayPage: page, Limits: live.Limits{Subscription: budget}}, appendN(total, size),
		func(*live.Subscription) {
			select {
			case waits <- struct{}{}:
			default:
			}
		})
	cursor := int64(0)
	s, err := h.Subscribe(clientCtx(&obsqra.Client{Address: "192.0.2.1"}), 0, obsqra.EventFilter{}, &cursor)
	if err != nil {
		t.Fatal(err)
	}
	<-waits
	window := int64(budget / 2)
	maxPages := int(window/cost)/page + 2 // the pages queued, and the one being queued
	st := h.Stats()
	// Full to within one page's reservation, which a replay makes before
	// it reads the page.
	if low := window - page*live.ReplayEventEstimate; st.Queued > window || st.Queued < low {
		t.Errorf("a replay waiting for its receiver holds %d bytes, want at most %d and at least %d", st.Queued, window, low)
	}
	if n := len(src.readsWith(page)); n > maxPages {
		t.Errorf("the replay read %d pages before its receiver took anything, want at most %d", n, maxPages)
	}
	// Live events while the replay waits: none is held for it.
	for range 1000 {
		src.append(obsqra.Event{Topic: "e", Payload: payload(size)})
	}
	src.waitRead(t, 500, total+1000)
	if st := h.Stats(); st.Queued > window || s.Err() != nil {
		t.Errorf("after 1,000 live events: %d bytes queued, Err %v; want at most %d and the subscription open", st.Queued, s.Err(), window)
	}
	for i := int64(1); i <= total+1000; i++ {
		e, ok := s.Take()
		for e == nil && ok {
			<-s.Ready()
			e, ok = s.Take()
		}
		if !ok || e.ID != i {
			t.Fatalf("event %d: got %v (open %v, Err %v)", i, e, ok, s.Err())
		}
		if q := h.Stats().Queued; q > window {
			t.Fatalf("after event %d: %d bytes queued, want at most %d", i, q, window)
		}
	}
	for _, r := range src.readsWith(page) {
		if r.returned > page {
			t.Fatalf("a replay read returned %d events, more than its page of %d", r.returned, page)
		}
	}
	if n, want := len(src.readsWith(page)), (total+1000)/page+2; n > want {
		t.Errorf("the replay read %d pages of %d, want at most %d", n, page, want)
	}
	last := src.append(obsqra.Event{Topic: "e", Payload: payload(size)})
	if got := receive(t, s, 1); got[0].ID != last.ID {
		t.Errorf("after the replay: event %d, want %d", got[0].ID, last.ID)
	}
}

// TestLiveReplaysShareTheirConnection: a hundred replays on one connection
// whose client reads nothing hold at most half the connection's budget
// together, not a hundred subscriptions' budgets.
func TestLiveReplaysShareTheirConnection(t *testing.T) {
	t.Parallel()
	const (
		subs   = 100
		budget = 256 << 10
		size   = 300
	)
	var mu sync.Mutex
	waiting := map[*live.Subscription]bool{}
	all := make(chan struct{})
	h, _ := setupMem(t, live.Options{Limits: live.Limits{Connection: budget}}, appendN(2000, size), func(s *live.Subscription) {
		mu.Lock()
		defer mu.Unlock()
		if !waiting[s] {
			if waiting[s] = true; len(waiting) == subs {
				close(all)
			}
		}
	})
	ctx := clientCtx(&obsqra.Client{Address: "192.0.2.1"})
	for range subs {
		cursor := int64(0)
		if _, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, &cursor); err != nil {
			t.Fatal(err)
		}
	}
	<-all
	if st := h.Stats(); st.Queued > budget/2 || st.Connections != 1 {
		t.Errorf("%d replays on one connection hold %d bytes in %d connections, want at most %d in 1", subs, st.Queued, st.Connections, budget/2)
	}
}

// TestLiveReplayJoinsWhileTheHubDispatches: readers replaying in small
// pages, with budgets small enough to make them wait, join the hub while a
// writer keeps appending; each gets every event after its cursor once, in
// order.
func TestLiveReplayJoinsWhileTheHubDispatches(t *testing.T) {
	t.Parallel()
	const total = 3000
	h, src := setupMem(t, live.Options{Batch: 7, ReplayPage: 3, Limits: live.Limits{Subscription: 8 << 10}}, appendN(200, 20), nil)
	writer := make(chan struct{})
	more := make(chan int64, total)
	go func() {
		defer close(writer)
		for range total - 200 {
			more <- src.append(obsqra.Event{Topic: "e", Payload: payload(20)}).ID
		}
	}()
	r := rand.New(rand.NewPCG(3, 4))
	var wg sync.WaitGroup
	for k := range 8 {
		upTo := <-more
		for range r.IntN(200) {
			upTo = <-more
		}
		cursor := r.Int64N(upTo)
		ctx := clientCtx(&obsqra.Client{Address: fmt.Sprint("192.0.2.", k)})
		s, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, &cursor)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A reader that falls a budget behind the writer is ended, and
			// resumes from its last event, as a client does.
			last := cursor
			for last < total {
				e, ok := s.Next(context.Background())
				if !ok {
					if !errors.Is(s.Err(), live.ErrSlowConsumer) {
						t.Errorf("reader %d: ended with %v", k, s.Err())
						return
					}
					s.Close()
					if s, err = h.Subscribe(ctx, 0, obsqra.EventFilter{}, &last); err != nil {
						t.Errorf("reader %d: resume from %d: %v", k, last, err)
						return
					}
					continue
				}
				if e.ID != last+1 {
					t.Errorf("reader %d from %d: event %d after %d", k, cursor, e.ID, last)
					return
				}
				last = e.ID
			}
			s.Close()
		}()
	}
	wg.Wait()
	<-writer
}

// TestLiveSubscriptionsPerUser: a signed-in user may hold
// Limits.SubscriptionsPerUser subscriptions; one more is refused with
// ERATELIMIT until one ends. Other users and anonymous viewers are not
// counted against it.
func TestLiveSubscriptionsPerUser(t *testing.T) {
	t.Parallel()
	h, _ := setupMem(t, live.Options{Limits: live.Limits{SubscriptionsPerUser: 3}}, nil, nil)
	const ada, bob = 1, 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ended, cancelEnded := context.WithCancel(context.Background())
	second, err := h.Subscribe(ended, ada, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("subscription 3 of 3: %v", err)
	}
	if _, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil); obsqra.ErrorCode(err) != obsqra.ERATELIMIT {
		t.Fatalf("subscription 4 of 3 = %v, want ERATELIMIT", err)
	}
	if _, err := h.Subscribe(ctx, bob, obsqra.EventFilter{}, nil); err != nil {
		t.Errorf("another user's subscription: %v", err)
	}
	for range 5 {
		if _, err := h.Subscribe(ctx, 0, obsqra.EventFilter{}, nil); err != nil {
			t.Errorf("an anonymous subscription: %v", err)
		}
	}
	first.Close()
	if _, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	cancelEnded()
	drain(t, second)
	if _, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("after one's context ended: %v", err)
	}
	if _, err := h.Subscribe(ctx, ada, obsqra.EventFilter{}, nil); obsqra.ErrorCode(err) != obsqra.ERATELIMIT {
		t.Fatalf("subscription 4 of 3 = %v, want ERATELIMIT", err)
	}
	if st := h.Stats(); st.Users != 2 {
		t.Errorf("Stats().Users = %d, want 2", st.Users)
	}
}

// TestLiveSubscriptionsPerAddressAndTotal: an address may hold
// SubscriptionsPerAddress subscriptions and the hub Subscriptions, the
// next is refused with ERATELIMIT before the cursor is read, and one that
// ends gives its place back.
func TestLiveSubscriptionsPerAddressAndTotal(t *testing.T) {
	t.Parallel()
	h, _ := setupMem(t, live.Options{Limits: live.Limits{SubscriptionsPerAddress: 2, Subscriptions: 4}}, nil, nil)
	from := func(addr string) context.Context { return clientCtx(&obsqra.Client{Address: addr}) }
	first, err := h.Subscribe(from("192.0.2.1"), 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Subscribe(from("192.0.2.1"), 7, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("subscription 2 of 2 from an address: %v", err)
	}
	// Refused before the cursor is checked: a cursor far ahead would not
	// be an error, a pruned one would be EINVALID.
	bad := int64(-5)
	if _, err := h.Subscribe(from("192.0.2.1"), 0, obsqra.EventFilter{}, &bad); obsqra.ErrorCode(err) != obsqra.ERATELIMIT ||
		!strings.Contains(obsqra.ErrorMessage(err), "at most 2 subscriptions from one address") {
		t.Fatalf("subscription 3 of 2 from an address = %v, want ERATELIMIT", err)
	}
	first.Close()
	if _, err := h.Subscribe(from("192.0.2.1"), 0, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("after closing one: %v", err)
	}
	if _, err := h.Subscribe(from("192.0.2.2"), 0, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if _, err := h.Subscribe(from("192.0.2.3"), 0, obsqra.EventFilter{}, nil); err != nil {
		t.Fatalf("subscription 4 of 4 in all: %v", err)
	}
	if _, err := h.Subscribe(from("192.0.2.4"), 0, obsqra.EventFilter{}, nil); obsqra.ErrorCode(err) != obsqra.ERATELIMIT {
		t.Fatalf("subscription 5 of 4 in all = %v, want ERATELIMIT", err)
	}
	if st := h.Stats(); st.Subscriptions != 4 {
		t.Errorf("Stats().Subscriptions = %d, want 4", st.Subscriptions)
	}
}
