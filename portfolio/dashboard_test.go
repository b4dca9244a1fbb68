package portfolio_test

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// market is the dashboard tests' designed market over the 40 days ending
// today: nostra's APY rises 5 bps a day from 300 at low utilization;
// zklend's falls 3 bps a day from 1000 while its utilization climbs 1 %
// a day, so its risk score climbs too. zklend's feed skipped the day
// before yesterday.
type market struct {
	today, first obsqra.Date
	// risk is each day's risk score as the market scored it, by slug.
	risk map[string]map[obsqra.Date]int
}

func (m *market) apy(slug string, d obsqra.Date) int {
	k := int(d - m.first)
	if slug == "nostra" {
		return 300 + 5*k
	}
	return 1000 - 3*k + 40*(k%2)
}

// slope is the least-squares slope of slug's APY on the days from
// through to it was observed: Σ(x−x̄)(y−ȳ) / Σ(x−x̄)², rounded to 4
// decimals.
func (m *market) slope(slug string, from, to obsqra.Date) float64 {
	var xs, ys []float64
	for d := from; d <= to; d++ {
		if !m.skipped(slug, d) {
			xs, ys = append(xs, float64(d-from)), append(ys, float64(m.apy(slug, d)))
		}
	}
	var mx, my float64
	for i := range xs {
		mx, my = mx+xs[i]/float64(len(xs)), my+ys[i]/float64(len(ys))
	}
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	return math.Round(sxy/sxx*1e4) / 1e4
}

func (m *market) skipped(slug string, d obsqra.Date) bool { return slug == "zklend" && d == m.today-2 }

// on returns the day whose value stands for slug on day d: d, or the day
// before when the feed skipped d.
func (m *market) on(slug string, d obsqra.Date) obsqra.Date {
	if m.skipped(slug, d) {
		return d - 1
	}
	return d
}

