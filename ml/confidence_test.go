package ml

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestConfidence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		errors []float64
		tol    float64
		want   float64
	}{
		{[]float64{-3, -1, 0, 0.5, 2}, 1, 0.6},
		{[]float64{-3, -1, 0, 0.5, 2}, 0, 0.2},
		{[]float64{-3, -1, 0, 0.5, 2}, 10, 1},
		{[]float64{1, 1}, 0.999, 0},
	}
	for _, tt := range tests {
		if got := Confidence(tt.errors, tt.tol); got != tt.want {
			t.Errorf("Confidence(%v, %v) = %v, want %v", tt.errors, tt.tol, got, tt.want)
		}
	}
	if got := Confidence(nil, 1); !math.IsNaN(got) {
		t.Errorf("Confidence(nil, 1) = %v, want NaN", got)
	}
}

func TestShrunkConfidence(t *testing.T) {
	t.Parallel()
	normal := math.Erf(1 / math.Sqrt2) // P(|N(0,1)| ≤ 1) = 0.6827
	twenty := make([]float64, ConfidencePrior)
	for i := range twenty {
		twenty[i] = float64(i%4) - 1.5 // −1.5 −0.5 0.5 1.5: half within 1
	}
	many := make([]float64, 100*ConfidencePrior)
	for i := range many {
		many[i] = float64(i%4) - 1.5
	}
	tests := []struct {
		name   string
		errors []float64
		tol    float64
		sd     float64
		want   float64
	}{
		{"no errors: the normal", nil, 1, 1, normal},
		{"no errors, sd 0", nil, 1, 0, 1},
		{"ConfidencePrior errors: half and half", twenty, 1, 1, 0.5*0.5 + 0.5*normal},
		{"many errors: mostly empirical", many, 1, 1, (100*0.5 + normal) / 101},
		{"negative tolerance", twenty, -1, 1, 0},
	}
	for _, tt := range tests {
		if got := ShrunkConfidence(tt.errors, tt.tol, tt.sd); !fcNear(got, tt.want, 1e-12) {
			t.Errorf("ShrunkConfidence(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFCDistInterval(t *testing.T) {
	t.Parallel()
	// No past errors: the normal interval.
	d := newFCDist(nil, 2)
	if lo, hi := d.interval(0.8); !fcNear(lo, -z80*2, 1e-9) || !fcNear(hi, z80*2, 1e-9) {
		t.Errorf("normal interval(0.8) = [%v, %v], want ±%v", lo, hi, z80*2)
	}
	// Many past errors of exactly 0 (a series that rarely changes) and a
	// tail of rises: the central interval would start at the atom and hold
	// far more than 80 %; the interval must hold 80 % (up to one error's
	// mass) and still contain the atom.
	errs := make([]float64, 200)
	for i := 140; i < 200; i++ {
		errs[i] = float64(i-139) * 0.01
	}
	d = newFCDist(errs, 0.05)
	lo, hi := d.interval(0.8)
	content := d.cdf(hi) - d.cdfBelow(lo)
	if lo > 0 || hi < 0 || content < 0.8-1e-9 || content > 0.8+1.0/200 {
		t.Errorf("interval(0.8) with an atom at 0 = [%v, %v] holding %v, want 80 %% including 0", lo, hi, content)
	}
	// All errors 0 and no analytic spread: a point.
	d = newFCDist(make([]float64, 50), 0)
	if lo, hi := d.interval(0.95); lo != 0 || hi != 0 {
		t.Errorf("interval(0.95) of constant errors = [%v, %v], want [0, 0]", lo, hi)
	}
	// Quantiles land exactly on a past error when that is the answer. With
	// sd 0 the normal part is an atom at 0 of weight 20/25: P(≤ x) =
	// 0.8 + 0.2·#{errors ≤ x}/5 for x ≥ 0, which reaches 0.9 at x = 3.
	d = newFCDist([]float64{3, 1, 2, 5, 4}, 0)
	if q := d.quantile(0.9); q != 3 {
		t.Errorf("quantile(0.9) of 1…5 and an atom at 0 = %v, want 3", q)
	}
	if q := d.quantile(0.5); q != 0 {
		t.Errorf("quantile(0.5) of 1…5 and an atom at 0 = %v, want 0", q)
	}
}

// fcSynthetic returns a series from a local level model: a level that moves
// by N(0, q²) a day, observed with N(0, r²) noise, around a positive mean.
func fcSynthetic(seed uint64, n int, q, r float64) Series {
	rng := rand.New(rand.NewPCG(seed, 99))
	s := Series{Days: fcDays(n), Values: make([]float64, n)}
	level := 5.0
	for i := range s.Values {
		level += q * rng.NormFloat64()
		s.Values[i] = level + r*rng.NormFloat64()
	}
	return s
}

func TestConfidenceCalibratedOnSyntheticSeries(t *testing.T) {
	t.Parallel()
	// Over many walk-forward forecasts of series with known noise, the mean
	// confidence must match the share of forecasts that landed within
	// tolerance, and the 80 % intervals must cover about 80 %.
	tests := []struct {
		name    string
		model   string
		horizon int
		q, r    float64
		tol     float64
	}{
		{"noisy level, SeriesModel, h=7", SeriesModel, 7, 0.05, 0.3, 0.3},
		{"noisy level, ses, h=7", "ses", 7, 0.05, 0.3, 0.3},
		{"random walk, SeriesModel, h=3", SeriesModel, 3, 0.2, 0, 0},
		{"noisy level, ses, h=30", "ses", 30, 0.02, 0.2, 0.4},
	}
	for _, tt := range tests {
		var n, hits, in80 int
		var conf float64
		for seed := uint64(1); seed <= 12; seed++ {
			s := fcSynthetic(seed, 400, tt.q, tt.r)
			err := WalkForward(s, tt.horizon, 5, ForecastOptions{Model: tt.model, Tolerance: tt.tol}, func(o Outcome) {
				if !o.HasActual {
					return
				}
				n++
				conf += o.Confidence
				if o.Hit() {
					hits++
				}
				if o.Lower80 <= o.Actual && o.Actual <= o.Upper80 {
					in80++
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		meanConf, hitRate, cover := conf/float64(n), float64(hits)/float64(n), float64(in80)/float64(n)
		t.Logf("%s: %d forecasts, mean confidence %.3f, hit rate %.3f, 80 %% coverage %.3f", tt.name, n, meanConf, hitRate, cover)
		if math.Abs(meanConf-hitRate) > 0.04 {
			t.Errorf("%s: mean confidence %.3f, hit rate %.3f: off by more than 4 points", tt.name, meanConf, hitRate)
		}
		if cover < 0.74 || cover > 0.86 {
			t.Errorf("%s: 80 %% intervals covered %.3f", tt.name, cover)
		}
	}
}

func TestDefaultTolerance(t *testing.T) {
	t.Parallel()
	tests := []struct{ point, want float64 }{
		{0.05, 0.005},
		{-0.05, 0.005},
		{0.004, 0.001},
		{0, 0.001},
	}
	for _, tt := range tests {
		if got := DefaultTolerance(tt.point); !fcNear(got, tt.want, 1e-15) {
			t.Errorf("DefaultTolerance(%v) = %v, want %v", tt.point, got, tt.want)
		}
	}
}

func TestForecastConfidenceMatchesRollingErrors(t *testing.T) {
	t.Parallel()
	// Forecast.Confidence is ShrunkConfidence over RollingErrors with the
	// model's analytic sd; for the naive model that sd is √(σ² h).
	s := fcSynthetic(3, 200, 0.05, 0.2)
	origin := s.Days[199]
	opts := ForecastOptions{Model: "naive", Tolerance: 0.25}
	f, err := ForecastSeries(s, origin, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := RollingErrors(s, origin, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	sd := math.Sqrt(fcFitWalk(newFCData(s)).naive2 * 7)
	if want := ShrunkConfidence(errs, 0.25, sd); len(errs) != f.Errors || !fcNear(f.Confidence, want, 1e-12) {
		t.Errorf("Forecast.Confidence = %v over %d errors, want ShrunkConfidence = %v over %d", f.Confidence, f.Errors, want, len(errs))
	}
}
