package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// liveServer is the real HTTP server with a running hub, as serve builds it.
type liveServer struct {
	srv      *httptest.Server
	admin    string
	server   *server.Server
	hub      *live.Hub
	accounts *account.Service
	stopHub  context.CancelFunc
	// users counts the users newUser made.
	users   int
	markets *market.Service
	advice  *advisor.Service
	// outbox counts the hub's reads of the outbox.
	outbox *countingOutbox
}

func newLiveServer(t *testing.T, db *store.DB, opts ...func(*live.Options)) *liveServer {
	t.Helper()
	hubOpts := live.Options{Logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&hubOpts)
	}
	return newLiveServerWith(t, db, hubOpts, market.Config{})
}

// newLiveServerWith is newLiveServer with the hub's options, the market
// service's configuration, and options of the server's.
func newLiveServerWith(t *testing.T, db *store.DB, hubOpts live.Options, marketCfg market.Config, serverOpts ...func(*server.Config)) *liveServer {
	t.Helper()
	return newLiveServerGens(t, db, nil, hubOpts, marketCfg, serverOpts...)
}

// newLiveServerGens is newLiveServerWith whose accounts keep sessions
// following gens (nil: none), which the hub feeds.
func newLiveServerGens(t *testing.T, db *store.DB, gens *obsqra.Generations, hubOpts live.Options, marketCfg market.Config, serverOpts ...func(*server.Config)) *liveServer {
	t.Helper()
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: time.Hour, BcryptCost: 4, AdminEmails: []string{"admin@example.com"},
		Generations: gens})
	if err != nil {
		t.Fatal(err)
	}
	decisions := newDecisions(t, db, nil)
	markets, err := market.New(db, decisions, marketCfg)
	if err != nil {
		t.Fatal(err)
	}
	outbox := &countingOutbox{DB: db}
	hub := live.NewHub(outbox, hubOpts)
	if gens != nil {
		hub.OnEvent(gens.Observe)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hub.Run(ctx); close(done) }()
	// As the server does before it serves: an event committed before the
	// hub has its starting position would never be dispatched.
	<-hub.Ready()
	advice, err := advisor.New(db, markets, decisions, advisor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Live: resolvers.HubFunc[*live.Subscription](hub.Subscribe),
		Advisor: advice, Portfolio: portfolio.New(db, portfolio.Config{}), Ledger: ledger.New(db, nil, ledger.Config{})})
	scfg := server.Config{Introspection: true, Logger: slog.New(slog.DiscardHandler)}
	for _, o := range serverOpts {
		o(&scfg)
	}
	api := server.New(scfg, schema, accounts, db)
	hub.OnEvent(api.Observe)
	h := api.Handler()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		<-done
	})
	return &liveServer{srv: srv, hub: hub, admin: adminToken(t, h), server: api, stopHub: cancel,
		accounts: accounts, markets: markets, advice: advice, outbox: outbox}
}

// adminToken registers admin@example.com through h, or signs it in when
// another server on the same database registered it first.
func adminToken(t *testing.T, h http.Handler) string {
	t.Helper()
	r := do(t, h, "", `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken } } }`,
		map[string]any{"in": map[string]any{"email": "admin@example.com", "password": "correct horse", "fullName": "Ada"}})
	if r.code() == "CONFLICT" {
		r = do(t, h, "", `mutation { login(input: {email: "admin@example.com", password: "correct horse"}) { accessToken } }`, nil)
	}
	if len(r.Errors) > 0 {
		t.Fatalf("admin sign-up: %+v", r.Errors)
	}
	var out struct {
		Register struct{ Auth struct{ AccessToken string } }
		Login    struct{ AccessToken string }
	}
	b, _ := json.Marshal(r.Data)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if tok := out.Register.Auth.AccessToken + out.Login.AccessToken; tok != "" {
		return tok
	}
	t.Fatalf("admin sign-up: no token in %s", b)
	return ""
}

// countingOutbox is the outbox as the hub reads it, counting the
// statements of its reads. A test may have each check of a cursor call
// beforeCheck first.
type countingOutbox struct {
	*store.DB
	reads       atomic.Int64
	beforeCheck atomic.Pointer[func(ctx context.Context)]
}

func (o *countingOutbox) EventsAfter(ctx context.Context, afterID int64, limit int) ([]obsqra.Event, error) {
	o.reads.Add(1)
	return o.DB.EventsAfter(ctx, afterID, limit)
}

func (o *countingOutbox) LastEventID(ctx context.Context) (int64, error) {
	o.reads.Add(1)
	return o.DB.LastEventID(ctx)
}

