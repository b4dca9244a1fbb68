package market_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// t0 is the injected clock's start: noon UTC, so a day's samples at other
// hours of the same day are in its past.
var t0 = time.Date(2025, 3, 15, 12, 0, 0, 0, time.UTC)

// testBundle holds what a service test works with besides the service.
type testBundle struct {
	db    *store.DB
	clock *obsqratest.Clock
	// decisions is the service's decision log, which knows risk scores.
	decisions *decision.Log
	// anon, user and admin are contexts of an anonymous caller, a user who
	// is not an admin, and an admin (a stored user, as risk_params.created_by
	// refers to users).
	anon, user, admin context.Context
	adminID           int64
	// protocols are the seeded protocols by slug.
	protocols map[string]obsqra.Protocol
}

// setup returns a market service on db with the clock at t0, after
// configure has adjusted its Config.
func setup(t *testing.T, db *store.DB, configure ...func(*market.Config)) (*market.Service, *testBundle) {
	t.Helper()
	ctx := context.Background()
	clock := obsqratest.NewClock(t0)
	db.Now = clock.Now
	b := &testBundle{db: db, clock: clock, anon: ctx, protocols: make(map[string]obsqra.Protocol)}

	newUser := func(email string, role obsqra.Role) *obsqra.User {
		u := &obsqra.User{Email: email, PasswordHash: "x", Role: role, Active: true, Preferences: obsqra.Preferences{
			RiskTolerance: obsqra.RiskMedium, RebalanceThresholdBps: obsqra.DefaultRebalanceThresholdBps,
			MaxSingleBps: obsqra.DefaultMaxSingleBps, MinDiversification: 2,
			MaxVolatilityBps: obsqra.MaxVolatility, MaxLiquidityTier: obsqra.MaxLiquidityTier,
		}}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
			t.Fatalf("CreateUser(%s) = %v", email, err)
		}
		return u
	}
	admin := newUser("admin@example.com", obsqra.RoleAdmin)
	user := newUser("user@example.com", obsqra.RoleUser)
	b.adminID = admin.ID
	b.admin = obsqra.NewContextWithPrincipal(ctx, &obsqra.Principal{User: admin})
	b.user = obsqra.NewContextWithPrincipal(ctx, &obsqra.Principal{User: user})

	ps, err := db.Protocols(ctx)
	if err != nil {
		t.Fatalf("Protocols() = %v", err)
	}
	for _, p := range ps {
		b.protocols[p.Slug] = p
	}

	cfg := market.Config{Now: clock.Now, PollInterval: 10 * time.Second}
	for _, f := range configure {
		f(&cfg)
	}
	b.decisions = newDecisions(t, db)
	s, err := market.New(db, b.decisions, cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return s, b
}

// testKey is the key of the tests' decision logs.
var testKey = decision.Key([]byte("the server's secret, 32 bytes at least"))

// newDecisions returns a decision log on db that knows risk scores, as a
// server process starting would.
func newDecisions(t testing.TB, db *store.DB) *decision.Log {
	t.Helper()
	l, err := decision.New(db, testKey, market.NewRiskScores(db, nil, nil))
	if err != nil {
		t.Fatalf("decision.New() = %v", err)
	}
	return l
}

func withSource(src market.Source) func(*market.Config) {
	return func(c *market.Config) { c.Source = src }
}

func dec(s string) *obsqra.Decimal {
	d := obsqra.MustDecimal(s)
	return &d
}

// sample is an input of slug at at with the given APY, a TVL of 20 M USD
// (tier 1) and a utilization of 50 %.
func sample(slug string, at time.Time, apyBps int) obsqra.MetricsInput {
	return obsqra.MetricsInput{Protocol: slug, ObservedAt: at, ApyBps: apyBps, TvlUsd: dec("20000000"), UtilizationBps: 5000}
}

// day returns noon (UTC) of the day n days after t0's.
func day(n int) time.Time { return t0.AddDate(0, 0, n) }

func ingest(t *testing.T, s *market.Service, source string, inputs ...obsqra.MetricsInput) []market.Ingested {
	t.Helper()
	out, err := s.Ingest(context.Background(), source, inputs)
	if err != nil {
		t.Fatalf("Ingest(%s, %d inputs) = %v", source, len(inputs), err)
	}
	if len(out) != len(inputs) {
		t.Fatalf("Ingest(%s, %d inputs) returned %d results", source, len(inputs), len(out))
	}
	return out
}

// checkErr is the shared obsqratest.CheckErr.
var checkErr = obsqratest.CheckErr

// reference scores in with p as ml.ScoreRisk, the reference implementation
// of the contract's formula, does.
func reference(t *testing.T, in obsqra.RiskInputs, p obsqra.RiskParams) obsqra.RiskScoreOutcome {
	t.Helper()
	r, err := ml.ScoreRisk(ml.RiskInputs{
		UtilizationBps: int64(in.Utilization), VolatilityBps: int64(in.Volatility), LiquidityTier: int64(in.Liquidity),
		AuditScore: int64(in.AuditScore), AgeDays: int64(in.AgeDays),
	}, p)
	if err != nil {
		t.Fatalf("ml.ScoreRisk(%+v) = %v", in, err)
	}
	return obsqra.RiskScoreOutcome{Score: int(r.Score), Components: obsqra.RiskComponents{
		Utilization: int(r.Utilization), Volatility: int(r.Volatility), Liquidity: int(r.Liquidity),
		Audit: int(r.Audit), Age: int(r.Age), Unclamped: int(r.Unclamped),
	}}
}

// checkScored fails unless r's score and components are ml.ScoreRisk's for
// its inputs with p.
func checkScored(t *testing.T, r obsqra.RiskScore, p obsqra.RiskParams) {
	t.Helper()
	want := reference(t, r.Inputs, p)
	if got := (obsqra.RiskScoreOutcome{Score: r.Score, Components: r.Components}); got != want {
		t.Errorf("score of %+v with params v%d = %+v, want %+v", r.Inputs, p.Version, got, want)
	}
}

// tally counts what the market writes.
type tally struct {
	Samples, Scores, Decisions, Events, ParamsVersion, Protocols int
}

func count(t *testing.T, db *store.DB) tally {
	t.Helper()
	ctx := context.Background()
	ps, err := db.Protocols(ctx)
	if err != nil {
		t.Fatalf("Protocols() = %v", err)
	}
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	page := obsqra.HistoryPage{First: 100_000}
	samples, err := db.MetricsHistory(ctx, ids, page)
	if err != nil {
		t.Fatalf("MetricsHistory() = %v", err)
	}
	scores, err := db.RiskHistory(ctx, ids, page)
	if err != nil {
		t.Fatalf("RiskHistory() = %v", err)
	}
	events, err := db.EventsAfter(ctx, 0, 100_000)
	if err != nil {
		t.Fatalf("EventsAfter(0) = %v", err)
	}
	params, err := db.ActiveRiskParams(ctx)
	if err != nil {
		t.Fatalf("ActiveRiskParams() = %v", err)
	}
	n := tally{Events: len(events), ParamsVersion: params.Version, Protocols: len(ps)}
	for _, id := range ids {
		n.Samples += len(samples[id])
		n.Scores += len(scores[id])
	}
	for {
		_, err := db.Decision(ctx, int64(n.Decisions+1))
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			break
		} else if err != nil {
			t.Fatalf("Decision(%d) = %v", n.Decisions+1, err)
		}
		n.Decisions++
	}
	return n
}

