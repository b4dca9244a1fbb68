package ml

import (
	"math"
	"slices"
	"sort"

	"github.com/obsqra/obsqra"
)

// ConfidencePrior is the weight, counted in past errors, of the analytic
// normal error distribution in ShrunkConfidence and in the intervals of
// ForecastSeries: with m past errors the empirical distribution has weight
// m/(m+ConfidencePrior). With 20 past errors the two count equally; with 200
// the empirical one has 91 % of the weight.
const ConfidencePrior = 20

// DefaultTolerance is the tolerance Forecast.Confidence refers to when the
// caller gives none: 10 % of the forecast's magnitude, but at least 0.001.
// For rates given as fractions that is ±10 % of the rate with a floor of
// 0.1 percentage point, so a near-zero rate is not held to a near-zero
// tolerance.
func DefaultTolerance(point float64) float64 {
	return math.Max(0.001, 0.1*math.Abs(point))
}

// Confidence returns the fraction of errors whose magnitude is at most
// tolerance: the empirical probability that a forecast lands within
// tolerance of the realised value, if errors are the forecasting method's
// past errors at the horizon in question (see RollingErrors). It returns NaN
// for no errors: there is no evidence to count.
func Confidence(errors []float64, tolerance float64) float64 {
	if len(errors) == 0 {
		return math.NaN()
	}
	var hits int
	for _, e := range errors {
		if math.Abs(e) <= tolerance {
			hits++
		}
	}
	return float64(hits) / float64(len(errors))
}

// ShrunkConfidence is Confidence shrunk toward the probability that a normal
// error with mean 0 and standard deviation sd stays within tolerance, for
// short error histories: with m errors the result is
//
//	m/(m+ConfidencePrior) · Confidence(errors, tolerance)
//	  + ConfidencePrior/(m+ConfidencePrior) · P(|N(0, sd²)| ≤ tolerance).
//
// sd is the model's analytic error standard deviation at the horizon;
// sd = 0 makes the normal part 1 (a model that expects no error).
func ShrunkConfidence(errors []float64, tolerance, sd float64) float64 {
	return fcDist{errs: errors, w: fcEmpiricalWeight(len(errors)), sd: sd}.within(tolerance)
}

// RollingErrors returns the errors (actual − forecast) of the method of opts
// when it forecasts as far ahead as ForecastSeries(s, origin, horizon, opts)
// does — horizon days, plus the days between the last observation and
// origin — from each past observed day of s whose target day is observed and
// not after origin, oldest first. Only data up to origin are used.
//
// Each error is restated at the level of today's forecast: multiplied by
// the ratio of today's forecast scale to the scale of the forecast that made
// it, the scale being the forecast's magnitude but at least a tenth of the
// series' mean magnitude. The spread of a rate's changes grows with the
// rate, so a 1-point miss when the rate was 20 % says less about a forecast
// of 2 % than a 0.1-point miss would; for a series far from zero the ratio
// is close to 1. These are the errors ForecastSeries calibrates with, so
// ShrunkConfidence(errors, Forecast.Tolerance, sd) reproduces
// Forecast.Confidence for the model's analytic sd.
//
// To make this affordable at every forecast, the method is fitted once on
// the data up to origin and its states are then run over the history, so a
// past forecast uses the state of its own day but the model parameters (at
// most three smoothing parameters and two initial states) estimated with
// data up to origin. That makes the errors slightly optimistic against
// refitting at every past day; the intervals' coverage on real data is the
// check that it does not matter (see the backtest in evaluate_test.go).
//
// The global model does not calibrate on the series' own errors (its
// intervals come from the errors of its training forecasts across series;
// Forecast.Errors is 0): for it the list is empty.
//
// Errors are those of ForecastSeries.
func RollingErrors(s Series, origin obsqra.Date, horizon int, opts ForecastOptions) ([]float64, error) {
	w, spec, err := fcPrepare(s, origin, horizon, &opts)
	if err != nil || spec.op == "global" {
		return nil, err
	}
	d := newFCData(w)
	steps := int(origin-d.days[d.n-1]) + horizon
	m := fcFitModel(d, spec, steps)
	point, _ := m.point(steps)
	return m.pastErrors(steps, m.scaleOf(point), nil), nil
}

func fcEmpiricalWeight(m int) float64 {
	return float64(m) / float64(m+ConfidencePrior)
}

// fcDist is the predictive distribution of a forecast error: the empirical
// distribution of past errors with weight w mixed with N(0, sd²).
type fcDist struct {
	errs []float64 // sorted ascending
	w    float64
	sd   float64
}

// newFCDist sorts errs in place.
func newFCDist(errs []float64, sd float64) fcDist {
	slices.Sort(errs)
	return fcDist{errs: errs, w: fcEmpiricalWeight(len(errs)), sd: sd}
}

// normCDF is P(N(0, sd²) ≤ x); a zero sd is a unit step at 0.
func (f fcDist) normCDF(x float64) float64 {
	if f.sd == 0 {
		if x >= 0 {
			return 1
		}
		return 0
	}
	return 0.5 * math.Erfc(-x/(f.sd*math.Sqrt2))
}

