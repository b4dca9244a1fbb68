package advisor_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// ctxOf returns a context u is signed in on.
func (b *testBundle) ctxOf(u *obsqra.User) context.Context { return advisortest.SignedIn(u) }

// usd is x to the cent.
func usd(x float64) obsqra.Decimal {
	return obsqra.MustDecimal(strconv.FormatFloat(math.Round(x*100)/100, 'f', 2, 64))
}

// checkMove fails unless sug moves from alloc to its plan as the advisor's
// defaults cost it on a portfolio of value: the plan's protocols, then
// the holdings outside the plan (target 0); withdrawals, then deposits;
// gas per trade plus slippage on the traded notional; the forecast gain
// net of the cost spread over the payback period.
func checkMove(t *testing.T, s *advisor.Service, b *testBundle, sug *obsqra.RebalanceSuggestion, alloc *obsqra.Allocation, value obsqra.Decimal) {
	t.Helper()
	v, _ := value.Rat().Float64()
	var current, target []obsqra.Weight
	mu := make(map[int64]float64)
	for _, w := range sug.Plan.Weights {
		current = append(current, obsqra.Weight{ProtocolID: w.ProtocolID, WeightBps: weightOf(alloc.Weights, w.ProtocolID)})
		target = append(target, w)
	}
	for _, w := range alloc.Weights {
		if !slices.ContainsFunc(sug.Plan.Weights, func(p obsqra.Weight) bool { return p.ProtocolID == w.ProtocolID }) {
			current = append(current, w)
			target = append(target, obsqra.Weight{ProtocolID: w.ProtocolID})
		}
	}
	for slug, p := range b.Protocols {
		if slices.Contains(seeded, slug) {
			mu[p.ID] = math.Round(forecastOf(t, s, b, obsqra.PredictionYieldForecast, slug).Point*1e4) / 1e4
		} else if _, ok := shapes[slug]; ok {
			// Too little history for a forecast: today's APY stands in.
			mu[p.ID] = float64(apy(slug, b.Today()))
		}
	}
	if !reflect.DeepEqual(sug.Current, current) || !reflect.DeepEqual(sug.Target, target) {
		t.Errorf("suggestion moves %v → %v, want %v → %v", sug.Current, sug.Target, current, target)
	}
	var trades []obsqra.RebalanceTrade
	var gross, traded float64
	for pass := 0; pass < 2; pass++ {
		for i := range current {
			from, to := current[i].WeightBps, target[i].WeightBps
			if (pass == 0 && to < from) || (pass == 1 && to > from) {
				trades = append(trades, obsqra.RebalanceTrade{ProtocolID: current[i].ProtocolID, FromBps: from, ToBps: to,
					AmountUsd: usd(float64(to-from) / 10000 * v)})
			}
		}
	}
	for i := range current {
		d := float64(target[i].WeightBps - current[i].WeightBps)
		gross += d / 10000 * mu[current[i].ProtocolID]
		traded += math.Abs(d)
	}
	if !reflect.DeepEqual(sug.Trades, trades) {
		t.Errorf("suggestion trades = %+v, want %+v", sug.Trades, trades)
	}
	cost := b.gas*float64(len(trades)) + b.slippage/10000*traded/10000*v
	if sug.CostUsd != usd(cost) {
		t.Errorf("suggestion CostUsd = %s, want %d × %v gas + %v bps of %v traded = %s",
			sug.CostUsd, len(trades), b.gas, b.slippage, traded/10000*v, usd(cost))
	}
	costBps := cost / v * 10000
	net := gross - costBps*365/advisor.PaybackDays
	if !near(sug.ExpectedImprovementBps, net, 1e-4) {
		t.Errorf("suggestion ExpectedImprovementBps = %v, want gross %v − cost %v bps × 365/30 = %v", sug.ExpectedImprovementBps, gross, costBps, net)
	}
	switch {
	case gross > 0 && (sug.BreakEvenDays == nil || !near(*sug.BreakEvenDays, costBps/(gross/365), 1e-4)):
		t.Errorf("suggestion BreakEvenDays = %v, want %v", sug.BreakEvenDays, costBps/(gross/365))
	case gross <= 0 && len(trades) > 0 && sug.BreakEvenDays != nil:
		t.Errorf("suggestion BreakEvenDays = %v, want nil (never)", *sug.BreakEvenDays)
	}
	user, err := b.DB.UserByID(context.Background(), sug.UserID)
	if err != nil {
		t.Fatal(err)
	}
	threshold := user.Preferences.RebalanceThresholdBps
	if clears := len(trades) > 0 && net > 0 && net >= float64(threshold); sug.ClearsThreshold != clears || sug.ThresholdBps != threshold {
		t.Errorf("suggestion ClearsThreshold = %v (threshold %d), want %v (net %v, threshold %d)", sug.ClearsThreshold, sug.ThresholdBps, clears, net, threshold)
	}
	if !(sug.Confidence >= 0 && sug.Confidence <= 1) || sug.Tolerance != sug.Plan.RiskTolerance {
		t.Errorf("suggestion Confidence = %v, Tolerance %s, want a probability and the plan's %s", sug.Confidence, sug.Tolerance, sug.Plan.RiskTolerance)
	}
}