func TestIngestStoresScoresRecordsAndPublishes(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		vesu := b.protocols["vesu"]

		// Two earlier days give the sample a volatility: daily APYs 400,
		// 500 and 600 have a standard deviation of 100.
		ingest(t, s, obsqra.SourceSimulated, sample("vesu", day(-2), 400), sample("vesu", day(-1), 500))
		before := count(t, db)
		events, _ := db.EventsAfter(ctx, 0, 100)
		lastEvent := events[len(events)-1].ID

		at := t0.Add(-time.Hour)
		in := obsqra.MetricsInput{
			Protocol: " vesu ", ObservedAt: at.In(time.FixedZone("CET", 3600)), ApyBps: 600,
			TvlUsd: dec("20000000.50"), UtilizationBps: 7321,
		}
		b.clock.Advance(5 * time.Second)
		now := b.clock.Now()
		out := ingest(t, s, obsqra.SourceSimulated, in)
		got := out[0]
		if !got.Created {
			t.Errorf("Ingest(new sample).Created = false, want true")
		}

		wantSample := obsqra.MetricsSample{
			ID: got.Sample.ID, ProtocolID: vesu.ID, ObservedAt: at, ApyBps: 600, TvlUsd: dec("20000000.5"),
			UtilizationBps: 7321, VolatilityBps: 100, LiquidityTier: 1, Source: obsqra.SourceSimulated, CreatedAt: now,
		}
		if got.Sample.ID == 0 || !reflect.DeepEqual(got.Sample, wantSample) {
			t.Errorf("Ingest(%+v).Sample = %+v, want %+v", in, got.Sample, wantSample)
		}
		if stored, err := db.MetricsSample(ctx, got.Sample.ID); err != nil || !reflect.DeepEqual(*stored, wantSample) {
			t.Errorf("MetricsSample(%d) = %+v, %v, want %+v", got.Sample.ID, stored, err, wantSample)
		}

		params, err := db.ActiveRiskParams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seeded := *params // the model's values, without version and provenance
		seeded.Version, seeded.CreatedBy, seeded.CreatedAt = 0, 0, time.Time{}
		if params.Version != 1 || seeded != obsqra.DefaultRiskParams() {
			t.Fatalf("seeded risk params = %+v, want version 1 with the contract's defaults", params)
		}
		// vesu: audit 86, launched 2024-06-05, which is 283 days before
		// 2025-03-15.
		wantInputs := obsqra.RiskInputs{Utilization: 7321, Volatility: 100, Liquidity: 1, AuditScore: 86, AgeDays: 283}
		outcome := reference(t, wantInputs, *params)
		wantRisk := obsqra.RiskScore{
			ID: got.Risk.ID, ProtocolID: vesu.ID, SampleID: got.Sample.ID, ObservedAt: at,
			Score: outcome.Score, Components: outcome.Components, Inputs: wantInputs,
			ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: now, DecisionID: got.Risk.DecisionID,
		}
		if got.Risk.ID == 0 || got.Risk.DecisionID == 0 || !reflect.DeepEqual(got.Risk, wantRisk) {
			t.Errorf("Ingest(%+v).Risk = %+v, want %+v", in, got.Risk, wantRisk)
		}
		if stored, err := db.RiskScore(ctx, got.Risk.ID); err != nil || !reflect.DeepEqual(*stored, wantRisk) {
			t.Errorf("RiskScore(%d) = %+v, %v, want %+v", got.Risk.ID, stored, err, wantRisk)
		}
		if latest, err := s.LatestRisk(ctx, []int64{vesu.ID}); err != nil || !reflect.DeepEqual(latest[vesu.ID], wantRisk) {
			t.Errorf("LatestRisk(vesu) = %+v, %v, want %+v", latest, err, wantRisk)
		}

		d, err := db.Decision(ctx, got.Risk.DecisionID)
		if err != nil {
			t.Fatalf("Decision(%d) = %v", got.Risk.DecisionID, err)
		}
		if d.Kind != obsqra.DecisionRiskScore || d.ModelVersion != obsqra.RiskModelVersion || !d.CreatedAt.Equal(now) {
			t.Errorf("Decision(%d) = %s %s at %v, want %s %s at %v", d.ID, d.Kind, d.ModelVersion, d.CreatedAt,
				obsqra.DecisionRiskScore, obsqra.RiskModelVersion, now)
		}
		var rec obsqra.RiskScoreDecision
		if err := json.Unmarshal(d.Inputs, &rec); err != nil {
			t.Fatalf("decision inputs %s: %v", d.Inputs, err)
		}
		wantParams := *params
		wantParams.CreatedAt, wantParams.CreatedBy = time.Time{}, 0 // not recorded
		wantRec := obsqra.RiskScoreDecision{
			Protocol: "vesu", SampleID: got.Sample.ID, ObservedAt: at, Inputs: wantInputs, ParamsVersion: 1, Params: wantParams,
		}
		if !reflect.DeepEqual(rec, wantRec) {
			t.Errorf("decision inputs = %+v, want %+v", rec, wantRec)
		}
		var recOut obsqra.RiskScoreOutcome
		if err := json.Unmarshal(d.Output, &recOut); err != nil || recOut != outcome {
			t.Errorf("decision output %s = %+v, %v, want %+v", d.Output, recOut, err, outcome)
		}

		after := count(t, db)
		if want := (tally{before.Samples + 1, before.Scores + 1, before.Decisions + 1, before.Events + 2, 1, 5}); after != want {
			t.Errorf("after one ingestion: %+v, want %+v", after, want)
		}
		events, err = db.EventsAfter(ctx, lastEvent, 100)
		if err != nil || len(events) != 2 {
			t.Fatalf("EventsAfter(%d) = %d events, %v, want 2", lastEvent, len(events), err)
		}
		if events[0].Topic != obsqra.TopicMetricsIngested || events[1].Topic != obsqra.TopicRiskScored ||
			events[0].OwnerID != 0 || events[1].OwnerID != 0 {
			t.Errorf("events = %s (owner %d), %s (owner %d), want public %s, %s", events[0].Topic, events[0].OwnerID,
				events[1].Topic, events[1].OwnerID, obsqra.TopicMetricsIngested, obsqra.TopicRiskScored)
		}
		for _, e := range events {
			// The payloads still name the protocol's slug, for servers of
			// the previous version; the routing key is its id.
			var named struct {
				Protocol string `json:"protocol"`
			}
			if err := json.Unmarshal(e.Payload, &named); err != nil || named.Protocol != "vesu" || e.ProtocolID != vesu.ID {
				t.Errorf("%s event: protocol %q (%v), key %d, want \"vesu\", %d", e.Topic, named.Protocol, err, e.ProtocolID, vesu.ID)
			}
		}
		mp, err := obsqra.EventValue[obsqra.MetricsSample](&events[0])
		if err != nil {
			t.Fatalf("metrics payload %s: %v", events[0].Payload, err)
		}
		wantMP := &obsqra.MetricsSample{
			ProtocolID: vesu.ID, ID: wantSample.ID, ObservedAt: at, ApyBps: 600,
			TvlUsd: dec("20000000.5"), UtilizationBps: 7321, VolatilityBps: 100, LiquidityTier: 1,
			Source: obsqra.SourceSimulated, CreatedAt: now,
		}
		if !reflect.DeepEqual(mp, wantMP) {
			t.Errorf("metrics payload = %+v, want %+v", mp, wantMP)
		}
		rp, err := obsqra.EventValue[obsqra.RiskScore](&events[1])
		if err != nil {
			t.Fatalf("risk payload %s: %v", events[1].Payload, err)
		}
		wantRP := &obsqra.RiskScore{
			ProtocolID: vesu.ID, ID: wantRisk.ID, SampleID: wantSample.ID, ObservedAt: at,
			Score: outcome.Score, Components: outcome.Components, Inputs: wantInputs, ParamsVersion: 1,
			ModelVersion: obsqra.RiskModelVersion, ComputedAt: now, DecisionID: wantRisk.DecisionID,
		}
		if !reflect.DeepEqual(rp, wantRP) {
			t.Errorf("risk payload = %+v, want %+v", rp, wantRP)
		}
	})
}

func TestIngestMetricsIsForAdmins(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		in := []obsqra.MetricsInput{sample("nostra", t0, 500)}
		_, err := s.IngestMetrics(b.anon, in)
		checkErr(t, "IngestMetrics(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.IngestMetrics(b.user, in)
		checkErr(t, "IngestMetrics(user)", err, obsqra.EFORBIDDEN, "admin")
		big := make([]obsqra.MetricsInput, market.MaxIngestBatch+1)
		for i := range big {
			big[i] = sample("nostra", t0.Add(-time.Duration(i)*time.Second), 500)
		}
		_, err = s.IngestMetrics(b.admin, big)
		checkErr(t, "IngestMetrics(1001 samples)", err, obsqra.EINVALID, "1000")
		if n := count(t, db); n.Samples != 0 || n.Events != 0 {
			t.Fatalf("refused pushes stored %+v", n)
		}

		out, err := s.IngestMetrics(b.admin, in)
		if err != nil || len(out) != 1 || !out[0].Created || out[0].Sample.Source != obsqra.SourceAdmin {
			t.Fatalf("IngestMetrics(admin) = %+v, %v, want one created sample of source %q", out, err, obsqra.SourceAdmin)
		}
	})
}

