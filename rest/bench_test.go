package rest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/store/storetest"
)

// BenchmarkRoutes measures signed-in reads through the whole server (the
// middleware, the token's session read, the budget, the route) on SQLite:
// a page of 50 transactions, 30 days of three protocols' risk scores, and
// the same page of transactions through GraphQL for comparison.
func BenchmarkRoutes(b *testing.B) {
	e := newEnv(b, storetest.SQLite(b), envOptions{})
	e.ingestDays(b, 30)
	token := e.register(b, "ada@example.com")
	for i := range 50 {
		r := e.do(b, http.MethodPost, withToken("/api/v1/transactions/", token), map[string]any{
			"tx_hash": fmt.Sprintf("0x%x", 0x1000+i), "tx_type": "deposit", "amount": "1.5", "token": "STRK", "details": map[string]any{"n": i}})
		if r.status != http.StatusOK {
			b.Fatalf("log: %d %s", r.status, r.body)
		}
	}
	e.validate = nil
	for _, c := range []struct{ name, method, target, body string }{
		{"rest/transactions", "GET", withToken("/api/v1/transactions/?limit=50", token), ""},
		{"rest/risk-history", "GET", withToken("/api/v1/analytics/risk-history?days=30", token), ""},
		{"graphql/transactions", "POST", "/graphql",
			`{"query":"{ transactions(first: 50) { edges { node { id txHash type amount status details createdAt } } } }"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
				req.RemoteAddr = "203.0.113.5:4321"
				if c.body != "" {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+token)
				}
				rec := httptest.NewRecorder()
				e.h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), `"errors"`) {
					b.Fatalf("%s: %d %s", c.name, rec.Code, rec.Body)
				}
			}
		})
	}
}
