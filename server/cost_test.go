package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// withBudgets gives the server rate limits over a fresh SQLite store: the
// anonymous may spend capacity points a minute, users and admins more.
func withBudgets(t *testing.T, capacity int64) func(*server.Config) {
	db := storetest.SQLite(t)
	// The clock stands still: a budget of 1000 a minute refills a point
	// every 60 ms, so on a slow machine the figures the tests expect
	// moved by one between two requests.
	at := time.Now()
	return withLimiter(ratelimit.New(db, func() time.Time { return at }), capacity)
}

func withLimiter(l server.Limiter, capacity int64) func(*server.Config) {
	return func(c *server.Config) {
		c.RateLimits = &server.RateLimits{
			Limiter:          l,
			Anonymous:        &ratelimit.Policy{Name: "anonymous", Capacity: capacity, Window: time.Minute},
			User:             &ratelimit.Policy{Name: "user", Capacity: 10 * capacity, Window: time.Minute},
			Admin:            &ratelimit.Policy{Name: "admin", Capacity: 100 * capacity, Window: time.Minute},
			MutationCost:     10,
			SubscriptionCost: 5,
		}
	}
}

// post sends body to b's server and returns the response and its body.
func (b *wsBundle) post(t *testing.T, body string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+b.host+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", mediaJSON)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.do(t, req)
}

func (b *wsBundle) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// costOf decodes extensions.cost of a response body.
type costExt struct {
	Requested, Actual, Remaining int64
	Policy                       string
}

