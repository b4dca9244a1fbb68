package ml

import (
	"math"

	"gonum.org/v1/gonum/optimize"

	"github.com/obsqra/obsqra"
)

// This file holds the forecasting models: naive, drift and exponential
// smoothing in innovations state-space form (Hyndman, Koehler, Ord & Snyder,
// "Forecasting with Exponential Smoothing", 2008, class 1 models with
// additive errors):
//
//	ŷ_t = l_{t-1} + φ b_{t-1}          (one-step prediction)
//	e_t = y_t − ŷ_t
//	l_t = l_{t-1} + φ b_{t-1} + α e_t
//	b_t = φ b_{t-1} + β e_t
//
// ANN (simple, "ses") has no trend; AAN ("holt") has φ = 1; AAdN ("damped")
// estimates φ in [0.8, 0.98] as the R forecast package does.
//
// The state advances one step per calendar day. A day without an observation
// has no error: the state only moves through the transition (e_t = 0), and
// the Gaussian likelihood is taken over observed days only.
//
// The initial states (l_0, b_0) are estimated by maximum likelihood too, but
// not by the optimiser: for fixed α, β, φ every error is an affine function of
// the initial state (x_t = D x_{t-1} + g y_t with D = F − g w'), so the
// likelihood, concentrated over σ², is maximised over x_0 by a 2×2 least
// squares solve inside each evaluation. Nelder–Mead then searches only the
// one to three smoothing parameters, which is both faster and more reliable
// than searching five.

// etsKind is an exponential smoothing model.
type etsKind uint8

const (
	etsSES    etsKind = iota // ANN: simple exponential smoothing
	etsHolt                  // AAN: Holt's linear trend
	etsDamped                // AAdN: additive damped trend
)

// String returns the model's name as used in Forecast.Model.
func (k etsKind) String() string {
	switch k {
	case etsSES:
		return "ses"
	case etsHolt:
		return "holt"
	default:
		return "damped"
	}
}

// etsParams counts the free parameters of k for the information criterion:
// smoothing parameters, initial states and σ².
func (k etsKind) etsParams() int {
	switch k {
	case etsSES:
		return 3 // α, l0, σ²
	case etsHolt:
		return 5 // α, β, l0, b0, σ²
	default:
		return 6 // α, β, φ, l0, b0, σ²
	}
}

// Parameter bounds, those of the R forecast package ("usual" region).
const (
	etsAlphaMin = 1e-4
	etsAlphaMax = 0.9999
	etsBetaMin  = 1e-4
	etsPhiMin   = 0.8
	etsPhiMax   = 0.98
)

// fcData is a series prepared for fitting: values centred on the last value
// (so a constant series is exactly zero and the least squares for the initial
// state is well conditioned) and the number of calendar days without an
// observation before each observation.
type fcData struct {
	y     []float64 // Values − shift
	gap   []int32   // days missing before observation i (gap[0] = 0)
	days  []obsqra.Date
	shift float64
	n     int
}

func newFCData(s Series) *fcData {
	n := s.Len()
	d := &fcData{y: make([]float64, n), gap: make([]int32, n), days: s.Days, n: n}
	if n == 0 {
		return d
	}
	d.shift = s.Values[n-1]
	for i, v := range s.Values {
		d.y[i] = v - d.shift
		if i > 0 {
			d.gap[i] = int32(s.Days[i]-s.Days[i-1]) - 1
		}
	}
	return d
}

// etsFit is a fitted exponential smoothing model.
type etsFit struct {
	kind             etsKind
	alpha, beta, phi float64
	l0, b0           float64 // centred initial state, the day before the first observation
	level, trend     float64 // centred state at the last observation
	sigma2           float64 // ML innovation variance (SSE / n)
	loglik, aicc     float64
}

func fcLogistic(u float64) float64 { return 1 / (1 + math.Exp(-u)) }

func fcLogit(p float64) float64 { return math.Log(p / (1 - p)) }

// etsDecode maps unconstrained optimiser coordinates to (α, β, φ).
func etsDecode(k etsKind, th []float64) (alpha, beta, phi float64) {
	alpha = etsAlphaMin + (etsAlphaMax-etsAlphaMin)*fcLogistic(th[0])
	phi = 1
	if k == etsSES {
		return alpha, 0, 0
	}
	// β < α keeps the model in the usual region, as in the forecast package.
	beta = etsBetaMin + (alpha-etsBetaMin)*fcLogistic(th[1])
	if k == etsDamped {
		phi = etsPhiMin + (etsPhiMax-etsPhiMin)*fcLogistic(th[2])
	}
	return alpha, beta, phi
}

