package ml

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/obsqra/obsqra"
)

// fcZ95 is the standard normal 97.5 % quantile (z80, its 90 %, is in
// strategy_optimizer.go).
const fcZ95 = 1.959963984540054

func fcNear(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// fcRandomWalk returns n consecutive days of a Gaussian random walk.
func fcRandomWalk(seed uint64, n int, start, step float64) Series {
	rng := rand.New(rand.NewPCG(seed, 11))
	s := Series{Days: fcDays(n), Values: make([]float64, n)}
	v := start
	for i := range s.Values {
		v += step * rng.NormFloat64()
		s.Values[i] = v
	}
	return s
}

func TestForecastSeriesNaiveAndDriftHandChecked(t *testing.T) {
	t.Parallel()
	// Changes 2 −1 2 2 −1 2 1 2 −1. Naive: σ² = 24/9 per day, sd √(σ²h).
	// Drift: 8/9 per day, σ² = 19/9, sd √(σ² h (1 + h/9)).
	s := Series{Days: fcDays(10), Values: []float64{3, 5, 4, 6, 8, 7, 9, 10, 12, 11}}
	tests := []struct {
		model     string
		horizon   int
		point, sd float64
	}{
		{"naive", 1, 11, 1.632993161855452},
		{"naive", 3, 11, 2.8284271247461903},
		{"drift", 1, 11.88888888888889, 1.5315609724544692},
		{"drift", 3, 13.666666666666666, 2.9059326290271157},
	}
	origin := s.Days[9]
	for _, tt := range tests {
		opts := ForecastOptions{Model: tt.model, MinObservations: 10, AnalyticIntervals: true}
		f, err := ForecastSeries(s, origin, tt.horizon, opts)
		if err != nil {
			t.Fatalf("ForecastSeries(%s, h=%d): %v", tt.model, tt.horizon, err)
		}
		want := Forecast{
			Model: tt.model, Origin: origin, Target: origin + obsqra.Date(tt.horizon), Horizon: tt.horizon, Point: tt.point,
			Lower80: tt.point - z80*tt.sd, Upper80: tt.point + z80*tt.sd,
			Lower95: tt.point - fcZ95*tt.sd, Upper95: tt.point + fcZ95*tt.sd,
		}
		if f.Model != want.Model || f.Target != want.Target || f.Errors != 0 || !fcNear(f.Point, want.Point, 1e-12) ||
			!fcNear(f.Lower80, want.Lower80, 1e-9) || !fcNear(f.Upper80, want.Upper80, 1e-9) ||
			!fcNear(f.Lower95, want.Lower95, 1e-9) || !fcNear(f.Upper95, want.Upper95, 1e-9) {
			t.Errorf("ForecastSeries(%s, h=%d) = %+v, want %+v", tt.model, tt.horizon, f, want)
		}
	}
}

func TestForecastSeriesSESHandChecked(t *testing.T) {
	t.Parallel()
	// The SES point forecast is the last filtered level, whatever α the
	// fit chose: check it against the recursion run by hand from the
	// fitted α and initial level.
	s := fcRandomWalk(3, 60, 5, 0.2)
	f, err := ForecastSeries(s, s.Days[59], 5, ForecastOptions{Model: "ses"})
	if err != nil {
		t.Fatal(err)
	}
	d := newFCData(s)
	fit := fitETS(d, etsSES, nil)
	l := fit.l0 + d.shift
	for _, y := range s.Values {
		l += fit.alpha * (y - l)
	}
	if f.Model != "ses" || !fcNear(f.Point, l, 1e-9) {
		t.Errorf("ForecastSeries(ses) = %s %v, want ses %v (α %v)", f.Model, f.Point, l, fit.alpha)
	}
}

func TestForecastSeriesTargetsCalendarDays(t *testing.T) {
	t.Parallel()
	// 40 days, then a missing week, then 5 more days, then the origin falls
	// 3 days after the last observation.
	var s Series
	for d := obsqra.Date(0); d < 52; d++ {
		if d >= 40 && d < 47 {
			continue
		}
		s.Days = append(s.Days, 19000+d)
		s.Values = append(s.Values, 1+0.01*float64(d%5))
	}
	last := s.Days[len(s.Days)-1]
	origin := last + 3
	f, err := ForecastSeries(s, origin, 7, ForecastOptions{Model: "naive", AnalyticIntervals: true})
	if err != nil {
		t.Fatal(err)
	}
	if f.Origin != origin || f.Target != origin+7 || f.Horizon != 7 {
		t.Errorf("ForecastSeries(origin %s, 7) = origin %s target %s horizon %d, want %s %s 7", origin, f.Origin, f.Target, f.Horizon, origin, origin+7)
	}
	// The naive variance grows over 10 calendar days from the last
	// observation, not 7 steps.
	w := fcFitWalk(newFCData(s))
	if want := z80 * math.Sqrt(w.naive2*10); !fcNear(f.Upper80-f.Point, want, 1e-9) {
		t.Errorf("naive 80 %% half-width = %v, want %v (10 calendar days)", f.Upper80-f.Point, want)
	}
	// An origin inside the missing week uses the data before it only.
	in, err := ForecastSeries(s, 19043, 2, ForecastOptions{Model: "naive"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Point != s.Values[39] {
		t.Errorf("forecast from inside the gap = %v, want the last value before it %v", in.Point, s.Values[39])
	}
}

func TestRollingErrorsPairTheRightDays(t *testing.T) {
	t.Parallel()
	// Value = 100 + day with a missing week: a naive forecast h days ahead
	// misses by exactly h, restated at today's level (100 + last day)
	// relative to the level it was made at (100 + its day), at most
	// fcMaxRestate times: the first errors, made at 100–105, hit the cap.
	var s Series
	for d := obsqra.Date(0); d < 60; d++ {
		if d >= 20 && d < 27 {
			continue
		}
		s.Days = append(s.Days, d)
		s.Values = append(s.Values, 100+float64(d))
	}
	const h = 5
	got, err := RollingErrors(s, 59, h, ForecastOptions{Model: "naive"})
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	for _, d := range s.Days {
		if _, ok := s.ValueOn(d + h); ok && d+h <= 59 {
			want = append(want, h*min((100+59)/(100+float64(d)), fcMaxRestate))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("RollingErrors gave %d errors, want %d", len(got), len(want))
	}
	for i := range got {
		if !fcNear(got[i], want[i], 1e-9) {
			t.Errorf("RollingErrors[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestForecastSeriesUsesOnlyDataUpToOrigin(t *testing.T) {
	t.Parallel()
	s := fcRandomWalk(5, 200, 3, 0.1)
	origin := s.Days[120]
	cut := s.Until(origin)
	changed := Series{Days: s.Days, Values: append([]float64(nil), s.Values...)}
	for i := 121; i < len(changed.Values); i++ {
		changed.Values[i] = 1e6
	}
	for _, model := range []string{"", "ets", "combo(naive,damped)", "select(naive,ses,median7)"} {
		a, err1 := ForecastSeries(cut, origin, 30, ForecastOptions{Model: model})
		b, err2 := ForecastSeries(changed, origin, 30, ForecastOptions{Model: model})
		if err1 != nil || err2 != nil || !fcSameBits(a, b) {
			t.Errorf("model %q: forecast changed with data after the origin: %+v vs %+v (%v, %v)", model, a, b, err1, err2)
		}
	}
}

// fcSameBits compares forecasts bit for bit.
func fcSameBits(a, b Forecast) bool {
	fa := []float64{a.Point, a.Lower80, a.Upper80, a.Lower95, a.Upper95, a.Tolerance, a.Confidence}
	fb := []float64{b.Point, b.Lower80, b.Upper80, b.Lower95, b.Upper95, b.Tolerance, b.Confidence}
	for i := range fa {
		if math.Float64bits(fa[i]) != math.Float64bits(fb[i]) {
			return false
		}
	}
	return a.Model == b.Model && a.Origin == b.Origin && a.Target == b.Target && a.Horizon == b.Horizon && a.Errors == b.Errors
}

func TestForecastSeriesDeterministic(t *testing.T) {
	t.Parallel()
	s := fcRandomWalk(9, 300, 0.04, 0.002)
	for _, model := range []string{"", "ses", "holt", "damped", "ets", "combo(naive,ets)"} {
		a, err := ForecastSeries(s, s.Days[299], 14, ForecastOptions{Model: model})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ForecastSeries(s, s.Days[299], 14, ForecastOptions{Model: model})
		if !fcSameBits(a, b) {
			t.Errorf("ForecastSeries(model %q) twice = %+v and %+v", model, a, b)
		}
	}
}

func TestForecastSeriesInvalid(t *testing.T) {
	t.Parallel()
	good := fcRandomWalk(1, 40, 1, 0.1)
	nan := fcRandomWalk(1, 40, 1, 0.1)
	nan.Values[7] = math.NaN()
	unsorted := fcRandomWalk(1, 40, 1, 0.1)
	unsorted.Days[5], unsorted.Days[6] = unsorted.Days[6], unsorted.Days[5]
	last := good.Days[39]
	tests := []struct {
		name    string
		s       Series
		origin  obsqra.Date
		horizon int
		opts    ForecastOptions
	}{
		{"NaN value", nan, last, 7, ForecastOptions{}},
		{"unsorted days", unsorted, last, 7, ForecastOptions{}},
		{"too short", good, good.Days[20], 7, ForecastOptions{}},
		{"horizon 0", good, last, 0, ForecastOptions{}},
		{"horizon 366", good, last, 366, ForecastOptions{}},
		{"origin before data", good, good.Days[0] - 1, 7, ForecastOptions{}},
		{"empty series", Series{}, last, 7, ForecastOptions{}},
		{"unknown model", good, last, 7, ForecastOptions{Model: "arima"}},
		{"median1", good, last, 7, ForecastOptions{Model: "median1"}},
		{"median32", good, last, 7, ForecastOptions{Model: "median32"}},
		{"empty combo", good, last, 7, ForecastOptions{Model: "combo()"}},
		{"bad member", good, last, 7, ForecastOptions{Model: "select(naive,foo)"}},
		{"MinObservations 5", good, last, 7, ForecastOptions{MinObservations: 5}},
		{"negative tolerance", good, last, 7, ForecastOptions{Tolerance: -1}},
		{"NaN tolerance", good, last, 7, ForecastOptions{Tolerance: math.NaN()}},
	}
	for _, tt := range tests {
		_, err := ForecastSeries(tt.s, tt.origin, tt.horizon, tt.opts)
		if code := obsqra.ErrorCode(err); code != obsqra.EINVALID {
			t.Errorf("ForecastSeries(%s) error = %v (code %q), want %s", tt.name, err, code, obsqra.EINVALID)
		}
		if _, err := RollingErrors(tt.s, tt.origin, tt.horizon, tt.opts); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("RollingErrors(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
		}
	}
	if _, err := ForecastSeries(good, last, 365, ForecastOptions{}); err != nil {
		t.Errorf("ForecastSeries(horizon 365) = %v, want no error", err)
	}
}

func TestIntervalsWidenWithHorizon(t *testing.T) {
	t.Parallel()
	// Analytic intervals widen with the horizon by construction. Calibrated
	// ones follow the series' own errors, and at long horizons those
	// overlap so much that one series can happen to have had smaller
	// 90-day than 30-day errors; over many series they widen too.
	horizons := []int{1, 7, 30, 90}
	const seeds = 20
	for _, model := range []string{"", "naive", "drift", "ses", "holt", "damped", "ets"} {
		for _, analytic := range []bool{true, false} {
			var mean80, mean95 [4]float64
			for seed := uint64(1); seed <= seeds; seed++ {
				s := fcRandomWalk(seed, 365, 50, 1)
				prev := Forecast{}
				for i, h := range horizons {
					f, err := ForecastSeries(s, s.Days[364], h, ForecastOptions{Model: model, AnalyticIntervals: analytic})
					if err != nil {
						t.Fatal(err)
					}
					if !(f.Lower95 <= f.Lower80 && f.Lower80 <= f.Upper80 && f.Upper80 <= f.Upper95) {
						t.Errorf("model %q analytic=%v h=%d: bounds out of order: %+v", model, analytic, h, f)
					}
					w80, w95 := f.Upper80-f.Lower80, f.Upper95-f.Lower95
					mean80[i] += w80 / seeds
					mean95[i] += w95 / seeds
					if analytic && i > 0 && (w80 <= prev.Upper80-prev.Lower80 || w95 <= prev.Upper95-prev.Lower95) {
						t.Errorf("model %q analytic: interval at h=%d (%v, %v) not wider than at h=%d (%v, %v)", model,
							h, w80, w95, prev.Horizon, prev.Upper80-prev.Lower80, prev.Upper95-prev.Lower95)
					}
					prev = f
				}
			}
			for i := 1; i < len(horizons); i++ {
				if mean80[i] <= mean80[i-1] || mean95[i] <= mean95[i-1] {
					t.Errorf("model %q analytic=%v: mean widths %v (80 %%) %v (95 %%) do not grow with horizons %v", model, analytic, mean80, mean95, horizons)
				}
			}
		}
	}
}

func TestForecastSeriesNonNegative(t *testing.T) {
	t.Parallel()
	// A rate drifting down toward zero: unclamped bounds go negative.
	s := Series{Days: fcDays(60), Values: make([]float64, 60)}
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range s.Values {
		s.Values[i] = 0.01*(1-float64(i)/60) + 0.002*rng.NormFloat64()
	}
	for _, model := range []string{"", "holt", "drift"} {
		free, err := ForecastSeries(s, s.Days[59], 30, ForecastOptions{Model: model})
		if err != nil {
			t.Fatal(err)
		}
		if free.Lower95 >= 0 {
			t.Fatalf("model %q: Lower95 = %v; the test needs a negative unclamped bound", model, free.Lower95)
		}
		clamped, _ := ForecastSeries(s, s.Days[59], 30, ForecastOptions{Model: model, NonNegative: true})
		if clamped.Lower95 != 0 || clamped.Lower80 < 0 || clamped.Point < 0 || clamped.Point != math.Max(free.Point, 0) {
			t.Errorf("model %q NonNegative: %+v, want bounds and point clamped at 0 (unclamped %+v)", model, clamped, free)
		}
	}
}

func TestSeriesModelSelectsPerSeries(t *testing.T) {
	t.Parallel()
	// A steady rate with one-day spikes: a median ignores them, the last
	// value does not. A random walk: the last value is best.
	spiky := Series{Days: fcDays(200), Values: make([]float64, 200)}
	rng := rand.New(rand.NewPCG(8, 8))
	for i := range spiky.Values {
		spiky.Values[i] = 0.03 + 0.0005*rng.NormFloat64()
		if rng.IntN(6) == 0 {
			spiky.Values[i] += 0.05
		}
	}
	walk := fcRandomWalk(8, 200, 1, 0.05)
	tests := []struct {
		name string
		s    Series
		want map[string]bool
	}{
		{"spiky", spiky, map[string]bool{"median3": true, "median7": true, "median14": true}},
		{"random walk", walk, map[string]bool{"naive": true}},
	}
	for _, tt := range tests {
		f, err := ForecastSeries(tt.s, tt.s.Days[199], 7, ForecastOptions{Model: SeriesModel})
		if err != nil {
			t.Fatal(err)
		}
		if !tt.want[f.Model] {
			t.Errorf("ForecastSeries(%s) picked %s, want one of %v", tt.name, f.Model, tt.want)
		}
	}
	// With no past errors at the horizon (30 observations, 30 days ahead)
	// select falls back to its first member.
	f, err := ForecastSeries(spiky.Until(spiky.Days[29]), spiky.Days[29], 30, ForecastOptions{Model: SeriesModel})
	if err != nil || f.Model != "naive" || f.Errors != 0 {
		t.Errorf("ForecastSeries(30 observations, h=30) = %s with %d errors (%v), want naive with 0", f.Model, f.Errors, err)
	}
}

func TestModelNames(t *testing.T) {
	t.Parallel()
	s := fcRandomWalk(2, 120, 10, 0.3)
	tests := []struct{ model, want string }{
		{"naive", "naive"},
		{"median5", "median5"},
		{"combo(naive,median7)", "combo(naive,median7)"},
		{"combo(naive,ses,damped)", "combo(naive,ses,damped)"},
	}
	for _, tt := range tests {
		f, err := ForecastSeries(s, s.Days[119], 7, ForecastOptions{Model: tt.model})
		if err != nil || f.Model != tt.want {
			t.Errorf("ForecastSeries(model %q).Model = %q (%v), want %q", tt.model, f.Model, err, tt.want)
		}
	}
	// A combination is the average of its members.
	a, errA := ForecastSeries(s, s.Days[119], 7, ForecastOptions{Model: "naive"})
	b, errB := ForecastSeries(s, s.Days[119], 7, ForecastOptions{Model: "median7"})
	c, errC := ForecastSeries(s, s.Days[119], 7, ForecastOptions{Model: "combo(naive,median7)"})
	if err := errors.Join(errA, errB, errC); err != nil {
		t.Fatal(err)
	}
	if !fcNear(c.Point, (a.Point+b.Point)/2, 1e-12) {
		t.Errorf("combo(naive,median7) = %v, want the mean of %v and %v", c.Point, a.Point, b.Point)
	}
	// "ets" resolves to the model AICc picked.
	if f, _ := ForecastSeries(s, s.Days[119], 7, ForecastOptions{Model: "ets"}); f.Model != "ses" && f.Model != "holt" && f.Model != "damped" {
		t.Errorf("ForecastSeries(ets).Model = %q, want ses, holt or damped", f.Model)
	}
}

func TestTrailingMedian(t *testing.T) {
	t.Parallel()
	y := []float64{5, 1, 4, 2, 3}
	tests := []struct {
		i, k int
		want float64
	}{
		{4, 3, 3},   // 4 2 3
		{4, 2, 2.5}, // 2 3
		{1, 3, 3},   // 5 1 (fewer at the start)
		{0, 7, 5},
		{4, 5, 3},
	}
	for _, tt := range tests {
		if got := fcTrailingMedian(y, tt.i, tt.k); got != tt.want {
			t.Errorf("fcTrailingMedian(%v, %d, %d) = %v, want %v", y, tt.i, tt.k, got, tt.want)
		}
	}
}
