package ml

import (
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
