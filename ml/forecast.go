package ml

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/obsqra/obsqra"
)

// Forecast is a point forecast of a daily series with prediction intervals.
type Forecast struct {
	Model   string      // method that made it, e.g. "naive", "median7", "ses", "combo(naive,ses)"
	Origin  obsqra.Date // last day of data used
	Target  obsqra.Date // Origin + Horizon calendar days
	Horizon int         // calendar days ahead, 1 … 365

	Point            float64
	Lower80, Upper80 float64 // 80 % prediction interval
	Lower95, Upper95 float64 // 95 % prediction interval

	// Tolerance is the half-width around Point that Confidence refers to:
	// ForecastOptions.Tolerance, or DefaultTolerance(Point) when that is 0.
	Tolerance float64
	// Confidence is the calibrated probability that the value on Target
	// lies within Tolerance of Point.
	Confidence float64
	// Errors is how many past forecasts of this series at this horizon
	// calibrated the intervals and Confidence; 0 means they come from the
	// model's analytic error variance alone or, for the global model, from
	// the errors of its training forecasts across series.
	Errors int
}

// ForecastOptions tunes ForecastSeries. The zero value is the recommended
// setting.
type ForecastOptions struct {
	// Model is the forecasting method. Default DefaultModel. One of
	//   - "naive": the last value;
	//   - "drift": random walk with drift;
	//   - "medianK", K from 2 to 31: the median of the last K observations;
	//   - "ses", "holt", "damped": exponential smoothing (ANN, AAN, AAdN)
	//     fitted by maximum likelihood;
	//   - "ets": whichever of ses, holt and damped has the lowest AICc;
	//   - "combo(a,b,…)": the equal-weight average of up to 8 of the above;
	//   - "select(a,b,…)": per series and horizon, the one of up to 8 of the
	//     above whose past forecasts at this horizon had the lowest mean
	//     absolute error (the first when there are none yet);
	//   - "global": the model fitted across many series (see FitGlobal),
	//     with the parameters in Global. It stands alone: it is not a
	//     member of a combination.
	Model string
	// Global are the parameters of the "global" model. Default: those
	// fitted on the shared Aave V3 lending rates (DefaultGlobal).
	Global *GlobalParams
	// MinObservations is the fewest observed days, up to the origin, that a
	// forecast needs. Default 30; at least 10.
	MinObservations int
	// NonNegative clamps Point and the interval bounds at 0, for quantities
	// that cannot be negative such as lending rates. Default false: a
	// generic series may be negative.
	NonNegative bool
	// AnalyticIntervals turns off the calibration of intervals and
	// confidence on the series' own past errors, leaving the model's
	// analytic Gaussian error variance. Default false.
	AnalyticIntervals bool
	// Tolerance is the absolute half-width, in the series' unit, for
	// Forecast.Confidence. Default 0: DefaultTolerance(Point).
	Tolerance float64
}

// DefaultModel is the method ForecastSeries uses when ForecastOptions.Model
// is empty: the global model, fitted across the reserves of the shared
// Aave V3 lending rates (see FitGlobal and DefaultGlobal). It is meant for
// lending rates and yields; ForecastRisk forecasts utilisation and
// volatility with SeriesModel instead.
//
// On the shared rates, every 7th origin, fitted on six networks and scored
// on the seventh, its mean absolute error is 0.863 of the naive forecast's
// at 7 days and 0.837 at 30 (SeriesModel: 0.883 and 0.923, scored on the
// same data it selects on). `make backtest` prints the figures per network.
const DefaultModel = "global"