// cdf returns P(error ≤ x).
func (f fcDist) cdf(x float64) float64 {
	c := (1 - f.w) * f.normCDF(x)
	if m := len(f.errs); m > 0 {
		k := sort.Search(m, func(i int) bool { return f.errs[i] > x })
		c += f.w * float64(k) / float64(m)
	}
	return c
}

// cdfBelow returns P(error < x). errs must be sorted.
func (f fcDist) cdfBelow(x float64) float64 {
	n := (1 - f.w) * f.normCDF(x)
	if f.sd == 0 && x == 0 {
		n = 0
	}
	if m := len(f.errs); m > 0 {
		k := sort.SearchFloat64s(f.errs, x) // first index with errs[k] >= x
		n += f.w * float64(k) / float64(m)
	}
	return n
}

// bounds returns the range outside which the distribution has no mass
// worth counting.
func (f fcDist) bounds() (lo, hi float64) {
	lo, hi = -8*f.sd, 8*f.sd
	if m := len(f.errs); m > 0 {
		lo = math.Min(lo, f.errs[0])
		hi = math.Max(hi, f.errs[m-1])
	}
	return lo, hi
}

// quantileBelow returns the largest x with P(error < x) ≤ p: the lowest
// possible start of an interval that leaves probability p below it.
func (f fcDist) quantileBelow(p float64) float64 {
	lo, hi := f.bounds()
	if lo == hi {
		return lo
	}
	hi += 1e-9 * (hi - lo) // P(error < hi) > p for any p < 1
	for range 200 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if f.cdfBelow(mid) <= p {
			lo = mid
		} else {
			hi = mid
		}
	}
	// [lo, hi) holds the answer; prefer a jump inside it.
	k := sort.SearchFloat64s(f.errs, hi) - 1 // last index with errs[k] < hi
	if k >= 0 && f.errs[k] >= lo && f.cdfBelow(f.errs[k]) <= p {
		return f.errs[k]
	}
	if f.sd == 0 && lo <= 0 && 0 < hi {
		return 0
	}
	return lo
}

// interval returns a prediction interval with probability level. It starts
// as the central interval, from the (1−level)/2 to the (1+level)/2
// quantile. When the distribution has an atom at one end — typically many
// past errors of exactly 0 on a series that often does not change — that
// interval holds more than level, so the other end is pulled in until the
// interval holds level (or as little above it as the atoms allow). On a
// continuous distribution the result is the central interval.
func (f fcDist) interval(level float64) (lo, hi float64) {
	a := (1 - level) / 2
	lo, hi = f.quantile(a), f.quantile(1-a)
	const slack = 1e-9
	if f.cdf(hi)-f.cdfBelow(lo) <= level+slack {
		return lo, hi
	}
	hiA := f.quantile(f.cdfBelow(lo) + level)
	loB := f.quantileBelow(f.cdf(hi) - level)
	inA := f.cdf(hiA) - f.cdfBelow(lo)
	inB := f.cdf(hi) - f.cdfBelow(loB)
	switch {
	case inA < inB-slack:
		return lo, hiA
	case inB < inA-slack:
		return loB, hi
	case hiA-lo <= hi-loB:
		return lo, hiA
	default:
		return loB, hi
	}
}

// within returns P(|error| ≤ tol). errs need not be sorted.
func (f fcDist) within(tol float64) float64 {
	var normal float64
	switch {
	case tol < 0:
		return 0
	case f.sd == 0:
		normal = 1
	default:
		normal = math.Erf(tol / (f.sd * math.Sqrt2))
	}
	if len(f.errs) == 0 {
		return normal
	}
	return f.w*Confidence(f.errs, tol) + (1-f.w)*normal
}

// quantile returns the smallest x with P(error ≤ x) ≥ p, by bisection. When
// the answer is a jump of the distribution (a past error, or 0 for sd = 0)
// it returns that value exactly, so a repeated error such as "no change" is
// inside an interval that ends there.
func (f fcDist) quantile(p float64) float64 {
	lo, hi := f.bounds()
	if p >= 1 {
		return hi
	}
	if lo == hi {
		return lo
	}
	lo -= 1e-9 * (hi - lo) // F(lo) < p for any p > 0
	for range 200 {
		mid := lo + (hi-lo)/2
		if mid <= lo || mid >= hi {
			break
		}
		if f.cdf(mid) >= p {
			hi = mid
		} else {
			lo = mid
		}
	}
	// (lo, hi] holds the answer; prefer a jump inside it.
	k := sort.SearchFloat64s(f.errs, lo)
	for k < len(f.errs) && f.errs[k] <= lo {
		k++
	}
	if k < len(f.errs) && f.errs[k] <= hi && f.cdf(f.errs[k]) >= p {
		return f.errs[k]
	}
	if f.sd == 0 && lo < 0 && 0 <= hi {
		return 0
	}
	return hi
}
