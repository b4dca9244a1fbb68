package advisor

import (
	"testing"

	"github.com/obsqra/obsqra"
)

// TestYieldSeries: the utilisation goes to the model beside the APYs only
// when every point reports one; a 0 (a DEX pool, DefiLlama's daily chart)
// anywhere in the window leaves the series without it.
func TestYieldSeries(t *testing.T) {
	days := []obsqra.Date{1, 2, 3}
	points := []obsqra.DailyPoint{
		{Day: 1, ApyBps: 300, UtilizationBps: 5000},
		{Day: 2, ApyBps: 310, UtilizationBps: 10_000},
		{Day: 3, ApyBps: 320, UtilizationBps: 8000},
	}
	s := yieldSeries(days, points)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.5, 1, 0.8}; len(s.Utilization) != 3 || s.Utilization[0] != want[0] || s.Utilization[1] != want[1] || s.Utilization[2] != want[2] || s.Values[2] != 320 {
		t.Errorf("series %+v; want the APYs with utilisations %v", s, want)
	}
	points[1].UtilizationBps = 0
	if s := yieldSeries(days, points); s.Utilization != nil || s.Values[1] != 310 {
		t.Errorf("series %+v; want the APYs without a utilisation", s)
	}
}