func TestVolatility(t *testing.T) {
	t.Parallel()
	const d = obsqra.Date(20000)
	tests := []struct {
		name  string
		daily map[obsqra.Date]int
		want  int
	}{
		{"no days", nil, 0},
		{"one day", map[obsqra.Date]int{d: 500}, 0},
		{"one day in the window, one before it", map[obsqra.Date]int{d - 30: 100, d: 500}, 0},
		{"one day in the window, one after it", map[obsqra.Date]int{d: 100, d + 1: 500}, 0},
		{"100 200 300", map[obsqra.Date]int{d - 2: 100, d - 1: 200, d: 300}, 100},
		{"gaps count as nothing", map[obsqra.Date]int{d - 20: 100, d - 7: 200, d: 300}, 100},
		{"first and last day of the window", map[obsqra.Date]int{d - 31: -10000, d - 30: 9999, d - 29: 100, d: 300, d + 1: 9999}, 141},
		{"without the sample's own day", map[obsqra.Date]int{d - 2: 100, d - 1: 300}, 141},
		{"0.707 rounds up", map[obsqra.Date]int{d - 1: 0, d: 1}, 1},
		{"0.5 rounds up", map[obsqra.Date]int{d - 3: 0, d - 2: 0, d - 1: 0, d: 1}, 1},
		{"0.447 rounds down", map[obsqra.Date]int{d - 4: 0, d - 3: 0, d - 2: 0, d - 1: 0, d: 1}, 0},
		{"negative APYs", map[obsqra.Date]int{d - 1: -300, d: -100}, 141},
		{"extremes", map[obsqra.Date]int{d - 1: -10000, d: 1_000_000}, 714178},
	}
	for _, tt := range tests {
		if got := market.Volatility(tt.daily, d); got != tt.want {
			t.Errorf("Volatility(%s) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestIngestVolatility(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		vol := func(r market.Ingested) int { return r.Sample.VolatilityBps }
		checkVol := func(what string, r market.Ingested, want int) {
			t.Helper()
			if vol(r) != want || r.Risk.Inputs.Volatility != want {
				t.Errorf("%s: volatility %d, scored with %d, want %d", what, vol(r), r.Risk.Inputs.Volatility, want)
			}
		}

		// One protocol, one sample at a time.
		r := ingest(t, s, obsqra.SourceSimulated, sample("nostra", day(-3), 100))
		checkVol("first day", r[0], 0)
		r = ingest(t, s, obsqra.SourceSimulated, sample("nostra", day(-2).Add(-6*time.Hour), 999))
		checkVol("second day, morning", r[0], 636) // 100, 999
		r = ingest(t, s, obsqra.SourceSimulated, sample("nostra", day(-2).Add(6*time.Hour), 200))
		checkVol("second day, evening", r[0], 71) // 100, 200: the morning no longer counts
		r = ingest(t, s, obsqra.SourceAdmin, sample("nostra", day(-1), 300))
		checkVol("third day, another source", r[0], 100) // 100, 200, 300
		r = ingest(t, s, obsqra.SourceSimulated, sample("zklend", day(-1), 5000))
		checkVol("another protocol", r[0], 0)
		series, err := db.DailySeries(context.Background(), []int64{b.protocols["nostra"].ID}, obsqra.DateOf(day(-3)), obsqra.DateOf(t0))
		if got := series[b.protocols["nostra"].ID]; err != nil || len(got) != 3 || got[1].ApyBps != 200 {
			t.Errorf("DailySeries(nostra) = %+v, %v, want 3 days, the second at 200", got, err)
		}

		// A batch out of order is processed by observation time: ekubo's
		// samples come out as if ingested one by one, oldest first.
		r = ingest(t, s, obsqra.SourceSimulated,
			sample("ekubo", day(-1), 300),
			sample("ekubo", day(-3), 100),
			sample("ekubo", day(-2).Add(2*time.Hour), 200),
			sample("ekubo", day(-2), 900),
		)
		checkVol("batch: day 3", r[0], 100)
		checkVol("batch: day 1", r[1], 0)
		checkVol("batch: day 2, late", r[2], 71)
		checkVol("batch: day 2, early", r[3], 566) // 100, 900
		if !(r[1].Sample.ID < r[3].Sample.ID && r[3].Sample.ID < r[2].Sample.ID && r[2].Sample.ID < r[0].Sample.ID) {
			t.Errorf("batch sample ids %d %d %d %d are not in observation order",
				r[0].Sample.ID, r[1].Sample.ID, r[2].Sample.ID, r[3].Sample.ID)
		}

		// The window is 30 days including the sample's own day.
		r = ingest(t, s, obsqra.SourceSimulated,
			sample("jediswap", day(-30), 100_000),
			sample("jediswap", day(-29), 100),
			sample("jediswap", day(0), 300),
		)
		checkVol("window: day -30", r[0], 0)
		checkVol("window: day -29", r[1], 70640) // 100000, 100
		checkVol("window: day 0", r[2], 141)     // 100, 300; day -30 is out
	})
}

// TestIngestVolatilityLateSample: a sample older than its day's recorded
// last one must not stand in for that day in the volatility of later days,
// whether they come in the same batch or in another.
func TestIngestVolatilityLateSample(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		evening, morning, next := day(-2).Add(6*time.Hour), day(-2).Add(-6*time.Hour), day(-1)

		ingest(t, s, obsqra.SourceSimulated, sample("nostra", evening, 500), sample("zklend", evening, 500))
		// Same batch for nostra, separate batches for zklend.
		r := ingest(t, s, obsqra.SourceAdmin, sample("nostra", morning, 100), sample("nostra", next, 200))
		late := ingest(t, s, obsqra.SourceAdmin, sample("zklend", morning, 100))
		following := ingest(t, s, obsqra.SourceAdmin, sample("zklend", next, 200))

		// As of the morning, its own day is its own APY; the next day sees
		// the day's last sample, the evening's: 500, 200.
		for _, c := range []struct {
			what string
			r    market.Ingested
			want int
		}{
			{"nostra morning", r[0], 0}, {"nostra next day", r[1], 212},
			{"zklend morning", late[0], 0}, {"zklend next day", following[0], 212},
		} {
			if c.r.Sample.VolatilityBps != c.want {
				t.Errorf("%s: volatility %d, want %d", c.what, c.r.Sample.VolatilityBps, c.want)
			}
		}
		for _, slug := range []string{"nostra", "zklend"} {
			id := b.protocols[slug].ID
			series, err := db.DailySeries(ctx, []int64{id}, obsqra.DateOf(evening), obsqra.DateOf(evening))
			if got := series[id]; err != nil || len(got) != 1 || got[0].ApyBps != 500 {
				t.Errorf("DailySeries(%s) of the late sample's day = %+v, %v, want the evening's 500", slug, got, err)
			}
		}
	})
}

func TestLiquidityTier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tvl  *obsqra.Decimal
		want int
	}{
		{dec("1000000000000"), 0},
		{dec("50000000"), 0},
		{dec("50000000.000"), 0},
		{dec("49999999.99"), 1},
		{dec("10000000"), 1},
		{dec("9999999.999999999999999999"), 2},
		{dec("1000000"), 2},
		{dec("999999"), 3},
		{dec("0"), 3},
		{nil, 2},
	}
	for _, tt := range tests {
		if got := market.LiquidityTier(tt.tvl, market.DefaultTierThresholds); got != tt.want {
			t.Errorf("LiquidityTier(%v) = %d, want %d", tt.tvl, got, tt.want)
		}
	}
}

func TestNewTierThresholds(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	for _, th := range [][3]string{
		{"10000000", "50000000", "1000000"},
		{"50000000", "50000000", "1000000"},
		{"50000000", "1000000", "1000000"},
		{"50000000", "10000000", "-1"},
		{"0", "0", "0"},
	} {
		cfg := market.Config{TierThresholds: [3]obsqra.Decimal{
			obsqra.MustDecimal(th[0]), obsqra.MustDecimal(th[1]), obsqra.MustDecimal(th[2])}}
		_, err := market.New(db, newDecisions(t, db), cfg)
		checkErr(t, fmt.Sprintf("New(thresholds %v)", th), err, obsqra.EINVALID, "descending")
	}

	// Thresholds of its own are what ingestion derives tiers with.
	s, _ := setup(t, db, func(c *market.Config) {
		c.TierThresholds = [3]obsqra.Decimal{obsqra.MustDecimal("300"), obsqra.MustDecimal("200"), obsqra.MustDecimal("0")}
	})
	for i, c := range []struct {
		tvl  string
		want int
	}{{"300", 0}, {"299.5", 1}, {"200", 1}, {"199.99", 2}, {"0", 2}} {
		in := sample("nostra", t0.Add(-time.Duration(i+1)*time.Minute), 500)
		in.TvlUsd = dec(c.tvl)
		if r := ingest(t, s, obsqra.SourceAdmin, in); r[0].Sample.LiquidityTier != c.want || r[0].Risk.Inputs.Liquidity != c.want {
			t.Errorf("tier of TVL %s with thresholds 300, 200, 0 = %d (scored %d), want %d", c.tvl,
				r[0].Sample.LiquidityTier, r[0].Risk.Inputs.Liquidity, c.want)
		}
	}
	in := sample("nostra", t0, 500)
	in.TvlUsd = nil
	if r := ingest(t, s, obsqra.SourceAdmin, in); r[0].Sample.LiquidityTier != 2 || r[0].Sample.TvlUsd != nil {
		t.Errorf("unknown TVL: tier %d, TVL %v, want 2, nil", r[0].Sample.LiquidityTier, r[0].Sample.TvlUsd)
	}
}

func TestIngestValidation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, _ := setup(t, db)
		good := func(i int) obsqra.MetricsInput { return sample("nostra", t0.Add(-time.Duration(i)*time.Hour), 500) }
		with := func(f func(*obsqra.MetricsInput)) []obsqra.MetricsInput {
			bad := good(1)
			f(&bad)
			return []obsqra.MetricsInput{good(0), bad, good(2)}
		}
		tests := []struct {
			name   string
			inputs []obsqra.MetricsInput
			want   string
		}{
			{"unknown protocol", with(func(in *obsqra.MetricsInput) { in.Protocol = "nope" }), "input[1].protocol"},
			{"no protocol", with(func(in *obsqra.MetricsInput) { in.Protocol = "" }), "input[1].protocol"},
			{"negative TVL", with(func(in *obsqra.MetricsInput) { in.TvlUsd = dec("-0.01") }), "input[1].tvlUsd"},
			{"utilization 10001", with(func(in *obsqra.MetricsInput) { in.UtilizationBps = 10001 }), "input[1].utilizationBps"},
			{"utilization -1", with(func(in *obsqra.MetricsInput) { in.UtilizationBps = -1 }), "input[1].utilizationBps"},
			{"observed in the future", with(func(in *obsqra.MetricsInput) { in.ObservedAt = t0.Add(time.Minute + time.Microsecond) }), "input[1].observedAt"},
			{"observed at zero", with(func(in *obsqra.MetricsInput) { in.ObservedAt = time.Time{} }), "input[1].observedAt"},
			{"observed before 2009", with(func(in *obsqra.MetricsInput) { in.ObservedAt = time.Date(2008, 12, 31, 0, 0, 0, 0, time.UTC) }), "input[1].observedAt"},
			{"apy too high", with(func(in *obsqra.MetricsInput) { in.ApyBps = 1_000_001 }), "input[1].apyBps"},
			{"apy too low", with(func(in *obsqra.MetricsInput) { in.ApyBps = -10001 }), "input[1].apyBps"},
			{"first of one", []obsqra.MetricsInput{{Protocol: "nope", ObservedAt: t0}}, "input[0].protocol"},
			{"last of three", []obsqra.MetricsInput{good(0), good(1), {Protocol: "nostra", ObservedAt: t0, UtilizationBps: 10001}}, "input[2].utilizationBps"},
		}
		for _, tt := range tests {
			_, err := s.Ingest(context.Background(), obsqra.SourceSimulated, tt.inputs)
			checkErr(t, "Ingest("+tt.name+")", err, obsqra.EINVALID, tt.want)
			if n := count(t, db); n.Samples != 0 || n.Scores != 0 || n.Decisions != 0 || n.Events != 0 {
				t.Fatalf("Ingest(%s) stored %+v, want nothing", tt.name, n)
			}
		}

		// The limits themselves are accepted.
		out := ingest(t, s, obsqra.SourceSimulated,
			obsqra.MetricsInput{Protocol: "nostra", ObservedAt: t0.Add(time.Minute), ApyBps: 1_000_000, UtilizationBps: 10000, TvlUsd: dec("0")},
			obsqra.MetricsInput{Protocol: "zklend", ObservedAt: t0, ApyBps: -10000, UtilizationBps: 0},
		)
		for _, r := range out {
			if !r.Created {
				t.Errorf("Ingest(limit values) of %d not created", r.Sample.ProtocolID)
			}
		}
		if out, err := s.Ingest(context.Background(), obsqra.SourceSimulated, nil); err != nil || len(out) != 0 {
			t.Errorf("Ingest(nothing) = %v, %v, want nothing", out, err)
		}
	})
}

