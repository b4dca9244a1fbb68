package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// cachedInstance is one server process as serve builds it: a hub on its
// own connection pool, and a read cache the hub feeds.
type cachedInstance struct {
	*liveServer
	db    *store.DB
	cache *server.ReadCache
	// dispatched is the highest event id the instance's hub dispatched.
	dispatched atomic.Int64
}

func newCachedInstance(t *testing.T, db *store.DB, maxBytes int64, opts ...func(*server.Config)) *cachedInstance {
	t.Helper()
	gens := obsqra.NewGenerations(db.LastLocalEventID)
	cache := server.NewReadCache(server.ReadCacheOptions{MaxBytes: maxBytes, Fields: resolvers.CacheScopes, Generations: gens})
	opts = append(opts, func(c *server.Config) { c.ReadCache = cache })
	ls := newLiveServerGens(t, db, gens, live.Options{Logger: slog.New(slog.DiscardHandler), Poll: 20 * time.Millisecond}, market.Config{}, opts...)
	in := &cachedInstance{liveServer: ls, db: db, cache: cache}
	ls.hub.OnEvent(func(e *obsqra.Event) {
		for {
			d := in.dispatched.Load()
			if e.ID <= d || in.dispatched.CompareAndSwap(d, e.ID) {
				return
			}
		}
	})
	<-ls.hub.Ready()
	gens.Start()
	return in
}

