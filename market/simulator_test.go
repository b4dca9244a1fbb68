package market

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

// simProtocols are the seeded protocols, plus a disabled one the simulator
// must leave out.
func simProtocols() []obsqra.Protocol {
	return []obsqra.Protocol{
		{ID: 1, Slug: "nostra", Category: obsqra.CategoryLending, Enabled: true},
		{ID: 2, Slug: "zklend", Category: obsqra.CategoryLending, Enabled: true},
		{ID: 3, Slug: "ekubo", Category: obsqra.CategoryDEX, Enabled: true},
		{ID: 4, Slug: "retired", Category: obsqra.CategoryLending, Enabled: false},
		{ID: 5, Slug: "jediswap", Category: obsqra.CategoryDEX, Enabled: true},
		{ID: 6, Slug: "vesu", Category: obsqra.CategoryLending, Enabled: true},
	}
}

var (
	simNow     = time.Date(2025, 6, 15, 14, 30, 7, 123456789, time.UTC)
	simEnabled = []string{"nostra", "zklend", "ekubo", "jediswap", "vesu"}
)

func simHistory(t testing.TB, s *Simulator, protocols []obsqra.Protocol, now time.Time, days int) []obsqra.MetricsInput {
	t.Helper()
	h, err := s.History(context.Background(), protocols, now, days)
	if err != nil {
		t.Fatalf("History(%v, %d): %v", now, days, err)
	}
	return h
}

func tvlOf(t testing.TB, m obsqra.MetricsInput) float64 {
	t.Helper()
	if m.TvlUsd == nil {
		t.Fatalf("%s at %v: TvlUsd is nil", m.Protocol, m.ObservedAt)
	}
	v, err := strconv.ParseFloat(m.TvlUsd.String(), 64)
	if err != nil {
		t.Fatalf("%s at %v: TvlUsd %s: %v", m.Protocol, m.ObservedAt, m.TvlUsd, err)
	}
	return v
}

// checkValid fails t unless m is a sample the market service accepts.
func checkValid(t testing.TB, m obsqra.MetricsInput, lending bool) {
	t.Helper()
	if m.ApyBps < 0 || m.ApyBps >= 100_000 {
		t.Fatalf("%s at %v: ApyBps = %d, want 0–99999", m.Protocol, m.ObservedAt, m.ApyBps)
	}
	if m.UtilizationBps < 0 || m.UtilizationBps > 10_000 || (!lending && m.UtilizationBps != 0) {
		t.Fatalf("%s at %v: UtilizationBps = %d, want 0–10000 (0 unless lending)", m.Protocol, m.ObservedAt, m.UtilizationBps)
	}
	if v := tvlOf(t, m); !(v >= 0 && v < 1e12) {
		t.Fatalf("%s at %v: TvlUsd = %s, want 0 ≤ TVL < 10^12", m.Protocol, m.ObservedAt, m.TvlUsd)
	}
	if _, frac, _ := strings.Cut(m.TvlUsd.String(), "."); len(frac) > 2 {
		t.Fatalf("%s at %v: TvlUsd = %s, want whole cents", m.Protocol, m.ObservedAt, m.TvlUsd)
	}
}

func TestSimulatorDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := NewSimulatorAt(7, 1), NewSimulatorAt(7, 1)
	ha, hb := simHistory(t, a, simProtocols(), simNow, 60), simHistory(t, b, simProtocols(), simNow, 60)
	if !reflect.DeepEqual(ha, hb) {
		t.Fatalf("History with the same seed differs")
	}
	last := map[int64]obsqra.MetricsSample{}
	for _, m := range ha[len(ha)-len(simEnabled):] {
		for _, p := range simProtocols() {
			if p.Slug == m.Protocol {
				last[p.ID] = obsqra.MetricsSample{ProtocolID: p.ID, ObservedAt: m.ObservedAt, ApyBps: m.ApyBps,
					TvlUsd: m.TvlUsd, UtilizationBps: m.UtilizationBps, Source: obsqra.SourceSimulated}
			}
		}
	}
	for _, last := range []map[int64]obsqra.MetricsSample{nil, last} {
		pa, err := a.Poll(ctx, simProtocols(), last, simNow)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := b.Poll(ctx, simProtocols(), last, simNow)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pa, pb) {
			t.Fatalf("Poll (%d last samples) with the same seed differs:\n%v\n%v", len(last), pa, pb)
		}
		pc, err := NewSimulatorAt(8, 1).Poll(ctx, simProtocols(), last, simNow)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(pa, pc) {
			t.Errorf("Poll (%d last samples) with seeds 7 and 8 gives the same samples", len(last))
		}
	}

	hc := simHistory(t, NewSimulatorAt(8, 1), simProtocols(), simNow, 60)
	same := 0
	for i := range ha {
		if ha[i].ApyBps == hc[i].ApyBps && *ha[i].TvlUsd == *hc[i].TvlUsd {
			same++
		}
	}
	if same > len(ha)/20 {
		t.Errorf("History with seeds 7 and 8: %d of %d samples equal, want almost none", same, len(ha))
	}
}