func costIn(t *testing.T, body []byte) *costExt {
	t.Helper()
	var res struct {
		Extensions struct {
			Cost *costExt `json:"cost"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return res.Extensions.Cost
}

// Every response reports its cost; the budget admits operations up to its
// capacity and refuses the one past it with 429, Retry-After, the
// RateLimit fields and RATE_LIMITED with retryAfter, without running it.
func TestRateLimitAtTheLimit(t *testing.T) {
	t.Parallel()
	b := setupWS(t, withBudgets(t, 3))
	const query = `{"query":"{ whoami }"}` // 1 field: 1 point
	for i := range 3 {
		resp, body := b.post(t, query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		c := costIn(t, body)
		if c == nil || c.Requested != 1 || c.Actual != 1 || c.Remaining != int64(2-i) || c.Policy != "anonymous" {
			t.Fatalf("request %d: cost %+v, want requested 1, actual 1, remaining %d, policy anonymous", i, c, 2-i)
		}
		if got, want := resp.Header.Get("RateLimit-Policy"), `"anonymous";q=3;w=60`; got != want {
			t.Errorf("RateLimit-Policy = %q, want %q", got, want)
		}
		if got, want := resp.Header.Get("RateLimit"), `"anonymous";r=`+strconv.Itoa(2-i)+`;t=`+strconv.Itoa(20*(i+1)); got != want {
			t.Errorf("RateLimit = %q, want %q", got, want)
		}
	}
	execs := b.schema.execs.Load()
	resp, body := b.post(t, query)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "20" {
		t.Fatalf("one past the limit: %d, Retry-After %q; want 429, 20 (%s)", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	var res gqlResult
	if err := json.Unmarshal(body, &res); err != nil || len(res.Errors) != 1 || res.Data != nil {
		t.Fatalf("one past the limit: %s, want one error and no data", body)
	}
	if e := res.Errors[0]; e.Extensions["code"] != "RATE_LIMITED" || e.Extensions["retryAfter"] != float64(20) {
		t.Errorf("error = %q %v, want RATE_LIMITED with retryAfter 20", e.Message, e.Extensions)
	}
	if n := b.schema.execs.Load(); n != execs {
		t.Errorf("the refused operation ran")
	}
	if resp.Header.Get("RateLimit") != `"anonymous";r=0;t=60` {
		t.Errorf("RateLimit = %q", resp.Header.Get("RateLimit"))
	}

	// A signed-in user spends the user's budget, not the address's.
	resp, body = b.post(t, query, "Authorization", "Bearer "+goodToken)
	if c := costIn(t, body); resp.StatusCode != http.StatusOK || c == nil || c.Policy != "user" || c.Remaining != 29 {
		t.Errorf("signed in: %d cost %+v, want 200 under the user policy with 29 left", resp.StatusCode, c)
	}
}

// A mutation costs its price beyond its fields; the actual cost of a
// query is what it returned, and the rest is refunded.
func TestRateLimitPrices(t *testing.T) {
	t.Parallel()
	b := setupWS(t, withBudgets(t, 1000))
	_, body := b.post(t, `{"query":"mutation { noop }"}`)
	if c := costIn(t, body); c == nil || c.Requested != 11 || c.Actual != 11 {
		t.Errorf("mutation: cost %+v, want 11 (1 field and the price of 10)", c)
	}
	// The test schema answers the first field only: the second is
	// refunded.
	_, body = b.post(t, `{"query":"{ a: whoami b: whoami }"}`)
	if c := costIn(t, body); c == nil || c.Requested != 2 || c.Actual != 1 || c.Remaining != 1000-11-1 {
		t.Errorf("query: cost %+v, want requested 2, actual 1, the other refunded", c)
	}
}

// A batch is charged whole: one that does not fit is refused entirely,
// with one RATE_LIMITED response per operation, and none of it runs.
func TestRateLimitBatch(t *testing.T) {
	t.Parallel()
	// The first batch is charged 3 and refunded 1 (the test schema
	// answers one field of the second operation): 2 points left.
	b := setupWS(t, withBudgets(t, 4))
	resp, body := b.post(t, `[{"query":"{ whoami }"},{"query":"{ a: whoami b: whoami }"}]`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a batch of 3 points: %d %s", resp.StatusCode, body)
	}
	execs := b.schema.execs.Load()
	resp, body = b.post(t, `[{"query":"{ whoami }"},{"query":"{ a: whoami b: whoami }"}]`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a batch of 3 points with 2 left: %d %s, want 429", resp.StatusCode, body)
	}
	var res []gqlResult
	if err := json.Unmarshal(body, &res); err != nil || len(res) != 2 {
		t.Fatalf("refused batch: %s, want 2 responses", body)
	}
	for i, r := range res {
		if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "RATE_LIMITED" {
			t.Errorf("response %d: %+v, want RATE_LIMITED", i, r)
		}
	}
	if b.schema.execs.Load() != execs {
		t.Error("part of the refused batch ran")
	}
	// What fits still runs.
	if resp, body := b.post(t, `{"query":"{ a: whoami b: whoami }"}`); resp.StatusCode != http.StatusOK {
		t.Errorf("2 points with 2 left: %d %s", resp.StatusCode, body)
	}
}

// An anonymous GET by hash, which shared caches may keep, reports no cost
// and no RateLimit fields (it stays the same for every client), but is
// charged all the same.
func TestRateLimitCacheableGET(t *testing.T) {
	t.Parallel()
	// Registering charges 2 and refunds 1 (the test schema answers one
	// field): 1 point left, and the GET costs 2.
	b := setupWS(t, withBudgets(t, 2))
	const query = "{ a: whoami b: whoami }"
	sum := sha256.Sum256([]byte(query))
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hex.EncodeToString(sum[:]) + `"}}`
	// Registered by POST (2 points).
	if resp, body := b.post(t, `{"query":"`+query+`","extensions":`+ext+`}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+b.host+"/graphql?extensions="+url.QueryEscape(ext), nil)
	req.Header.Set("Content-Type", mediaJSON)
	resp, body := b.do(t, req)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("GET by hash with 1 point left: %d %s, want 429", resp.StatusCode, body)
	}
	b2 := setupWS(t, withBudgets(t, 100))
	if resp, body := b2.post(t, `{"query":"`+query+`","extensions":`+ext+`}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+b2.host+"/graphql?extensions="+url.QueryEscape(ext), nil)
	req.Header.Set("Content-Type", mediaJSON)
	resp, body = b2.do(t, req)
	if resp.StatusCode != http.StatusOK || costIn(t, body) != nil || resp.Header.Get("RateLimit") != "" || resp.Header.Get("RateLimit-Policy") != "" {
		t.Errorf("cacheable GET: %d %v %q %s, want 200 with neither cost nor RateLimit fields", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("RateLimit"), body)
	}
	if !strings.HasPrefix(resp.Header.Get("Cache-Control"), "public") {
		t.Errorf("Cache-Control = %q, want public", resp.Header.Get("Cache-Control"))
	}
}

// Over a WebSocket a refused operation gets an error message with
// RATE_LIMITED; over an event stream the refusal comes before the stream.
func TestRateLimitSocketsAndStreams(t *testing.T) {
	t.Parallel()
	b := setupWS(t, withBudgets(t, 6))
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil)
	c.subscribe("1", `subscription { ticks(topic: "priced") }`, nil) // 1 + 5
	b.schema.await(t, "priced")
	c.subscribe("2", `{ whoami }`, nil)
	m := c.read()
	if m.Type != "error" || m.ID != "2" || !strings.Contains(string(m.Payload), `"RATE_LIMITED"`) {
		t.Fatalf("message %+v, want an error with RATE_LIMITED for 2", m)
	}
	resp, _ := b.postStream(t, `subscription { ticks(topic: "priced-2") }`, "text/event-stream")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("stream with no points left: %d, want 429 with Retry-After", resp.StatusCode)
	}
}

// downStore is a shared budget that does not answer.
type downStore struct{}

func (downStore) LeaseBudget(context.Context, store.BudgetLease) (store.BudgetGrant, error) {
	return store.BudgetGrant{}, errors.New("connection refused")
}

// A budget that cannot be read refuses with 503 SERVICE_UNAVAILABLE, and
// the database's error is not shown.
func TestRateLimitStoreDown(t *testing.T) {
	t.Parallel()
	b := setupWS(t, withLimiter(ratelimit.New(downStore{}, nil), 100))
	resp, body := b.post(t, `{"query":"{ whoami }"}`)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "SERVICE_UNAVAILABLE") ||
		strings.Contains(string(body), "connection refused") {
		t.Errorf("store down: %d %s, want 503 SERVICE_UNAVAILABLE without the cause", resp.StatusCode, body)
	}
}
