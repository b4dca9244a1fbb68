package ml

import (
	"sort"
	"time"

	"github.com/obsqra/obsqra"
)

// Series is a daily series: Values[i] was observed on Days[i]. Days are
// strictly increasing; a day with no observation is simply absent (never
// filled in), so consecutive entries may be more than one day apart.
//
// Utilization, when not nil, is the lending reserve's utilisation (0–1:
// borrowed over supplied) observed with each value; the global model reads
// it (see FitGlobal) and the other models ignore it. Without it the global
// model forecasts from the values alone.
type Series struct {
	Days        []obsqra.Date
	Values      []float64
	Utilization []float64
}

// LendingUtilization estimates a lending reserve's utilisation (0–1) from
// its rates, for a reserve without stable debt: supplyRate / (borrowRate ×
// (1 − reserveFactor)), as a supplier earns the borrowers' interest net of
// the reserve factor, spread over all that is supplied. It is 0 when
// nothing is borrowed and is clamped to 0–1.
func LendingUtilization(supplyRate, borrowRate, reserveFactor float64) float64 {
	d := borrowRate * (1 - reserveFactor)
	if !(d > 0) || !(supplyRate > 0) {
		return 0
	}
	return min(supplyRate/d, 1)
}

// Len returns the number of observed days.
func (s Series) Len() int { return len(s.Days) }

// Validate checks that s is well formed: equal lengths, strictly increasing
// days, finite values and utilisations within 0–1.
func (s Series) Validate() error {
	if len(s.Days) != len(s.Values) {
		return obsqra.Errorf(obsqra.EINVALID, "series has %d days but %d values", len(s.Days), len(s.Values))
	}
	if s.Utilization != nil && len(s.Utilization) != len(s.Days) {
		return obsqra.Errorf(obsqra.EINVALID, "series has %d days but %d utilisations", len(s.Days), len(s.Utilization))
	}
	for i, u := range s.Utilization {
		if !(u >= 0 && u <= 1) {
			return obsqra.Errorf(obsqra.EINVALID, "series utilisation on %s is not a number within 0–1", s.Days[i])
		}
	}
	for i, v := range s.Values {
		if !finite(v) {
			return obsqra.Errorf(obsqra.EINVALID, "series value on %s is not a finite number", s.Days[i])
		}
		if i > 0 && s.Days[i] <= s.Days[i-1] {
			return obsqra.Errorf(obsqra.EINVALID, "series days are not strictly increasing at %s", s.Days[i])
		}
	}
	return nil
}

// Until returns the prefix of s observed on or before day d. It shares
// memory with s.
func (s Series) Until(d obsqra.Date) Series {
	n := sort.Search(len(s.Days), func(i int) bool { return s.Days[i] > d })
	w := Series{Days: s.Days[:n:n], Values: s.Values[:n:n]}
	if s.Utilization != nil {
		w.Utilization = s.Utilization[:n:n]
	}
	return w
}

// ValueOn returns the value observed on day d, if any.
func (s Series) ValueOn(d obsqra.Date) (float64, bool) {
	i := sort.Search(len(s.Days), func(i int) bool { return s.Days[i] >= d })
	if i < len(s.Days) && s.Days[i] == d {
		return s.Values[i], true
	}
	return 0, false
}

// DailySeries turns timestamped observations into a daily series: the last
// observation of each UTC day (by time; among equal times, the later in the
// input). Days without an observation stay missing.
func DailySeries(times []time.Time, values []float64) (Series, error) {
	if len(times) != len(values) {
		return Series{}, obsqra.Errorf(obsqra.EINVALID, "%d times but %d values", len(times), len(values))
	}
	idx := make([]int, len(times))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return times[idx[a]].Before(times[idx[b]]) })
	var s Series
	for _, i := range idx {
		v := values[i]
		if !finite(v) {
			return Series{}, obsqra.Errorf(obsqra.EINVALID, "value at %s is not a finite number", times[i].UTC().Format(time.RFC3339))
		}
		d := obsqra.DateOf(times[i])
		if n := len(s.Days); n > 0 && s.Days[n-1] == d {
			s.Values[n-1] = v
			continue
		}
		s.Days = append(s.Days, d)
		s.Values = append(s.Values, v)
	}
	return s, nil
}
