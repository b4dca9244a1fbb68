package live

import (
	"context"

	"github.com/obsqra/obsqra"
)

// Tracer traces the hub's dispatch of the events appended inside a trace:
// those whose TraceParent names the span of the commit that appended them,
// on this instance or another. The hub imports the standard library only,
// so it declares what it needs of a tracer here; cmd/obsqra passes one
// that starts an OpenTelemetry span linked to the commit's
// (tracing.Dispatches).
type Tracer interface {
	// Dispatch is called as the hub starts to dispatch e to its
	// subscriptions, on the hub's goroutine and under its lock, with the
	// context of Run; it returns the function the hub calls once e is
	// queued for every subscription that may see it, with how many
	// subscriptions the hub held. Both must be quick and must not call
	// the hub.
	Dispatch(ctx context.Context, e *obsqra.Event) (dispatched func(subscriptions int))
}

// untraced is the dispatched function of an event that is not traced.
func untraced(int) {}

// traceDispatch starts the trace of e's dispatch when the hub has a Tracer
// and e was appended inside a trace, and returns the function that ends
// it; otherwise a function that does nothing.
func (h *Hub) traceDispatch(ctx context.Context, e *obsqra.Event) func(subscriptions int) {
	if h.opts.Tracer == nil || e.TraceParent == "" {
		return untraced
	}
	if dispatched := h.opts.Tracer.Dispatch(ctx, e); dispatched != nil {
		return dispatched
	}
	return untraced
}
