package ml

import (
	"fmt"
	"math"
	"slices"

	"github.com/obsqra/obsqra"
)

// The global model ("global" in ForecastOptions.Model) forecasts a series
// with coefficients fitted across many series at once, not on the series'
// own short history. Lending rates share their structure across reserves
// and networks: a rate that jumped today above its recent median is usually
// back near it within days (a large withdrawal pushed utilisation past the
// kink of the rate curve, and deposits follow), a rate that fell does not
// bounce back the same way, and a rate well above its quarter's mean drifts
// back toward it over a month. One series sees a handful of such events; all
// the reserves of the shared Aave V3 file see thousands.
//
// The point forecast steps days ahead is the last value plus a linear
// combination of how far the recent medians, minima and means sit from it,
// whether its level held, and how its utilisation moved (globalFeatures),
// the coefficients fitted per horizon by least absolute deviations: the
// forecast that minimises the sum of absolute errors, the measure it is
// judged by, over every origin of every training series. Which of the
// features a horizon uses is chosen by the errors on networks held out
// (fitHorizon); a series without a utilisation (Series.Utilization nil)
// is forecast with coefficients of its own features alone (CoefOwn).
//
// The prediction intervals and Confidence are conformal: the quantiles of
// the training forecasts' errors, each divided by its series' volatility
// when it was made (globalScale: the mean absolute daily change over the
// last 30 observations plus the mean absolute change over the horizon in
// the last 60 or 4·horizon), are multiplied by the series' volatility
// today. A series
// that has not moved at all has volatility 0; its errors are scaled by its
// level instead, with their own quantiles (such a rate sits still most of
// the time and jumps rarely), and a series that has sat at exactly 0 keeps
// a zero-width interval. Confidence is the probability under those
// quantiles that the value lands within the tolerance, passed through a
// monotone step function fitted on the training forecasts (isotonic
// regression of whether they landed within the default tolerance on that
// probability, steps large enough that their hit rate is known within 1.5
// points), so that of the training forecasts given a confidence of 0.7,
// seven in ten landed. The raw probability alone is off by up to 20
// points in some deciles: errors scaled by volatility are not identically
// distributed across series.
//
// The errors behind the intervals and the confidence map are those of
// forecasts of networks the model has not seen: given its training series
// in groups (networks), FitGlobal makes each group's training forecasts
// with coefficients fitted on the other groups. The model's own errors on
// the series it was fitted on are smaller than those on a new network,
// and calibrating on them made the confidence of held-out networks at 7
// days up to 2.9 points too high in a decile; calibrated across networks,
// 1.2 (leave-one-network-out, every 7th origin).
//
// Everything is fitted offline by FitGlobal on data that precedes nothing it
// is judged on: the committed parameters (globalparams.go, `make refit`)
// come from the shared Aave V3 file; `obsqra ml backtest
// --leave-one-network-out` fits on all networks but one and scores that one.
// A horizon between two fitted horizons blends their forecasts linearly; one
// beyond the last uses the last.

// GlobalHorizons are the horizons, in days, at which FitGlobal fits the
// global model by default.
var GlobalHorizons = []int{1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90}

const (
	// globalNumFeatures is the length of the feature vector; the first
	// globalOwnFeatures are read from the series' values alone, and the
	// first globalBaseFeatures of those from its levels (globalFeatures).
	globalNumFeatures  = 24
	globalOwnFeatures  = 19
	globalBaseFeatures = 15
	// globalFullUtilization is the utilisation from which a reserve counts
	// as fully lent.
	globalFullUtilization = 0.98
	// globalQuantiles is the size of each quantile table: the quantiles at
	// probabilities k/200, k = 0 … 200.
	globalQuantiles = 201
	// globalCalibMinBlock is the fewest training forecasts a step of a
	// confidence map holds (or 1 % of them, if more).
	globalCalibMinBlock = 100
	// globalCalibSE bounds the standard error of a step's hit rate: half
	// the 3 points within which confidence is to match the hit rate. With
	// steps of 100 forecasts, a step's value was as noisy as that target
	// on the training forecasts alone; held out at 30 days, the worst
	// decile was 5.8 points off instead of 3.9 (and 3.9 with steps of at
	// least 1,000 forecasts, 8.8 with a bound of 2 points).
	globalCalibSE = 0.015
	// globalCalibMaxSteps bounds the steps of a confidence map.
	globalCalibMaxSteps = 100
	// globalMinRows is the fewest training forecasts a horizon needs.
	globalMinRows = 200
	// globalIRLSIterations bounds the least-absolute-deviation fit.
	globalIRLSIterations = 60
)

