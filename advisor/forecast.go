package advisor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"slices"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// ForecastResult is one protocol's forecast, or why there is none.
type ForecastResult struct {
	Forecast *obsqra.Forecast
	Err      error
}

// Forecasts forecasts kind (RISK_FORECAST or YIELD_FORECAST) for each
// protocol horizon days from today (nil: the default horizon), from the
// stored daily history only, reading the histories of all of them in one
// statement. A protocol with too little history gets ENOTFOUND in its
// result. Errors: EINVALID for the kind or the horizon; internal ones.
func (s *Service) Forecasts(ctx context.Context, kind obsqra.PredictionKind, ps []*obsqra.Protocol, horizon *int) (map[int64]ForecastResult, error) {
	h, err := s.horizon(horizon)
	if err != nil {
		return nil, err
	}
	if kind != obsqra.PredictionRiskForecast && kind != obsqra.PredictionYieldForecast {
		return nil, obsqra.Errorf(obsqra.EINVALID, "%s is not a forecast kind", kind)
	}
	hist, err := s.histories(ctx, ps)
	if err != nil {
		return nil, err
	}
	var params *obsqra.RiskParams
	if kind == obsqra.PredictionRiskForecast {
		m, _, err := s.risk.ActiveModel(ctx)
		if err != nil {
			return nil, err
		}
		p := m.Params()
		params = &p
	}
	out := make(map[int64]ForecastResult, len(ps))
	for _, p := range ps {
		f, err := s.forecast(kind, p, hist[p.ID], h, params)
		if err != nil {
			out[p.ID] = ForecastResult{Err: err}
			continue
		}
		out[p.ID] = ForecastResult{Forecast: &f}
	}
	return out, nil
}

// histories loads the daily history forecasts use, HistoryDays up to today,
// of every protocol in one statement.
func (s *Service) histories(ctx context.Context, ps []*obsqra.Protocol) (map[int64][]obsqra.DailyPoint, error) {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	today := s.today()
	return s.db.DailySeries(ctx, ids, today-obsqra.Date(s.cfg.HistoryDays-1), today)
}

// forecast forecasts one protocol from its daily points, through the cache.
// params are the risk model's (RISK_FORECAST only).
// Errors: ENOTFOUND for too little history; internal ones.
func (s *Service) forecast(kind obsqra.PredictionKind, p *obsqra.Protocol, points []obsqra.DailyPoint, horizon int, params *obsqra.RiskParams) (obsqra.Forecast, error) {
	if len(points) < minForecastDays {
		return obsqra.Forecast{}, obsqra.Errorf(obsqra.ENOTFOUND,
			"%s has %d days of history in the last %d; a forecast needs %d", p.Slug, len(points), s.cfg.HistoryDays, minForecastDays)
	}
	last := points[len(points)-1]
	// A forecast is made today: when the feed is late, the days since its
	// last observation count toward the horizon.
	origin := max(s.today(), last.Day)
	tier := int64(2)
	for i := len(points) - 1; i >= 0; i-- {
		if points[i].LiquidityTier != nil {
			tier = int64(*points[i].LiquidityTier)
			break
		}
	}
	age := int64(p.AgeDays(origin.Time()))
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n%d\n%d\n%d\n%d\n", ModelVersion, kind, horizon, origin, tier, p.AuditScore, age)
	if params != nil {
		fmt.Fprintf(h, "%+v\n", *params)
	}
	digestPoints(h, points)
	digest := hex.EncodeToString(h.Sum(nil))

	s.mu.Lock()
	f, ok := s.forecasts[digest]
	s.mu.Unlock()
	if ok {
		f.ProtocolID = p.ID
		return f, nil
	}

	days := make([]obsqra.Date, len(points))
	for i, pt := range points {
		days[i] = pt.Day
	}
	var mf ml.Forecast
	var err error
	var lastValue float64
	// moved: whether the series forecast (the APY; the risk score, on the
	// days that have one) moved in the ml.MovedWindow days up to and
	// including the origin, recorded with the forecast.
	var moved bool
	switch kind {
	case obsqra.PredictionYieldForecast:
		series := yieldSeries(days, points)
		lastValue = series.Values[len(points)-1]
		moved = series.MovedBy(origin)
		mf, err = ml.ForecastSeries(series, origin, horizon, ml.ForecastOptions{NonNegative: true})
	case obsqra.PredictionRiskForecast:
		util := make([]float64, len(points))
		vol := make([]float64, len(points))
		for i, pt := range points {
			util[i], vol[i] = float64(pt.UtilizationBps), float64(pt.VolatilityBps)
		}
		lastValue = math.NaN()
		for i := len(points) - 1; i >= 0; i-- {
			if points[i].RiskScore != nil {
				lastValue = float64(*points[i].RiskScore)
				break
			}
		}
		// A risk forecast is judged against the risk score (judge.go), so
		// that is the series whose moving counts, not the utilisation and
		// volatility it is computed from.
		var score ml.Series
		for _, pt := range points {
			if pt.RiskScore != nil {
				score.Days = append(score.Days, pt.Day)
				score.Values = append(score.Values, float64(*pt.RiskScore))
			}
		}
		moved = score.MovedBy(origin)
		seed := binary.BigEndian.Uint64(h.Sum(nil)[:8])
		mf, err = ml.ForecastRisk(ml.RiskForecastInput{
			Utilization: ml.Series{Days: days, Values: util}, Volatility: ml.Series{Days: slices.Clone(days), Values: vol},
			LiquidityTier: tier, AuditScore: int64(p.AuditScore), AgeDays: min(age, 36500), Params: *params,
		}, origin, horizon, seed, ml.ForecastOptions{})
	}
	if err != nil {
		return obsqra.Forecast{}, fmt.Errorf("forecast %s of %s: %w", kind, p.Slug, err)
	}
	if math.IsNaN(lastValue) {
		lastValue = mf.Point
	}
	f = obsqra.Forecast{
		Kind: kind, ProtocolID: p.ID, HorizonDays: horizon, Target: mf.Target,
		Point: mf.Point, Lower80: mf.Lower80, Upper80: mf.Upper80, Lower95: mf.Lower95, Upper95: mf.Upper95,
		Confidence: mf.Confidence, Tolerance: mf.Tolerance, Model: mf.Model, ModelVersion: ModelVersion,
		WindowStart: points[0].Day, WindowEnd: last.Day, Last: lastValue, InputsDigest: digest,
		Moved: moved,
	}
	s.mu.Lock()
	if len(s.forecasts) >= maxCached {
		clear(s.forecasts)
	}
	s.forecasts[digest] = f
	s.mu.Unlock()
	return f, nil
}

