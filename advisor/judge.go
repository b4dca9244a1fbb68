package advisor

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// outcomeBatch is how many due predictions the outcome job scores per unit
// of work.
const outcomeBatch = 500

// carryDays is how far back the outcome job looks for a target day's value
// when the feed skipped that day: the last value before it stands in, if
// it is at most this old and the feed has observed a later day since.
const carryDays = 7

// abandonDays is how long after its target day the outcome job keeps
// trying to score a prediction the data cannot score (the feed skipped
// the day and the days around it); then it gives up on it.
const abandonDays = 30

// calibrationBins is the number of equal-width confidence bins of a
// calibration table.
const calibrationBins = 10

// ScoreOutcomes is the scheduler's outcome job: every prediction whose
// target day has passed gets the value observed on that day and its error
// (actual − point), once. A forecast's actual is the protocol's APY or risk
// score of the day; a suggestion's is the APY of its target weights that
// day. A prediction whose target day has no data yet is left for a later
// run, for up to abandonDays. It returns how many predictions it scored.
// Errors: only internal ones.
func (s *Service) ScoreOutcomes(ctx context.Context) (int, error) {
	today := s.today()
	scored := 0
	var after int64
	for {
		due, err := s.db.DuePredictions(ctx, today-abandonDays, today, after, outcomeBatch)
		if err != nil {
			return scored, err
		}
		if len(due) == 0 {
			return scored, nil
		}
		after = due[len(due)-1].ID
		n, err := s.scoreBatch(ctx, due, today)
		scored += n
		if err != nil {
			return scored, err
		}
		if len(due) < outcomeBatch {
			return scored, nil
		}
	}
}

// scoreBatch scores due predictions from one read of the histories they
// need, in one unit of work.
func (s *Service) scoreBatch(ctx context.Context, due []obsqra.Prediction, today obsqra.Date) (int, error) {
	weights := make(map[int64][]obsqra.Weight)
	idSet := make(map[int64]bool)
	from := today
	for i := range due {
		p := &due[i]
		from = min(from, p.Target-carryDays)
		if p.Kind != obsqra.PredictionRebalanceSuggestion {
			idSet[p.ProtocolID] = true
			continue
		}
		var d obsqra.RebalanceSuggestion
		if err := json.Unmarshal(p.Details, &d); err != nil {
			return 0, fmt.Errorf("decode suggestion %d: %w", p.ID, err)
		}
		weights[p.ID] = d.Plan.Weights
		for _, w := range d.Plan.Weights {
			idSet[w.ProtocolID] = true
		}
	}
	ids := make([]int64, 0, len(idSet))
	for id := range idSet {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	hist, err := s.db.DailySeries(ctx, ids, from, today)
	if err != nil {
		return 0, err
	}
	type outcome struct {
		id     int64
		actual float64
		point  float64
	}
	var outs []outcome
	for i := range due {
		p := &due[i]
		var actual float64
		ok := true
		switch p.Kind {
		case obsqra.PredictionYieldForecast:
			var pt obsqra.DailyPoint
			if pt, ok = observedOn(hist[p.ProtocolID], p.Target); ok {
				actual = float64(pt.ApyBps)
			}
		case obsqra.PredictionRiskForecast:
			var pt obsqra.DailyPoint
			if pt, ok = observedOn(hist[p.ProtocolID], p.Target); ok && pt.RiskScore != nil {
				actual = float64(*pt.RiskScore)
			} else {
				ok = false
			}
		case obsqra.PredictionRebalanceSuggestion:
			for _, w := range weights[p.ID] {
				if w.WeightBps == 0 {
					continue
				}
				pt, found := observedOn(hist[w.ProtocolID], p.Target)
				if !found {
					ok = false
					break
				}
				actual += float64(w.WeightBps) / 10000 * float64(pt.ApyBps)
			}
		}
		if ok {
			outs = append(outs, outcome{p.ID, round4(actual), p.Point})
		}
	}
	if len(outs) == 0 {
		return 0, nil
	}
	n := 0
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		n = 0
		for _, o := range outs {
			added, err := tx.InsertPredictionOutcome(ctx, o.id, o.actual, o.actual-o.point)
			if err != nil {
				return err
			}
			if added {
				n++
			}
		}
		return nil
	})
	return n, err
}

// observedOn returns the point of day d, or when the feed skipped d, the
// last point before it within carryDays provided a later day was observed
// (so d is known to have passed without data of its own).
func observedOn(points []obsqra.DailyPoint, d obsqra.Date) (obsqra.DailyPoint, bool) {
	i := sort.Search(len(points), func(i int) bool { return points[i].Day >= d })
	if i < len(points) && points[i].Day == d {
		return points[i], true
	}
	if i > 0 && i < len(points) && points[i-1].Day >= d-carryDays {
		return points[i-1], true
	}
	return obsqra.DailyPoint{}, false
}