func TestSimulatorHistoryShape(t *testing.T) {
	t.Parallel()
	s := NewSimulatorAt(1, 1)
	today := obsqra.DateOf(simNow)
	for _, days := range []int{1, 2, 30, 400} {
		h := simHistory(t, s, simProtocols(), simNow, days)
		if len(h) != days*len(simEnabled) {
			t.Fatalf("History(%d days): %d samples, want %d", days, len(h), days*len(simEnabled))
		}
		for i, m := range h {
			day := today - obsqra.Date(days) + obsqra.Date(i/len(simEnabled))
			want := day.Time().Add(24*time.Hour - time.Second)
			if !m.ObservedAt.Equal(want) || m.ObservedAt.Location() != time.UTC {
				t.Fatalf("History(%d days)[%d].ObservedAt = %v, want %v", days, i, m.ObservedAt, want)
			}
			if m.Protocol != simEnabled[i%len(simEnabled)] {
				t.Fatalf("History(%d days)[%d].Protocol = %s, want %s", days, i, m.Protocol, simEnabled[i%len(simEnabled)])
			}
			checkValid(t, m, m.Protocol == "nostra" || m.Protocol == "zklend" || m.Protocol == "vesu")
		}
	}

	for _, days := range []int{0, -3} {
		if h := simHistory(t, s, simProtocols(), simNow, days); len(h) != 0 {
			t.Errorf("History(%d days): %d samples, want none", days, len(h))
		}
	}
	if h := simHistory(t, s, nil, simNow, 10); len(h) != 0 {
		t.Errorf("History of no protocols: %d samples, want none", len(h))
	}
	// Paths start on 2020-01-01: nothing before.
	early := time.Date(2020, 1, 10, 12, 0, 0, 0, time.UTC)
	h := simHistory(t, s, simProtocols(), early, 30)
	if len(h) != 9*len(simEnabled) || h[0].ObservedAt.Format(time.DateOnly) != "2020-01-01" {
		t.Errorf("History(2020-01-10, 30 days): %d samples from %v, want 9 days from 2020-01-01", len(h), h[0].ObservedAt)
	}
	if h := simHistory(t, s, simProtocols(), early.AddDate(-1, 0, 0), 30); len(h) != 0 {
		t.Errorf("History(2019-01-10, 30 days): %d samples, want none", len(h))
	}
	if h := simHistory(t, s, simProtocols(), early, math.MaxInt); len(h) != 9*len(simEnabled) {
		t.Errorf("History(2020-01-10, MaxInt days): %d samples, want %d", len(h), 9*len(simEnabled))
	}
}

func TestSimulatorHistoryOverlap(t *testing.T) {
	t.Parallel()
	s := NewSimulatorAt(42, 1)
	n := len(simEnabled)
	a := simHistory(t, s, simProtocols(), simNow, 400)
	later := simNow.Add(10*24*time.Hour + 7*time.Hour) // another time of day too
	b := simHistory(t, s, simProtocols(), later, 400)
	if !reflect.DeepEqual(a[10*n:], b[:390*n]) {
		t.Errorf("History(now, 400) and History(now+10 days, 400) differ on the 390 days they share")
	}
	c := simHistory(t, s, simProtocols(), simNow, 30)
	if !reflect.DeepEqual(a[370*n:], c) {
		t.Errorf("History(now, 30) differs from the last 30 days of History(now, 400)")
	}
	// A protocol's path does not depend on which other protocols are asked.
	d := simHistory(t, s, simProtocols()[2:3], simNow, 400)
	for i := range d {
		if !reflect.DeepEqual(d[i], a[i*n+2]) {
			t.Fatalf("History of ekubo alone, day %d = %+v, want %+v", i, d[i], a[i*n+2])
		}
	}
}

