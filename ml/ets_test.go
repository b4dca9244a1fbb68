package ml

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/obsqra/obsqra"
)

// fcRawData builds fcData on days without centring, for hand-checked cases.
func fcRawData(days []obsqra.Date, y []float64) *fcData {
	d := &fcData{y: y, gap: make([]int32, len(y)), days: days, n: len(y)}
	for i := 1; i < len(days); i++ {
		d.gap[i] = int32(days[i]-days[i-1]) - 1
	}
	return d
}

func fcDays(n int) []obsqra.Date {
	days := make([]obsqra.Date, n)
	for i := range days {
		days[i] = obsqra.Date(20000 + i)
	}
	return days
}

func TestETSRecursionHandChecked(t *testing.T) {
	t.Parallel()
	// Worked by hand (and in the comments): each step is
	// e = y − (l + φb); l ← l + φb + αe; b ← φb + βe.
	tests := []struct {
		name      string
		fit       etsFit
		y         []float64
		wantSSE   float64
		wantLevel float64
		wantTrend float64
	}{
		{
			// l0 = 1; e = 0, 1, 2.5; l = 1, 1.5, 2.75.
			name:      "ses",
			fit:       etsFit{kind: etsSES, alpha: 0.5, l0: 1},
			y:         []float64{1, 2, 4},
			wantSSE:   0 + 1 + 6.25,
			wantLevel: 2.75,
		},
		{
			// e = −0.1, 0.17, −0.329, 0.6873;
			// l = 1.45, 2.015, 2.3645, 3.15635; b = 0.48, 0.514, 0.4482, 0.58566.
			name:      "holt",
			fit:       etsFit{kind: etsHolt, alpha: 0.5, beta: 0.2, phi: 1, l0: 1, b0: 0.5},
			y:         []float64{1.4, 2.1, 2.2, 3.5},
			wantSSE:   0.01 + 0.0289 + 0.108241 + 0.47238129,
			wantLevel: 3.15635,
			wantTrend: 0.58566,
		},
		{
			// φ = 0.5: ŷ1 = 1 + 0.5·2 = 2, e = 0, l = 2, b = 1;
			// ŷ2 = 2 + 0.5 = 2.5, e = 0.5, l = 2.5 + 0.25 = 2.75, b = 0.5 + 0.05 = 0.55.
			name:      "damped",
			fit:       etsFit{kind: etsDamped, alpha: 0.5, beta: 0.1, phi: 0.5, l0: 1, b0: 2},
			y:         []float64{2, 3},
			wantSSE:   0.25,
			wantLevel: 2.75,
			wantTrend: 0.55,
		},
	}
	for _, tt := range tests {
		f := tt.fit
		sse := etsRun(fcRawData(fcDays(len(tt.y)), tt.y), &f, nil)
		if math.Abs(sse-tt.wantSSE) > 1e-12 || math.Abs(f.level-tt.wantLevel) > 1e-12 || math.Abs(f.trend-tt.wantTrend) > 1e-12 {
			t.Errorf("%s: etsRun(%v) = sse %v, state (%v, %v); want %v, (%v, %v)",
				tt.name, tt.y, sse, f.level, f.trend, tt.wantSSE, tt.wantLevel, tt.wantTrend)
		}
	}
}

