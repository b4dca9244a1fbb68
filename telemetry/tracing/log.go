package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// TraceIDKey is the log attribute that holds a record's trace id.
const TraceIDKey = "trace_id"

// requestIDKey is the log attribute of the request id, which the server
// writes in every line of a request; the trace id goes right after it.
const requestIDKey = "request_id"

// LogHandler returns a handler that passes every record to next, adding
// trace_id, the trace id of the span in the record's context, to each
// record logged with a context inside a span (slog's …Context methods, as
// the server logs every line of a request): right after request_id when
// the record has one, else last. A record outside a span passes as it is.
func LogHandler(next slog.Handler) slog.Handler { return traceHandler{next: next} }

// traceHandler is LogHandler's handler.
type traceHandler struct {
	next slog.Handler
}

// Enabled is next's.
func (h traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r to next with the trace id of ctx's span.
func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.next.Handle(ctx, r)
	}
	id := slog.String(TraceIDKey, sc.TraceID().String())
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	placed := false
	r.Attrs(func(a slog.Attr) bool {
		placed = placed || a.Key == TraceIDKey
		out.AddAttrs(a)
		if !placed && a.Key == requestIDKey {
			out.AddAttrs(id)
			placed = true
		}
		return true
	})
	if !placed {
		out.AddAttrs(id)
	}
	return h.next.Handle(ctx, out)
}

// WithAttrs is next's, traced.
func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup is next's, traced.
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{next: h.next.WithGroup(name)}
}
