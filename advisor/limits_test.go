package advisor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
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

// fakeSignatures is a SignatureChecker over the store with a fixed
// verdict.
type fakeSignatures struct {
	db    *store.DB
	valid *bool
}

func (f fakeSignatures) SignedConstraintsByID(ctx context.Context, id int64) (*obsqra.SignedConstraints, error) {
	return f.db.SignedConstraintsByID(ctx, id)
}

func (f fakeSignatures) VerifySignedConstraints(context.Context, *obsqra.SignedConstraints) (*bool, error) {
	return f.valid, nil
}

// TestPlansObeySignedConstraints: once a user's wallet signed a constraint
// set, every plan given to them obeys it, even when the request or their
// preferences are looser; the decision names the set, and verifying it
// reports the set signed, its signature's verdict and the limits met. A
// set no plan can meet is refused saying it is the signed one.
func TestPlansObeySignedConstraints(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db)
		ctx := context.Background()
		signer, _ := obsqra.ParseAddress("0x4a3")
		sign := func(set obsqra.ConstraintSet) *obsqra.SignedConstraints {
			t.Helper()
			at := b.Clock.Now()
			sc := &obsqra.SignedConstraints{UserID: b.user.ID, Signer: signer, ChainID: "SN_SEPOLIA", Nonce: fmt.Sprintf("%032x", at.UnixNano()),
				Set: set, Signature: []obsqra.Felt{obsqra.FeltFromUint64(1), obsqra.FeltFromUint64(2)}, MessageHash: obsqra.FeltFromUint64(3),
				IssuedAt: at, ExpiresAt: at.Add(time.Minute), SignedAt: at}
			if err := b.DB.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendSignedConstraints(ctx, sc) }); err != nil {
				t.Fatal(err)
			}
			return sc
		}
		sc := sign(obsqra.ConstraintSet{MaxSingleBps: 7000, MinDiversification: 2, MaxVolatilityBps: obsqra.MaxVolatility, MaxLiquidityTier: 2})

		// A what-if asking for looser limits gets the signed ones.
		plan, err := s.OptimizeAllocation(b.ctx, obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh), MaxSingleBps: ptr(10000), MinDiversification: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		w := weightsBySlug(t, b, plan)
		if w["zklend"] != 0 || plan.MaxSingleBps != 7000 || plan.MinDiversification != 2 || *plan.MaxLiquidityTier != 2 || w["nostra"] > 7000 || w["ekubo"] > 7000 {
			t.Errorf("what-if under a signed set: weights %v, limits %d %d %d", w, plan.MaxSingleBps, plan.MinDiversification, *plan.MaxLiquidityTier)
		}
		// Anonymous callers are not bound by anyone's set.
		if anon, err := s.OptimizeAllocation(b.anon, obsqra.OptimizeAllocationInput{RiskTolerance: ptr(obsqra.RiskHigh)}); err != nil || weightsBySlug(t, b, anon)["zklend"] == 0 {
			t.Errorf("anonymous plan = %+v, %v; want zklend weighed", anon, err)
		}

		run, err := s.RunOptimization(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if weightsBySlug(t, b, &run.Plan)["zklend"] != 0 {
			t.Errorf("recorded plan weighs zklend: %+v", run.Plan.Weights)
		}
		d, err := b.DB.Decision(ctx, run.DecisionID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(d.Inputs), fmt.Sprintf(`"signedConstraintsId":%d`, sc.ID)) {
			t.Errorf("decision inputs do not name the signed set: %s", d.Inputs)
		}
		yes, no := true, false
		for _, verdict := range []*bool{&yes, &no, nil} {
			var v obsqra.DecisionVerification
			if err := (advisor.Optimizations{Signatures: fakeSignatures{b.DB, verdict}}).Verify(ctx, d, &v); err != nil {
				t.Fatal(err)
			}
			if !v.Matches || !v.ConstraintsSigned || v.SignatureValid != verdict || v.ConstraintsMet == nil || !*v.ConstraintsMet {
				t.Errorf("Verify (signature %v) = matches %v signed %v valid %v met %v", verdict, v.Matches, v.ConstraintsSigned, v.SignatureValid, v.ConstraintsMet)
			}
		}
		// Without a checker: signed, the signature not checked.
		var v obsqra.DecisionVerification
		if err := (advisor.Optimizations{}).Verify(ctx, d, &v); err != nil || !v.ConstraintsSigned || v.SignatureValid != nil || !*v.ConstraintsMet {
			t.Errorf("Verify (no checker) = %v signed %v valid %v met %v", err, v.ConstraintsSigned, v.SignatureValid, v.ConstraintsMet)
		}
		// A decision whose recorded limits are looser than the set it
		// names does not meet its constraints.
		loose := *d
		loose.Inputs = obsqra.JSONObject(strings.Replace(string(d.Inputs), `"maxLiquidityTier":2`, `"maxLiquidityTier":3`, 1))
		if err := (advisor.Optimizations{Signatures: fakeSignatures{b.DB, &yes}}).Verify(ctx, &loose, &v); err != nil || *v.ConstraintsMet {
			t.Errorf("Verify (looser than signed) = %v met %v", err, *v.ConstraintsMet)
		}

		// A newer, stricter set: it is the active one. Tier 0 leaves
		// nostra alone, which the signed diversification cannot accept.
		b.Clock.Advance(time.Second)
		sign(obsqra.ConstraintSet{MaxSingleBps: 7000, MinDiversification: 2, MaxVolatilityBps: obsqra.MaxVolatility, MaxLiquidityTier: 0})
		_, err = s.RunOptimization(b.ctx)
		checkErr(t, "RunOptimization(signed set too strict)", err, obsqra.EINVALID, "your wallet signed", "maxLiquidityTier 0")
	})
}
