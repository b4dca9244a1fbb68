package resolvers_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

var slugs = []string{"ekubo", "jediswap", "nostra", "vesu", "zklend"}

// ingestVia pushes one sample per protocol per day for days days ending
// yesterday, as an admin through ingestMetrics.
func ingestVia(t *testing.T, h http.Handler, token string, protocols []string, days int) {
	t.Helper()
	end := time.Now().UTC().Truncate(24 * time.Hour).Add(-12 * time.Hour)
	var in []map[string]any
	for d := days - 1; d >= 0; d-- {
		for i, p := range protocols {
			in = append(in, map[string]any{
				"protocol":       p,
				"observedAt":     end.Add(-time.Duration(d) * 24 * time.Hour).Format(time.RFC3339),
				"apyBps":         300 + 40*i + 7*(d%5),
				"tvlUsd":         fmt.Sprintf("%d.25", 2_000_000+15_000_000*i+d),
				"utilizationBps": 5000 + 100*i + 13*d,
			})
		}
	}
	r := do(t, h, token, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		t.Fatalf("ingestMetrics errors: %+v", r.Errors)
	}
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

type protocolRow struct {
	ID         string `json:"id"`
	Slug       string `json:"slug"`
	AgeDays    int    `json:"ageDays"`
	LatestRisk *struct {
		ID            string `json:"id"`
		Score         int    `json:"score"`
		DecisionID    string `json:"decisionId"`
		ParamsVersion int    `json:"paramsVersion"`
	} `json:"latestRisk"`
	LatestMetrics *struct {
		ApyBps        int    `json:"apyBps"`
		TvlUsd        string `json:"tvlUsd"`
		VolatilityBps int    `json:"volatilityBps"`
		LiquidityTier int    `json:"liquidityTier"`
		Source        string `json:"source"`
		Stale         bool   `json:"stale"`
	} `json:"latestMetrics"`
	RiskHistory struct {
		Edges []struct {
			Cursor string `json:"cursor"`
			Node   struct {
				ID    string `json:"id"`
				Score int    `json:"score"`
			} `json:"node"`
		} `json:"edges"`
		PageInfo struct {
			HasNextPage bool   `json:"hasNextPage"`
			EndCursor   string `json:"endCursor"`
		} `json:"pageInfo"`
	} `json:"riskHistory"`
	MetricsHistory struct {
		Edges []struct {
			Node struct {
				ObservedAt string `json:"observedAt"`
			} `json:"node"`
		} `json:"edges"`
	} `json:"metricsHistory"`
}

const dashboardQuery = `{ protocols { id slug ageDays
	latestMetrics { apyBps tvlUsd volatilityBps liquidityTier source stale }
	latestRisk { id score decisionId paramsVersion }
	metricsHistory(first: 20) { edges { node { observedAt } } }
	riskHistory(first: 20) { edges { cursor node { id score } } pageInfo { hasNextPage endCursor } } } }`

func TestMarketAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ingestVia(t, h, admin, slugs, 25)

		// Every protocol has its latest metrics, score and history.
		r := do(t, h, "", dashboardQuery, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("protocols errors: %+v", r.Errors)
		}
		ps := decode[[]protocolRow](t, r.Data["protocols"])
		if len(ps) != 5 {
			t.Fatalf("protocols = %d, want 5", len(ps))
		}
		for i, p := range ps {
			if p.Slug != slugs[i] || p.LatestRisk == nil || p.LatestMetrics == nil || p.AgeDays < 365 {
				t.Fatalf("protocol %d = %+v", i, p)
			}
			if p.LatestMetrics.Source != "admin" || p.LatestMetrics.Stale || p.LatestMetrics.VolatilityBps == 0 {
				t.Errorf("%s latestMetrics = %+v", p.Slug, *p.LatestMetrics)
			}
			if len(p.RiskHistory.Edges) != 20 || !p.RiskHistory.PageInfo.HasNextPage || len(p.MetricsHistory.Edges) != 20 {
				t.Errorf("%s history: %d risk rows (next %v), %d metrics rows", p.Slug, len(p.RiskHistory.Edges),
					p.RiskHistory.PageInfo.HasNextPage, len(p.MetricsHistory.Edges))
			}
			if p.RiskHistory.Edges[0].Node.ID != p.LatestRisk.ID {
				t.Errorf("%s: newest history row %s is not latestRisk %s", p.Slug, p.RiskHistory.Edges[0].Node.ID, p.LatestRisk.ID)
			}
			// verifyDecision recomputes the score and checks the chain.
			v := do(t, h, "", `query($id: ID!) { verifyDecision(id: $id) { matches chainValid brokenAt
				decision { id kind hash prevHash } recomputed } }`, map[string]any{"id": p.LatestRisk.DecisionID})
			if len(v.Errors) > 0 || !strings.Contains(string(v.Data["verifyDecision"]), `"matches":true,"chainValid":true,"brokenAt":null`) {
				t.Errorf("verifyDecision(%s) = %s %+v", p.Slug, v.Data["verifyDecision"], v.Errors)
			}
		}
		if ps[0].LatestMetrics.LiquidityTier != 2 || ps[4].LatestMetrics.LiquidityTier != 0 {
			t.Errorf("liquidity tiers = %d, %d; want 2 (2 M) and 0 (62 M)", ps[0].LatestMetrics.LiquidityTier, ps[4].LatestMetrics.LiquidityTier)
		}

		// Paging back through riskHistory: no gap, no duplicate.
		seen := map[string]bool{}
		var after any
		for page := 0; ; page++ {
			r := do(t, h, "", `query($after: String) { protocol(slug: "zklend") { riskHistory(first: 7, after: $after) {
				edges { node { id } } pageInfo { hasNextPage endCursor } } } }`, map[string]any{"after": after})
			if len(r.Errors) > 0 {
				t.Fatalf("page %d errors: %+v", page, r.Errors)
			}
			p := decode[protocolRow](t, r.Data["protocol"])
			for _, e := range p.RiskHistory.Edges {
				if seen[e.Node.ID] {
					t.Fatalf("page %d repeats %s", page, e.Node.ID)
				}
				seen[e.Node.ID] = true
			}
			if !p.RiskHistory.PageInfo.HasNextPage {
				break
			}
			after = p.RiskHistory.PageInfo.EndCursor
		}
		if len(seen) != 25 {
			t.Errorf("paged through %d scores, want 25", len(seen))
		}

		// node(id:) refetches protocols and scores.
		n := do(t, h, "", `query($a: ID!, $b: ID!) { a: node(id: $a) { ... on Protocol { slug } } b: node(id: $b) { ... on RiskScore { score } } }`,
			map[string]any{"a": ps[2].ID, "b": ps[2].LatestRisk.ID})
		if len(n.Errors) > 0 || string(n.Data["a"]) != `{"slug":"nostra"}` || string(n.Data["b"]) != fmt.Sprintf(`{"score":%d}`, ps[2].LatestRisk.Score) {
			t.Errorf("node = %s %s %+v", n.Data["a"], n.Data["b"], n.Errors)
		}
	})
}