func TestIngestIdempotent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		in := sample("ekubo", t0.Add(-time.Minute), 420)
		first := ingest(t, s, obsqra.SourceSimulated, in)[0]
		before := count(t, db)

		b.clock.Advance(time.Hour)
		again := in
		again.TvlUsd = dec("20000000.000") // the same number
		second := ingest(t, s, obsqra.SourceSimulated, again)[0]
		if second.Created || !reflect.DeepEqual(second.Sample, first.Sample) || !reflect.DeepEqual(second.Risk, first.Risk) {
			t.Errorf("Ingest(same sample) = %+v, want Created false and the first %+v", second, first)
		}
		// Twice in one batch, together with one new sample.
		out := ingest(t, s, obsqra.SourceSimulated, in, sample("ekubo", t0, 430), in)
		if out[0].Created || !out[1].Created || out[2].Created || out[2].Risk.ID != first.Risk.ID {
			t.Errorf("Ingest(old, new, old) Created = %t %t %t, want false true false", out[0].Created, out[1].Created, out[2].Created)
		}
		if n := count(t, db); n != (tally{before.Samples + 1, before.Scores + 1, before.Decisions + 1, before.Events + 2, 1, 5}) {
			t.Errorf("repeated samples stored %+v, want only the new one over %+v", n, before)
		}
		before = count(t, db)

		for _, c := range []struct {
			name string
			f    func(*obsqra.MetricsInput)
		}{
			{"another APY", func(in *obsqra.MetricsInput) { in.ApyBps++ }},
			{"another utilization", func(in *obsqra.MetricsInput) { in.UtilizationBps++ }},
			{"another TVL", func(in *obsqra.MetricsInput) { in.TvlUsd = dec("20000000.01") }},
			{"no TVL", func(in *obsqra.MetricsInput) { in.TvlUsd = nil }},
		} {
			changed := in
			c.f(&changed)
			_, err := s.Ingest(context.Background(), obsqra.SourceSimulated, []obsqra.MetricsInput{sample("nostra", t0.Add(-2*time.Minute), 1), changed})
			checkErr(t, "Ingest(same key, "+c.name+")", err, obsqra.ECONFLICT, "input[1]", "ekubo")
			if n := count(t, db); n != before {
				t.Errorf("Ingest(same key, %s) stored %+v, want %+v", c.name, n, before)
			}
		}

		// The key is protocol, observation time and source.
		if r := ingest(t, s, obsqra.SourceAdmin, in)[0]; !r.Created || r.Sample.ID == first.Sample.ID {
			t.Errorf("Ingest(same sample from another source) = %+v, want a new sample", r)
		}
	})
}

func TestSetRiskParams(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		v1, err := s.RiskParams(ctx)
		if err != nil || v1.Version != 1 {
			t.Fatalf("RiskParams() = %+v, %v, want version 1", v1, err)
		}
		ptr := func(v int) *int { return &v }
		patch := obsqra.RiskParamsPatch{WUtilization: ptr(50), WVolatility: ptr(10), ClampMax: ptr(90)}

		_, err = s.SetRiskParams(b.anon, patch)
		checkErr(t, "SetRiskParams(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.SetRiskParams(b.user, patch)
		checkErr(t, "SetRiskParams(user)", err, obsqra.EFORBIDDEN)
		_, err = s.SetRiskParams(b.admin, obsqra.RiskParamsPatch{ClampMin: ptr(96)})
		checkErr(t, "SetRiskParams(clampMin 96 > clampMax 95)", err, obsqra.EINVALID, "clampMin")
		_, err = s.SetRiskParams(b.admin, obsqra.RiskParamsPatch{AgeCapDays: ptr(0)})
		checkErr(t, "SetRiskParams(ageCapDays 0)", err, obsqra.EINVALID, "ageCapDays")
		_, err = s.SetRiskParams(b.admin, obsqra.RiskParamsPatch{WAudit: ptr(-1)})
		checkErr(t, "SetRiskParams(wAudit -1)", err, obsqra.EINVALID, "wAudit")
		if n := count(t, db); n.ParamsVersion != 1 {
			t.Fatalf("refused parameter changes left version %d, want 1", n.ParamsVersion)
		}

		early := ingest(t, s, obsqra.SourceSimulated, sample("zklend", t0.Add(-time.Hour), 700))[0]
		b.clock.Advance(time.Minute)
		v2, err := s.SetRiskParams(b.admin, patch)
		if err != nil {
			t.Fatalf("SetRiskParams(%+v) = %v", patch, err)
		}
		want := *v1
		want.Version, want.WUtilization, want.WVolatility, want.ClampMax = 2, 50, 10, 90
		want.CreatedBy, want.CreatedAt = b.adminID, b.clock.Now()
		if !reflect.DeepEqual(*v2, want) {
			t.Errorf("SetRiskParams(%+v) = %+v, want %+v", patch, v2, want)
		}
		if active, err := s.RiskParams(ctx); err != nil || !reflect.DeepEqual(*active, want) {
			t.Errorf("RiskParams() after the change = %+v, %v, want %+v", active, err, want)
		}

		late := ingest(t, s, obsqra.SourceSimulated, sample("zklend", t0, 900))[0]
		if late.Risk.ParamsVersion != 2 {
			t.Errorf("score after the change has params version %d, want 2", late.Risk.ParamsVersion)
		}
		checkScored(t, late.Risk, *v2)
		if ref := reference(t, late.Risk.Inputs, *v1); ref.Score == late.Risk.Score && ref.Components == late.Risk.Components {
			t.Errorf("the test's patch does not change the score of %+v", late.Risk.Inputs)
		}
		if got, err := db.RiskScore(ctx, early.Risk.ID); err != nil || !reflect.DeepEqual(*got, early.Risk) || got.ParamsVersion != 1 {
			t.Errorf("earlier score after the change = %+v, %v, want it unchanged at version 1: %+v", got, err, early.Risk)
		}
		checkScored(t, early.Risk, *v1)
		for _, r := range []market.Ingested{early, late} {
			v, err := b.decisions.Verify(ctx, r.Risk.DecisionID)
			if err != nil || !v.Matches || !v.ChainValid {
				t.Errorf("VerifyDecision(%d) = %+v, %v, want a match on a valid chain", r.Risk.DecisionID, v, err)
			}
		}

		// A patch merges over the active version, not the seeded one.
		v3, err := s.SetRiskParams(b.admin, obsqra.RiskParamsPatch{WAudit: ptr(4)})
		if err != nil || v3.Version != 3 || v3.WAudit != 4 || v3.WUtilization != 50 || v3.ClampMax != 90 || v3.WAge != v1.WAge {
			t.Errorf("SetRiskParams(wAudit 4) = %+v, %v, want version 3 over version 2", v3, err)
		}
	})
}