func (o *countingOutbox) CheckEventCursor(ctx context.Context, afterID int64) error {
	if f := o.beforeCheck.Load(); f != nil {
		(*f)(ctx)
	}
	o.reads.Add(1)
	return o.DB.CheckEventCursor(ctx, afterID)
}

// ingest pushes one sample per slug, observed at, through ingestMetrics.
func (s *liveServer) ingest(t *testing.T, at time.Time, apy int, slugs ...string) {
	t.Helper()
	var in []map[string]any
	for _, slug := range slugs {
		in = append(in, map[string]any{"protocol": slug, "observedAt": at.Format(time.RFC3339), "apyBps": apy, "utilizationBps": 5000})
	}
	r := do(t, s.srv.Config.Handler, s.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		t.Fatalf("ingestMetrics: %+v", r.Errors)
	}
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// subscriber is a graphql-transport-ws client with one subscription.
type subscriber struct{ *wsClient }

func (s *liveServer) subscribe(t *testing.T, query string, vars map[string]any) *subscriber {
	t.Helper()
	return s.subscribeAs(t, "", query, vars)
}

// subscribeAs subscribes with the access token in connection_init ("" for
// an anonymous subscriber).
func (s *liveServer) subscribeAs(t *testing.T, token, query string, vars map[string]any) *subscriber {
	t.Helper()
	c := s.dialWS(t, "graphql-transport-ws", token)
	c.start("1", query, vars)
	return &subscriber{c}
}

type riskEvent struct {
	Cursor    string `json:"cursor"`
	RiskScore struct {
		Score      int    `json:"score"`
		ObservedAt string `json:"observedAt"`
		DecisionID string `json:"decisionId"`
		Protocol   struct {
			Slug string `json:"slug"`
		} `json:"protocol"`
	} `json:"riskScore"`
}

// next returns the next riskScoreUpdated event.
func (c *subscriber) next() riskEvent {
	c.t.Helper()
	m := c.read()
	if m.Type != "next" {
		c.t.Fatalf("got %s %s, want next", m.Type, m.Payload)
	}
	var r struct {
		Data struct {
			RiskScoreUpdated riskEvent `json:"riskScoreUpdated"`
		} `json:"data"`
		Errors []any `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &r); err != nil || len(r.Errors) > 0 {
		c.t.Fatalf("next payload %s: %v", m.Payload, err)
	}
	return r.Data.RiskScoreUpdated
}

const riskSubscription = `subscription($p: [String!], $after: String) { riskScoreUpdated(protocols: $p, after: $after) {
	cursor riskScore { score observedAt decisionId protocol { slug } } } }`

// TestRiskScoreUpdated subscribes through the real server, receives the
// scores of the protocols asked for and only those, disconnects, misses
// events, and resumes from its last cursor: the missed events arrive
// exactly once, in order, as they were then, and live ones follow. A
// refused batch (rolled back) emits nothing.
func TestRiskScoreUpdated(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		// Subscribing after the cursor of event 0 replays everything kept
		// and then goes on live, so no event can slip past while the
		// subscription starts.
		c := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"nostra", "vesu"}, "after": obsqra.EventCursor(0)})
		s.ingest(t, base, 400, "nostra")
		first := c.next()
		if first.RiskScore.Protocol.Slug != "nostra" || first.Cursor == "" || first.RiskScore.DecisionID == "" {
			t.Fatalf("first event = %+v", first)
		}
		// Other protocols' scores are not delivered; asked-for ones are.
		at := base.Add(10 * time.Minute)
		s.ingest(t, at, 410, "zklend", "ekubo", "vesu")
		if e := c.next(); e.RiskScore.Protocol.Slug != "vesu" {
			t.Fatalf("next event = %+v, want vesu's", e)
		}
		// A refused batch commits nothing and so emits nothing.
		r := do(t, s.srv.Config.Handler, s.admin, `mutation { ingestMetrics(input: [{protocol: "nostra", observedAt: "2026-01-01T00:00:00Z", apyBps: 1},
			{protocol: "nostra", observedAt: "2026-01-01T00:00:01Z", apyBps: 1, utilizationBps: 10001}]) { id } }`, nil)
		if r.code() != "BAD_USER_INPUT" {
			t.Fatalf("bad batch: %+v", r.Errors)
		}
		// Disconnect; three events happen meanwhile.
		s.ingest(t, at.Add(time.Second), 420, "nostra")
		e := c.next()
		cursor := e.Cursor
		c.conn.Close()
		for i := range 3 {
			s.ingest(t, at.Add(time.Duration(2+i)*time.Second), 430+i, "nostra", "vesu", "zklend")
		}
		// Resume: the six missed nostra/vesu events, in order, then live.
		c = s.subscribe(t, riskSubscription, map[string]any{"p": []string{"nostra", "vesu"}, "after": cursor})
		var got []string
		for range 6 {
			e := c.next()
			got = append(got, e.RiskScore.Protocol.Slug+"@"+e.RiskScore.ObservedAt)
		}
		var want []string
		for i := range 3 {
			ts := at.Add(time.Duration(2+i) * time.Second).Format(time.RFC3339)
			want = append(want, "nostra@"+ts, "vesu@"+ts)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replayed %v, want %v", got, want)
		}
		s.ingest(t, at.Add(time.Minute), 500, "vesu")
		if e := c.next(); e.RiskScore.Protocol.Slug != "vesu" || e.RiskScore.ObservedAt != at.Add(time.Minute).Format(time.RFC3339) {
			t.Errorf("live event after the replay = %+v", e)
		}

		// A bad cursor is refused with BAD_USER_INPUT, and the operation
		// completes.
		bad := s.subscribe(t, riskSubscription, map[string]any{"after": "not-a-cursor"})
		if m := bad.read(); m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"BAD_USER_INPUT"`) {
			t.Errorf("subscribe with a bad cursor = %s %s, want errors with BAD_USER_INPUT", m.Type, m.Payload)
		}
		if m := bad.read(); m.Type != "complete" {
			t.Errorf("after the refusal got %s, want complete", m.Type)
		}
	})
}