// autocorr1 is the lag-1 autocorrelation of xs.
func autocorr1(xs []float64) float64 {
	var mean float64
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var num, den float64
	for i, x := range xs {
		den += (x - mean) * (x - mean)
		if i > 0 {
			num += (x - mean) * (xs[i-1] - mean)
		}
	}
	return num / den
}

func TestSimulatorLongRun(t *testing.T) {
	t.Parallel()
	const days = 3000
	s := NewSimulatorAt(2024, 1)
	now := (simEpoch + days).Time().Add(9 * time.Hour)
	h := simHistory(t, s, simProtocols(), now, days)
	if len(h) != days*len(simEnabled) {
		t.Fatalf("History(%d days): %d samples, want %d", days, len(h), days*len(simEnabled))
	}
	for j, p := range enabledProtocols(simProtocols()) {
		pr := newProfile(p)
		lending := p.Category == obsqra.CategoryLending
		apys := make([]float64, 0, days)
		logs := make([]float64, 0, days)
		tvls := make([]float64, 0, days)
		var apySum float64
		inBand, stressed, drops := 0, 0, 0
		for i := j; i < len(h); i += len(simEnabled) {
			m := h[i]
			checkValid(t, m, lending)
			apys = append(apys, float64(m.ApyBps))
			logs = append(logs, math.Log(float64(max(m.ApyBps, 1))))
			apySum += float64(m.ApyBps)
			tvl := tvlOf(t, m)
			if k := len(tvls); k > 0 && tvl < 0.85*tvls[k-1] {
				drops++
			}
			tvls = append(tvls, tvl)
			if m.UtilizationBps >= 4000 && m.UtilizationBps <= 9000 {
				inBand++
			}
			if m.UtilizationBps >= 9500 {
				stressed++
			}
		}
		// The level is the mean in ordinary times; stress spikes, ten
		// times the level for days, add some 10 % to a lending market's
		// mean over the years (from −2 to +22 % over 300 seeds), while the
		// median stays within 9 %.
		if mean := apySum / days; mean < 0.9*pr.apy || mean > 1.3*pr.apy {
			t.Errorf("%s: mean APY over %d days = %.0f bps, want −10 to +30 %% of its level %.0f", p.Slug, days, mean, pr.apy)
		}
		sorted := slices.Sorted(slices.Values(apys))
		if median := sorted[days/2]; math.Abs(median/pr.apy-1) > 0.12 {
			t.Errorf("%s: median APY over %d days = %.0f bps, want within 12 %% of its level %.0f", p.Slug, days, median, pr.apy)
		}
		// White noise would give 0 ± 0.04. Stress spikes, brief and ten
		// times the level for a lending market, weigh on the APY's; the
		// process runs on log APY, whose autocorrelation is exp(−θ) but
		// for jumps and stress.
		if rho := autocorr1(apys); rho < 0.4 {
			t.Errorf("%s: lag-1 autocorrelation of the daily APY = %.2f, want > 0.4 (mean-reverting, not white noise)", p.Slug, rho)
		}
		if rho := autocorr1(logs); rho < 0.6 {
			t.Errorf("%s: lag-1 autocorrelation of the daily log APY = %.2f, want > 0.6", p.Slug, rho)
		}
		// A stress event takes 20–40 % of the TVL at once; ordinary days
		// never lose 15 %. About 15 events are expected in 3000 days.
		if drops < 2 || drops > 40 {
			t.Errorf("%s: %d stress events (TVL drops of 15 %%+) in %d days, want about 15", p.Slug, drops, days)
		}
		if lending {
			if stressed == 0 {
				t.Errorf("%s: utilization never reached 95 %% in %d days, want stress events", p.Slug, days)
			}
			if inBand < days*9/10 {
				t.Errorf("%s: utilization within 40–90 %% on %d of %d days, want 90 %%+", p.Slug, inBand, days)
			}
		}
		slices.Sort(tvls)
		median := tvls[days/2]
		if median < 0.6*pr.tvl || median > 1.4*pr.tvl {
			t.Errorf("%s: median TVL = %.0f, want near its level %.0f", p.Slug, median, pr.tvl)
		}
	}
}

