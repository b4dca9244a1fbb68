package ml

import (
	"sort"
	"time"

	"github.com/obsqra/obsqra"
)

// Series is a daily series: Values[i] was observed on Days[i]. Days are
// strictly increasing; a day with no observation is simply absent (never
// filled in), so consecutive entries may be more than one day apart.
type Series struct {
	Days   []obsqra.Date
	Values []float64
}

// Len returns the number of observed days.
func (s Series) Len() int { return len(s.Days) }

// Validate checks that s is well formed: equal lengths, strictly increasing
// days and finite values.
func (s Series) Validate() error {
	if len(s.Days) != len(s.Values) {
		return obsqra.Errorf(obsqra.EINVALID, "series has %d days but %d values", len(s.Days), len(s.Values))
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
	return Series{Days: s.Days[:n:n], Values: s.Values[:n:n]}
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
