package advisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
)

// Backtest settings.
const (
	// backtestWarmupDays is the history before a backtest's window that its
	// first forecasts fit on.
	backtestWarmupDays = 120
	// strategyWarmupDays is the history a strategy sees before its first
	// decision; decisions come every strategyEveryDays.
	strategyWarmupDays = 30
	strategyEveryDays  = 7
	// maxBacktestProtocols bounds one backtest.
	maxBacktestProtocols = 20
)

// Backtest runs the walk-forward evaluation of the yield forecasts on the
// stored daily history of the protocols (slugs; when nil, every enabled
// protocol with the days of history a forecast needs): a forecast horizonDays ahead from every day, using only the data up
// to it, scored where its target falls in the last windowDays (default and
// bound: BACKTEST_WINDOW_DAYS). It also runs the allocation strategies
// (Obsqra's optimiser for the caller's preferences, the contract's parity,
// equal weights, the highest APY) over the same window, their yield measured
// on an index accrued from the daily APYs.
// Errors: EINVALID for the horizon, the window or a protocol (unknown, or
// with less than 30 days of history); ENOTFOUND
// when slugs is nil and no protocol has enough history; internal ones.
func (s *Service) Backtest(ctx context.Context, slugs []string, horizonDays int, windowDays *int) (*obsqra.BacktestReport, error) {
	if horizonDays < 1 || horizonDays > maxHorizonDays {
		return nil, obsqra.Errorf(obsqra.EINVALID, "horizonDays must be between 1 and %d, got %d", maxHorizonDays, horizonDays)
	}
	window := s.cfg.BacktestWindowDays
	if windowDays != nil {
		window = *windowDays
	}
	if window < 1 || window > s.cfg.BacktestWindowDays {
		return nil, obsqra.Errorf(obsqra.EINVALID, "windowDays must be between 1 and %d (BACKTEST_WINDOW_DAYS), got %d", s.cfg.BacktestWindowDays, window)
	}
	ps, err := s.backtestProtocols(ctx, slugs)
	if err != nil {
		return nil, err
	}
	prefs, _, err := preferences(ctx)
	if err != nil {
		return nil, err
	}
	today := s.today()
	start := today - obsqra.Date(window-1)
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	hist, err := s.db.DailySeries(ctx, ids, start-obsqra.Date(horizonDays+backtestWarmupDays), today)
	if err != nil {
		return nil, err
	}
	if slugs != nil {
		for i, p := range ps {
			if n := len(hist[p.ID]); n < minForecastDays {
				return nil, obsqra.Errorf(obsqra.EINVALID, "protocols[%d]: %s has %d days of history here; a backtest needs %d", i, p.Slug, n, minForecastDays)
			}
		}
	} else {
		// Every enabled protocol means every one with the history a
		// forecast needs, as for a plan: a protocol without it (just
		// added, say) adds no forecast and would leave the strategies
		// no day on which every protocol was observed.
		var kept []*obsqra.Protocol
		for _, p := range ps {
			if len(hist[p.ID]) >= minForecastDays {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no protocol has the %d days of history a backtest needs yet", minForecastDays)
		}
		ps = kept
		ids = ids[:0]
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
	}
	m, _, err := s.risk.ActiveModel(ctx)
	if err != nil {
		return nil, err
	}
	params := m.Params()

	h := sha256.New()
	fmt.Fprintf(h, "%s\n%d\n%d\n%d\n%v\n%+v\n%+v\n", ModelVersion, horizonDays, window, today, ids, params, prefs)
	for _, id := range ids {
		digestPoints(h, hist[id])
	}
	digest := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	cached, ok := s.backtests[digest]
	s.mu.Unlock()
	if ok {
		return cached, nil
	}

	select {
	case s.backtestSlot <- struct{}{}:
		defer func() { <-s.backtestSlot }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rep := &obsqra.BacktestReport{ProtocolIDs: ids, HorizonDays: horizonDays, WindowDays: window, From: start, To: today}
	var outs []ml.Outcome
	for _, id := range ids {
		pts := hist[id]
		series := ml.Series{Days: make([]obsqra.Date, len(pts)), Values: make([]float64, len(pts))}
		for i, pt := range pts {
			series.Days[i], series.Values[i] = pt.Day, float64(pt.ApyBps)
		}
		err := ml.WalkForward(series, horizonDays, 1, ml.ForecastOptions{NonNegative: true}, func(o ml.Outcome) {
			if o.HasActual && o.Target >= start && o.Target <= today {
				outs = append(outs, o)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("walk forward: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	rep.Forecasts = len(outs)
	acc := summarise(outs)
	rep.MAE, rep.RelativeMAE, rep.Coverage80, rep.Coverage95, rep.Calibration = acc.mae, acc.relativeMAE, acc.coverage80, acc.coverage95, acc.calibration
	rep.MovingForecasts, rep.MovingCoverage80, rep.MovingCoverage95 = acc.moving, acc.movingCoverage80, acc.movingCoverage95

	if b := basket(ps, hist, start-strategyWarmupDays); b != nil {
		n := len(ps)
		strategies := []ml.Strategy{
			ml.Optimizer{
				Tolerance: prefs.RiskTolerance, MaxSingleBps: max(prefs.MaxSingleBps, (10000+n-1)/n),
				MinDiversification: min(prefs.MinDiversification, n), HorizonDays: horizonDays,
				ThresholdBps: prefs.RebalanceThresholdBps, SlippageBps: s.cfg.SlippageBps, Params: params,
			},
			ml.Parity{Params: params}, ml.EqualWeight{}, ml.HighestAPY{},
		}
		for _, st := range strategies {
			r, err := ml.RunStrategy(b, st, ml.BacktestConfig{
				WarmupDays: strategyWarmupDays, EveryDays: strategyEveryDays, CostBps: s.cfg.SlippageBps,
			})
			if obsqra.ErrorCode(err) == obsqra.EINVALID {
				// Too little common history for this strategy.
				continue
			} else if err != nil {
				return nil, fmt.Errorf("backtest %s: %w", st.Name(), err)
			}
			rep.Strategies = append(rep.Strategies, obsqra.StrategyResult{
				Strategy: r.Strategy, RealisedYieldBps: round4(r.RealisedYieldBps), VolatilityBps: round4(r.VolatilityBps),
				WorstDrawdownBps: round4(r.WorstDrawdownBps), Turnover: round4(r.Turnover), Rebalances: r.Rebalances,
				CostBps: round4(r.CostBps),
			})
		}
	}
	s.mu.Lock()
	if len(s.backtests) >= maxCached {
		clear(s.backtests)
	}
	s.backtests[digest] = rep
	s.mu.Unlock()
	return rep, nil
}

// backtestProtocols resolves a backtest's protocols: the named ones
// (enabled or not), or every enabled protocol.
func (s *Service) backtestProtocols(ctx context.Context, slugs []string) ([]*obsqra.Protocol, error) {
	all, err := s.db.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	var ps []*obsqra.Protocol
	if slugs == nil {
		for i := range all {
			if all[i].Enabled {
				ps = append(ps, &all[i])
			}
		}
	} else {
		bySlug := make(map[string]*obsqra.Protocol, len(all))
		for i := range all {
			bySlug[all[i].Slug] = &all[i]
		}
		seen := make(map[string]bool)
		for i, slug := range slugs {
			p, ok := bySlug[slug]
			if !ok {
				return nil, obsqra.Errorf(obsqra.EINVALID, "protocols[%d]: there is no protocol %s", i, obsqra.QuoteInput(slug))
			}
			if seen[slug] {
				return nil, obsqra.Errorf(obsqra.EINVALID, "protocols[%d]: %s is named twice", i, slug)
			}
			seen[slug] = true
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 || len(ps) > maxBacktestProtocols {
		return nil, obsqra.Errorf(obsqra.EINVALID, "a backtest needs 1 to %d protocols, got %d", maxBacktestProtocols, len(ps))
	}
	return ps, nil
}

// basket is the protocols' strategy basket from day from on: the days
// every protocol was observed, with a supply index accrued from the daily
// APYs (what a holder earned at the quoted rate). Nil when fewer than two
// days are common.
func basket(ps []*obsqra.Protocol, hist map[int64][]obsqra.DailyPoint, from obsqra.Date) *ml.Basket {
	n := len(ps)
	count := make(map[obsqra.Date]int)
	for _, p := range ps {
		for _, pt := range hist[p.ID] {
			if pt.Day >= from {
				count[pt.Day]++
			}
		}
	}
	b := &ml.Basket{Name: "stored"}
	for d := from; len(count) > 0; d++ {
		c, ok := count[d]
		if !ok {
			continue
		}
		delete(count, d)
		if c == n {
			b.Days = append(b.Days, d)
		}
	}
	if len(b.Days) < 2 {
		return nil
	}
	for _, p := range ps {
		idx := make([]float64, 0, len(b.Days))
		apy := make([]float64, 0, len(b.Days))
		util := make([]float64, 0, len(b.Days))
		tier := int64(2)
		j := 0
		pts := hist[p.ID]
		for t, d := range b.Days {
			for pts[j].Day < d {
				j++
			}
			pt := pts[j]
			if t == 0 {
				idx = append(idx, 1)
			} else {
				// The rate quoted on the previous common day accrues
				// until this one.
				days := float64(d - b.Days[t-1])
				idx = append(idx, idx[t-1]*math.Exp(math.Log1p(max(apy[t-1]/10000, -0.99))*days/365))
			}
			apy = append(apy, float64(pt.ApyBps))
			util = append(util, float64(pt.UtilizationBps))
			if pt.LiquidityTier != nil {
				tier = int64(*pt.LiquidityTier)
			}
		}
		b.Reserves = append(b.Reserves, p.Slug)
		b.Index = append(b.Index, idx)
		b.APYBps = append(b.APYBps, apy)
		b.UtilizationBps = append(b.UtilizationBps, util)
		b.LiquidityTier = append(b.LiquidityTier, tier)
		b.AuditScore = append(b.AuditScore, int64(p.AuditScore))
		b.LaunchDay = append(b.LaunchDay, p.LaunchedOn)
	}
	return b
}
