package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store/storetest"
	"github.com/obsqra/obsqra/telemetry"
)

// BenchmarkQuery measures the hot path of a small authenticated query
// through the whole handler (middleware, gqlgen, the fake resolver), for a
// client that does not accept gzip and for one that does: the answer is
// under a kilobyte, so both get it as is; and for the first with the
// Prometheus metrics on (metrics), which must cost next to nothing.
// cpu-ns/op is the process's CPU time, which other processes on a shared
// machine do not inflate.
func BenchmarkQuery(b *testing.B) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &fakeResolver{}})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	plain := server.New(server.Config{Logger: logger}, schema, &fakeAuth{}, &fakePinger{}).Handler()
	metrics := telemetry.New(telemetry.Options{OperationNames: []string{"Me"}, Codes: server.ErrorCodes()})
	measured := server.New(server.Config{Logger: logger, Metrics: metrics.GraphQL}, schema, &fakeAuth{}, &fakePinger{}).Handler()
	const body = `{"query":"query Me { me { id email fullName role active createdAt } }"}`
	for _, tt := range []struct {
		name, acceptEncoding string
		h                    http.Handler
	}{
		{"identity", "", plain},
		{"gzip", "gzip, deflate, br, zstd", plain},
		{"metrics", "", measured},
	} {
		name, acceptEncoding, h := tt.name, tt.acceptEncoding, tt.h
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+goodToken)
				if acceptEncoding != "" {
					req.Header.Set("Accept-Encoding", acceptEncoding)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "ada@example.com") {
					b.Fatalf("me = %d %s", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkQueryCharged is BenchmarkQuery's identity case with cost
// budgets (large enough never to refuse): what charging, reporting the
// cost and the RateLimit fields add to the hot path.
func BenchmarkQueryCharged(b *testing.B) {
	cfg := server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	withLimiter(ratelimit.New(storetest.SQLite(b), nil), 1_000_000_000_000)(&cfg)
	srv := server.New(cfg, graph.NewExecutableSchema(graph.Config{Resolvers: &fakeResolver{}}), &fakeAuth{}, &fakePinger{})
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
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"cost"`) {
			b.Fatalf("me = %d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
