package ml

import (
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/obsqra/obsqra"
)

// Outcome is one walk-forward forecast and what became of it.
type Outcome struct {
	Forecast
	// Last is the value on the last observed day up to Origin: the naive
	// forecast the method has to beat.
	Last float64
	// Actual is the value observed on Target; it is meaningful only when
	// HasActual is true (the target day may be missing or in the future).
	Actual    float64
	HasActual bool
	// Moved reports whether the series moved before the origin: its
	// values on the observed days of the MovedWindow days up to and
	// including Origin are not all equal. A rate that sat still is
	// forecast easily, and covered by nearly any interval; figures over
	// the forecasts of moving series say how the method does where it
	// matters.
	Moved bool
}

// MovedWindow is the number of days up to and including an origin over
// which Outcome.Moved looks.
const MovedWindow = 30

// MovedBy reports whether s moved before origin, as Outcome.Moved says:
// its values on the observed days of the MovedWindow days up to and
// including origin are not all equal. Days after origin are not looked
// at; a series with fewer than two observed days in the window has not
// moved. The advisor records it with each forecast it makes.
func (s Series) MovedBy(origin obsqra.Date) bool {
	i := sort.Search(len(s.Days), func(i int) bool { return s.Days[i] > origin }) - 1
	if i < 0 {
		return false
	}
	return s.movedUpTo(i, origin)
}

// movedUpTo is MovedBy for i, the index of the last observed day up to
// origin.
func (s Series) movedUpTo(i int, origin obsqra.Date) bool {
	for j := i - 1; j >= 0 && s.Days[j] > origin-MovedWindow; j-- {
		if s.Values[j] != s.Values[i] {
			return true
		}
	}
	return false
}

// Hit reports whether the realised value fell within Tolerance of Point,
// the event Confidence is the probability of.
func (o Outcome) Hit() bool { return math.Abs(o.Actual-o.Point) <= o.Tolerance }

