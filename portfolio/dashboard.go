package portfolio

import (
	"context"
	"math"

	"github.com/obsqra/obsqra"
)

// Dashboard returns the signed-in user's portfolio at a glance over the
// last windowDays: the latest allocation; per held protocol its risk score
// and APY now, their change since the window's first day (windowDays days
// ago) and the APY's slope per day (least squares over the window's daily
// values); the expected APY (the latest recorded yield forecast of each
// holding when made in the last two days, else its APY now) and the risk
// score weighted by the holdings, each unknown unless every holding has
// its own figure; the change of the portfolio's risk (now, against its
// risk on the window's first day under the allocation held then, or on
// the first day after it that the risk is known, as portfolioRiskHistory
// shows it); the realised APY (the mean,
// over the window's days on which the user held an allocation, of the APY
// that allocation earned that day); and the latest suggestion when it moves
// from the latest allocation, clears the user's threshold and was not
// followed. It reads at most four statements, whatever the window.
// Errors: EUNAUTHENTICATED; EINVALID for a window outside 1–365; internal
// ones.
func (s *Service) Dashboard(ctx context.Context, windowDays int) (*obsqra.Dashboard, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := window(windowDays); err != nil {
		return nil, err
	}
	user := pr.User
	today := obsqra.DateOf(s.cfg.Now())
	start := today - obsqra.Date(windowDays)
	d := &obsqra.Dashboard{UserID: user.ID, WindowDays: windowDays}
	allocs, err := s.db.AllocationsSince(ctx, user.ID, start.Time())
	if err != nil {
		return nil, err
	}
	if len(allocs) == 0 {
		return d, nil
	}
	latest := &allocs[len(allocs)-1]
	d.LatestAllocation = latest
	ids := heldIDs(allocs)
	hist, err := s.db.DailySeries(ctx, ids, start-carryDays, today)
	if err != nil {
		return nil, err
	}
	held := make([]int64, len(latest.Weights))
	for i, w := range latest.Weights {
		held[i] = w.ProtocolID
	}
	forecasts, err := s.db.LatestPredictions(ctx, obsqra.PredictionYieldForecast, s.cfg.HorizonDays, held)
	if err != nil {
		return nil, err
	}

	// A portfolio figure is a weighted sum over every holding: one that
	// lacks its figure leaves it unknown (counted as 0 it would make a
	// portfolio look safer, or poorer, than any of its holdings).
	var expected, risk float64
	haveExpected, haveRisk := true, true
	for _, w := range latest.Weights {
		pts := hist[w.ProtocolID]
		row := obsqra.DashboardProtocol{ProtocolID: w.ProtocolID, WeightBps: w.WeightBps}
		x := float64(w.WeightBps) / 10000
		now, okNow := pointOn(pts, today)
		then, okThen := pointOn(pts, start)
		if okNow {
			row.ApyBps = ptr(now.ApyBps)
			if okThen {
				row.ApyChangeBps = ptr(now.ApyBps - then.ApyBps)
			}
			if now.RiskScore != nil {
				row.RiskScore = ptr(*now.RiskScore)
				risk += x * float64(*now.RiskScore)
				if okThen && then.RiskScore != nil {
					row.RiskChange = ptr(*now.RiskScore - *then.RiskScore)
				}
			}
		}
		haveRisk = haveRisk && row.RiskScore != nil
		if slope, ok := apySlope(pts, start, today); ok {
			row.ApySlopeBpsPerDay = &slope
		}
		if f, ok := forecasts[w.ProtocolID]; ok && f.Origin >= today-freshForecastDays {
			e := f.Point
			row.ExpectedApyBps = &e
		} else if okNow {
			e := float64(now.ApyBps)
			row.ExpectedApyBps = &e
		}
		if row.ExpectedApyBps != nil {
			expected += x * *row.ExpectedApyBps
		} else {
			haveExpected = false
		}
		d.Protocols = append(d.Protocols, row)
	}
	if haveExpected {
		d.ExpectedApyBps = ptr(int(math.Round(expected)))
	}
	if haveRisk {
		d.PortfolioRiskScore = ptr(round4(risk))
		// The change is the portfolio's, as portfolioRiskHistory shows it:
		// now against the window's first day under the allocation held
		// then (or, for a user who started within the window, their first
		// day), so a move into a safer protocol counts.
		for day := start; day < today; day++ {
			if then, ok := riskOn(allocs, hist, day); ok {
				d.PortfolioRiskChange = ptr(round4(risk - then))
				break
			}
		}
	}
	d.RealisedApyBps = realised(allocs, hist, start+1, today)

	sug, followed, err := s.db.LatestSuggestion(ctx, user.ID)
	if err != nil && obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		return nil, err
	}
	if err == nil && !followed {
		rs, ok, err := sug.Suggestion()
		if err != nil {
			return nil, err
		}
		if ok && rs.AllocationID == latest.ID && clears(rs, user.Preferences.RebalanceThresholdBps) {
			d.PendingSuggestion = rs
		}
	}
	return d, nil
}