// TestMarketStatementCount checks that the dashboard query runs the same
// number of SQL statements for 5 protocols as for 8.
func TestMarketStatementCount(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ingestVia(t, h, admin, slugs, 22)
		count := func() (int64, int) {
			before := db.Statements()
			r := do(t, h, "", dashboardQuery, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("protocols errors: %+v", r.Errors)
			}
			return db.Statements() - before, len(decode[[]protocolRow](t, r.Data["protocols"]))
		}
		five, n := count()
		if n != 5 {
			t.Fatalf("%d protocols, want 5", n)
		}
		var extra []string
		for i := range 3 {
			slug := fmt.Sprintf("extra-%d", i)
			r := do(t, h, admin, `mutation($in: UpsertProtocolInput!) { upsertProtocol(input: $in) { slug } }`, map[string]any{"in": map[string]any{
				"slug": slug, "name": "Extra", "category": "YIELD", "auditScore": 70, "launchedOn": "2024-01-01"}})
			if len(r.Errors) > 0 {
				t.Fatalf("upsertProtocol errors: %+v", r.Errors)
			}
			extra = append(extra, slug)
		}
		ingestVia(t, h, admin, extra, 22)
		eight, n := count()
		if n != 8 {
			t.Fatalf("%d protocols, want 8", n)
		}
		if five != eight || five > 6 {
			t.Errorf("statements: %d for 5 protocols, %d for 8; want the same, at most 6", five, eight)
		}
		t.Logf("dashboard query: %d SQL statements for 5 and for 8 protocols", five)
	})
}

