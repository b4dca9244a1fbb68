package advisor_test

import (
	"context"
	"encoding/hex"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	decisions, err := decision.New(db, advisortest.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := advisor.New(db, nil, nil, advisor.Config{}); err == nil {
		t.Error("New(no decision log) = nil error, want one")
	}
	tests := []struct {
		name string
		cfg  advisor.Config
		want string // "" for valid
	}{
		{"defaults", advisor.Config{}, ""},
		{"horizon 365", advisor.Config{HorizonDays: 365}, ""},
		{"horizon 366", advisor.Config{HorizonDays: 366}, "prediction window"},
		{"negative horizon", advisor.Config{HorizonDays: -1}, "prediction window"},
		{"history 29", advisor.Config{HistoryDays: 29}, "forecast history"},
		{"history 3651", advisor.Config{HistoryDays: 3651}, "forecast history"},
		{"backtest window -1", advisor.Config{BacktestWindowDays: -1}, "backtest window"},
		{"negative gas", advisor.Config{GasUsdPerMove: -0.01}, "gas cost"},
		{"NaN gas", advisor.Config{GasUsdPerMove: math.NaN()}, "gas cost"},
		{"infinite gas", advisor.Config{GasUsdPerMove: math.Inf(1)}, "gas cost"},
		{"negative slippage", advisor.Config{SlippageBps: -1}, "slippage"},
		{"NaN slippage", advisor.Config{SlippageBps: math.NaN()}, "slippage"},
		{"slippage 10001", advisor.Config{SlippageBps: 10001}, "slippage"},
	}
	for _, tt := range tests {
		s, err := advisor.New(db, nil, decisions, tt.cfg)
		if tt.want == "" {
			if err != nil {
				t.Errorf("New(%s) = %v, want a service", tt.name, err)
			}
			continue
		}
		if s != nil {
			t.Errorf("New(%s) returned a service, want none", tt.name)
		}
		checkErr(t, "New("+tt.name+")", err, obsqra.EINVALID, tt.want)
	}
	s, err := advisor.New(db, nil, decisions, advisor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.HorizonDays(); got != advisor.DefaultHorizonDays {
		t.Errorf("HorizonDays() = %d, want %d", got, advisor.DefaultHorizonDays)
	}
}

// checkForecast fails unless f is a forecast of kind for slug made today
// at horizon from the seeded history.
func checkForecast(t *testing.T, b *testBundle, f *obsqra.Forecast, kind obsqra.PredictionKind, slug string, horizon int) {
	t.Helper()
	today := b.Today()
	id := b.ID(t, slug)
	if f.Kind != kind || f.ProtocolID != id || f.HorizonDays != horizon {
		t.Errorf("%s of %s = kind %s, protocol %d, horizon %d, want %s, %d, %d", kind, slug, f.Kind, f.ProtocolID, f.HorizonDays, kind, id, horizon)
	}
	if f.Target != today+obsqra.Date(horizon) {
		t.Errorf("%s of %s: Target = %s, want today+%d = %s", kind, slug, f.Target, horizon, today+obsqra.Date(horizon))
	}
	if want := today - historyDays + 1; f.WindowStart != want || f.WindowEnd != today {
		t.Errorf("%s of %s: window = %s…%s, want %s…%s", kind, slug, f.WindowStart, f.WindowEnd, want, today)
	}
	if f.ModelVersion != advisor.ModelVersion || f.Model == "" {
		t.Errorf("%s of %s: model %q version %q, want a model and version %q", kind, slug, f.Model, f.ModelVersion, advisor.ModelVersion)
	}
	if b, err := hex.DecodeString(f.InputsDigest); err != nil || len(b) != 32 {
		t.Errorf("%s of %s: InputsDigest = %q, want hex SHA-256", kind, slug, f.InputsDigest)
	}
	if !(f.Lower95 <= f.Lower80 && f.Lower80 <= f.Upper80 && f.Upper80 <= f.Upper95 && f.Lower95 <= f.Point && f.Point <= f.Upper95) {
		t.Errorf("%s of %s: point %v, 80 %% [%v, %v], 95 %% [%v, %v]: intervals out of order", kind, slug, f.Point, f.Lower80, f.Upper80, f.Lower95, f.Upper95)
	}
	if !(f.Confidence >= 0 && f.Confidence <= 1) || !(f.Tolerance > 0) {
		t.Errorf("%s of %s: Confidence = %v, Tolerance = %v, want a probability and a positive tolerance", kind, slug, f.Confidence, f.Tolerance)
	}
	// The point lies within what the history did (the forecasts are
	// medians and last values of it).
	lo, hi := math.Inf(1), math.Inf(-1)
	var last float64
	for d := today - historyDays + 1; d <= today; d++ {
		v := float64(apy(slug, d))
		if kind == obsqra.PredictionRiskForecast {
			v = float64(b.risk[slug][d])
		}
		lo, hi, last = min(lo, v), max(hi, v), v
	}
	if f.Point < lo || f.Point > hi {
		t.Errorf("%s of %s: Point = %v, want within the history's %v…%v", kind, slug, f.Point, lo, hi)
	}
	if f.Last != last {
		t.Errorf("%s of %s: Last = %v, want today's %v", kind, slug, f.Last, last)
	}
}

func TestForecasts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setupSeeded(t, db)
		ps := b.protocols(t, "nostra", "zklend", "ekubo", "vesu", "jediswap")
		for _, kind := range []obsqra.PredictionKind{obsqra.PredictionYieldForecast, obsqra.PredictionRiskForecast} {
			got, err := s.Forecasts(b.anon, kind, ps, nil)
			if err != nil {
				t.Fatalf("Forecasts(%s) = %v", kind, err)
			}
			if len(got) != len(ps) {
				t.Errorf("Forecasts(%s) has %d results, want %d", kind, len(got), len(ps))
			}
			for _, slug := range seeded {
				r := got[b.ID(t, slug)]
				if r.Err != nil || r.Forecast == nil {
					t.Errorf("Forecasts(%s)[%s] = %v, want a forecast", kind, slug, r.Err)
					continue
				}
				checkForecast(t, b, r.Forecast, kind, slug, advisor.DefaultHorizonDays)
			}
			// The calm and middle markets' risk inputs hold still, so
			// their risk is forecast to stay where it is.
			if kind == obsqra.PredictionRiskForecast {
				for _, slug := range []string{"nostra", "ekubo"} {
					if f := got[b.ID(t, slug)].Forecast; f != nil && f.Point != f.Last {
						t.Errorf("risk forecast of %s = %v, want today's %v", slug, f.Point, f.Last)
					}
				}
			}
			for _, slug := range []string{"vesu", "jediswap"} {
				r := got[b.ID(t, slug)]
				if r.Forecast != nil {
					t.Errorf("Forecasts(%s)[%s] = %+v, want none", kind, slug, r.Forecast)
				}
				checkErr(t, "Forecasts("+string(kind)+")["+slug+"]", r.Err, obsqra.ENOTFOUND, slug, "a forecast needs 30")
			}
		}
		// The risk forecast's history is the same as the yield's, but
		// the two are told apart.
		y, _ := s.Forecasts(b.anon, obsqra.PredictionYieldForecast, ps[:1], nil)
		r, _ := s.Forecasts(b.anon, obsqra.PredictionRiskForecast, ps[:1], nil)
		if y[ps[0].ID].Forecast.InputsDigest == r[ps[0].ID].Forecast.InputsDigest {
			t.Errorf("yield and risk forecasts of nostra share InputsDigest %s", r[ps[0].ID].Forecast.InputsDigest)
		}
	})
}