// WalkForward forecasts s horizon days ahead from every every-th eligible
// origin, oldest first, and calls fn with each forecast. The eligible
// origins are the observed days from the MinObservations-th on (the 30th by
// default); each forecast uses only the data up to its origin, exactly as
// ForecastSeries would. fn receives every forecast, including those whose
// target day is unobserved or beyond the data (HasActual false).
//
// WalkForward keeps no state between calls and does not modify s, so it may
// run concurrently on different series (or the same one).
//
// Errors: EINVALID for every < 1 and the errors of ForecastSeries, except
// that a series too short for any forecast is not an error: fn is simply
// never called.
func WalkForward(s Series, horizon, every int, opts ForecastOptions, fn func(Outcome)) error {
	if every < 1 {
		return obsqra.Errorf(obsqra.EINVALID, "every %d is not a positive number of origins", every)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := fcCheckOptions(horizon, &opts); err != nil {
		return err
	}
	for i := opts.MinObservations - 1; i < s.Len(); i += every {
		origin := s.Days[i]
		f, err := ForecastSeries(s, origin, horizon, opts)
		if err != nil {
			return err
		}
		o := Outcome{Forecast: f, Last: s.Values[i], Moved: s.movedUpTo(i, origin)}
		o.Actual, o.HasActual = s.ValueOn(f.Target)
		fn(o)
	}
	return nil
}

// Accuracy summarises walk-forward forecasts at one horizon, pooled over
// all forecasts of all series.
type Accuracy struct {
	Horizon   int
	Series    int // series with at least one scored forecast
	Forecasts int // forecasts whose target day was observed

	MAE      float64 // mean absolute error
	RMSE     float64 // root mean squared error
	MAENaive float64 // mean absolute error of the naive forecast (the value at the origin)
	// RelativeMAE is MAE / MAENaive: below 1 the method beats the naive
	// forecast. It is NaN when the naive forecast made no error at all.
	RelativeMAE float64
	Coverage80  float64 // fraction of actual values inside the 80 % interval
	Coverage95  float64 // fraction of actual values inside the 95 % interval

	// MovingForecasts counts the scored forecasts of series that moved
	// before their origin (Outcome.Moved), and MovingCoverage80 and
	// MovingCoverage95 are the coverage of those alone (NaN without any).
	MovingForecasts                    int
	MovingCoverage80, MovingCoverage95 float64

	// Calibration is the calibration table of Confidence by decile (see
	// Calibration), and CalibrationGap the largest difference between
	// MeanConfidence and HitRate over its deciles holding at least
	// CalibrationMinForecasts forecasts (NaN when none does).
	Calibration    []CalibrationBin
	CalibrationGap float64
}

// CalibrationMinForecasts is the fewest forecasts a decile of confidence
// needs to count in Accuracy.CalibrationGap: with fewer, the hit rate's
// standard error is 5 points or more, and a gap says little.
const CalibrationMinForecasts = 100

// fcTally accumulates outcomes.
type fcTally struct {
	n                       int
	absErr, sqErr, absNaive float64
	in80, in95              int
	// moving counts the outcomes of series that moved, movingIn80 and
	// movingIn95 those of them inside their intervals.
	moving, movingIn80, movingIn95 int
	// deciles of Confidence: forecasts, the sum of their confidence, hits.
	decN, decHits [10]int
	decConf       [10]float64
}

func (t *fcTally) add(o Outcome) {
	if !o.HasActual {
		return
	}
	e := o.Actual - o.Point
	t.n++
	t.absErr += math.Abs(e)
	t.sqErr += e * e
	t.absNaive += math.Abs(o.Actual - o.Last)
	in80 := o.Lower80 <= o.Actual && o.Actual <= o.Upper80
	in95 := o.Lower95 <= o.Actual && o.Actual <= o.Upper95
	if in80 {
		t.in80++
	}
	if in95 {
		t.in95++
	}
	if !math.IsNaN(o.Confidence) {
		d := min(max(int(o.Confidence*10), 0), 9)
		t.decN[d]++
		t.decConf[d] += o.Confidence
		if o.Hit() {
			t.decHits[d]++
		}
	}
	if o.Moved {
		t.moving++
		if in80 {
			t.movingIn80++
		}
		if in95 {
			t.movingIn95++
		}
	}
}

// EvaluateForecasts runs WalkForward on each series at horizon and every,
// and returns the pooled accuracy. The series are processed concurrently on
// up to GOMAXPROCS goroutines; the totals are added in series order, so the
// result does not depend on scheduling.
//
// Errors: those of WalkForward, for the first series (in order) that fails.
func EvaluateForecasts(series []Series, horizon, every int, opts ForecastOptions) (Accuracy, error) {
	if every < 1 {
		return Accuracy{}, obsqra.Errorf(obsqra.EINVALID, "every %d is not a positive number of origins", every)
	}
	if _, err := fcCheckOptions(horizon, &opts); err != nil {
		return Accuracy{}, err
	}
	total, withForecasts, err := tallyForecasts(series, horizon, every, opts)
	if err != nil {
		return Accuracy{}, err
	}
	return total.accuracy(horizon, withForecasts), nil
}

// tallyForecasts runs WalkForward on each series concurrently and returns
// the outcomes tallied in series order, and how many series had any.
// Errors: that of the first series (in order) that fails.
func tallyForecasts(series []Series, horizon, every int, opts ForecastOptions) (fcTally, int, error) {
	tallies := make([]fcTally, len(series))
	errs := make([]error, len(series))
	parallelEach(len(series), func(i int) {
		errs[i] = WalkForward(series[i], horizon, every, opts, tallies[i].add)
	})
	var total fcTally
	withForecasts := 0
	for i, t := range tallies {
		if errs[i] != nil {
			return fcTally{}, 0, errs[i]
		}
		if t.n > 0 {
			withForecasts++
		}
		total.merge(t)
	}
	return total, withForecasts, nil
}

// parallelEach calls fn(0) … fn(n−1) on up to GOMAXPROCS goroutines and
// returns when all have returned.
func parallelEach(n int, fn func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// LeaveOneGroupOut scores the global model on data it was not fitted on:
// for each group of series (a network's reserves, say), it fits the model
// at horizon on the other groups' series (FitGlobal), then walks forward
// over the group's series with those parameters, every every-th origin. It
// returns the accuracy pooled over all groups and that of each group, in
// order. opts.Model and opts.Global are ignored.
//
// Errors: those of FitGlobal (fewer than 200 training forecasts, say) and
// of WalkForward.
func LeaveOneGroupOut(groups [][]Series, horizon, every int, opts ForecastOptions) (Accuracy, []Accuracy, error) {
	if every < 1 {
		return Accuracy{}, nil, obsqra.Errorf(obsqra.EINVALID, "every %d is not a positive number of origins", every)
	}
	if _, err := fcCheckOptions(horizon, &opts); err != nil {
		return Accuracy{}, nil, err
	}
	var total fcTally
	totalSeries := 0
	per := make([]Accuracy, len(groups))
	for g, group := range groups {
		train := slices.Concat(groups[:g], groups[g+1:])
		p, err := FitGlobal(train, []int{horizon})
		if err != nil {
			return Accuracy{}, nil, err
		}
		o := opts
		o.Model, o.Global = "global", &p
		t, withForecasts, err := tallyForecasts(group, horizon, every, o)
		if err != nil {
			return Accuracy{}, nil, err
		}
		per[g] = t.accuracy(horizon, withForecasts)
		total.merge(t)
		totalSeries += withForecasts
	}
	return total.accuracy(horizon, totalSeries), per, nil
}

// merge adds the outcomes counted in u to t.
func (t *fcTally) merge(u fcTally) {
	t.n += u.n
	t.absErr += u.absErr
	t.sqErr += u.sqErr
	t.absNaive += u.absNaive
	t.in80 += u.in80
	t.in95 += u.in95
	t.moving += u.moving
	t.movingIn80 += u.movingIn80
	t.movingIn95 += u.movingIn95
	for d := range t.decN {
		t.decN[d] += u.decN[d]
		t.decHits[d] += u.decHits[d]
		t.decConf[d] += u.decConf[d]
	}
}

// accuracy returns the figures of the outcomes counted in t: forecasts
// at horizon, from series series that had any.
func (t fcTally) accuracy(horizon, series int) Accuracy {
	a := Accuracy{Horizon: horizon, Series: series, Forecasts: t.n, MovingForecasts: t.moving,
		MovingCoverage80: math.NaN(), MovingCoverage95: math.NaN(), CalibrationGap: math.NaN()}
	a.Calibration = make([]CalibrationBin, len(t.decN))
	for d := range t.decN {
		b := &a.Calibration[d]
		b.Lo, b.Hi = float64(d)/10, float64(d+1)/10
		b.Forecasts = t.decN[d]
		b.MeanConfidence, b.HitRate = math.NaN(), math.NaN()
		if n := float64(t.decN[d]); n > 0 {
			b.MeanConfidence = t.decConf[d] / n
			b.HitRate = float64(t.decHits[d]) / n
			if gap := math.Abs(b.MeanConfidence - b.HitRate); t.decN[d] >= CalibrationMinForecasts && !(gap <= a.CalibrationGap) {
				a.CalibrationGap = gap
			}
		}
	}
	if t.moving > 0 {
		a.MovingCoverage80 = float64(t.movingIn80) / float64(t.moving)
		a.MovingCoverage95 = float64(t.movingIn95) / float64(t.moving)
	}
	if t.n == 0 {
		a.MAE, a.RMSE, a.MAENaive, a.RelativeMAE = math.NaN(), math.NaN(), math.NaN(), math.NaN()
		a.Coverage80, a.Coverage95 = math.NaN(), math.NaN()
		return a
	}
	n := float64(t.n)
	a.MAE = t.absErr / n
	a.RMSE = math.Sqrt(t.sqErr / n)
	a.MAENaive = t.absNaive / n
	a.RelativeMAE = math.NaN()
	if t.absNaive > 0 {
		a.RelativeMAE = t.absErr / t.absNaive
	}
	a.Coverage80 = float64(t.in80) / n
	a.Coverage95 = float64(t.in95) / n
	return a
}

// CalibrationBin is one row of a calibration table: the forecasts whose
// Confidence fell in [Lo, Hi), how confident they were on average and how
// often they hit (see Outcome.Hit).
type CalibrationBin struct {
	Lo, Hi         float64
	Forecasts      int
	MeanConfidence float64
	HitRate        float64
}

// Calibration sorts the outcomes with an actual value into bins equal-width
// bins of Confidence (the last bin includes 1) and returns the table. For
// calibrated confidence, MeanConfidence and HitRate agree in every bin with
// enough forecasts. Empty bins are included with NaN rates.
func Calibration(outcomes []Outcome, bins int) []CalibrationBin {
	if bins < 1 {
		bins = 1
	}
	t := make([]CalibrationBin, bins)
	hits := make([]int, bins)
	for i := range t {
		t[i].Lo = float64(i) / float64(bins)
		t[i].Hi = float64(i+1) / float64(bins)
	}
	for _, o := range outcomes {
		if !o.HasActual || math.IsNaN(o.Confidence) {
			continue
		}
		i := min(max(int(o.Confidence*float64(bins)), 0), bins-1)
		t[i].Forecasts++
		t[i].MeanConfidence += o.Confidence
		if o.Hit() {
			hits[i]++
		}
	}
	for i := range t {
		if n := float64(t[i].Forecasts); n > 0 {
			t[i].MeanConfidence /= n
			t[i].HitRate = float64(hits[i]) / n
		} else {
			t[i].MeanConfidence, t[i].HitRate = math.NaN(), math.NaN()
		}
	}
	return t
}