// TestMarketBadInput checks every market mutation's refusals: a clear
// code, a message naming the field, and nothing stored.
func TestMarketBadInput(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		user := registerVia(t, h, "user@example.com").AccessToken
		yesterday := time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339)
		sample := func(mod map[string]any) map[string]any {
			m := map[string]any{"protocol": "nostra", "observedAt": yesterday, "apyBps": 400, "tvlUsd": "1000", "utilizationBps": 5000}
			for k, v := range mod {
				m[k] = v
			}
			return m
		}
		const ingest = `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`
		tests := []struct {
			name, token, query string
			vars               map[string]any
			code, message      string
		}{
			{"anonymous ingest", "", ingest, map[string]any{"in": []any{sample(nil)}}, "UNAUTHENTICATED", "sign in"},
			{"user ingest", user, ingest, map[string]any{"in": []any{sample(nil)}}, "FORBIDDEN", "only admins"},
			{"negative tvl", admin, ingest, map[string]any{"in": []any{sample(nil), sample(map[string]any{"tvlUsd": "-5", "observedAt": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)})}},
				"BAD_USER_INPUT", "input[1].tvlUsd"},
			{"utilization", admin, ingest, map[string]any{"in": []any{sample(map[string]any{"utilizationBps": 10001})}}, "BAD_USER_INPUT", "input[0].utilizationBps"},
			{"future", admin, ingest, map[string]any{"in": []any{sample(map[string]any{"observedAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})}}, "BAD_USER_INPUT", "input[0].observedAt: "},
			{"unknown protocol", admin, ingest, map[string]any{"in": []any{sample(map[string]any{"protocol": "nope"})}}, "BAD_USER_INPUT", `unknown protocol "nope"`},
			{"tvl float", admin, ingest, map[string]any{"in": []any{sample(map[string]any{"tvlUsd": 1.5})}}, "BAD_USER_INPUT", "Decimal"},
			{"bad slug", admin, `mutation { upsertProtocol(input: {slug: "Bad Slug", name: "x", category: DEX, auditScore: 50, launchedOn: "2024-01-01"}) { slug } }`, nil, "BAD_USER_INPUT", "slug"},
			{"audit", admin, `mutation { upsertProtocol(input: {slug: "ok", name: "x", category: DEX, auditScore: 101, launchedOn: "2024-01-01"}) { slug } }`, nil, "BAD_USER_INPUT", "auditScore"},
			{"bad address", admin, `mutation { upsertProtocol(input: {slug: "ok", name: "x", category: DEX, auditScore: 1, launchedOn: "2024-01-01", contractAddress: "0xZZ"}) { slug } }`, nil, "BAD_USER_INPUT", "contractAddress"},
			{"bad date", admin, `mutation { upsertProtocol(input: {slug: "ok", name: "x", category: DEX, auditScore: 1, launchedOn: "2024-13-01"}) { slug } }`, nil, "BAD_USER_INPUT", "YYYY-MM-DD"},
			{"user upsert", user, `mutation { upsertProtocol(input: {slug: "ok", name: "x", category: DEX, auditScore: 1, launchedOn: "2024-01-01"}) { slug } }`, nil, "FORBIDDEN", "only admins"},
			{"enable unknown", admin, `mutation { setProtocolEnabled(slug: "nope", enabled: false) { slug } }`, nil, "NOT_FOUND", `no protocol has slug "nope"`},
			{"user params", user, `mutation { setRiskParams(input: {wAudit: 4}) { version } }`, nil, "FORBIDDEN", "only admins"},
			{"bad params", admin, `mutation { setRiskParams(input: {clampMin: 90, clampMax: 50}) { version } }`, nil, "BAD_USER_INPUT", "clampMin (90) must not exceed clampMax (50)"},
			{"preview input", "", `{ riskScorePreview(input: {utilization: 10001, volatility: 0, liquidity: 0, auditScore: 50, ageDays: 1}) { score } }`, nil, "BAD_USER_INPUT", "utilization"},
			{"page size", "", `{ protocols { riskHistory(first: 101) { edges { cursor } } } }`, nil, "BAD_USER_INPUT", "first must be between 1 and 100"},
			{"bad cursor", "", `{ protocols { riskHistory(after: "xyz") { edges { cursor } } } }`, nil, "BAD_USER_INPUT", "after: not a cursor"},
			{"bad decision id", "", `{ verifyDecision(id: "nope") { matches } }`, nil, "BAD_USER_INPUT", "not a valid id"},
			{"user jobs", user, `{ schedulerJobs { name } }`, nil, "FORBIDDEN", "only admins"},
		}
		for _, tt := range tests {
			r := do(t, h, tt.token, tt.query, tt.vars)
			if r.code() != tt.code || !strings.Contains(r.Errors[0].Message, tt.message) {
				t.Errorf("%s: errors = %+v, want %s containing %q", tt.name, r.Errors, tt.code, tt.message)
			}
		}
		// Nothing was stored: no sample, no score, no new version.
		r := do(t, h, "", `{ protocols { slug latestMetrics { id } } riskParams { version } }`, nil)
		if got := string(r.Data["protocols"]); strings.Contains(got, `"latestMetrics":{`) || strings.Contains(got, `"ok"`) {
			t.Errorf("after refused mutations, protocols = %s", got)
		}
		if got := string(r.Data["riskParams"]); got != `{"version":1}` {
			t.Errorf("riskParams = %s, want version 1", got)
		}
	})
}

// TestRiskParamsAndPreview covers riskScorePreview and setRiskParams: a
// new version scores new samples, old scores keep theirs.
func TestRiskParamsAndPreview(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		// The contract's default parameters: 25·6000/10000 + 40·500/10000
		// + 15 + 3·(100−80)/10 + 10·(730−100)/730 = 15 + 2 + 15 + 6 + 8 = 46.
		const preview = `query($p: RiskParamsInput) { riskScorePreview(input: {utilization: 6000, volatility: 500, liquidity: 2, auditScore: 80, ageDays: 100}, params: $p) {
			__typename score components { utilization volatility liquidity audit age unclamped } modelVersion } }`
		r := do(t, h, "", preview, nil)
		if len(r.Errors) > 0 {
			t.Logf("riskScorePreview errors: %+v", r.Errors)
		}
		obsqratest.GoldenJSON(t, "risk_score_preview", r.Data["riskScorePreview"])
		r = do(t, h, "", preview, map[string]any{"p": map[string]any{"wLiquidity2": 25}})
		if got := string(r.Data["riskScorePreview"]); !strings.HasPrefix(got, `{"__typename":"RiskScorePreview","score":56,`) {
			t.Errorf("riskScorePreview with params = %s %+v", got, r.Errors)
		}

		ingestVia(t, h, admin, []string{"vesu"}, 2)
		r = do(t, h, admin, `mutation { setRiskParams(input: {wLiquidity2: 25, wLiquidity3: 40}) { version wLiquidity2 wLiquidity3 wAudit clampMax } }`, nil)
		if got := string(r.Data["setRiskParams"]); got != `{"version":2,"wLiquidity2":25,"wLiquidity3":40,"wAudit":3,"clampMax":95}` {
			t.Fatalf("setRiskParams = %s %+v", got, r.Errors)
		}
		r = do(t, h, admin, `mutation($in: [MetricsInput!]!) { ingestMetrics(input: $in) { id } }`, map[string]any{"in": []any{map[string]any{
			"protocol": "vesu", "observedAt": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), "apyBps": 500}}})
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		r = do(t, h, "", `{ protocol(slug: "vesu") { riskHistory { edges { node { paramsVersion decisionId } } } } }`, nil)
		type history struct {
			RiskHistory struct {
				Edges []struct {
					Node struct {
						ParamsVersion int    `json:"paramsVersion"`
						DecisionID    string `json:"decisionId"`
					} `json:"node"`
				} `json:"edges"`
			} `json:"riskHistory"`
		}
		p := decode[history](t, r.Data["protocol"])
		var versions []int
		for _, e := range p.RiskHistory.Edges {
			versions = append(versions, e.Node.ParamsVersion)
			v := do(t, h, "", `query($id: ID!) { verifyDecision(id: $id) { matches chainValid } }`, map[string]any{"id": e.Node.DecisionID})
			if string(v.Data["verifyDecision"]) != `{"matches":true,"chainValid":true}` {
				t.Errorf("verifyDecision = %s %+v", v.Data["verifyDecision"], v.Errors)
			}
		}
		if fmt.Sprint(versions) != "[2 1 1]" {
			t.Errorf("paramsVersion newest first = %v, want [2 1 1]", versions)
		}
	})
}

