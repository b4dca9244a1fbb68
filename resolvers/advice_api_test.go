package resolvers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// adviceEnv is the whole server over one database with one injected clock,
// and the services a test drives directly (the scheduler's jobs).
type adviceEnv struct {
	h       http.Handler
	db      *store.DB
	clock   *obsqratest.Clock
	markets *market.Service
	advice  *advisor.Service
}

// newAdviceEnv wires the services over db; opts add to the resolver
// (e.g. a Ledger).
func newAdviceEnv(tb testing.TB, db *store.DB, opts ...func(*resolvers.Resolver)) *adviceEnv {
	tb.Helper()
	return newAdviceEnvOn(tb, db, nil, opts...)
}

// newAdviceEnvOn is newAdviceEnv whose accounts link wallets and check
// signed constraints on the Starknet node client (nil: none), as do the
// decisions' verifications.
func newAdviceEnvOn(tb testing.TB, db *store.DB, client *starknet.Client, opts ...func(*resolvers.Resolver)) *adviceEnv {
	tb.Helper()
	// The clock starts at the real time (tokens are checked against it)
	// and only moves forward, by days.
	c := obsqratest.NewClock(time.Now().UTC().Truncate(time.Second))
	db.Now = c.Now
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: 365 * 24 * time.Hour, BcryptCost: 4,
		AdminEmails: []string{"admin@example.com"}, Starknet: client})
	if err != nil {
		tb.Fatal(err)
	}
	decisions := newDecisionsChecking(tb, db, nil, accounts)
	markets, err := market.New(db, decisions, market.Config{Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	advice, err := advisor.New(db, markets, decisions, advisor.Config{Now: c.Now})
	if err != nil {
		tb.Fatal(err)
	}
	folio := portfolio.New(db, portfolio.Config{Now: c.Now})
	r := &resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Advisor: advice, Portfolio: folio, Now: c.Now}
	for _, opt := range opts {
		opt(r)
	}
	schema := resolvers.NewExecutableSchema(r)
	srv := server.New(server.Config{Version: "test", Introspection: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db)
	return &adviceEnv{h: srv.Handler(), db: db, clock: c, markets: markets, advice: advice}
}

// market is how each seeded protocol behaves in these tests: a calm,
// lightly used nostra-like reserve against a busy one that pays more.
type regime struct {
	apy, util, wobble int
}

var calm = map[string]regime{
	"nostra":   {apy: 550, util: 9500, wobble: 6},
	"zklend":   {apy: 400, util: 1000, wobble: 4},
	"vesu":     {apy: 450, util: 5000, wobble: 5},
	"ekubo":    {apy: 300, util: 2000, wobble: 3},
	"jediswap": {apy: 320, util: 2500, wobble: 3},
}

// ingestDays stores one sample per protocol per day for the days days up
// to and including the clock's day, at noon (or now, today, when earlier).
func (e *adviceEnv) ingestDays(t testing.TB, days int, regimes map[string]regime) {
	t.Helper()
	now := e.clock.Now()
	today := now.Truncate(24 * time.Hour)
	var in []obsqra.MetricsInput
	for d := days - 1; d >= 0; d-- {
		at := today.Add(-time.Duration(d)*24*time.Hour + 12*time.Hour)
		if at.After(now) {
			at = now
		}
		day := int(at.Unix() / 86400)
		for slug, r := range regimes {
			// A deterministic wobble, different per protocol and day.
			w := int(math.Round(float64(r.wobble) * math.Sin(float64(day)*0.7+float64(len(slug)))))
			in = append(in, obsqra.MetricsInput{Protocol: slug, ObservedAt: at, ApyBps: r.apy + w, UtilizationBps: r.util})
		}
	}
	if _, err := e.markets.Ingest(context.Background(), obsqra.SourceImport, in); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
}

type plan struct {
	Weights []struct {
		Protocol  struct{ Slug string }
		WeightBps int
	}
	ExpectedApyBps     int
	PortfolioRiskScore float64
	ConstraintsMet     bool
	ParityWeights      []struct{ WeightBps int }
	RiskTolerance      string
}

const planFields = `weights { protocol { slug } weightBps } expectedApyBps portfolioRiskScore constraintsMet parityWeights { weightBps } riskTolerance`

func sumWeights[T any](ws []T, bps func(T) int) int {
	s := 0
	for _, w := range ws {
		s += bps(w)
	}
	return s
}

// TestAdviceJourney walks the path of the issue as a new user would:
// register, tolerance LOW, optimizeAllocation, recordAllocation of the
// plan, the market moves, the dashboard and the suggestion follow; HIGH
// tolerance plans at least as risky; modelPerformance fills in as
// predictions mature; a second user sees none of it.
func TestAdviceJourney(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newAdviceEnv(t, db)
		e.ingestDays(t, 90, calm)
		ada := registerVia(t, e.h, "ada@example.com").AccessToken

		type runResult struct {
			ID, DecisionID string
			Suggestion     *struct{ ID string }
			Plan           plan
		}
		type allocResult struct {
			ID, DecisionID, Reason, TxHash string
		}
		type suggestion struct {
			ID                     string
			ClearsThreshold        bool
			ExpectedImprovementBps float64
			Trades                 []struct {
				Protocol       struct{ Slug string }
				FromBps, ToBps int
			}
		}
		type dashboard struct {
			LatestAllocation   *struct{ ID string }
			ExpectedApyBps     *int
			PortfolioRiskScore *float64
			Protocols          []struct {
				Protocol  struct{ Slug string }
				WeightBps int
				ApyBps    *int
				RiskScore *int
			}
			RealisedApyBps    *int
			PendingSuggestion *struct{ ID string }
		}
		const dashQuery = `{ dashboard { latestAllocation { id } expectedApyBps portfolioRiskScore protocols { protocol { slug } weightBps apyBps riskScore } realisedApyBps pendingSuggestion { id } } }`
		const suggestionPerf = `{ modelPerformance(kind: REBALANCE_SUGGESTION, horizonDays: 7) { count } }`
		// What the steps learn and later steps use.
		var (
			run     runResult
			weights []map[string]any
			alloc   allocResult
			before  dashboard
			sug1    struct {
				ID     string
				Trades []struct{ FromBps, ToBps int }
			}
			sug2  suggestion
			moved = map[string]regime{}
		)

		obsqratest.Step(t, "set preferences", func(t *testing.T) {
			r := do(t, e.h, ada, `mutation { updatePreferences(input: {riskTolerance: LOW, rebalanceThresholdBps: 1}) { preferences { riskTolerance } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("updatePreferences: %+v", r.Errors)
			}
		})

		obsqratest.Step(t, "optimize allocation", func(t *testing.T) {
			r := do(t, e.h, ada, `{ optimizeAllocation { `+planFields+` } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("optimizeAllocation: %+v", r.Errors)
			}
			low := decode[plan](t, r.Data["optimizeAllocation"])
			if low.RiskTolerance != "LOW" || !low.ConstraintsMet || len(low.Weights) != 5 {
				t.Fatalf("optimizeAllocation (LOW) = %+v", low)
			}
			if s := sumWeights(low.Weights, func(w struct {
				Protocol  struct{ Slug string }
				WeightBps int
			}) int {
				return w.WeightBps
			}); s != 10000 {
				t.Fatalf("plan weights sum to %d, want 10000", s)
			}
			if s := sumWeights(low.ParityWeights, func(w struct{ WeightBps int }) int { return w.WeightBps }); s != 10000 {
				t.Fatalf("parity weights sum to %d, want 10000", s)
			}
			r = do(t, e.h, ada, `{ optimizeAllocation(input: {riskTolerance: HIGH}) { `+planFields+` } }`, nil)
			high := decode[plan](t, r.Data["optimizeAllocation"])
			if high.PortfolioRiskScore < low.PortfolioRiskScore {
				t.Fatalf("HIGH plan risk %v < LOW plan risk %v", high.PortfolioRiskScore, low.PortfolioRiskScore)
			}
			if high.ExpectedApyBps < low.ExpectedApyBps {
				t.Fatalf("HIGH plan APY %d < LOW plan APY %d: a riskier plan must pay for it", high.ExpectedApyBps, low.ExpectedApyBps)
			}
		})

		obsqratest.Step(t, "no suggestion before an allocation", func(t *testing.T) {
			// No allocation yet: no suggestion, an empty dashboard.
			r := do(t, e.h, ada, `{ rebalanceSuggestion { id } dashboard { latestAllocation { id } expectedApyBps protocols { weightBps } } }`, nil)
			if len(r.Errors) > 0 || string(r.Data["rebalanceSuggestion"]) != "null" {
				t.Fatalf("rebalanceSuggestion before any allocation = %s, %+v", r.Data["rebalanceSuggestion"], r.Errors)
			}
		})

		obsqratest.Step(t, "run optimization and record allocation", func(t *testing.T) {
			// runOptimization records the plan; recordAllocation follows it.
			r := do(t, e.h, ada, `mutation { runOptimization { id decisionId suggestion { id } plan { weights { protocol { slug } weightBps } } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("runOptimization: %+v", r.Errors)
			}
			run = decode[runResult](t, r.Data["runOptimization"])
			if run.Suggestion != nil {
				t.Fatalf("runOptimization without allocation has suggestion %+v", run.Suggestion)
			}
			for _, w := range run.Plan.Weights {
				weights = append(weights, map[string]any{"protocol": w.Protocol.Slug, "weightBps": w.WeightBps})
			}
			r = do(t, e.h, ada, `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id decisionId reason txHash weights { protocol { slug } weightBps } } }`,
				map[string]any{"in": map[string]any{"weights": weights, "reason": "OPTIMIZATION", "suggestionId": run.ID, "txHash": "0xABC", "portfolioValueUsd": "25000"}})
			if len(r.Errors) > 0 {
				t.Fatalf("recordAllocation: %+v", r.Errors)
			}
			alloc = decode[allocResult](t, r.Data["recordAllocation"])
			if alloc.DecisionID != run.DecisionID || alloc.Reason != "OPTIMIZATION" || alloc.TxHash != "0x"+zeros(61)+"abc" {
				t.Fatalf("recordAllocation = %+v, want decision %s and the canonical felt", alloc, run.DecisionID)
			}
		})

		obsqratest.Step(t, "verify decision", func(t *testing.T) {
			// The owner verifies the decision of their plan.
			r := do(t, e.h, ada, `query($id: ID!) { verifyDecision(id: $id) { matches chainValid decision { kind } } }`, map[string]any{"id": run.DecisionID})
			if len(r.Errors) > 0 || string(r.Data["verifyDecision"]) != `{"matches":true,"chainValid":true,"decision":{"kind":"OPTIMIZATION"}}` {
				t.Fatalf("verifyDecision = %s %+v", r.Data["verifyDecision"], r.Errors)
			}
		})

		obsqratest.Step(t, "dashboard and suggestion", func(t *testing.T) {
			r := do(t, e.h, ada, dashQuery, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("dashboard: %+v", r.Errors)
			}
			before = decode[dashboard](t, r.Data["dashboard"])
			if before.LatestAllocation == nil || before.LatestAllocation.ID != alloc.ID || before.ExpectedApyBps == nil || before.PortfolioRiskScore == nil {
				t.Fatalf("dashboard after recordAllocation = %+v", before)
			}

			r = do(t, e.h, ada, `{ rebalanceSuggestion { id current { weightBps } trades { fromBps toBps } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("rebalanceSuggestion: %+v", r.Errors)
			}
			sug1 = decode[struct {
				ID     string
				Trades []struct{ FromBps, ToBps int }
			}](t, r.Data["rebalanceSuggestion"])
			r = do(t, e.h, ada, `{ rebalanceSuggestion { id } }`, nil)
			if again := decode[struct{ ID string }](t, r.Data["rebalanceSuggestion"]); again.ID != sug1.ID {
				t.Fatalf("rebalanceSuggestion on unchanged data = %s, then %s: want the recorded one again", sug1.ID, again.ID)
			}
		})

		obsqratest.Step(t, "market moves", func(t *testing.T) {
			// The market moves: nostra turns calm and pays far more.
			for k, v := range calm {
				moved[k] = v
			}
			moved["nostra"] = regime{apy: 1400, util: 1000, wobble: 6}
			for range 6 {
				e.clock.AddDays(1)
				e.ingestDays(t, 1, moved)
			}
			r := do(t, e.h, ada, dashQuery, nil)
			after := decode[dashboard](t, r.Data["dashboard"])
			if *after.ExpectedApyBps == *before.ExpectedApyBps && *after.PortfolioRiskScore == *before.PortfolioRiskScore {
				t.Fatalf("dashboard did not follow the market: before %+v, after %+v", before, after)
			}
			r = do(t, e.h, ada, `{ rebalanceSuggestion { id clearsThreshold expectedImprovementBps target { protocol { slug } weightBps } trades { protocol { slug } fromBps toBps } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("rebalanceSuggestion after the move: %+v", r.Errors)
			}
			sug2 = decode[suggestion](t, r.Data["rebalanceSuggestion"])
			if sug2.ID == sug1.ID || !sug2.ClearsThreshold || sug2.ExpectedImprovementBps <= 0 {
				t.Fatalf("rebalanceSuggestion after the move = %+v (before: %s)", sug2, sug1.ID)
			}
			movesIntoNostra := false
			for _, tr := range sug2.Trades {
				if tr.Protocol.Slug == "nostra" && tr.ToBps > tr.FromBps {
					movesIntoNostra = true
				}
			}
			if !movesIntoNostra {
				t.Fatalf("the suggestion after nostra improved does not buy nostra: %+v", sug2.Trades)
			}
			r = do(t, e.h, ada, dashQuery, nil)
			if d := decode[dashboard](t, r.Data["dashboard"]); d.PendingSuggestion == nil || d.PendingSuggestion.ID != sug2.ID {
				t.Fatalf("dashboard pendingSuggestion = %+v, want %s", d.PendingSuggestion, sug2.ID)
			}
		})

		obsqratest.Step(t, "forecasts mature", func(t *testing.T) {
			// Forecasts mature: modelPerformance fills in.
			if n, err := e.advice.RefreshForecasts(context.Background()); err != nil || n != 10 {
				t.Fatalf("RefreshForecasts = %d, %v; want 10 (yield and risk of 5 protocols)", n, err)
			}
			for range 8 {
				e.clock.AddDays(1)
				e.ingestDays(t, 1, moved)
			}
			if n, err := e.advice.ScoreOutcomes(context.Background()); err != nil || n < 10 {
				t.Fatalf("ScoreOutcomes = %d, %v; want at least the 10 forecasts", n, err)
			}
			r := do(t, e.h, "", `{ modelPerformance(kind: YIELD_FORECAST, horizonDays: 7) { count mae coverage80 coverage95
				movingForecasts movingCoverage80 movingCoverage95 calibration { count } } }`, nil)
			perf := decode[struct {
				Count                              int
				Mae                                *float64
				Coverage80, Coverage95             *float64
				MovingForecasts                    int
				MovingCoverage80, MovingCoverage95 *float64
				Calibration                        []struct{ Count int }
			}](t, r.Data["modelPerformance"])
			if perf.Count != 5 || perf.Mae == nil || perf.Coverage95 == nil || *perf.Coverage95 < *perf.Coverage80 ||
				sumWeights(perf.Calibration, func(b struct{ Count int }) int { return b.Count }) != 5 {
				t.Fatalf("modelPerformance = %+v %+v, want 5 matured yield forecasts", perf, r.Errors)
			}
			// The moving figures count the scored forecasts recorded as made
			// from a series that moved, and are the advisor's own.
			var moving, movingIn80, movingIn95 int
			ps, err := e.db.Predictions(context.Background(), store.PredictionQuery{Kind: obsqra.PredictionYieldForecast, Limit: 1000})
			if err != nil {
				t.Fatalf("Predictions() = %v", err)
			}
			for _, p := range ps {
				if p.Actual == nil || p.HorizonDays != 7 || p.Moved == nil || !*p.Moved {
					continue
				}
				moving++
				if *p.Actual >= p.Lower80 && *p.Actual <= p.Upper80 {
					movingIn80++
				}
				if *p.Actual >= p.Lower95 && *p.Actual <= p.Upper95 {
					movingIn95++
				}
			}
			share := func(n int) *float64 {
				if moving == 0 {
					return nil
				}
				x := math.Round(float64(n)/float64(moving)*1e4) / 1e4
				return &x
			}
			mp, err := e.advice.ModelPerformance(context.Background(), obsqra.PredictionYieldForecast, 7, 90)
			if err != nil {
				t.Fatalf("ModelPerformance(yield, 7, 90) = %v", err)
			}
			got := []any{perf.MovingForecasts, perf.MovingCoverage80, perf.MovingCoverage95}
			if want := []any{moving, share(movingIn80), share(movingIn95)}; moving == 0 || !reflect.DeepEqual(got, want) ||
				!reflect.DeepEqual(want, []any{mp.MovingForecasts, mp.MovingCoverage80, mp.MovingCoverage95}) {
				t.Fatalf("modelPerformance moving = %s, want %s (some moving), as the advisor's %s", mustJSON(got), mustJSON(want),
					mustJSON([]any{mp.MovingForecasts, mp.MovingCoverage80, mp.MovingCoverage95}))
			}
		})

		obsqratest.Step(t, "backtest", func(t *testing.T) {
			// The backtest's figures, the moving forecasts' among them, are
			// the advisor's own.
			type figures struct {
				Forecasts, MovingForecasts                                 int
				Coverage80, Coverage95, MovingCoverage80, MovingCoverage95 *float64
			}
			r := do(t, e.h, "", `{ backtest(horizonDays: 7, windowDays: 30) { forecasts coverage80 coverage95 movingForecasts movingCoverage80 movingCoverage95 } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("backtest: %+v", r.Errors)
			}
			got := decode[figures](t, r.Data["backtest"])
			window := 30
			rep, err := e.advice.Backtest(context.Background(), nil, 7, &window)
			if err != nil {
				t.Fatalf("Backtest(7, 30) = %v", err)
			}
			want := figures{rep.Forecasts, rep.MovingForecasts, rep.Coverage80, rep.Coverage95, rep.MovingCoverage80, rep.MovingCoverage95}
			if got.MovingForecasts == 0 || got.MovingCoverage80 == nil || got.MovingCoverage95 == nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("backtest = %s, want %s with moving forecasts", mustJSON(got), mustJSON(want))
			}
		})

		obsqratest.Step(t, "suggestions judged for her", func(t *testing.T) {
			// Her suggestions are judged for her, and for her only.
			r := do(t, e.h, ada, suggestionPerf, nil)
			if p := decode[struct{ Count int }](t, r.Data["modelPerformance"]); p.Count < 1 {
				t.Fatalf("ada's suggestion performance = %+v %+v, want her matured suggestions", p, r.Errors)
			}
		})

		obsqratest.Step(t, "bob sees none of it", func(t *testing.T) {
			// A second user sees none of Ada's data, whatever the path.
			bob := registerVia(t, e.h, "bob@example.com").AccessToken
			r := do(t, e.h, bob, suggestionPerf, nil)
			if p := decode[struct{ Count int }](t, r.Data["modelPerformance"]); p.Count != 0 {
				t.Fatalf("bob's suggestion performance = %+v, want none (Ada's are hers)", p)
			}
			r = do(t, e.h, bob, `query($a: ID!, $s: ID!, $d: ID!) { a: node(id: $a) { id } s: node(id: $s) { id } d: node(id: $d) { id } dashboard { latestAllocation { id } } rebalanceSuggestion { id } }`,
				map[string]any{"a": alloc.ID, "s": sug2.ID, "d": run.DecisionID})
			if len(r.Errors) > 0 || string(r.Data["a"]) != "null" || string(r.Data["s"]) != "null" || string(r.Data["d"]) != "null" ||
				string(r.Data["dashboard"]) != `{"latestAllocation":null}` || string(r.Data["rebalanceSuggestion"]) != "null" {
				t.Fatalf("bob sees %s %+v", mustJSON(r.Data), r.Errors)
			}
			r = do(t, e.h, bob, `{ predictions(filter: {kind: REBALANCE_SUGGESTION}) { edges { node { id } } } allocationHistory { edges { node { id } } } }`, nil)
			if string(r.Data["predictions"]) != `{"edges":[]}` || string(r.Data["allocationHistory"]) != `{"edges":[]}` {
				t.Fatalf("bob's predictions and allocations = %s", mustJSON(r.Data))
			}
			r = do(t, e.h, bob, `query($d: ID!) { verifyDecision(id: $d) { matches } }`, map[string]any{"d": run.DecisionID})
			if r.code() != "NOT_FOUND" {
				t.Fatalf("bob verifies Ada's decision: %s %+v", r.Data["verifyDecision"], r.Errors)
			}
			r = do(t, e.h, bob, `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`,
				map[string]any{"in": map[string]any{"weights": weights, "suggestionId": run.ID}})
			if r.code() != "NOT_FOUND" {
				t.Fatalf("bob follows Ada's plan: %+v", r.Errors)
			}
		})

		obsqratest.Step(t, "ada sees her own", func(t *testing.T) {
			// Ada still sees her own through node and the filters.
			r := do(t, e.h, ada, `query($a: ID!) { node(id: $a) { ... on Allocation { id suggestion { id } } } predictions(filter: {kind: REBALANCE_SUGGESTION}) { edges { node { id } } } }`,
				map[string]any{"a": alloc.ID})
			if len(r.Errors) > 0 || string(r.Data["node"]) == "null" || string(r.Data["predictions"]) == `{"edges":[]}` {
				t.Fatalf("ada's own data: %s %+v", mustJSON(r.Data), r.Errors)
			}
		})
	})
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// dashboardFields is everything a dashboard shows.
const dashboardFields = `{ dashboard { windowDays latestAllocation { id reason createdAt weights { protocol { slug name } weightBps } }
	expectedApyBps portfolioRiskScore portfolioRiskChange realisedApyBps
	protocols { protocol { slug name latestRisk { score } } weightBps riskScore riskChange apyBps apyChangeBps apySlopeBpsPerDay expectedApyBps }
	pendingSuggestion { id expectedImprovementBps trades { protocol { slug } fromBps toBps amountUsd } } } }`

// allocate records an allocation of equal weights over slugs for token.
func allocate(t testing.TB, h http.Handler, token string, slugs ...string) {
	t.Helper()
	var ws []map[string]any
	for i, s := range slugs {
		w := 10000 / len(slugs)
		if i == 0 {
			w += 10000 % len(slugs)
		}
		ws = append(ws, map[string]any{"protocol": s, "weightBps": w})
	}
	body := map[string]any{"in": map[string]any{"weights": ws}}
	r := do(t, h, token, `mutation($in: RecordAllocationInput!) { recordAllocation(input: $in) { id } }`, body)
	if len(r.Errors) > 0 {
		t.Fatalf("recordAllocation: %+v", r.Errors)
	}
}

// TestDashboardStatementCount checks that a dashboard costs the same
// statements whatever the holdings and the window.
func TestDashboardStatementCount(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newAdviceEnv(t, db)
		e.ingestDays(t, 60, calm)
		if _, err := e.advice.RefreshForecasts(context.Background()); err != nil {
			t.Fatal(err)
		}
		count := func(token, query string) int64 {
			before := db.Statements()
			r := do(t, e.h, token, query, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", query, r.Errors)
			}
			return db.Statements() - before
		}
		two := registerVia(t, e.h, "two@example.com").AccessToken
		allocate(t, e.h, two, "nostra", "zklend")
		five := registerVia(t, e.h, "five@example.com").AccessToken
		allocate(t, e.h, five, "nostra", "zklend", "vesu", "ekubo", "jediswap")
		do(t, e.h, five, `{ rebalanceSuggestion { id } }`, nil)
		n2, n5 := count(two, dashboardFields), count(five, dashboardFields)
		n365 := count(five, `{ dashboard(windowDays: 365) { expectedApyBps protocols { protocol { slug } apySlopeBpsPerDay } } }`)
		// The session and user, the allocations, the daily series, the
		// forecasts, the latest suggestion, the protocols, their latest
		// risk scores (one statement for all).
		if n2 != n5 || n2 > 7 || n365 > n5 {
			t.Fatalf("dashboard statements: %d for 2 protocols, %d for 5, %d for a year's window; want the same, at most 7", n2, n5, n365)
		}
	})
}

