package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store/storetest"
)

// An incoming W3C traceparent: its trace and its caller's span.
const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
	traceparent    = "00-" + incomingTrace + "-" + incomingParent + "-01"
)

// withTracing traces the server into an in-memory exporter.
func withTracing(spans *tracetest.InMemoryExporter) func(*server.Config) {
	return func(cfg *server.Config) {
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	}
}

// spanAttrs returns a span's attributes as strings.
func spanAttrs(s tracetest.SpanStub) map[string]string {
	m := make(map[string]string, len(s.Attributes))
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// spanNamed returns the one span named name.
func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name)
		}
		t.Fatalf("spans %v: %d named %q, want one", names, len(found), name)
	}
	return found[0]
}

// TestRequestAndOperationSpans: a request continues the trace its
// traceparent names, in a server span with its method, route, path and
// status and its request id; its operation is a child span with its type,
// name and complexity. Neither holds the request's token, document or
// variables.
func TestRequestAndOperationSpans(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans))
	const password = "correct-horse-battery"

	rec, res := b.graphQL(t, `mutation LogIn($input: LoginInput!) { login(input: $input) { accessToken } }`,
		map[string]any{"input": map[string]any{"email": "ada@example.com", "password": password}},
		"traceparent", traceparent, "Authorization", "Bearer "+goodToken)
	if rec.Code != http.StatusOK || len(res.Errors) != 0 {
		t.Fatalf("login = %d %+v", rec.Code, res.Errors)
	}

	got := spans.GetSpans()
	request := spanNamed(t, got, "POST /graphql")
	if request.SpanContext.TraceID().String() != incomingTrace || request.Parent.SpanID().String() != incomingParent ||
		!request.Parent.IsRemote() || request.SpanKind != trace.SpanKindServer {
		t.Errorf("request span: trace %s, parent %s (remote %v), kind %v; want trace %s under %s, server",
			request.SpanContext.TraceID(), request.Parent.SpanID(), request.Parent.IsRemote(), request.SpanKind, incomingTrace, incomingParent)
	}
	want := map[string]string{
		"http.request.method": "POST", "http.route": "/graphql", "url.path": "/graphql",
		"http.response.status_code": "200", "obsqra.request_id": rec.Header().Get("X-Request-ID"),
	}
	if a := spanAttrs(request); !containsAll(a, want) {
		t.Errorf("request span attributes %v, want %v", a, want)
	}

	op := spanNamed(t, got, "mutation LogIn")
	if op.Parent.SpanID() != request.SpanContext.SpanID() || op.SpanContext.TraceID() != request.SpanContext.TraceID() {
		t.Errorf("operation span's parent %s, want the request's %s", op.Parent.SpanID(), request.SpanContext.SpanID())
	}
	a := spanAttrs(op)
	if !containsAll(a, map[string]string{"graphql.operation.type": "mutation", "graphql.operation.name": "LogIn"}) || a["obsqra.graphql.complexity"] == "" {
		t.Errorf("operation span attributes %v, want its type, name and complexity", a)
	}
	for _, s := range got {
		for k, v := range spanAttrs(s) {
			if strings.Contains(v, password) || strings.Contains(v, goodToken) || strings.Contains(v, "accessToken") {
				t.Errorf("span %q: %s = %q holds the request's secrets or document", s.Name, k, v)
			}
		}
	}
}

// TestOperationSpanCost: with cost budgets an operation's span carries
// the cost charged before it ran and what it actually cost.
func TestOperationSpanCost(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans), withLimiter(ratelimit.New(storetest.SQLite(t), nil), 1_000_000))
	if rec, res := b.graphQL(t, `query Me { me { id email } }`, nil, "Authorization", "Bearer "+goodToken); rec.Code != http.StatusOK || len(res.Errors) != 0 {
		t.Fatalf("me = %d %+v", rec.Code, res.Errors)
	}
	a := spanAttrs(spanNamed(t, spans.GetSpans(), "query Me"))
	if !containsAll(a, map[string]string{"obsqra.graphql.complexity": "3", "obsqra.cost.requested": "3", "obsqra.cost.actual": "3"}) {
		t.Errorf("operation span attributes %v, want complexity, requested and actual cost 3", a)
	}
}