func TestPreviewRisk(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		v1, err := s.RiskParams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ptr := func(v int) *int { return &v }
		patch := &obsqra.RiskParamsPatch{WVolatility: ptr(100), WLiquidity2: ptr(1), ClampMin: ptr(0), ClampMax: ptr(100)}
		merged := patch.Apply(*v1)

		for _, in := range []obsqra.RiskInputs{
			{Utilization: 8000, Volatility: 1500, Liquidity: 2, AuditScore: 70, AgeDays: 100},
			{Utilization: 10000, Volatility: 9000, Liquidity: 3, AuditScore: 0, AgeDays: 0}, // clamped at the top
			{},
		} {
			got, err := s.PreviewRisk(b.anon, in, nil)
			if err != nil {
				t.Fatalf("PreviewRisk(%+v) = %v", in, err)
			}
			want := reference(t, in, *v1)
			wantRisk := obsqra.RiskScore{Score: want.Score, Components: want.Components, Inputs: in,
				ModelVersion: obsqra.RiskModelVersion, ComputedAt: t0}
			if !reflect.DeepEqual(*got, wantRisk) {
				t.Errorf("PreviewRisk(%+v) = %+v, want %+v", in, got, wantRisk)
			}

			got, err = s.PreviewRisk(b.anon, in, patch)
			if err != nil {
				t.Fatalf("PreviewRisk(%+v, patch) = %v", in, err)
			}
			want = reference(t, in, merged)
			wantRisk.Score, wantRisk.Components = want.Score, want.Components
			if !reflect.DeepEqual(*got, wantRisk) {
				t.Errorf("PreviewRisk(%+v, patch) = %+v, want %+v", in, got, wantRisk)
			}
		}
		if a, c := reference(t, obsqra.RiskInputs{Utilization: 8000, Volatility: 1500, Liquidity: 2, AuditScore: 70, AgeDays: 100}, *v1),
			reference(t, obsqra.RiskInputs{Utilization: 8000, Volatility: 1500, Liquidity: 2, AuditScore: 70, AgeDays: 100}, merged); a == c {
			t.Errorf("the test's patch does not change the preview: %+v", a)
		}

		_, err = s.PreviewRisk(b.anon, obsqra.RiskInputs{Liquidity: 4}, nil)
		checkErr(t, "PreviewRisk(liquidity 4)", err, obsqra.EINVALID, "liquidity")
		_, err = s.PreviewRisk(b.anon, obsqra.RiskInputs{Utilization: 10001}, nil)
		checkErr(t, "PreviewRisk(utilization 10001)", err, obsqra.EINVALID, "utilization")
		_, err = s.PreviewRisk(b.anon, obsqra.RiskInputs{}, &obsqra.RiskParamsPatch{ClampMax: ptr(101)})
		checkErr(t, "PreviewRisk(clampMax 101)", err, obsqra.EINVALID, "clampMax")

		if n := count(t, db); n != (tally{0, 0, 0, 0, 1, 5}) {
			t.Errorf("previews stored %+v, want nothing", n)
		}
	})
}

func TestVerifyDecision(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		out := ingest(t, s, obsqra.SourceSimulated,
			sample("nostra", day(-1), 300), sample("zklend", day(-1), 400), sample("nostra", t0, 350))
		for _, r := range out {
			v, err := b.decisions.Verify(ctx, r.Risk.DecisionID)
			if err != nil {
				t.Fatalf("VerifyDecision(%d) = %v", r.Risk.DecisionID, err)
			}
			d, _ := db.Decision(ctx, r.Risk.DecisionID)
			if !v.Matches || !v.ChainValid || v.BrokenAt != 0 || !reflect.DeepEqual(v.Decision, d) ||
				string(v.Recomputed) != string(d.Output) {
				t.Errorf("VerifyDecision(%d) = %+v, want a match on a valid chain recomputing %s", r.Risk.DecisionID, v, d.Output)
			}
		}

		// A decision of a kind the market does not make is not its to recompute.
		other := obsqra.Decision{Kind: "REBALANCE", Inputs: obsqra.JSONObject(`{"x":1}`), Output: obsqra.JSONObject(`{}`), ModelVersion: "other-v1"}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return b.decisions.Append(ctx, tx, &other) }); err != nil {
			t.Fatalf("AppendDecision(REBALANCE) = %v", err)
		}
		_, err := b.decisions.Verify(ctx, other.ID)
		checkErr(t, "VerifyDecision(REBALANCE decision) by a user", err, obsqra.ENOTFOUND)
		_, err = b.decisions.Verify(b.admin, other.ID)
		checkErr(t, "VerifyDecision(REBALANCE decision) by an admin", err, obsqra.EINVALID, "REBALANCE")

		_, err = b.decisions.Verify(ctx, 999)
		checkErr(t, "VerifyDecision(999)", err, obsqra.ENOTFOUND)
	})
}

func TestUpsertProtocol(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		in := obsqra.ProtocolInput{
			Slug: " myswap ", Name: " MySwap ", Chain: " StarkNet ", Category: obsqra.CategoryDEX, AuditScore: 75,
			LaunchedOn: obsqra.DateOf(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), Enabled: true,
			SourceIDs: map[string]string{"defillama_project": "myswap"},
		}
		_, err := s.UpsertProtocol(b.anon, in)
		checkErr(t, "UpsertProtocol(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.UpsertProtocol(b.user, in)
		checkErr(t, "UpsertProtocol(user)", err, obsqra.EFORBIDDEN)
		if _, err := s.Protocol(ctx, "myswap"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Fatalf("Protocol(myswap) after refused upserts = %v, want ENOTFOUND", err)
		}

		tests := []struct {
			name  string
			f     func(*obsqra.ProtocolInput)
			field string
		}{
			{"uppercase slug", func(in *obsqra.ProtocolInput) { in.Slug = "MySwap" }, "slug"},
			{"underscore in slug", func(in *obsqra.ProtocolInput) { in.Slug = "my_swap" }, "slug"},
			{"slug starting with a dash", func(in *obsqra.ProtocolInput) { in.Slug = "-myswap" }, "slug"},
			{"empty slug", func(in *obsqra.ProtocolInput) { in.Slug = "" }, "slug"},
			{"slug of 64", func(in *obsqra.ProtocolInput) { in.Slug = strings.Repeat("a", 64) }, "slug"},
			{"empty name", func(in *obsqra.ProtocolInput) { in.Name = " " }, "name"},
			{"audit 101", func(in *obsqra.ProtocolInput) { in.AuditScore = 101 }, "auditScore"},
			{"audit -1", func(in *obsqra.ProtocolInput) { in.AuditScore = -1 }, "auditScore"},
			{"launched tomorrow", func(in *obsqra.ProtocolInput) { in.LaunchedOn = obsqra.DateOf(t0) + 1 }, "launchedOn"},
			{"launched before 2009", func(in *obsqra.ProtocolInput) { in.LaunchedOn = 0 }, "launchedOn"},
			{"bad category", func(in *obsqra.ProtocolInput) { in.Category = "BANK" }, "category"},
			{"no category", func(in *obsqra.ProtocolInput) { in.Category = "" }, "category"},
			{"no chain", func(in *obsqra.ProtocolInput) { in.Chain = "" }, "chain"},
			{"empty source id key", func(in *obsqra.ProtocolInput) { in.SourceIDs = map[string]string{"": "x"} }, "sourceIds"},
		}
		for _, tt := range tests {
			bad := in
			tt.f(&bad)
			_, err := s.UpsertProtocol(b.admin, bad)
			checkErr(t, "UpsertProtocol("+tt.name+")", err, obsqra.EINVALID, tt.field)
		}
		if n := count(t, db); n.Protocols != 5 {
			t.Fatalf("refused upserts left %d protocols, want 5", n.Protocols)
		}

		b.clock.Advance(time.Minute)
		created, err := s.UpsertProtocol(b.admin, in)
		if err != nil {
			t.Fatalf("UpsertProtocol(admin) = %v", err)
		}
		want := obsqra.Protocol{
			ID: created.ID, Slug: "myswap", Name: "MySwap", Chain: "starknet", Category: obsqra.CategoryDEX, AuditScore: 75,
			LaunchedOn: in.LaunchedOn, Enabled: true, SourceIDs: in.SourceIDs,
			CreatedAt: b.clock.Now(), UpdatedAt: b.clock.Now(),
		}
		if !reflect.DeepEqual(*created, want) {
			t.Errorf("UpsertProtocol(admin) = %+v, want %+v", created, want)
		}
		if got, err := s.Protocol(ctx, "myswap"); err != nil || !reflect.DeepEqual(got, created) {
			t.Errorf("Protocol(myswap) = %+v, %v, want %+v", got, err, created)
		}

		b.clock.Advance(time.Minute)
		in.AuditScore, in.LaunchedOn = 80, obsqra.DateOf(t0) // launched today is not the future
		updated, err := s.UpsertProtocol(b.admin, in)
		if err != nil || updated.ID != created.ID || updated.AuditScore != 80 || !updated.CreatedAt.Equal(created.CreatedAt) ||
			!updated.UpdatedAt.Equal(b.clock.Now()) {
			t.Errorf("UpsertProtocol(admin, again) = %+v, %v, want protocol %d with audit 80 updated now", updated, err, created.ID)
		}

		// A new protocol's samples are scored with its audit and age.
		r := ingest(t, s, obsqra.SourceAdmin, sample("myswap", t0, 500))[0]
		if r.Risk.Inputs.AuditScore != 80 || r.Risk.Inputs.AgeDays != 0 || r.Risk.ProtocolID != created.ID {
			t.Errorf("score of myswap's sample = %+v, want audit 80, age 0", r.Risk)
		}
	})
}