// TestUnknownSlugSelectsNothing: events are routed by protocol id, which
// the resolver finds for each slug; a slug that names no protocol selects
// no event, and does not widen the subscription to every protocol.
func TestUnknownSlugSelectsNothing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		none := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"no-such-protocol"}, "after": obsqra.EventCursor(0)})
		some := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"no-such-protocol", "vesu"}, "after": obsqra.EventCursor(0)})
		s.ingest(t, time.Now().UTC().Add(-time.Hour).Truncate(time.Second), 400, "nostra", "vesu")
		if e := some.next(); e.RiskScore.Protocol.Slug != "vesu" {
			t.Errorf("event = %+v, want vesu's", e)
		}
		// The hub queued both events for every subscription at once.
		none.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, m, err := none.conn.ReadMessage(); err == nil {
			t.Errorf("a subscription to an unknown slug received %s", m)
		}
	})
}

// TestMetricsUpdated: a metrics subscription gets each sample of the
// protocols asked for, as it was stored, with its derived values.
func TestMetricsUpdated(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		c := s.subscribe(t, `subscription($after: String) { metricsUpdated(protocols: ["ekubo"], after: $after) {
			cursor metrics { apyBps tvlUsd utilizationBps liquidityTier source stale protocol { slug } } } }`,
			map[string]any{"after": obsqra.EventCursor(0)})
		at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		r := do(t, s.srv.Config.Handler, s.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": []any{
			map[string]any{"protocol": "nostra", "observedAt": at.Format(time.RFC3339), "apyBps": 1},
			map[string]any{"protocol": "ekubo", "observedAt": at.Format(time.RFC3339), "apyBps": 1234, "tvlUsd": "123456789012345678901234567890.25"},
		}})
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		// Events 1 and 2 are nostra's sample and score, 3 and 4 ekubo's.
		m := c.read()
		if m.Type != "next" {
			t.Errorf("got %s %s, want next", m.Type, m.Payload)
		}
		// The cursor's encoding is not this test's business: the golden file
		// names the event it must be.
		payload := bytes.ReplaceAll(m.Payload, []byte(`"`+obsqra.EventCursor(3)+`"`), []byte(`"EventCursor(3)"`))
		obsqratest.GoldenJSON(t, "metrics_updated", payload)
	})
}