// TestRequestSpanOfAGet: a GET's span has its path but not its query,
// where the document and its variables are, and a path the server does
// not route is not in the span's name.
func TestRequestSpanOfAGet(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans))
	b.serve(httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(`{ me { id } }`)+"&variables="+url.QueryEscape(`{"secret":"s3cr3t"}`), nil))
	b.serve(httptest.NewRequest(http.MethodGet, "/wp-admin/s3cr3t.php", nil))

	get := spanNamed(t, spans.GetSpans(), "GET /graphql")
	if a := spanAttrs(get); a["url.path"] != "/graphql" {
		t.Errorf("GET span attributes %v, want url.path /graphql", a)
	}
	unknown := spanNamed(t, spans.GetSpans(), "GET")
	if a := spanAttrs(unknown); a["url.path"] != "/wp-admin/s3cr3t.php" || a["http.response.status_code"] != "404" || a["http.route"] != "" {
		t.Errorf("unknown path's span attributes %v, want its path, 404 and no route", a)
	}
	for _, s := range spans.GetSpans() {
		for k, v := range spanAttrs(s) {
			if strings.Contains(v, "secret") || strings.Contains(v, "query=") {
				t.Errorf("span %q: %s = %q holds the query string", s.Name, k, v)
			}
		}
	}
}

// TestInternalErrorQuotesTraceID: a traced request's internal error
// carries its trace id beside its request id, and fails its operation's
// span (its HTTP answer is a 200, which the request's span keeps); an
// untraced server's carries none, whatever traceparent comes in.
func TestInternalErrorQuotesTraceID(t *testing.T) {
	t.Parallel()
	failing := func(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
		return nil, errors.New("pq: connection reset")
	}

	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans))
	b.resolver.login = failing
	rec, res := b.graphQL(t, loginMutation, nil, "traceparent", traceparent)
	e := onlyError(t, res)
	if e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Extensions["requestId"] != rec.Header().Get("X-Request-ID") || e.Extensions["traceId"] != incomingTrace {
		t.Errorf("traced internal error extensions = %v, want requestId %s and traceId %s", e.Extensions, rec.Header().Get("X-Request-ID"), incomingTrace)
	}
	if op := spanNamed(t, spans.GetSpans(), "mutation"); op.Status.Code != codes.Error {
		t.Errorf("operation span status %v, want an error", op.Status)
	}
	if req := spanNamed(t, spans.GetSpans(), "POST /graphql"); req.Status.Code == codes.Error {
		t.Errorf("request span status %v, want no error (HTTP 200)", req.Status)
	}

	untraced := setup(t)
	untraced.resolver.login = failing
	_, res = untraced.graphQL(t, loginMutation, nil, "traceparent", traceparent)
	if e := onlyError(t, res); e.Extensions["traceId"] != nil {
		t.Errorf("untraced internal error extensions = %v, want no traceId", e.Extensions)
	}
}

// TestPanicSpanAndTraceID: a panic below the middleware answers a 500
// with the trace id and fails the request's span.
func TestPanicSpanAndTraceID(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans))
	rec, res := b.graphQL(t, `{ me { id } }`, nil, "Authorization", "Bearer panic-token", "traceparent", traceparent)
	if e := onlyError(t, res); rec.Code != http.StatusInternalServerError || e.Extensions["traceId"] != incomingTrace {
		t.Errorf("panic = %d %v, want 500 with traceId %s", rec.Code, e.Extensions, incomingTrace)
	}
	req := spanNamed(t, spans.GetSpans(), "POST /graphql")
	if a := spanAttrs(req); req.Status.Code != codes.Error || a["http.response.status_code"] != "500" {
		t.Errorf("request span status %v, attributes %v; want an error with status 500", req.Status, a)
	}
}

// report is what a fakeReporter was told.
type report struct {
	err                         error
	panic                       any
	operation, requestID, trace string
}