func TestSetProtocolEnabled(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		_, err := s.SetProtocolEnabled(b.anon, "vesu", false)
		checkErr(t, "SetProtocolEnabled(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.SetProtocolEnabled(b.user, "vesu", false)
		checkErr(t, "SetProtocolEnabled(user)", err, obsqra.EFORBIDDEN)
		if p, err := s.Protocol(ctx, "vesu"); err != nil || !p.Enabled {
			t.Fatalf("Protocol(vesu) after refused changes = %+v, %v, want enabled", p, err)
		}

		b.clock.Advance(time.Minute)
		p, err := s.SetProtocolEnabled(b.admin, "vesu", false)
		if err != nil {
			t.Fatalf("SetProtocolEnabled(vesu, false) = %v", err)
		}
		if p.Enabled || p.Slug != "vesu" || !p.UpdatedAt.Equal(b.clock.Now()) {
			t.Errorf("SetProtocolEnabled(vesu, false) = %+v, want vesu disabled now", p)
		}
		if got, err := s.ProtocolByID(ctx, p.ID); err != nil || got.Enabled {
			t.Errorf("ProtocolByID(vesu) = %+v, %v, want disabled", got, err)
		}
		if p, err := s.SetProtocolEnabled(b.admin, "vesu", true); err != nil || !p.Enabled {
			t.Errorf("SetProtocolEnabled(vesu, true) = %+v, %v, want enabled", p, err)
		}
		_, err = s.SetProtocolEnabled(b.admin, "nope", true)
		checkErr(t, "SetProtocolEnabled(nope)", err, obsqra.ENOTFOUND, `"nope"`)
	})
}

// fakeSource is a feed that answers from a formula and records what it
// was asked.
type fakeSource struct {
	mu sync.Mutex
	// days is how many days of history it has.
	days int
	// skew is how far ahead of the clock its current samples are stamped.
	skew       time.Duration
	historyErr error
	pollErr    error
	histories  []historyCall
	polls      []pollCall
}

type historyCall struct {
	slugs []string
	now   time.Time
	days  int
}

type pollCall struct {
	slugs []string
	last  map[int64]obsqra.MetricsSample
	now   time.Time
}

func slugs(ps []obsqra.Protocol) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Slug)
	}
	return out
}

func (f *fakeSource) Name() string { return "fake" }

func (f *fakeSource) History(ctx context.Context, protocols []obsqra.Protocol, now time.Time, days int) ([]obsqra.MetricsInput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.histories = append(f.histories, historyCall{slugs(protocols), now, days})
	if f.historyErr != nil {
		return nil, f.historyErr
	}
	var out []obsqra.MetricsInput
	today := obsqra.DateOf(now)
	for _, p := range protocols {
		for d := min(days, f.days); d >= 1; d-- {
			out = append(out, obsqra.MetricsInput{
				Protocol: p.Slug, ObservedAt: (today - obsqra.Date(d)).Time().Add(12 * time.Hour),
				ApyBps: 300 + (d*37+int(p.ID)*11)%200, TvlUsd: dec("30000000"), UtilizationBps: 4000 + 10*d,
			})
		}
	}
	return out, nil
}

func (f *fakeSource) Poll(ctx context.Context, protocols []obsqra.Protocol, last map[int64]obsqra.MetricsSample, now time.Time) ([]obsqra.MetricsInput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls = append(f.polls, pollCall{slugs(protocols), last, now})
	if f.pollErr != nil {
		return nil, f.pollErr
	}
	var out []obsqra.MetricsInput
	for _, p := range protocols {
		out = append(out, obsqra.MetricsInput{
			Protocol: p.Slug, ObservedAt: now.Add(f.skew), ApyBps: 400 + 7*int(p.ID) + 3*len(f.polls),
			TvlUsd: dec("60000000"), UtilizationBps: 6000,
		})
	}
	return out, nil
}

func (f *fakeSource) set(historyErr, pollErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.historyErr, f.pollErr = historyErr, pollErr
}

func (f *fakeSource) calls() ([]historyCall, []pollCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.histories), slices.Clone(f.polls)
}

func TestPollBackfillsThenPolls(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		src := &fakeSource{days: 40}
		s, b := setup(t, db, withSource(src), func(c *market.Config) { c.HistoryDays = 40 })
		ctx := context.Background()
		if _, err := s.SetProtocolEnabled(b.admin, "vesu", false); err != nil {
			t.Fatal(err)
		}
		enabled := []string{"ekubo", "jediswap", "nostra", "zklend"}
		var ids []int64
		for _, slug := range enabled {
			ids = append(ids, b.protocols[slug].ID)
		}

		if err := s.Poll(ctx); err != nil {
			t.Fatalf("first Poll() = %v", err)
		}
		histories, polls := src.calls()
		if len(histories) != 1 || !slices.Equal(histories[0].slugs, enabled) || histories[0].days != 40 || !histories[0].now.Equal(t0) {
			t.Fatalf("first Poll() asked for history %+v, want once, of %v, 40 days to %v", histories, enabled, t0)
		}
		if len(polls) != 1 || !slices.Equal(polls[0].slugs, enabled) || !polls[0].now.Equal(t0) {
			t.Fatalf("first Poll() polled %+v, want once, %v at %v", polls, enabled, t0)
		}
		// The feed evolves from its own last samples: after the history,
		// those of yesterday.
		for _, id := range ids {
			if m, ok := polls[0].last[id]; !ok || !m.ObservedAt.Equal(day(-1)) || m.Source != "fake" {
				t.Errorf("first Poll() last[%d] = %+v, want yesterday's fake sample", id, m)
			}
		}
		// Events: two per sample, and vesu's market.changed.
		if n := count(t, db); n != (tally{4 * 41, 4 * 41, 4 * 41, 2*4*41 + 1, 1, 5}) {
			t.Errorf("after the first Poll(): %+v, want 40 days and a current sample of 4 protocols", n)
		}
		series, err := db.DailySeries(ctx, ids, obsqra.DateOf(day(-40)), obsqra.DateOf(t0))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if len(series[id]) != 41 {
				t.Errorf("DailySeries(%d) has %d days, want 41", id, len(series[id]))
			}
		}
		latest, err := s.LatestMetrics(ctx, append(ids, b.protocols["vesu"].ID))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := latest[b.protocols["vesu"].ID]; ok || len(latest) != 4 {
			t.Errorf("LatestMetrics() = %+v, want the 4 enabled protocols", latest)
		}
		for _, id := range ids {
			m := latest[id]
			daily := make(map[obsqra.Date]int)
			for _, p := range series[id] {
				daily[p.Day] = p.ApyBps
			}
			if !m.ObservedAt.Equal(t0) || m.Stale || m.VolatilityBps != market.Volatility(daily, obsqra.DateOf(t0)) || m.LiquidityTier != 0 {
				t.Errorf("LatestMetrics()[%d] = %+v, want a fresh tier 0 sample at %v with the 30-day volatility", id, m, t0)
			}
		}

		b.clock.Advance(10 * time.Second)
		if err := s.Poll(ctx); err != nil {
			t.Fatalf("second Poll() = %v", err)
		}
		histories, polls = src.calls()
		if len(histories) != 1 || len(polls) != 2 {
			t.Errorf("second Poll() made %d history and %d poll calls in all, want 1 and 2", len(histories), len(polls))
		}
		for _, id := range ids {
			if m := polls[1].last[id]; !m.ObservedAt.Equal(t0) {
				t.Errorf("second Poll() last[%d] observed at %v, want %v", id, m.ObservedAt, t0)
			}
		}
		if n := count(t, db); n.Samples != 4*42 || n.Events != 2*4*42+1 {
			t.Errorf("after the second Poll(): %+v, want 4 more samples", n)
		}

		// A restarted server finds history and does not ask again.
		s2, err := market.New(db, newDecisions(t, db), market.Config{Source: src, Now: b.clock.Now, PollInterval: 10 * time.Second, HistoryDays: 40})
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(10 * time.Second)
		if err := s2.Poll(ctx); err != nil {
			t.Fatalf("Poll() after a restart = %v", err)
		}
		if histories, _ := src.calls(); len(histories) != 1 {
			t.Errorf("Poll() after a restart asked for history again")
		}

		last, err := db.Decision(ctx, int64(count(t, db).Decisions))
		if err != nil {
			t.Fatal(err)
		}
		if v, err := b.decisions.Verify(ctx, last.ID); err != nil || !v.ChainValid || !v.Matches {
			t.Errorf("VerifyDecision(%d) after polls = %+v, %v, want a match on a valid chain", last.ID, v, err)
		}
	})
}

func TestPollFeedFailures(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		src := &fakeSource{days: 3}
		s, b := setup(t, db, withSource(src))
		ctx := context.Background()

		// The history fails: nothing is stored and the next poll asks again.
		down := errors.New("connection refused")
		src.set(down, nil)
		err := s.Poll(ctx)
		if !errors.Is(err, down) || !strings.Contains(err.Error(), "fake") {
			t.Fatalf("Poll() with failing history = %v, want %v naming the source", err, down)
		}
		if n := count(t, db); n.Samples != 0 || n.Events != 0 {
			t.Fatalf("Poll() with failing history stored %+v", n)
		}
		if _, polls := src.calls(); len(polls) != 0 {
			t.Errorf("Poll() with failing history polled anyway")
		}
		src.set(nil, nil)
		if err := s.Poll(ctx); err != nil {
			t.Fatalf("Poll() after the history recovers = %v", err)
		}
		histories, _ := src.calls()
		want := count(t, db)
		if len(histories) != 2 || want.Samples != 5*4 {
			t.Fatalf("Poll() after the history recovers: %d history calls, %+v, want 2 and 5×(3+1) samples", len(histories), want)
		}

		// The poll fails: the data stays.
		b.clock.Advance(10 * time.Second)
		src.set(nil, down)
		err = s.Poll(ctx)
		if !errors.Is(err, down) || !strings.Contains(err.Error(), "fake") {
			t.Errorf("Poll() with a failing feed = %v, want %v naming the source", err, down)
		}
		if n := count(t, db); n != want {
			t.Errorf("Poll() with a failing feed left %+v, want %+v", n, want)
		}

		// A source sending what ingestion refuses is an error too.
		src.set(nil, nil)
		if err := s.Poll(ctx); err != nil {
			t.Fatalf("Poll() = %v", err)
		}
		src.mu.Lock()
		src.skew = 2 * time.Minute // beyond the minute of skew ingestion allows
		src.mu.Unlock()
		b.clock.Advance(10 * time.Second)
		err = s.Poll(ctx)
		checkErr(t, "Poll() of samples in the future", err, obsqra.EINVALID, "observedAt")
		if err == nil || !strings.Contains(err.Error(), "fake") {
			t.Errorf("Poll() of samples in the future = %v, want an error naming the source", err)
		}

		// Without protocols to follow, the source is not asked.
		for slug := range b.protocols {
			if _, err := s.SetProtocolEnabled(b.admin, slug, false); err != nil {
				t.Fatal(err)
			}
		}
		_, before := src.calls()
		if err := s.Poll(ctx); err != nil {
			t.Errorf("Poll() without enabled protocols = %v", err)
		}
		if _, after := src.calls(); len(after) != len(before) {
			t.Errorf("Poll() without enabled protocols polled the source")
		}

		// Without a source there is nothing to poll.
		none, _ := setup(t, storetest.SQLite(t))
		if err := none.Poll(ctx); err != nil || none.SourceName() != "none" {
			t.Errorf("Poll() without a source = %v (source %q), want nil (none)", err, none.SourceName())
		}
	})
}