// SeriesModel is the best method that learns from one series alone: per
// series and horizon, whichever of the last value and the median of the
// last 3, 7 or 14 observations forecast that series best at that horizon in
// the past. It was DefaultModel before the global model.
//
// Lending rates move in steps and jump for a day or two when a large
// deposit or withdrawal moves utilisation, then fall back. The last value
// carries every jump forward; a short median ignores it but lags a lasting
// move by a few days, which matters little a week or a month ahead. Which
// trade-off is right differs between reserves, so each series picks its own
// from its history. On the shared Aave V3 rates (151 reserves, every 7th
// origin) its mean absolute error is 0.88 of the naive forecast's at 7 days
// and 0.92 at 30; the best exponential smoothing model, ses, reaches 0.96
// and 0.97, AICc-selected ETS 0.98 and 1.02, and averaging ETS with the
// naive forecast 0.98 and 1.00. `obsqra ml backtest --every 7 --model M`
// reproduces the comparison.
const SeriesModel = "select(naive,median3,median7,median14)"

const (
	fcMaxHorizon    = 365
	fcDefaultMinObs = 30
	fcLeastMinObs   = 10
	fcMaxMembers    = 8
	fcMaxMedian     = 31
)

// fcPart is one member of a forecasting method with its weight.
type fcPart struct {
	w     float64
	naive bool
	drift bool
	med   int     // > 0: median of the last med observations
	ets   *etsFit // exponential smoothing; for a median, the SES fit that gives its analytic variance
}

// name returns the member's name as in ForecastOptions.Model.
func (p fcPart) name() string {
	switch {
	case p.naive:
		return "naive"
	case p.drift:
		return "drift"
	case p.med > 0:
		return "median" + strconv.Itoa(p.med)
	default:
		return p.ets.kind.String()
	}
}

// fcModel is a fitted forecasting method: a weighted average of members.
type fcModel struct {
	name  string
	d     *fcData
	walk  fcWalk
	parts []fcPart
	// floor is the least scale of an error (see scaleOf).
	floor float64
}

// fcSpec is a parsed ForecastOptions.Model.
type fcSpec struct {
	members []string
	op      string // "", "combo" or "select"
}

// fcMedianK returns K for a "medianK" member, or 0.
func fcMedianK(s string) int {
	k, err := strconv.Atoi(strings.TrimPrefix(s, "median"))
	if !strings.HasPrefix(s, "median") || err != nil || k < 2 || k > fcMaxMedian || strconv.Itoa(k) != s[len("median"):] {
		return 0
	}
	return k
}

func fcParseModel(m string) (fcSpec, error) {
	if m == "" {
		m = DefaultModel
	}
	if m == "global" {
		return fcSpec{op: "global"}, nil
	}
	known := func(s string) bool {
		switch s {
		case "naive", "drift", "ses", "holt", "damped", "ets":
			return true
		}
		return fcMedianK(s) > 0
	}
	if known(m) {
		return fcSpec{members: []string{m}}, nil
	}
	for _, op := range []string{"combo", "select"} {
		inner, ok := strings.CutPrefix(m, op+"(")
		if !ok {
			continue
		}
		if inner, ok = strings.CutSuffix(inner, ")"); ok {
			ms := strings.Split(inner, ",")
			if len(ms) <= fcMaxMembers && !slices.ContainsFunc(ms, func(s string) bool { return !known(s) }) {
				return fcSpec{members: ms, op: op}, nil
			}
		}
	}
	return fcSpec{}, obsqra.Errorf(obsqra.EINVALID, "model %q is not global or one of naive, drift, medianK, ses, holt, damped, ets, or combo(…) or select(…) of up to %d of them", m, fcMaxMembers)
}