func TestForecastsHorizon(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	ps := b.protocols(t, "zklend")
	for _, h := range []int{0, -1, 366} {
		got, err := s.Forecasts(b.anon, obsqra.PredictionYieldForecast, ps, &h)
		if got != nil {
			t.Errorf("Forecasts(horizon %d) = %v, want nil", h, got)
		}
		checkErr(t, "Forecasts(horizon)", err, obsqra.EINVALID, "horizonDays", "365")
	}
	for _, h := range []int{1, 30, 365} {
		for _, kind := range []obsqra.PredictionKind{obsqra.PredictionYieldForecast, obsqra.PredictionRiskForecast} {
			got, err := s.Forecasts(b.anon, kind, ps, &h)
			if err != nil || got[ps[0].ID].Forecast == nil {
				t.Fatalf("Forecasts(%s, horizon %d) = %v, %v", kind, h, got, err)
			}
			checkForecast(t, b, got[ps[0].ID].Forecast, kind, "zklend", h)
		}
	}
	_, err := s.Forecasts(b.anon, obsqra.PredictionRebalanceSuggestion, ps, nil)
	checkErr(t, "Forecasts(REBALANCE_SUGGESTION)", err, obsqra.EINVALID, "not a forecast kind")
	_, err = s.Forecasts(b.anon, "BOGUS", ps, nil)
	checkErr(t, "Forecasts(BOGUS)", err, obsqra.EINVALID)

	// The configured horizon is the default.
	s7, _ := advisor.New(b.DB, b.Market, b.Decisions, advisor.Config{HorizonDays: 14, Now: b.Clock.Now})
	got, err := s7.Forecasts(b.anon, obsqra.PredictionYieldForecast, ps, nil)
	if err != nil || got[ps[0].ID].Forecast == nil {
		t.Fatalf("Forecasts(default horizon 14) = %v, %v", got, err)
	}
	checkForecast(t, b, got[ps[0].ID].Forecast, obsqra.PredictionYieldForecast, "zklend", 14)
}

