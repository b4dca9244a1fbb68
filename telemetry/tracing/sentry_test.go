package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/telemetry/tracing"
	"github.com/obsqra/obsqra/telemetry/tracing/tracingtest"
)

// What a request carries that no report may: its bearer token, its
// cookie, its variables' values, and a database password and an access
// token that an internal error's text quotes.
const (
	bearerToken      = "header-token-2f9c"
	cookieSecret     = "cookie-secret-7d1e"
	variablePassword = "variable-password-88aa"
	variableEmail    = "ada.secret@example.com"
	dbPassword       = "db-password-41b0"
	jwt              = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlNQ"
)

// incomingTrace is the trace of the requests' traceparent.
const incomingTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

// schemaRoot serves login, which fails with an internal error, and me,
// which panics; nothing else.
type schemaRoot struct{ graph.ResolverRoot }

func (schemaRoot) Query() graph.QueryResolver       { return query{} }
func (schemaRoot) Mutation() graph.MutationResolver { return mutation{} }

type query struct{ graph.QueryResolver }

func (query) Me(context.Context) (*obsqra.User, error) { panic("nil map in me") }

type mutation struct{ graph.MutationResolver }

func (mutation) Login(context.Context, graph.LoginInput) (*obsqra.AuthPayload, error) {
	return nil, fmt.Errorf("open session: connect postgres://obsqra:%s@db:5432/obsqra with token %s: %w",
		dbPassword, jwt, errors.New("connection reset"))
}

// anyone authenticates every token as a user.
type anyone struct{}

func (anyone) Authenticate(context.Context, string) (*obsqra.Principal, error) {
	return &obsqra.Principal{User: &obsqra.User{ID: 7, Role: obsqra.RoleUser, Active: true}}, nil
}

type pinger struct{}

func (pinger) Ping(context.Context) error { return nil }

// TestReporterSendsToSentry: the server's internal error and resolver
// panic reach a Sentry host, each with its request id, trace id (in its
// tags and its trace context), operation name, release and environment,
// the error's text scrubbed and the panic's stack; and nothing of the
// request's token, cookie or variables, nor the secrets the error quoted.
func TestReporterSendsToSentry(t *testing.T) {
	t.Parallel()
	sentry := tracingtest.NewSentry(t, "42")
	reporter, err := tracing.NewReporter(tracing.ReporterOptions{DSN: sentry.DSN, Release: "v9.9.9-test", Environment: "production"})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Logger:         slog.New(slog.DiscardHandler),
		TracerProvider: sdktrace.NewTracerProvider(),
		Reporter:       reporter,
	}, graph.NewExecutableSchema(graph.Config{Resolvers: schemaRoot{}}), anyone{}, pinger{})

	send := func(query string, variables map[string]any) string {
		body, _ := json.Marshal(map[string]any{"query": query, "variables": variables})
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearerToken)
		req.Header.Set("Cookie", "session="+cookieSecret)
		req.Header.Set("traceparent", "00-"+incomingTrace+"-00f067aa0ba902b7-01")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"traceId":"`+incomingTrace+`"`) {
			t.Errorf("response %s, want an internal error with the trace id", rec.Body)
		}
		return rec.Header().Get("X-Request-ID")
	}
	loginID := send(`mutation SignIn($input: LoginInput!) { login(input: $input) { accessToken } }`,
		map[string]any{"input": map[string]any{"email": variableEmail, "password": variablePassword}})
	meID := send(`query Me { me { id } }`, nil)
	if !reporter.Flush(10 * time.Second) {
		t.Fatal("Flush did not send every event within 10 s")
	}

	events := sentry.Wait(t, 2)
	if len(events) != 2 {
		t.Fatalf("%d events, want the error and the panic", len(events))
	}
	byOperation := map[string]map[string]any{}
	for _, e := range events {
		tags, _ := e["tags"].(map[string]any)
		byOperation[fmt.Sprint(tags["operation"])] = e
	}
	for op, want := range map[string]struct {
		requestID, level, excType, value string
	}{
		"SignIn": {loginID, "error", "", "open session: connect postgres://[redacted]@db:5432/obsqra with token [redacted token]: connection reset"},
		"Me":     {meID, "fatal", "panic", "nil map in me"},
	} {
		e := byOperation[op]
		if e == nil {
			t.Errorf("no event of operation %s in %v", op, events)
			continue
		}
		tags := e["tags"].(map[string]any)
		trace := e["contexts"].(map[string]any)["trace"].(map[string]any)
		if tags["request_id"] != want.requestID || tags["trace_id"] != incomingTrace || trace["trace_id"] != incomingTrace {
			t.Errorf("%s: tags %v, trace context %v; want request %s and trace %s", op, tags, trace, want.requestID, incomingTrace)
		}
		if e["release"] != "v9.9.9-test" || e["environment"] != "production" || e["level"] != want.level {
			t.Errorf("%s: release %v, environment %v, level %v; want v9.9.9-test, production, %s", op, e["release"], e["environment"], e["level"], want.level)
		}
		exceptions, _ := e["exception"].([]any)
		if len(exceptions) == 0 {
			t.Errorf("%s: no exception in %v", op, e)
			continue
		}
		// The last exception is the error as the server met it (for a
		// resolver's error, gqlgen's, which quotes its location and path);
		// those before it are the errors it wraps.
		last := exceptions[len(exceptions)-1].(map[string]any)
		if !strings.HasSuffix(fmt.Sprint(last["value"]), want.value) || (want.excType != "" && last["type"] != want.excType) {
			t.Errorf("%s: exception %v %q, want %s …%q", op, last["type"], last["value"], want.excType, want.value)
		}
		frames, _ := last["stacktrace"].(map[string]any)["frames"].([]any)
		if op == "Me" && !strings.Contains(fmt.Sprint(frames), "query.Me") {
			t.Errorf("%s: the panic's stack %v does not reach the resolver that panicked", op, frames)
		}
		for _, key := range []string{"request", "user", "breadcrumbs"} {
			if v, ok := e[key]; ok && fmt.Sprint(v) != "map[]" {
				t.Errorf("%s: the event carries %s: %v", op, key, v)
			}
		}
	}
	raw := sentry.Raw()
	for _, secret := range []string{bearerToken, cookieSecret, variablePassword, variableEmail, dbPassword, jwt, "Authorization", "Cookie"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("an envelope carries %q", secret)
		}
	}
}
