package advisor

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
)

// TestEligible: which protocols the volatility and liquidity limits leave,
// and the refusal naming the limit when they leave none.
func TestEligible(t *testing.T) {
	t.Parallel()
	ip := func(v int) *int { return &v }
	base := OptimizationInputs{ProtocolIDs: []int64{1, 2, 3}, VolatilityBps: []int64{50, 400, 3000}, LiquidityTiers: []int64{2, 0, 3}}
	tests := []struct {
		name          string
		maxVol, tier  *int
		want          []int
		wantErrSubstr []string
	}{
		{"no limits (a decision recorded before them)", nil, nil, []int{0, 1, 2}, nil},
		{"the defaults", ip(obsqra.MaxVolatility), ip(obsqra.MaxLiquidityTier), []int{0, 1, 2}, nil},
		{"volatility at a protocol's stays", ip(400), nil, []int{0, 1}, nil},
		{"volatility", ip(399), nil, []int{0}, nil},
		{"tier", nil, ip(2), []int{0, 1}, nil},
		{"both", ip(400), ip(1), []int{1}, nil},
		{"volatility excludes all", ip(49), ip(3), nil, []string{"maxVolatilityBps 49 excludes every one of the 3 protocols", "least volatile is at 50 bps"}},
		{"both exclude all", ip(49), ip(-1), nil, []string{"maxVolatilityBps 49 and maxLiquidityTier -1 each exclude every one"}},
		{"tier excludes all", nil, ip(-1), nil, []string{"maxLiquidityTier -1 excludes every one of the 3 protocols", "deepest is in tier 0"}},
		{"together exclude all", ip(100), ip(1), nil, []string{"maxVolatilityBps 100 and maxLiquidityTier 1 together exclude every one", "no protocol meets both"}},
	}
	for _, tt := range tests {
		in := base
		in.MaxVolatilityBps, in.MaxLiquidityTier = tt.maxVol, tt.tier
		got, err := in.eligible()
		if tt.wantErrSubstr == nil {
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: eligible() = %v, %v; want %v", tt.name, got, err, tt.want)
			}
			continue
		}
		if obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("%s: eligible() = %v, %v; want EINVALID", tt.name, got, err)
			continue
		}
		for _, s := range tt.wantErrSubstr {
			if !strings.Contains(obsqra.ErrorMessage(err), s) {
				t.Errorf("%s: %q does not say %q", tt.name, obsqra.ErrorMessage(err), s)
			}
		}
	}
	// Recorded inputs whose per-protocol values do not match are not
	// decided (a corrupted record does not verify).
	bad := base
	bad.MaxVolatilityBps, bad.VolatilityBps = ip(100), []int64{1}
	if _, err := bad.eligible(); err == nil || obsqra.ErrorCode(err) == obsqra.EINVALID {
		t.Errorf("eligible(1 volatility for 3 protocols) = %v, want an internal error", err)
	}
}

// TestDecideWithoutLimitsIsUnchanged: the inputs of a decision recorded
// before the limits existed carry none of their fields, decide as before,
// and the plan they give carries no limits either, so its output is the
// recorded one byte for byte.
func TestDecideWithoutLimitsIsUnchanged(t *testing.T) {
	t.Parallel()
	in := OptimizationInputs{
		UserID: 1, Protocols: []string{"a", "b", "c"}, ProtocolIDs: []int64{1, 2, 3},
		ExpectedApyBps: []float64{400, 900, 600}, ApySigmaBps: []float64{5, 80, 20}, LatestApyBps: []int64{400, 900, 600},
		Risks: []int64{20, 70, 40}, RiskTolerance: obsqra.RiskMedium, MaxSingleBps: 6000, MinDiversification: 2,
		PortfolioValueUsd: obsqra.MustDecimal("10000"), HorizonDays: 7,
	}
	old, err := decide(in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(old)
	if strings.Contains(string(b), "maxVolatilityBps") || strings.Contains(string(b), "maxLiquidityTier") {
		t.Errorf("a plan without limits records them: %s", b)
	}
	// With limits that exclude nothing, the same weights.
	in.MaxVolatilityBps, in.MaxLiquidityTier = new(int), new(int)
	*in.MaxVolatilityBps, *in.MaxLiquidityTier = obsqra.MaxVolatility, obsqra.MaxLiquidityTier
	in.VolatilityBps, in.LiquidityTiers = []int64{10, 900, 100}, []int64{0, 3, 1}
	all, err := decide(in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all.Plan.Weights, old.Plan.Weights) {
		t.Errorf("weights with limits that exclude nothing %v, without limits %v", all.Plan.Weights, old.Plan.Weights)
	}
	// Excluding b: its weight is 0 and the others hold 10000 within the
	// limits.
	*in.MaxLiquidityTier = 2
	ex, err := decide(in)
	if err != nil {
		t.Fatal(err)
	}
	if w := ex.Plan.Weights; w[1].WeightBps != 0 || w[0].WeightBps+w[2].WeightBps != 10000 || w[0].WeightBps > 6000 || w[2].WeightBps > 6000 || !ex.Plan.ConstraintsMet {
		t.Errorf("weights excluding b: %+v (constraints met %v)", w, ex.Plan.ConstraintsMet)
	}
}