func TestForecastsNeedThirtyDays(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	today := b.Today()
	ps := b.protocols(t, "vesu")
	forecast := func() forecastOutcome {
		got, err := s.Forecasts(b.anon, obsqra.PredictionYieldForecast, ps, nil)
		if err != nil {
			t.Fatalf("Forecasts(vesu) = %v", err)
		}
		return forecastOutcome(got[ps[0].ID])
	}
	b.feed(t, "vesu", today-28, today)
	checkErr(t, "Forecasts(vesu with 29 days)", forecast().Err, obsqra.ENOTFOUND, "29 days")
	b.feed(t, "vesu", today-29, today-29)
	if r := forecast(); r.Err != nil || r.Forecast == nil || r.Forecast.WindowStart != today-29 {
		t.Errorf("Forecasts(vesu with 30 days) = %+v, want a forecast from %s", r, today-29)
	}
	// History older than HistoryDays does not count.
	short, _ := advisor.New(b.DB, b.Market, b.Decisions, advisor.Config{HistoryDays: 30, Now: b.Clock.Now})
	b.feed(t, "vesu", today-99, today-30)
	got, err := short.Forecasts(b.anon, obsqra.PredictionYieldForecast, ps, nil)
	if f := got[ps[0].ID].Forecast; err != nil || f == nil || f.WindowStart != today-29 || f.WindowEnd != today {
		t.Errorf("Forecasts(vesu, HistoryDays 30) = %+v, %v, want the window %s…%s", got[ps[0].ID], err, today-29, today)
	}
}

// forecastOutcome is an advisor.ForecastResult.
type forecastOutcome advisor.ForecastResult

// forecastOf returns the forecast of kind for slug, failing without one.
func forecastOf(t *testing.T, s *advisor.Service, b *testBundle, kind obsqra.PredictionKind, slug string) obsqra.Forecast {
	t.Helper()
	ps := b.protocols(t, slug)
	got, err := s.Forecasts(b.anon, kind, ps, nil)
	if err != nil || got[ps[0].ID].Forecast == nil {
		t.Fatalf("Forecasts(%s, %s) = %+v, %v", kind, slug, got[ps[0].ID], err)
	}
	return *got[ps[0].ID].Forecast
}