// TestSlowSubscriberIsEnded: a subscriber whose buffer overflows is ended
// with RATE_LIMITED naming the cursor to resume from, and resuming from it
// delivers the rest, none twice.
func TestSlowSubscriberIsEnded(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db, func(o *live.Options) { o.Buffer = 1 })
		c := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"vesu"}, "after": obsqra.EventCursor(0)})
		// 200 scores in one commit reach the hub at once: far more than a
		// buffer of one while the subscriber's stream is still encoding.
		at := time.Now().UTC().Add(-10 * time.Hour).Truncate(time.Second)
		var in []map[string]any
		for i := range 200 {
			in = append(in, map[string]any{"protocol": "vesu", "observedAt": at.Add(time.Duration(i) * time.Second).Format(time.RFC3339), "apyBps": 400 + i%9})
		}
		if r := do(t, s.srv.Config.Handler, s.admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": in}); len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		seen := map[string]bool{}
		var lastCursor string
		var ended wsMessage
		for {
			m := c.read()
			if m.Type != "next" {
				ended = m
				break
			}
			var r struct {
				Data struct {
					RiskScoreUpdated riskEvent `json:"riskScoreUpdated"`
				} `json:"data"`
			}
			json.Unmarshal(m.Payload, &r)
			seen[r.Data.RiskScoreUpdated.RiskScore.ObservedAt] = true
			lastCursor = r.Data.RiskScoreUpdated.Cursor
		}
		if ended.Type != "error" || !strings.Contains(string(ended.Payload), `"code":"RATE_LIMITED"`) {
			t.Fatalf("the stream ended with %s %s, want an error RATE_LIMITED", ended.Type, ended.Payload)
		}
		if len(seen) == 200 {
			t.Skip("the subscriber kept up with a buffer of one; nothing to resume")
		}
		if lastCursor != "" && !strings.Contains(string(ended.Payload), lastCursor) {
			t.Errorf("the error %s does not name the last cursor %s", ended.Payload, lastCursor)
		}
		resumeFrom := lastCursor
		if resumeFrom == "" {
			resumeFrom = obsqra.EventCursor(0)
		}
		// Resuming (with room to keep up this time) delivers the rest.
		r := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"vesu"}, "after": resumeFrom})
		for len(seen) < 200 {
			e := r.next()
			if seen[e.RiskScore.ObservedAt] {
				t.Fatalf("event at %s delivered twice", e.RiskScore.ObservedAt)
			}
			seen[e.RiskScore.ObservedAt] = true
		}
	})
}

// TestSameCursorIsNotShared: two subscribers resuming from the same cursor
// each get the whole replay; the second does not join the first's stream
// halfway.
func TestSameCursorIsNotShared(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		for i := range 3 {
			s.ingest(t, at.Add(time.Duration(i)*time.Second), 400+i, "vesu")
		}
		vars := map[string]any{"p": []string{"vesu"}, "after": obsqra.EventCursor(0)}
		c1 := s.subscribe(t, riskSubscription, vars)
		if e := c1.next(); e.RiskScore.ObservedAt != at.Format(time.RFC3339) {
			t.Fatalf("first subscriber's first event = %+v", e)
		}
		c2 := s.subscribe(t, riskSubscription, vars)
		for i := range 3 {
			if e := c2.next(); e.RiskScore.ObservedAt != at.Add(time.Duration(i)*time.Second).Format(time.RFC3339) {
				t.Fatalf("second subscriber's event %d = %+v, want the whole replay", i, e)
			}
		}
	})
}

// TestShutdownSaysNoComplete: when the server goes away its subscriptions
// end without a complete message (a client takes complete as final and
// would not resubscribe after reconnecting); the socket's 1001 says it all.
func TestShutdownSaysNoComplete(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		c := s.subscribe(t, riskSubscription, nil)
		// The subscription runs once a score reaches it.
		for i := 0; ; i++ {
			s.ingest(t, time.Now().UTC().Add(-time.Hour+time.Duration(i)*time.Second).Truncate(time.Second), 400, "zklend")
			c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			var m wsMessage
			if err := c.conn.ReadJSON(&m); err == nil && m.Type == "next" {
				break
			} else if err != nil && i > 20 {
				t.Fatalf("no event: %v", err)
			} else if err != nil {
				c = s.subscribe(t, riskSubscription, nil) // the deadline broke the connection
			}
		}
		s.server.SetShuttingDown()
		s.stopHub() // the hub stops: every subscription's stream ends
		c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		var m wsMessage
		if err := c.conn.ReadJSON(&m); err == nil {
			t.Errorf("after the hub stopped on shutdown the client got %s %s, want nothing", m.Type, m.Payload)
		}
	})
}

// history imports a daily sample of each seeded protocol for each of the
// days before now, enough for forecasts and plans, and returns now.
func (s *liveServer) history(t *testing.T, days int) time.Time {
	t.Helper()
	now := time.Now().UTC()
	var in []obsqra.MetricsInput
	for d := days; d >= 1; d-- {
		for i, slug := range []string{"nostra", "zklend", "vesu", "ekubo", "jediswap"} {
			in = append(in, obsqra.MetricsInput{Protocol: slug, ObservedAt: now.Add(-time.Duration(d) * 24 * time.Hour),
				ApyBps: 300 + 50*i + d%5, UtilizationBps: 1000 + 1500*i})
		}
	}
	if _, err := s.markets.Ingest(context.Background(), obsqra.SourceImport, in); err != nil {
		t.Fatal(err)
	}
	return now
}