// BenchmarkUserDashboard measures the dashboard of a user holding 10
// protocols with 365 days of history, through the HTTP handler.
func BenchmarkUserDashboard(b *testing.B) {
	eachDialect(b, func(b *testing.B, db *store.DB) {
		e := newAdviceEnv(b, db)
		admin := registerVia(b, e.h, "admin@example.com").AccessToken
		regimes := map[string]regime{}
		var slugs []string
		for i := range 10 {
			slug := []string{"nostra", "zklend", "vesu", "ekubo", "jediswap", "p6", "p7", "p8", "p9", "p10"}[i]
			if i >= 5 {
				r := do(b, e.h, admin, `mutation($in: UpsertProtocolInput!) { upsertProtocol(input: $in) { id } }`, map[string]any{"in": map[string]any{
					"slug": slug, "name": slug, "category": "LENDING", "auditScore": 80, "launchedOn": "2023-01-01"}})
				if len(r.Errors) > 0 {
					b.Fatalf("upsertProtocol: %+v", r.Errors)
				}
			}
			regimes[slug] = regime{apy: 300 + 40*i, util: 1000 + 800*i, wobble: 5 + i}
			slugs = append(slugs, slug)
		}
		e.ingestDays(b, 365, regimes)
		if _, err := e.advice.RefreshForecasts(context.Background()); err != nil {
			b.Fatal(err)
		}
		user := registerVia(b, e.h, "user@example.com").AccessToken
		allocate(b, e.h, user, slugs...)
		do(b, e.h, user, `mutation { updatePreferences(input: {rebalanceThresholdBps: 0}) { id } }`, nil)
		do(b, e.h, user, `{ rebalanceSuggestion { id } }`, nil)
		for _, w := range []int{7, 365} {
			b.Run("window"+strconv.Itoa(w), func(b *testing.B) {
				body, _ := json.Marshal(map[string]any{"query": strings.Replace(dashboardFields, "dashboard {", "dashboard(windowDays: "+strconv.Itoa(w)+") {", 1)})
				b.ReportAllocs()
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+user)
					rec := httptest.NewRecorder()
					e.h.ServeHTTP(rec, req)
					took = append(took, time.Since(start))
					if rec.Code != http.StatusOK || bytes.Contains(rec.Body.Bytes(), []byte(`"errors"`)) || !bytes.Contains(rec.Body.Bytes(), []byte(`"pendingSuggestion":{`)) {
						b.Fatalf("dashboard: %d %s", rec.Code, rec.Body)
					}
				}
				// The target is on the median; the mean (ns/op) hides it.
				slices.Sort(took)
				b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	})
}

// TestAdviceBadInput checks that every bad argument of the advice API is a
// BAD_USER_INPUT naming it, and that user-scoped fields need a sign-in.
func TestAdviceBadInput(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newAdviceEnv(t, db)
		e.ingestDays(t, 40, calm)
		ada := registerVia(t, e.h, "ada@example.com").AccessToken
		cases := []struct {
			name, token, query, code, mention string
		}{
			{"forecast horizon 0", "", `{ protocol(slug: "zklend") { yieldForecast(horizonDays: 0) { point } } }`, "BAD_USER_INPUT", "horizonDays"},
			{"forecast horizon 366", "", `{ protocol(slug: "zklend") { riskForecast(horizonDays: 366) { point } } }`, "BAD_USER_INPUT", "horizonDays"},
			{"unknown slug", "", `{ optimizeAllocation(input: {protocols: ["nope"]}) { expectedApyBps } }`, "BAD_USER_INPUT", "input.protocols[0]"},
			{"slug twice", "", `{ optimizeAllocation(input: {protocols: ["zklend", "zklend"]}) { expectedApyBps } }`, "BAD_USER_INPUT", "named twice"},
			{"max single 0", "", `{ optimizeAllocation(input: {maxSingleBps: 0}) { expectedApyBps } }`, "BAD_USER_INPUT", "maxSingleBps"},
			{"max single too small", "", `{ optimizeAllocation(input: {protocols: ["zklend", "vesu"], maxSingleBps: 4000}) { expectedApyBps } }`, "BAD_USER_INPUT", "maxSingleBps"},
			{"diversification beyond protocols", "", `{ optimizeAllocation(input: {protocols: ["zklend", "vesu"], minDiversification: 3}) { expectedApyBps } }`, "BAD_USER_INPUT", "minDiversification"},
			{"portfolio value 0", "", `{ optimizeAllocation(input: {portfolioValueUsd: "0"}) { expectedApyBps } }`, "BAD_USER_INPUT", "portfolioValueUsd"},
			{"portfolio value float", "", `{ optimizeAllocation(input: {portfolioValueUsd: 1.5}) { expectedApyBps } }`, "BAD_USER_INPUT", ""},
			{"dashboard window 0", ada, `{ dashboard(windowDays: 0) { windowDays } }`, "BAD_USER_INPUT", "windowDays"},
			{"dashboard window 366", ada, `{ dashboard(windowDays: 366) { windowDays } }`, "BAD_USER_INPUT", "windowDays"},
			{"risk history window", ada, `{ portfolioRiskHistory(windowDays: 0) { date } }`, "BAD_USER_INPUT", "windowDays"},
			{"performance window", "", `{ modelPerformance(kind: YIELD_FORECAST, horizonDays: 7, windowDays: 0) { count } }`, "BAD_USER_INPUT", "windowDays"},
			{"performance horizon", "", `{ modelPerformance(kind: RISK_FORECAST, horizonDays: 0) { count } }`, "BAD_USER_INPUT", "horizonDays"},
			{"backtest window", "", `{ backtest(horizonDays: 7, windowDays: 91) { forecasts } }`, "BAD_USER_INPUT", "BACKTEST_WINDOW_DAYS"},
			{"backtest slug", "", `{ backtest(protocols: ["nope"], horizonDays: 7) { forecasts } }`, "BAD_USER_INPUT", "nope"},
			{"predictions first", "", `{ predictions(first: 0) { edges { cursor } } }`, "BAD_USER_INPUT", "first"},
			{"predictions cursor", "", `{ predictions(after: "bogus") { edges { cursor } } }`, "BAD_USER_INPUT", "after"},
			{"predictions protocol", "", `{ predictions(filter: {protocol: "nope"}) { edges { cursor } } }`, "BAD_USER_INPUT", "filter.protocol"},
			{"allocation sum", ada, `mutation { recordAllocation(input: {weights: [{protocol: "zklend", weightBps: 9999}]}) { id } }`, "BAD_USER_INPUT", "10000"},
			{"allocation slug", ada, `mutation { recordAllocation(input: {weights: [{protocol: "nope", weightBps: 10000}]}) { id } }`, "BAD_USER_INPUT", "input.weights[0].protocol"},
			{"allocation twice", ada, `mutation { recordAllocation(input: {weights: [{protocol: "zklend", weightBps: 5000}, {protocol: "zklend", weightBps: 5000}]}) { id } }`, "BAD_USER_INPUT", "named twice"},
			{"allocation negative", ada, `mutation { recordAllocation(input: {weights: [{protocol: "zklend", weightBps: 10001}, {protocol: "vesu", weightBps: -1}]}) { id } }`, "BAD_USER_INPUT", "weightBps"},
			{"allocation tx hash", ada, `mutation { recordAllocation(input: {txHash: "0xZZ", weights: [{protocol: "zklend", weightBps: 10000}]}) { id } }`, "BAD_USER_INPUT", "felt"},
			{"allocation suggestion id", ada, `mutation { recordAllocation(input: {suggestionId: "bogus", weights: [{protocol: "zklend", weightBps: 10000}]}) { id } }`, "BAD_USER_INPUT", "suggestionId"},
			{"allocation signed out", "", `mutation { recordAllocation(input: {weights: [{protocol: "zklend", weightBps: 10000}]}) { id } }`, "UNAUTHENTICATED", ""},
			{"dashboard signed out", "", `{ dashboard { windowDays } }`, "UNAUTHENTICATED", ""},
			{"suggestion signed out", "", `{ rebalanceSuggestion { id } }`, "UNAUTHENTICATED", ""},
			{"run signed out", "", `mutation { runOptimization { id } }`, "UNAUTHENTICATED", ""},
			{"history signed out", "", `{ allocationHistory { edges { cursor } } }`, "UNAUTHENTICATED", ""},
			{"suggestion performance signed out", "", `{ modelPerformance(kind: REBALANCE_SUGGESTION, horizonDays: 7) { count } }`, "UNAUTHENTICATED", ""},
			// A token that is refused is reported, not served as a stranger
			// (the plan would silently use the default preferences).
			{"plan with a bad token", "not-a-token", `{ optimizeAllocation { expectedApyBps } }`, "UNAUTHENTICATED", ""},
			{"predictions with a bad token", "not-a-token", `{ predictions { edges { cursor } } }`, "UNAUTHENTICATED", ""},
		}
		for _, c := range cases {
			r := do(t, e.h, c.token, c.query, nil)
			if r.code() != c.code || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("%s: errors %+v, want %s mentioning %q", c.name, r.Errors, c.code, c.mention)
			}
		}
		// Nothing was recorded by the refused mutations.
		r := do(t, e.h, ada, `{ allocationHistory { edges { cursor } } }`, nil)
		if string(r.Data["allocationHistory"]) != `{"edges":[]}` {
			t.Fatalf("allocationHistory after refused mutations = %s", r.Data["allocationHistory"])
		}
	})
}
