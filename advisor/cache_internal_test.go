package advisor

import (
	"context"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestForecastCache checks that a forecast is computed once per distinct
// inputs: a second request with the same history is served from the cache
// (a marked entry comes back), and new data is computed afresh.
func TestForecastCache(t *testing.T) {
	t.Parallel()
	env := advisortest.New(t, storetest.SQLite(t), time.Date(2025, 6, 30, 18, 0, 0, 0, time.UTC))
	today := env.Today()
	env.Feed(t, "zklend", today-59, today, func(d obsqra.Date) (int, int, string) {
		return 800 + int(d)%5*10, 7000, "20000000"
	})
	s, err := New(env.DB, env.Market, env.Decisions, Config{Now: env.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := env.Protocols["zklend"]
	ctx := context.Background()
	forecast := func(kind obsqra.PredictionKind) obsqra.Forecast {
		t.Helper()
		got, err := s.Forecasts(ctx, kind, []*obsqra.Protocol{&p}, nil)
		if err != nil || got[p.ID].Forecast == nil {
			t.Fatalf("Forecasts(%s) = %+v, %v", kind, got[p.ID], err)
		}
		return *got[p.ID].Forecast
	}
	yield, risk := forecast(obsqra.PredictionYieldForecast), forecast(obsqra.PredictionRiskForecast)
	if n := len(s.forecasts); n != 2 {
		t.Fatalf("cache holds %d forecasts, want 2", n)
	}
	// Mark the cached entries: a cache hit returns the mark.
	for _, f := range []obsqra.Forecast{yield, risk} {
		marked := s.forecasts[f.InputsDigest]
		marked.Model = "marked"
		s.forecasts[f.InputsDigest] = marked
	}
	if got := forecast(obsqra.PredictionYieldForecast); got.Model != "marked" || got.InputsDigest != yield.InputsDigest {
		t.Errorf("Forecasts(yield) again = model %q, digest %s, want the cached (marked) %s", got.Model, got.InputsDigest, yield.InputsDigest)
	}
	if got := forecast(obsqra.PredictionRiskForecast); got.Model != "marked" {
		t.Errorf("Forecasts(risk) again = model %q, want the cached (marked) one", got.Model)
	}
	if n := len(s.forecasts); n != 2 {
		t.Errorf("cache holds %d forecasts after hits, want 2", n)
	}

	in := advisortest.Sample("zklend", today, 1200, 7000, "20000000")
	in.ObservedAt = in.ObservedAt.Add(time.Hour)
	env.Ingest(t, in)
	got := forecast(obsqra.PredictionYieldForecast)
	if got.Model == "marked" || got.InputsDigest == yield.InputsDigest || got.Last != 1200 {
		t.Errorf("Forecasts(yield) after new data = model %q, digest %s, last %v; want a fresh forecast with last 1200", got.Model, got.InputsDigest, got.Last)
	}
	if n := len(s.forecasts); n != 3 {
		t.Errorf("cache holds %d forecasts, want 3", n)
	}
}