// fcFitModel fits the method spec to d, for forecasts steps days after the
// last observation (select picks its member by the errors at that lead).
func fcFitModel(d *fcData, spec fcSpec, steps int) *fcModel {
	base := fcModel{d: d, walk: fcFitWalk(d)}
	var sa float64
	for _, y := range d.y {
		sa += math.Abs(y + d.shift)
	}
	base.floor = math.Max(0.1*sa/float64(d.n), 1e-12)
	var fits [3]*etsFit
	if spec.op == "select" {
		// Members are judged by their past errors alone; a median's SES
		// error model is fitted only for the member chosen.
		chosen := func(m *fcModel) *fcModel {
			if p := &m.parts[0]; p.med > 0 {
				p.ets = etsFitOnce(&fits, d, etsSES)
			}
			return m
		}
		var best *fcModel
		bestMAE := math.Inf(1)
		buf := make([]float64, 0, d.n)
		for _, name := range spec.members {
			m := base
			p := fcFitMember(d, name, &fits, false)
			p.w = 1
			m.parts = []fcPart{p}
			m.name = p.name()
			errs := m.pastErrors(steps, 0, buf)
			if len(errs) == 0 {
				// No past forecast at this lead has come due yet (the same
				// holds for every member): keep the first.
				return chosen(&m)
			}
			var mae float64
			for _, e := range errs {
				mae += math.Abs(e)
			}
			if mae /= float64(len(errs)); best == nil || mae < bestMAE {
				best, bestMAE = &m, mae
			}
		}
		return chosen(best)
	}
	m := base
	names := make([]string, len(spec.members))
	for i, name := range spec.members {
		p := fcFitMember(d, name, &fits, true)
		p.w = 1 / float64(len(spec.members))
		names[i] = p.name()
		m.parts = append(m.parts, p)
	}
	m.name = names[0]
	if spec.op == "combo" {
		m.name = "combo(" + strings.Join(names, ",") + ")"
	}
	return &m
}

// fcFitMember fits one member of a method. A median's error model (SES's)
// is fitted only when medianVariance is set.
func fcFitMember(d *fcData, name string, fits *[3]*etsFit, medianVariance bool) fcPart {
	var p fcPart
	switch name {
	case "naive":
		p.naive = true
	case "drift":
		p.drift = true
	case "ses":
		p.ets = etsFitOnce(fits, d, etsSES)
	case "holt":
		p.ets = etsFitOnce(fits, d, etsHolt)
	case "damped":
		p.ets = etsFitOnce(fits, d, etsDamped)
	case "ets":
		p.ets = etsFitOnce(fits, d, etsSES)
		for _, k := range []etsKind{etsHolt, etsDamped} {
			if f := etsFitOnce(fits, d, k); f.aicc < p.ets.aicc {
				p.ets = f
			}
		}
	default:
		// The median of the last K values is a robust stand-in for the SES
		// level; it has no error model of its own, so its analytic
		// variance is that of SES fitted to the series.
		p.med = fcMedianK(name)
		if medianVariance {
			p.ets = etsFitOnce(fits, d, etsSES)
		}
	}
	return p
}

// etsFitOnce returns fits[k], fitting it first if needed. The trend models
// start from the simpler fit: Holt from SES's α, damped from Holt's α and β,
// which saves most of the optimiser's work and makes the nested models'
// likelihoods consistent (the richer model starts where the simpler ended).
func etsFitOnce(fits *[3]*etsFit, d *fcData, k etsKind) *etsFit {
	if fits[k] == nil {
		var start *[3]float64
		switch k {
		case etsHolt:
			ses := etsFitOnce(fits, d, etsSES)
			th := etsEncode(etsHolt, ses.alpha, 0.1*ses.alpha, 1)
			start = &th
		case etsDamped:
			holt := etsFitOnce(fits, d, etsHolt)
			th := etsEncode(etsDamped, holt.alpha, holt.beta, 0.95)
			start = &th
		}
		f := fitETS(d, k, start)
		fits[k] = &f
	}
	return fits[k]
}

