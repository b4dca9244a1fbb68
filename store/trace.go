package store

// Traces of SQL statements, and the trace an outbox event was appended in.
//
// The store records into the OpenTelemetry API (go.opentelemetry.io/otel/trace)
// and nothing else: the SDK, the exporter and the sampler are cmd/obsqra's
// choice (Options.TracerProvider). A statement gets a span only inside a
// recorded span, a request's or an operation's: the hub's reads of the
// outbox and the scheduler's jobs, outside any trace, would otherwise start
// a trace of one statement each, many times a second. Without a
// TracerProvider the cost of a statement is one nil check.
//
// A span carries the statement as the store wrote it, with its
// placeholders, and never its arguments, where the values are; nor the
// text of an error, which may quote a value (a unique violation quotes the
// duplicate key): only its SQLSTATE or SQLite code.

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"modernc.org/sqlite"
)

// tracerName is the instrumentation scope of the store's spans.
const tracerName = "github.com/obsqra/obsqra/store"

// maxTracedStatement bounds the statement text a span carries, in bytes: a
// bulk insert repeats its placeholders for every row.
const maxTracedStatement = 4096

// dbSystemKey is the attribute that names the database system in the
// semantic conventions before db.system.name, which many backends still
// read; spans carry both.
const dbSystemKey = attribute.Key("db.system")

// tracerOf returns tp's tracer for the store, or nil when tp is nil.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	return tp.Tracer(tracerName)
}

// statementSpan is the span of one statement; its zero value stands for an
// untraced statement.
type statementSpan struct{ span trace.Span }

// startStatement starts the span of query, which c is about to run, when c
// is traced and ctx is inside a recorded span; otherwise it returns ctx
// and the zero statementSpan.
func (c conn) startStatement(ctx context.Context, query string) (context.Context, statementSpan) {
	if c.tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, statementSpan{}
	}
	system := "sqlite"
	if c.d == postgresDialect {
		system = "postgresql"
	}
	query = strings.TrimSpace(query)
	op := operationOf(query)
	if len(query) > maxTracedStatement {
		query = query[:maxTracedStatement] + "…"
	}
	ctx, span := c.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.DBSystemNameKey.String(system),
		dbSystemKey.String(system),
		semconv.DBOperationName(op),
		semconv.DBQueryText(query),
	))
	return ctx, statementSpan{span}
}

// end ends the span of a statement that returned err. A row that is not
// there (sql.ErrNoRows) is an answer, not an error.
func (s statementSpan) end(err error) {
	if s.span == nil {
		return
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		s.span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		s.span.SetStatus(codes.Error, "")
	}
	s.span.End()
}

// errorType names err without quoting it: PostgreSQL's SQLSTATE, SQLite's
// extended result code, the context's end, or "_OTHER".
func errorType(err error) string {
	if pqErr, ok := errors.AsType[*pq.Error](err); ok {
		return string(pqErr.Code)
	}
	if liteErr, ok := errors.AsType[*sqlite.Error](err); ok {
		return "sqlite_" + strconv.Itoa(liteErr.Code())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline_exceeded"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "_OTHER"
}

// operationOf returns the first keyword of query, which starts with it,
// in upper case (SELECT, INSERT, WITH…): the name of its span.
func operationOf(query string) string {
	end := strings.IndexFunc(query, func(r rune) bool { return r == ' ' || r == '\n' || r == '\t' || r == '(' })
	if end < 0 {
		end = len(query)
	}
	return strings.ToUpper(query[:end])
}

// traceParent returns the W3C traceparent of the span in ctx, or "" when
// ctx is in none (see obsqra.Event.TraceParent). An unsampled span's
// context is kept too: its trace id is still in the request's log lines.
func traceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
