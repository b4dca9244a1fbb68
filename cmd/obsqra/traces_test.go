package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/telemetry/tracing/tracingtest"
)

// TestServeTraces runs `obsqra serve` with its spans exported to a
// collector of the test's, over OTLP/HTTP as configured by
// OTEL_EXPORTER_OTLP_ENDPOINT, and follows one sign-up and one sign-out
// through them:
//   - the sign-up's request continues the trace of its traceparent, its
//     operation is a child of the request, and its SQL statements
//     children of the operation, with the statements' text and no value;
//   - the sign-out appends an event (the session ended) in its operation's
//     span, and the hub's delivery of that event is a span of its own
//     linked to it;
//   - no span carries the password, the email, the access token;
//   - the request's log lines carry its trace id beside its request id;
//   - with SENTRY_DSN set too, no error report is sent for requests that
//     did not fail.
func TestServeTraces(t *testing.T) {
	env(t)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	collector := tracingtest.NewCollector(t)
	sentry := tracingtest.NewSentry(t, "7")
	for k, v := range map[string]string{
		"API_PORT":                    strconv.Itoa(port),
		"MARKET_SOURCE":               "none",
		"LOG_LEVEL":                   "info",
		"LOG_FORMAT":                  "json",
		"OTEL_EXPORTER_OTLP_ENDPOINT": collector.Base,
		"SENTRY_DSN":                  sentry.DSN,
		// The batch processor's, read by the SDK: export within 50 ms.
		"OTEL_BSP_SCHEDULE_DELAY": "50",
	} {
		t.Setenv(k, v)
	}
	const (
		email       = "traced.user@example.com"
		password    = "correct horse battery 42"
		signUpTrace = "0af7651916cd43dd8448eb211c80319c"
		caller      = "b7ad6b7169203331"
	)

	var token, signUpRequestID string
	logs := serveWhile(t, base, func() {
		body := postRequest(t, base, "", map[string]any{
			"query":     `mutation SignUp($input: RegisterInput!) { register(input: $input) { auth { accessToken } } }`,
			"variables": map[string]any{"input": map[string]any{"email": email, "password": password, "fullName": "Traced User"}},
		}, "traceparent", "00-"+signUpTrace+"-"+caller+"-01", "X-Request-ID", "sign-up-1")
		var r struct {
			Data struct {
				Register struct{ Auth struct{ AccessToken string } }
			}
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Data.Register.Auth.AccessToken == "" {
			t.Fatalf("register = %s (%v)", body, err)
		}
		token, signUpRequestID = r.Data.Register.Auth.AccessToken, "sign-up-1"
		if body := post(t, base, token, `mutation SignOut { logout }`); !bytes.Contains(body, []byte(`"logout":true`)) {
			t.Fatalf("logout = %s", body)
		}
		collector.Wait(t, func(spans []tracingtest.Span) bool {
			return slices.ContainsFunc(spans, func(s tracingtest.Span) bool { return s.Name == "deliver account.changed" })
		})
	})
	spans := collector.Spans()
	byID := map[string]tracingtest.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	named := func(name, traceID string) tracingtest.Span {
		t.Helper()
		for _, s := range spans {
			if s.Name == name && (traceID == "" || s.TraceID == traceID) {
				return s
			}
		}
		t.Fatalf("no span %q in trace %q among %v", name, traceID, tracingtest.Names(spans))
		return tracingtest.Span{}
	}

	t.Run("the sign-up's trace", func(t *testing.T) {
		request := named("POST /graphql", signUpTrace)
		if request.ParentSpanID != caller || request.Kind != "SPAN_KIND_SERVER" || request.Attributes["obsqra.request_id"] != signUpRequestID {
			t.Errorf("request span: parent %s, kind %s, attributes %v; want the caller %s, server, request id %s",
				request.ParentSpanID, request.Kind, request.Attributes, caller, signUpRequestID)
		}
		if r := request.Resource; r["service.name"] != "obsqra" || r["service.version"] != version || r["deployment.environment.name"] != "development" {
			t.Errorf("resource %v, want obsqra %s in development", r, version)
		}
		op := named("mutation SignUp", signUpTrace)
		if op.ParentSpanID != request.SpanID || op.Attributes["graphql.operation.name"] != "SignUp" {
			t.Errorf("operation span: parent %s, attributes %v; want the request's %s, SignUp", op.ParentSpanID, op.Attributes, request.SpanID)
		}
		// The cost budget is charged before the operation runs, under the
		// request; the operation's own statements are under it.
		var inOperation int
		for _, s := range spans {
			if s.TraceID != signUpTrace || s.Attributes["db.system.name"] == "" {
				continue
			}
			if s.Attributes["db.system"] != "sqlite" || s.Attributes["db.query.text"] == "" || !descends(byID, s, request.SpanID) {
				t.Errorf("SQL span %q: attributes %v, parent %s; want sqlite, its statement, under the request", s.Name, s.Attributes, s.ParentSpanID)
			}
			if descends(byID, s, op.SpanID) && strings.HasPrefix(s.Attributes["db.query.text"], "INSERT INTO users") {
				inOperation++
			}
		}
		if inOperation != 1 {
			t.Errorf("the sign-up's operation has %d SQL spans inserting the user, want 1: %v", inOperation, tracingtest.Names(spans))
		}
	})

	t.Run("the sign-out's event, delivered", func(t *testing.T) {
		var signOut tracingtest.Span
		for _, s := range spans {
			if s.Name == "mutation SignOut" {
				signOut = s
			}
		}
		delivery := named("deliver account.changed", "")
		if delivery.Kind != "SPAN_KIND_CONSUMER" || delivery.ParentSpanID != "" || delivery.TraceID == signOut.TraceID {
			t.Errorf("delivery span: kind %s, parent %q, trace %s; want a consumer, the root of a trace of its own", delivery.Kind, delivery.ParentSpanID, delivery.TraceID)
		}
		want := tracingtest.Link{TraceID: signOut.TraceID, SpanID: signOut.SpanID}
		if len(delivery.Links) != 1 || delivery.Links[0] != want {
			t.Errorf("delivery span links %+v, want the sign-out's operation %+v", delivery.Links, want)
		}
	})

	t.Run("no secret in any span", func(t *testing.T) {
		raw := collector.Raw()
		for _, secret := range []string{password, email, token, "Bearer"} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("an export carries %q", secret)
			}
		}
	})

	t.Run("trace ids in the log", func(t *testing.T) {
		var found bool
		for line := range bytes.Lines(logs) {
			var entry map[string]any
			if json.Unmarshal(line, &entry) != nil {
				continue
			}
			if entry["request_id"] == signUpRequestID {
				found = true
				if entry["trace_id"] != signUpTrace {
					t.Errorf("log line %s of the sign-up has trace_id %v, want %s", line, entry["trace_id"], signUpTrace)
				}
			}
			if entry["msg"] == "starting obsqra" && entry["trace_id"] != nil {
				t.Errorf("log line %s outside any request has a trace id", line)
			}
		}
		if !found {
			t.Errorf("no log line of the sign-up (request id %s) in\n%s", signUpRequestID, logs)
		}
	})

	if events := sentry.Events(); len(events) != 0 {
		t.Errorf("Sentry received %d events, want none: no request failed", len(events))
	}
}

// descends reports whether s is below the span ancestor, through the
// spans of byID.
func descends(byID map[string]tracingtest.Span, s tracingtest.Span, ancestor string) bool {
	for range len(byID) {
		if s.ParentSpanID == ancestor {
			return true
		}
		parent, ok := byID[s.ParentSpanID]
		if !ok {
			return false
		}
		s = parent
	}
	return false
}