// point returns the centred forecast steps days after the last observation
// and the analytic standard deviation of its error. For a combination that is
// the weighted mean of the members' standard deviations — exact if their
// errors were perfectly correlated, an upper bound otherwise — widened by
// the members' disagreement.
func (m *fcModel) point(steps int) (point, sd float64) {
	n := m.d.n
	last := m.d.y[n-1]
	var ps [fcMaxMembers]float64
	h := float64(steps)
	for i, p := range m.parts {
		var v float64
		switch {
		case p.naive:
			ps[i], v = last, m.walk.naive2*h
		case p.drift:
			ps[i] = last + h*m.walk.drift
			v = m.walk.sigma2 * h * (1 + h/math.Max(m.walk.span, 1))
		case p.med > 0:
			ps[i], v = fcTrailingMedian(m.d.y, n-1, p.med), p.ets.variance(steps)
		default:
			ps[i], v = p.ets.point(p.ets.level, p.ets.trend, steps), p.ets.variance(steps)
		}
		point += p.w * ps[i]
		sd += p.w * math.Sqrt(v)
	}
	var spread float64
	for i, p := range m.parts {
		spread += p.w * (ps[i] - point) * (ps[i] - point)
	}
	return point, math.Sqrt(sd*sd + spread)
}

// pastErrors returns the errors (actual − forecast) of the method's
// forecasts steps days ahead made at each past observed day whose target day
// is observed, oldest first. If restate > 0 each error is multiplied by
// restate / scaleOf(its forecast), restating it at the scale restate.
//
// The fitted parameters are those fitted on all of d, so only data up to
// d's last day are used, but the parameters have seen the targets of these
// past forecasts: the errors are in-sample in the parameters (three at most)
// and out-of-sample in the states. Naive and median forecasts have no
// parameters, so theirs are out-of-sample through and through.
func (m *fcModel) pastErrors(steps int, restate float64, buf []float64) []float64 {
	d := m.d
	n := d.n
	pp := make([]float64, n)
	for _, p := range m.parts {
		switch {
		case p.naive:
			for i, y := range d.y {
				pp[i] += p.w * y
			}
		case p.drift:
			for i, y := range d.y {
				pp[i] += p.w * (y + float64(steps)*m.walk.drift)
			}
		case p.med > 0:
			for i := range d.y {
				pp[i] += p.w * fcTrailingMedian(d.y, i, p.med)
			}
		default:
			f := *p.ets // etsRun sets the final state; keep p.ets untouched
			w := p.w
			etsRun(d, &f, func(i int, _, level, trend float64) {
				pp[i] += w * f.point(level, trend, steps)
			})
		}
	}
	errs := buf[:0]
	j := 0
	for i := 0; i < n; i++ {
		target := d.days[i] + obsqra.Date(steps)
		for j < n && d.days[j] < target {
			j++
		}
		if j == n {
			break
		}
		if d.days[j] == target {
			e := d.y[j] - pp[i]
			if restate > 0 {
				e *= min(restate/m.scaleOf(pp[i]), fcMaxRestate)
			}
			errs = append(errs, e)
		}
	}
	return errs
}

// fcMaxRestate bounds how far a past error is scaled up to today's level.
// Scaling down (a reserve that paid 20 % then and 2 % now) is what the
// restating is for; scaling up without bound let a rate that had just
// jumped tenfold inflate every calm past error tenfold, and gave a
// stablecoin at 36 % an upper 95 % bound of 798 %. On the shared data a cap
// of 1.5 keeps the coverage of the 80 % and 95 % intervals within a point
// of the uncapped (0.883 and 0.951 at 7 days, 0.814 and 0.915 at 30, every
// 7th origin) while the mean 95 % width falls by a third (from 0.034 to
// 0.022 at 7 days and from 0.056 to 0.032 at 30).
const fcMaxRestate = 1.5

// scaleOf returns the scale of a forecast (given centred): its magnitude,
// but at least a tenth of the series' mean magnitude. Errors are calibrated
// in these units because the spread of a rate's changes grows with the rate:
// a reserve paying 2 % now is not as volatile as it was when it paid 20 %.
// For a series far from zero the scale barely varies and this changes
// nothing.
func (m *fcModel) scaleOf(centred float64) float64 {
	return math.Max(math.Abs(centred+m.d.shift), m.floor)
}