// GlobalParams are the fitted parameters of the global model, one entry of
// each table per horizon.
type GlobalParams struct {
	Horizons []int
	// Coef are the coefficients of the features (globalFeatures), and
	// CoefOwn those of a series without a utilisation: of the series' own
	// features alone (the later ones are 0).
	Coef, CoefOwn [][globalNumFeatures]float64
	// Moving are the quantiles of the errors divided by globalScale, for
	// series whose scale is positive.
	Moving [][globalQuantiles]float64
	// Flat are the quantiles of the errors divided by the last value, for
	// series whose scale is 0 and last value is not.
	Flat [][globalQuantiles]float64
	// CalibMoving and CalibFlat map a raw confidence to the calibrated
	// one, for the forecasts of series with a positive scale and the
	// others.
	CalibMoving, CalibFlat []ConfidenceMap
	// Rows is the number of training forecasts at each horizon.
	Rows []int
}

// Validate checks the shape of p: strictly increasing horizons within
// 1 … 365, one entry of each table per horizon, finite numbers, sorted
// quantiles and a non-decreasing confidence map within [0, 1].
func (p *GlobalParams) Validate() error {
	n := len(p.Horizons)
	if n == 0 || len(p.Coef) != n || len(p.CoefOwn) != n || len(p.Moving) != n || len(p.Flat) != n || len(p.CalibMoving) != n || len(p.CalibFlat) != n || len(p.Rows) != n {
		return obsqra.Errorf(obsqra.EINVALID, "global model parameters need one entry of each table per horizon")
	}
	for k, h := range p.Horizons {
		if h < 1 || h > fcMaxHorizon || (k > 0 && h <= p.Horizons[k-1]) {
			return obsqra.Errorf(obsqra.EINVALID, "global model horizons must increase within 1–%d", fcMaxHorizon)
		}
		for _, coef := range [2]*[globalNumFeatures]float64{&p.Coef[k], &p.CoefOwn[k]} {
			if slices.ContainsFunc(coef[:], func(c float64) bool { return !finite(c) }) {
				return obsqra.Errorf(obsqra.EINVALID, "global model coefficient at horizon %d is not finite", h)
			}
		}
		for _, q := range [][globalQuantiles]float64{p.Moving[k], p.Flat[k]} {
			if slices.ContainsFunc(q[:], func(v float64) bool { return !finite(v) }) || !slices.IsSorted(q[:]) {
				return obsqra.Errorf(obsqra.EINVALID, "global model quantiles at horizon %d are not finite and sorted", h)
			}
		}
		for _, c := range []ConfidenceMap{p.CalibMoving[k], p.CalibFlat[k]} {
			if err := c.validate(); err != nil {
				return obsqra.Errorf(obsqra.EINVALID, "global model confidence map at horizon %d: %v", h, err)
			}
		}
	}
	return nil
}