func TestETSLogLikHandComputed(t *testing.T) {
	t.Parallel()
	// The Holt case above: SSE 0.61952229 over n = 4, σ² = 0.1548805725;
	// −2 ln L = 4 (ln(2π · 0.1548805725) + 1) = 4 · 0.97277805 = 3.89111.
	f := etsFit{kind: etsHolt, alpha: 0.5, beta: 0.2, phi: 1, l0: 1, b0: 0.5}
	sse := etsRun(fcRawData(fcDays(4), []float64{1.4, 2.1, 2.2, 3.5}), &f, nil)
	if got, want := etsLogLik(sse, 4), -1.9455522147175348; math.Abs(got-want) > 1e-12 {
		t.Errorf("etsLogLik(%v, 4) = %v, want %v", sse, got, want)
	}
	// AICc with k = 5 parameters needs n > 6; at n = 10:
	// −2 ln L + 2k + 2k(k+1)/(n−k−1) = 3.8911 + 10 + 60/4.
	if got, want := fcAICc(-1.9455522147175348, 5, 10), 3.8911044294350696+10+15; math.Abs(got-want) > 1e-12 {
		t.Errorf("fcAICc(…, 5, 10) = %v, want %v", got, want)
	}
	if got := fcAICc(0, 5, 6); !math.IsInf(got, 1) {
		t.Errorf("fcAICc(0, 5, 6) = %v, want +Inf (too few observations)", got)
	}
}

func TestETSProfileMinimisesOverInitialState(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	days := []obsqra.Date{0, 1, 2, 5, 6, 7, 8, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	y := make([]float64, len(days))
	for i := range y {
		y[i] = 3 + 0.2*float64(days[i]) + rng.NormFloat64()
	}
	d := fcRawData(days, y)
	for _, k := range []etsKind{etsSES, etsHolt, etsDamped} {
		a, b, p := 0.3, 0.1, 0.9
		if k == etsSES {
			b, p = 0, 0
		} else if k == etsHolt {
			p = 1
		}
		sse, l0, b0 := etsProfile(d, k, a, b, p)
		run := func(l0, b0 float64) float64 {
			f := etsFit{kind: k, alpha: a, beta: b, phi: p, l0: l0, b0: b0}
			return etsRun(d, &f, nil)
		}
		if got := run(l0, b0); math.Abs(got-sse) > 1e-9*sse {
			t.Errorf("%v: etsProfile SSE %v but running from its initial state gives %v", k, sse, got)
		}
		for _, delta := range [][2]float64{{0.01, 0}, {-0.01, 0}, {0, 0.01}, {0, -0.01}} {
			if k == etsSES && delta[1] != 0 {
				continue
			}
			if got := run(l0+delta[0], b0+delta[1]); got < sse {
				t.Errorf("%v: SSE from initial state moved by %v = %v < profile minimum %v", k, delta, got, sse)
			}
		}
	}
}

func TestETSGapSkipsUpdate(t *testing.T) {
	t.Parallel()
	// A missing week: the state must advance through 7 days without an
	// update, exactly as a day-by-day recursion that skips missing days.
	days := []obsqra.Date{0, 1, 2, 3, 11, 12, 13}
	y := []float64{1, 1.5, 1.7, 2.6, 4.1, 4.0, 4.6}
	f := etsFit{kind: etsDamped, alpha: 0.4, beta: 0.2, phi: 0.9, l0: 0.8, b0: 0.3}
	var visited []float64
	sse := etsRun(fcRawData(days, y), &f, func(i int, e, _, _ float64) { visited = append(visited, e) })

	l, b := 0.8, 0.3
	var want float64
	j := 0
	for day := obsqra.Date(0); day <= 13; day++ {
		e := 0.0
		if days[j] == day {
			e = y[j] - (l + 0.9*b)
			want += e * e
			if math.Abs(visited[j]-e) > 1e-12 {
				t.Errorf("error on day %d = %v, want %v", day, visited[j], e)
			}
			j++
		}
		l, b = l+0.9*b+0.4*e, 0.9*b+0.2*e
	}
	if math.Abs(sse-want) > 1e-12 || math.Abs(f.level-l) > 1e-12 || math.Abs(f.trend-b) > 1e-12 {
		t.Errorf("etsRun over a gap = sse %v, state (%v, %v); want %v, (%v, %v)", sse, f.level, f.trend, want, l, b)
	}
	if len(visited) != len(y) {
		t.Errorf("etsRun visited %d observations, want %d", len(visited), len(y))
	}
	// The profile likelihood over the gap agrees with the recursion.
	_, l0, b0 := etsProfile(fcRawData(days, y), etsDamped, 0.4, 0.2, 0.9)
	g := etsFit{kind: etsDamped, alpha: 0.4, beta: 0.2, phi: 0.9, l0: l0, b0: b0}
	got := etsRun(fcRawData(days, y), &g, nil)
	if p, _, _ := etsProfile(fcRawData(days, y), etsDamped, 0.4, 0.2, 0.9); math.Abs(p-got) > 1e-9 {
		t.Errorf("etsProfile over a gap = %v, recursion from its initial state = %v", p, got)
	}
}

func TestETSVarianceHandChecked(t *testing.T) {
	t.Parallel()
	// σ² (1 + Σ_{j<h} c_j²): SES c_j = α; Holt c_j = α + jβ;
	// damped c_j = α + β(φ + … + φ^j).
	tests := []struct {
		fit   etsFit
		steps int
		want  float64
	}{
		{etsFit{kind: etsSES, alpha: 0.5, sigma2: 2}, 1, 2},
		{etsFit{kind: etsSES, alpha: 0.5, sigma2: 2}, 3, 2 * (1 + 0.25 + 0.25)},
		{etsFit{kind: etsHolt, alpha: 0.5, beta: 0.1, phi: 1, sigma2: 1}, 3, 1 + 0.36 + 0.49},
		{etsFit{kind: etsDamped, alpha: 0.5, beta: 0.1, phi: 0.5, sigma2: 1}, 3, 1 + 0.55*0.55 + 0.575*0.575},
	}
	for _, tt := range tests {
		if got := tt.fit.variance(tt.steps); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%v.variance(%d) = %v, want %v", tt.fit.kind, tt.steps, got, tt.want)
		}
	}
	f := etsFit{kind: etsDamped, phi: 0.5}
	if got, want := f.point(2, 4, 3), 2+4*(0.5+0.25+0.125); got != want {
		t.Errorf("damped point(2, 4, 3) = %v, want %v", got, want)
	}
}

