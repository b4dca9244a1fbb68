package advisor_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store/storetest"
)

// checkBacktest fails unless rep is a backtest of ids over the window
// ending today, with scored forecasts and the four strategies.
func checkBacktest(t *testing.T, b *testBundle, what string, rep *obsqra.BacktestReport, ids []int64, horizon, window int) {
	t.Helper()
	today := b.Today()
	if !slices.Equal(rep.ProtocolIDs, ids) || rep.HorizonDays != horizon || rep.WindowDays != window ||
		rep.From != today-obsqra.Date(window-1) || rep.To != today {
		t.Errorf("%s = protocols %v, horizon %d, window %d, %s…%s; want %v, %d, %d, %s…%s", what,
			rep.ProtocolIDs, rep.HorizonDays, rep.WindowDays, rep.From, rep.To, ids, horizon, window, today-obsqra.Date(window-1), today)
	}
	if rep.Forecasts <= 0 || rep.MAE == nil || rep.Coverage80 == nil || rep.Coverage95 == nil || len(rep.Calibration) == 0 {
		t.Errorf("%s: %d forecasts, MAE %v, coverage %v/%v, %d calibration rows; want scored forecasts", what,
			rep.Forecasts, rep.MAE, rep.Coverage80, rep.Coverage95, len(rep.Calibration))
	}
	if rep.Coverage80 != nil && rep.Coverage95 != nil && *rep.Coverage80 > *rep.Coverage95 {
		t.Errorf("%s: coverage 80 %% %v above 95 %% %v", what, *rep.Coverage80, *rep.Coverage95)
	}
	checkCoverage(t, b, what, rep)
	n := 0
	for _, c := range rep.Calibration {
		n += c.Count
	}
	if n != rep.Forecasts {
		t.Errorf("%s: calibration counts %d forecasts, want %d", what, n, rep.Forecasts)
	}
	var names []string
	for _, s := range rep.Strategies {
		names = append(names, s.Strategy)
	}
	if len(names) != 4 || len(slices.Compact(slices.Sorted(slices.Values(names)))) != 4 {
		t.Errorf("%s: strategies %v, want four distinct ones", what, names)
	}
}

// checkCoverage fails unless rep's forecast count and coverage, overall and
// of the series that moved, are those of the walk-forward forecasts of its
// protocols' stored APYs, tallied here: a forecast of a series that moved
// is one whose series has two different values among the observed days of
// the 30 days up to and including its origin.
func checkCoverage(t *testing.T, b *testBundle, what string, rep *obsqra.BacktestReport) {
	t.Helper()
	hist, err := b.DB.DailySeries(context.Background(), rep.ProtocolIDs, 0, rep.To)
	if err != nil {
		t.Fatalf("DailySeries() = %v", err)
	}
	var n, in80, in95, moving, movingIn80, movingIn95 int
	for _, id := range rep.ProtocolIDs {
		pts := hist[id]
		series := ml.Series{Days: make([]obsqra.Date, len(pts)), Values: make([]float64, len(pts))}
		for i, pt := range pts {
			series.Days[i], series.Values[i] = pt.Day, float64(pt.ApyBps)
		}
		err := ml.WalkForward(series, rep.HorizonDays, 1, ml.ForecastOptions{NonNegative: true}, func(o ml.Outcome) {
			if !o.HasActual || o.Target < rep.From || o.Target > rep.To {
				return
			}
			lo, hi := math.MaxInt, math.MinInt
			for _, pt := range pts {
				if pt.Day > o.Origin-30 && pt.Day <= o.Origin {
					lo, hi = min(lo, pt.ApyBps), max(hi, pt.ApyBps)
				}
			}
			hit80 := o.Lower80 <= o.Actual && o.Actual <= o.Upper80
			hit95 := o.Lower95 <= o.Actual && o.Actual <= o.Upper95
			n++
			in80 += b2i(hit80)
			in95 += b2i(hit95)
			if lo < hi {
				moving++
				movingIn80 += b2i(hit80)
				movingIn95 += b2i(hit95)
			}
		})
		if err != nil {
			t.Fatalf("WalkForward(%d) = %v", id, err)
		}
	}
	share := func(k, n int) *float64 {
		if n == 0 {
			return nil
		}
		x := math.Round(float64(k)/float64(n)*1e4) / 1e4
		return &x
	}
	eq := func(got, want *float64) bool { return (got == nil) == (want == nil) && (got == nil || *got == *want) }
	if rep.Forecasts != n || !eq(rep.Coverage80, share(in80, n)) || !eq(rep.Coverage95, share(in95, n)) {
		t.Errorf("%s: %d forecasts, coverage %v/%v; want %d, %v/%v", what, rep.Forecasts,
			deref(rep.Coverage80), deref(rep.Coverage95), n, deref(share(in80, n)), deref(share(in95, n)))
	}
	if rep.MovingForecasts != moving || !eq(rep.MovingCoverage80, share(movingIn80, moving)) ||
		!eq(rep.MovingCoverage95, share(movingIn95, moving)) {
		t.Errorf("%s: %d moving forecasts, coverage %v/%v; want %d, %v/%v", what, rep.MovingForecasts,
			deref(rep.MovingCoverage80), deref(rep.MovingCoverage95), moving, deref(share(movingIn80, moving)), deref(share(movingIn95, moving)))
	}
}