// waitDispatched waits until the instance's hub has dispatched event id.
func (in *cachedInstance) waitDispatched(t *testing.T, id int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.dispatched.Load() < id {
		if time.Now().After(deadline) {
			t.Fatalf("event %d not dispatched within 10 s (at %d)", id, in.dispatched.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// query runs query as token and returns its data, failing on errors.
func (in *cachedInstance) query(t *testing.T, token, query string) json.RawMessage {
	t.Helper()
	r := do(t, in.srv.Config.Handler, token, query, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%s: %+v", query, r.Errors)
	}
	b, _ := json.Marshal(r.Data)
	return b
}

// cacheShape is a cached query with a write that changes it and what the
// write's effect looks like in its answer.
type cacheShape struct {
	name, query string
	// viewer: the query is the user's (else anonymous).
	viewer bool
	// write makes a change through instance w and returns what the answer
	// must show of it from then on; seen extracts that from an answer.
	write func(t *testing.T, w *cachedInstance, i int) string
	seen  func(t *testing.T, data json.RawMessage) string
}

// TestReadCacheFreshness proves, for every cached shape and on both
// databases, across two instances sharing the database while a third
// writer keeps ingesting, that an answer never reflects less than the
// events its instance had delivered when the request started: a write,
// then a query on the same instance, sees the write (before the hub has
// even dispatched its event), and the other instance sees it once its hub
// dispatched the event, while both answer repeated queries from the cache.
func TestReadCacheFreshness(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newCachedInstance(t, db, 8<<20)
		b := newCachedInstance(t, storetest.Reopen(t, db), 8<<20)
		user := a.newUser(t, "ada@example.com")
		start := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)

		// Writes running on the other instance throughout: ekubo's market
		// moves, and every answer that shows it is stale again and again.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				b.ingest(t, start.Add(time.Duration(i)*time.Second), 300+i%50, "ekubo")
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond):
				}
			}
		})
		defer func() { cancel(); wg.Wait() }()

		var ingested atomic.Int64 // seconds after start of zklend's and nostra's samples
		ingestAt := func(t *testing.T, w *cachedInstance, slug string, apy int) time.Time {
			at := start.Add(time.Duration(ingested.Add(1)) * time.Minute)
			w.ingest(t, at, apy, slug)
			return at
		}
		var txs atomic.Int64
		shapes := []cacheShape{
			{name: "latest", query: `{ protocols { slug name category latestRisk { score observedAt } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					return ingestAt(t, w, "zklend", 400+i).Format(time.RFC3339)
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "protocols", "slug=zklend", "latestRisk", "observedAt")
				}},
			{name: "nested20", query: `{ protocols { slug auditScore riskHistory(first: 20) { edges { node { score observedAt } } } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					return ingestAt(t, w, "zklend", 420+i).Format(time.RFC3339)
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "protocols", "slug=zklend", "riskHistory", "edges", "0", "node", "observedAt")
				}},
			{name: "protocolMetrics", query: `{ protocol(slug: "nostra") { slug ageDays latestMetrics { apyBps observedAt } metricsHistory(first: 5) { edges { cursor node { apyBps } } pageInfo { hasNextPage endCursor } } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					ingestAt(t, w, "nostra", 500+i)
					return strconv.Itoa(500 + i)
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "protocol", "latestMetrics", "apyBps")
				}},
			{name: "protocolRenamed", query: `{ protocols { slug name auditScore enabled } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					name := fmt.Sprintf("Vesu %d", i)
					r := do(t, w.srv.Config.Handler, w.admin, `mutation($in: UpsertProtocolInput!) { upsertProtocol(input: $in) { id } }`,
						map[string]any{"in": map[string]any{"slug": "vesu", "name": name, "category": "LENDING", "auditScore": 80, "launchedOn": "2024-01-01"}})
					if len(r.Errors) > 0 {
						t.Fatalf("upsertProtocol: %+v", r.Errors)
					}
					return name
				},
				seen: func(t *testing.T, d json.RawMessage) string { return pick(t, d, "protocols", "slug=vesu", "name") }},
			{name: "riskParams", query: `{ riskParams { version wAudit } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					r := do(t, w.srv.Config.Handler, w.admin, `mutation($w: Int) { setRiskParams(input: {wAudit: $w}) { version } }`, map[string]any{"w": 1000 + i})
					if len(r.Errors) > 0 {
						t.Fatalf("setRiskParams: %+v", r.Errors)
					}
					return strconv.Itoa(1000 + i)
				},
				seen: func(t *testing.T, d json.RawMessage) string { return pick(t, d, "riskParams", "wAudit") }},
			{name: "dashboard", viewer: true, query: `{ dashboard(windowDays: 7) { id windowDays latestAllocation { id weights { protocol { slug } weightBps } } protocols { protocol { slug } weightBps apyBps } pendingSuggestion { id } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					return recordAllocation(t, w, user.AccessToken, i)
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "dashboard", "latestAllocation", "id")
				}},
			{name: "allocationHistory", viewer: true, query: `{ allocationHistory(first: 20) { edges { cursor node { id reason weights { protocol { slug } weightBps } createdAt } } pageInfo { hasNextPage endCursor } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					return recordAllocation(t, w, user.AccessToken, i)
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "allocationHistory", "edges", "0", "node", "id")
				}},
			{name: "transactions", viewer: true, query: `{ transactions(first: 20) { edges { cursor node { id txHash status createdAt history { status } } } pageInfo { hasNextPage } } }`,
				write: func(t *testing.T, w *cachedInstance, i int) string {
					hash := fmt.Sprintf("0x%064x", 0xabc00+txs.Add(1))
					r := do(t, w.srv.Config.Handler, user.AccessToken, `mutation($h: String!) { logTransaction(input: {txHash: $h, type: DEPOSIT, amount: "2.5", token: "ETH"}) { txHash } }`,
						map[string]any{"h": hash})
					if len(r.Errors) > 0 {
						t.Fatalf("logTransaction: %+v", r.Errors)
					}
					return hash
				},
				seen: func(t *testing.T, d json.RawMessage) string {
					return pick(t, d, "transactions", "edges", "0", "node", "txHash")
				}},
		}
		for _, sh := range shapes {
			t.Run(sh.name, func(t *testing.T) {
				token := ""
				if sh.viewer {
					token = user.AccessToken
				}
				for i := range 3 {
					// Each instance answers again from its cache.
					// (A query right after the instance's own commit, the
					// background writer's on b, is rightly executed: its
					// hub has not dispatched the event yet.)
					for _, in := range []*cachedInstance{a, b} {
						hits := in.cache.Stats().Hits
						for range 50 {
							in.query(t, token, sh.query)
							if in.cache.Stats().Hits > hits {
								break
							}
						}
						if in.cache.Stats().Hits == hits && !moving(sh) {
							t.Errorf("round %d: 50 repeated queries were never answered from the cache", i)
						}
					}
					// The writer's own instance sees the write at once.
					w, other := a, b
					if i%2 == 1 {
						w, other = b, a
					}
					want := sh.write(t, w, i)
					if got := sh.seen(t, w.query(t, token, sh.query)); got != want {
						t.Fatalf("round %d: the writing instance answered %q after the write, want %q", i, got, want)
					}
					// The other one once its hub dispatched the event.
					other.waitDispatched(t, w.db.LastLocalEventID())
					if got := sh.seen(t, other.query(t, token, sh.query)); got != want {
						t.Fatalf("round %d: the other instance answered %q once the event reached it, want %q", i, got, want)
					}
				}
			})
		}
	})
}

// moving reports whether the background writer's events change sh's
// answer (ekubo's market, shown in every protocol list): a repeated
// query may then miss, rightly.
func moving(sh cacheShape) bool { return !sh.viewer && sh.name != "riskParams" }

// recordAllocation records an allocation as token through w and returns
// its id.
func recordAllocation(t *testing.T, w *cachedInstance, token string, i int) string {
	t.Helper()
	r := do(t, w.srv.Config.Handler, token, `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"weights": []map[string]any{{"protocol": "zklend", "weightBps": 5000 + i}, {"protocol": "nostra", "weightBps": 5000 - i}}}})
	if len(r.Errors) > 0 {
		t.Fatalf("recordAllocation: %+v", r.Errors)
	}
	var out struct {
		RecordAllocation struct{ ID string } `json:"recordAllocation"`
	}
	b, _ := json.Marshal(r.Data)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out.RecordAllocation.ID
}

