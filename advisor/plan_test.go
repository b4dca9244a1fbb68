package advisor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// checkPlan fails unless plan allocates over exactly the protocols slugs
// (in id order) within its limits, with its figures computed from today's
// data and the yield forecasts.
func checkPlan(t *testing.T, s *advisor.Service, b *testBundle, what string, plan *obsqra.AllocationPlan, slugs ...string) {
	t.Helper()
	today := b.Today()
	var ids []int64
	for _, slug := range slugs {
		ids = append(ids, b.ID(t, slug))
	}
	slices.Sort(ids)
	slugOf := make(map[int64]string)
	for _, slug := range slugs {
		slugOf[b.ID(t, slug)] = slug
	}
	var got []int64
	for _, w := range plan.Weights {
		got = append(got, w.ProtocolID)
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("%s: plan over protocols %v, want %v", what, got, ids)
	}
	if sum := sumBps(plan.Weights); sum != 10000 {
		t.Errorf("%s: weights %v sum to %d, want 10000", what, plan.Weights, sum)
	}
	if sum := sumBps(plan.ParityWeights); sum != 10000 {
		t.Errorf("%s: parity weights %v sum to %d, want 10000", what, plan.ParityWeights, sum)
	}
	counted := 0
	var risk, expected float64
	for _, w := range plan.Weights {
		if w.WeightBps < 0 || w.WeightBps > plan.MaxSingleBps {
			t.Errorf("%s: weight %+v outside 0…%d", what, w, plan.MaxSingleBps)
		}
		if w.WeightBps >= 1000 {
			counted++
		}
		slug := slugOf[w.ProtocolID]
		risk += float64(w.WeightBps) * float64(b.risk[slug][today])
		f := forecastOf(t, s, b, obsqra.PredictionYieldForecast, slug)
		expected += float64(w.WeightBps) / 10000 * math.Round(f.Point*1e4) / 1e4
	}
	if counted < plan.MinDiversification || !plan.ConstraintsMet {
		t.Errorf("%s: %d weights of 1000 bps or more (min %d), ConstraintsMet %v; want the constraints met",
			what, counted, plan.MinDiversification, plan.ConstraintsMet)
	}
	if want := math.Round(risk/10000*1e4) / 1e4; plan.PortfolioRiskScore != want {
		t.Errorf("%s: PortfolioRiskScore = %v, want Σ weight × today's risk = %v", what, plan.PortfolioRiskScore, want)
	}
	if want := int(math.Round(expected)); plan.ExpectedApyBps != want {
		t.Errorf("%s: ExpectedApyBps = %d, want Σ weight × forecast = %d", what, plan.ExpectedApyBps, want)
	}
	// The contract's parity: s_i = apy_i × 10000 / (risk_i + 1), weight_i
	// = s_i × 10000 / Σ s, the last taking the remainder.
	sc := make([]int64, len(ids))
	var total int64
	for i, id := range ids {
		slug := slugOf[id]
		sc[i] = int64(apy(slug, today)) * 10000 / int64(b.risk[slug][today]+1)
		total += sc[i]
	}
	var parity []obsqra.Weight
	left := 10000
	for i, id := range ids {
		w := int(sc[i] * 10000 / total)
		if i == len(ids)-1 {
			w = left
		}
		left -= w
		parity = append(parity, obsqra.Weight{ProtocolID: id, WeightBps: w})
	}
	if !reflect.DeepEqual(plan.ParityWeights, parity) {
		t.Errorf("%s: ParityWeights = %v, want %v", what, plan.ParityWeights, parity)
	}
}