// globalFeatures fills x with the features of y at its last index i, u
// being the utilisations observed with y (nil when unknown).
//
// The first globalBaseFeatures are the positive and
// negative parts of how far the medians of the last 3, 7, 14 and 30
// observations, the previous observation and the mean of the last 90 sit
// from y[i], then how far the minima of the last 3 and 7 and the maximum of
// the last 3 sit from it. Each is a difference of values of the series, so
// a forecast from these alone is equivariant: scaling or shifting the
// series scales or shifts it alike.
//
// Then, whether the level held: when the previous observation lies within
// 1 % of y[i], the parts of the 7- and 30-observation medians' distances
// again (0 otherwise). A rate that jumped and stayed for a day is more
// often a new level than a spike of one observation.
//
// Those globalOwnFeatures are the series' own. Last, from the
// utilisation (0 without it):
//   - the positive and negative parts of the utilisation's rise above its
//     median of the last 7 observations, times y[i]: a rate moves with its
//     utilisation along the reserve's rate curve, and a utilisation that
//     just rose above its week's usual level is a withdrawal that deposits
//     tend to follow;
//   - the parts of the 7-observation median's distance from y[i] times the
//     utilisation: a spike at a high utilisation reverts differently from
//     one at a low;
//   - the 30-observation median's distance when the utilisation is at
//     least 0.98: the reserve is fully lent, the rate sits at the steep end
//     of its curve.
//
// The utilisation features scale with the series (they are multiplied by
// values or differences of values) but do not shift with it.
func globalFeatures(y, u []float64, x *[globalNumFeatures]float64) {
	i := len(y) - 1
	last := y[i]
	k := 0
	split := func(d float64) {
		x[k], x[k+1] = math.Max(d, 0), math.Min(d, 0)
		k += 2
	}
	var med [4]float64 // distances of the medians of 3, 7, 14 and 30
	for j, w := range [4]int{3, 7, 14, 30} {
		med[j] = fcTrailingMedian(y, i, w) - last
		split(med[j])
	}
	m7, m30 := med[1], med[3]
	split(y[max(i-1, 0)] - last)
	var sum float64
	from := max(0, i-89)
	for _, v := range y[from:] {
		sum += v
	}
	split(sum/float64(i+1-from) - last)
	x[k] = slices.Min(y[max(0, i-2):]) - last
	x[k+1] = slices.Min(y[max(0, i-6):]) - last
	x[k+2] = slices.Max(y[max(0, i-2):]) - last
	k += 3

	if i > 0 && math.Abs(y[i-1]-last) <= 0.01*math.Abs(last) {
		split(m7)
		split(m30)
	} else {
		for ; k < globalOwnFeatures; k++ {
			x[k] = 0
		}
	}

	if u != nil {
		ui := u[i]
		split((ui - fcTrailingMedian(u, i, 7)) * last)
		split(m7 * ui)
		if ui >= globalFullUtilization {
			x[k] = m30
		} else {
			x[k] = 0
		}
	} else {
		for ; k < globalNumFeatures; k++ {
			x[k] = 0
		}
	}
}

// globalScale is the volatility of y at its last index for a forecast
// steps ahead: the mean absolute change between consecutive observations
// over the last 30, plus the mean absolute change over steps observations
// in the last 60, or the last 4·steps when that is longer (0 when there
// are none). Looking back 60 observations for a 30-day change sees two
// independent ones: with 120, held-out confidence at 30 days is within 5
// points of the hit rate in every decile instead of 16 (every origin
// scored), with the relative MAE within a thousandth and the 7-day figures
// unchanged.
func globalScale(y []float64, steps int) float64 {
	i := len(y) - 1
	var daily float64
	n := 0
	for j := max(1, i-29); j <= i; j++ {
		daily += math.Abs(y[j] - y[j-1])
		n++
	}
	if n > 0 {
		daily /= float64(n)
	}
	var long float64
	m := 0
	for j := max(steps, i-max(59, 4*steps-1)); j <= i; j++ {
		long += math.Abs(y[j] - y[j-steps])
		m++
	}
	if m > 0 {
		long /= float64(m)
	}
	return daily + long
}

// globalKnot is the global model's forecast at one fitted horizon: the
// point (unclamped) and the scaled error quantiles.
type globalKnot struct {
	point float64
	// scale multiplies the quantile table q; 0 means no error at all.
	scale float64
	q     *[globalQuantiles]float64
	calib *ConfidenceMap
}