func TestForecastsDigest(t *testing.T) {
	t.Parallel()
	s, b := setupSeeded(t, nil)
	yield := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "zklend")
	risk := forecastOf(t, s, b, obsqra.PredictionRiskForecast, "zklend")

	// The same inputs give the same forecast, later in the day too.
	b.Clock.Set(now0.Add(5 * time.Hour))
	if again := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "zklend"); again != yield {
		t.Errorf("Forecasts(zklend) again = %+v, want %+v", again, yield)
	}
	if again := forecastOf(t, s, b, obsqra.PredictionRiskForecast, "zklend"); again != risk {
		t.Errorf("risk Forecasts(zklend) again = %+v, want %+v", again, risk)
	}

	// New risk parameters change the risk forecast's inputs only.
	admin := b.Admin(t, "admin@example.com")
	if _, err := b.Market.SetRiskParams(admin, obsqra.RiskParamsPatch{WUtilization: ptr(30)}); err != nil {
		t.Fatalf("SetRiskParams() = %v", err)
	}
	if again := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "zklend"); again != yield {
		t.Errorf("Forecasts(zklend) after new risk params = %+v, want %+v", again, yield)
	}
	if again := forecastOf(t, s, b, obsqra.PredictionRiskForecast, "zklend"); again.InputsDigest == risk.InputsDigest {
		t.Errorf("risk Forecasts(zklend) after new risk params kept InputsDigest %s", risk.InputsDigest)
	}

	// A later sample of today replaces today's value.
	today := b.Today()
	in := advisortest.Sample("zklend", today, 2500, 9500, "500000")
	in.ObservedAt = in.ObservedAt.Add(time.Hour)
	b.Ingest(t, in)
	moved := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "zklend")
	if moved.InputsDigest == yield.InputsDigest || moved.Last != 2500 {
		t.Errorf("Forecasts(zklend) after a new sample = digest %s, last %v, want a new digest and last 2500", moved.InputsDigest, moved.Last)
	}
	// Other protocols are untouched.
	if got, want := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "nostra"), forecastOf(t, s, b, obsqra.PredictionYieldForecast, "nostra"); got != want {
		t.Errorf("Forecasts(nostra) twice = %+v, %+v", got, want)
	}

	// A day later without new data the forecast is made from today: its
	// target moves with the clock.
	b.Clock.AddDays(1)
	later := forecastOf(t, s, b, obsqra.PredictionYieldForecast, "zklend")
	if later.Target != today+1+advisor.DefaultHorizonDays || later.WindowEnd != today || later.InputsDigest == moved.InputsDigest {
		t.Errorf("Forecasts(zklend) a day later = target %s, window end %s, digest %s; want target %s, window end %s and a new digest",
			later.Target, later.WindowEnd, later.InputsDigest, today+1+advisor.DefaultHorizonDays, today)
	}
}

