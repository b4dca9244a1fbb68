package advisor_test

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/store"
)

// now0 is the injected clock's start: 18:00 UTC, after the day's sample
// (observed at noon).
var now0 = time.Date(2025, 6, 30, 18, 0, 0, 0, time.UTC)

// historyDays is how many days of history seed feeds.
const historyDays = 120

// The seeded market trades yield against risk: calm (nostra) pays little
// at low utilization in a deep pool; hot (zklend) pays most at 95 %
// utilization in a shallow pool (liquidity tier 3) with a jumpy rate; mid
// (ekubo) sits in between. short (vesu) has too little history for a
// forecast, and jediswap none at all.
var (
	calm advisortest.Shape = func(d obsqra.Date) (int, int, string) { return 400 + (int(d)%3-1)*2, 2000, "100000000" }
	hot  advisortest.Shape = func(d obsqra.Date) (int, int, string) { return 900 + 150*((int(d)*7)%5-2), 9500, "500000" }
	mid  advisortest.Shape = func(d obsqra.Date) (int, int, string) { return 600 + (int(d)%7)*5, 6000, "20000000" }
	// short is vesu's market, of which seed feeds shortDays days.
	short advisortest.Shape = func(d obsqra.Date) (int, int, string) { return 500, 5000, "20000000" }
)

const shortDays = 20

// shapes are the seeded protocols' markets by slug.
var shapes = map[string]advisortest.Shape{"nostra": calm, "zklend": hot, "ekubo": mid, "vesu": short}

// seeded are the protocols seed gives enough history, in id order.
var seeded = []string{"nostra", "zklend", "ekubo"}

// testBundle holds what an advisor test works with besides the service.
type testBundle struct {
	*advisortest.Env
	anon context.Context
	// user is a signed-in user with the default preferences; ctx is their
	// context.
	user      *obsqra.User
	ctx       context.Context
	portfolio *portfolio.Service
	// risk holds the risk score the market gave each seeded day, by slug.
	risk map[string]map[obsqra.Date]int
	// gas and slippage are the advisor's costs of a trade.
	gas, slippage float64
}

// setup returns an advisor on db with the clock at now0, after configure
// has adjusted its Config. The market is empty: see seed.
func setup(t *testing.T, db *store.DB, configure ...func(*advisor.Config)) (*advisor.Service, *testBundle) {
	t.Helper()
	env := advisortest.New(t, db, now0)
	b := &testBundle{Env: env, anon: context.Background(), risk: make(map[string]map[obsqra.Date]int)}
	b.user, b.ctx = env.User(t, "user@example.com", obsqra.DefaultPreferences())
	b.portfolio = portfolio.New(db, portfolio.Config{Now: env.Clock.Now})
	// A zero gas or slippage is free: the server passes its defaults.
	cfg := advisor.Config{Now: env.Clock.Now, GasUsdPerMove: advisor.DefaultGasUsdPerMove, SlippageBps: advisor.DefaultSlippageBps}
	for _, f := range configure {
		f(&cfg)
	}
	b.gas, b.slippage = cfg.GasUsdPerMove, cfg.SlippageBps
	s, err := advisor.New(db, env.Market, env.Decisions, cfg)
	if err != nil {
		t.Fatalf("advisor.New() = %v", err)
	}
	return s, b
}

// setupSeeded is setup on a database holding the seeded market (see
// seed): on SQLite (db nil or SQLite) a copy of a template seeded once per
// process, on PostgreSQL db seeded in place.
func setupSeeded(t *testing.T, db *store.DB, configure ...func(*advisor.Config)) (*advisor.Service, *testBundle) {
	t.Helper()
	if db != nil && db.Dialect() != store.DialectSQLite {
		s, b := setup(t, db, configure...)
		b.seed(t)
		return s, b
	}
	db = advisortest.SQLiteFrom(t, "advisor", now0, func(t testing.TB, env *advisortest.Env) { seed(t, env) })
	s, b := setup(t, db, configure...)
	series, err := db.DailySeries(context.Background(), []int64{b.ID(t, "nostra"), b.ID(t, "zklend"), b.ID(t, "ekubo"), b.ID(t, "vesu")}, 0, b.Today())
	if err != nil {
		t.Fatalf("DailySeries() = %v", err)
	}
	for slug := range shapes {
		b.risk[slug] = make(map[obsqra.Date]int)
		for _, pt := range series[b.ID(t, slug)] {
			b.risk[slug][pt.Day] = *pt.RiskScore
		}
	}
	return s, b
}