func TestFitWalkHandChecked(t *testing.T) {
	t.Parallel()
	// Changes 2 −1 2 2 −1 2 1 2 −1: mean square 24/9; drift 8/9 per day;
	// Σ(Δ − 8/9)² / 8 = 19/9.
	d := newFCData(Series{Days: fcDays(10), Values: []float64{3, 5, 4, 6, 8, 7, 9, 10, 12, 11}})
	w := fcFitWalk(d)
	if math.Abs(w.naive2-24.0/9) > 1e-12 || math.Abs(w.drift-8.0/9) > 1e-12 || math.Abs(w.sigma2-19.0/9) > 1e-12 || w.span != 9 {
		t.Errorf("fcFitWalk = %+v, want naive2 %v, drift %v, sigma2 %v, span 9", w, 24.0/9, 8.0/9, 19.0/9)
	}
	// A change across a gap of k days counts as k days of variance.
	g := fcFitWalk(newFCData(Series{Days: []obsqra.Date{0, 1, 5}, Values: []float64{0, 1, 3}}))
	if want := (1 + 4.0/4) / 2; math.Abs(g.naive2-want) > 1e-12 {
		t.Errorf("fcFitWalk over a gap: naive2 = %v, want %v", g.naive2, want)
	}
}

func TestFitETSReachesTheMaximum(t *testing.T) {
	t.Parallel()
	// On a short series the likelihood over α can be mapped by brute force;
	// Nelder–Mead must find its maximum.
	rng := rand.New(rand.NewPCG(7, 7))
	y := make([]float64, 40)
	level := 5.0
	for i := range y {
		level += 0.3 * rng.NormFloat64()
		y[i] = level + 0.5*rng.NormFloat64()
	}
	d := newFCData(Series{Days: fcDays(len(y)), Values: y})
	f := fitETS(d, etsSES, nil)
	best := math.Inf(-1)
	for a := etsAlphaMin; a <= etsAlphaMax; a += 0.0005 {
		sse, _, _ := etsProfile(d, etsSES, a, 0, 0)
		best = math.Max(best, etsLogLik(sse, d.n))
	}
	if f.loglik < best-1e-4 {
		t.Errorf("fitETS(ses) log-likelihood %v (α %v) below the grid maximum %v", f.loglik, f.alpha, best)
	}
	h := fitETS(d, etsHolt, nil)
	if h.loglik < f.loglik-1e-6 {
		t.Errorf("Holt log-likelihood %v below SES's %v: the richer model must fit at least as well", h.loglik, f.loglik)
	}
}