// nextData returns the data of the next message, which must be a next
// without errors.
func (c *subscriber) nextData(field string) json.RawMessage {
	c.t.Helper()
	m := c.read()
	var r struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []any                      `json:"errors"`
	}
	if m.Type != "next" || json.Unmarshal(m.Payload, &r) != nil || len(r.Errors) > 0 {
		c.t.Fatalf("got %s %s, want next with %s", m.Type, m.Payload, field)
	}
	return r.Data[field]
}

// TestPersonalSubscriptions: allocationRecorded and predictionCreated
// deliver a user's own events and the public ones, never another user's.
func TestPersonalSubscriptions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		s.history(t, 40)
		ada := registerVia(t, h, "ada@example.com").AccessToken
		bob := registerVia(t, h, "bob@example.com").AccessToken
		start := map[string]any{"after": obsqra.EventCursor(0)}
		const allocSub = `subscription($after: String) { allocationRecorded(after: $after) { cursor allocation { id reason weights { protocol { slug } weightBps } } } }`
		adaAlloc := s.subscribeAs(t, ada, allocSub, start)
		bobAlloc := s.subscribeAs(t, bob, allocSub, start)
		const predSub = `subscription($k: [PredictionKind!], $after: String) { predictionCreated(kinds: $k, after: $after) { cursor prediction { id kind protocol { slug } } } }`
		adaPred := s.subscribeAs(t, ada, predSub, map[string]any{"k": []string{"REBALANCE_SUGGESTION"}, "after": obsqra.EventCursor(0)})
		anonPred := s.subscribeAs(t, "", predSub, map[string]any{"after": obsqra.EventCursor(0)})

		anon := s.subscribe(t, allocSub, nil)
		if m := anon.read(); m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"UNAUTHENTICATED"`) {
			t.Fatalf("anonymous allocationRecorded = %s %s", m.Type, m.Payload)
		}

		record := func(token, slug, reason string) string {
			r := do(t, h, token, `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"reason": reason, "weights": []map[string]any{{"protocol": slug, "weightBps": 10000}}}})
			if len(r.Errors) > 0 {
				t.Fatalf("recordAllocation: %+v", r.Errors)
			}
			return decode[struct{ ID string }](t, r.Data["recordAllocation"]).ID
		}
		adaID := record(ada, "zklend", "USER_INITIATED")
		bobID := record(bob, "vesu", "AUTO_REBALANCE")
		type allocEvent struct {
			Cursor     string
			Allocation struct{ ID, Reason string }
		}
		if e := decode[allocEvent](t, adaAlloc.nextData("allocationRecorded")); e.Allocation.ID != adaID || e.Cursor == "" {
			t.Fatalf("ada's first allocation event = %+v, want %s", e, adaID)
		}
		// Bob's first event is his own: Ada's, published before, passed him by.
		if e := decode[allocEvent](t, bobAlloc.nextData("allocationRecorded")); e.Allocation.ID != bobID || e.Allocation.Reason != "AUTO_REBALANCE" {
			t.Fatalf("bob's first allocation event = %+v, want %s", e, bobID)
		}

		r := do(t, h, ada, `mutation { runOptimization { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("runOptimization: %+v", r.Errors)
		}
		runID := predictionOfRun(t, decode[struct{ ID string }](t, r.Data["runOptimization"]).ID)
		type predEvent struct {
			Prediction struct {
				ID, Kind string
				Protocol *struct{ Slug string }
			}
		}
		if e := decode[predEvent](t, adaPred.nextData("predictionCreated")); e.Prediction.ID != runID || e.Prediction.Kind != "REBALANCE_SUGGESTION" || e.Prediction.Protocol != nil {
			t.Fatalf("ada's prediction event = %+v, want her run %s", e, runID)
		}
		if n, err := s.advice.RefreshForecasts(context.Background()); err != nil || n != 10 {
			t.Fatalf("RefreshForecasts = %d, %v", n, err)
		}
		// The anonymous subscriber's first event is a market forecast: Ada's
		// suggestion, published before, is not theirs to see.
		if e := decode[predEvent](t, anonPred.nextData("predictionCreated")); e.Prediction.Kind != "YIELD_FORECAST" || e.Prediction.Protocol == nil {
			t.Fatalf("anonymous prediction event = %+v, want a market forecast", e)
		}
	})
}

// TestOwnStreamsAreNotPublic: a signed-in subscriber asking, without a
// cursor, the same as an anonymous one gets their own events too: the
// anonymous stream is not shared with them.
func TestOwnStreamsAreNotPublic(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		now := s.history(t, 40)
		ada := registerVia(t, h, "ada@example.com").AccessToken
		const doc = `subscription { predictionCreated(kinds: [YIELD_FORECAST, REBALANCE_SUGGESTION]) { prediction { id kind } } }`
		type predEvent struct{ Prediction struct{ ID, Kind string } }
		// live waits until c receives a market forecast: its stream runs.
		apy := 400
		live := func(c *subscriber) {
			t.Helper()
			apy++
			s.ingest(t, now.Add(-time.Duration(1000-apy)*time.Second), apy, "zklend")
			if _, err := s.advice.RefreshForecasts(context.Background()); err != nil {
				t.Fatal(err)
			}
			if e := decode[predEvent](t, c.nextData("predictionCreated")); e.Prediction.Kind != "YIELD_FORECAST" {
				t.Fatalf("first event = %+v, want a yield forecast", e)
			}
		}
		anon := s.subscribeAs(t, "", doc, nil)
		live(anon)
		mine := s.subscribeAs(t, ada, doc, nil)
		// Without a cursor the subscription hears only what is committed
		// once it runs: wait for its own (signed-in) stream beside the
		// anonymous one before committing.
		s.awaitSubscriptions(t, 2)
		live(mine)
		r := do(t, h, ada, `mutation { runOptimization { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("runOptimization: %+v", r.Errors)
		}
		runID := predictionOfRun(t, decode[struct{ ID string }](t, r.Data["runOptimization"]).ID)
		if e := decode[predEvent](t, mine.nextData("predictionCreated")); e.Prediction.ID != runID {
			t.Fatalf("ada's next event = %+v, want her run %s", e, runID)
		}
	})
}

