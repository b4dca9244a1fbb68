package ml

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/obsqra/obsqra"
)

// RiskForecastInput is what ForecastRisk needs: the history of the two
// risk inputs that move, and the three that do not (or move predictably).
type RiskForecastInput struct {
	Utilization Series // daily utilization in bps, 0–10000
	Volatility  Series // daily volatility in bps, 0–1,000,000

	LiquidityTier int64 // 0 (deepest) – 3, held constant
	AuditScore    int64 // 0–100, held constant
	AgeDays       int64 // protocol age on the origin day, 0–36500; it grows by the horizon

	Params obsqra.RiskParams // the RiskEngine's model parameters, e.g. obsqra.DefaultRiskParams()
}

// RiskDraws is the number of simulated input pairs behind a risk forecast's
// intervals and confidence.
const RiskDraws = 2000

// fcRiskStream is the second word of the PCG state, fixed so that the seed
// alone determines the draws.
const fcRiskStream = 0x6f6273717261 // "obsqra"

// ForecastRisk forecasts the RiskEngine score horizon days after origin.
//
// Utilization and volatility are forecast with ForecastSeries and opts (its
// NonNegative is ignored: both are clamped into their valid ranges
// instead; an empty Model means SeriesModel, the global model being fitted
// on lending rates); liquidity tier and audit score stay as they are; the age grows
// by the horizon (capped at 36500 days). The point is the score, by the
// contract's own formula (ScoreRisk), of the point forecasts rounded to
// integers and clamped into range.
//
// The intervals propagate the two forecasts' uncertainty: RiskDraws times,
// each input is drawn from its forecast's predictive error distribution —
// with probability m/(m+ConfidencePrior) one of its m past errors at this
// horizon, otherwise a normal draw with the model's analytic spread (see
// ForecastSeries) — added to its point, rounded, clamped and scored. The
// bounds are empirical quantiles of the simulated scores (the 10th and 90th
// percentile for the 80 % interval, 2.5th and 97.5th for 95 %), Confidence
// is the share of simulated scores within Tolerance of the point
// (Tolerance defaulting to DefaultTolerance(point)), and Errors is the
// smaller of the two inputs' error counts. The two inputs are drawn
// independently: a joint shock to both is not modelled. The draws come from
// a PCG generator seeded with seed, so the result is a function of the
// arguments alone.
//
// Errors: EINVALID for parameters or constant inputs out of range (naming
// the field), a utilization or volatility value outside its range, and the
// errors of ForecastSeries for either series.
func ForecastRisk(in RiskForecastInput, origin obsqra.Date, horizon int, seed uint64, opts ForecastOptions) (Forecast, error) {
	if err := in.Params.Validate(); err != nil {
		return Forecast{}, err
	}
	if err := (RiskInputs{LiquidityTier: in.LiquidityTier, AuditScore: in.AuditScore, AgeDays: in.AgeDays}).Validate(); err != nil {
		return Forecast{}, err
	}
	if err := fcCheckTolerance(opts.Tolerance); err != nil {
		return Forecast{}, err
	}
	metrics := []struct {
		name string
		s    Series
		max  float64
	}{
		{"utilization", in.Utilization, 10_000},
		{"volatility", in.Volatility, 1_000_000},
	}
	var fs [2]Forecast
	var dists [2]fcDist
	for i, m := range metrics {
		if err := m.s.Validate(); err != nil {
			return Forecast{}, err
		}
		for j, v := range m.s.Values {
			if v < 0 || v > m.max {
				return Forecast{}, obsqra.Errorf(obsqra.EINVALID, "%s on %s is %v bps, outside 0–%v", m.name, m.s.Days[j], v, m.max)
			}
		}
		model := opts.Model
		if model == "" {
			// The global model is fitted on lending rates, not on
			// utilisation or volatility.
			model = SeriesModel
		}
		f, dist, err := fcForecastDist(m.s, origin, horizon, ForecastOptions{
			Model:             model,
			Global:            opts.Global,
			MinObservations:   opts.MinObservations,
			AnalyticIntervals: opts.AnalyticIntervals,
		})
		if err != nil {
			return Forecast{}, err
		}
		fs[i], dists[i] = f, dist
	}

	base := RiskInputs{
		LiquidityTier: in.LiquidityTier,
		AuditScore:    in.AuditScore,
		AgeDays:       min(in.AgeDays+int64(horizon), 36_500),
	}
	model := Model{p: in.Params} // validated above
	score := func(u, v float64) int64 {
		x := base
		x.UtilizationBps = clampInt(math.Round(u), 0, int64(metrics[0].max))
		x.VolatilityBps = clampInt(math.Round(v), 0, int64(metrics[1].max))
		s, _ := model.Score(x) // rounded into range: no error
		return s.Score
	}
	point := score(fs[0].Point, fs[1].Point)

	rng := rand.New(rand.NewPCG(seed, fcRiskStream))
	draws := make([]int64, RiskDraws)
	for k := range draws {
		draws[k] = score(fs[0].Point+dists[0].sample(rng), fs[1].Point+dists[1].sample(rng))
	}
	slices.Sort(draws)
	q := func(p float64) float64 {
		i := int(math.Floor(p * float64(len(draws))))
		return float64(draws[min(max(i, 0), len(draws)-1)])
	}
	f := Forecast{
		Model:   "risk(" + fs[0].Model + "," + fs[1].Model + ")",
		Origin:  origin,
		Target:  origin + obsqra.Date(horizon),
		Horizon: horizon,
		Point:   float64(point),
		Lower80: q(0.10), Upper80: q(0.90),
		Lower95: q(0.025), Upper95: q(0.975),
		Errors:    min(fs[0].Errors, fs[1].Errors),
		Tolerance: opts.Tolerance,
	}
	if f.Tolerance == 0 {
		f.Tolerance = DefaultTolerance(f.Point)
	}
	var hits int
	for _, s := range draws {
		if math.Abs(float64(s)-f.Point) <= f.Tolerance {
			hits++
		}
	}
	f.Confidence = float64(hits) / float64(len(draws))
	return f, nil
}

// sample draws an error: a past error with probability w, otherwise a
// normal draw with standard deviation sd.
func (f fcDist) sample(r *rand.Rand) float64 {
	if m := len(f.errs); m > 0 && r.Float64() < f.w {
		return f.errs[r.IntN(m)]
	}
	return f.sd * r.NormFloat64()
}