func TestOptimizeAllocation(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	_, err := s.OptimizeAllocation(b.anon, obsqra.OptimizeAllocationInput{})
	checkErr(t, "OptimizeAllocation(no history)", err, obsqra.ENOTFOUND, "history")

	s, b = setupSeeded(t, nil)

	// Anonymous: the default preferences, every enabled protocol with
	// enough history (not vesu, not jediswap).
	plan, err := s.OptimizeAllocation(b.anon, obsqra.OptimizeAllocationInput{})
	if err != nil {
		t.Fatalf("OptimizeAllocation(anonymous) = %v", err)
	}
	checkPlan(t, s, b, "anonymous plan", plan, seeded...)
	if plan.RiskTolerance != obsqra.RiskMedium || plan.MaxSingleBps != obsqra.DefaultMaxSingleBps ||
		plan.MinDiversification != obsqra.DefaultMinDiversification || plan.PortfolioValueUsd != obsqra.DefaultPortfolioValueUsd ||
		plan.HorizonDays != advisor.DefaultHorizonDays {
		t.Errorf("anonymous plan limits = %s %d %d %s %d, want the defaults", plan.RiskTolerance, plan.MaxSingleBps,
			plan.MinDiversification, plan.PortfolioValueUsd, plan.HorizonDays)
	}
	// Nothing is recorded.
	if ps := b.predictions(t, "", 0); len(ps) != 0 {
		t.Errorf("OptimizeAllocation recorded %d predictions", len(ps))
	}

	// Signed in: the user's preferences.
	ctx := b.SetPreferences(t, b.user, obsqra.Preferences{
		RiskTolerance: obsqra.RiskLow, RebalanceThresholdBps: 100, MaxSingleBps: 5000, MinDiversification: 3,
		MaxVolatilityBps: obsqra.MaxVolatility, MaxLiquidityTier: obsqra.MaxLiquidityTier,
	})
	plan, err = s.OptimizeAllocation(ctx, obsqra.OptimizeAllocationInput{})
	if err != nil {
		t.Fatalf("OptimizeAllocation(user) = %v", err)
	}
	checkPlan(t, s, b, "user's plan", plan, seeded...)
	if plan.RiskTolerance != obsqra.RiskLow || plan.MaxSingleBps != 5000 || plan.MinDiversification != 3 {
		t.Errorf("user's plan limits = %s %d %d, want LOW 5000 3", plan.RiskTolerance, plan.MaxSingleBps, plan.MinDiversification)
	}
	// The preferences bend to the protocols at hand: two protocols with
	// preferences asking for three.
	plan, err = s.OptimizeAllocation(ctx, obsqra.OptimizeAllocationInput{Protocols: []string{"zklend", "nostra"}})
	if err != nil {
		t.Fatalf("OptimizeAllocation(user, 2 protocols) = %v", err)
	}
	checkPlan(t, s, b, "user's plan of two", plan, "nostra", "zklend")
	if plan.MinDiversification != 2 || plan.MaxSingleBps != 5000 {
		t.Errorf("user's plan of two: limits %d %d, want min diversification 2, max single 5000", plan.MinDiversification, plan.MaxSingleBps)
	}

	// Explicit input wins over the preferences.
	value := obsqra.MustDecimal("250000.5")
	plan, err = s.OptimizeAllocation(ctx, obsqra.OptimizeAllocationInput{
		Protocols: []string{"ekubo", "zklend"}, RiskTolerance: ptr(obsqra.RiskHigh), MaxSingleBps: ptr(7000),
		MinDiversification: ptr(2), PortfolioValueUsd: &value,
	})
	if err != nil {
		t.Fatalf("OptimizeAllocation(explicit) = %v", err)
	}
	checkPlan(t, s, b, "explicit plan", plan, "zklend", "ekubo")
	if plan.RiskTolerance != obsqra.RiskHigh || plan.MaxSingleBps != 7000 || plan.MinDiversification != 2 || plan.PortfolioValueUsd != value {
		t.Errorf("explicit plan limits = %s %d %d %s, want HIGH 7000 2 %s", plan.RiskTolerance, plan.MaxSingleBps, plan.MinDiversification, plan.PortfolioValueUsd, value)
	}
}