func TestServiceLatestMetricsStale(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		src := &fakeSource{}
		s, b := setup(t, db, withSource(src), func(c *market.Config) { c.PollInterval = 10 * time.Second })
		ctx := context.Background()
		if s.SourceName() != "fake" {
			t.Errorf("SourceName() = %q, want fake", s.SourceName())
		}
		if _, err := s.SetProtocolEnabled(b.admin, "vesu", false); err != nil {
			t.Fatal(err)
		}
		// vesu's latest sample is pushed by an admin: never stale.
		if _, err := s.IngestMetrics(b.admin, []obsqra.MetricsInput{sample("vesu", t0.Add(-time.Hour), 500)}); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, p := range b.protocols {
			ids = append(ids, p.ID)
		}
		vesu := b.protocols["vesu"].ID
		check := func(what string, wantStale bool) {
			t.Helper()
			latest, err := s.LatestMetrics(ctx, ids)
			if err != nil || len(latest) != 5 {
				t.Fatalf("LatestMetrics() %s = %d samples, %v, want 5", what, len(latest), err)
			}
			for id, m := range latest {
				if want := wantStale && id != vesu; m.Stale != want {
					t.Errorf("LatestMetrics() %s: %s sample of %d observed at %v is stale %t, want %t",
						what, m.Source, id, m.ObservedAt, m.Stale, want)
				}
			}
		}

		if err := s.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		check("after a poll", false)
		b.clock.Advance(30 * time.Second)
		check("three intervals later", false)
		b.clock.Advance(time.Microsecond)
		check("more than three intervals later", true)

		if err := s.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		check("after the next poll", false)
		src.set(nil, errors.New("feed is down"))
		if err := s.Poll(ctx); err == nil {
			t.Fatal("Poll() with a failing feed = nil, want an error")
		}
		check("after a failed poll", true)
		b.clock.Advance(10 * time.Second)
		src.set(nil, nil)
		if err := s.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		check("after the feed recovers", false)

		// Without a live feed, nothing is stale however old.
		plain, pb := setup(t, storetest.SQLite(t))
		ingest(t, plain, obsqra.SourceSimulated, sample("nostra", day(-300), 500))
		nostra := pb.protocols["nostra"].ID
		if latest, err := plain.LatestMetrics(ctx, []int64{nostra}); err != nil || len(latest) != 1 || latest[nostra].Stale {
			t.Errorf("LatestMetrics() without a feed = %+v, %v, want not stale", latest, err)
		}
	})
}

func TestIngestConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		slugList := []string{"ekubo", "jediswap", "nostra", "vesu", "zklend"}
		const workers = 12
		results := make([][]market.Ingested, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() {
				in := []obsqra.MetricsInput{sample(slugList[i%5], t0.Add(-time.Duration(i)*time.Minute), 300+i)}
				if i%3 == 0 { // some batches of two
					in = append(in, sample(slugList[(i+1)%5], t0.Add(-time.Duration(i)*time.Minute-time.Second), 600+i))
				}
				results[i], errs[i] = s.Ingest(ctx, obsqra.SourceSimulated, in)
			})
		}
		wg.Wait()
		samples := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Ingest() of worker %d = %v", i, err)
			}
			samples += len(results[i])
		}

		if n := count(t, db); n != (tally{samples, samples, samples, 2 * samples, 1, 5}) {
			t.Errorf("after %d concurrent samples: %+v", samples, n)
		}
		scored := make(map[int64]int64) // sample → decision
		for _, rs := range results {
			for _, r := range rs {
				if !r.Created {
					t.Errorf("sample %d not created", r.Sample.ID)
				}
				if _, dup := scored[r.Sample.ID]; dup {
					t.Errorf("sample %d scored twice", r.Sample.ID)
				}
				scored[r.Sample.ID] = r.Risk.DecisionID
				stored, err := db.RiskScore(ctx, r.Risk.ID)
				if err != nil || stored.SampleID != r.Sample.ID {
					t.Errorf("RiskScore(%d) = %+v, %v, want the score of sample %d", r.Risk.ID, stored, err, r.Sample.ID)
				}
				d, err := db.Decision(ctx, r.Risk.DecisionID)
				var rec obsqra.RiskScoreDecision
				if err != nil || json.Unmarshal(d.Inputs, &rec) != nil || rec.SampleID != r.Sample.ID {
					t.Errorf("Decision(%d) = %+v, %v, want the decision of sample %d", r.Risk.DecisionID, d, err, r.Sample.ID)
				}
			}
		}
		if len(scored) != samples {
			t.Errorf("%d samples scored, want %d", len(scored), samples)
		}
		v, err := b.decisions.Verify(ctx, int64(samples))
		if err != nil || !v.ChainValid || !v.Matches || v.BrokenAt != 0 {
			t.Errorf("VerifyDecision(%d) = %+v, %v, want a match on a valid chain", samples, v, err)
		}
	})
}

// TestPollBackfillsWhatIsMissing: a protocol added while the server runs
// gets its history at the next poll, and only its own; a new process finds
// nothing missing and asks for nothing.
func TestPollBackfillsWhatIsMissing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		src := &fakeSource{days: 30}
		withDays := func(c *market.Config) { c.HistoryDays = 30 }
		s, b := setup(t, db, withSource(src), withDays)
		ctx := context.Background()
		if err := s.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpsertProtocol(b.admin, obsqra.ProtocolInput{Slug: "newcomer", Name: "Newcomer", Chain: "starknet",
			Category: obsqra.CategoryLending, AuditScore: 70, LaunchedOn: obsqra.DateOf(t0) - 100, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(10 * time.Second)
		before := count(t, db).Samples
		if err := s.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		histories, _ := src.calls()
		if len(histories) != 2 || !slices.Equal(histories[1].slugs, []string{"newcomer"}) {
			t.Fatalf("history asked for %+v, want a second time for newcomer only", histories)
		}
		enabled := len(histories[0].slugs) + 1
		if got := count(t, db).Samples - before; got != 30+enabled {
			t.Errorf("the poll stored %d samples, want 30 days of newcomer + %d current", got, enabled)
		}

		s2, err := market.New(db, newDecisions(t, db), market.Config{Source: src, Now: b.clock.Now, PollInterval: 10 * time.Second, HistoryDays: 30})
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(10 * time.Second)
		if err := s2.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if histories, _ := src.calls(); len(histories) != 2 {
			t.Errorf("a new process asked for history again: %+v", histories[2:])
		}
	})
}