// fakeReporter is a server.Reporter that records its reports.
type fakeReporter struct {
	mu      sync.Mutex
	reports []report
}

func (r *fakeReporter) ReportError(ctx context.Context, err error, operation string) {
	r.add(ctx, report{err: err, operation: operation})
}

func (r *fakeReporter) ReportPanic(ctx context.Context, v any, operation string) {
	r.add(ctx, report{panic: v, operation: operation})
}

func (r *fakeReporter) add(ctx context.Context, rep report) {
	c := obsqra.ClientFromContext(ctx)
	rep.requestID, rep.trace = c.RequestID, c.TraceID
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
}

func (r *fakeReporter) all() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]report(nil), r.reports...)
}

// TestReporter: internal errors and panics, in a resolver or below the
// middleware, are reported with the request's id, trace id and
// operation's name; errors a client may read and cancellations are not.
func TestReporter(t *testing.T) {
	t.Parallel()
	reporter := &fakeReporter{}
	spans := tracetest.NewInMemoryExporter()
	b := setup(t, withTracing(spans), func(cfg *server.Config) { cfg.Reporter = reporter })
	cause := errors.New("pq: connection reset")
	calls := 0
	b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
		calls++
		switch calls {
		case 1:
			return nil, fmt.Errorf("log in: %w", cause)
		case 2:
			panic("nil map in login")
		default:
			return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "wrong email or password")
		}
	}
	const named = `mutation LogIn { login(input: {email: "ada@example.com", password: "pw"}) { accessToken } }`
	var ids []string
	for range 3 {
		rec, _ := b.graphQL(t, named, nil, "traceparent", traceparent)
		ids = append(ids, rec.Header().Get("X-Request-ID"))
	}
	rec, _ := b.graphQL(t, `{ me { id } }`, nil, "Authorization", "Bearer panic-token", "traceparent", traceparent)
	ids = append(ids, rec.Header().Get("X-Request-ID"))

	got := reporter.all()
	if len(got) != 3 {
		t.Fatalf("reports = %+v, want the internal error and the two panics", got)
	}
	if !errors.Is(got[0].err, cause) || got[0].operation != "LogIn" || got[0].requestID != ids[0] || got[0].trace != incomingTrace {
		t.Errorf("internal error report = %+v, want the cause, LogIn, request %s, trace %s", got[0], ids[0], incomingTrace)
	}
	if got[1].panic != "nil map in login" || got[1].operation != "LogIn" || got[1].requestID != ids[1] || got[1].trace != incomingTrace {
		t.Errorf("resolver panic report = %+v, want the panic, LogIn, request %s", got[1], ids[1])
	}
	if !strings.Contains(fmt.Sprint(got[2].panic), "authenticator exploded") || got[2].operation != "" || got[2].requestID != ids[3] {
		t.Errorf("middleware panic report = %+v, want the panic, no operation, request %s", got[2], ids[3])
	}
}

// containsAll reports whether got holds every key of want with its value.
func containsAll(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// TestSubscriptionSpan: a subscription's span lasts as long as its stream
// and ends when the stream does.
func TestSubscriptionSpan(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	b := setupWS(t, withTracing(spans))
	c := b.stream(t, `subscription Ticks { ticks(topic: "traced") }`, "traceparent", traceparent)
	sub := b.schema.await(t, "traced")
	sub.publish(t, "one")
	c.next()
	for _, s := range spans.GetSpans() {
		if s.Name == "subscription Ticks" {
			t.Fatal("the subscription's span ended while its stream runs")
		}
	}
	close(sub.events)
	c.complete()
	c.ended()
	op := spanNamed(t, spans.GetSpans(), "subscription Ticks")
	if op.SpanContext.TraceID().String() != incomingTrace || spanAttrs(op)["graphql.operation.type"] != "subscription" {
		t.Errorf("subscription span: trace %s, attributes %v; want trace %s, type subscription", op.SpanContext.TraceID(), spanAttrs(op), incomingTrace)
	}
}