// etsEncode is the inverse of etsDecode, for starting values.
func etsEncode(k etsKind, alpha, beta, phi float64) [3]float64 {
	var th [3]float64
	in := func(p, lo, hi float64) float64 {
		q := (p - lo) / (hi - lo)
		q = math.Min(math.Max(q, 1e-6), 1-1e-6)
		return fcLogit(q)
	}
	th[0] = in(alpha, etsAlphaMin, etsAlphaMax)
	if k != etsSES {
		th[1] = in(beta, etsBetaMin, math.Max(alpha, etsBetaMin+1e-9))
	}
	if k == etsDamped {
		th[2] = in(phi, etsPhiMin, etsPhiMax)
	}
	return th
}

// etsProfile runs the recursion once for fixed (α, β, φ) and returns the sum
// of squared one-step errors minimised over the initial state, and that
// initial state.
func etsProfile(d *fcData, k etsKind, alpha, beta, phi float64) (sse, l0, b0 float64) {
	if k == etsSES {
		// x_t = (1−α) x_{t-1} + α y_t on observed days; gaps leave it alone.
		var lt, m, szz, sze, see float64
		m = 1
		for _, y := range d.y {
			e := y - lt
			szz += m * m
			sze += m * e
			see += e * e
			lt += alpha * e
			m *= 1 - alpha
		}
		l0 = sze / szz
		return see - sze*l0, l0, 0
	}
	// Two states. x̃ is the run from a zero initial state, M the sensitivity
	// of the state to the initial state: x_t = x̃_t + M_t x_0.
	var lt, bt float64
	m11, m12, m21, m22 := 1.0, 0.0, 0.0, 1.0
	var a11, a12, a22, c1, c2, see float64
	for i, y := range d.y {
		for g := d.gap[i]; g > 0; g-- { // F on a day without observation
			lt += phi * bt
			bt *= phi
			m11 += phi * m21
			m12 += phi * m22
			m21 *= phi
			m22 *= phi
		}
		e := y - lt - phi*bt
		z1 := m11 + phi*m21
		z2 := m12 + phi*m22
		a11 += z1 * z1
		a12 += z1 * z2
		a22 += z2 * z2
		c1 += z1 * e
		c2 += z2 * e
		see += e * e
		lt += phi*bt + alpha*e
		bt = phi*bt + beta*e
		// M ← F M − g z'
		m11 += phi*m21 - alpha*z1
		m12 += phi*m22 - alpha*z2
		m21 = phi*m21 - beta*z1
		m22 = phi*m22 - beta*z2
	}
	// A tiny ridge keeps a two-observation fit solvable.
	r := 1e-12 * (a11 + a22)
	a11 += r
	a22 += r
	det := a11*a22 - a12*a12
	if det <= 0 || math.IsNaN(det) {
		return see, 0, 0
	}
	l0 = (a22*c1 - a12*c2) / det
	b0 = (a11*c2 - a12*c1) / det
	return see - (l0*c1 + b0*c2), l0, b0
}

// etsRun runs the recursion from the initial state of f and calls visit, if
// not nil, with the index, one-step error and the state after each
// observation. It returns the sum of squared errors and sets f's final state.
func etsRun(d *fcData, f *etsFit, visit func(i int, e, level, trend float64)) float64 {
	lt, bt, phi := f.l0, f.b0, f.phi
	if f.kind == etsSES {
		bt, phi = 0, 0
	}
	var sse float64
	for i, y := range d.y {
		for g := d.gap[i]; g > 0; g-- {
			lt += phi * bt
			bt *= phi
		}
		e := y - lt - phi*bt
		sse += e * e
		lt += phi*bt + f.alpha*e
		bt = phi*bt + f.beta*e
		if visit != nil {
			visit(i, e, lt, bt)
		}
	}
	f.level, f.trend = lt, bt
	return sse
}

// etsSSEFloor keeps the log-likelihood finite on a series the model fits
// exactly (a constant, a perfect line).
func etsSSEFloor(d *fcData) float64 {
	var scale float64
	for _, y := range d.y {
		scale = math.Max(scale, math.Abs(y))
	}
	scale = math.Max(scale, math.Abs(d.shift))
	f := 1e-12 * scale
	return math.Max(float64(d.n)*f*f, 1e-300)
}