// knot forecasts y (up to its last observation; u its utilisations or
// nil) at the k-th fitted horizon.
func (p *GlobalParams) knot(y, u []float64, k int) globalKnot {
	var x [globalNumFeatures]float64
	globalFeatures(y, u, &x)
	last := y[len(y)-1]
	g := globalKnot{point: last}
	coef := &p.Coef[k]
	if u == nil {
		coef = &p.CoefOwn[k]
	}
	for j, c := range coef {
		g.point += c * x[j]
	}
	if s := globalScale(y, p.Horizons[k]); s > 0 {
		g.scale, g.q, g.calib = s, &p.Moving[k], &p.CalibMoving[k]
	} else {
		g.scale, g.q, g.calib = math.Abs(last), &p.Flat[k], &p.CalibFlat[k]
	}
	return g
}

// forecast is the global model's forecast steps days after the last
// observation of y: the point (unclamped) and 201 error quantiles, sorted,
// at probabilities k/200, and the confidence map to apply. Between two
// fitted horizons the points and quantiles are blended linearly.
func (p *GlobalParams) forecast(y, u []float64, steps int) (point float64, errs []float64, calib func(float64) float64) {
	hs := p.Horizons
	k := min(max(sortSearchInts(hs, steps), 1), len(hs)-1)
	var w float64 // weight of knot k; knot k-1 has 1-w
	switch {
	case len(hs) == 1:
		k, w = 0, 1
	case steps <= hs[0]:
		k, w = 1, 0
	case steps >= hs[len(hs)-1]:
		k, w = len(hs)-1, 1
	default:
		w = float64(steps-hs[k-1]) / float64(hs[k]-hs[k-1])
	}
	b := p.knot(y, u, k)
	a := b
	if w < 1 {
		a = p.knot(y, u, k-1)
	}
	point = (1-w)*a.point + w*b.point
	errs = make([]float64, globalQuantiles)
	for j := range errs {
		errs[j] = (1-w)*a.scale*a.q[j] + w*b.scale*b.q[j]
	}
	calib = func(c float64) float64 {
		return (1-w)*a.calib.apply(c) + w*b.calib.apply(c)
	}
	return point, errs, calib
}

// sortSearchInts returns the first index i with hs[i] >= v.
func sortSearchInts(hs []int, v int) int {
	i, _ := slices.BinarySearch(hs, v)
	return i
}

// ConfidenceMap is a non-decreasing step function from raw to calibrated
// confidence: a raw confidence up to Upper[0] maps to Value[0], one above
// Upper[i-1] and up to Upper[i] to Value[i], one above the last Upper to the
// last Value. The empty map is the identity.
type ConfidenceMap struct {
	Upper []float64
	Value []float64
}

// apply maps the raw confidence c.
func (m *ConfidenceMap) apply(c float64) float64 {
	if len(m.Value) == 0 {
		return c
	}
	i, _ := slices.BinarySearch(m.Upper, c)
	return m.Value[min(i, len(m.Value)-1)]
}

// validate checks that m is a non-decreasing step function into [0, 1].
func (m *ConfidenceMap) validate() error {
	switch {
	case len(m.Value) != len(m.Upper) || len(m.Value) > globalCalibMaxSteps:
		return fmt.Errorf("want at most %d steps, each with an upper end and a value", globalCalibMaxSteps)
	case len(m.Value) == 0:
		return nil
	case !slices.IsSorted(m.Upper) || !slices.IsSorted(m.Value) || !(m.Value[0] >= 0) || !(m.Value[len(m.Value)-1] <= 1):
		return fmt.Errorf("not a non-decreasing step function into 0–1")
	}
	for i := range m.Upper {
		if !finite(m.Upper[i]) || !finite(m.Value[i]) {
			return fmt.Errorf("a step is not finite")
		}
	}
	return nil
}

// quantileCDF returns P(error ≤ x) for the error distribution whose
// quantiles at k/(n−1) are errs, linear in between.
func quantileCDF(errs []float64, x float64) float64 {
	n := len(errs)
	switch {
	case x < errs[0]:
		return 0
	case x >= errs[n-1]:
		return 1
	}
	j, _ := slices.BinarySearch(errs, x) // errs[j] >= x, errs[j-1] < x
	for j < n-1 && errs[j+1] <= x {
		j++ // the last of equal quantiles: an atom counts in full
	}
	if errs[j] <= x {
		return float64(j) / float64(n-1)
	}
	lo, hi := errs[j-1], errs[j]
	return (float64(j-1) + (x-lo)/(hi-lo)) / float64(n-1)
}