// deref is *x, or nil for a nil x: a figure that may be absent, to print.
func deref(x *float64) any {
	if x == nil {
		return nil
	}
	return *x
}

// b2i is 1 for true and 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBacktest(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	b.feed(t, "vesu", b.Today()-shortDays+1, b.Today())
	_, err := s.Backtest(b.anon, nil, 7, nil)
	checkErr(t, "Backtest(every protocol, none with history)", err, obsqra.ENOTFOUND, "history")

	s, b = setupSeeded(t, nil)
	var ids []int64
	for _, slug := range seeded {
		ids = append(ids, b.ID(t, slug))
	}
	rep, err := s.Backtest(b.anon, seeded, 7, nil)
	if err != nil {
		t.Fatalf("Backtest(%v, 7) = %v", seeded, err)
	}
	checkBacktest(t, b, "Backtest(7)", rep, ids, 7, advisor.DefaultBacktestWindowDays)
	// Each protocol is forecast from every day its history allows whose
	// target falls in the window: 90 targets each at most.
	if rep.Forecasts > 3*advisor.DefaultBacktestWindowDays {
		t.Errorf("Backtest(7) scored %d forecasts, want at most %d", rep.Forecasts, 3*advisor.DefaultBacktestWindowDays)
	}
	if again, err := s.Backtest(b.anon, seeded, 7, nil); err != nil || !reflect.DeepEqual(again, rep) {
		t.Errorf("Backtest(7) again = %+v, %v, want %+v", again, err, rep)
	}
	rep, err = s.Backtest(b.ctx, []string{"zklend", "nostra"}, 14, ptr(60))
	if err != nil {
		t.Fatalf("Backtest(zklend, nostra, 14, 60) = %v", err)
	}
	checkBacktest(t, b, "Backtest(14, 60)", rep, []int64{b.ID(t, "zklend"), b.ID(t, "nostra")}, 14, 60)

	// Every enabled protocol: those without the history are left out.
	rep, err = s.Backtest(b.anon, nil, 7, nil)
	if err != nil {
		t.Fatalf("Backtest(every protocol) = %v", err)
	}
	bySlug := []int64{b.ID(t, "ekubo"), b.ID(t, "nostra"), b.ID(t, "zklend")}
	checkBacktest(t, b, "Backtest(every protocol)", rep, bySlug, 7, advisor.DefaultBacktestWindowDays)

	for _, tt := range []struct {
		name    string
		slugs   []string
		horizon int
		window  *int
		want    string
	}{
		{"horizon 0", seeded, 0, nil, "horizonDays"},
		{"horizon 366", seeded, 366, nil, "horizonDays"},
		{"window 0", seeded, 7, ptr(0), "windowDays"},
		{"window above BACKTEST_WINDOW_DAYS", seeded, 7, ptr(advisor.DefaultBacktestWindowDays + 1), "windowDays"},
		{"unknown protocol", []string{"nostra", "nope"}, 7, nil, "protocols[1]"},
		{"duplicate", []string{"nostra", "nostra"}, 7, nil, "protocols[1]"},
		{"no protocols", []string{}, 7, nil, "1 to 20"},
		{"too little history", []string{"nostra", "vesu"}, 7, nil, "protocols[1]: vesu has"},
	} {
		rep, err := s.Backtest(b.anon, tt.slugs, tt.horizon, tt.window)
		if rep != nil {
			t.Errorf("Backtest(%s) = %+v, want nil", tt.name, rep)
		}
		checkErr(t, "Backtest("+tt.name+")", err, obsqra.EINVALID, tt.want)
	}

	// BACKTEST_WINDOW_DAYS bounds and defaults the window.
	s30, err := advisor.New(b.DB, b.Market, b.Decisions, advisor.Config{BacktestWindowDays: 30, Now: b.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s30.Backtest(b.anon, seeded, 7, ptr(31))
	checkErr(t, "Backtest(window 31 > 30)", err, obsqra.EINVALID, "windowDays", "30")
	rep, err = s30.Backtest(b.anon, seeded, 7, nil)
	if err != nil {
		t.Fatalf("Backtest(BACKTEST_WINDOW_DAYS 30) = %v", err)
	}
	checkBacktest(t, b, "Backtest(window 30)", rep, ids, 7, 30)
}

// TestBacktestMovingCoverage: the moving forecasts of a backtest are those
// of series that moved in the 30 days up to and including their origin. A
// rate that sat still has none (and no moving coverage); once it moves,
// the forecasts from its first moved day on count.
func TestBacktestMovingCoverage(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	id := b.ID(t, "jediswap")
	flat := func(obsqra.Date) (int, int, string) { return 500, 3000, "5000000" }
	b.Feed(t, "jediswap", b.Today()-historyDays+1, b.Today(), flat)
	rep, err := s.Backtest(b.anon, []string{"jediswap"}, 7, ptr(30))
	if err != nil {
		t.Fatalf("Backtest(flat jediswap, 7, 30) = %v", err)
	}
	if rep.Forecasts != 30 || rep.Coverage80 == nil || rep.Coverage95 == nil ||
		rep.MovingForecasts != 0 || rep.MovingCoverage80 != nil || rep.MovingCoverage95 != nil {
		t.Errorf("Backtest(flat jediswap, 7, 30) = %d forecasts, coverage %v/%v, %d moving, coverage %v/%v; "+
			"want 30 forecasts with coverage, none moving and no moving coverage", rep.Forecasts, deref(rep.Coverage80), deref(rep.Coverage95),
			rep.MovingForecasts, deref(rep.MovingCoverage80), deref(rep.MovingCoverage95))
	}
	checkCoverage(t, b, "Backtest(flat jediswap, 7, 30)", rep)

	// 20 days on, the rate moves every day (never back to 500): of the 60
	// targets of the window, those of origins from the first moving day
	// (today-19) to today-7 are the 13 moving forecasts.
	flatUntil := b.Today()
	b.Clock.AddDays(20)
	moves := func(d obsqra.Date) (int, int, string) { return 700 + 40*(int(d)%3), 3000, "5000000" }
	b.Feed(t, "jediswap", flatUntil+1, b.Today(), moves)
	rep, err = s.Backtest(b.anon, []string{"jediswap"}, 7, ptr(60))
	if err != nil {
		t.Fatalf("Backtest(jediswap moving, 7, 60) = %v", err)
	}
	if !slices.Equal(rep.ProtocolIDs, []int64{id}) || rep.Forecasts != 60 || rep.MovingForecasts != 13 ||
		rep.MovingCoverage80 == nil || rep.MovingCoverage95 == nil || *rep.MovingCoverage80 > *rep.MovingCoverage95 {
		t.Errorf("Backtest(jediswap moving, 7, 60) = protocols %v, %d forecasts, %d moving, coverage %v/%v; "+
			"want [%d], 60, 13 with coverage", rep.ProtocolIDs, rep.Forecasts, rep.MovingForecasts,
			deref(rep.MovingCoverage80), deref(rep.MovingCoverage95), id)
	}
	checkCoverage(t, b, "Backtest(jediswap moving, 7, 60)", rep)
}
