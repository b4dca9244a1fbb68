package rest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestBudgets: the routes spend the GraphQL API's budgets, the anonymous
// ones per client address; the request that would overdraw is refused
// with 429, Retry-After and RATE_LIMITED, the ones before it are not.
func TestBudgets(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		// /auth/me costs 10: three fit in 30, the fourth does not.
		e := newEnv(t, db, envOptions{budget: 30})
		for i := 1; i <= 4; i++ {
			r := e.do(t, http.MethodGet, "/api/v1/auth/me?token=garbage", nil)
			if i <= 3 {
				if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("RateLimit"), `"anonymous";r=`+[]string{"20", "10", "0"}[i-1]) {
					t.Fatalf("request %d: %d %s, RateLimit %q", i, r.status, r.body, r.header.Get("RateLimit"))
				}
				continue
			}
			if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), `"code":"RATE_LIMITED"`) {
				t.Fatalf("request %d: %d %s, Retry-After %q; want 429", i, r.status, r.body, r.header.Get("Retry-After"))
			}
		}
		// A signed-in user spends their own budget (10 × 30), not the
		// address's, which is spent.
		other := newEnv(t, storetest.SQLite(t), envOptions{budget: 30})
		token := other.register(t, "ada@example.com")
		if r := other.do(t, http.MethodGet, "/api/v1/auth/me?token="+token, nil); r.status != http.StatusOK ||
			!strings.Contains(r.header.Get("RateLimit"), `"user";r=290`) {
			t.Fatalf("signed in: %d %s, RateLimit %q", r.status, r.body, r.header.Get("RateLimit"))
		}
	})
}

// TestFrameworkAnswers: unknown paths and methods, the trailing slash, the
// document and the reference page.
func TestFrameworkAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, storetest.SQLite(t), envOptions{})
	token := e.register(t, "ada@example.com")
	for _, c := range []struct {
		method, path string
		status       int
		body, where  string
	}{
		{"GET", "/api/v1/nothing", 404, `{"detail":"Not Found"}`, ""},
		{"DELETE", "/api/v1/auth/me", 405, `{"detail":"Method Not Allowed"}`, ""},
		{"GET", "/api/v1/transactions?limit=5&token=" + token, 307, "", "/api/v1/transactions/?limit=5&token=" + token},
		{"POST", "/api/v1/transactions", 307, "", "/api/v1/transactions/"},
		{"GET", "/api/v1/auth/me/?token=" + token, 307, "", "/api/v1/auth/me?token=" + token},
		{"GET", "/health", 200, `{"status":"healthy","service":"obsqra-backend","version":"1.0.0"}`, ""},
	} {
		r := e.do(t, c.method, c.path, nil)
		if r.status != c.status || strings.TrimSpace(string(r.body)) != c.body || r.header.Get("Location") != c.where {
			t.Fatalf("%s %s: %d %s (Location %q), want %d %s %q", c.method, c.path, r.status, r.body, r.header.Get("Location"), c.status, c.body, c.where)
		}
	}
	if r := e.do(t, "GET", "/api/v1/openapi.json", nil); r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %s", r.status, r.header)
	}
	if r := e.do(t, "GET", "/api/v1/docs", nil); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(r.body), "Obsqra REST API reference") {
		t.Fatalf("docs: %d %s", r.status, r.header)
	}
	// The original's frontend calls from another origin, with a bearer
	// header, and PUTs preferences: the preflight allows it, and a page
	// may read its budget and Retry-After.
	pre := e.do(t, "OPTIONS", "/api/v1/users/preferences", nil, "Origin", "http://localhost:3000",
		"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "authorization,content-type")
	if pre.status != http.StatusNoContent || !strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "PUT") ||
		pre.header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	if r := e.do(t, "GET", "/api/v1/auth/me", nil, "Origin", "http://localhost:3000", "Authorization", "Bearer "+token); r.status != 200 ||
		!strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("cross-origin GET: %d %v", r.status, r.header)
	}
	// A body over the server's limit: 413 in the API's shape.
	big := `{"tx_hash": "` + strings.Repeat("a", 2<<20) + `"}`
	if r := e.do(t, "POST", "/api/v1/transactions/?token="+token, big); r.status != http.StatusRequestEntityTooLarge ||
		!strings.Contains(string(r.body), `"code":"PAYLOAD_TOO_LARGE"`) || !strings.HasPrefix(string(r.body), `{"detail":`) {
		t.Fatalf("large body: %d %s", r.status, r.body)
	}
}

// TestFrozenDatabase: a database that stops answering costs a request its
// timeout, then a 503 SERVICE_UNAVAILABLE; after the thaw the same server
// answers again and what was acknowledged before is there.
func TestFrozenDatabase(t *testing.T) {
	t.Parallel()
	cluster := storetest.StartCluster(t)
	ctx := context.Background()
	db, err := store.OpenWith(ctx, cluster.URL(), store.Options{StatementTimeout: time.Second, ConnectTimeout: time.Second, MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const timeout, margin = 300 * time.Millisecond, 2 * time.Second
	e := newEnv(t, db, envOptions{timeout: timeout})
	token := e.register(t, "ada@example.com")
	hash := "0x" + strings.Repeat("0", 60) + "beef"
	if r := e.do(t, "POST", "/api/v1/transactions/?token="+token, map[string]any{"tx_hash": hash, "tx_type": "deposit", "amount": 3, "token": "STRK"}); r.status != 200 {
		t.Fatalf("log: %d %s", r.status, r.body)
	}
	cluster.Freeze()
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/auth/me?token=" + token, nil},
		{"POST", "/api/v1/auth/login", map[string]any{"email": "ada@example.com", "password": "c0rrect-Horse-battery"}},
		{"GET", "/api/v1/transactions/?token=" + token, nil},
	} {
		start := time.Now()
		r := e.do(t, c.method, c.path, c.body)
		if took := time.Since(start); took > timeout+margin {
			t.Errorf("%s %s took %v on a frozen database", c.method, c.path, took)
		}
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"code":"SERVICE_UNAVAILABLE"`) {
			t.Errorf("%s %s on a frozen database: %d %s, want 503", c.method, c.path, r.status, r.body)
		}
	}
	cluster.Thaw()
	if r := e.do(t, "GET", "/api/v1/transactions/"+hash+"?token="+token, nil); r.status != 200 {
		t.Fatalf("after the thaw: %d %s", r.status, r.body)
	}
}