// TestTransactionUpdated: a user's transaction events reach them, and no
// one else.
func TestTransactionUpdated(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		ada := registerVia(t, h, "ada@example.com").AccessToken
		bob := registerVia(t, h, "bob@example.com").AccessToken
		const sub = `subscription($after: String) { transactionUpdated(after: $after) { cursor transaction { txHash status type } } }`
		start := map[string]any{"after": obsqra.EventCursor(0)}
		adaSub := s.subscribeAs(t, ada, sub, start)
		bobSub := s.subscribeAs(t, bob, sub, start)
		logTransaction := func(token, hash string) {
			r := do(t, h, token, `mutation($in: LogTransactionInput!) { logTransaction(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"txHash": hash, "type": "DEPOSIT", "amount": "2.5", "token": "ETH"}})
			if len(r.Errors) > 0 {
				t.Fatalf("logTransaction: %+v", r.Errors)
			}
		}
		logTransaction(ada, "0xaaa")
		logTransaction(bob, "0xbbb")
		type txEvent struct {
			Cursor      string
			Transaction struct{ TxHash, Status, Type string }
		}
		if e := decode[txEvent](t, adaSub.nextData("transactionUpdated")); !strings.HasSuffix(e.Transaction.TxHash, "aaa") || e.Transaction.Status != "PENDING" || e.Cursor == "" {
			t.Fatalf("ada's event = %+v", e)
		}
		// Bob's first event is his own: Ada's, published before, passed him by.
		if e := decode[txEvent](t, bobSub.nextData("transactionUpdated")); !strings.HasSuffix(e.Transaction.TxHash, "bbb") {
			t.Fatalf("bob's first event = %+v, want his own", e)
		}
		anon := s.subscribe(t, sub, nil)
		if m := anon.read(); m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"UNAUTHENTICATED"`) {
			t.Fatalf("anonymous transactionUpdated = %s %s", m.Type, m.Payload)
		}
	})
}

