package resolvers_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store/storetest"
)

// BenchmarkReadCacheMemory prints what the read cache costs: bytes per
// protocol of the public shapes (answers grow with the protocols they
// list) and per year of history (the shapes page it, so a year more
// costs nothing), as the cache accounts them (cache-B) and as the heap
// holds them (server's BenchmarkReadCacheEntryHeap). The cache never
// holds more than READ_CACHE_BYTES (TestReadCacheAnswers).
func BenchmarkReadCacheMemory(b *testing.B) {
	shapes := []string{
		`{ protocols { slug auditScore riskHistory(first: 20) { edges { node { score observedAt } } } } }`,
		`{ protocols { slug name category latestRisk { score observedAt } } }`,
	}
	// kept fills a fresh instance with protocols protocols and days of
	// history and returns the cache's bytes after answering every shape.
	kept := func(b *testing.B, protocols, days int) int64 {
		in := newBenchInstance(b)
		extra := make([]string, 0, protocols)
		for i := len(slugs); i < protocols; i++ {
			slug := fmt.Sprintf("bench%02d", i)
			r := do(b, in.h, in.admin, `mutation($in: UpsertProtocolInput!) { upsertProtocol(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"slug": slug, "name": "Bench " + slug, "category": "LENDING", "auditScore": 70, "launchedOn": "2024-01-01"}})
			if len(r.Errors) > 0 {
				b.Fatal(r.Errors)
			}
			extra = append(extra, slug)
		}
		all := append(append([]string{}, slugs...), extra...)
		end := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for d := days; d >= 0; d -= 50 {
			var in2 []map[string]any
			for k := min(d, 49); k >= 0; k-- {
				for i, p := range all {
					in2 = append(in2, map[string]any{"protocol": p, "observedAt": end.Add(-time.Duration(d-k) * 24 * time.Hour).Format(time.RFC3339),
						"apyBps": 300 + i + k, "utilizationBps": 5000})
				}
			}
			r := do(b, in.h, in.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": in2})
			if len(r.Errors) > 0 {
				b.Fatal(r.Errors)
			}
		}
		for _, q := range shapes {
			in.post(b, q)
		}
		return in.cache.Stats().Bytes
	}
	var perProtocol, perYear float64
	for b.Loop() {
		p5, p20 := kept(b, 5, 30), kept(b, 20, 30)
		y1 := kept(b, 5, 365)
		perProtocol = float64(p20-p5) / 15
		perYear = float64(y1 - p5)
	}
	b.ReportMetric(perProtocol, "cache-B/protocol")
	b.ReportMetric(perYear, "cache-B/year-of-history")

	// The heap's cost of a kept answer against the cache's account of it.
	in := newBenchInstance(b)
	var samples []map[string]any
	for _, p := range slugs {
		samples = append(samples, map[string]any{"protocol": p, "observedAt": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339), "apyBps": 400, "utilizationBps": 5000})
	}
	if r := do(b, in.h, in.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": samples}); len(r.Errors) > 0 {
		b.Fatal(r.Errors)
	}
	// What one kept answer of the public shape costs, as accounted
	// (server's BenchmarkReadCacheEntryHeap compares it with the heap).
	for i := range 200 {
		in.post(b, fmt.Sprintf(`{ p%d: protocols { slug name category latestRisk { score observedAt } } }`, i))
	}
	st := in.cache.Stats()
	b.ReportMetric(float64(st.Bytes)/float64(st.Entries), "cache-B/answer")
}

// benchInstance is a server with a read cache and no hub: nothing is
// written while it is measured, so every answer stays current.
type benchInstance struct {
	h     http.Handler
	cache *server.ReadCache
	admin string
}

func newBenchInstance(b *testing.B) *benchInstance {
	b.Helper()
	gens := obsqra.NewGenerations(nil)
	cache := server.NewReadCache(server.ReadCacheOptions{MaxBytes: 1 << 30, Fields: resolvers.CacheScopes, Generations: gens})
	h, _ := newHandler(b, storetest.SQLite(b), account.Config{BcryptCost: 4, AdminEmails: []string{"admin@example.com"}},
		func(c *server.Config) { c.ReadCache = cache })
	gens.Start()
	return &benchInstance{h: h, cache: cache, admin: registerVia(b, h, "admin@example.com").AccessToken}
}

// post answers query anonymously, failing on errors.
func (in *benchInstance) post(b *testing.B, query string) {
	b.Helper()
	if r := do(b, in.h, "", query, nil); len(r.Errors) > 0 {
		b.Fatalf("%s: %+v", query, r.Errors)
	}
}
