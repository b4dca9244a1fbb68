package tracing

import (
	"context"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
)

// tracerName is the instrumentation scope of the spans made here.
const tracerName = "github.com/obsqra/obsqra/telemetry/tracing"

// Attributes of a dispatch's span beyond the semantic conventions.
const (
	// messagingSystem names the outbox as the messaging system.
	messagingSystem = "obsqra.outbox"
	// subscriptionsKey is how many subscriptions the hub held.
	subscriptionsKey = attribute.Key("obsqra.live.subscriptions")
)

// Dispatches traces the live hub's dispatch of the events appended inside
// a trace (a live.Tracer): each gets a span of its own, the root of a new
// trace, linked to the span of the commit that appended it, whose W3C
// traceparent the outbox kept with the event (obsqra.Event.TraceParent).
// The commit and the delivery may be on two instances and seconds apart:
// a link, unlike a parent, says so without stretching the commit's trace.
type Dispatches struct {
	tracer trace.Tracer
}

// NewDispatches returns the tracer of the hub's dispatches, recording
// into tp.
func NewDispatches(tp trace.TracerProvider) *Dispatches {
	return &Dispatches{tracer: tp.Tracer(tracerName)}
}

// Dispatch starts the span of e's dispatch, named "deliver" and its topic,
// and returns the function that ends it with how many subscriptions the
// hub held.
func (d *Dispatches) Dispatch(ctx context.Context, e *obsqra.Event) func(subscriptions int) {
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(messagingSystem),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(e.Topic),
			semconv.MessagingMessageID(strconv.FormatInt(e.ID, 10)),
		),
	}
	if commit := spanContextOf(e.TraceParent); commit.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: commit}))
	}
	_, span := d.tracer.Start(ctx, "deliver "+e.Topic, opts...)
	return func(subscriptions int) {
		span.SetAttributes(subscriptionsKey.Int(subscriptions))
		span.End()
	}
}

// spanContextOf parses a W3C traceparent; an invalid one gives an invalid
// span context.
func spanContextOf(traceparent string) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}