// TestDashboardUpdated: the dashboard first as it is, then again when the
// user's allocation or the market of what they hold changes.
func TestDashboardUpdated(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		ada := registerVia(t, h, "ada@example.com").AccessToken
		type dash struct {
			ID               string
			LatestAllocation *struct{ ID string }
			Protocols        []struct {
				Protocol struct{ Slug string }
				ApyBps   *int
			}
		}
		// Every event is the same object as the dashboard query's, so a
		// client cache updates it in place.
		dashID := decode[dash](t, do(t, h, ada, `{ dashboard(windowDays: 3) { id } }`, nil).Data["dashboard"]).ID
		c := s.subscribeAs(t, ada, `subscription { dashboardUpdated(windowDays: 3) { id latestAllocation { id } protocols { protocol { slug } apyBps } } }`, nil)
		if d := decode[dash](t, c.nextData("dashboardUpdated")); d.LatestAllocation != nil || d.ID != dashID || dashID == "" {
			t.Fatalf("first dashboard = %+v, want id %q and no allocation", d, dashID)
		}
		r := do(t, h, ada, `mutation { recordAllocation(input: {weights: [{protocol: "vesu", weightBps: 10000}]}) { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("recordAllocation: %+v", r.Errors)
		}
		id := decode[struct{ ID string }](t, r.Data["recordAllocation"]).ID
		if d := decode[dash](t, c.nextData("dashboardUpdated")); d.LatestAllocation == nil || d.LatestAllocation.ID != id || d.ID != dashID {
			t.Fatalf("dashboard after recordAllocation = %+v, want id %q and allocation %s", d, dashID, id)
		}
		// vesu's sample changes the dashboard (ekubo's, which Ada does not
		// hold, comes first; this checks only that the dashboard that
		// follows is vesu's).
		now := time.Now().UTC().Add(-time.Minute)
		s.ingest(t, now, 321, "ekubo")
		s.ingest(t, now.Add(time.Second), 654, "vesu")
		d := decode[dash](t, c.nextData("dashboardUpdated"))
		if len(d.Protocols) != 1 || d.Protocols[0].ApyBps == nil || *d.Protocols[0].ApyBps != 654 {
			t.Fatalf("dashboard after vesu's sample = %+v, want vesu at 654 bps", d)
		}
		anon := s.subscribe(t, `subscription { dashboardUpdated { windowDays } }`, nil)
		if m := anon.read(); m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"UNAUTHENTICATED"`) {
			t.Fatalf("anonymous dashboardUpdated = %s %s", m.Type, m.Payload)
		}
		bad := s.subscribeAs(t, ada, `subscription { dashboardUpdated(windowDays: 0) { windowDays } }`, nil)
		if m := bad.read(); m.Type != "next" || !strings.Contains(string(m.Payload), `"code":"BAD_USER_INPUT"`) {
			t.Fatalf("dashboardUpdated(windowDays: 0) = %s %s", m.Type, m.Payload)
		}
	})
}

// TestReplayStatementCount: a subscription replaying N events, each with
// its protocol's slug and name, runs the same number of SQL statements for
// 40 events as for 5: the protocol comes from the market's snapshot, not
// from one read of the table per event.
func TestReplayStatementCount(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServerWith(t, db, live.Options{Logger: slog.New(slog.DiscardHandler), Poll: time.Hour, ReplayPage: 500},
			market.Config{ProtocolTTL: time.Hour})
		// The probe receives every score: once it has the last, the hub has
		// dispatched everything and reads nothing until the next commit.
		probe := s.subscribe(t, riskSubscription, map[string]any{"p": []string{"nostra"}, "after": obsqra.EventCursor(0)})
		base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
		ingested := 0
		ingestUpTo := func(n int) {
			for ; ingested < n; ingested++ {
				s.ingest(t, base.Add(time.Duration(ingested)*time.Minute), 400+ingested, "nostra")
				probe.next()
			}
		}
		const query = `subscription($after: String) { metricsUpdated(after: $after) {
			cursor metrics { id apyBps tvlUsd protocol { slug name } } } }`
		// The hub's reads of the outbox are not counted: how many it makes
		// depends on when PostgreSQL's notifications arrive.
		statements := func() int64 { return db.Statements() - s.outbox.reads.Load() }
		replay := func(n int) int64 {
			t.Helper()
			before := statements()
			c := s.subscribe(t, query, map[string]any{"after": obsqra.EventCursor(0)})
			for i := range n {
				m := c.read()
				if m.Type != "next" || !strings.Contains(string(m.Payload), `"protocol":{"slug":"nostra","name":"Nostra`) {
					t.Fatalf("event %d of %d: %s %s", i+1, n, m.Type, m.Payload)
				}
			}
			ran := statements() - before
			c.conn.Close()
			return ran
		}
		ingestUpTo(5)
		five := replay(5)
		ingestUpTo(40)
		forty := replay(40)
		if forty > five || five > 2 {
			t.Errorf("statements of a replay besides its outbox reads: %d for 5 events, %d for 40; want no more for 40, at most 2", five, forty)
		}
		t.Logf("replay statements besides outbox reads: %d for 5 events, %d for 40", five, forty)
	})
}

