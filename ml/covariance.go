package ml

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

// LedoitWolf estimates the covariance of the protocols' APYs with the
// shrinkage of Ledoit and Wolf, "A well-conditioned estimator for
// large-dimensional covariance matrices" (J. Multivariate Analysis, 2004).
// histories[i] is protocol i's APY series in bps; all series are aligned
// (entry k of every series is the same day) and have the same length T ≥ 2.
//
// It works on the APY levels, not on their daily changes: the optimiser
// penalises how much the yield a holder earns varies across the window, and
// that is the variance of the level. (Daily changes would measure how
// jumpy the rate is from one day to the next, which a holder over weeks
// barely feels.) Each series is centred on its own mean.
//
// With x_k the centred observation of day k, S = (1/T)·Σ x_k x_kᵀ the
// sample covariance (the paper's 1/T normalisation), ‖A‖² = tr(AAᵀ)/p the
// paper's normalised Frobenius norm over p protocols:
//
//	m = tr(S)/p,  d² = ‖S − mI‖²,  b̄² = (1/T²)·Σ_k ‖x_k x_kᵀ − S‖²,
//	b² = min(b̄², d²),  δ = b²/d²,  Σ* = δ·m·I + (1 − δ)·S.
//
// It returns Σ* in bps² and the shrinkage intensity δ ∈ [0, 1]. Σ* is
// positive definite whenever δ > 0 and some series varies, even when T < p
// or two protocols move in lockstep. When S is already a multiple of the
// identity (d² = 0: one protocol, or every series constant), Σ* = S and δ
// is reported as 0. A constant series has zero variance and covariance and
// produces no NaN.
//
// Errors: EINVALID when there is no series, the series differ in length,
// are shorter than 2, or hold a value that is not a finite number.
func LedoitWolf(histories [][]float64) (*mat.SymDense, float64, error) {
	p := len(histories)
	if p == 0 {
		return nil, 0, obsqra.Errorf(obsqra.EINVALID, "histories is empty")
	}
	t := len(histories[0])
	if t < 2 {
		return nil, 0, obsqra.Errorf(obsqra.EINVALID, "histories[0] has %d values, want at least 2", t)
	}
	for i, h := range histories {
		if len(h) != t {
			return nil, 0, obsqra.Errorf(obsqra.EINVALID, "histories[%d] has %d values but histories[0] has %d: the series must be aligned", i, len(h), t)
		}
		for k, v := range h {
			if !finite(v) {
				return nil, 0, obsqra.Errorf(obsqra.EINVALID, "histories[%d][%d] is not a finite number", i, k)
			}
		}
	}
	// x is the centred data, day-major: x[k*p+i] is day k of protocol i.
	x := make([]float64, t*p)
	for i, h := range histories {
		var sum float64
		for _, v := range h {
			sum += v
		}
		mean := sum / float64(t)
		for k, v := range h {
			x[k*p+i] = v - mean
		}
	}
	tf := float64(t)
	s := make([]float64, p*p) // sample covariance, upper triangle used
	for k := 0; k < t; k++ {
		row := x[k*p : (k+1)*p]
		for i, xi := range row {
			for j := i; j < p; j++ {
				s[i*p+j] += xi * row[j]
			}
		}
	}
	var tr float64
	for i := 0; i < p; i++ {
		for j := i; j < p; j++ {
			s[i*p+j] /= tf
		}
		tr += s[i*p+i]
	}
	m := tr / float64(p)
	// d² and b̄², summing each off-diagonal pair once and doubling it.
	var d2 float64
	for i := 0; i < p; i++ {
		e := s[i*p+i] - m
		d2 += e * e
		for j := i + 1; j < p; j++ {
			d2 += 2 * s[i*p+j] * s[i*p+j]
		}
	}
	d2 /= float64(p)
	var b2 float64
	for k := 0; k < t; k++ {
		row := x[k*p : (k+1)*p]
		var sk float64
		for i, xi := range row {
			e := xi*xi - s[i*p+i]
			sk += e * e
			for j := i + 1; j < p; j++ {
				e := xi*row[j] - s[i*p+j]
				sk += 2 * e * e
			}
		}
		b2 += sk
	}
	b2 /= float64(p) * tf * tf
	var delta float64
	if d2 > 0 {
		delta = math.Min(b2, d2) / d2
	}
	out := mat.NewSymDense(p, nil)
	for i := 0; i < p; i++ {
		out.SetSym(i, i, delta*m+(1-delta)*s[i*p+i])
		for j := i + 1; j < p; j++ {
			out.SetSym(i, j, (1-delta)*s[i*p+j])
		}
	}
	return out, delta, nil
}