func feedMarket(t *testing.T, b *testBundle) *market {
	t.Helper()
	today := b.Today()
	m := &market{today: today, first: today - 39, risk: make(map[string]map[obsqra.Date]int)}
	for _, slug := range []string{"nostra", "zklend"} {
		var in []obsqra.MetricsInput
		for d := m.first; d <= today; d++ {
			if m.skipped(slug, d) {
				continue
			}
			util, tvl := 2000, "100000000"
			if slug == "zklend" {
				util, tvl = 5000+100*int(d-m.first), "20000000"
			}
			in = append(in, advisortest.Sample(slug, d, m.apy(slug, d), util, tvl))
		}
		out := b.Ingest(t, in...)
		m.risk[slug] = make(map[obsqra.Date]int)
		for i, r := range out {
			m.risk[slug][obsqra.DateOf(in[i].ObservedAt)] = r.Risk.Score
		}
	}
	return m
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t, db)
		today := b.Today()
		nostra, zklend := b.ID(t, "nostra"), b.ID(t, "zklend")
		_, err := s.Dashboard(b.anon, 10)
		checkErr(t, "Dashboard(anonymous)", err, obsqra.EUNAUTHENTICATED)
		for _, w := range []int{0, -1, 366} {
			_, err := s.Dashboard(b.ctx, w)
			checkErr(t, "Dashboard(bad window)", err, obsqra.EINVALID, "windowDays")
			_, err = s.PortfolioRiskHistory(b.ctx, w)
			checkErr(t, "PortfolioRiskHistory(bad window)", err, obsqra.EINVALID, "windowDays")
		}
		if d, err := s.Dashboard(b.ctx, 10); err != nil || !reflect.DeepEqual(d, &obsqra.Dashboard{UserID: b.user.ID, WindowDays: 10}) {
			t.Errorf("Dashboard(no allocation) = %s, %v, want an empty dashboard", show(d), err)
		}

		// All nostra before the window; 70/30 nostra/zklend from four
		// days ago, at 14:00.
		b.Clock.Set(advisortest.Noon(today - 15).Add(-3 * time.Hour))
		record(t, b.ctx, s, "nostra", 10000)
		b.Clock.Set(advisortest.Noon(today - 4).Add(2 * time.Hour))
		alloc := record(t, b.ctx, s, "zklend", 3000, "nostra", 7000)
		b.Clock.Set(now0)
		m := feedMarket(t, b)
		w := map[int64]float64{nostra: 0.7, zklend: 0.3}
		slug := map[int64]string{nostra: "nostra", zklend: "zklend"}

		// want is the dashboard over window days, computed here from the
		// designed market; expected are the APYs the figure should use.
		want := func(window int, expected map[int64]float64) *obsqra.Dashboard {
			start := today - obsqra.Date(window)
			d := &obsqra.Dashboard{UserID: b.user.ID, WindowDays: window, LatestAllocation: alloc}
			var exp, risk float64
			for _, id := range []int64{nostra, zklend} {
				s := slug[id]
				now, then := m.apy(s, m.on(s, today)), m.apy(s, m.on(s, start))
				rNow, rThen := m.risk[s][m.on(s, today)], m.risk[s][m.on(s, start)]
				slope := m.slope(s, start, today)
				d.Protocols = append(d.Protocols, obsqra.DashboardProtocol{
					ProtocolID: id, WeightBps: int(math.Round(w[id] * 10000)),
					RiskScore: ptr(rNow), RiskChange: ptr(rNow - rThen), ApyBps: ptr(now), ApyChangeBps: ptr(now - then),
					ApySlopeBpsPerDay: ptr(slope), ExpectedApyBps: ptr(expected[id]),
				})
				exp += w[id] * expected[id]
				risk += w[id] * float64(rNow)
			}
			// The portfolio's risk on the window's first day is that of
			// the allocation held then: all nostra before the move.
			rThen := func(s string) float64 { return float64(m.risk[s][m.on(s, start)]) }
			then := 0.7*rThen("nostra") + 0.3*rThen("zklend")
			if start < today-4 {
				then = rThen("nostra")
			}
			d.ExpectedApyBps = ptr(int(math.Round(exp)))
			d.PortfolioRiskScore = ptr(math.Round(risk*1e4) / 1e4)
			d.PortfolioRiskChange = ptr(math.Round((risk-then)*1e4) / 1e4)
			// Realised: all nostra until the allocation's day, 70/30 from it.
			var sum float64
			for day := start + 1; day <= today; day++ {
				if day < today-4 {
					sum += float64(m.apy("nostra", day))
				} else {
					sum += 0.7*float64(m.apy("nostra", day)) + 0.3*float64(m.apy("zklend", m.on("zklend", day)))
				}
			}
			d.RealisedApyBps = ptr(int(math.Round(sum / float64(window))))
			return d
		}
		current := map[int64]float64{nostra: float64(m.apy("nostra", today)), zklend: float64(m.apy("zklend", today))}
		got, err := s.Dashboard(b.ctx, 10)
		if err != nil {
			t.Fatalf("Dashboard(10) = %v", err)
		}
		if w := want(10, current); !reflect.DeepEqual(got, w) {
			t.Errorf("Dashboard(10) =\n%s\nwant\n%s", show(got), show(w))
		}
		if w := want(3, current); !reflect.DeepEqual(mustDashboard(t, b.ctx, s, 3), w) {
			t.Errorf("Dashboard(3) =\n%s\nwant\n%s", show(mustDashboard(t, b.ctx, s, 3)), show(w))
		}

		// Once forecasts are recorded, the expected APY is theirs.
		if n, err := b.advisor.RefreshForecasts(ctx); n != 4 || err != nil {
			t.Fatalf("RefreshForecasts() = %d, %v, want 4", n, err)
		}
		latest, err := db.LatestPredictions(ctx, obsqra.PredictionYieldForecast, 7, []int64{nostra, zklend})
		if err != nil || len(latest) != 2 {
			t.Fatalf("LatestPredictions() = %v, %v", latest, err)
		}
		forecast := map[int64]float64{nostra: latest[nostra].Point, zklend: latest[zklend].Point}
		if forecast[zklend] == current[zklend] {
			t.Fatalf("zklend's forecast %v is its current APY: the test cannot tell them apart", forecast[zklend])
		}
		before := db.Statements()
		got, err = s.Dashboard(b.ctx, 10)
		if n := db.Statements() - before; n > 4 {
			t.Errorf("Dashboard(10) ran %d statements, want at most 4", n)
		}
		if w := want(10, forecast); err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("Dashboard(10) with forecasts =\n%s, %v\nwant\n%s", show(got), err, show(w))
		}
		before = db.Statements()
		if _, err := s.Dashboard(b.ctx, 365); err != nil || db.Statements()-before > 4 {
			t.Errorf("Dashboard(365) = %v after %d statements, want at most 4", err, db.Statements()-before)
		}

		// Risk history: each day of the window on which an allocation
		// held, weighted by the one in effect.
		history := func(window int) []obsqra.PortfolioRiskPoint {
			out := []obsqra.PortfolioRiskPoint{}
			for day := today - obsqra.Date(window-1); day <= today; day++ {
				var r float64
				switch {
				case day < today-15:
					continue
				case day < today-4:
					r = float64(m.risk["nostra"][day])
				default:
					r = 0.7*float64(m.risk["nostra"][day]) + 0.3*float64(m.risk["zklend"][m.on("zklend", day)])
				}
				out = append(out, obsqra.PortfolioRiskPoint{Date: day, RiskScore: math.Round(r*1e4) / 1e4})
			}
			return out
		}
		for _, window := range []int{1, 10, 20} {
			before := db.Statements()
			got, err := s.PortfolioRiskHistory(b.ctx, window)
			if n := db.Statements() - before; n > 2 {
				t.Errorf("PortfolioRiskHistory(%d) ran %d statements, want at most 2", window, n)
			}
			if w := history(window); err != nil || !reflect.DeepEqual(got, w) {
				t.Errorf("PortfolioRiskHistory(%d) = %v, %v, want %v", window, got, err, w)
			}
		}

		// A second user sees none of it.
		other, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
		if d, err := s.Dashboard(otherCtx, 10); err != nil || !reflect.DeepEqual(d, &obsqra.Dashboard{UserID: other.ID, WindowDays: 10}) {
			t.Errorf("Dashboard(other user) = %s, %v, want an empty dashboard", show(d), err)
		}
		if h, err := s.PortfolioRiskHistory(otherCtx, 10); err != nil || h == nil || len(h) != 0 {
			t.Errorf("PortfolioRiskHistory(other user) = %v, %v, want an empty list", h, err)
		}
		_, err = s.Allocation(otherCtx, alloc.ID)
		checkErr(t, "Allocation(another user's)", err, obsqra.ENOTFOUND)

		// Three days on, with no new data and no new forecast, the
		// recorded forecasts are stale: the expected APY is the APY now.
		b.Clock.AddDays(3)
		d := mustDashboard(t, b.ctx, s, 10)
		var exp float64
		for _, p := range d.Protocols {
			if p.ApyBps == nil || p.ExpectedApyBps == nil || *p.ExpectedApyBps != float64(*p.ApyBps) {
				t.Fatalf("Dashboard row three days after the last forecast = %s, want the APY now as expected APY", show(p))
			}
			exp += float64(p.WeightBps) / 10000 * *p.ExpectedApyBps
		}
		if d.ExpectedApyBps == nil || *d.ExpectedApyBps != int(math.Round(exp)) {
			t.Errorf("Dashboard ExpectedApyBps with stale forecasts = %v, want %v", show(d.ExpectedApyBps), math.Round(exp))
		}
	})
}