// pick walks a JSON answer: an object member by name, an array element by
// index, or the element of an array whose member k has value v ("k=v").
func pick(t *testing.T, data json.RawMessage, path ...string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			if k, want, ok := cut(p); ok {
				var found any
				for _, e := range x {
					if m, _ := e.(map[string]any); m != nil && fmt.Sprint(m[k]) == want {
						found = e
					}
				}
				v = found
				continue
			}
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(x) {
				t.Fatalf("pick %v in %s: no element %s", path, data, p)
			}
			v = x[n]
		default:
			t.Fatalf("pick %v in %s: %s of %T", path, data, p, v)
		}
	}
	return fmt.Sprint(v)
}

func cut(p string) (k, v string, ok bool) {
	for i := range len(p) {
		if p[i] == '=' {
			return p[:i], p[i+1:], true
		}
	}
	return "", "", false
}

// post sends a raw body as token and returns the status, the header and
// the body.
func (in *cachedInstance) post(t *testing.T, token, body string) (int, http.Header, []byte) {
	t.Helper()
	return in.postFrom(t, "203.0.113.9:4000", token, body)
}

// postFrom is post from the TCP peer peer.
func (in *cachedInstance) postFrom(t *testing.T, peer, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = peer
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	in.srv.Config.Handler.ServeHTTP(rec, req)
	return rec.Code, rec.Header(), rec.Body.Bytes()
}

