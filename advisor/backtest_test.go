package advisor_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
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