// quantileWithin returns P(|error| ≤ tol) under the quantiles errs.
func quantileWithin(errs []float64, tol float64) float64 {
	below := 0.0 // P(error < -tol)
	if x := -tol; x > errs[0] {
		// P(error < x) is P(error ≤ x) for a continuous part; for an
		// atom exactly at x the difference does not matter at this
		// precision unless the atom is at 0 and tol is 0.
		below = quantileCDF(errs, math.Nextafter(x, math.Inf(-1)))
	}
	return min(max(quantileCDF(errs, tol)-below, 0), 1)
}

// globalRow is one training forecast.
type globalRow struct {
	x      [globalNumFeatures]float64
	change float64 // target value minus last value
	last   float64
	scale  float64 // globalScale at the origin
}

// globalRows returns the training forecasts of s at horizon h: one per
// observed origin from the MinObservations-th (default) on whose target
// day is observed.
func globalRows(s Series, h int, out []globalRow) []globalRow {
	j := 0
	for i := fcDefaultMinObs - 1; i < s.Len(); i++ {
		target := s.Days[i] + obsqra.Date(h)
		for j < s.Len() && s.Days[j] < target {
			j++
		}
		if j == s.Len() {
			break
		}
		if s.Days[j] != target {
			continue
		}
		y := s.Values[:i+1]
		var u []float64
		if s.Utilization != nil {
			u = s.Utilization[:i+1]
		}
		r := globalRow{change: s.Values[j] - y[i], last: y[i], scale: globalScale(y, h)}
		globalFeatures(y, u, &r.x)
		out = append(out, r)
	}
	return out
}

// FitGlobal fits the global model on the series of groups at horizons
// (GlobalHorizons when nil): at each horizon, the coefficients on every
// forecast from every origin of every series with at least 30
// observations up to it whose target day is observed; the intervals and
// the confidence map on the errors of the same forecasts, each group's
// made with coefficients fitted on the other groups (with one group, on
// all). Groups are meant to be networks: the errors are then those of a
// network the model has not seen. The series are taken as lending rates
// (NonNegative) for the confidence map. The fit is deterministic: the same
// groups give the same parameters, bit for bit, on any run.
//
// Errors: EINVALID for a malformed series or horizon, or a horizon with
// fewer than 200 training forecasts.
func FitGlobal(groups [][]Series, horizons []int) (GlobalParams, error) {
	if horizons == nil {
		horizons = GlobalHorizons
	}
	for k, h := range horizons {
		if h < 1 || h > fcMaxHorizon || (k > 0 && h <= horizons[k-1]) {
			return GlobalParams{}, obsqra.Errorf(obsqra.EINVALID, "horizons must increase within 1–%d", fcMaxHorizon)
		}
	}
	for _, g := range groups {
		for _, s := range g {
			if err := s.Validate(); err != nil {
				return GlobalParams{}, err
			}
		}
	}
	n := len(horizons)
	p := GlobalParams{
		Horizons:    slices.Clone(horizons),
		Coef:        make([][globalNumFeatures]float64, n),
		CoefOwn:     make([][globalNumFeatures]float64, n),
		Moving:      make([][globalQuantiles]float64, n),
		Flat:        make([][globalQuantiles]float64, n),
		CalibMoving: make([]ConfidenceMap, n),
		CalibFlat:   make([]ConfidenceMap, n),
		Rows:        make([]int, n),
	}
	errs := make([]error, n)
	parallelEach(n, func(k int) { errs[k] = p.fitHorizon(groups, k) })
	for _, err := range errs {
		if err != nil {
			return GlobalParams{}, err
		}
	}
	return p, nil
}

