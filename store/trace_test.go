package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// traced opens a second pool on db's database that traces its statements
// into the returned recorder.
func traced(t *testing.T, db *store.DB) (*store.DB, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	other, err := store.OpenWith(context.Background(), storetest.URL(t, db), store.Options{TracerProvider: tp})
	if err != nil {
		t.Fatalf("OpenWith(TracerProvider) = %v", err)
	}
	t.Cleanup(func() { other.Close() })
	return other, spans, tp.Tracer("test")
}

// attrs returns the attributes of a span as strings.
func attrs(s tracetest.SpanStub) map[string]string {
	m := make(map[string]string, len(s.Attributes))
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// TestStatementSpans: inside a recorded span every statement is a child
// span named by its first keyword, with the database system and its text
// with placeholders, never the values; an appended event carries the
// traceparent of the span it was appended in, read back by EventsAfter;
// outside a span nothing is traced.
func TestStatementSpans(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		tdb, spans, tracer := traced(t, db)
		wantSystem := map[string]string{store.DialectSQLite: "sqlite", store.DialectPostgres: "postgresql"}[db.Dialect()]

		bg := context.Background()
		if _, err := tdb.LastEventID(bg); err != nil {
			t.Fatal(err)
		}
		if n := len(spans.GetSpans()); n != 0 {
			t.Fatalf("a statement outside any span made %d spans, want none", n)
		}

		const secret = "hunter2-in-a-payload"
		ctx, request := tracer.Start(bg, "request")
		u := newUser("traced@example.com")
		err := tdb.WithTx(ctx, func(tx *store.Tx) error {
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, &obsqra.Event{Topic: "user.updated", OwnerID: u.ID,
				Payload: json.RawMessage(`{"note": "` + secret + `"}`)})
		})
		if err != nil {
			t.Fatalf("CreateUser and AppendEvent = %v", err)
		}
		request.End()

		got := spans.GetSpans()
		var insertedEvent bool
		for _, s := range got[:len(got)-1] {
			a := attrs(s)
			if s.Parent.SpanID() != request.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
				t.Errorf("span %q: parent %v kind %v, want the request's span %v, client", s.Name, s.Parent.SpanID(), s.SpanKind, request.SpanContext().SpanID())
			}
			if a["db.system.name"] != wantSystem || a["db.system"] != wantSystem {
				t.Errorf("span %q: db.system.name %q db.system %q, want %q", s.Name, a["db.system.name"], a["db.system"], wantSystem)
			}
			if s.Name != a["db.operation.name"] || !strings.HasPrefix(strings.ToUpper(a["db.query.text"]), s.Name) {
				t.Errorf("span %q: operation %q, statement %q, want the statement's first keyword", s.Name, a["db.operation.name"], a["db.query.text"])
			}
			for _, v := range a {
				if strings.Contains(v, secret) || strings.Contains(v, u.Email) || strings.Contains(v, u.PasswordHash) {
					t.Errorf("span %q carries a value: %v", s.Name, a)
				}
			}
			if strings.HasPrefix(a["db.query.text"], "INSERT INTO events") {
				insertedEvent = true
			}
		}
		if !insertedEvent {
			t.Errorf("spans %v: none inserts the event", names(got))
		}

		events, err := db.EventsAfter(bg, 0, 10)
		if err != nil || len(events) != 1 {
			t.Fatalf("EventsAfter(0) = %v, %v; want the event", events, err)
		}
		sc := request.SpanContext()
		want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
		if events[0].TraceParent != want {
			t.Errorf("event's TraceParent = %q, want the request's %q", events[0].TraceParent, want)
		}
	})
}

// TestStatementSpanError: a failed statement's span is an error with its
// SQLSTATE or SQLite code, and without the error's text, which quotes the
// duplicate value.
func TestStatementSpanError(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		tdb, spans, tracer := traced(t, db)
		createUser(t, db, "twice@example.com")

		ctx, request := tracer.Start(context.Background(), "request")
		err := tdb.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, newUser("twice@example.com")) })
		request.End()
		wantCode(t, "CreateUser(a taken email)", err, obsqra.ECONFLICT)

		var failed []tracetest.SpanStub
		for _, s := range spans.GetSpans() {
			if s.Status.Code == codes.Error {
				failed = append(failed, s)
			}
		}
		if len(failed) != 1 {
			t.Fatalf("spans %v: %d failed, want the insert", names(spans.GetSpans()), len(failed))
		}
		a := attrs(failed[0])
		wantType := map[string]string{store.DialectSQLite: "sqlite_2067", store.DialectPostgres: "23505"}[db.Dialect()]
		if a["error.type"] != wantType || failed[0].Status.Description != "" {
			t.Errorf("failed span: error.type %q, description %q; want %q and none", a["error.type"], failed[0].Status.Description, wantType)
		}
		for _, s := range spans.GetSpans() {
			for _, ev := range s.Events {
				t.Errorf("span %q has an event %q (%v); an error's text may quote a value", s.Name, ev.Name, ev.Attributes)
			}
		}
	})
}

// names returns the names of spans.
func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