func TestSimulatorLevels(t *testing.T) {
	t.Parallel()
	// The seeded protocols span the liquidity tiers: tens of millions for
	// the big ones, a few millions for the small ones.
	big, small := newProfile(simProtocols()[0]), newProfile(simProtocols()[4])
	if big.tvl < 1e7 || small.tvl > 1e7 {
		t.Errorf("TVL levels: nostra %.0f, jediswap %.0f; want tens of millions and a few millions", big.tvl, small.tvl)
	}
	// Other protocols get hashed levels within their category's range.
	others := []obsqra.Protocol{
		{ID: 11, Slug: "aave-v9", Category: obsqra.CategoryLending, Enabled: true},
		{ID: 12, Slug: "x", Category: obsqra.CategoryDEX, Enabled: true},
		{ID: 13, Slug: "staker", Category: obsqra.CategoryStaking, Enabled: true},
		{ID: 14, Slug: "nostra", Category: obsqra.CategoryYield, Enabled: true}, // not the seeded one
		{ID: 15, Slug: "perps", Category: obsqra.CategoryDerivatives, Enabled: true},
	}
	for _, p := range others {
		pr := newProfile(p)
		if pr.apy < pr.apyMin || pr.apy > pr.apyMax || pr.tvl < 2e6 || pr.tvl > 8e7 {
			t.Errorf("%s (%s): levels APY %.0f bps, TVL %.0f; want APY %.0f–%.0f, TVL 2–80 million",
				p.Slug, p.Category, pr.apy, pr.tvl, pr.apyMin, pr.apyMax)
		}
		if again := newProfile(p); *again != *pr {
			t.Errorf("%s: profile differs between calls", p.Slug)
		}
	}
	h := simHistory(t, NewSimulatorAt(3, 1), others, simNow, 2000)
	for _, m := range h {
		checkValid(t, m, m.Protocol == "aave-v9")
	}
}

func TestSimulatorRateCurve(t *testing.T) {
	t.Parallel()
	prev := -1.0
	for u := 0.0; u <= 1.0; u += 0.01 {
		g := rateCurve(u)
		if g <= prev && u > 0 {
			t.Fatalf("rateCurve(%.2f) = %v, want more than rateCurve(%.2f) = %v", u, g, u-0.01, prev)
		}
		prev = g
		if back := utilizationFor(g); math.Abs(back-u) > 1e-9 {
			t.Errorf("utilizationFor(rateCurve(%.2f)) = %v, want %.2f", u, back, u)
		}
	}
	if got := utilizationFor(-1); got != 0 {
		t.Errorf("utilizationFor(-1) = %v, want 0", got)
	}
}

// pollStep polls p once through the exported method and checks that the
// unexported one, which also reports events, agrees.
func pollStep(t *testing.T, s *Simulator, p obsqra.Protocol, last *obsqra.MetricsSample, now time.Time) (obsqra.MetricsSample, event) {
	t.Helper()
	lastMap := map[int64]obsqra.MetricsSample{}
	if last != nil {
		lastMap[p.ID] = *last
	}
	got, err := s.Poll(context.Background(), []obsqra.Protocol{p}, lastMap, now)
	if err != nil || len(got) != 1 {
		t.Fatalf("Poll(%s, %v) = %d samples, %v; want 1", p.Slug, now, len(got), err)
	}
	m, ev, err := s.poll(context.Background(), p, last, now.UTC().Truncate(time.Second))
	if err != nil || !reflect.DeepEqual(m, got[0]) {
		t.Fatalf("poll(%s, %v) = %+v, %v; want Poll's %+v", p.Slug, now, m, err, got[0])
	}
	checkValid(t, m, p.Category == obsqra.CategoryLending)
	return obsqra.MetricsSample{ProtocolID: p.ID, ObservedAt: m.ObservedAt, ApyBps: m.ApyBps, TvlUsd: m.TvlUsd,
		UtilizationBps: m.UtilizationBps, Source: obsqra.SourceSimulated}, ev
}

