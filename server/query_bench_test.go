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
)

// BenchmarkQuery measures the hot path of a small authenticated query
// through the whole handler (middleware, gqlgen, the fake resolver), for a
// client that does not accept gzip and for one that does: the answer is
// under a kilobyte, so both get it as is. cpu-ns/op is the process's CPU
// time, which other processes on a shared machine do not inflate.
func BenchmarkQuery(b *testing.B) {
	srv := server.New(server.Config{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, graph.NewExecutableSchema(graph.Config{Resolvers: &fakeResolver{}}), &fakeAuth{}, &fakePinger{})
	h := srv.Handler()
	const body = `{"query":"{ me { id email fullName role active createdAt } }"}`
	for name, acceptEncoding := range map[string]string{"identity": "", "gzip": "gzip, deflate, br, zstd"} {
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