// TestReadCacheAnswers pins what the read cache keeps and how it answers:
// the same bytes as executing; nothing for fields outside CacheScopes,
// @defer, errors or mutations; one viewer's answer never for another, nor
// for a token that was revoked; its bytes within MaxBytes, answers right
// past it; and a kept answer charged to the budget as executing it is.
func TestReadCacheAnswers(t *testing.T) {
	db := storetest.SQLite(t)
	in := newCachedInstance(t, db, 64<<10, withReadBudget(ratelimit.New(db, nil), 100))
	in.ingest(t, time.Now().UTC().Add(-time.Hour).Truncate(time.Second), 410, slugs...)
	in.waitDispatched(t, db.LastLocalEventID())
	body := func(q string) string { b, _ := json.Marshal(map[string]any{"query": q}); return string(b) }
	stores := func() int64 { return in.cache.Stats().Stores }

	t.Run("same bytes, cost charged again", func(t *testing.T) {
		q := body(`{ protocols { slug name latestRisk { score } } }`)
		const peer = "192.0.2.10:5000"
		_, h1, b1 := in.postFrom(t, peer, "", q)
		_, h2, b2 := in.postFrom(t, peer, "", q)
		if in.cache.Stats().Hits == 0 {
			t.Fatal("the repeated query was not answered from the cache")
		}
		strip := func(b []byte) (string, float64) {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			cost := v["extensions"].(map[string]any)["cost"].(map[string]any)
			r := cost["remaining"].(float64)
			delete(cost, "remaining")
			out, _ := json.Marshal(v)
			return string(out), r
		}
		s1, r1 := strip(b1)
		s2, r2 := strip(b2)
		if s1 != s2 {
			t.Errorf("kept answer %s, executed %s", s2, s1)
		}
		if r2 >= r1 {
			t.Errorf("remaining %v after the kept answer, %v before: it was not charged", r2, r1)
		}
		if h1.Get("RateLimit") == "" || h2.Get("RateLimit") == "" || h1.Get("Content-Type") != h2.Get("Content-Type") {
			t.Errorf("headers executed %v, kept %v", h1, h2)
		}
		// The budget runs out on kept answers as on executed ones.
		var status int
		var hdr http.Header
		for range 100 {
			if status, hdr, _ = in.postFrom(t, peer, "", q); status == http.StatusTooManyRequests {
				break
			}
		}
		if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Fatalf("status %d after the budget: want 429 with Retry-After", status)
		}
	})

	user := in.newUser(t, "ada@example.com")
	bob := in.newUser(t, "bob@example.com")
	recordAllocation(t, in, user.AccessToken, 0)
	recordAllocation(t, in, bob.AccessToken, 1)
	in.waitDispatched(t, db.LastLocalEventID())

	t.Run("not kept", func(t *testing.T) {
		for _, q := range []string{
			`{ protocols { slug latestMetrics { stale } } }`,
			`{ me { email } }`,
			`{ protocols { riskHistory(first: 1000) { edges { cursor } } } }`,
			`{ dashboard { id } }`, // anonymous: an error
		} {
			n := stores()
			token := user.AccessToken
			if q == `{ dashboard { id } }` {
				token = ""
			}
			in.post(t, token, body(q))
			if stores() != n {
				t.Errorf("%s was kept", q)
			}
		}
	})

	t.Run("one viewer's answer is theirs", func(t *testing.T) {
		q := body(`{ dashboard(windowDays: 7) { id latestAllocation { id } } }`)
		_, _, ada1 := in.post(t, user.AccessToken, q)
		_, _, ada2 := in.post(t, user.AccessToken, q)
		_, _, bob1 := in.post(t, bob.AccessToken, q)
		_, _, anon := in.post(t, "", q)
		if !bytes.Equal(data(t, ada1), data(t, ada2)) || bytes.Equal(data(t, ada1), data(t, bob1)) {
			t.Errorf("ada %s then %s, bob %s", ada1, ada2, bob1)
		}
		if !bytes.Contains(anon, []byte("UNAUTHENTICATED")) {
			t.Errorf("anonymous dashboard: %s", anon)
		}
		// Signed out everywhere: the kept answer is not the token's any
		// more.
		r := do(t, in.srv.Config.Handler, user.AccessToken, `mutation { logout(everywhere: true) }`, nil)
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		if _, _, b := in.post(t, user.AccessToken, q); !bytes.Contains(b, []byte("UNAUTHENTICATED")) {
			t.Errorf("dashboard with a revoked token: %s", b)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		for i := range 200 {
			q := body(fmt.Sprintf(`{ a%d: protocols { slug name chain category auditScore launchedOn enabled } }`, i))
			_, _, b := in.post(t, bob.AccessToken, q)
			if !bytes.Contains(b, []byte(`"slug":"zklend"`)) {
				t.Fatalf("answer %d: %s", i, b)
			}
			if st := in.cache.Stats(); st.Bytes > 64<<10 {
				t.Fatalf("after %d distinct queries the cache holds %d bytes, more than 64 KiB", i, st.Bytes)
			}
		}
		if st := in.cache.Stats(); st.Evictions == 0 {
			t.Errorf("200 distinct answers fit in 64 KiB without evictions: %+v", st)
		}
		// An answer larger than an eighth of the cache is served, not kept.
		n := stores()
		var large strings.Builder
		large.WriteString("{")
		for i := range 20 {
			fmt.Fprintf(&large, " b%d: protocols { id slug name chain category auditScore launchedOn enabled contractAddress }", i)
		}
		large.WriteString(" }")
		q := body(large.String())
		if _, _, b := in.post(t, bob.AccessToken, q); bytes.Contains(b, []byte(`"errors"`)) {
			t.Fatalf("large answer: %s", b)
		}
		if stores() != n {
			t.Error("an answer over an eighth of MaxBytes was kept")
		}
	})
}