func TestRefreshForecasts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		empty, _ := setup(t, storetest.SQLite(t))
		if n, err := empty.RefreshForecasts(ctx); n != 0 || err != nil {
			t.Errorf("RefreshForecasts(no data) = %d, %v, want 0", n, err)
		}
		s, b := setupSeeded(t, db)
		b.SetEnabled(t, "ekubo", false)
		before := b.LastEvent(t)
		n, err := s.RefreshForecasts(ctx)
		if err != nil || n != 4 {
			t.Fatalf("RefreshForecasts() = %d, %v, want 4 (yield and risk of nostra and zklend)", n, err)
		}
		preds := b.predictions(t, "", 0)
		if len(preds) != 4 {
			t.Fatalf("stored predictions = %d, want 4", len(preds))
		}
		byID := make(map[int64]obsqra.Prediction)
		for _, p := range preds {
			byID[p.ID] = p
			slug := ""
			for _, s := range []string{"nostra", "zklend"} {
				if b.ID(t, s) == p.ProtocolID {
					slug = s
				}
			}
			if slug == "" {
				t.Errorf("prediction %d of protocol %d, want nostra's or zklend's only", p.ID, p.ProtocolID)
				continue
			}
			f := forecastOf(t, s, b, p.Kind, slug)
			today := b.Today()
			want := obsqra.Prediction{
				ID: p.ID, Kind: f.Kind, ProtocolID: f.ProtocolID, HorizonDays: advisor.DefaultHorizonDays,
				Origin: today, Target: today + advisor.DefaultHorizonDays,
				Point: f.Point, Lower80: f.Lower80, Upper80: f.Upper80, Lower95: f.Lower95, Upper95: f.Upper95,
				Confidence: f.Confidence, Tolerance: f.Tolerance, Last: f.Last, Model: f.Model, ModelVersion: f.ModelVersion,
				InputsDigest: f.InputsDigest, WindowStart: f.WindowStart, WindowEnd: f.WindowEnd, CreatedAt: now0,
				Moved: &f.Moved,
			}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("stored %s of %s = %+v, want %+v", p.Kind, slug, p, want)
			}
		}
		events := b.Events(t, before, obsqra.TopicPredictionCreated)
		if len(events) != 4 {
			t.Fatalf("prediction.created events = %d, want 4", len(events))
		}
		for _, e := range events {
			pl := decodeEvent[obsqra.Prediction](t, &e)
			want, ok := byID[pl.ID]
			want.Moved = nil // not part of the payload
			if e.OwnerID != 0 || !ok || !samePrediction(t, *pl, want) || e.ProtocolID != want.ProtocolID || e.Kind != string(want.Kind) {
				t.Errorf("event %d (owner %d, protocol %d, kind %q) = %+v, want a public event of %+v", e.ID, e.OwnerID, e.ProtocolID, e.Kind, pl, want)
			}
			delete(byID, pl.ID)
		}

		// Nothing new: nothing recorded, later in the day too.
		b.Clock.Set(now0.Add(3 * time.Hour))
		last := b.LastEvent(t)
		if n, err := s.RefreshForecasts(ctx); n != 0 || err != nil {
			t.Errorf("RefreshForecasts(unchanged) = %d, %v, want 0", n, err)
		}
		if got := len(b.predictions(t, "", 0)); got != 4 || b.LastEvent(t) != last {
			t.Errorf("after RefreshForecasts(unchanged): %d predictions, last event %d, want 4 and %d", got, b.LastEvent(t), last)
		}

		// A new sample of nostra today: its two forecasts are recorded again.
		in := advisortest.Sample("nostra", b.Today(), 450, 2000, "100000000")
		in.ObservedAt = in.ObservedAt.Add(2 * time.Hour)
		b.Ingest(t, in)
		last = b.LastEvent(t)
		if n, err := s.RefreshForecasts(ctx); n != 2 || err != nil {
			t.Errorf("RefreshForecasts(new nostra sample) = %d, %v, want 2", n, err)
		}
		for _, p := range b.predictions(t, "", 0)[:2] {
			if p.ProtocolID != b.ID(t, "nostra") {
				t.Errorf("newest predictions are of protocol %d, want nostra's", p.ProtocolID)
			}
		}
		if got := len(b.Events(t, last, obsqra.TopicPredictionCreated)); got != 2 {
			t.Errorf("prediction.created events after the new sample = %d, want 2", got)
		}

		// Re-enabled ekubo is forecast too.
		b.SetEnabled(t, "ekubo", true)
		if n, err := s.RefreshForecasts(ctx); n != 2 || err != nil {
			t.Errorf("RefreshForecasts(ekubo enabled) = %d, %v, want 2", n, err)
		}
	})
}
