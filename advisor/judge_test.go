package advisor_test

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestScoreOutcomes(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setupSeeded(t, db)
		today := b.Today()
		target := today + advisor.DefaultHorizonDays
		if n, err := s.RefreshForecasts(ctx); n != 6 || err != nil {
			t.Fatalf("RefreshForecasts() = %d, %v, want 6", n, err)
		}
		run, err := s.RunOptimization(b.ctx)
		if err != nil {
			t.Fatalf("RunOptimization() = %v", err)
		}
		if n, err := s.ScoreOutcomes(ctx); n != 0 || err != nil {
			t.Errorf("ScoreOutcomes(before the target) = %d, %v, want 0", n, err)
		}

		// A day after the target: nostra's and zklend's data is in,
		// ekubo's feed stopped two days short of it.
		b.Clock.AddDays(advisor.DefaultHorizonDays + 1)
		b.feed(t, "nostra", today+1, target+1)
		b.feed(t, "zklend", today+1, target+1)
		b.feed(t, "ekubo", today+1, target-1)
		if n, err := s.ScoreOutcomes(ctx); n != 4 || err != nil {
			t.Fatalf("ScoreOutcomes() = %d, %v, want 4 (nostra's and zklend's forecasts)", n, err)
		}
		scoredAt := b.Clock.Now()
		check := func(slug string, kind obsqra.PredictionKind, actual *float64) {
			t.Helper()
			for _, p := range b.predictions(t, kind, 0) {
				if p.ProtocolID != b.ID(t, slug) {
					continue
				}
				if actual == nil {
					if p.Actual != nil || p.Error != nil || p.ScoredAt != nil {
						t.Errorf("%s of %s scored: actual %v, want unscored", kind, slug, *p.Actual)
					}
					return
				}
				if p.Actual == nil || *p.Actual != *actual || p.Error == nil || *p.Error != *actual-p.Point ||
					p.ScoredAt == nil || !p.ScoredAt.Equal(scoredAt) {
					t.Errorf("%s of %s: actual %v, error %v, scored at %v; want %v, %v (actual − point %v), %v",
						kind, slug, p.Actual, p.Error, p.ScoredAt, *actual, *actual-p.Point, p.Point, scoredAt)
				}
				return
			}
			t.Errorf("no %s of %s", kind, slug)
		}
		for _, slug := range []string{"nostra", "zklend"} {
			check(slug, obsqra.PredictionYieldForecast, ptr(float64(apy(slug, target))))
			check(slug, obsqra.PredictionRiskForecast, ptr(float64(b.risk[slug][target])))
		}
		check("ekubo", obsqra.PredictionYieldForecast, nil)
		check("ekubo", obsqra.PredictionRiskForecast, nil)
		sug, err := b.DB.Prediction(ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		ekubo := weightOf(run.Plan.Weights, b.ID(t, "ekubo"))
		if ekubo == 0 {
			t.Fatalf("plan %+v holds no ekubo: the test needs it to", run.Plan.Weights)
		}
		if sug.Actual != nil {
			t.Errorf("suggestion holding ekubo scored (actual %v) before ekubo's target day has data", *sug.Actual)
		}
		if n, err := s.ScoreOutcomes(ctx); n != 0 || err != nil {
			t.Errorf("ScoreOutcomes() again = %d, %v, want 0", n, err)
		}

		// ekubo's feed resumes after skipping the target day: the last
		// value before it stands in.
		b.Clock.AddDays(1)
		scoredAt = b.Clock.Now()
		b.feed(t, "ekubo", target+1, target+1)
		if n, err := s.ScoreOutcomes(ctx); n != 3 || err != nil {
			t.Fatalf("ScoreOutcomes(ekubo resumed) = %d, %v, want 3 (ekubo's forecasts and the suggestion)", n, err)
		}
		check("ekubo", obsqra.PredictionYieldForecast, ptr(float64(apy("ekubo", target-1))))
		check("ekubo", obsqra.PredictionRiskForecast, ptr(float64(b.risk["ekubo"][target-1])))
		var want float64
		for _, w := range run.Plan.Weights {
			day := target
			if w.ProtocolID == b.ID(t, "ekubo") {
				day = target - 1
			}
			slug := ""
			for _, s := range seeded {
				if b.ID(t, s) == w.ProtocolID {
					slug = s
				}
			}
			want += float64(w.WeightBps) / 10000 * float64(apy(slug, day))
		}
		want = math.Round(want*1e4) / 1e4
		if sug, err = b.DB.Prediction(ctx, run.ID); err != nil || sug.Actual == nil || *sug.Actual != want || *sug.Error != want-sug.Point {
			t.Errorf("suggestion scored %v (error %v), want the plan's APY on the target day %v (error %v)", sug.Actual, sug.Error, want, want-sug.Point)
		}
		if n, err := s.ScoreOutcomes(ctx); n != 0 || err != nil {
			t.Errorf("ScoreOutcomes() at last = %d, %v, want 0", n, err)
		}

		// The scored yield forecasts are what the model is judged on.
		mp, err := s.ModelPerformance(ctx, obsqra.PredictionYieldForecast, advisor.DefaultHorizonDays, 30)
		if err != nil {
			t.Fatalf("ModelPerformance() = %v", err)
		}
		var mae float64
		for _, p := range b.predictions(t, obsqra.PredictionYieldForecast, 0) {
			mae += math.Abs(*p.Error) / 3
		}
		if mp.Count != 3 || mp.MAE == nil || !near(*mp.MAE, mae, 1e-4) {
			t.Errorf("ModelPerformance(yield) = count %d, MAE %v, want 3, %v", mp.Count, mp.MAE, mae)
		}
	})
}