// withReadBudget gives the server rate limits: capacity points a minute
// for the anonymous, ten times that for users.
func withReadBudget(l server.Limiter, capacity int64) func(*server.Config) {
	return func(c *server.Config) {
		c.RateLimits = &server.RateLimits{
			Limiter:   l,
			Anonymous: &ratelimit.Policy{Name: "anonymous", Capacity: capacity, Window: time.Minute},
			User:      &ratelimit.Policy{Name: "user", Capacity: 100 * capacity, Window: time.Minute},
			Admin:     &ratelimit.Policy{Name: "admin", Capacity: 1000 * capacity, Window: time.Minute},
		}
	}
}

// data returns the data member of a response body.
func data(t *testing.T, body []byte) []byte {
	t.Helper()
	var v struct{ Data json.RawMessage }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return v.Data
}

// TestCacheScopesNameSchemaFields keeps CacheScopes in step with the
// schema: a coordinate that names no field would silently leave its
// documents uncached, or cache a renamed field's successor unreviewed.
func TestCacheScopesNameSchemaFields(t *testing.T) {
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{}).Schema()
	for coord, scope := range resolvers.CacheScopes {
		typ, field, ok := strings.Cut(coord, ".")
		def := schema.Types[typ]
		switch {
		case !ok || def == nil:
			t.Errorf("%s: no type %q", coord, typ)
		case field != "*" && def.Fields.ForName(field) == nil:
			t.Errorf("%s: %s has no field %q", coord, typ, field)
		case scope == obsqra.CacheNever:
			t.Errorf("%s: listed as never cached (leave it out instead)", coord)
		}
	}
}

// TestSessionsFollowEvents: with the hub's generations, authentication
// keeps each session and its user instead of reading them for every
// request, and still sees every change at once on the instance that made
// it and on another once its hub dispatched the change's event: a
// preference (any change of the user's row), then signing out everywhere.
func TestSessionsFollowEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newCachedInstance(t, db, 1<<20)
		b := newCachedInstance(t, storetest.Reopen(t, db), 1<<20)
		user := a.newUser(t, "ada@example.com")
		a.waitDispatched(t, db.LastLocalEventID())
		b.waitDispatched(t, db.LastLocalEventID())
		const me = `{ me { email preferences { rebalanceThresholdBps } } }`
		// (The hub's own reads count too: a few statements, not one per
		// request.)
		for _, in := range []*cachedInstance{a, b} {
			in.query(t, user.AccessToken, me)
			before := in.db.Statements()
			for range 20 {
				in.query(t, user.AccessToken, me)
			}
			if n := in.db.Statements() - before; n >= 10 {
				t.Errorf("20 signed-in requests with their session kept ran %d statements", n)
			}
		}
		t.Run("a change of the user's row", func(t *testing.T) {
			r := do(t, a.srv.Config.Handler, user.AccessToken, `mutation { updatePreferences(input: {rebalanceThresholdBps: 321}) { id } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
			if got := pick(t, a.query(t, user.AccessToken, me), "me", "preferences", "rebalanceThresholdBps"); got != "321" {
				t.Errorf("the writing instance shows threshold %s, want 321", got)
			}
			b.waitDispatched(t, db.LastLocalEventID())
			if got := pick(t, b.query(t, user.AccessToken, me), "me", "preferences", "rebalanceThresholdBps"); got != "321" {
				t.Errorf("the other instance shows threshold %s once the event reached it, want 321", got)
			}
		})
		t.Run("signed out everywhere", func(t *testing.T) {
			r := do(t, a.srv.Config.Handler, user.AccessToken, `mutation { logout(everywhere: true) }`, nil)
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
			if r := do(t, a.srv.Config.Handler, user.AccessToken, me, nil); r.code() != "UNAUTHENTICATED" {
				t.Errorf("the writing instance, right after: %+v, want UNAUTHENTICATED", r)
			}
			b.waitDispatched(t, db.LastLocalEventID())
			if r := do(t, b.srv.Config.Handler, user.AccessToken, me, nil); r.code() != "UNAUTHENTICATED" {
				t.Errorf("the other instance once the event reached it: %+v, want UNAUTHENTICATED", r)
			}
		})
	})
}