// ModelPerformance judges the matured predictions of kind at horizonDays
// whose target fell in the last windowDays: their count, mean absolute
// error, the error relative to the naive forecast's (the value at the
// origin), the coverage of the 80 % and 95 % intervals, overall and over
// the forecasts recorded as made from a series that moved (as a
// backtest's), and the calibration of the confidence. Market forecasts are judged over all of them; suggestions
// over the signed-in user's own. Errors: EINVALID for a horizon or window
// outside 1–365; EUNAUTHENTICATED for suggestions when signed out;
// internal ones.
func (s *Service) ModelPerformance(ctx context.Context, kind obsqra.PredictionKind, horizonDays, windowDays int) (*obsqra.ModelPerformance, error) {
	if !kind.IsValid() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "%s is not a prediction kind", kind)
	}
	if horizonDays < 1 || horizonDays > maxHorizonDays {
		return nil, obsqra.Errorf(obsqra.EINVALID, "horizonDays must be between 1 and %d, got %d", maxHorizonDays, horizonDays)
	}
	if windowDays < 1 || windowDays > 365 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "windowDays must be between 1 and 365, got %d", windowDays)
	}
	// Market forecasts are everyone's; suggestions are judged for their
	// own user only (a narrow window would show another user's errors).
	var userID int64
	if kind == obsqra.PredictionRebalanceSuggestion {
		pr, err := obsqra.RequireUser(ctx)
		if err != nil {
			return nil, err
		}
		userID = pr.User.ID
	}
	today := s.today()
	bins, err := s.db.PredictionAccuracy(ctx, store.AccuracyQuery{
		Kind: kind, HorizonDays: horizonDays, TargetFrom: today - obsqra.Date(windowDays), TargetTo: today,
		UserID: userID, Bins: calibrationBins,
	})
	if err != nil {
		return nil, err
	}
	mp := &obsqra.ModelPerformance{Kind: kind, HorizonDays: horizonDays, WindowDays: windowDays, Calibration: []obsqra.CalibrationBin{}}
	var abs, naive float64
	var in80, in95, movingIn80, movingIn95 int
	for _, b := range bins {
		mp.Count += b.Count
		abs += b.SumAbsError
		naive += b.SumAbsNaiveError
		in80 += b.In80
		in95 += b.In95
		mp.MovingForecasts += b.Moving
		movingIn80 += b.MovingIn80
		movingIn95 += b.MovingIn95
		n := float64(b.Count)
		mp.Calibration = append(mp.Calibration, obsqra.CalibrationBin{
			ConfidenceFrom: round4(float64(b.Bin) / calibrationBins), ConfidenceTo: round4(float64(b.Bin+1) / calibrationBins),
			Predicted: round4(b.SumConfidence / n), Observed: round4(float64(b.Hits) / n), Count: b.Count,
		})
	}
	if mp.Count > 0 {
		n := float64(mp.Count)
		mae, cov, cov95 := round4(abs/n), round4(float64(in80)/n), round4(float64(in95)/n)
		mp.MAE, mp.Coverage80, mp.Coverage95 = &mae, &cov, &cov95
		if naive > 0 {
			rel := round4(abs / naive)
			mp.RelativeMAE = &rel
		}
	}
	if mp.MovingForecasts > 0 {
		m := float64(mp.MovingForecasts)
		cov, cov95 := round4(float64(movingIn80)/m), round4(float64(movingIn95)/m)
		mp.MovingCoverage80, mp.MovingCoverage95 = &cov, &cov95
	}
	return mp, nil
}

// accuracy is the summary of scored forecasts both ModelPerformance and
// Backtest report.
type accuracy struct {
	mae, relativeMAE, coverage80, coverage95 *float64
	// moving counts the outcomes of series that moved (ml.Outcome.Moved);
	// movingCoverage80 and movingCoverage95 are their coverage, nil
	// without any.
	moving                             int
	movingCoverage80, movingCoverage95 *float64
	calibration                        []obsqra.CalibrationBin
}

// summarise computes the accuracy of outs, which all have actual values.
func summarise(outs []ml.Outcome) accuracy {
	var a accuracy
	if len(outs) == 0 {
		return a
	}
	var abs, naive float64
	var in80, in95, movingIn80, movingIn95 int
	for _, o := range outs {
		abs += math.Abs(o.Actual - o.Point)
		naive += math.Abs(o.Actual - o.Last)
		hit80 := o.Actual >= o.Lower80 && o.Actual <= o.Upper80
		hit95 := o.Actual >= o.Lower95 && o.Actual <= o.Upper95
		if hit80 {
			in80++
		}
		if hit95 {
			in95++
		}
		if o.Moved {
			a.moving++
			if hit80 {
				movingIn80++
			}
			if hit95 {
				movingIn95++
			}
		}
	}
	n := float64(len(outs))
	ptr := func(x float64) *float64 { x = round4(x); return &x }
	a.mae = ptr(abs / n)
	if naive > 0 {
		a.relativeMAE = ptr(abs / naive)
	}
	a.coverage80, a.coverage95 = ptr(float64(in80)/n), ptr(float64(in95)/n)
	if a.moving > 0 {
		m := float64(a.moving)
		a.movingCoverage80, a.movingCoverage95 = ptr(float64(movingIn80)/m), ptr(float64(movingIn95)/m)
	}
	for _, b := range ml.Calibration(outs, calibrationBins) {
		if b.Forecasts == 0 {
			continue
		}
		a.calibration = append(a.calibration, obsqra.CalibrationBin{
			ConfidenceFrom: round4(b.Lo), ConfidenceTo: round4(b.Hi),
			Predicted: round4(b.MeanConfidence), Observed: round4(b.HitRate), Count: b.Forecasts,
		})
	}
	return a
}