func mustDashboard(t *testing.T, ctx context.Context, s *portfolio.Service, window int) *obsqra.Dashboard {
	t.Helper()
	d, err := s.Dashboard(ctx, window)
	if err != nil {
		t.Fatalf("Dashboard(%d) = %v", window, err)
	}
	return d
}

func TestDashboardPendingSuggestion(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		feedMarket(t, b)
		alloc := record(t, b.ctx, s, "nostra", 7000, "zklend", 3000)
		pending := func(ctx context.Context) *obsqra.RebalanceSuggestion {
			t.Helper()
			return mustDashboard(t, ctx, s, 10).PendingSuggestion
		}
		if p := pending(b.ctx); p != nil {
			t.Errorf("PendingSuggestion(none made) = %+v, want nil", p)
		}
		// A suggestion that clears threshold 0 is pending.
		ctx := b.SetPreferences(t, b.user, advisortest.Prefs(obsqra.RiskMedium, 0, 6000, 2, false))
		sug, err := b.advisor.RebalanceSuggestion(ctx)
		if err != nil || !sug.ClearsThreshold || sug.AllocationID != alloc.ID {
			t.Fatalf("RebalanceSuggestion(threshold 0) = %+v, %v, want one from %d clearing the threshold", sug, err, alloc.ID)
		}
		if p := pending(ctx); !reflect.DeepEqual(p, sug) {
			t.Errorf("PendingSuggestion = %+v, want %+v", p, sug)
		}
		// The same move does not clear 10000 bps: nothing is pending, as
		// soon as the user raises their threshold.
		strict := b.SetPreferences(t, b.user, advisortest.Prefs(obsqra.RiskMedium, 10000, 6000, 2, false))
		if p := pending(strict); p != nil {
			t.Errorf("PendingSuggestion(threshold raised to 10000) = %+v, want nil", p)
		}
		strictSug, err := b.advisor.RebalanceSuggestion(strict)
		if err != nil || strictSug.ClearsThreshold {
			t.Fatalf("RebalanceSuggestion(threshold 10000) = %+v, %v, want one not clearing it", strictSug, err)
		}
		if p := pending(strict); p != nil {
			t.Errorf("PendingSuggestion(threshold 10000) = %+v, want nil", p)
		}
		// Back to 0: the move made for 10000 clears it.
		ctx = b.SetPreferences(t, b.user, advisortest.Prefs(obsqra.RiskMedium, 0, 6000, 2, false))
		if p := pending(ctx); p == nil || p.ID != strictSug.ID {
			t.Errorf("PendingSuggestion(threshold lowered to 0) = %+v, want %d", p, strictSug.ID)
		}
		// Pending again, until followed.
		sug, err = b.advisor.RebalanceSuggestion(ctx)
		if err != nil || !sug.ClearsThreshold {
			t.Fatalf("RebalanceSuggestion(threshold 0 again) = %+v, %v", sug, err)
		}
		if p := pending(ctx); p == nil || p.ID != sug.ID {
			t.Errorf("PendingSuggestion = %+v, want %d", p, sug.ID)
		}
		// Another user cannot read it.
		_, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
		_, err = b.advisor.Prediction(otherCtx, sug.ID)
		checkErr(t, "Prediction(another user's suggestion)", err, obsqra.ENOTFOUND)
		if p := pending(otherCtx); p != nil {
			t.Errorf("PendingSuggestion(other user) = %+v, want nil", p)
		}

		in := obsqra.RecordAllocationInput{Reason: obsqra.ReasonUserInitiated, SuggestionID: ptr(sug.NodeID())}
		for _, w := range sug.Target {
			if w.WeightBps > 0 {
				for slug, p := range b.Protocols {
					if p.ID == w.ProtocolID {
						in.Weights = append(in.Weights, obsqra.WeightInput{Protocol: slug, WeightBps: w.WeightBps})
					}
				}
			}
		}
		if _, err := s.RecordAllocation(ctx, in); err != nil {
			t.Fatalf("RecordAllocation(following) = %v", err)
		}
		if p := pending(ctx); p != nil {
			t.Errorf("PendingSuggestion(followed) = %+v, want nil", p)
		}

		// A suggestion from an allocation since superseded is not pending.
		record(t, ctx, s, "nostra", 10000)
		if _, err := b.advisor.RebalanceSuggestion(ctx); err != nil {
			t.Fatal(err)
		}
		record(t, ctx, s, "nostra", 9000, "zklend", 1000)
		if p := pending(ctx); p != nil {
			t.Errorf("PendingSuggestion(from a superseded allocation) = %+v, want nil", p)
		}
	})
}