// fcCheckOptions validates horizon and opts, fills in the defaults and
// returns the parsed model.
func fcCheckOptions(horizon int, opts *ForecastOptions) (fcSpec, error) {
	if horizon < 1 || horizon > fcMaxHorizon {
		return fcSpec{}, obsqra.Errorf(obsqra.EINVALID, "horizon %d is not between 1 and %d days", horizon, fcMaxHorizon)
	}
	if opts.MinObservations == 0 {
		opts.MinObservations = fcDefaultMinObs
	}
	if opts.MinObservations < fcLeastMinObs {
		return fcSpec{}, obsqra.Errorf(obsqra.EINVALID, "MinObservations %d is below %d", opts.MinObservations, fcLeastMinObs)
	}
	if err := fcCheckTolerance(opts.Tolerance); err != nil {
		return fcSpec{}, err
	}
	if opts.Global != nil {
		if err := opts.Global.Validate(); err != nil {
			return fcSpec{}, err
		}
	}
	return fcParseModel(opts.Model)
}

// fcCheckTolerance refuses a tolerance that is negative or not finite.
func fcCheckTolerance(tol float64) error {
	if tol < 0 || !finite(tol) {
		return obsqra.Errorf(obsqra.EINVALID, "tolerance %v is not a finite non-negative number", tol)
	}
	return nil
}

// fcPrepare validates the arguments of ForecastSeries and friends and
// returns the observations up to origin (sharing s's memory) and the
// parsed model.
func fcPrepare(s Series, origin obsqra.Date, horizon int, opts *ForecastOptions) (Series, fcSpec, error) {
	spec, err := fcCheckOptions(horizon, opts)
	if err != nil {
		return Series{}, fcSpec{}, err
	}
	if err := s.Validate(); err != nil {
		return Series{}, fcSpec{}, err
	}
	if s.Len() == 0 || origin < s.Days[0] {
		return Series{}, fcSpec{}, obsqra.Errorf(obsqra.EINVALID, "origin %s is before the series' first observation", origin)
	}
	w := s.Until(origin)
	if w.Len() < opts.MinObservations {
		return Series{}, fcSpec{}, obsqra.Errorf(obsqra.EINVALID, "series has %d observations up to origin %s, fewer than the %d required", w.Len(), origin, opts.MinObservations)
	}
	return w, spec, nil
}

// ForecastSeries forecasts s on day origin+horizon from the observations up
// to origin only. origin may lie after the last observation: the missing days
// in between count as calendar days like any other gap.
//
// Intervals and Confidence come from one predictive distribution of the
// error: the series' own past errors at this horizon (RollingErrors: the
// method's forecasts from earlier days, restated at today's level) with
// weight m/(m+ConfidencePrior) for m past errors, mixed with the model's
// analytic Gaussian error, so that a short history leans on the model and a
// long one on what actually happened. With AnalyticIntervals only the
// Gaussian is used.
//
// Each interval holds its probability under that distribution. It is the
// central one (from the 10th to the 90th percentile for 80 %) unless the
// distribution has an atom at one end — many past errors of exactly 0 on a
// reserve whose rate often does not move — which would make the central
// interval hold more; then the other end is pulled in. Past errors may be
// lopsided, so an interval need not be centred on Point, and at long
// horizons, where past errors overlap heavily, it can even be narrower
// than a shorter horizon's on the same series. With NonNegative, Point and
// the bounds are clamped at 0 after all this.
//
// Errors: EINVALID for a horizon outside 1 … 365, a malformed series (see
// Series.Validate), an origin before the first observation, fewer than
// MinObservations observations up to origin, or bad options.
func ForecastSeries(s Series, origin obsqra.Date, horizon int, opts ForecastOptions) (Forecast, error) {
	f, _, err := fcForecastDist(s, origin, horizon, opts)
	return f, err
}