func TestRebalanceSuggestion(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db, func(c *advisor.Config) { c.GasUsdPerMove, c.SlippageBps = 2.25, 35 })
		_, err := s.RebalanceSuggestion(b.anon)
		checkErr(t, "RebalanceSuggestion(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.RebalanceSuggestion(b.ctx)
		checkErr(t, "RebalanceSuggestion(no allocation)", err, obsqra.ENOTFOUND, "allocation")
		if ps := b.predictions(t, obsqra.PredictionRebalanceSuggestion, b.user.ID); len(ps) != 0 {
			t.Errorf("RebalanceSuggestion(no allocation) recorded %d predictions", len(ps))
		}

		// vesu is held but cannot be forecast: the plan leaves it, at the
		// APY it pays today.
		alloc := b.record(t, b.ctx, "20000", "nostra", 6000, "vesu", 4000)
		before := b.LastEvent(t)
		sug, err := s.RebalanceSuggestion(b.ctx)
		if err != nil {
			t.Fatalf("RebalanceSuggestion() = %v", err)
		}
		if sug.AllocationID != alloc.ID || sug.UserID != b.user.ID || sug.ID == 0 || sug.DecisionID == 0 {
			t.Errorf("RebalanceSuggestion() = %+v, want a new suggestion from allocation %d for user %d", sug, alloc.ID, b.user.ID)
		}
		if sug.Plan.PortfolioValueUsd != obsqra.MustDecimal("20000") {
			t.Errorf("suggestion plan values the portfolio at %s, want the allocation's 20000", sug.Plan.PortfolioValueUsd)
		}
		checkMove(t, s, b, sug, alloc, obsqra.MustDecimal("20000"))
		if n := weightOf(sug.Current, b.ID(t, "vesu")); n != 4000 || weightOf(sug.Target, b.ID(t, "vesu")) != 0 {
			t.Errorf("suggestion moves vesu %d → %d, want 4000 → 0", n, weightOf(sug.Target, b.ID(t, "vesu")))
		}
		checkRecorded(t, s, b, b.user, sug.ID, sug.Plan, sug)
		if events := b.Events(t, before, obsqra.TopicPredictionCreated); len(events) != 1 || events[0].OwnerID != b.user.ID {
			t.Errorf("prediction.created events = %+v, want one owned by user %d", events, b.user.ID)
		}

		// Unchanged data and allocation: the same suggestion, recorded once.
		b.Clock.Set(now0.Add(time.Hour))
		again, err := s.RebalanceSuggestion(b.ctx)
		if err != nil || !reflect.DeepEqual(again, sug) {
			t.Errorf("RebalanceSuggestion() again = %+v, %v, want %+v", again, err, sug)
		}
		if ps := b.predictions(t, obsqra.PredictionRebalanceSuggestion, b.user.ID); len(ps) != 1 {
			t.Errorf("suggestions recorded = %d, want 1", len(ps))
		}
		if got, err := s.Suggestion(b.ctx, sug.ID); err != nil || !reflect.DeepEqual(got, sug) {
			t.Errorf("Suggestion(%d) = %+v, %v, want %+v", sug.ID, got, err, sug)
		}

		// The market moves: zklend's rate jumps today.
		in := advisortest.Sample("zklend", b.Today(), 3000, 9500, "500000")
		in.ObservedAt = in.ObservedAt.Add(3 * time.Hour)
		b.Ingest(t, in)
		moved, err := s.RebalanceSuggestion(b.ctx)
		if err != nil {
			t.Fatalf("RebalanceSuggestion(market moved) = %v", err)
		}
		if moved.ID == sug.ID || reflect.DeepEqual(moved.Plan, sug.Plan) {
			t.Errorf("RebalanceSuggestion(market moved) = id %d plan %+v, want a new suggestion with a new plan", moved.ID, moved.Plan)
		}
		checkMove(t, s, b, moved, alloc, obsqra.MustDecimal("20000"))
		p1, _ := b.DB.Prediction(context.Background(), sug.ID)
		p2, _ := b.DB.Prediction(context.Background(), moved.ID)
		if p1.InputsDigest == p2.InputsDigest {
			t.Errorf("suggestions %d and %d share InputsDigest %s", sug.ID, moved.ID, p1.InputsDigest)
		}
		if ps := b.predictions(t, obsqra.PredictionRebalanceSuggestion, b.user.ID); len(ps) != 2 {
			t.Errorf("suggestions recorded = %d, want 2", len(ps))
		}

		// A new allocation is a new starting point.
		alloc2 := b.record(t, b.ctx, "", "zklend", 5000, "ekubo", 5000)
		third, err := s.RebalanceSuggestion(b.ctx)
		if err != nil || third.AllocationID != alloc2.ID || third.ID == moved.ID {
			t.Fatalf("RebalanceSuggestion(new allocation) = %+v, %v, want a new suggestion from %d", third, err, alloc2.ID)
		}
		checkMove(t, s, b, third, alloc2, obsqra.DefaultPortfolioValueUsd)

		// Within the hour, the market's intraday moves do not record a
		// suggestion per sample for the same allocation and preferences;
		// after it, they do.
		b.Clock.Set(now0.Add(70 * time.Minute))
		tick := advisortest.Sample("ekubo", b.Today(), 2500, 4000, "500000")
		tick.ObservedAt = now0.Add(65 * time.Minute)
		b.Ingest(t, tick)
		if same, err := s.RebalanceSuggestion(b.ctx); err != nil || same.ID != third.ID {
			t.Errorf("RebalanceSuggestion(intraday move, 10 minutes later) = %+v, %v, want suggestion %d again", same, err, third.ID)
		}
		b.Clock.Set(now0.Add(2*time.Hour + time.Minute))
		if later, err := s.RebalanceSuggestion(b.ctx); err != nil || later.ID == third.ID {
			t.Errorf("RebalanceSuggestion(an hour later) = %+v, %v, want a new one", later, err)
		}
	})
}

