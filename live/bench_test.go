package live_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
)

// memSource is an in-memory outbox, to measure the hub alone.
type memSource struct {
	mu        sync.Mutex
	events    []obsqra.Event
	committed chan struct{}
}

func newMemSource() *memSource { return &memSource{committed: make(chan struct{})} }

func (m *memSource) append(e obsqra.Event) {
	m.mu.Lock()
	e.ID = int64(len(m.events) + 1)
	m.events = append(m.events, e)
	close(m.committed)
	m.committed = make(chan struct{})
	m.mu.Unlock()
}

func (m *memSource) EventsAfter(_ context.Context, after int64, limit int) ([]obsqra.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if int(after) >= len(m.events) {
		return nil, nil
	}
	end := min(len(m.events), int(after)+limit)
	return append([]obsqra.Event(nil), m.events[after:end]...), nil
}

func (m *memSource) LastEventID(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.events)), nil
}

func (m *memSource) CheckEventCursor(context.Context, int64) error { return nil }

func (m *memSource) EventsCommitted() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.committed
}

func (m *memSource) ListenEvents(ctx context.Context) (<-chan struct{}, error) {
	c := make(chan struct{})
	context.AfterFunc(ctx, func() { close(c) })
	return c, nil
}

// BenchmarkHubFanOut15000: one event to 15,000 subscribers of market data
// (the load of issue 7), each draining its stream. Reports the time to
// deliver an event to all and the heap held per subscription.
func BenchmarkHubFanOut15000(b *testing.B) {
	const subscribers = 15000
	src := newMemSource()
	h := live.NewHub(src, live.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Run(ctx)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	subs := make([]*live.Subscription, subscribers)
	for i := range subs {
		s, err := h.Subscribe(ctx, 0, func(e *obsqra.Event) bool { return e.Topic == "risk.scored" }, nil)
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSub := float64(after.HeapAlloc-before.HeapAlloc) / subscribers

	var wg sync.WaitGroup
	for _, s := range subs {
		go func() {
			for {
				if _, ok := s.Next(ctx); !ok {
					return
				}
				wg.Done()
			}
		}()
	}
	for b.Loop() {
		wg.Add(subscribers)
		src.append(obsqra.Event{Topic: "risk.scored", Payload: []byte(`{"score":42}`)})
		wg.Wait()
	}
	b.ReportMetric(perSub, "heapB/sub")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subscribers, "ns/delivery")
}