// TestDecisionLogResistsTheOwner plays the database owner: without the
// server's key, rewriting an entry and recomputing every hash after it
// does not verify; a served risk score that no longer says what its
// decision recorded does not match; and the audit catches an entry changed
// after this process last verified it.
func TestDecisionLogResistsTheOwner(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t, db)
		var ids []int64
		for i := range 5 {
			ids = append(ids, ingest(t, s, obsqra.SourceAdmin, sample("vesu", day(-5+i), 400+10*i))[0].Risk.DecisionID)
		}
		v, err := b.decisions.Verify(ctx, ids[4])
		if err != nil || !v.Matches || !v.ChainValid {
			t.Fatalf("VerifyDecision before tampering = %+v, %v", v, err)
		}
		bypass := map[string][]string{
			store.DialectSQLite:   {"DROP TRIGGER decisions_no_update", "DROP TRIGGER risk_scores_no_update"},
			store.DialectPostgres: {"ALTER TABLE decisions DISABLE TRIGGER decisions_append_only", "ALTER TABLE risk_scores DISABLE TRIGGER risk_scores_append_only"},
		}[db.Dialect()]
		for _, q := range bypass {
			if err := storetest.Exec(t, db, q); err != nil {
				t.Fatal(err)
			}
		}

		// The served score is changed: its decision no longer matches.
		if err := storetest.Exec(t, db, "UPDATE risk_scores SET score = score + 1 WHERE decision_id = "+fmt.Sprint(ids[3])); err != nil {
			t.Fatal(err)
		}
		if v, err := b.decisions.Verify(ctx, ids[3]); err != nil || v.Matches || !v.ChainValid {
			t.Errorf("VerifyDecision of a decision whose served score changed = %+v, %v; want matches false", v, err)
		}

		// Entry 2 rewritten and the chain rehashed with a key the owner
		// made up: the audit and every verification from entry 2 on fail.
		chain := make([]*obsqra.Decision, 0, 5)
		for _, id := range ids {
			d, err := db.Decision(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, d)
		}
		guess := []byte("not the key")
		update := "UPDATE decisions SET output = ?, prev_hash = ?, hash = ? WHERE id = ?"
		if db.Dialect() == store.DialectPostgres {
			update = "UPDATE decisions SET output = $1, prev_hash = $2, hash = $3 WHERE id = $4"
		}
		chain[1].Output = obsqra.JSONObject(strings.Replace(string(chain[1].Output), `"score":`, `"score":1`, 1))
		for i := 1; i < len(chain); i++ {
			chain[i].PrevHash = chain[i-1].Hash
			chain[i].Hash = decision.Hash(guess, chain[i])
			if err := storetest.Exec(t, db, update,
				string(chain[i].Output), chain[i].PrevHash, chain[i].Hash, chain[i].ID); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.decisions.Audit(ctx); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("broken at entry %d", ids[1])) {
			t.Errorf("Audit after a rewrite = %v, want the broken entry %d", err, ids[1])
		}
		for _, id := range ids[1:] {
			if v, err := b.decisions.Verify(ctx, id); err != nil || v.ChainValid || v.BrokenAt != ids[1] {
				t.Errorf("VerifyDecision(%d) after a rewrite = %+v, %v; want chain broken at %d", id, v, err, ids[1])
			}
		}
		if v, err := b.decisions.Verify(ctx, ids[0]); err != nil || !v.ChainValid {
			t.Errorf("VerifyDecision(%d), before the rewrite, = %+v, %v; want a valid chain", ids[0], v, err)
		}
	})
}

// TestVerifyDecisionRereadsItsLink: verifyDecision reads the entry asked
// about and its predecessor again and rehashes both, whatever this process
// verified before, so a rewrite of either after a verification is reported
// at once, not at the next audit; and the calls after it report it too.
func TestVerifyDecisionRereadsItsLink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		verified int // the entry verified before the rewrite (the prefix remembered)
		changed  int // the entry rewritten
		verify   []int
	}{
		{"entry 5 changed, verified at 5", 5, 5, []int{5, 6}},
		{"entry 5 changed, verified at 5, its successor asked", 5, 5, []int{6, 5}},
		{"entry 5 changed, verified at 6", 6, 5, []int{6, 5}},
		{"predecessor 4 changed, verified at 5", 5, 4, []int{5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				t.Parallel()
				ctx := context.Background()
				s, b := setup(t, db)
				ids := []int64{0} // ids[n] is entry n
				for i := range 6 {
					id := ingest(t, s, obsqra.SourceAdmin, sample("vesu", day(-6+i), 400+10*i))[0].Risk.DecisionID
					if id != int64(i+1) {
						t.Fatalf("decision of sample %d = %d, want %d", i+1, id, i+1)
					}
					ids = append(ids, id)
				}
				if v, err := b.decisions.Verify(ctx, ids[tt.verified]); err != nil || !v.ChainValid {
					t.Fatalf("VerifyDecision(%d) before the rewrite = %+v, %v; want a valid chain", tt.verified, v, err)
				}

				// The owner, past the append-only trigger, rewrites the
				// entry's output and leaves its hash as it was.
				bypass := map[string]string{
					store.DialectSQLite:   "DROP TRIGGER decisions_no_update",
					store.DialectPostgres: "ALTER TABLE decisions DISABLE TRIGGER decisions_append_only",
				}[db.Dialect()]
				if err := storetest.Exec(t, db, bypass); err != nil {
					t.Fatal(err)
				}
				if err := storetest.Exec(t, db, `UPDATE decisions SET output = replace(output, '"score":', '"score":1') WHERE id = `+
					fmt.Sprint(ids[tt.changed])); err != nil {
					t.Fatal(err)
				}

				for _, n := range tt.verify {
					v, err := b.decisions.Verify(ctx, ids[n])
					if err != nil {
						t.Fatalf("VerifyDecision(%d) = %v", n, err)
					}
					if v.ChainValid || v.BrokenAt != ids[tt.changed] {
						t.Errorf("VerifyDecision(%d) after entry %d was rewritten: chainValid %v, brokenAt %d; want false, %d",
							n, tt.changed, v.ChainValid, v.BrokenAt, tt.changed)
					}
				}
				if v, err := b.decisions.Verify(ctx, ids[tt.changed-1]); err != nil || !v.ChainValid {
					t.Errorf("VerifyDecision(%d), before the rewrite, = %+v, %v; want a valid chain", tt.changed-1, v, err)
				}
			})
		})
	}
}

// TestHostileInputs covers refusals found in review: weights whose scores
// would overflow a 32-bit integer, control characters in protocol text,
// and the 2009 bound taken in UTC.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		_, err := s.SetRiskParams(b.admin, obsqra.RiskParamsPatch{WAudit: ptr(1_000_000_000)})
		checkErr(t, "SetRiskParams(wAudit 1e9)", err, obsqra.EINVALID, "wAudit must be at most 1000000")
		_, err = s.PreviewRisk(context.Background(), obsqra.RiskInputs{Utilization: 1, AuditScore: 50}, &obsqra.RiskParamsPatch{WVolatility: ptr(2_000_000)})
		checkErr(t, "PreviewRisk(wVolatility 2e6)", err, obsqra.EINVALID, "wVolatility must be at most 1000000")
		for _, name := range []string{"a\x00b", "tab\there", string([]byte{0xff, 0xfe})} {
			_, err = s.UpsertProtocol(b.admin, obsqra.ProtocolInput{Slug: "odd", Name: name, Chain: "starknet",
				Category: obsqra.CategoryDEX, AuditScore: 50, LaunchedOn: obsqra.DateOf(t0) - 10})
			checkErr(t, fmt.Sprintf("UpsertProtocol(name %q)", name), err, obsqra.EINVALID, "name must be")
		}
		_, err = s.UpsertProtocol(b.admin, obsqra.ProtocolInput{Slug: "odd", Name: "Odd", Chain: "starknet", SourceIDs: map[string]string{"k": "v\x00"},
			Category: obsqra.CategoryDEX, AuditScore: 50, LaunchedOn: obsqra.DateOf(t0) - 10})
		checkErr(t, "UpsertProtocol(sourceIds with NUL)", err, obsqra.EINVALID, "sourceIds")
		// 2008-12-31T23:00-02:00 is 2009-01-01T01:00Z: accepted.
		at := time.Date(2008, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600))
		ingest(t, s, obsqra.SourceAdmin, sample("vesu", at, 300))
	})
}

func ptr[T any](v T) *T { return &v }

// TestProtocolsByIDSnapshot: ProtocolsByID reads the table once per TTL
// for all callers; this service's own changes show at once, another
// instance's (a write that bypasses the service) once the TTL has passed.
func TestProtocolsByIDSnapshot(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		read := func(name string) (map[int64]*obsqra.Protocol, int64) {
			t.Helper()
			before := db.Statements()
			m, err := s.ProtocolsByID(ctx)
			if err != nil {
				t.Fatalf("%s: ProtocolsByID = %v", name, err)
			}
			return m, db.Statements() - before
		}
		nostra := b.protocols["nostra"]
		if m, ran := read("first"); ran != 1 || m[nostra.ID] == nil || !m[nostra.ID].Enabled {
			t.Fatalf("first read: nostra %+v in %d statements, want enabled, in 1", m[nostra.ID], ran)
		}
		if _, ran := read("second"); ran != 0 {
			t.Errorf("second read within the TTL ran %d statements, want 0", ran)
		}
		if _, err := s.SetProtocolEnabled(b.admin, "nostra", false); err != nil {
			t.Fatal(err)
		}
		if m, _ := read("after SetProtocolEnabled"); m[nostra.ID].Enabled {
			t.Error("after SetProtocolEnabled(nostra, false) the snapshot still has it enabled")
		}
		in := obsqra.ProtocolInput{Slug: "myswap", Name: "MySwap", Chain: "StarkNet", Category: obsqra.CategoryDEX, AuditScore: 75,
			LaunchedOn: obsqra.DateOf(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), Enabled: true}
		p, err := s.UpsertProtocol(b.admin, in)
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := read("after UpsertProtocol"); m[p.ID] == nil || m[p.ID].Name != "MySwap" {
			t.Errorf("after UpsertProtocol the snapshot has %+v", m[p.ID])
		}
		// Another instance renames it: seen once the TTL has passed.
		in.Name = "MySwap v2"
		if err := db.WithTx(ctx, func(tx *store.Tx) error { _, _, err := tx.UpsertProtocol(ctx, in); return err }); err != nil {
			t.Fatal(err)
		}
		if m, ran := read("within the TTL"); m[p.ID].Name != "MySwap" || ran != 0 {
			t.Errorf("within the TTL: %q in %d statements, want the snapshot's MySwap in 0", m[p.ID].Name, ran)
		}
		b.clock.Advance(time.Second)
		if m, ran := read("after the TTL"); m[p.ID].Name != "MySwap v2" || ran != 1 {
			t.Errorf("after the TTL: %q in %d statements, want MySwap v2 in 1", m[p.ID].Name, ran)
		}
	})
}