func TestSuggestionVisibility(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	if n, err := s.RefreshForecasts(context.Background()); n != 6 || err != nil {
		t.Fatalf("RefreshForecasts() = %d, %v", n, err)
	}
	b.record(t, b.ctx, "", "nostra", 10000)
	sug, err := s.RebalanceSuggestion(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
	for name, ctx := range map[string]context.Context{"anonymous": b.anon, "another user": otherCtx} {
		_, err := s.Suggestion(ctx, sug.ID)
		checkErr(t, "Suggestion("+name+")", err, obsqra.ENOTFOUND)
		_, err = s.Prediction(ctx, sug.ID)
		checkErr(t, "Prediction("+name+")", err, obsqra.ENOTFOUND)
	}
	if p, err := s.Prediction(b.ctx, sug.ID); err != nil || p.ID != sug.ID {
		t.Errorf("Prediction(own suggestion) = %+v, %v", p, err)
	}
	_, err = s.Suggestion(b.ctx, 999_999)
	checkErr(t, "Suggestion(unknown)", err, obsqra.ENOTFOUND)

	// Market forecasts are everyone's; a forecast is no suggestion.
	forecasts := b.predictions(t, obsqra.PredictionYieldForecast, 0)
	for _, ctx := range []context.Context{b.anon, otherCtx, b.ctx} {
		if p, err := s.Prediction(ctx, forecasts[0].ID); err != nil || p.ID != forecasts[0].ID {
			t.Errorf("Prediction(forecast %d) = %+v, %v", forecasts[0].ID, p, err)
		}
	}
	_, err = s.Suggestion(b.ctx, forecasts[0].ID)
	checkErr(t, "Suggestion(a forecast)", err, obsqra.ENOTFOUND)
	_, err = s.OptimizationRun(b.ctx, forecasts[0].ID)
	checkErr(t, "OptimizationRun(a forecast)", err, obsqra.ENOTFOUND)

	// Lists: each viewer sees the market's and their own.
	page := func(ctx context.Context) []int64 {
		ps, err := s.Predictions(ctx, "", 0, 100, 0)
		if err != nil {
			t.Fatalf("Predictions() = %v", err)
		}
		var ids []int64
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		return ids
	}
	if ids := page(b.ctx); len(ids) != 7 || ids[0] != sug.ID {
		t.Errorf("Predictions(owner) = %v, want the suggestion %d and 6 forecasts", ids, sug.ID)
	}
	for who, ctx := range map[string]context.Context{"anonymous": b.anon, "another user": otherCtx} {
		if ids := page(ctx); len(ids) != 6 || slices.Contains(ids, sug.ID) {
			t.Errorf("Predictions(%s) = %v, want the 6 forecasts only", who, ids)
		}
	}
	// first+1 rows, then the page after.
	ps, err := s.Predictions(b.anon, obsqra.PredictionYieldForecast, b.ID(t, "zklend"), 1, 0)
	if err != nil || len(ps) != 1 || ps[0].ProtocolID != b.ID(t, "zklend") {
		t.Errorf("Predictions(zklend yield, first 1) = %+v, %v, want its one forecast", ps, err)
	}
}

func TestCheckRebalances(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setupSeeded(t, db)
		if n, err := s.CheckRebalances(ctx); n != 0 || err != nil {
			t.Errorf("CheckRebalances(no users with allocations) = %d, %v", n, err)
		}
		// Every user holds all of calm nostra, which the plan moves out
		// of for a far better yield.
		prefs := func(threshold int, auto bool) obsqra.Preferences {
			return advisortest.Prefs(obsqra.RiskMedium, threshold, 6000, 2, auto)
		}
		eager, eagerCtx := b.User(t, "eager@example.com", prefs(0, true))
		strict, strictCtx := b.User(t, "strict@example.com", prefs(10000, true))
		manual, manualCtx := b.User(t, "manual@example.com", prefs(0, false))
		empty, _ := b.User(t, "empty@example.com", prefs(0, true))
		inactive, inactiveCtx := b.User(t, "inactive@example.com", prefs(0, true))
		for _, ctx := range []context.Context{eagerCtx, strictCtx, manualCtx, inactiveCtx} {
			b.record(t, ctx, "", "nostra", 10000)
		}
		inactive.Active = false
		b.SetPreferences(t, inactive, inactive.Preferences)

		before := b.LastEvent(t)
		if n, err := s.CheckRebalances(ctx); n != 1 || err != nil {
			t.Fatalf("CheckRebalances() = %d, %v, want 1 (eager's)", n, err)
		}
		p, followed, err := b.DB.LatestSuggestion(ctx, eager.ID)
		if err != nil || followed {
			t.Fatalf("LatestSuggestion(eager) = %v, %v", followed, err)
		}
		sug, ok, err := p.Suggestion()
		if err != nil || !ok || !sug.ClearsThreshold || sug.ThresholdBps != 0 {
			t.Errorf("eager's suggestion = %+v, %v, %v, want one clearing threshold 0", sug, ok, err)
		}
		events := b.Events(t, before, obsqra.TopicPredictionCreated)
		if len(events) != 1 || events[0].OwnerID != eager.ID {
			t.Errorf("prediction.created events = %+v, want one for user %d", events, eager.ID)
		}
		for _, u := range []*obsqra.User{strict, manual, empty, inactive} {
			_, _, err := b.DB.LatestSuggestion(ctx, u.ID)
			checkErr(t, "LatestSuggestion("+u.Email+")", err, obsqra.ENOTFOUND)
		}
		// What strict would be told does not clear 10000 bps.
		if sug, err := s.RebalanceSuggestion(strictCtx); err != nil || sug.ClearsThreshold {
			t.Errorf("RebalanceSuggestion(strict) = %+v, %v, want one that does not clear 10000 bps", sug, err)
		}

		// Nothing changed: nothing recorded.
		if n, err := s.CheckRebalances(ctx); n != 0 || err != nil {
			t.Errorf("CheckRebalances() again = %d, %v, want 0", n, err)
		}
		// eager follows it; the next check has nothing to improve (the
		// allocation is the plan).
		in := obsqra.RecordAllocationInput{Reason: obsqra.ReasonAutoRebalance, SuggestionID: ptr(sug.NodeID())}
		for _, w := range sug.Target {
			if w.WeightBps > 0 {
				for slug, p := range b.Protocols {
					if p.ID == w.ProtocolID {
						in.Weights = append(in.Weights, obsqra.WeightInput{Protocol: slug, WeightBps: w.WeightBps})
					}
				}
			}
		}
		if _, err := b.portfolio.RecordAllocation(eagerCtx, in); err != nil {
			t.Fatalf("RecordAllocation(following %d) = %v", sug.ID, err)
		}
		if n, err := s.CheckRebalances(ctx); n != 0 || err != nil {
			t.Errorf("CheckRebalances(after following) = %d, %v, want 0", n, err)
		}
	})
}