func TestOptimizeAllocationTolerance(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	// Free limits over the calm and the hot market: the tolerance alone
	// decides how much of the hot one to take.
	plans := make(map[obsqra.RiskTolerance]*obsqra.AllocationPlan)
	for _, tol := range []obsqra.RiskTolerance{obsqra.RiskLow, obsqra.RiskMedium, obsqra.RiskHigh} {
		plan, err := s.OptimizeAllocation(b.anon, obsqra.OptimizeAllocationInput{
			Protocols: []string{"nostra", "zklend"}, RiskTolerance: ptr(tol), MaxSingleBps: ptr(10000), MinDiversification: ptr(1),
		})
		if err != nil {
			t.Fatalf("OptimizeAllocation(%s) = %v", tol, err)
		}
		checkPlan(t, s, b, string(tol)+" plan", plan, "nostra", "zklend")
		plans[tol] = plan
	}
	low, medium, high := plans[obsqra.RiskLow], plans[obsqra.RiskMedium], plans[obsqra.RiskHigh]
	if !(low.PortfolioRiskScore < high.PortfolioRiskScore && low.PortfolioRiskScore <= medium.PortfolioRiskScore && medium.PortfolioRiskScore <= high.PortfolioRiskScore) {
		t.Errorf("portfolio risk LOW %v, MEDIUM %v, HIGH %v: want it to grow with the tolerance, HIGH above LOW",
			low.PortfolioRiskScore, medium.PortfolioRiskScore, high.PortfolioRiskScore)
	}
	if !(low.ExpectedApyBps < high.ExpectedApyBps) {
		t.Errorf("expected APY LOW %d, HIGH %d: want HIGH to earn more for its risk", low.ExpectedApyBps, high.ExpectedApyBps)
	}
	// Under default limits too.
	var risks []float64
	for _, tol := range []obsqra.RiskTolerance{obsqra.RiskLow, obsqra.RiskHigh} {
		plan, err := s.OptimizeAllocation(b.anon, obsqra.OptimizeAllocationInput{RiskTolerance: ptr(tol)})
		if err != nil {
			t.Fatalf("OptimizeAllocation(%s, defaults) = %v", tol, err)
		}
		risks = append(risks, plan.PortfolioRiskScore)
	}
	if risks[1] < risks[0] {
		t.Errorf("portfolio risk under default limits: HIGH %v < LOW %v", risks[1], risks[0])
	}
}

func TestOptimizeAllocationInvalid(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	b.SetEnabled(t, "jediswap", false)
	zero, negative, huge := obsqra.MustDecimal("0"), obsqra.MustDecimal("-5"), obsqra.MustDecimal("1000000000000001")
	tests := []struct {
		name string
		in   obsqra.OptimizeAllocationInput
		want []string
	}{
		{"unknown protocol", obsqra.OptimizeAllocationInput{Protocols: []string{"nostra", "nope"}}, []string{"input.protocols[1]", `"nope"`}},
		{"disabled protocol", obsqra.OptimizeAllocationInput{Protocols: []string{"jediswap"}}, []string{"input.protocols[0]", "jediswap is disabled"}},
		{"duplicate", obsqra.OptimizeAllocationInput{Protocols: []string{"nostra", "zklend", "nostra"}}, []string{"input.protocols[2]", "named twice"}},
		{"no protocols", obsqra.OptimizeAllocationInput{Protocols: []string{}}, []string{"input.protocols", "1 to 100"}},
		{"short history", obsqra.OptimizeAllocationInput{Protocols: []string{"nostra", "vesu"}}, []string{"input.protocols[1]", "vesu"}},
		{"no history", obsqra.OptimizeAllocationInput{Protocols: []string{"nostra", "zklend", "ekubo", "vesu"}, MaxSingleBps: ptr(10000)}, []string{"input.protocols[3]"}},
		{"maxSingleBps 0", obsqra.OptimizeAllocationInput{MaxSingleBps: ptr(0)}, []string{"input.maxSingleBps", "got 0"}},
		{"maxSingleBps 10001", obsqra.OptimizeAllocationInput{MaxSingleBps: ptr(10001)}, []string{"input.maxSingleBps"}},
		{"maxSingleBps too low to invest", obsqra.OptimizeAllocationInput{MaxSingleBps: ptr(3000)}, []string{"maxSingleBps", "3334"}},
		{"maxSingleBps too low to diversify", obsqra.OptimizeAllocationInput{Protocols: []string{"nostra", "zklend"}, MaxSingleBps: ptr(5000), MinDiversification: ptr(11)}, []string{"input.minDiversification"}},
		{"minDiversification above the protocols", obsqra.OptimizeAllocationInput{MinDiversification: ptr(4)}, []string{"minDiversification", "4", "3 protocols"}},
		{"minDiversification negative", obsqra.OptimizeAllocationInput{MinDiversification: ptr(-1)}, []string{"input.minDiversification"}},
		{"riskTolerance", obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskTolerance("RECKLESS"))}, []string{"input.riskTolerance"}},
		{"portfolioValueUsd 0", obsqra.OptimizeAllocationInput{PortfolioValueUsd: &zero}, []string{"input.portfolioValueUsd"}},
		{"portfolioValueUsd negative", obsqra.OptimizeAllocationInput{PortfolioValueUsd: &negative}, []string{"input.portfolioValueUsd"}},
		{"portfolioValueUsd huge", obsqra.OptimizeAllocationInput{PortfolioValueUsd: &huge}, []string{"input.portfolioValueUsd"}},
	}
	for _, tt := range tests {
		plan, err := s.OptimizeAllocation(b.ctx, tt.in)
		if plan != nil {
			t.Errorf("OptimizeAllocation(%s) = %+v, want no plan", tt.name, plan)
		}
		checkErr(t, "OptimizeAllocation("+tt.name+")", err, obsqra.EINVALID, tt.want...)
	}
}