func TestModelPerformance(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t, db)
		today := b.Today()
		nostra := b.ID(t, "nostra")
		type pred struct {
			kind                      obsqra.PredictionKind
			horizon                   int
			target                    obsqra.Date
			point, lo80, hi80         float64
			confidence, tolerance, la float64
			actual                    *float64
		}
		yield, risk := obsqra.PredictionYieldForecast, obsqra.PredictionRiskForecast
		preds := []pred{
			// Counted: yield, horizon 7, scored, target in the last 30 days.
			//   |error| naive in80 hit  confidence
			//   4       9     yes  yes  0.85
			//   15      15    no   yes  0.82
			//   50      50    no   no   0.35
			//   0       0     yes  yes  1
			{yield, 7, today - 1, 100, 90, 110, 0.85, 10, 95, ptr(104.0)},
			{yield, 7, today - 10, 200, 190, 210, 0.82, 20, 230, ptr(215.0)},
			{yield, 7, today - 30, 300, 280, 320, 0.35, 30, 300, ptr(250.0)},
			{yield, 7, today - 20, 50, 45, 55, 1, 5, 50, ptr(50.0)},
			// Not counted: another horizon, another kind, a target before
			// the window, unscored.
			{yield, 30, today - 2, 100, 90, 110, 0.5, 10, 100, ptr(900.0)},
			{risk, 7, today - 2, 10, 9, 11, 0.5, 1, 10, ptr(90.0)},
			{yield, 7, today - 31, 100, 90, 110, 0.5, 10, 100, ptr(900.0)},
			{yield, 7, today - 3, 100, 90, 110, 0.5, 10, 100, nil},
		}
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			for i, p := range preds {
				sp := obsqra.Prediction{
					Kind: p.kind, ProtocolID: nostra, HorizonDays: p.horizon, Origin: p.target - obsqra.Date(p.horizon), Target: p.target,
					Point: p.point, Lower80: p.lo80, Upper80: p.hi80, Lower95: p.lo80 - 10, Upper95: p.hi80 + 10,
					Confidence: p.confidence, Tolerance: p.tolerance, Last: p.la, Model: "test", ModelVersion: "test",
					InputsDigest: "digest", WindowStart: p.target - 100, WindowEnd: p.target - obsqra.Date(p.horizon),
				}
				if err := tx.InsertPrediction(ctx, &sp); err != nil {
					t.Fatalf("InsertPrediction(%d) = %v", i, err)
				}
				if p.actual != nil {
					if _, err := tx.InsertPredictionOutcome(ctx, sp.ID, *p.actual, *p.actual-p.point); err != nil {
						t.Fatalf("InsertPredictionOutcome(%d) = %v", i, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ModelPerformance(ctx, yield, 7, 30)
		if err != nil {
			t.Fatalf("ModelPerformance(yield, 7, 30) = %v", err)
		}
		want := &obsqra.ModelPerformance{
			Kind: yield, HorizonDays: 7, WindowDays: 30, Count: 4,
			MAE:         ptr(17.25),  // (4 + 15 + 50 + 0) / 4
			RelativeMAE: ptr(0.9324), // 69 / 74
			Coverage80:  ptr(0.5),
			Coverage95:  ptr(0.75), // the 95 % intervals are the 80 % ones widened by 10: the third misses
			Calibration: []obsqra.CalibrationBin{
				{ConfidenceFrom: 0.3, ConfidenceTo: 0.4, Predicted: 0.35, Observed: 0, Count: 1},
				{ConfidenceFrom: 0.8, ConfidenceTo: 0.9, Predicted: 0.835, Observed: 1, Count: 2},
				{ConfidenceFrom: 0.9, ConfidenceTo: 1, Predicted: 1, Observed: 1, Count: 1},
			},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ModelPerformance(yield, 7, 30) = %s, want %s", show(got), show(want))
		}

		// A window of 10 days holds the first two only.
		got, err = s.ModelPerformance(ctx, yield, 7, 10)
		if err != nil || got.Count != 2 || got.MAE == nil || *got.MAE != 9.5 || *got.RelativeMAE != 0.7917 || *got.Coverage80 != 0.5 || *got.Coverage95 != 1 {
			t.Errorf("ModelPerformance(yield, 7, 10) = %s, %v; want count 2, MAE 9.5, relative 0.7917, coverage 0.5 and 1", show(got), err)
		}
		// Nothing matured: no figures. Suggestions are their user's.
		got, err = s.ModelPerformance(b.ctx, obsqra.PredictionRebalanceSuggestion, 7, 30)
		if err != nil || got.Count != 0 || got.MAE != nil || got.RelativeMAE != nil || got.Coverage80 != nil || got.Coverage95 != nil || len(got.Calibration) != 0 {
			t.Errorf("ModelPerformance(REBALANCE_SUGGESTION) = %s, %v, want count 0 and no figures", show(got), err)
		}
		_, err = s.ModelPerformance(b.anon, obsqra.PredictionRebalanceSuggestion, 7, 30)
		checkErr(t, "ModelPerformance(REBALANCE_SUGGESTION, signed out)", err, obsqra.EUNAUTHENTICATED)

		for _, tt := range []struct {
			kind            obsqra.PredictionKind
			horizon, window int
			field           string
		}{
			{yield, 0, 30, "horizonDays"},
			{yield, 366, 30, "horizonDays"},
			{yield, 7, 0, "windowDays"},
			{yield, 7, 366, "windowDays"},
			{"BOGUS", 7, 30, "BOGUS"},
		} {
			got, err := s.ModelPerformance(ctx, tt.kind, tt.horizon, tt.window)
			if got != nil {
				t.Errorf("ModelPerformance(%s, %d, %d) = %s, want nil", tt.kind, tt.horizon, tt.window, show(got))
			}
			checkErr(t, "ModelPerformance(bad "+tt.field+")", err, obsqra.EINVALID, tt.field)
		}
	})
}

// TestModelPerformanceMoving: a forecast records whether its series moved
// in the 30 days up to and including its origin, the APY for a yield
// forecast and the risk score for a risk forecast, and ModelPerformance
// counts the moving ones apart: a flat jediswap has not moved, the seeded
// markets have; a prediction recorded without it (as before it was) does
// not count as moving.
func TestModelPerformanceMoving(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setupSeeded(t, db)
		today := b.Today()
		flat := func(obsqra.Date) (int, int, string) { return 500, 3000, "5000000" }
		b.Feed(t, "jediswap", today-historyDays+1, today, flat)
		// The seeded risk scores sit still; a later sample of today at
		// another utilization moves nostra's (its APY as it was).
		in := advisortest.Sample("nostra", today, apy("nostra", today), 9900, "100000000")
		in.ObservedAt = in.ObservedAt.Add(time.Hour)
		b.Ingest(t, in)

		// Moved, by hand: the stored values of the 30 days up to today
		// not all equal.
		slugs := []string{"nostra", "zklend", "ekubo", "jediswap"}
		ids := make([]int64, len(slugs))
		for i, slug := range slugs {
			ids[i] = b.ID(t, slug)
		}
		series, err := b.DB.DailySeries(ctx, ids, today-29, today)
		if err != nil {
			t.Fatalf("DailySeries() = %v", err)
		}
		wantMoved := map[obsqra.PredictionKind]map[string]bool{obsqra.PredictionYieldForecast: {}, obsqra.PredictionRiskForecast: {}}
		for i, slug := range slugs {
			apys, scores := map[int]bool{}, map[int]bool{}
			for _, pt := range series[ids[i]] {
				apys[pt.ApyBps] = true
				if pt.RiskScore != nil {
					scores[*pt.RiskScore] = true
				}
			}
			wantMoved[obsqra.PredictionYieldForecast][slug] = len(apys) > 1
			wantMoved[obsqra.PredictionRiskForecast][slug] = len(scores) > 1
		}
		if y, r := wantMoved[obsqra.PredictionYieldForecast], wantMoved[obsqra.PredictionRiskForecast]; y["jediswap"] || !y["nostra"] || !y["zklend"] || !y["ekubo"] ||
			!r["nostra"] || r["zklend"] || r["jediswap"] {
			t.Fatalf("the test's markets: yield moved %v, risk %v; want the yield of jediswap flat and the others moving, the risk of nostra only moving", y, r)
		}
		for kind, bySlug := range wantMoved {
			for slug, want := range bySlug {
				if f := forecastOf(t, s, b, kind, slug); f.Moved != want {
					t.Errorf("Forecasts(%s, %s).Moved = %t, want %t", kind, slug, f.Moved, want)
				}
				// Through the cache too.
				if f := forecastOf(t, s, b, kind, slug); f.Moved != want {
					t.Errorf("Forecasts(%s, %s) again: Moved = %t, want %t", kind, slug, f.Moved, want)
				}
			}
		}

		// Recorded with the prediction.
		if n, err := s.RefreshForecasts(ctx); err != nil || n != 8 {
			t.Fatalf("RefreshForecasts() = %d, %v, want 8 (yield and risk of 4 protocols)", n, err)
		}
		bySlug := map[string]obsqra.Prediction{}
		for _, p := range b.predictions(t, "", 0) {
			var slug string
			for sl, pr := range b.Protocols {
				if pr.ID == p.ProtocolID {
					slug = sl
				}
			}
			if p.Moved == nil || *p.Moved != wantMoved[p.Kind][slug] {
				t.Errorf("stored %s of %s: moved %v, want %t", p.Kind, slug, p.Moved, wantMoved[p.Kind][slug])
			}
			if p.Kind == obsqra.PredictionYieldForecast {
				bySlug[slug] = p
			}
		}

		// Score the yield forecasts: the moving nostra and ekubo at their
		// point (inside both intervals), the moving zklend between its 80 %
		// and its 95 % upper bounds, the flat jediswap above both; and a
		// prediction recorded without moved, at its point.
		for _, slug := range []string{"nostra", "zklend", "ekubo", "jediswap"} {
			if p := bySlug[slug]; p.Point < p.Lower80 || p.Point > p.Upper80 || p.Upper80 >= p.Upper95 && slug == "zklend" {
				t.Fatalf("%s's yield forecast %+v: want its point inside its 80 %% interval (and zklend's 95 %% wider)", slug, p)
			}
		}
		unrecorded := bySlug["nostra"]
		unrecorded.ID, unrecorded.Moved, unrecorded.InputsDigest = 0, nil, "before moved was recorded"
		// b.DB: on SQLite, setupSeeded works on a copy of a seeded template.
		err = b.DB.WithTx(ctx, func(tx *store.Tx) error {
			if err := tx.InsertPrediction(ctx, &unrecorded); err != nil {
				return err
			}
			for _, sc := range []struct {
				p      obsqra.Prediction
				actual float64
			}{
				{bySlug["nostra"], bySlug["nostra"].Point},
				{bySlug["ekubo"], bySlug["ekubo"].Point},
				{bySlug["zklend"], (bySlug["zklend"].Upper80 + bySlug["zklend"].Upper95) / 2},
				{bySlug["jediswap"], bySlug["jediswap"].Upper95 + 100},
				{unrecorded, unrecorded.Point},
			} {
				if _, err := tx.InsertPredictionOutcome(ctx, sc.p.ID, sc.actual, sc.actual-sc.p.Point); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		b.Clock.AddDays(advisor.DefaultHorizonDays)
		got, err := s.ModelPerformance(ctx, obsqra.PredictionYieldForecast, advisor.DefaultHorizonDays, 30)
		if err != nil {
			t.Fatalf("ModelPerformance(yield) = %v", err)
		}
		// 5 scored: in80 nostra, ekubo and the unrecorded one (3/5); in95
		// zklend too (4/5). Moving: nostra, ekubo, zklend; in80 2/3, in95 3/3.
		if got.Count != 5 || !eqPtr(got.Coverage80, 0.6) || !eqPtr(got.Coverage95, 0.8) ||
			got.MovingForecasts != 3 || !eqPtr(got.MovingCoverage80, 0.6667) || !eqPtr(got.MovingCoverage95, 1) {
			t.Errorf("ModelPerformance(yield) = %s, want count 5, coverage 0.6/0.8, 3 moving, moving coverage 0.6667/1", show(got))
		}
		// Risk forecasts are not scored: no moving ones, no moving coverage.
		got, err = s.ModelPerformance(ctx, obsqra.PredictionRiskForecast, advisor.DefaultHorizonDays, 30)
		if err != nil || got.Count != 0 || got.MovingForecasts != 0 || got.MovingCoverage80 != nil || got.MovingCoverage95 != nil {
			t.Errorf("ModelPerformance(risk) = %s, %v, want nothing", show(got), err)
		}
	})
}

// eqPtr reports whether p points to want.
func eqPtr(p *float64, want float64) bool { return p != nil && *p == want }