// TestRebalanceSuggestionConcurrent checks that requests racing for the
// same suggestion (a user's and the rebalance job's, say) record it once.
func TestRebalanceSuggestionConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db)
		ctx := b.SetPreferences(t, b.user, advisortest.Prefs(obsqra.RiskMedium, 0, 6000, 2, true))
		b.record(t, ctx, "", "nostra", 10000)
		const n = 8
		start := make(chan struct{})
		ids := make(chan int64, n)
		errs := make(chan error, n+1)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if i == 0 {
					if _, err := s.CheckRebalances(context.Background()); err != nil {
						errs <- err
					}
					return
				}
				sug, err := s.RebalanceSuggestion(ctx)
				if err != nil {
					errs <- err
					return
				}
				ids <- sug.ID
			}()
		}
		close(start)
		wg.Wait()
		close(ids)
		close(errs)
		for err := range errs {
			t.Errorf("concurrent suggestion: %v", err)
		}
		seen := make(map[int64]bool)
		for id := range ids {
			seen[id] = true
		}
		recorded := b.predictions(t, obsqra.PredictionRebalanceSuggestion, b.user.ID)
		if len(seen) != 1 || len(recorded) != 1 {
			t.Errorf("%d concurrent requests got suggestions %v and recorded %d, want one", n, seen, len(recorded))
		}
	})
}
