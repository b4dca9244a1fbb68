package ml

import (
	"testing"
	"time"
)

func TestDayOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "1970-01-01"},
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), "1969-12-31"},
		{time.Date(2025, 7, 22, 23, 59, 59, 999, time.UTC), "2025-07-22"},
		{time.Date(2025, 7, 23, 1, 0, 0, 0, time.FixedZone("x", 3*3600)), "2025-07-22"},
	}
	for _, tt := range tests {
		if got := DayOf(tt.in).String(); got != tt.want {
			t.Errorf("DayOf(%v) = %s, want %s", tt.in, got, tt.want)
		}
		d, err := ParseDay(tt.want)
		if err != nil || d != DayOf(tt.in) {
			t.Errorf("ParseDay(%s) = %v, %v; want %v", tt.want, d, err, DayOf(tt.in))
		}
	}
	if _, err := ParseDay("2025-13-01"); err == nil {
		t.Error("ParseDay accepted month 13")
	}
}

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
	if _, ok := s.ValueOn(DayOf(at(3, 0))); ok {
		t.Error("a missing day has a value")
	}
	if got := s.Until(DayOf(at(2, 0))); got.Len() != 2 {
		t.Errorf("Until(07-02) has %d days, want 2", got.Len())
	}
}
