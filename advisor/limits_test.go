package advisor_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// latestScored returns the volatility and liquidity tier of slug's latest
// scored day: what a plan's limits are held against.
func latestScored(t *testing.T, b *testBundle, slug string) (vol, tier int) {
	t.Helper()
	id := b.ID(t, slug)
	series, err := b.DB.DailySeries(context.Background(), []int64{id}, 0, b.Today())
	if err != nil {
		t.Fatal(err)
	}
	pts := series[id]
	for i := len(pts) - 1; i >= 0; i-- {
		if pts[i].RiskScore != nil && pts[i].LiquidityTier != nil {
			return pts[i].VolatilityBps, *pts[i].LiquidityTier
		}
	}
	t.Fatalf("%s has no scored day", slug)
	return 0, 0
}

// weightsBySlug returns a plan's weights by protocol slug.
func weightsBySlug(t *testing.T, b *testBundle, plan *obsqra.AllocationPlan) map[string]int {
	t.Helper()
	out := make(map[string]int)
	for _, slug := range seeded {
		for _, w := range plan.Weights {
			if w.ProtocolID == b.ID(t, slug) {
				out[slug] = w.WeightBps
			}
		}
	}
	return out
}

// TestOptimizeAllocationLimits: a protocol above maxVolatilityBps or
// maxLiquidityTier gets no weight, the others share 10000 bps within the
// other limits; a limit that leaves no protocol, or too few for the
// explicit ones, is refused naming it.
func TestOptimizeAllocationLimits(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	vol := make(map[string]int)
	tier := make(map[string]int)
	for _, slug := range seeded {
		vol[slug], tier[slug] = latestScored(t, b, slug)
	}
	// The seeded market: zklend is the volatile one in the shallow pool.
	if !(vol["zklend"] > vol["ekubo"] && vol["zklend"] > vol["nostra"]) || tier["zklend"] != 3 || tier["nostra"] != 0 {
		t.Fatalf("seeded volatilities %v and tiers %v are not what the test expects", vol, tier)
	}

	check := func(what string, in obsqra.OptimizeAllocationInput, excluded ...string) *obsqra.AllocationPlan {
		t.Helper()
		plan, err := s.OptimizeAllocation(b.anon, in)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		checkPlan(t, s, b, what, plan, seeded...)
		w := weightsBySlug(t, b, plan)
		sum := 0
		for _, slug := range seeded {
			sum += w[slug]
		}
		for _, slug := range excluded {
			if w[slug] != 0 {
				t.Errorf("%s: %s got %d bps, want 0", what, slug, w[slug])
			}
		}
		if sum != 10000 {
			t.Errorf("%s: weights %v", what, w)
		}
		return plan
	}

	// Without limits zklend, the best payer, gets weight.
	plan := check("no limits", obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh)})
	if w := weightsBySlug(t, b, plan); w["zklend"] == 0 {
		t.Fatalf("without limits zklend gets no weight (%v): the test shows nothing", w)
	}
	if plan.MaxVolatilityBps == nil || *plan.MaxVolatilityBps != obsqra.MaxVolatility || plan.MaxLiquidityTier == nil || *plan.MaxLiquidityTier != obsqra.MaxLiquidityTier {
		t.Errorf("plan limits %v %v, want the defaults", plan.MaxVolatilityBps, plan.MaxLiquidityTier)
	}
	// At zklend's volatility it stays; one below, it goes.
	check("volatility at zklend's", obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh), MaxVolatilityBps: ptr(vol["zklend"])})
	plan = check("volatility below zklend's", obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh), MaxVolatilityBps: ptr(vol["zklend"] - 1)}, "zklend")
	if *plan.MaxVolatilityBps != vol["zklend"]-1 {
		t.Errorf("plan's maxVolatilityBps = %d, want %d", *plan.MaxVolatilityBps, vol["zklend"]-1)
	}
	check("tier 2", obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh), MaxLiquidityTier: ptr(2)}, "zklend")
	// Tier 0 leaves nostra alone: the default limits bend to one
	// protocol, as they bend to a short list.
	plan = check("tier 0", obsqra.OptimizeAllocationInput{MaxLiquidityTier: ptr(0), MaxVolatilityBps: ptr(vol["nostra"])}, "zklend", "ekubo")
	if w := weightsBySlug(t, b, plan); w["nostra"] != 10000 || plan.MaxSingleBps != 10000 || plan.MinDiversification != 1 {
		t.Errorf("tier 0: weights %v, max single %d, min diversification %d; want all in nostra, 10000, 1", w, plan.MaxSingleBps, plan.MinDiversification)
	}

	// Refusals name the limit.
	leastVol := min(vol["nostra"], vol["ekubo"], vol["zklend"])
	refused := []struct {
		name string
		in   obsqra.OptimizeAllocationInput
		want []string
	}{
		{"volatility excludes all", obsqra.OptimizeAllocationInput{MaxVolatilityBps: ptr(leastVol - 1)},
			[]string{"maxVolatilityBps " + strconv.Itoa(leastVol-1), "excludes every one of the 3 protocols", "least volatile is at " + strconv.Itoa(leastVol)}},
		{"explicit max single too low for what is left", obsqra.OptimizeAllocationInput{MaxLiquidityTier: ptr(2), MaxSingleBps: ptr(4000)},
			[]string{"maxSingleBps 4000", "the 2 of 3 protocols that maxVolatilityBps 1000000 and maxLiquidityTier 2 leave", "at least 5000"}},
		{"explicit diversification above what is left", obsqra.OptimizeAllocationInput{MaxLiquidityTier: ptr(2), MinDiversification: ptr(3)},
			[]string{"minDiversification 3", "the 2 of 3 protocols that maxVolatilityBps 1000000 and maxLiquidityTier 2 leave"}},
		{"maxVolatilityBps negative", obsqra.OptimizeAllocationInput{MaxVolatilityBps: ptr(-1)}, []string{"input.maxVolatilityBps", "got -1"}},
		{"maxVolatilityBps above the scale", obsqra.OptimizeAllocationInput{MaxVolatilityBps: ptr(obsqra.MaxVolatility + 1)}, []string{"input.maxVolatilityBps", "1000001"}},
		{"maxLiquidityTier negative", obsqra.OptimizeAllocationInput{MaxLiquidityTier: ptr(-1)}, []string{"input.maxLiquidityTier", "got -1"}},
		{"maxLiquidityTier 4", obsqra.OptimizeAllocationInput{MaxLiquidityTier: ptr(4)}, []string{"input.maxLiquidityTier", "got 4"}},
	}
	for _, tt := range refused {
		plan, err := s.OptimizeAllocation(b.anon, tt.in)
		if plan != nil {
			t.Errorf("%s: plan %+v, want none", tt.name, plan)
		}
		checkErr(t, tt.name, err, obsqra.EINVALID, tt.want...)
	}
}

// TestRunOptimizationObeysPreferenceLimits: a user's maxLiquidityTier and
// maxVolatilityBps hold in the plan recorded for them, the decision
// records the limits and what each protocol was held against, and it
// verifies.
func TestRunOptimizationObeysPreferenceLimits(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db)
		prefs := b.user.Preferences
		prefs.MaxLiquidityTier = 2
		prefs.RiskTolerance = obsqra.RiskHigh
		ctx := b.SetPreferences(t, b.user, prefs)
		run, err := s.RunOptimization(ctx)
		if err != nil {
			t.Fatalf("RunOptimization() = %v", err)
		}
		if w := weightsBySlug(t, b, &run.Plan); w["zklend"] != 0 || w["nostra"]+w["ekubo"] != 10000 {
			t.Errorf("weights %v, want none in zklend (tier 3)", w)
		}
		if run.Plan.MaxLiquidityTier == nil || *run.Plan.MaxLiquidityTier != 2 {
			t.Errorf("plan's maxLiquidityTier = %v, want 2", run.Plan.MaxLiquidityTier)
		}
		checkRecorded(t, s, b, b.user, run.ID, run.Plan, run.Suggestion)
	})
}