// TestCancelledReplayLogsNoError: a client that goes away while its
// subscription starts its replay (the cursor is being checked) makes the
// check fail with context.Canceled: the server logs that once at debug
// level, and nothing at ERROR.
func TestCancelledReplayLogsNoError(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		logs := newLogRecorder()
		s := newLiveServerWith(t, db, live.Options{Logger: slog.New(logs)}, market.Config{},
			func(c *server.Config) { c.Logger = slog.New(logs) })
		s.ingest(t, time.Now().UTC().Add(-time.Hour).Truncate(time.Second), 400, "nostra")
		checking := make(chan struct{}, 1)
		hook := func(ctx context.Context) {
			checking <- struct{}{}
			select {
			case <-ctx.Done(): // the client went away
			case <-time.After(10 * time.Second):
			}
		}
		s.outbox.beforeCheck.Store(&hook)

		c := s.subscribe(t, riskSubscription, map[string]any{"after": obsqra.EventCursor(0)})
		select {
		case <-checking:
		case <-time.After(10 * time.Second):
			t.Fatal("the cursor was not checked")
		}
		c.conn.Close()

		// The resolver's error reaches the error presenter, which logs it
		// one way or the other.
		r := logs.await(t, func(r logRecord) bool {
			return r.msg == "graphql internal error" || r.msg == "graphql operation cancelled"
		})
		if r.level != slog.LevelDebug || !strings.Contains(r.attrs, "read event retention: context canceled") {
			t.Errorf("logged %s %q %s, want DEBUG graphql operation cancelled with the error", r.level, r.msg, r.attrs)
		}
		for _, r := range logs.records() {
			if r.level >= slog.LevelError {
				t.Errorf("logged %s %q %s, want nothing at ERROR", r.level, r.msg, r.attrs)
			}
		}
	})
}

// logRecord is a record a logRecorder received, its attributes as text.
type logRecord struct {
	level slog.Level
	msg   string
	attrs string
}

// logRecorder is a slog handler that keeps every record, at every level.
type logRecorder struct {
	mu      sync.Mutex
	recs    []logRecord
	changed chan struct{} // closed and replaced at each record
}

func newLogRecorder() *logRecorder { return &logRecorder{changed: make(chan struct{})} }

func (*logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var attrs strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&attrs, "%s=%q ", a.Key, a.Value.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, logRecord{level: r.Level, msg: r.Message, attrs: attrs.String()})
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// The handler is used without groups or attributes of its own.
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) records() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

// await returns the first record match accepts, waiting for it.
func (l *logRecorder) await(t *testing.T, match func(logRecord) bool) logRecord {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		recs, changed := l.recs, l.changed
		l.mu.Unlock()
		for _, r := range recs {
			if match(r) {
				return r
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no such log record among %v", recs)
		}
	}
}

// TestSubscriptionsPerUser: a signed-in user may hold
// Limits.SubscriptionsPerUser subscriptions, across connections; one more
// is refused with RATE_LIMITED, and room comes back when one ends.
func TestSubscriptionsPerUser(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db, func(o *live.Options) { o.Limits.SubscriptionsPerUser = 2 })
		s.ingest(t, time.Now().UTC().Add(-time.Hour).Truncate(time.Second), 400, "nostra")
		vars := map[string]any{"after": obsqra.EventCursor(0)}
		// Each subscription replays the score: once it arrives, the
		// subscription holds its place.
		first := s.subscribeAs(t, s.admin, riskSubscription, vars)
		first.next()
		s.subscribeAs(t, s.admin, riskSubscription, vars).next()
		third := s.subscribeAs(t, s.admin, riskSubscription, vars)
		if m := third.read(); !strings.Contains(string(m.Payload), `"code":"RATE_LIMITED"`) {
			t.Fatalf("subscription 3 of 2 = %s %s, want RATE_LIMITED", m.Type, m.Payload)
		}
		// Anonymous subscribers are not counted against the user.
		s.subscribe(t, riskSubscription, vars).next()
		// Ending one gives its place back (the server ends it on its own
		// time after the socket closes: retry until then).
		first.conn.Close()
		for i := 0; ; i++ {
			c := s.subscribeAs(t, s.admin, riskSubscription, vars)
			m := c.read()
			if m.Type == "next" && !strings.Contains(string(m.Payload), "RATE_LIMITED") {
				break
			}
			if i == 100 {
				t.Fatalf("after one subscription ended, another is still refused: %s", m.Payload)
			}
			c.conn.Close()
		}
	})
}

// awaitSubscriptions waits until the hub holds n subscriptions: one
// subscribed without a cursor hears only what is committed after that.
func (s *liveServer) awaitSubscriptions(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.hub.Stats().Subscriptions < n {
		if time.Now().After(deadline) {
			t.Fatalf("the hub holds %d subscriptions after 10s, want %d", s.hub.Stats().Subscriptions, n)
		}
		time.Sleep(time.Millisecond) // the server starting the subscription
	}
}

// predictionOfRun is the id of the prediction that records the optimization
// run with global id runID: the same number, another type.
func predictionOfRun(t *testing.T, runID string) string {
	t.Helper()
	n, err := obsqra.ParseNodeIDOf(obsqra.NodeOptimizationRun, runID)
	if err != nil {
		t.Fatalf("runOptimization id %s: %v", runID, err)
	}
	return obsqra.NodeID(obsqra.NodePrediction, n)
}