// clears reports whether rs clears the user's threshold now: as recorded
// when it was made for the same threshold, else by its net improvement (the
// user may have changed their threshold since).
func clears(rs *obsqra.RebalanceSuggestion, thresholdBps int) bool {
	if rs.ThresholdBps == thresholdBps {
		return rs.ClearsThreshold
	}
	return len(rs.Trades) > 0 && rs.ExpectedImprovementBps > 0 && rs.ExpectedImprovementBps >= float64(thresholdBps)
}

// freshForecastDays is how old, in days, a recorded forecast may be for a
// dashboard to weigh it: an older one (the forecast job stopped) gives way
// to the APY now.
const freshForecastDays = 2

func ptr[T any](v T) *T { return &v }

// apySlope is the least-squares slope, in bps per day, of the daily APYs
// observed from day from through to; false with fewer than two.
func apySlope(points []obsqra.DailyPoint, from, to obsqra.Date) (float64, bool) {
	var n, sx, sy, sxx, sxy float64
	for _, p := range points {
		if p.Day < from || p.Day > to {
			continue
		}
		x, y := float64(p.Day-from), float64(p.ApyBps)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if n < 2 || den == 0 {
		return 0, false
	}
	return round4((n*sxy - sx*sy) / den), true
}

// realised is the mean, over the days from through to on which an
// allocation was in effect and every holding had a value, of the APY that
// allocation earned that day; nil when there is no such day.
func realised(allocs []obsqra.Allocation, hist map[int64][]obsqra.DailyPoint, from, to obsqra.Date) *int {
	var sum float64
	days := 0
	for d := from; d <= to; d++ {
		a := inEffect(allocs, d)
		if a == nil {
			continue
		}
		var apy float64
		ok := true
		for _, w := range a.Weights {
			p, found := pointOn(hist[w.ProtocolID], d)
			if !found {
				ok = false
				break
			}
			apy += float64(w.WeightBps) / 10000 * float64(p.ApyBps)
		}
		if ok {
			sum += apy
			days++
		}
	}
	if days == 0 {
		return nil
	}
	return ptr(int(math.Round(sum / float64(days))))
}

// riskOn is the risk score of the allocation in effect on day d, weighted
// by it; false when none was, or a holding has no score that day.
func riskOn(allocs []obsqra.Allocation, hist map[int64][]obsqra.DailyPoint, d obsqra.Date) (float64, bool) {
	a := inEffect(allocs, d)
	if a == nil {
		return 0, false
	}
	var risk float64
	for _, w := range a.Weights {
		p, found := pointOn(hist[w.ProtocolID], d)
		if !found || p.RiskScore == nil {
			return 0, false
		}
		risk += float64(w.WeightBps) / 10000 * float64(*p.RiskScore)
	}
	return risk, true
}

// PortfolioRiskHistory returns the signed-in user's risk score on each of
// the last windowDays days on which they held an allocation: the risk
// scores of that day's holdings weighted by the allocation in effect,
// oldest first. Two statements, whatever the window.
// Errors: EUNAUTHENTICATED; EINVALID for a window outside 1–365; internal
// ones.
func (s *Service) PortfolioRiskHistory(ctx context.Context, windowDays int) ([]obsqra.PortfolioRiskPoint, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := window(windowDays); err != nil {
		return nil, err
	}
	today := obsqra.DateOf(s.cfg.Now())
	first := today - obsqra.Date(windowDays-1)
	allocs, err := s.db.AllocationsSince(ctx, pr.User.ID, first.Time())
	if err != nil {
		return nil, err
	}
	out := []obsqra.PortfolioRiskPoint{}
	if len(allocs) == 0 {
		return out, nil
	}
	hist, err := s.db.DailySeries(ctx, heldIDs(allocs), first-carryDays, today)
	if err != nil {
		return nil, err
	}
	for d := first; d <= today; d++ {
		if risk, ok := riskOn(allocs, hist, d); ok {
			out = append(out, obsqra.PortfolioRiskPoint{Date: d, RiskScore: round4(risk)})
		}
	}
	return out, nil
}