// yieldSeries is the series of APYs (bps) of points, on days, with the
// utilisation beside each, which the global model reads, when every point
// reports one: a utilisation of 0 is what a DEX pool or DefiLlama's daily
// chart reports, not a lending reserve with nothing borrowed.
func yieldSeries(days []obsqra.Date, points []obsqra.DailyPoint) ml.Series {
	s := ml.Series{Days: days, Values: make([]float64, len(points)), Utilization: make([]float64, len(points))}
	reported := true
	for i, pt := range points {
		s.Values[i] = float64(pt.ApyBps)
		s.Utilization[i] = min(float64(pt.UtilizationBps)/10_000, 1)
		reported = reported && pt.UtilizationBps > 0
	}
	if !reported {
		s.Utilization = nil
	}
	return s
}

// digestPoints writes the values a forecast reads from points to h.
func digestPoints(h hash.Hash, points []obsqra.DailyPoint) {
	var b [8 * 5]byte
	for _, pt := range points {
		binary.BigEndian.PutUint64(b[0:], uint64(pt.Day))
		binary.BigEndian.PutUint64(b[8:], uint64(pt.ApyBps))
		binary.BigEndian.PutUint64(b[16:], uint64(pt.UtilizationBps))
		binary.BigEndian.PutUint64(b[24:], uint64(pt.VolatilityBps))
		r := int64(-1)
		if pt.RiskScore != nil {
			r = int64(*pt.RiskScore)
		}
		binary.BigEndian.PutUint64(b[32:], uint64(r))
		h.Write(b[:])
	}
}

// predictionOf is the prediction that records f.
func predictionOf(f obsqra.Forecast) obsqra.Prediction {
	return obsqra.Prediction{
		Kind: f.Kind, ProtocolID: f.ProtocolID, HorizonDays: f.HorizonDays,
		Origin: f.Target - obsqra.Date(f.HorizonDays), Target: f.Target,
		Point: f.Point, Lower80: f.Lower80, Upper80: f.Upper80, Lower95: f.Lower95, Upper95: f.Upper95,
		Confidence: f.Confidence, Tolerance: f.Tolerance, Last: f.Last,
		Model: f.Model, ModelVersion: f.ModelVersion, InputsDigest: f.InputsDigest,
		WindowStart: f.WindowStart, WindowEnd: f.WindowEnd, Moved: &f.Moved,
	}
}

// RefreshForecasts is the scheduler's forecast job: it forecasts the yield
// and the risk of every enabled protocol at the default horizon and records
// each forecast whose inputs differ from the protocol's last recorded one,
// all in one unit of work, publishing each. Protocols with too little
// history are skipped. It returns how many predictions it recorded.
// Errors: only internal ones.
func (s *Service) RefreshForecasts(ctx context.Context) (int, error) {
	all, err := s.db.Protocols(ctx)
	if err != nil {
		return 0, err
	}
	var ps []*obsqra.Protocol
	var ids []int64
	for i := range all {
		if all[i].Enabled {
			ps = append(ps, &all[i])
			ids = append(ids, all[i].ID)
		}
	}
	if len(ps) == 0 {
		return 0, nil
	}
	hist, err := s.histories(ctx, ps)
	if err != nil {
		return 0, err
	}
	m, _, err := s.risk.ActiveModel(ctx)
	if err != nil {
		return 0, err
	}
	params := m.Params()
	var fresh []obsqra.Prediction
	for _, kind := range []obsqra.PredictionKind{obsqra.PredictionYieldForecast, obsqra.PredictionRiskForecast} {
		latest, err := s.db.LatestPredictions(ctx, kind, s.cfg.HorizonDays, ids)
		if err != nil {
			return 0, err
		}
		var pp *obsqra.RiskParams
		if kind == obsqra.PredictionRiskForecast {
			pp = &params
		}
		for _, p := range ps {
			f, err := s.forecast(kind, p, hist[p.ID], s.cfg.HorizonDays, pp)
			if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
				continue
			} else if err != nil {
				return 0, err
			}
			if prev, ok := latest[p.ID]; ok && prev.InputsDigest == f.InputsDigest {
				continue
			}
			fresh = append(fresh, predictionOf(f))
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		for i := range fresh {
			if err := tx.InsertPrediction(ctx, &fresh[i]); err != nil {
				return err
			}
		}
		for i := range fresh {
			if err := appendPredictionEvent(ctx, tx, &fresh[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(fresh), nil
}

// appendPredictionEvent publishes p, owned by its user (public when it has
// none), in tx.
func appendPredictionEvent(ctx context.Context, tx *store.Tx, p *obsqra.Prediction) error {
	e, err := obsqra.PredictionCreatedEvent(p)
	if err != nil {
		return err
	}
	return tx.AppendEvent(ctx, e)
}
