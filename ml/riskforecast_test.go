package ml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/obsqra/obsqra"
)

// fcRiskSeries returns n days of a metric in bps: a level with daily noise,
// kept in [0, max].
func fcRiskSeries(seed uint64, n int, level, noise, max float64) Series {
	rng := rand.New(rand.NewPCG(seed, 5))
	s := Series{Days: fcDays(n), Values: make([]float64, n)}
	for i := range s.Values {
		level += 0.2 * noise * rng.NormFloat64()
		s.Values[i] = math.Round(math.Min(math.Max(level+noise*rng.NormFloat64(), 0), max))
	}
	return s
}

func fcRiskInput() RiskForecastInput {
	return RiskForecastInput{
		Utilization:   fcRiskSeries(1, 120, 6000, 400, 10_000),
		Volatility:    fcRiskSeries(2, 120, 3000, 300, 1_000_000),
		LiquidityTier: 1,
		AuditScore:    80,
		AgeDays:       200,
		Params:        obsqra.DefaultRiskParams(),
	}
}

func TestForecastRiskPointIsTheScoreOfThePointForecasts(t *testing.T) {
	t.Parallel()
	in := fcRiskInput()
	origin := in.Utilization.Days[119]
	for _, h := range []int{1, 7, 30} {
		f, err := ForecastRisk(in, origin, h, 42, ForecastOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Utilisation and volatility are forecast with SeriesModel.
		u, _ := ForecastSeries(in.Utilization, origin, h, ForecastOptions{Model: SeriesModel})
		v, _ := ForecastSeries(in.Volatility, origin, h, ForecastOptions{Model: SeriesModel})
		want, err := ScoreRisk(RiskInputs{
			UtilizationBps: int64(math.Round(u.Point)),
			VolatilityBps:  int64(math.Round(v.Point)),
			LiquidityTier:  1,
			AuditScore:     80,
			AgeDays:        200 + int64(h), // the protocol ages by the horizon
		}, obsqra.DefaultRiskParams())
		if err != nil {
			t.Fatal(err)
		}
		if f.Point != float64(want.Score) || f.Target != origin+obsqra.Date(h) || f.Horizon != h {
			t.Errorf("ForecastRisk(h=%d) = point %v target %s, want %d on %s", h, f.Point, f.Target, want.Score, origin+obsqra.Date(h))
		}
		if !(f.Lower95 <= f.Lower80 && f.Lower80 <= f.Upper80 && f.Upper80 <= f.Upper95) {
			t.Errorf("ForecastRisk(h=%d) bounds out of order: %+v", h, f)
		}
		for _, b := range []float64{f.Lower80, f.Upper80, f.Lower95, f.Upper95} {
			if b != math.Trunc(b) || b < 5 || b > 95 {
				t.Errorf("ForecastRisk(h=%d) bound %v is not a score between ClampMin and ClampMax", h, b)
			}
		}
		if f.Confidence < 0 || f.Confidence > 1 || f.Tolerance != DefaultTolerance(f.Point) {
			t.Errorf("ForecastRisk(h=%d) confidence %v tolerance %v", h, f.Confidence, f.Tolerance)
		}
	}
}

func TestForecastRiskDeterministic(t *testing.T) {
	t.Parallel()
	in := fcRiskInput()
	origin := in.Utilization.Days[119]
	a, err := ForecastRisk(in, origin, 14, 7, ForecastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ForecastRisk(in, origin, 14, 7, ForecastOptions{})
	if !fcSameBits(a, b) {
		t.Errorf("ForecastRisk(seed 7) twice = %+v and %+v", a, b)
	}
}

func TestForecastRiskIntervalsPropagateUncertainty(t *testing.T) {
	t.Parallel()
	// Constant inputs: no uncertainty, a point interval.
	flat := fcRiskInput()
	for i := range flat.Utilization.Values {
		flat.Utilization.Values[i] = 5000
		flat.Volatility.Values[i] = 2000
	}
	origin := flat.Utilization.Days[119]
	f, err := ForecastRisk(flat, origin, 30, 1, ForecastOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Lower95 != f.Point || f.Upper95 != f.Point || f.Confidence != 1 {
		t.Errorf("ForecastRisk(constant inputs) = %+v, want a point interval with confidence 1", f)
	}
	// Noisier inputs: wider intervals, lower confidence at a fixed tolerance.
	calm, noisy := fcRiskInput(), fcRiskInput()
	calm.Volatility = fcRiskSeries(3, 120, 3000, 50, 1_000_000)
	noisy.Volatility = fcRiskSeries(3, 120, 3000, 1500, 1_000_000)
	a, _ := ForecastRisk(calm, origin, 7, 1, ForecastOptions{Tolerance: 2})
	b, _ := ForecastRisk(noisy, origin, 7, 1, ForecastOptions{Tolerance: 2})
	if b.Upper95-b.Lower95 <= a.Upper95-a.Lower95 || b.Confidence >= a.Confidence {
		t.Errorf("noisy volatility gives 95 %% width %v confidence %v; calm gives %v, %v: want wider and less confident",
			b.Upper95-b.Lower95, b.Confidence, a.Upper95-a.Lower95, a.Confidence)
	}
}

func TestForecastRiskInvalid(t *testing.T) {
	t.Parallel()
	origin := fcRiskInput().Utilization.Days[119]
	tests := []struct {
		name   string
		modify func(*RiskForecastInput)
		h      int
		opts   ForecastOptions
	}{
		{"liquidity tier 4", func(in *RiskForecastInput) { in.LiquidityTier = 4 }, 7, ForecastOptions{}},
		{"audit 101", func(in *RiskForecastInput) { in.AuditScore = 101 }, 7, ForecastOptions{}},
		{"negative age", func(in *RiskForecastInput) { in.AgeDays = -1 }, 7, ForecastOptions{}},
		{"clampMin above clampMax", func(in *RiskForecastInput) { in.Params.ClampMin = 99 }, 7, ForecastOptions{}},
		{"zero params", func(in *RiskForecastInput) { in.Params = obsqra.RiskParams{} }, 7, ForecastOptions{}},
		{"utilization above 10000", func(in *RiskForecastInput) { in.Utilization.Values[3] = 10_001 }, 7, ForecastOptions{}},
		{"negative volatility", func(in *RiskForecastInput) { in.Volatility.Values[3] = -1 }, 7, ForecastOptions{}},
		{"short volatility", func(in *RiskForecastInput) { in.Volatility = in.Volatility.Until(in.Volatility.Days[10]) }, 7, ForecastOptions{}},
		{"horizon 0", func(*RiskForecastInput) {}, 0, ForecastOptions{}},
		{"bad model", func(*RiskForecastInput) {}, 7, ForecastOptions{Model: "prophet"}},
		{"negative tolerance", func(*RiskForecastInput) {}, 7, ForecastOptions{Tolerance: -2}},
		// More values than days, one out of range: naming its day used to
		// index past the days and panic.
		{"values without days", func(in *RiskForecastInput) { in.Utilization.Values = append(in.Utilization.Values, 1, 20_000) }, 7, ForecastOptions{}},
	}
	for _, tt := range tests {
		in := fcRiskInput()
		tt.modify(&in)
		if _, err := ForecastRisk(in, origin, tt.h, 1, tt.opts); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ForecastRisk(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
		}
	}
}

func TestForecastRiskCoverage(t *testing.T) {
	t.Parallel()
	// Walk forward over synthetic inputs: the realised score on the target
	// day must land in the 80 % interval about 80 % of the time (integer
	// scores make the intervals a little conservative).
	var n, in80, in95 int
	for seed := uint64(1); seed <= 6; seed++ {
		in := fcRiskInput()
		in.Utilization = fcRiskSeries(seed, 300, 6000, 600, 10_000)
		in.Volatility = fcRiskSeries(seed+100, 300, 3000, 500, 1_000_000)
		for i := 60; i+7 < 300; i += 4 {
			origin := in.Utilization.Days[i]
			f, err := ForecastRisk(in, origin, 7, seed, ForecastOptions{})
			if err != nil {
				t.Fatal(err)
			}
			u, _ := in.Utilization.ValueOn(f.Target)
			v, _ := in.Volatility.ValueOn(f.Target)
			actual, err := ScoreRisk(RiskInputs{UtilizationBps: int64(u), VolatilityBps: int64(v), LiquidityTier: 1, AuditScore: 80, AgeDays: 207}, obsqra.DefaultRiskParams())
			if err != nil {
				t.Fatal(err)
			}
			a := float64(actual.Score)
			n++
			if f.Lower80 <= a && a <= f.Upper80 {
				in80++
			}
			if f.Lower95 <= a && a <= f.Upper95 {
				in95++
			}
		}
	}
	c80, c95 := float64(in80)/float64(n), float64(in95)/float64(n)
	t.Logf("%d risk forecasts: 80 %% coverage %.3f, 95 %% coverage %.3f", n, c80, c95)
	if c80 < 0.72 || c80 > 0.92 || c95 < 0.88 {
		t.Errorf("risk intervals cover %.3f (80 %%) and %.3f (95 %%)", c80, c95)
	}
}