// fitHorizon fits the k-th horizon's entries of p.
func (p *GlobalParams) fitHorizon(groups [][]Series, k int) error {
	h := p.Horizons[k]
	var rows []globalRow
	ends := make([]int, len(groups)) // rows[ends[g-1]:ends[g]] are group g's
	for g, series := range groups {
		for _, s := range series {
			rows = globalRows(s, h, rows)
		}
		ends[g] = len(rows)
	}
	if len(rows) < globalMinRows {
		return obsqra.Errorf(obsqra.EINVALID, "horizon %d has %d training forecasts, fewer than %d", h, len(rows), globalMinRows)
	}
	p.Rows[k] = len(rows)

	// The errors the intervals and confidence are calibrated on: with
	// more than one group, each group's forecasts are made with the
	// coefficients fitted on the other groups. Those errors also choose
	// the features, whichever makes the smaller sum of absolute errors on
	// the groups held out: for a series without a utilisation, the first
	// globalBaseFeatures or all its own; for one with, those or all. With
	// one group, all of them.
	resid := make([]float64, len(rows)) // target − forecast
	own, all := globalOwnFeatures, globalNumFeatures
	if len(groups) > 1 {
		sets := []int{globalBaseFeatures, globalOwnFeatures, globalNumFeatures}
		heldOut := make([][]float64, len(sets))
		for c := range heldOut {
			heldOut[c] = make([]float64, len(rows))
		}
		sums := heldOutResiduals(rows, ends, sets, heldOut)
		best := 0 // of all the sets, and of those up to globalOwnFeatures
		for c, nf := range sets {
			if sums[c] < sums[best] {
				best = c
			}
			if nf <= globalOwnFeatures {
				own = sets[best]
			}
		}
		all, resid = sets[best], heldOut[best]
	}
	p.CoefOwn[k] = fitLAD(rows, own)
	p.Coef[k] = p.CoefOwn[k]
	if all != own {
		p.Coef[k] = fitLAD(rows, all)
	}
	if len(groups) <= 1 {
		for i := range rows {
			resid[i] = rows[i].residual(&p.Coef[k])
		}
	}

	// Conformal quantiles of the scaled errors.
	var moving, flat []float64
	for i := range rows {
		r := &rows[i]
		switch {
		case r.scale > 0:
			moving = append(moving, resid[i]/r.scale)
		case r.last != 0:
			flat = append(flat, resid[i]/math.Abs(r.last))
		}
	}
	p.Moving[k] = quantileTable(moving)
	p.Flat[k] = quantileTable(flat)

	// The confidence map: isotonic regression of "landed within the
	// default tolerance" on the raw confidence.
	type pair struct{ raw, hit float64 }
	var pairs, flatPairs []pair
	buf := make([]float64, globalQuantiles)
	for i := range rows {
		r := &rows[i]
		actual := r.last + r.change
		forecast := actual - resid[i]
		clamped := math.Max(forecast, 0)
		tol := DefaultTolerance(clamped)
		var raw float64
		switch {
		case r.scale > 0:
			raw = scaledWithin(&p.Moving[k], r.scale, forecast-clamped, tol, buf)
		case r.last != 0:
			raw = scaledWithin(&p.Flat[k], math.Abs(r.last), forecast-clamped, tol, buf)
		default:
			raw = 1
		}
		hit := 0.0
		if math.Abs(actual-clamped) <= tol {
			hit = 1
		}
		if r.scale > 0 {
			pairs = append(pairs, pair{raw, hit})
		} else {
			flatPairs = append(flatPairs, pair{raw, hit})
		}
	}
	fitMap := func(pairs []pair) ConfidenceMap {
		slices.SortStableFunc(pairs, func(a, b pair) int {
			switch {
			case a.raw < b.raw:
				return -1
			case a.raw > b.raw:
				return 1
			}
			return 0
		})
		raws := make([]float64, len(pairs))
		hits := make([]float64, len(pairs))
		for i, pr := range pairs {
			raws[i], hits[i] = pr.raw, pr.hit
		}
		return isotonicMap(raws, hits)
	}
	p.CalibMoving[k] = fitMap(pairs)
	p.CalibFlat[k] = fitMap(flatPairs)
	return nil
}

// residual is the row's target change minus the forecast change of coef.
func (r *globalRow) residual(coef *[globalNumFeatures]float64) float64 {
	res := r.change
	for j, c := range coef {
		res -= c * r.x[j]
	}
	return res
}