// TestVerifyDecisionReportsTampering tampers with a stored decision as the
// database owner, bypassing the append-only trigger, and checks that
// verifyDecision reports the broken chain from that entry on.
func TestVerifyDecisionReportsTampering(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com").AccessToken
		ingestVia(t, h, admin, []string{"ekubo"}, 5) // decisions 1-5

		// The application cannot change a decision: the trigger refuses.
		if err := storetest.Exec(t, db, `UPDATE decisions SET output = '{"score":5}' WHERE id = 2`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("UPDATE decisions error = %v, want the append-only refusal", err)
		}
		if err := storetest.Exec(t, db, `DELETE FROM decisions WHERE id = 2`); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("DELETE decisions error = %v, want the append-only refusal", err)
		}
		// The owner can bypass it; the chain tells.
		switch db.Dialect() {
		case store.DialectSQLite:
			if err := storetest.Exec(t, db, `DROP TRIGGER decisions_no_update`); err != nil {
				t.Fatal(err)
			}
			if err := storetest.Exec(t, db, `UPDATE decisions SET output = replace(output, '"score":', '"score":1') WHERE id = 2`); err != nil {
				t.Fatal(err)
			}
		case store.DialectPostgres:
			if err := storetest.Exec(t, db, `TRUNCATE decisions CASCADE`); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("TRUNCATE decisions error = %v, want the append-only refusal", err)
			}
			if err := storetest.Exec(t, db, `ALTER TABLE decisions DISABLE TRIGGER decisions_append_only`); err != nil {
				t.Fatal(err)
			}
			if err := storetest.Exec(t, db, `UPDATE decisions SET output = replace(output, '"score":', '"score":1') WHERE id = 2`); err != nil {
				t.Fatal(err)
			}
		}
		check := func(id int, want string) {
			t.Helper()
			r := do(t, h, "", `query($id: ID!) { verifyDecision(id: $id) { matches chainValid brokenAt } }`,
				map[string]any{"id": nodeID("Decision", id)})
			if got := string(r.Data["verifyDecision"]); got != want {
				t.Errorf("verifyDecision(%d) = %s %+v, want %s", id, got, r.Errors, want)
			}
		}
		check(1, `{"matches":true,"chainValid":true,"brokenAt":null}`)
		check(2, fmt.Sprintf(`{"matches":false,"chainValid":false,"brokenAt":%q}`, nodeID("Decision", 2)))
		check(5, fmt.Sprintf(`{"matches":true,"chainValid":false,"brokenAt":%q}`, nodeID("Decision", 2)))
	})
}

