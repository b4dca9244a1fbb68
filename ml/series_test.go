package ml

import (
	"math"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

func TestDailySeriesKeepsLastOfEachDayAndGaps(t *testing.T) {
	t.Parallel()
	at := func(day, hour int) time.Time { return time.Date(2025, 7, day, hour, 0, 0, 0, time.UTC) }
	times := []time.Time{at(2, 9), at(1, 23), at(1, 5), at(4, 12), at(2, 1)}
	values := []float64{20, 11, 10, 40, 19}
	s, err := DailySeries(times, values)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		day string
		v   float64
	}{{"2025-07-01", 11}, {"2025-07-02", 20}, {"2025-07-04", 40}}
	if s.Len() != len(want) {
		t.Fatalf("DailySeries has %d days, want %d: %+v", s.Len(), len(want), s)
	}
	for i, w := range want {
		if s.Days[i].String() != w.day || s.Values[i] != w.v {
			t.Errorf("day %d = %s %v, want %s %v", i, s.Days[i], s.Values[i], w.day, w.v)
		}
	}
	if _, ok := s.ValueOn(obsqra.DateOf(at(3, 0))); ok {
		t.Error("a missing day has a value")
	}
	if got := s.Until(obsqra.DateOf(at(2, 0))); got.Len() != 2 {
		t.Errorf("Until(07-02) has %d days, want 2", got.Len())
	}
}

// TestSeriesUtilization: a utilisation, when given, has one entry per day
// within 0–1, and Until cuts it with the values.
func TestSeriesUtilization(t *testing.T) {
	s := Series{Days: []obsqra.Date{1, 2, 3}, Values: []float64{1, 2, 3}, Utilization: []float64{0, 0.5, 1}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := s.Until(2); len(w.Utilization) != 2 || w.Utilization[1] != 0.5 {
		t.Errorf("Until(2) has utilisations %v; want [0 0.5]", w.Utilization)
	}
	if w := (Series{Days: s.Days, Values: s.Values}).Until(2); w.Utilization != nil {
		t.Errorf("Until of a series without a utilisation has %v", w.Utilization)
	}
	for _, u := range [][]float64{{0, 0.5}, {0, 0.5, 1.0000001}, {-0.1, 0, 0}, {0, math.NaN(), 0}} {
		bad := Series{Days: s.Days, Values: s.Values, Utilization: u}
		if err := bad.Validate(); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("utilisations %v: %v; want EINVALID", u, err)
		}
	}
	if got := LendingUtilization(0.02, 0.05, 0.2); math.Abs(got-0.5) > 1e-15 {
		t.Errorf("LendingUtilization(2 %%, 5 %%, 0.2) = %v; want 0.5", got)
	}
	if got := LendingUtilization(0.02, 0, 0.2); got != 0 {
		t.Errorf("LendingUtilization with no borrow rate = %v; want 0", got)
	}
}