// seed feeds historyDays days of calm, hot and mid ending today, and the
// last shortDays days of short.
func seed(t testing.TB, env *advisortest.Env) map[string]map[obsqra.Date]int {
	t.Helper()
	today := env.Today()
	risk := make(map[string]map[obsqra.Date]int)
	for _, slug := range seeded {
		risk[slug] = env.Feed(t, slug, today-historyDays+1, today, shapes[slug])
	}
	risk["vesu"] = env.Feed(t, "vesu", today-shortDays+1, today, shapes["vesu"])
	return risk
}

// seed seeds b's database in place.
func (b *testBundle) seed(t *testing.T) {
	t.Helper()
	for slug, r := range seed(t, b.Env) {
		b.risk[slug] = r
	}
}

// feed feeds slug's shape from day from through day to.
func (b *testBundle) feed(t *testing.T, slug string, from, to obsqra.Date) {
	t.Helper()
	risk := b.Feed(t, slug, from, to, shapes[slug])
	if b.risk[slug] == nil {
		b.risk[slug] = make(map[obsqra.Date]int)
	}
	for d, r := range risk {
		b.risk[slug][d] = r
	}
}

// apy is slug's seeded APY on day d.
func apy(slug string, d obsqra.Date) int {
	a, _, _ := shapes[slug](d)
	return a
}

// protocols returns the seeded protocols with the given slugs.
func (b *testBundle) protocols(t *testing.T, slugs ...string) []*obsqra.Protocol {
	t.Helper()
	out := make([]*obsqra.Protocol, len(slugs))
	for i, slug := range slugs {
		p, ok := b.Protocols[slug]
		if !ok {
			t.Fatalf("no protocol %q", slug)
		}
		out[i] = &p
	}
	return out
}

// record records weights (slug, bps, slug, bps, …) as ctx's user's
// allocation.
func (b *testBundle) record(t *testing.T, ctx context.Context, value string, weights ...any) *obsqra.Allocation {
	t.Helper()
	in := obsqra.RecordAllocationInput{Reason: obsqra.ReasonUserInitiated}
	for i := 0; i < len(weights); i += 2 {
		in.Weights = append(in.Weights, obsqra.WeightInput{Protocol: weights[i].(string), WeightBps: weights[i+1].(int)})
	}
	if value != "" {
		v := obsqra.MustDecimal(value)
		in.PortfolioValueUsd = &v
	}
	a, err := b.portfolio.RecordAllocation(ctx, in)
	if err != nil {
		t.Fatalf("RecordAllocation(%v) = %v", weights, err)
	}
	return a
}

// predictions returns every prediction ctx's viewer may see of kind
// ("" for all), newest first.
func (b *testBundle) predictions(t *testing.T, kind obsqra.PredictionKind, viewer int64) []obsqra.Prediction {
	t.Helper()
	ps, err := b.DB.Predictions(context.Background(), store.PredictionQuery{Kind: kind, ViewerID: viewer, Limit: 10_000})
	if err != nil {
		t.Fatalf("Predictions(%s) = %v", kind, err)
	}
	return ps
}

// checkErr is the shared obsqratest.CheckErr.
var checkErr = obsqratest.CheckErr

// sumBps returns the sum of ws.
func sumBps(ws []obsqra.Weight) int {
	s := 0
	for _, w := range ws {
		s += w.WeightBps
	}
	return s
}

// weightOf returns the weight of id in ws, 0 when absent.
func weightOf(ws []obsqra.Weight, id int64) int {
	for _, w := range ws {
		if w.ProtocolID == id {
			return w.WeightBps
		}
	}
	return 0
}

// near reports whether a and b differ by at most tol.
func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func ptr[T any](v T) *T { return &v }

// sameJSON reports whether a and b are the same JSON value (PostgreSQL
// keeps event payloads as jsonb, which orders an object's keys its own way).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return reflect.DeepEqual(decode[any](t, "JSON", a), decode[any](t, "JSON", b))
}

// samePrediction reports whether a and b are the same prediction, their
// details the same JSON.
func samePrediction(t *testing.T, a, b obsqra.Prediction) bool {
	t.Helper()
	if !sameJSON(t, a.Details, b.Details) {
		return false
	}
	a.Details, b.Details = nil, nil
	return reflect.DeepEqual(a, b)
}

// show formats v as JSON, pointers followed, for a failure message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// decode decodes JSON b into a new T.
// decodeEvent returns e's payload as the catalogue decodes it.
func decodeEvent[T any](t *testing.T, e *obsqra.Event) *T {
	t.Helper()
	v, err := obsqra.EventValue[T](e)
	if err != nil {
		t.Fatalf("decode event %d %s: %v", e.ID, e.Payload, err)
	}
	return v
}

func decode[T any](t *testing.T, what string, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s %s: %v", what, b, err)
	}
	return v
}