// fitETS fits model k to d by maximum likelihood. start, when non-nil, holds
// optimiser coordinates to start from (a warm start); otherwise standard
// starting values are used. d must hold at least k.etsParams()+2
// observations.
func fitETS(d *fcData, k etsKind, start *[3]float64) etsFit {
	dim := 1
	switch k {
	case etsHolt:
		dim = 2
	case etsDamped:
		dim = 3
	}
	floor := etsSSEFloor(d)
	n := float64(d.n)
	obj := func(th []float64) float64 {
		a, b, p := etsDecode(k, th)
		sse, _, _ := etsProfile(d, k, a, b, p)
		if !(sse > floor) { // also catches NaN
			sse = floor
		}
		return n * math.Log(sse/n)
	}
	var x0 [3]float64
	size := 1.0
	if start != nil {
		x0 = *start
		size = 0.5
	} else {
		x0 = etsEncode(k, 0.5, 0.05, 0.9)
	}
	// On an evaluation limit Minimize reports an error but still returns
	// the best point found, which is what we want.
	res, _ := optimize.Minimize(optimize.Problem{Func: obj}, x0[:dim], &optimize.Settings{
		Converger:       &optimize.FunctionConverge{Absolute: 1e-8, Iterations: 6 * dim},
		FuncEvaluations: 150 * dim,
	}, &optimize.NelderMead{SimplexSize: size})
	th := x0
	if res != nil {
		copy(th[:], res.X)
	}
	f := etsFit{kind: k}
	f.alpha, f.beta, f.phi = etsDecode(k, th[:dim])
	_, f.l0, f.b0 = etsProfile(d, k, f.alpha, f.beta, f.phi)
	sse := etsRun(d, &f, nil)
	// A perfect fit (a constant series) has no error variance; the floor
	// only keeps the likelihood finite and must not leak into intervals
	// as widths of 1e-151.
	if sse > floor {
		f.sigma2 = sse / n
	}
	sse = math.Max(sse, floor)
	f.loglik = etsLogLik(sse, d.n)
	f.aicc = fcAICc(f.loglik, k.etsParams(), d.n)
	return f
}

// etsLogLik is the Gaussian log-likelihood of n one-step errors with sum of
// squares sse at the maximum-likelihood variance σ² = sse/n:
// −n/2 (ln(2π σ²) + 1).
func etsLogLik(sse float64, n int) float64 {
	nn := float64(n)
	return -0.5 * nn * (math.Log(2*math.Pi*sse/nn) + 1)
}

// fcAICc is Akaike's criterion with the small-sample correction, for k
// parameters (σ² included) and n observations.
func fcAICc(loglik float64, k, n int) float64 {
	kk, nn := float64(k), float64(n)
	if n-k-1 <= 0 {
		return math.Inf(1)
	}
	return -2*loglik + 2*kk + 2*kk*(kk+1)/(nn-kk-1)
}

// point returns the centred forecast steps days after the last observation,
// from state (level, trend).
func (f *etsFit) point(level, trend float64, steps int) float64 {
	switch f.kind {
	case etsSES:
		return level
	case etsHolt:
		return level + float64(steps)*trend
	default:
		return level + fcPhiSum(f.phi, steps)*trend
	}
}

// variance returns the variance of the forecast error steps days ahead
// (Hyndman et al. 2008, Table 6.1): σ² (1 + Σ_{j=1}^{h-1} c_j²) with
// c_j = α + β φ_j, φ_j = φ + … + φ^j.
func (f *etsFit) variance(steps int) float64 {
	v := 1.0
	for j := 1; j < steps; j++ {
		c := f.alpha
		switch f.kind {
		case etsHolt:
			c += f.beta * float64(j)
		case etsDamped:
			c += f.beta * fcPhiSum(f.phi, j)
		}
		v += c * c
	}
	return f.sigma2 * v
}

// fcPhiSum returns φ + φ² + … + φ^h.
func fcPhiSum(phi float64, h int) float64 {
	if phi == 1 {
		return float64(h)
	}
	return phi * (1 - math.Pow(phi, float64(h))) / (1 - phi)
}

// fcWalk holds the naive and drift models, which need no optimiser.
//
// Naive: ŷ_{t+h} = y_t, error variance σ² h, with σ² the mean squared daily
// change (a change over a gap of k days counts as k days of variance).
//
// Drift: ŷ_{t+h} = y_t + h c with c = (y_T − y_1)/(days between them), the
// random walk with drift; error variance σ² h (1 + h/(days spanned)), the
// textbook formula with calendar days in place of observations.
type fcWalk struct {
	sigma2 float64 // per-day variance of changes around the drift (drift)
	naive2 float64 // per-day variance of changes (naive)
	drift  float64 // per-day drift
	span   float64 // calendar days from first to last observation
}

func fcFitWalk(d *fcData) fcWalk {
	var w fcWalk
	if d.n < 2 {
		return w
	}
	w.span = float64(d.days[d.n-1] - d.days[0])
	w.drift = (d.y[d.n-1] - d.y[0]) / w.span
	var s0, s1 float64
	for i := 1; i < d.n; i++ {
		k := float64(d.gap[i] + 1)
		dy := d.y[i] - d.y[i-1]
		s0 += dy * dy / k
		r := dy - w.drift*k
		s1 += r * r / k
	}
	m := float64(d.n - 1)
	w.naive2 = s0 / m
	if d.n > 2 {
		w.sigma2 = s1 / (m - 1)
	} else {
		w.sigma2 = w.naive2
	}
	return w
}