// heldOutResiduals fills resid[c], for each feature set c (the first
// sets[c] features), with each group's residuals under coefficients fitted
// on the other groups (rows[ends[g-1]:ends[g]] being group g's), and
// returns the sum of their absolute values for each set. The other groups'
// rows are gathered once per group for all the sets.
func heldOutResiduals(rows []globalRow, ends []int, sets []int, resid [][]float64) []float64 {
	sums := make([]float64, len(sets))
	start := 0
	for _, end := range ends {
		if end > start {
			others := append(slices.Clone(rows[:start]), rows[end:]...)
			for c, nf := range sets {
				coef := fitLAD(others, nf)
				for i := start; i < end; i++ {
					resid[c][i] = rows[i].residual(&coef)
					sums[c] += math.Abs(resid[c][i])
				}
			}
		}
		start = end
	}
	return sums
}

// scaledWithin is the raw confidence of a forecast whose error quantiles
// are scale·q, around a point moved by shift (the clamping at 0): the
// probability that |error − shift| ≤ tol.
func scaledWithin(q *[globalQuantiles]float64, scale, shift, tol float64, buf []float64) float64 {
	for j, v := range q {
		buf[j] = scale*v + shift
	}
	return quantileWithin(buf, tol)
}

// quantileTable returns the quantiles of v at probabilities k/200 (linear
// between order statistics); all zeros for no values. It sorts v.
func quantileTable(v []float64) [globalQuantiles]float64 {
	var q [globalQuantiles]float64
	if len(v) == 0 {
		return q
	}
	slices.Sort(v)
	for k := range q {
		pos := float64(k) / (globalQuantiles - 1) * float64(len(v)-1)
		i := int(pos)
		if i >= len(v)-1 {
			q[k] = v[len(v)-1]
			continue
		}
		f := pos - float64(i)
		q[k] = v[i] + f*(v[i+1]-v[i])
	}
	return q
}

// isotonicMap fits a non-decreasing step function of hits on raws (sorted
// ascending) by pool-adjacent-violators, then pools adjacent steps until
// each holds at least globalCalibMinBlock forecasts (or 1 % of them), and
// enough that its hit rate v has a standard error √(v(1−v)/n) of at most
// globalCalibSE, and there are at most globalCalibMaxSteps: on the
// training forecasts, the
// forecasts mapped to any one value then hit at that rate exactly, and a
// decile of calibrated confidence is a union of steps. A step's upper end
// lies halfway between its largest raw confidence and the next step's
// smallest. No data gives the empty map, the identity.
func isotonicMap(raws, hits []float64) ConfidenceMap {
	type block struct {
		lo, hi  float64 // smallest and largest raw confidence
		sumY, n float64
	}
	mean := func(b block) float64 { return b.sumY / b.n }
	var bs []block
	push := func(b block) {
		bs = append(bs, b)
		for len(bs) > 1 {
			a, b := bs[len(bs)-2], bs[len(bs)-1]
			if mean(a) < mean(b) {
				break
			}
			bs = append(bs[:len(bs)-2], block{a.lo, b.hi, a.sumY + b.sumY, a.n + b.n})
		}
	}
	for i := range raws {
		push(block{raws[i], raws[i], hits[i], 1})
	}
	if len(bs) == 0 {
		return ConfidenceMap{}
	}
	least := math.Max(globalCalibMinBlock, 0.01*float64(len(raws)))
	tooSmall := func(b block) bool {
		m := mean(b)
		return b.n < least || b.n < m*(1-m)/(globalCalibSE*globalCalibSE)
	}
	for {
		// Pool the smallest step too small (or, past the step limit, the
		// smallest) with its smaller neighbour.
		j := -1
		for i, b := range bs {
			if (tooSmall(b) || len(bs) > globalCalibMaxSteps) && (j < 0 || b.n < bs[j].n) {
				j = i
			}
		}
		if j < 0 || len(bs) == 1 {
			break
		}
		k := j + 1
		if k == len(bs) || (j > 0 && bs[j-1].n < bs[k].n) {
			k = j - 1
		}
		a, b := bs[min(j, k)], bs[max(j, k)]
		bs[min(j, k)] = block{a.lo, b.hi, a.sumY + b.sumY, a.n + b.n}
		bs = slices.Delete(bs, max(j, k), max(j, k)+1)
	}
	m := ConfidenceMap{Upper: make([]float64, len(bs)), Value: make([]float64, len(bs))}
	for i, b := range bs {
		m.Value[i] = mean(b)
		m.Upper[i] = 1
		if i+1 < len(bs) {
			m.Upper[i] = (b.hi + bs[i+1].lo) / 2
		}
	}
	return m
}