func TestAICcSelects(t *testing.T) {
	t.Parallel()
	trend := func(seed uint64) []float64 {
		rng := rand.New(rand.NewPCG(seed, 1))
		y := make([]float64, 200)
		for i := range y {
			y[i] = 2 + 0.05*float64(i) + 0.05*rng.NormFloat64()
		}
		return y
	}
	walk := func(seed uint64) []float64 {
		rng := rand.New(rand.NewPCG(seed, 2))
		y := make([]float64, 200)
		v := 10.0
		for i := range y {
			v += rng.NormFloat64()
			y[i] = v
		}
		return y
	}
	tests := []struct {
		name string
		gen  func(uint64) []float64
		want string
	}{
		{"linear trend", trend, "holt"},
		{"random walk", walk, "ses"},
	}
	for _, tt := range tests {
		for seed := uint64(1); seed <= 5; seed++ {
			y := tt.gen(seed)
			d := newFCData(Series{Days: fcDays(len(y)), Values: y})
			m := fcFitModel(d, fcSpec{members: []string{"ets"}}, 1)
			if m.name != tt.want {
				var fits [3]*etsFit
				for k := range 3 {
					etsFitOnce(&fits, d, etsKind(k))
				}
				t.Errorf("%s (seed %d): AICc picked %s, want %s (AICc ses %.2f holt %.2f damped %.2f)",
					tt.name, seed, m.name, tt.want, fits[0].aicc, fits[1].aicc, fits[2].aicc)
			}
			if tt.want == "ses" && m.parts[0].ets.alpha < 0.75 {
				t.Errorf("%s (seed %d): SES α = %v, want near 1 (a random walk is SES with α = 1)", tt.name, seed, m.parts[0].ets.alpha)
			}
		}
	}
}

func TestETSConstantSeries(t *testing.T) {
	t.Parallel()
	// A constant series fits exactly: the likelihood must stay finite and
	// the forecast must be the constant with no spread.
	y := make([]float64, 50)
	for i := range y {
		y[i] = 0.03
	}
	d := newFCData(Series{Days: fcDays(len(y)), Values: y})
	for _, k := range []etsKind{etsSES, etsHolt, etsDamped} {
		f := fitETS(d, k, nil)
		if math.IsNaN(f.loglik) || math.IsInf(f.loglik, 0) || math.IsNaN(f.aicc) {
			t.Errorf("%v on a constant: log-likelihood %v, AICc %v; want finite", k, f.loglik, f.aicc)
		}
		if p := d.shift + f.point(f.level, f.trend, 10); p != 0.03 {
			t.Errorf("%v on a constant 0.03 forecasts %v", k, p)
		}
		if f.sigma2 != 0 {
			t.Errorf("%v on a constant has error variance %v, want 0", k, f.sigma2)
		}
	}
	for _, model := range []string{"ses", "holt", "damped", "ets", SeriesModel} {
		f, err := ForecastSeries(Series{Days: fcDays(len(y)), Values: y}, fcDays(len(y))[len(y)-1], 7, ForecastOptions{Model: model})
		if err != nil {
			t.Fatal(err)
		}
		if f.Lower95 != 0.03 || f.Upper95 != 0.03 || f.Lower80 != 0.03 || f.Upper80 != 0.03 {
			t.Errorf("%s on a constant: intervals %+v, want all exactly 0.03", model, f)
		}
	}
}
