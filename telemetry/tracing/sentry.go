package tracing

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/getsentry/sentry-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
)

// ReporterOptions are what NewReporter needs.
type ReporterOptions struct {
	// DSN is the Sentry project's DSN (SENTRY_DSN). Required.
	DSN string
	// Release is the build's version; Environment is development or
	// production.
	Release, Environment string
}

// Reporter sends the server's internal errors and recovered panics to
// Sentry (a server.Reporter), each tagged with its request id, trace id
// and GraphQL operation name, with the trace's ids in the event's trace
// context so that Sentry links it to the trace, and with the release and
// environment. It sends nothing else of a request: no headers (so no
// Authorization, no Cookie), no document, no variables, no user; and
// before an event leaves, what looks like a token, a password or a URL's
// credentials in its messages is replaced (see scrub). Events are sent in
// the background; Flush waits for them.
type Reporter struct {
	client *sentry.Client
}

// NewReporter returns a reporter to the Sentry project of opts.DSN.
// Errors: a DSN Sentry refuses.
func NewReporter(opts ReporterOptions) (*Reporter, error) {
	client, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:         opts.DSN,
		Release:     opts.Release,
		Environment: opts.Environment,
		// Stack traces of panics reported as messages, too.
		AttachStacktrace: true,
		// No breadcrumbs: nothing records any, and none may carry a
		// request's data by accident.
		MaxBreadcrumbs: -1,
		Integrations:   withoutSourceContext,
		BeforeSend:     scrubEvent,
	})
	if err != nil {
		return nil, fmt.Errorf("sentry client: %w", err)
	}
	return &Reporter{client: client}, nil
}

// withoutSourceContext drops Sentry's ContextifyFrames integration, which
// reads the source files of a stack's frames from disk to send the lines
// around each: a server has no sources beside its binary, and a test's
// source lines hold the very values the reports must not carry.
func withoutSourceContext(defaults []sentry.Integration) []sentry.Integration {
	out := defaults[:0]
	for _, in := range defaults {
		if in.Name() != "ContextifyFrames" {
			out = append(out, in)
		}
	}
	return out
}

// ReportError reports err, an internal error of the request of ctx.
func (r *Reporter) ReportError(ctx context.Context, err error, operation string) {
	r.client.CaptureException(err, nil, r.scope(ctx, operation))
}

// ReportPanic reports v, a panic recovered while serving the request of
// ctx, as an unhandled exception of type "panic" with the stack it is
// called on, which is still the panic's.
func (r *Reporter) ReportPanic(ctx context.Context, v any, operation string) {
	event := r.client.EventFromException(panicValue{v}, sentry.LevelFatal)
	if n := len(event.Exception); n > 0 {
		last := &event.Exception[n-1]
		last.Type = "panic"
		last.Mechanism = &sentry.Mechanism{Type: "panic"}
		last.Mechanism.SetUnhandled()
	}
	r.client.CaptureEvent(event, nil, r.scope(ctx, operation))
}

// Flush waits up to timeout for the events not sent yet, and reports
// whether all were.
func (r *Reporter) Flush(timeout time.Duration) bool { return r.client.Flush(timeout) }

// scope is what an event of the request of ctx carries: its request id,
// its trace id (and the trace context Sentry links traces by), and its
// operation's name.
func (r *Reporter) scope(ctx context.Context, operation string) *sentry.Scope {
	scope := sentry.NewScope()
	if id := obsqra.ClientFromContext(ctx).RequestID; id != "" {
		scope.SetTag("request_id", id)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		scope.SetTag(TraceIDKey, sc.TraceID().String())
		scope.SetPropagationContext(sentry.PropagationContext{TraceID: sentry.TraceID(sc.TraceID()), SpanID: sentry.SpanID(sc.SpanID())})
	}
	if operation != "" {
		scope.SetTag("operation", operation)
	}
	return scope
}

// panicValue is a recovered panic as an error, so that Sentry reports it
// as an exception with a stack trace.
type panicValue struct{ v any }

// Error is the panic's value.
func (p panicValue) Error() string { return fmt.Sprint(p.v) }

// scrubEvent removes from an event what must never leave the server,
// should anything have put it there: the request, the user and
// breadcrumbs; and scrubs its messages.
func scrubEvent(event *sentry.Event, _ *sentry.EventHint) *sentry.Event {
	event.Request = nil
	event.User = sentry.User{}
	event.Breadcrumbs = nil
	event.Message = scrub(event.Message)
	for i := range event.Exception {
		event.Exception[i].Value = scrub(event.Exception[i].Value)
	}
	return event
}

// secrets are what scrub replaces, with what.
var secrets = []struct {
	re   *regexp.Regexp
	with string
}{
	// A JWT (an access token): three base64url parts, the first a JSON
	// object.
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`), "[redacted token]"},
	// An Authorization value.
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[^\s"',;]+`), "$1 [redacted]"},
	// A URL's user and password (a database's, a provider's).
	{regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@`), "$1[redacted]@"},
	// password=…, "token": "…", api_key: … and their kin.
	{regexp.MustCompile(`(?i)\b(password|passwd|secret|token|api[_-]?key|dsn)(["']?\s*[:=]\s*["']?)[^\s"'&,;]+`), "$1$2[redacted]"},
}

// scrub replaces in s what looks like a secret.
func scrub(s string) string {
	for _, secret := range secrets {
		s = secret.re.ReplaceAllString(s, secret.with)
	}
	return s
}
