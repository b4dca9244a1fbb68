package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func eachDialect(b *testing.B, fn func(b *testing.B, db *store.DB)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, storetest.SQLite(b)) })
	b.Run("postgres", func(b *testing.B) { fn(b, storetest.Postgres(b)) })
}

// BenchmarkMe measures an authenticated request end to end through the
// HTTP handler: token check, one session+user query, execution, JSON.
func BenchmarkMe(b *testing.B) {
	eachDialect(b, func(b *testing.B, db *store.DB) {
		h, accounts := newHandler(b, db, account.Config{BcryptCost: 10})
		p, err := accounts.Register(context.Background(), account.RegisterInput{Email: "bench@example.com", Password: "correct horse", FullName: "Bench"})
		if err != nil {
			b.Fatal(err)
		}
		body := []byte(`{"query":"{ me { id email fullName role active createdAt preferences { riskTolerance maxSingleBps minDiversification } } }"}`)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+p.Auth.AccessToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte("bench@example.com")) {
				b.Fatalf("me: %d %s", rec.Code, rec.Body)
			}
		}
	})
}

// BenchmarkLoginFailure compares a wrong password with an unknown email at
// the production bcrypt cost floor (10): the two must take comparable time,
// or the timing would tell an attacker which emails are registered.
func BenchmarkLoginFailure(b *testing.B) {
	noThrottle := account.ThrottlePolicy{AccountLimit: 1 << 30, AddressLimit: 1 << 30, AccountCeiling: 1 << 30, Window: time.Minute}
	db := storetest.SQLite(b)
	h, accounts := newHandler(b, db, account.Config{BcryptCost: 10, Throttle: noThrottle})
	if _, err := accounts.Register(context.Background(), account.RegisterInput{Email: "known@example.com", Password: "correct horse", FullName: "K"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, email string }{{"wrong-password", "known@example.com"}, {"unknown-email", "unknown@example.com"}} {
		b.Run(c.name, func(b *testing.B) {
			body, _ := json.Marshal(map[string]string{"query": `mutation { login(input: {email: "` + c.email + `", password: "wrong horse"}) { accessToken } }`})
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if !bytes.Contains(rec.Body.Bytes(), []byte("invalid email or password")) {
					b.Fatalf("login: %s", rec.Body)
				}
			}
		})
	}
}

// BenchmarkProtocolsDashboard measures the market's hot query: every
// protocol with its latest metrics, latest risk score and the 20 newest
// rows of both histories, over 400 days of history, end to end through the
// HTTP handler (5 SQL statements per request).
func BenchmarkProtocolsDashboard(b *testing.B) {
	eachDialect(b, func(b *testing.B, db *store.DB) {
		h, accounts := newHandler(b, db, account.Config{BcryptCost: 4, AdminEmails: []string{"admin@example.com"}})
		ctx := context.Background()
		admin, err := accounts.Register(ctx, account.RegisterInput{Email: "admin@example.com", Password: "correct horse", FullName: "Admin"})
		if err != nil {
			b.Fatal(err)
		}
		end := time.Now().UTC().Add(-time.Hour)
		for chunk := range 4 { // 400 days, 100 per request
			var in []map[string]any
			for d := chunk * 100; d < chunk*100+100; d++ {
				for i, p := range slugs {
					in = append(in, map[string]any{"protocol": p, "observedAt": end.Add(-time.Duration(d) * 24 * time.Hour).Format(time.RFC3339),
						"apyBps": 300 + 10*i + d%17, "tvlUsd": "25000000", "utilizationBps": 5000 + 11*(d%40)})
				}
			}
			body, _ := json.Marshal(map[string]any{"query": `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, "variables": map[string]any{"in": in}})
			req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+admin.Auth.AccessToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
				b.Fatalf("ingest: %s", rec.Body)
			}
		}
		body, _ := json.Marshal(map[string]string{"query": dashboardQuery})
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) {
				b.Fatalf("dashboard: %d %s", rec.Code, rec.Body)
			}
		}
	})
}