// fcForecastDist is ForecastSeries, also returning the predictive
// distribution of the error around the unclamped point.
func fcForecastDist(s Series, origin obsqra.Date, horizon int, opts ForecastOptions) (Forecast, fcDist, error) {
	w, spec, err := fcPrepare(s, origin, horizon, &opts)
	if err != nil {
		return Forecast{}, fcDist{}, err
	}
	steps := int(origin-w.Days[w.Len()-1]) + horizon
	if spec.op == "global" {
		f, dist := fcGlobal(w, origin, horizon, steps, opts)
		return f, dist, nil
	}
	d := newFCData(w)
	m := fcFitModel(d, spec, steps)
	point, sd := m.point(steps)
	var errs []float64
	if !opts.AnalyticIntervals {
		errs = m.pastErrors(steps, m.scaleOf(point), make([]float64, 0, d.n))
	}
	dist := newFCDist(errs, sd)
	f := Forecast{
		Model:   m.name,
		Origin:  origin,
		Target:  origin + obsqra.Date(horizon),
		Horizon: horizon,
		Point:   d.shift + point,
		Errors:  len(errs),
	}
	lo, hi := dist.interval(0.80)
	f.Lower80, f.Upper80 = f.Point+lo, f.Point+hi
	lo, hi = dist.interval(0.95)
	f.Lower95, f.Upper95 = f.Point+lo, f.Point+hi
	if opts.NonNegative {
		f.Point = math.Max(f.Point, 0)
		f.Lower80 = math.Max(f.Lower80, 0)
		f.Lower95 = math.Max(f.Lower95, 0)
		f.Upper80 = math.Max(f.Upper80, 0)
		f.Upper95 = math.Max(f.Upper95, 0)
	}
	f.Tolerance = opts.Tolerance
	if f.Tolerance == 0 {
		f.Tolerance = DefaultTolerance(f.Point)
	}
	f.Confidence = dist.within(f.Tolerance)
	return f, dist, nil
}

// fcTrailingMedian returns the median of y[i-k+1 … i] (fewer at the start).
func fcTrailingMedian(y []float64, i, k int) float64 {
	var buf [fcMaxMedian]float64
	w := buf[:0]
	for j := max(0, i-k+1); j <= i; j++ {
		w = append(w, y[j])
	}
	slices.Sort(w)
	if len(w)%2 == 1 {
		return w[len(w)/2]
	}
	return (w[len(w)/2-1] + w[len(w)/2]) / 2
}

// fcGlobal is ForecastSeries for the global model: w is the series up to
// origin, its last observation steps days before the target.
func fcGlobal(w Series, origin obsqra.Date, horizon, steps int, opts ForecastOptions) (Forecast, fcDist) {
	gp := opts.Global
	if gp == nil {
		gp = &DefaultGlobal
	}
	point, errs, calib := gp.forecast(w.Values, w.Utilization, steps)
	f := Forecast{
		Model:   "global",
		Origin:  origin,
		Target:  origin + obsqra.Date(horizon),
		Horizon: horizon,
		Point:   point,
		Lower80: point + errs[20], Upper80: point + errs[180],
		Lower95: point + errs[5], Upper95: point + errs[195],
	}
	if opts.NonNegative {
		f.Point = math.Max(f.Point, 0)
		f.Lower80 = math.Max(f.Lower80, 0)
		f.Lower95 = math.Max(f.Lower95, 0)
		f.Upper80 = math.Max(f.Upper80, 0)
		f.Upper95 = math.Max(f.Upper95, 0)
	}
	f.Tolerance = opts.Tolerance
	if f.Tolerance == 0 {
		f.Tolerance = DefaultTolerance(f.Point)
	}
	// The errors around the reported (clamped) point.
	around := make([]float64, len(errs))
	for j, e := range errs {
		around[j] = e + point - f.Point
	}
	f.Confidence = calib(quantileWithin(around, f.Tolerance))
	return f, fcDist{errs: errs, w: 1}
}