// checkClose fails t when b is further from a than a few ten-second moves,
// unless the step went through an event.
func checkClose(t *testing.T, slug string, a, b obsqra.MetricsSample, ev event) {
	t.Helper()
	if ev != 0 {
		return
	}
	if d := math.Abs(math.Log(float64(max(b.ApyBps, 1)) / float64(max(a.ApyBps, 1)))); d > 0.2 && abs(b.ApyBps-a.ApyBps) > 5 {
		t.Fatalf("%s: APY %d → %d bps from %v to %v, want a small move", slug, a.ApyBps, b.ApyBps, a.ObservedAt, b.ObservedAt)
	}
	if d := abs(b.UtilizationBps - a.UtilizationBps); d > 500 {
		t.Fatalf("%s: utilization %d → %d bps from %v to %v, want a small move", slug, a.UtilizationBps, b.UtilizationBps, a.ObservedAt, b.ObservedAt)
	}
	ta, _ := strconv.ParseFloat(a.TvlUsd.String(), 64)
	tb, _ := strconv.ParseFloat(b.TvlUsd.String(), 64)
	if d := math.Abs(math.Log(tb / ta)); d > 0.01 {
		t.Fatalf("%s: TVL %s → %s from %v to %v, want a small move", slug, a.TvlUsd, b.TvlUsd, a.ObservedAt, b.ObservedAt)
	}
}

func abs(x int) int { return max(x, -x) }

func TestSimulatorPollContinuity(t *testing.T) {
	t.Parallel()
	s := NewSimulatorAt(99, 1)
	start := obsqra.DateOf(simNow).Time().Add(10*time.Second + 400*time.Millisecond)
	yesterday := simHistory(t, s, simProtocols(), start, 1)
	const polls = 8640 // a day of polls every ten seconds
	for j, p := range enabledProtocols(simProtocols()) {
		// Without a last sample, the first poll starts from the path: ten
		// seconds after the last daily sample, it is close to it.
		h := yesterday[j]
		prev := obsqra.MetricsSample{ProtocolID: p.ID, ObservedAt: h.ObservedAt, ApyBps: h.ApyBps, TvlUsd: h.TvlUsd,
			UtilizationBps: h.UtilizationBps}
		cur, ev := pollStep(t, s, p, nil, start)
		if want := start.Truncate(time.Second); !cur.ObservedAt.Equal(want) {
			t.Fatalf("Poll(%s, %v).ObservedAt = %v, want %v", p.Slug, start, cur.ObservedAt, want)
		}
		checkClose(t, p.Slug, prev, cur, ev)

		var moves, tvlMoves, events int
		for i := 1; i <= polls; i++ {
			now := start.Add(time.Duration(i) * 10 * time.Second)
			next, ev := pollStep(t, s, p, &cur, now)
			checkClose(t, p.Slug, cur, next, ev)
			if next.ApyBps != cur.ApyBps {
				moves++
			}
			if *next.TvlUsd != *cur.TvlUsd {
				tvlMoves++
			}
			if ev != 0 {
				events++
			}
			cur = next
		}
		// Ten seconds move a lending APY by a third of a basis point, so
		// its whole-bps samples change only now and then.
		if moves < polls/50 || tvlMoves < polls*9/10 {
			t.Errorf("%s: the APY moved on %d and the TVL on %d of %d polls, want a living market", p.Slug, moves, tvlMoves, polls)
		}
		if events > 5 {
			t.Errorf("%s: %d jumps or stress events in a day of polls, want rare ones", p.Slug, events)
		}
	}
}

