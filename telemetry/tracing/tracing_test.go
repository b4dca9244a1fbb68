package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/telemetry/tracing"
	"github.com/obsqra/obsqra/telemetry/tracing/tracingtest"
)

// TestProviderExportsOverOTLP: the provider's spans reach an OTLP/HTTP
// endpoint, with the process's resource: service name, version and
// environment, which the OTEL_ variables may rename.
func TestProviderExportsOverOTLP(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		service string
		extra   map[string]string
	}{
		{name: "defaults", service: "obsqra"},
		{
			name:    "from the environment",
			env:     map[string]string{"OTEL_SERVICE_NAME": "obsqra-eu", "OTEL_RESOURCE_ATTRIBUTES": "team=backend,service.name=ignored"},
			service: "obsqra-eu", extra: map[string]string{"team": "backend"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			collector := tracingtest.NewCollector(t)
			ctx := context.Background()
			tp, err := tracing.NewProvider(ctx, tracing.Options{Endpoint: collector.Endpoint, Version: "v1.2.3", Environment: "production"})
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("test").Start(ctx, "hello")
			span.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown = %v", err)
			}
			spans := collector.Wait(t, func(s []tracingtest.Span) bool { return len(s) == 1 })
			r := spans[0].Resource
			if spans[0].Name != "hello" || r["service.name"] != tt.service || r["service.version"] != "v1.2.3" || r["deployment.environment.name"] != "production" {
				t.Errorf("span %q with resource %v, want hello from %s v1.2.3 in production", spans[0].Name, r, tt.service)
			}
			for k, v := range tt.extra {
				if r[k] != v {
					t.Errorf("resource %s = %q, want %q", k, r[k], v)
				}
			}
		})
	}
}

func TestSamplerOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		ratio float64
		want  string // the sampler's description
	}{
		{"", 1, "ParentBased{root:AlwaysOnSampler"},
		{"always_on", 1, "AlwaysOnSampler"},
		{"always_off", 1, "AlwaysOffSampler"},
		{"traceidratio", 0.25, "TraceIDRatioBased{0.25}"},
		{"parentbased_always_off", 1, "ParentBased{root:AlwaysOffSampler"},
		{"parentbased_traceidratio", 0.5, "ParentBased{root:TraceIDRatioBased{0.5}"},
	} {
		s, err := tracing.SamplerOf(tt.name, tt.ratio)
		if err != nil || !bytes.HasPrefix([]byte(s.Description()), []byte(tt.want)) {
			t.Errorf("SamplerOf(%q, %g) = %v, %v; want %s…", tt.name, tt.ratio, s, err, tt.want)
		}
	}
	for _, bad := range []struct {
		name  string
		ratio float64
	}{{"jaeger_remote", 1}, {"traceidratio", 1.5}, {"traceidratio", -0.1}} {
		if _, err := tracing.SamplerOf(bad.name, bad.ratio); err == nil {
			t.Errorf("SamplerOf(%q, %g) = nil error, want one", bad.name, bad.ratio)
		}
	}
}

// TestDispatchesLinkToTheCommit: the span of an event's dispatch is the
// root of a trace of its own, linked to the span its traceparent names.
func TestDispatchesLinkToTheCommit(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	d := tracing.NewDispatches(tp)

	// The hub's context is in no span; were it in one, the dispatch would
	// still start a trace of its own.
	ctx, running := tp.Tracer("test").Start(context.Background(), "unrelated")
	dispatched := d.Dispatch(ctx, &obsqra.Event{ID: 42, Topic: "account.changed", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	dispatched(3)
	d.Dispatch(ctx, &obsqra.Event{ID: 43, Topic: "risk.scored", TraceParent: "garbage"})(0)
	running.End()

	got := spans.GetSpans()
	if len(got) != 3 {
		t.Fatalf("%d spans, want the two dispatches and the test's", len(got))
	}
	s := got[0]
	attrs := map[string]string{}
	for _, kv := range s.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if s.Name != "deliver account.changed" || s.SpanKind != trace.SpanKindConsumer || s.Parent.IsValid() ||
		s.SpanContext.TraceID() == running.SpanContext().TraceID() {
		t.Errorf("dispatch span %q kind %v parent %v; want deliver account.changed, a consumer, a root", s.Name, s.SpanKind, s.Parent)
	}
	if attrs["messaging.destination.name"] != "account.changed" || attrs["messaging.message.id"] != "42" || attrs["obsqra.live.subscriptions"] != "3" {
		t.Errorf("dispatch span attributes %v", attrs)
	}
	if len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		s.Links[0].SpanContext.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("dispatch span links %+v, want the commit's span", s.Links)
	}
	if len(got[1].Links) != 0 {
		t.Errorf("a dispatch with a malformed traceparent links to %+v, want nothing", got[1].Links)
	}
}

// TestLogHandler: a line logged inside a span gets trace_id right after
// request_id (or last without one); a line outside a span gets none.
func TestLogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	traceID := span.SpanContext().TraceID().String()

	log.InfoContext(ctx, "http request", "request_id", "r1", "status", 200)
	log.InfoContext(ctx, "no request id", "n", 1)
	log.InfoContext(context.Background(), "outside", "request_id", "r2")
	log.Info("no context")

	var keys [][]string
	var values []map[string]any
	for line := range bytes.Lines(buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		values = append(values, m)
		keys = append(keys, jsonKeys(t, line))
	}
	if len(values) != 4 {
		t.Fatalf("%d lines, want 4", len(values))
	}
	if values[0]["trace_id"] != traceID || !follows(keys[0], "request_id", "trace_id") {
		t.Errorf("line in a span = %v (keys %v), want trace_id %s right after request_id", values[0], keys[0], traceID)
	}
	if values[1]["trace_id"] != traceID || keys[1][len(keys[1])-1] != "trace_id" {
		t.Errorf("line in a span without request_id = %v (keys %v), want trace_id last", values[1], keys[1])
	}
	for _, v := range values[2:] {
		if _, ok := v["trace_id"]; ok {
			t.Errorf("line outside a span = %v, want no trace_id", v)
		}
	}
}

// jsonKeys returns the top-level keys of a JSON object in order.
func jsonKeys(t *testing.T, line []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// follows reports whether b comes right after a in keys.
func follows(keys []string, a, b string) bool {
	for i := 0; i+1 < len(keys); i++ {
		if keys[i] == a {
			return keys[i+1] == b
		}
	}
	return false
}