// checkRecorded fails unless the prediction with id records run for user:
// an OPTIMIZATION decision whose digest, output and recomputation match,
// and a REBALANCE_SUGGESTION prediction of the plan's APY.
func checkRecorded(t *testing.T, s *advisor.Service, b *testBundle, user *obsqra.User, id int64, plan obsqra.AllocationPlan, sug *obsqra.RebalanceSuggestion) *obsqra.Prediction {
	t.Helper()
	ctx := context.Background()
	p, err := b.DB.Prediction(ctx, id)
	if err != nil {
		t.Fatalf("Prediction(%d) = %v", id, err)
	}
	today := b.Today()
	if p.Kind != obsqra.PredictionRebalanceSuggestion || p.UserID != user.ID || p.ProtocolID != 0 || p.HorizonDays != advisor.DefaultHorizonDays ||
		p.Origin != today || p.Target != today+advisor.DefaultHorizonDays || p.ModelVersion != advisor.ModelVersion || p.DecisionID == 0 {
		t.Errorf("prediction %d = %+v, want a suggestion for user %d from today (%s) at horizon 7", id, p, user.ID, today)
	}
	// Its point is the plan's forecast APY.
	var point float64
	for _, w := range plan.Weights {
		for _, slug := range seeded {
			if b.ID(t, slug) == w.ProtocolID {
				point += float64(w.WeightBps) / 10000 * forecastOf(t, s, b, obsqra.PredictionYieldForecast, slug).Point
			}
		}
	}
	if !near(p.Point, point, 1e-9) || !(p.Lower80 <= p.Point && p.Point <= p.Upper80) {
		t.Errorf("prediction %d: point %v in [%v, %v], want the plan's forecast APY %v", id, p.Point, p.Lower80, p.Upper80, point)
	}
	d, err := b.DB.Decision(ctx, p.DecisionID)
	if err != nil {
		t.Fatalf("Decision(%d) = %v", p.DecisionID, err)
	}
	sum := sha256.Sum256(d.Inputs)
	if d.Kind != obsqra.DecisionOptimization || d.ModelVersion != advisor.ModelVersion || hex.EncodeToString(sum[:]) != p.InputsDigest {
		t.Errorf("decision %d = %s %s, inputs digest %x; want OPTIMIZATION %s, the prediction's digest %s",
			d.ID, d.Kind, d.ModelVersion, sum, advisor.ModelVersion, p.InputsDigest)
	}
	in := decode[advisor.OptimizationInputs](t, "decision inputs", d.Inputs)
	if in.UserID != user.ID || (in.Rebalance != nil) != (sug != nil) {
		t.Errorf("decision inputs: user %d, rebalance %+v; want user %d, a rebalance %v", in.UserID, in.Rebalance, user.ID, sug != nil)
	}
	out := decode[advisor.Decided](t, "decision output", d.Output)
	if !reflect.DeepEqual(out.Plan, plan) {
		t.Errorf("decision output plan = %+v, want %+v", out.Plan, plan)
	}
	var v obsqra.DecisionVerification
	if err := (advisor.Optimizations{}).Verify(ctx, d, &v); err != nil || !v.Matches || string(v.Recomputed) != string(d.Output) {
		t.Errorf("Optimizations.Verify(%d) = %s, %v, %v; want the recorded output %s", d.ID, v.Recomputed, v.Matches, err, d.Output)
	}
	if owner, public := (advisor.Optimizations{}).Owner(d); owner != user.ID || public {
		t.Errorf("Optimizations.Owner(%d) = %d, %v, want %d, false", d.ID, owner, public, user.ID)
	}
	// The details are the suggestion (or the bare plan).
	got, ok, err := p.Suggestion()
	if err != nil || ok != (sug != nil) {
		t.Fatalf("prediction %d Suggestion() = %v, %v, want ok %v", id, ok, err, sug != nil)
	}
	if sug != nil {
		if !reflect.DeepEqual(got, sug) {
			t.Errorf("prediction %d records suggestion %+v, want %+v", id, got, sug)
		}
		if want := *out.Suggestion; !reflect.DeepEqual(got.Plan, want.Plan) || got.AllocationID != want.AllocationID || got.CostUsd != want.CostUsd {
			t.Errorf("prediction %d suggestion %+v differs from its decision's %+v", id, got, want)
		}
	} else if !reflect.DeepEqual(got.Plan, plan) || got.AllocationID != 0 || out.Suggestion != nil {
		t.Errorf("prediction %d details = %+v, want the plan %+v without a suggestion", id, got, plan)
	}
	return p
}