func nodeID(typ string, id int) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s:%d", typ, id))
}

// TestSchedulerJobsAPI shows the scheduler's jobs and their recorded runs
// to admins.
func TestSchedulerJobsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		tokens, err := account.NewTokens(testKey, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: time.Hour, BcryptCost: 4, AdminEmails: []string{"admin@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		decisions := newDecisions(t, db, nil)
		markets, err := market.New(db, decisions, market.Config{})
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := scheduler.New(scheduler.Config{Recorder: db, Elector: db, Instance: "test:1"},
			scheduler.Job{Name: "market-ingest", Interval: 10 * time.Second, Timeout: 2 * time.Minute, Run: markets.Poll})
		if err != nil {
			t.Fatal(err)
		}
		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Scheduler: jobs})
		h := server.New(server.Config{Introspection: true, Logger: slog.New(slog.DiscardHandler)}, schema, accounts, db).Handler()

		run, err := db.StartJobRun(ctx, "market-ingest", "test:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.FinishJobRun(ctx, run.ID, obsqra.JobFailed, "poll simulated: feed down"); err != nil {
			t.Fatal(err)
		}
		admin := registerVia(t, h, "admin@example.com").AccessToken
		r := do(t, h, admin, `{ schedulerJobs { name intervalSeconds timeoutSeconds nextDueAt running lastRuns { instance outcome error } } }`, nil)
		if len(r.Errors) > 0 {
			t.Logf("schedulerJobs errors: %+v", r.Errors)
		}
		obsqratest.GoldenJSON(t, "scheduler_jobs", r.Data["schedulerJobs"])
	})
}