// TestDashboardMissingData checks that the portfolio figures are not
// computed from part of the holdings: a holding without data leaves them
// unknown rather than counting it as 0.
func TestDashboardMissingData(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	m := feedMarket(t, b)
	today := b.Today()
	// vesu has no data at all.
	b.Clock.Set(advisortest.Noon(today - 5))
	record(t, b.ctx, s, "nostra", 5000, "vesu", 5000)
	b.Clock.Set(now0)
	d := mustDashboard(t, b.ctx, s, 10)
	if d.ExpectedApyBps != nil || d.PortfolioRiskScore != nil || d.PortfolioRiskChange != nil || d.RealisedApyBps != nil {
		t.Errorf("Dashboard(holding a protocol without data) = expected %v, risk %v, change %v, realised %v; want all unknown",
			show(d.ExpectedApyBps), show(d.PortfolioRiskScore), show(d.PortfolioRiskChange), show(d.RealisedApyBps))
	}
	if len(d.Protocols) != 2 {
		t.Fatalf("Dashboard protocols = %s, want nostra and vesu", show(d.Protocols))
	}
	nostra, vesu := d.Protocols[0], d.Protocols[1]
	if vesu.RiskScore != nil || vesu.ApyBps != nil || vesu.ExpectedApyBps != nil || vesu.ApySlopeBpsPerDay != nil || vesu.WeightBps != 5000 {
		t.Errorf("vesu's row = %s, want its weight and no figures", show(vesu))
	}
	if nostra.RiskScore == nil || *nostra.RiskScore != m.risk["nostra"][today] || nostra.ApyBps == nil || *nostra.ApyBps != m.apy("nostra", today) {
		t.Errorf("nostra's row = %s, want today's risk %d and APY %d", show(nostra), m.risk["nostra"][today], m.apy("nostra", today))
	}
	if h, err := s.PortfolioRiskHistory(b.ctx, 10); err != nil || len(h) != 0 {
		t.Errorf("PortfolioRiskHistory(holding a protocol without data) = %v, %v, want no day", h, err)
	}

	// vesu's feed starts two days ago: the figures are back, from today.
	var in []obsqra.MetricsInput
	for d := today - 2; d <= today; d++ {
		in = append(in, advisortest.Sample("vesu", d, 800, 5000, "20000000"))
	}
	risk := b.Ingest(t, in...)
	d = mustDashboard(t, b.ctx, s, 10)
	wantRisk := math.Round((0.5*float64(m.risk["nostra"][today])+0.5*float64(risk[2].Risk.Score))*1e4) / 1e4
	if d.PortfolioRiskScore == nil || *d.PortfolioRiskScore != wantRisk {
		t.Errorf("Dashboard PortfolioRiskScore = %v, want %v", show(d.PortfolioRiskScore), wantRisk)
	}
	if want := int(math.Round(0.5*float64(m.apy("nostra", today)) + 0.5*800)); d.ExpectedApyBps == nil || *d.ExpectedApyBps != want {
		t.Errorf("Dashboard ExpectedApyBps = %v, want %d", show(d.ExpectedApyBps), want)
	}
	// vesu has no value 10 days ago: its own change over the window is
	// unknown, and the portfolio's runs from the first day its risk is
	// known (two days ago), as portfolioRiskHistory shows it.
	if d.Protocols[1].RiskChange != nil {
		t.Errorf("vesu's RiskChange = %v, want unknown", show(d.Protocols[1].RiskChange))
	}
	then := 0.5*float64(m.risk["nostra"][today-2]) + 0.5*float64(risk[0].Risk.Score)
	if want := math.Round((wantRisk-then)*1e4) / 1e4; d.PortfolioRiskChange == nil || math.Abs(*d.PortfolioRiskChange-want) > 1e-4 {
		t.Errorf("Dashboard PortfolioRiskChange = %v, want %v", show(d.PortfolioRiskChange), want)
	}
	var sum float64
	for day := today - 2; day <= today; day++ {
		sum += 0.5*float64(m.apy("nostra", day)) + 0.5*800
	}
	if want := int(math.Round(sum / 3)); d.RealisedApyBps == nil || *d.RealisedApyBps != want {
		t.Errorf("Dashboard RealisedApyBps = %v, want %d (the three days with data)", show(d.RealisedApyBps), want)
	}
}
