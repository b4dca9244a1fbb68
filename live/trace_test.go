package live_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// dispatchRecorder is a live.Tracer that records what it is told.
type dispatchRecorder struct {
	mu         sync.Mutex
	dispatches []dispatch
	// ended receives the id of each dispatch as it ends: the hub delivers
	// an event to its subscriptions before it ends the dispatch, so a
	// subscriber can see the event first.
	ended chan int64
}

// dispatch is one traced dispatch: the event's id and traceparent, and the
// subscriptions the hub held when it ended (-1 until then).
type dispatch struct {
	id            int64
	traceParent   string
	subscriptions int
}

func (r *dispatchRecorder) Dispatch(_ context.Context, e *obsqra.Event) func(int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dispatches = append(r.dispatches, dispatch{id: e.ID, traceParent: e.TraceParent, subscriptions: -1})
	i := len(r.dispatches) - 1
	return func(n int) {
		r.mu.Lock()
		r.dispatches[i].subscriptions = n
		r.mu.Unlock()
		if r.ended != nil {
			r.ended <- e.ID
		}
	}
}

func (r *dispatchRecorder) all() []dispatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dispatch(nil), r.dispatches...)
}

// TestTracerSeesTracedEvents: the hub's Tracer hears of the dispatch of
// each event appended inside a trace, with its traceparent, and of its end
// with the subscriptions the hub held; events appended outside a trace are
// not traced.
func TestTracerSeesTracedEvents(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	tracer := &dispatchRecorder{ended: make(chan int64, 16)}
	h := setup(t, db, live.Options{Tracer: tracer})
	sub, err := h.Subscribe(context.Background(), 0, obsqra.EventFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}

	untraced := publish(t, db, "untraced", 0)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	traced := obsqra.Event{Topic: "traced", Payload: json.RawMessage(`{}`)}
	if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendEvent(ctx, &traced) }); err != nil {
		t.Fatal(err)
	}
	if got := topics(receive(t, sub, 2)); !equal(got, []string{"untraced", "traced"}) {
		t.Fatalf("received %v, want both events", got)
	}

	select {
	case id := <-tracer.ended:
		if id != traced.ID {
			t.Fatalf("dispatch of event %d ended, want only the traced %d", id, traced.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the traced dispatch never ended")
	}
	want := dispatch{id: traced.ID, traceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", subscriptions: 1}
	if got := tracer.all(); len(got) != 1 || got[0] != want {
		t.Errorf("traced dispatches = %+v, want only %+v (not event %d, appended outside a trace)", got, want, untraced.ID)
	}
}
