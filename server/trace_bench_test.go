package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

// BenchmarkQueryTraced is BenchmarkQuery's identity case with every
// request traced (always sampled, batched to an exporter that drops the
// spans): what a request and its operation's spans cost when tracing is
// on. BenchmarkQuery itself is the cost when it is off.
func BenchmarkQueryTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	srv := server.New(server.Config{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		TracerProvider: tp,
	}, graph.NewExecutableSchema(graph.Config{Resolvers: &fakeResolver{}}), &fakeAuth{}, &fakePinger{})
	h := srv.Handler()
	const body = `{"query":"{ me { id email fullName role active createdAt } }"}`
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+goodToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ada@example.com") {
			b.Fatalf("me = %d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