// fitLAD returns the coefficients β minimising Σ wᵢ·|changeᵢ − β·xᵢ| over
// rows, by iteratively reweighted least squares from the least-squares
// start, with a tiny ridge so that a feature that never varies gets 0.
//
// Each row's weight wᵢ is 1/√(scaleᵢ + level/100 + ε), level being the
// median of the last 30 values and ε a hundredth of the mean absolute
// change: a volatile series' forecasts count less than a calm one's, but
// not in proportion (which would hand the fit to the calmest). Fitted
// with equal weights, the model follows the few most volatile reserves of
// the largest networks; these weights cut its error on networks it has
// not seen (leave-one-network-out relative MAE at 30 days 0.836 against
// 0.860) at the cost of a few thousandths at 7 days.
func fitLAD(rows []globalRow, nf int) [globalNumFeatures]float64 {
	const k = globalNumFeatures
	var meanAbs float64
	for _, r := range rows {
		meanAbs += math.Abs(r.change)
	}
	meanAbs /= float64(len(rows))
	eps := math.Max(1e-4*meanAbs, 1e-300)
	prior := make([]float64, len(rows))
	for i := range rows {
		r := &rows[i]
		level := math.Abs(r.last + r.x[6] + r.x[7]) // the median of the last 30
		prior[i] = 1 / math.Sqrt(r.scale+level/100+math.Max(1e-2*meanAbs, 1e-300))
	}
	w := slices.Clone(prior)
	var beta [k]float64
	for range globalIRLSIterations {
		var a [k][k + 1]float64
		for i := range rows {
			r := &rows[i]
			for u := range nf {
				if r.x[u] == 0 {
					continue
				}
				wx := w[i] * r.x[u]
				for v := u; v < nf; v++ {
					a[u][v] += wx * r.x[v]
				}
				a[u][k] += wx * r.change
			}
		}
		var trace float64
		for u := range nf {
			for v := 0; v < u; v++ {
				a[u][v] = a[v][u]
			}
			trace += a[u][u]
		}
		for u := range nf {
			a[u][u] += 1e-9 * trace / float64(nf)
		}
		for u := nf; u < k; u++ {
			a[u][u] = 1 // the features not used: βᵤ = 0
		}
		beta = solveDense(a)
		for i := range rows {
			r := &rows[i]
			res := r.change
			for u := range nf {
				res -= beta[u] * r.x[u]
			}
			w[i] = prior[i] / math.Max(math.Abs(res), eps)
		}
	}
	return beta
}

// solveDense solves the k×k system in the augmented matrix a by Gaussian
// elimination with partial pivoting; a singular pivot gives 0.
func solveDense(a [globalNumFeatures][globalNumFeatures + 1]float64) [globalNumFeatures]float64 {
	const k = globalNumFeatures
	for c := range k {
		p := c
		for r := c + 1; r < k; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		if a[c][c] == 0 {
			continue
		}
		for r := c + 1; r < k; r++ {
			f := a[r][c] / a[c][c]
			for j := c; j <= k; j++ {
				a[r][j] -= f * a[c][j]
			}
		}
	}
	var x [k]float64
	for c := k - 1; c >= 0; c-- {
		if a[c][c] == 0 {
			continue
		}
		s := a[c][k]
		for j := c + 1; j < k; j++ {
			s -= a[c][j] * x[j]
		}
		x[c] = s / a[c][c]
	}
	return x
}