func TestRunOptimization(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db)
		_, err := s.RunOptimization(b.anon)
		checkErr(t, "RunOptimization(anonymous)", err, obsqra.EUNAUTHENTICATED)

		before := b.LastEvent(t)
		run, err := s.RunOptimization(b.ctx)
		if err != nil {
			t.Fatalf("RunOptimization() = %v", err)
		}
		if run.Suggestion != nil {
			t.Errorf("RunOptimization(no allocation).Suggestion = %+v, want nil", run.Suggestion)
		}
		want, err := s.OptimizeAllocation(b.ctx, obsqra.OptimizeAllocationInput{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(run.Plan, *want) {
			t.Errorf("RunOptimization().Plan = %+v, want OptimizeAllocation's %+v", run.Plan, *want)
		}
		if !run.CreatedAt.Equal(now0) {
			t.Errorf("RunOptimization().CreatedAt = %v, want %v", run.CreatedAt, now0)
		}
		p := checkRecorded(t, s, b, b.user, run.ID, run.Plan, nil)
		if run.DecisionID != p.DecisionID {
			t.Errorf("RunOptimization().DecisionID = %d, want %d", run.DecisionID, p.DecisionID)
		}
		events := b.Events(t, before, obsqra.TopicPredictionCreated)
		if len(events) != 1 || events[0].OwnerID != b.user.ID {
			t.Fatalf("prediction.created events = %+v, want one owned by user %d", events, b.user.ID)
		}
		if pl := decodeEvent[obsqra.Prediction](t, &events[0]); !samePrediction(t, *pl, *p) {
			t.Errorf("event payload = %+v, want %+v", pl, p)
		}
		if got, err := s.OptimizationRun(b.ctx, run.ID); err != nil || !reflect.DeepEqual(got, run) {
			t.Errorf("OptimizationRun(%d) = %+v, %v, want %+v", run.ID, got, err, run)
		}
		// A plan made without an allocation is no suggestion.
		_, err = s.Suggestion(b.ctx, run.ID)
		checkErr(t, "Suggestion(plan without allocation)", err, obsqra.ENOTFOUND)

		// With an allocation the run carries the move from it.
		alloc := b.record(t, b.ctx, "", "nostra", 7000, "ekubo", 3000)
		run, err = s.RunOptimization(b.ctx)
		if err != nil {
			t.Fatalf("RunOptimization(allocation) = %v", err)
		}
		if run.Suggestion == nil {
			t.Fatalf("RunOptimization(allocation).Suggestion = nil, want the move from allocation %d", alloc.ID)
		}
		sug := run.Suggestion
		if sug.ID != run.ID || sug.UserID != b.user.ID || sug.AllocationID != alloc.ID || sug.DecisionID != run.DecisionID ||
			!reflect.DeepEqual(sug.Plan, run.Plan) {
			t.Errorf("RunOptimization(allocation).Suggestion = %+v, want id %d, user %d, allocation %d, the run's plan",
				sug, run.ID, b.user.ID, alloc.ID)
		}
		checkMove(t, s, b, sug, alloc, obsqra.DefaultPortfolioValueUsd)
		checkRecorded(t, s, b, b.user, run.ID, run.Plan, sug)
		if got, err := s.OptimizationRun(b.ctx, run.ID); err != nil || !reflect.DeepEqual(got, run) {
			t.Errorf("OptimizationRun(%d) = %+v, %v, want %+v", run.ID, got, err, run)
		}
		other, _ := b.User(t, "other@example.com", obsqra.DefaultPreferences())
		for _, ctx := range []context.Context{b.anon, b.ctxOf(other)} {
			_, err := s.OptimizationRun(ctx, run.ID)
			checkErr(t, "OptimizationRun(another's)", err, obsqra.ENOTFOUND)
		}
	})
}