func TestSimulatorPollEdges(t *testing.T) {
	t.Parallel()
	s := NewSimulatorAt(5, 1)
	p := simProtocols()[0]
	first, _ := pollStep(t, s, p, nil, simNow)

	// A last sample at or after now is kept, observed at now.
	for _, at := range []time.Time{simNow.Truncate(time.Second), simNow.Add(time.Hour)} {
		last := first
		last.ObservedAt = at
		got, _ := pollStep(t, s, p, &last, simNow)
		if got.ApyBps != first.ApyBps || *got.TvlUsd != *first.TvlUsd || got.UtilizationBps != first.UtilizationBps {
			t.Errorf("Poll with a last sample at %v = %+v, want it unchanged %+v", at, got, first)
		}
	}
	// A last sample without a TVL is not evolved from: the path is.
	noTVL := first
	noTVL.TvlUsd = nil
	noTVL.ObservedAt = simNow.Add(-10 * time.Second)
	got, _ := pollStep(t, s, p, &noTVL, simNow)
	if !reflect.DeepEqual(got, first) {
		t.Errorf("Poll with a last sample without TVL = %+v, want the path's %+v", got, first)
	}
	// A last sample of long ago evolves back towards the level.
	old := first
	old.ApyBps, old.ObservedAt = 30_000, simNow.AddDate(0, -3, 0)
	got, _ = pollStep(t, s, p, &old, simNow)
	if got.ApyBps > 3*int(newProfile(p).apy) {
		t.Errorf("Poll 3 months after an APY of 300 %% = %d bps, want back near the level", got.ApyBps)
	}
	// Disabled protocols are left out.
	ms, err := s.Poll(context.Background(), simProtocols(), nil, simNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != len(simEnabled) {
		t.Fatalf("Poll: %d samples, want %d", len(ms), len(simEnabled))
	}
	for i, m := range ms {
		if m.Protocol != simEnabled[i] {
			t.Errorf("Poll[%d].Protocol = %s, want %s", i, m.Protocol, simEnabled[i])
		}
	}
}

func TestSimulatorContextCancelled(t *testing.T) {
	t.Parallel()
	s := NewSimulatorAt(1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if h, err := s.History(ctx, simProtocols(), simNow, 400); !errors.Is(err, context.Canceled) || h != nil {
		t.Errorf("History(cancelled) = %d samples, %v; want context.Canceled", len(h), err)
	}
	if ms, err := s.Poll(ctx, simProtocols(), nil, simNow); !errors.Is(err, context.Canceled) || ms != nil {
		t.Errorf("Poll(cancelled) = %d samples, %v; want context.Canceled", len(ms), err)
	}
	// Cancelled while walking a path, as a poll without a last sample does.
	if _, err := walk(ctx, newProfile(simProtocols()[0]), s.stream("nostra"), obsqra.DateOf(simNow), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("walk(cancelled) = %v; want context.Canceled", err)
	}
}

func TestSimulatorName(t *testing.T) {
	t.Parallel()
	var src Source = NewSimulatorAt(1, 1)
	if got := src.Name(); got != obsqra.SourceSimulated {
		t.Errorf("Name() = %q, want %q", got, obsqra.SourceSimulated)
	}
}

func BenchmarkSimulatorHistory400(b *testing.B) {
	s := NewSimulatorAt(1, 1)
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	protocols := simProtocols()
	b.ReportAllocs()
	for b.Loop() {
		h, err := s.History(context.Background(), protocols, now, 400)
		if err != nil || len(h) != 400*len(simEnabled) {
			b.Fatalf("History = %d samples, %v", len(h), err)
		}
	}
}

// TestSimulatorLeavesRealDataAlone: a protocol with a data source of its
// own (an imported Aave reserve) gets no invented samples.
func TestSimulatorLeavesRealDataAlone(t *testing.T) {
	t.Parallel()
	ps := []obsqra.Protocol{
		{ID: 1, Slug: "zklend", Category: obsqra.CategoryLending, Enabled: true, SourceIDs: map[string]string{DefiLlamaProject: "zklend"}},
		{ID: 2, Slug: "aave-v3-ethereum-usdc", Category: obsqra.CategoryLending, Enabled: true, SourceIDs: map[string]string{"aave_v3": "ethereum/USDC"}},
		{ID: 3, Slug: "fresh", Category: obsqra.CategoryDEX, Enabled: true},
	}
	sim := NewSimulatorAt(1, 1)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	hist, err := sim.History(context.Background(), ps, now, 3)
	if err != nil {
		t.Fatal(err)
	}
	polled, err := sim.Poll(context.Background(), ps, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range append(hist, polled...) {
		if in.Protocol == "aave-v3-ethereum-usdc" {
			t.Fatalf("simulated sample of an imported protocol: %+v", in)
		}
	}
	if len(hist) != 6 || len(polled) != 2 {
		t.Errorf("History = %d samples, Poll = %d; want 6 and 2 (zklend and fresh)", len(hist), len(polled))
	}
}
