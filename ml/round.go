package ml

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/obsqra/obsqra"
)

// Tolerances of RoundBps: how far the weights may be from summing to one,
// and how far (in integer units) a scaled weight may stray outside its
// bounds, before the input is refused rather than clamped.
const (
	roundSumTol   = 1e-9
	roundBoundTol = 1e-6
)

// RoundBps turns the fractions w (summing to 1) into integers that sum to
// exactly total and lie within [lower_i, upper_i], by the largest remainder
// method: each x_i = w_i·total is clamped into its bounds (which absorbs
// floating-point noise such as 0.30000000000000004 at a cap of 3000, or
// -1e-17 at a floor of 0), floored, and the units still missing go one
// each to the largest fractional parts, ties to the lower index. Every
// result is then within 1 of x_i, a weight at its cap stays at its cap,
// and the same input always gives the same output.
//
// Nil lower means 0 everywhere; nil upper means total everywhere.
//
// Errors: EINVALID when w is empty, holds a number that is not finite,
// does not sum to 1 within 1e-9, a bound slice has the wrong length, a
// lower bound exceeds its upper bound, the bounds cannot sum to total, or
// some w_i·total lies outside its bounds by more than 1e-6.
func RoundBps(w []float64, total int, lower, upper []int) ([]int, error) {
	n := len(w)
	if n == 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "no weights to round")
	}
	if total <= 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "total must be positive, got %d", total)
	}
	if lower != nil && len(lower) != n {
		return nil, obsqra.Errorf(obsqra.EINVALID, "lower has %d entries but there are %d weights", len(lower), n)
	}
	if upper != nil && len(upper) != n {
		return nil, obsqra.Errorf(obsqra.EINVALID, "upper has %d entries but there are %d weights", len(upper), n)
	}
	lo := func(i int) int {
		if lower == nil {
			return 0
		}
		return lower[i]
	}
	hi := func(i int) int {
		if upper == nil {
			return total
		}
		return upper[i]
	}
	var sumW float64
	var sumLo, sumHi int64
	for i, v := range w {
		if !finite(v) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "w[%d] is not a finite number", i)
		}
		if lo(i) > hi(i) {
			return nil, obsqra.Errorf(obsqra.EINVALID, "lower[%d] = %d is above upper[%d] = %d", i, lo(i), i, hi(i))
		}
		sumW += v
		sumLo += int64(lo(i))
		sumHi += int64(hi(i))
	}
	if math.Abs(sumW-1) > roundSumTol {
		return nil, obsqra.Errorf(obsqra.EINVALID, "the weights sum to %v, want 1", sumW)
	}
	if sumLo > int64(total) || sumHi < int64(total) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "no integers within the bounds sum to %d: lower bounds sum to %d, upper bounds to %d", total, sumLo, sumHi)
	}
	out := make([]int, n)
	frac := make([]float64, n)
	rest := int64(total)
	for i, v := range w {
		x := v * float64(total)
		l, u := float64(lo(i)), float64(hi(i))
		if x < l-roundBoundTol || x > u+roundBoundTol {
			return nil, obsqra.Errorf(obsqra.EINVALID, "w[%d]·%d = %v is outside its bounds [%d, %d]", i, total, x, lo(i), hi(i))
		}
		x = math.Min(math.Max(x, l), u)
		f := math.Floor(x)
		out[i] = int(f)
		frac[i] = x - f
		rest -= int64(out[i])
	}
	// Candidates by fractional part, largest first; the stable sort keeps
	// the lower index first among equal parts.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(frac[b], frac[a]) })
	// rest ∈ [0, n] follows from the checks above; the loops stay within
	// the bounds whatever it is and report a failure instead of breaking
	// them.
	for _, i := range idx {
		if rest <= 0 {
			break
		}
		if out[i] < hi(i) {
			out[i]++
			rest--
		}
	}
	for k := n - 1; k >= 0 && rest < 0; k-- {
		if i := idx[k]; out[i] > lo(i) {
			out[i]--
			rest++
		}
	}
	if rest != 0 {
		return nil, fmt.Errorf("ml: largest remainder left %d units of %d unplaced", rest, total)
	}
	return out, nil
}
