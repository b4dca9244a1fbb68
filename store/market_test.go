package store_test

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// marketDay is midnight UTC of the first day of the market tests' data.
var marketDay = time.Date(2025, 11, 20, 0, 0, 0, 0, time.UTC)

// inTx runs fn in one unit of work of db and fails the test if it does not
// commit. fn may call t.Fatal: WithTx still rolls back.
func inTx(t *testing.T, db *store.DB, fn func(tx *store.Tx)) {
	t.Helper()
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { fn(tx); return nil }); err != nil {
		t.Fatalf("WithTx = %v, want nil", err)
	}
}

// seededIDs returns the ids of the five seeded protocols, by slug.
func seededIDs(t *testing.T, db *store.DB) map[string]int64 {
	t.Helper()
	ps, err := db.Protocols(context.Background())
	if err != nil {
		t.Fatalf("Protocols() = %v", err)
	}
	ids := make(map[string]int64, len(ps))
	for _, p := range ps {
		ids[p.Slug] = p.ID
	}
	if len(ids) != 5 {
		t.Fatalf("Protocols() = %d protocols, want the 5 seeded", len(ids))
	}
	return ids
}

// sample stores a simulated sample of protocolID observed at at with the
// given APY, every other field zero.
func sample(t *testing.T, tx *store.Tx, protocolID int64, at time.Time, apy int) *obsqra.MetricsSample {
	t.Helper()
	return sampleFrom(t, tx, obsqra.SourceSimulated, protocolID, at, apy)
}

// sampleFrom is sample from another source.
func sampleFrom(t *testing.T, tx *store.Tx, source string, protocolID int64, at time.Time, apy int) *obsqra.MetricsSample {
	t.Helper()
	return insertSample(t, tx, obsqra.MetricsSample{ProtocolID: protocolID, ObservedAt: at, ApyBps: apy, Source: source})
}

// insertSample stores m, which must be new.
func insertSample(t *testing.T, tx *store.Tx, m obsqra.MetricsSample) *obsqra.MetricsSample {
	t.Helper()
	got, created, err := tx.InsertMetricsSample(context.Background(), m)
	if err != nil || !created {
		t.Fatalf("InsertMetricsSample(%+v) = %v, %v, want a new sample", m, created, err)
	}
	return got
}

// decision returns a decision to append, told apart by n.
func decision(n int) *obsqra.Decision {
	return &obsqra.Decision{
		Kind:         obsqra.DecisionRiskScore,
		Inputs:       obsqra.JSONObject(fmt.Sprintf(`{"n":%d}`, n)),
		Output:       obsqra.JSONObject(fmt.Sprintf(`{"score":%d}`, n%101)),
		ModelVersion: obsqra.RiskModelVersion,
	}
}

// score records a decision and a risk score of value for m.
func score(t *testing.T, tx *store.Tx, m *obsqra.MetricsSample, value int) *obsqra.RiskScore {
	t.Helper()
	ctx := context.Background()
	d := decision(value)
	if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
		t.Fatalf("AppendDecision = %v", err)
	}
	s := &obsqra.RiskScore{
		ProtocolID: m.ProtocolID, SampleID: m.ID, ObservedAt: m.ObservedAt, Score: value,
		ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: d.CreatedAt, DecisionID: d.ID,
	}
	if err := tx.InsertRiskScore(ctx, s); err != nil {
		t.Fatalf("InsertRiskScore(sample %d) = %v", m.ID, err)
	}
	return s
}

func mustDate(t *testing.T, s string) obsqra.Date {
	t.Helper()
	d, err := obsqra.ParseDate(s)
	if err != nil {
		t.Fatalf("ParseDate(%q) = %v", s, err)
	}
	return d
}

func decimal(s string) *obsqra.Decimal {
	d := obsqra.MustDecimal(s)
	return &d
}

func TestSeededMarketData(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		want := []struct {
			slug, name string
			category   obsqra.ProtocolCategory
			audit      int
			launched   string
			project    string
		}{ // ordered by slug, as Protocols returns them
			{"ekubo", "Ekubo", obsqra.CategoryDEX, 92, "2023-09-26", "ekubo"},
			{"jediswap", "JediSwap", obsqra.CategoryDEX, 80, "2022-11-24", "jediswap"},
			{"nostra", "Nostra", obsqra.CategoryLending, 88, "2023-02-01", "nostra-money-market"},
			{"vesu", "Vesu", obsqra.CategoryLending, 86, "2024-06-05", "vesu"},
			{"zklend", "zkLend", obsqra.CategoryLending, 85, "2023-06-01", "zklend"},
		}
		ps, err := db.Protocols(ctx)
		if err != nil || len(ps) != len(want) {
			t.Fatalf("Protocols() = %d protocols, %v, want %d", len(ps), err, len(want))
		}
		for i, w := range want {
			p := ps[i]
			if p.Slug != w.slug || p.Name != w.name || p.Chain != "starknet" || p.Category != w.category ||
				p.AuditScore != w.audit || p.LaunchedOn.String() != w.launched || !p.Enabled || p.ContractAddress != nil ||
				!reflect.DeepEqual(p.SourceIDs, map[string]string{"defillama_project": w.project}) {
				t.Errorf("Protocols()[%d] = %+v, want %+v, enabled, on starknet, without a contract address", i, p, w)
			}
			if p.CreatedAt.IsZero() || p.UpdatedAt != p.CreatedAt || p.CreatedAt != stampUTC(p.CreatedAt) {
				t.Errorf("protocol %s stamped %v, %v, want one UTC time at microseconds", p.Slug, p.CreatedAt, p.UpdatedAt)
			}
			byID, err := db.ProtocolByID(ctx, p.ID)
			if err != nil || !reflect.DeepEqual(*byID, p) {
				t.Errorf("ProtocolByID(%d) = %+v, %v, want %+v", p.ID, byID, err, p)
			}
		}

		v1 := obsqra.RiskParams{Version: 1, WUtilization: 25, WVolatility: 40, WLiquidity0: 0, WLiquidity1: 5,
			WLiquidity2: 15, WLiquidity3: 30, WAudit: 3, WAge: 10, AgeCapDays: 730, ClampMin: 5, ClampMax: 95}
		for name, get := range map[string]func() (*obsqra.RiskParams, error){
			"ActiveRiskParams()":   func() (*obsqra.RiskParams, error) { return db.ActiveRiskParams(ctx) },
			"RiskParamsVersion(1)": func() (*obsqra.RiskParams, error) { return db.RiskParamsVersion(ctx, 1) },
			"tx.ActiveRiskParams()": func() (p *obsqra.RiskParams, err error) {
				err = db.WithTx(ctx, func(tx *store.Tx) error { p, err = tx.ActiveRiskParams(ctx); return err })
				return p, err
			},
		} {
			p, err := get()
			if err != nil {
				t.Fatalf("%s = %v", name, err)
			}
			if p.CreatedAt.IsZero() {
				t.Errorf("%s.CreatedAt is zero", name)
			}
			p.CreatedAt = time.Time{}
			if *p != v1 {
				t.Errorf("%s = %+v, want %+v", name, *p, v1)
			}
		}
	})
}

func TestUpsertProtocol(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		t1, t2, t3 := testTime, testTime.Add(time.Hour), testTime.Add(2*time.Hour)
		upsert := func(in obsqra.ProtocolInput) (p *obsqra.Protocol, created bool) {
			t.Helper()
			err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
				p, created, err = tx.UpsertProtocol(ctx, in)
				if err != nil {
					return err
				}
				// The unit of work sees its own change.
				seen, err := tx.ProtocolBySlug(ctx, in.Slug)
				if err == nil && !reflect.DeepEqual(seen, p) {
					t.Errorf("tx.ProtocolBySlug(%q) = %+v, want %+v", in.Slug, seen, p)
				}
				return err
			})
			if err != nil {
				t.Fatalf("UpsertProtocol(%q) = %v, want nil", in.Slug, err)
			}
			return p, created
		}
		check := func(call string, p *obsqra.Protocol, in obsqra.ProtocolInput, createdAt, updatedAt time.Time) {
			t.Helper()
			want := obsqra.Protocol{
				ID: p.ID, Slug: in.Slug, Name: in.Name, Chain: in.Chain, Category: in.Category, AuditScore: in.AuditScore,
				LaunchedOn: in.LaunchedOn, ContractAddress: in.ContractAddress, Enabled: in.Enabled,
				SourceIDs: in.SourceIDs, CreatedAt: stampUTC(createdAt), UpdatedAt: stampUTC(updatedAt),
			}
			if want.SourceIDs == nil {
				want.SourceIDs = map[string]string{}
			}
			if !reflect.DeepEqual(*p, want) {
				t.Errorf("%s = %+v, want %+v", call, *p, want)
			}
			for name, get := range map[string]func() (*obsqra.Protocol, error){
				"ProtocolBySlug": func() (*obsqra.Protocol, error) { return db.ProtocolBySlug(ctx, in.Slug) },
				"ProtocolByID":   func() (*obsqra.Protocol, error) { return db.ProtocolByID(ctx, p.ID) },
			} {
				if got, err := get(); err != nil || !reflect.DeepEqual(got, p) {
					t.Errorf("after %s, %s = %+v, %v, want %+v", call, name, got, err, p)
				}
			}
		}

		in := obsqra.ProtocolInput{
			Slug: "my-swap-2", Name: "mySwap", Chain: "starknet", Category: obsqra.CategoryDEX, AuditScore: 70,
			LaunchedOn:      mustDate(t, "2024-02-29"),
			ContractAddress: mustFelt(t, "0x10884171BAF1914EDC28D7AFB619B40A4051CFAE78A094A55D230F19E944A28"),
			SourceIDs:       map[string]string{"defillama_project": "myswap", "defillama_pool": "7d1d0b0e-7c55-4c1e-9d2a-5c4d3b2a1f00"},
		}
		db.Now = fixedClock(t1)
		p, created := upsert(in)
		if !created || p.ID == 0 {
			t.Fatalf("UpsertProtocol(new) = id %d, created %v, want a new id, created", p.ID, created)
		}
		check("UpsertProtocol(new)", p, in, t1, t1)
		if p.ContractAddress.String() != "0x010884171baf1914edc28d7afb619b40a4051cfae78a094a55d230f19e944a28" {
			t.Errorf("ContractAddress = %s, want the canonical felt", p.ContractAddress)
		}

		// Replacing changes every field but the id and the creation time.
		repl := obsqra.ProtocolInput{
			Slug: in.Slug, Name: "mySwap v2", Chain: "starknet-sepolia", Category: obsqra.CategoryYield,
			AuditScore: 0, LaunchedOn: mustDate(t, "1969-12-31"), Enabled: true,
		}
		db.Now = fixedClock(t2)
		p2, created := upsert(repl)
		if created || p2.ID != p.ID {
			t.Fatalf("UpsertProtocol(existing) = id %d, created %v, want id %d, not created", p2.ID, created, p.ID)
		}
		check("UpsertProtocol(existing)", p2, repl, t1, t2)

		db.Now = fixedClock(t3)
		var off *obsqra.Protocol
		inTx(t, db, func(tx *store.Tx) {
			var err error
			if off, err = tx.SetProtocolEnabled(ctx, in.Slug, false); err != nil {
				t.Fatalf("SetProtocolEnabled(%q, false) = %v", in.Slug, err)
			}
		})
		repl.Enabled = false
		check("SetProtocolEnabled(false)", off, repl, t1, t3)

		err := db.WithTx(ctx, func(tx *store.Tx) error {
			_, err := tx.SetProtocolEnabled(ctx, "nowhere", true)
			return err
		})
		wantCode(t, `SetProtocolEnabled("nowhere")`, err, obsqra.ENOTFOUND)
		_, err = db.ProtocolBySlug(ctx, "nowhere")
		wantCode(t, `ProtocolBySlug("nowhere")`, err, obsqra.ENOTFOUND)
		_, err = db.ProtocolByID(ctx, p.ID+1000)
		wantCode(t, "ProtocolByID(unknown)", err, obsqra.ENOTFOUND)

		ps, err := db.Protocols(ctx)
		if err != nil || len(ps) != 6 || ps[2].Slug != in.Slug { // ekubo jediswap my-swap-2 nostra …
			t.Fatalf("Protocols() = %+v, %v, want 6 ordered by slug, %s third", ps, err, in.Slug)
		}
	})
}

func TestInsertMetricsSample(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		ids := seededIDs(t, db)
		// testTime has nanoseconds and a zone: the store keeps UTC microseconds.
		at := testTime.Add(-time.Hour)

		full := obsqra.MetricsSample{
			ProtocolID: ids["vesu"], ObservedAt: at, ApyBps: -250, UtilizationBps: 10000, VolatilityBps: 123,
			LiquidityTier: 3, Source: obsqra.SourceDefiLlama,
			TvlUsd: decimal("123456789012345678901234567890.123456789012345678"),
		}
		tvls := []*obsqra.Decimal{
			nil,
			decimal("123456789012345678901234567890123456789012345678901234567890.123456789012345678"), // 78 digits
			decimal("0.000000000000000001"),
			decimal("1000000"),
			decimal("0"),
		}
		var stored []*obsqra.MetricsSample
		inTx(t, db, func(tx *store.Tx) {
			m := insertSample(t, tx, full)
			want := full
			want.ID, want.ObservedAt, want.CreatedAt = m.ID, stampUTC(at), stampUTC(testTime)
			if !reflect.DeepEqual(*m, want) {
				t.Errorf("InsertMetricsSample = %+v, want %+v", *m, want)
			}
			stored = append(stored, m)
			for i, tvl := range tvls {
				m := obsqra.MetricsSample{ProtocolID: ids["vesu"], ObservedAt: at.Add(time.Duration(-i-1) * time.Minute), TvlUsd: tvl, Source: obsqra.SourceSimulated}
				stored = append(stored, insertSample(t, tx, m))
			}
		})
		for _, m := range stored {
			got, err := db.MetricsSample(ctx, m.ID)
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Errorf("MetricsSample(%d) = %+v, %v, want %+v", m.ID, got, err, m)
			}
		}
		_, err := db.MetricsSample(ctx, stored[len(stored)-1].ID+1)
		wantCode(t, "MetricsSample(unknown)", err, obsqra.ENOTFOUND)

		// (protocol, observation time, source) is the key: the same key gives
		// back the stored row, whatever else differs, even nanoseconds.
		inTx(t, db, func(tx *store.Tx) {
			again := full
			again.ObservedAt = at.Add(200 * time.Nanosecond).In(time.UTC)
			again.ApyBps, again.TvlUsd, again.UtilizationBps = 1, nil, 0
			got, created, err := tx.InsertMetricsSample(ctx, again)
			if err != nil || created || !reflect.DeepEqual(got, stored[0]) {
				t.Errorf("InsertMetricsSample(same key) = %+v, %v, %v, want %+v, not created", got, created, err, stored[0])
			}
			other := full
			other.Source = obsqra.SourceAdmin
			got, created, err = tx.InsertMetricsSample(ctx, other)
			if err != nil || !created || got.ID == stored[0].ID {
				t.Errorf("InsertMetricsSample(another source) = %+v, %v, %v, want a new sample", got, created, err)
			}
			other.ProtocolID = ids["ekubo"]
			if got, created, err = tx.InsertMetricsSample(ctx, other); err != nil || !created {
				t.Errorf("InsertMetricsSample(another protocol) = %+v, %v, %v, want a new sample", got, created, err)
			}
		})

		// The database refuses what validation should have caught.
		for name, bad := range map[string]func(*obsqra.MetricsSample){
			"utilization 10001":   func(m *obsqra.MetricsSample) { m.UtilizationBps = 10001 },
			"utilization -1":      func(m *obsqra.MetricsSample) { m.UtilizationBps = -1 },
			"negative tvl":        func(m *obsqra.MetricsSample) { m.TvlUsd = decimal("-0.5") },
			"apy -10001":          func(m *obsqra.MetricsSample) { m.ApyBps = -10001 },
			"apy 1000001":         func(m *obsqra.MetricsSample) { m.ApyBps = 1_000_001 },
			"volatility -1":       func(m *obsqra.MetricsSample) { m.VolatilityBps = -1 },
			"liquidity tier 4":    func(m *obsqra.MetricsSample) { m.LiquidityTier = 4 },
			"unknown protocol":    func(m *obsqra.MetricsSample) { m.ProtocolID = 1 << 40 },
			"liquidity tier -1":   func(m *obsqra.MetricsSample) { m.LiquidityTier = -1 },
			"valid (the control)": nil,
		} {
			m := obsqra.MetricsSample{ProtocolID: ids["zklend"], ObservedAt: marketDay, Source: obsqra.SourceImport}
			want := "" // no error
			if bad != nil {
				bad(&m)
				want = obsqra.EINTERNAL
			}
			err := db.WithTx(ctx, func(tx *store.Tx) error {
				_, _, err := tx.InsertMetricsSample(ctx, m)
				return err
			})
			if obsqra.ErrorCode(err) != want {
				t.Errorf("InsertMetricsSample(%s) = %v, want code %q", name, err, want)
			}
		}
	})
}

func TestDailySeries(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		ids := seededIDs(t, db)
		a, b, c := ids["nostra"], ids["ekubo"], ids["vesu"]
		day := func(n int) obsqra.Date { return obsqra.DateOf(marketDay) + obsqra.Date(n) }
		at := func(d int, clock time.Duration) time.Time {
			return marketDay.Add(time.Duration(d)*24*time.Hour + clock)
		}
		point := func(m *obsqra.MetricsSample) obsqra.DailyPoint {
			return obsqra.DailyPoint{Day: obsqra.DateOf(m.ObservedAt), ObservedAt: m.ObservedAt, SampleID: m.ID, ApyBps: m.ApyBps,
				UtilizationBps: m.UtilizationBps, VolatilityBps: m.VolatilityBps, TvlUsd: m.TvlUsd}
		}
		var want map[int64][]obsqra.DailyPoint
		inTx(t, db, func(tx *store.Tx) {
			record := func(m *obsqra.MetricsSample) *obsqra.MetricsSample {
				t.Helper()
				if err := tx.RecordDaily(ctx, m); err != nil {
					t.Fatalf("RecordDaily(sample %d) = %v", m.ID, err)
				}
				return m
			}
			// Day 0 ends a microsecond before midnight.
			last0 := record(insertSample(t, tx, obsqra.MetricsSample{ProtocolID: a, ObservedAt: at(1, -time.Microsecond), ApyBps: 50,
				TvlUsd: decimal("98765432109876543210987654321.000000000000000001"), UtilizationBps: 4200, VolatilityBps: 17,
				Source: obsqra.SourceSimulated}))
			// Day 1: a later sample replaces, an earlier one does not.
			record(sample(t, tx, a, at(1, 10*time.Hour), 100))
			last1 := record(sample(t, tx, a, at(1, 12*time.Hour), 200))
			record(sample(t, tx, a, at(1, 11*time.Hour), 150))
			record(sample(t, tx, a, at(1, 0), 140)) // midnight belongs to day 1
			// Day 2: at the same time, the higher sample id wins, in either order.
			first2 := sample(t, tx, a, at(2, 8*time.Hour), 300)
			last2 := sampleFrom(t, tx, obsqra.SourceDefiLlama, a, at(2, 8*time.Hour), 310)
			record(first2)
			record(last2)
			record(first2)
			// Day 3, for another protocol only; a sample not recorded stays out.
			bLast := record(sample(t, tx, b, at(3, time.Hour), 700))
			sample(t, tx, c, at(3, time.Hour), 800)
			want = map[int64][]obsqra.DailyPoint{
				a: {point(last0), point(last1), point(last2)},
				b: {point(bLast)},
			}
			// The unit of work sees its own points.
			got, err := tx.DailySeries(ctx, []int64{a, b, c}, day(0), day(3))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("tx.DailySeries = %+v, %v, want %+v", got, err, want)
			}
		})
		for _, tc := range []struct {
			name     string
			ids      []int64
			from, to obsqra.Date
			want     map[int64][]obsqra.DailyPoint
		}{
			{"all", []int64{c, b, a}, day(-10), day(10), want},
			{"bounds inclusive", []int64{a, b}, day(1), day(3), map[int64][]obsqra.DailyPoint{a: want[a][1:], b: want[b]}},
			{"one day", []int64{a, b}, day(2), day(2), map[int64][]obsqra.DailyPoint{a: want[a][2:]}},
			{"before any", []int64{a, b}, day(-5), day(-1), map[int64][]obsqra.DailyPoint{}},
			{"no protocols", nil, day(0), day(3), map[int64][]obsqra.DailyPoint{}},
		} {
			got, err := db.DailySeries(ctx, tc.ids, tc.from, tc.to)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DailySeries(%s: %v, %s, %s) = %+v, %v, want %+v", tc.name, tc.ids, tc.from, tc.to, got, err, tc.want)
			}
		}
	})
}

// historyFixture stores, for history tests, samples of protocol a that tie
// on observation time and were stored out of time order, each scored in yet
// another order; two samples of b; nothing for c.
type historyFixture struct {
	a, b, c        int64
	samples        map[int64][]obsqra.MetricsSample // newest first
	scores         map[int64][]obsqra.RiskScore     // newest first
	earliest, last time.Time
}

func newHistoryFixture(t *testing.T, db *store.DB) *historyFixture {
	t.Helper()
	ids := seededIDs(t, db)
	f := &historyFixture{a: ids["zklend"], b: ids["jediswap"], c: ids["vesu"],
		samples: map[int64][]obsqra.MetricsSample{}, scores: map[int64][]obsqra.RiskScore{}}
	sources := []string{obsqra.SourceSimulated, obsqra.SourceDefiLlama, obsqra.SourceImport, obsqra.SourceAdmin}
	hours := []int{8, 1, 3, 8, 0, 1, 9, 8, 5, 3, 1, 8, 2}
	used := map[int]int{}
	at := func(h int) time.Time { return marketDay.Add(time.Duration(h)*time.Hour + 123456789) }
	inTx(t, db, func(tx *store.Tx) {
		var stored []*obsqra.MetricsSample
		for i, h := range hours {
			src := sources[used[h]]
			used[h]++
			stored = append(stored, sampleFrom(t, tx, src, f.a, at(h), 100+i))
		}
		stored = append(stored, sample(t, tx, f.b, at(4), 1), sample(t, tx, f.b, at(2), 2))
		for i := range stored {
			m := stored[(i*7)%len(stored)] // 7 and 15 are coprime: each once
			f.samples[m.ProtocolID] = append(f.samples[m.ProtocolID], *m)
			f.scores[m.ProtocolID] = append(f.scores[m.ProtocolID], *score(t, tx, m, i))
		}
	})
	byKey := func(at1 time.Time, id1 int64, at2 time.Time, id2 int64) int {
		return cmp.Or(at2.Compare(at1), cmp.Compare(id2, id1))
	}
	for _, ms := range f.samples {
		slices.SortFunc(ms, func(x, y obsqra.MetricsSample) int { return byKey(x.ObservedAt, x.ID, y.ObservedAt, y.ID) })
	}
	for _, ss := range f.scores {
		slices.SortFunc(ss, func(x, y obsqra.RiskScore) int { return byKey(x.ObservedAt, x.ID, y.ObservedAt, y.ID) })
	}
	f.earliest, f.last = stampUTC(at(0)), stampUTC(at(9))
	return f
}

// walk reads a whole history first rows at a time, each page continuing
// after the last row of the one before, and returns every row of it. Each
// page must hold first+1 rows while more follow, the extra one being the
// next page's first.
func walk[T any](t *testing.T, first int, fetch func(obsqra.HistoryPage) ([]T, error), key func(T) obsqra.HistoryKey, page obsqra.HistoryPage) []T {
	t.Helper()
	page.First = first
	var all []T
	var extra *T
	for range 100 {
		rows, err := fetch(page)
		if err != nil {
			t.Fatalf("page after %+v: %v", page.After, err)
		}
		if extra != nil && (len(rows) == 0 || key(rows[0]) != key(*extra)) {
			t.Fatalf("page after %+v does not start with the extra row of the one before, %+v", page.After, key(*extra))
		}
		if len(rows) <= first {
			return append(all, rows...)
		}
		if len(rows) != first+1 {
			t.Fatalf("page of %d after %+v = %d rows, want at most %d", first, page.After, len(rows), first+1)
		}
		all = append(all, rows[:first]...)
		extra = &rows[first]
		k := key(rows[first-1])
		page.After = &k
	}
	t.Fatal("history does not end after 100 pages")
	return nil
}

func sampleKey(m obsqra.MetricsSample) obsqra.HistoryKey {
	return obsqra.HistoryKey{At: m.ObservedAt, ID: m.ID}
}
func scoreKey(s obsqra.RiskScore) obsqra.HistoryKey {
	return obsqra.HistoryKey{At: s.ObservedAt, ID: s.ID}
}

// between returns the rows of history with from ≤ at ≤ to.
func between[T any](rows []T, key func(T) obsqra.HistoryKey, from, to time.Time) []T {
	var out []T
	for _, r := range rows {
		if at := key(r).At; !at.Before(from) && !at.After(to) {
			out = append(out, r)
		}
	}
	return out
}

func TestMetricsHistory(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		f := newHistoryFixture(t, db)
		fetch := func(ids ...int64) func(obsqra.HistoryPage) (map[int64][]obsqra.MetricsSample, error) {
			return func(page obsqra.HistoryPage) (map[int64][]obsqra.MetricsSample, error) {
				return db.MetricsHistory(context.Background(), ids, page)
			}
		}
		testHistory(t, f, f.samples, fetch, sampleKey)
	})
}

func TestRiskHistory(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		f := newHistoryFixture(t, db)
		fetch := func(ids ...int64) func(obsqra.HistoryPage) (map[int64][]obsqra.RiskScore, error) {
			return func(page obsqra.HistoryPage) (map[int64][]obsqra.RiskScore, error) {
				return db.RiskHistory(context.Background(), ids, page)
			}
		}
		testHistory(t, f, f.scores, fetch, scoreKey)
	})
}

// testHistory checks a history reader against the fixture's rows.
func testHistory[T any](t *testing.T, f *historyFixture, want map[int64][]T,
	fetch func(ids ...int64) func(obsqra.HistoryPage) (map[int64][]T, error), key func(T) obsqra.HistoryKey) {
	t.Helper()
	one := func(id int64) func(obsqra.HistoryPage) ([]T, error) {
		return func(page obsqra.HistoryPage) ([]T, error) {
			got, err := fetch(id)(page)
			if len(got) > 1 {
				t.Fatalf("history of protocol %d has rows of %d protocols", id, len(got))
			}
			return got[id], err
		}
	}
	all := want[f.a]
	if len(all) != 13 {
		t.Fatalf("fixture has %d rows of protocol a, want 13", len(all))
	}
	for _, first := range []int{1, 2, 3, 4, 12, 13, 100} {
		if got := walk(t, first, one(f.a), key, obsqra.HistoryPage{}); !reflect.DeepEqual(got, all) {
			t.Errorf("walk by %d = %v, want %v", first, keys(got, key), keys(all, key))
		}
	}

	// From and To are inclusive, alone, together, and with After.
	mid, late := all[7], all[2] // observed at 3 h and 8 h, each tied
	from, to := key(mid).At, key(late).At
	for _, tc := range []struct {
		name     string
		from, to *time.Time
		want     []T
	}{
		{"from", &from, nil, between(all, key, from, f.last)},
		{"to", nil, &to, between(all, key, f.earliest, to)},
		{"from and to", &from, &to, between(all, key, from, to)},
		{"one instant", &to, &to, between(all, key, to, to)},
		{"empty", &to, &from, nil},
	} {
		for _, first := range []int{1, 3} {
			got := walk(t, first, one(f.a), key, obsqra.HistoryPage{From: tc.from, To: tc.to})
			if !reflect.DeepEqual(got, tc.want) || (tc.want != nil && len(tc.want) < 2) {
				t.Errorf("walk by %d %s = %v, want %v (more than one)", first, tc.name, keys(got, key), keys(tc.want, key))
			}
		}
	}

	// Several protocols in one call, each with its own page.
	page := obsqra.HistoryPage{First: 3}
	got, err := fetch(f.a, f.b, f.c)(page)
	wantPages := map[int64][]T{f.a: all[:4], f.b: want[f.b]}
	if err != nil || !reflect.DeepEqual(got, wantPages) {
		t.Errorf("history of 3 protocols, first 3 = %v, %v, want %v", got, err, wantPages)
	}
	k := key(all[3])
	page.After = &k
	got, err = fetch(f.c, f.b, f.a)(page)
	wantPages = map[int64][]T{f.a: all[4:8], f.b: want[f.b]} // b's are all older
	if err != nil || !reflect.DeepEqual(got, wantPages) {
		t.Errorf("history of 3 protocols after %+v = %v, %v, want %v", k, got, err, wantPages)
	}
	if got, err := fetch()(obsqra.HistoryPage{First: 1}); err != nil || len(got) != 0 {
		t.Errorf("history of no protocols = %v, %v, want none", got, err)
	}
	for _, first := range []int{0, -1} {
		_, err := fetch(f.a)(obsqra.HistoryPage{First: first})
		wantCode(t, fmt.Sprintf("history with First %d", first), err, obsqra.EINVALID)
	}
}

func keys[T any](rows []T, key func(T) obsqra.HistoryKey) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		k := key(r)
		out[i] = fmt.Sprintf("%s#%d", k.At.Format("15:04"), k.ID)
	}
	return out
}

func TestLatestMetricsAndScores(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		ids := seededIDs(t, db)
		a, b, c := ids["nostra"], ids["zklend"], ids["ekubo"]
		at := func(h int) time.Time { return marketDay.Add(time.Duration(h) * time.Hour) }
		var wantAll, wantSimulated, wantLlama map[int64]obsqra.MetricsSample
		var wantScores map[int64]obsqra.RiskScore
		inTx(t, db, func(tx *store.Tx) {
			// a: the newest observation was stored first.
			aNew := sample(t, tx, a, at(5), 1)
			aLlama := sampleFrom(t, tx, obsqra.SourceDefiLlama, a, at(4), 2)
			aOld := sample(t, tx, a, at(3), 3)
			// b: a tie on observation time goes to the higher id.
			bOne := sample(t, tx, b, at(7), 4)
			bTwo := sampleFrom(t, tx, obsqra.SourceAdmin, b, at(7), 5)
			// Scored in another order than observed.
			score(t, tx, aOld, 30)
			sNew := score(t, tx, aNew, 50)
			score(t, tx, aLlama, 40)
			sB := score(t, tx, bOne, 60)
			wantAll = map[int64]obsqra.MetricsSample{a: *aNew, b: *bTwo}
			wantSimulated = map[int64]obsqra.MetricsSample{a: *aNew, b: *bOne}
			wantLlama = map[int64]obsqra.MetricsSample{a: *aLlama}
			wantScores = map[int64]obsqra.RiskScore{a: *sNew, b: *sB}
		})
		if got, err := db.LatestMetrics(ctx, []int64{a, b, c}); err != nil || !reflect.DeepEqual(got, wantAll) {
			t.Errorf("LatestMetrics = %+v, %v, want %+v", got, err, wantAll)
		}
		for src, want := range map[string]map[int64]obsqra.MetricsSample{
			obsqra.SourceSimulated: wantSimulated,
			obsqra.SourceDefiLlama: wantLlama,
			obsqra.SourceImport:    {},
		} {
			if got, err := db.LatestMetricsOf(ctx, []int64{a, b, c}, src); err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("LatestMetricsOf(%s) = %+v, %v, want %+v", src, got, err, want)
			}
		}
		if got, err := db.LatestRiskScores(ctx, []int64{c, b, a}); err != nil || !reflect.DeepEqual(got, wantScores) {
			t.Errorf("LatestRiskScores = %+v, %v, want %+v", got, err, wantScores)
		}
		for name, n := range map[string]func() (int, error){
			"LatestMetrics": func() (int, error) { m, err := db.LatestMetrics(ctx, []int64{c}); return len(m), err },
			"LatestMetricsOf": func() (int, error) {
				m, err := db.LatestMetricsOf(ctx, nil, obsqra.SourceSimulated)
				return len(m), err
			},
			"LatestRiskScores": func() (int, error) { m, err := db.LatestRiskScores(ctx, []int64{c}); return len(m), err },
		} {
			if got, err := n(); err != nil || got != 0 {
				t.Errorf("%s of a protocol without rows = %d rows, %v, want none", name, got, err)
			}
		}
	})
}

func TestRiskScores(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		id := seededIDs(t, db)["vesu"]
		var s *obsqra.RiskScore
		inTx(t, db, func(tx *store.Tx) {
			m := sample(t, tx, id, testTime.Add(-time.Minute), 420)
			d := decision(1)
			if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
				t.Fatal(err)
			}
			s = &obsqra.RiskScore{
				ProtocolID: id, SampleID: m.ID, ObservedAt: testTime.Add(-time.Minute), Score: 42,
				Components:    obsqra.RiskComponents{Utilization: 1, Volatility: 2, Liquidity: 3, Audit: 4, Age: 5, Unclamped: 15},
				Inputs:        obsqra.RiskInputs{Utilization: 6000, Volatility: 300, Liquidity: 2, AuditScore: 86, AgeDays: 500},
				ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: testTime, DecisionID: d.ID,
			}
			if err := tx.InsertRiskScore(ctx, s); err != nil || s.ID == 0 {
				t.Fatalf("InsertRiskScore = %v, id %d", err, s.ID)
			}
			if s.ObservedAt != stampUTC(testTime.Add(-time.Minute)) || s.ComputedAt != stampUTC(testTime) {
				t.Errorf("InsertRiskScore stamped %v, %v, want UTC microseconds", s.ObservedAt, s.ComputedAt)
			}
			if got, err := tx.RiskScoreBySample(ctx, m.ID); err != nil || !reflect.DeepEqual(got, s) {
				t.Errorf("tx.RiskScoreBySample = %+v, %v, want %+v", got, err, s)
			}
			_, err := tx.RiskScoreBySample(ctx, m.ID+1)
			wantCode(t, "tx.RiskScoreBySample(unscored)", err, obsqra.ENOTFOUND)
		})
		if got, err := db.RiskScore(ctx, s.ID); err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("RiskScore(%d) = %+v, %v, want %+v", s.ID, got, err, s)
		}
		if got, err := db.RiskScoreByDecision(ctx, s.DecisionID); err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("RiskScoreByDecision(%d) = %+v, %v, want %+v", s.DecisionID, got, err, s)
		}
		_, err := db.RiskScore(ctx, s.ID+1)
		wantCode(t, "RiskScore(unknown)", err, obsqra.ENOTFOUND)
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			d := decision(2)
			if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
				return err
			}
			again := *s
			again.DecisionID = d.ID
			return tx.InsertRiskScore(ctx, &again)
		})
		wantCode(t, "InsertRiskScore(a sample scored already)", err, obsqra.ECONFLICT)
	})
}

func TestRiskParamsVersions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		admin := createUser(t, db, "admin@example.com")
		v1, err := db.ActiveRiskParams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		insert := func(at time.Time, p obsqra.RiskParams) *obsqra.RiskParams {
			t.Helper()
			db.Now = fixedClock(at)
			inTx(t, db, func(tx *store.Tx) {
				if err := tx.InsertRiskParams(ctx, &p); err != nil {
					t.Fatalf("InsertRiskParams = %v", err)
				}
				if got, err := tx.ActiveRiskParams(ctx); err != nil || *got != p {
					t.Errorf("tx.ActiveRiskParams() = %+v, %v, want %+v", got, err, p)
				}
			})
			if p.CreatedAt != stampUTC(at) {
				t.Errorf("InsertRiskParams set CreatedAt %v, want %v", p.CreatedAt, stampUTC(at))
			}
			return &p
		}
		p2 := *v1
		p2.WAudit, p2.ClampMax, p2.CreatedBy = 4, 100, admin.ID
		v2 := insert(testTime, p2)
		p3 := *v2
		p3.AgeCapDays, p3.CreatedBy = 365, 0
		v3 := insert(testTime.Add(time.Hour), p3)
		if v2.Version != 2 || v3.Version != 3 {
			t.Fatalf("versions = %d, %d, want 2, 3", v2.Version, v3.Version)
		}
		if got, err := db.ActiveRiskParams(ctx); err != nil || *got != *v3 {
			t.Errorf("ActiveRiskParams() = %+v, %v, want %+v", got, err, v3)
		}
		for _, want := range []*obsqra.RiskParams{v1, v2, v3} {
			if got, err := db.RiskParamsVersion(ctx, want.Version); err != nil || *got != *want {
				t.Errorf("RiskParamsVersion(%d) = %+v, %v, want %+v", want.Version, got, err, want)
			}
		}
		for _, v := range []int{0, 4} {
			_, err := db.RiskParamsVersion(ctx, v)
			wantCode(t, fmt.Sprintf("RiskParamsVersion(%d)", v), err, obsqra.ENOTFOUND)
		}
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			bad := *v3
			bad.ClampMin, bad.ClampMax = 60, 50
			return tx.InsertRiskParams(ctx, &bad)
		})
		if err == nil {
			t.Error("InsertRiskParams(clamp min above max) = nil, want an error")
		}
	})
}

func TestDecisionLog(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		if ds, err := db.Decisions(ctx, 1, 10, 10); err != nil || len(ds) != 0 {
			t.Errorf("Decisions(1, 10) of an empty log = %d entries, %v, want none", len(ds), err)
		}
		if id, hash, err := db.LastDecision(ctx); err != nil || id != 0 || hash != obsqra.GenesisHash {
			t.Errorf("LastDecision() of an empty log = %d, %s, %v, want 0 and the genesis hash", id, hash, err)
		}
		// The recorded bytes are kept as they are: spaces and key order.
		var appended []*obsqra.Decision
		for i := range 5 {
			db.Now = fixedClock(testTime.Add(time.Duration(i) * time.Second))
			d := decision(i)
			d.Inputs = obsqra.JSONObject(fmt.Sprintf(`{"z": %d, "a":[1, 2.50], "s":"é"}`, i))
			appendTwo := i == 3 // two appends in one unit of work
			inTx(t, db, func(tx *store.Tx) {
				if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
					t.Fatalf("AppendDecision(#%d) = %v", i, err)
				}
				if appendTwo {
					appended = append(appended, d)
					d = decision(100)
					if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
						t.Fatalf("second AppendDecision(#%d) = %v", i, err)
					}
				}
			})
			appended = append(appended, d)
		}
		for i, d := range appended {
			prev := obsqra.GenesisHash
			if i > 0 {
				prev = appended[i-1].Hash
			}
			if d.ID != int64(i+1) || d.PrevHash != prev || d.Hash != store.TestHash(d) || len(d.Hash) != 64 {
				t.Errorf("decision #%d = id %d, prev %s, hash %s, want id %d, prev %s, its own hash", i, d.ID, d.PrevHash, d.Hash, i+1, prev)
			}
			if d.CreatedAt != stampUTC(d.CreatedAt) || d.CreatedAt.IsZero() {
				t.Errorf("decision #%d created at %v, want UTC microseconds", i, d.CreatedAt)
			}
			got, err := db.Decision(ctx, d.ID)
			if err != nil || !reflect.DeepEqual(got, d) {
				t.Errorf("Decision(%d) = %+v, %v, want %+v", d.ID, got, err, d)
			}
		}
		_, err := db.Decision(ctx, 7)
		wantCode(t, "Decision(7)", err, obsqra.ENOTFOUND)
		if id, hash, err := db.LastDecision(ctx); err != nil || id != 6 || hash != appended[5].Hash {
			t.Errorf("LastDecision() = %d, %s, %v, want 6, %s", id, hash, err, appended[5].Hash)
		}
		for _, tt := range []struct {
			from, upTo int64
			limit      int
			want       []*obsqra.Decision
		}{
			{1, 6, 10, appended}, {1, 100, 10, appended}, {2, 4, 10, appended[1:4]}, {2, 100, 2, appended[1:3]},
			{7, 100, 10, nil}, {4, 3, 10, nil},
		} {
			got, err := db.Decisions(ctx, tt.from, tt.upTo, tt.limit)
			if err != nil || len(got) != len(tt.want) {
				t.Errorf("Decisions(%d, %d, %d) = %d entries, %v, want %d", tt.from, tt.upTo, tt.limit, len(got), err, len(tt.want))
				continue
			}
			for i := range got {
				if !reflect.DeepEqual(&got[i], tt.want[i]) {
					t.Errorf("Decisions(%d, %d, %d)[%d] = %+v, want %+v", tt.from, tt.upTo, tt.limit, i, got[i], tt.want[i])
				}
			}
		}
	})
}

// TestDecisionAppendsNeverFork appends from many goroutines at once, each
// append in its own unit of work; on PostgreSQL half of them go through a
// second pool, as another server process would.
func TestDecisionAppendsNeverFork(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		other := db
		if db.Dialect() == store.DialectPostgres {
			other = storetest.Reopen(t, db)
		}
		const writers, perWriter = 8, 10
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			pool := db
			if w%2 == 1 {
				pool = other
			}
			wg.Go(func() {
				<-start
				for i := range perWriter {
					d := decision(w*perWriter + i)
					if err := pool.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendDecision(ctx, d, store.TestHash) }); err != nil {
						t.Errorf("writer %d: AppendDecision = %v", w, err)
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		const n = writers * perWriter
		chain, err := db.Decisions(ctx, 1, n+1, n+1)
		if err != nil || len(chain) != n {
			t.Fatalf("Decisions(1, %d) after concurrent appends = %d entries, %v, want %d", n+1, len(chain), err, n)
		}
		prev := obsqra.GenesisHash
		for i, d := range chain {
			if d.ID != int64(i+1) || d.PrevHash != prev || d.Hash != store.TestHash(&d) {
				t.Fatalf("entry %d after concurrent appends = id %d, prev %s, hash %s: a fork or a gap", i+1, d.ID, d.PrevHash, d.Hash)
			}
			prev = d.Hash
		}
	})
}

// TestMarketReadsAreOneStatement: each batch read runs one statement,
// whatever the number of protocols, and none for no protocol.
func TestMarketReadsAreOneStatement(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		var all []int64
		for _, id := range seededIDs(t, db) {
			all = append(all, id)
		}
		slices.Sort(all)
		inTx(t, db, func(tx *store.Tx) {
			for i, id := range all {
				for h := range 3 {
					m := sample(t, tx, id, marketDay.Add(time.Duration(h*12)*time.Hour), i*10+h)
					score(t, tx, m, h)
					if err := tx.RecordDaily(ctx, m); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
		day := obsqra.DateOf(marketDay)
		page := obsqra.HistoryPage{First: 2}
		for name, read := range map[string]func(ids []int64) (int, error){
			"LatestMetrics": func(ids []int64) (int, error) { m, err := db.LatestMetrics(ctx, ids); return len(m), err },
			"LatestMetricsOf": func(ids []int64) (int, error) {
				m, err := db.LatestMetricsOf(ctx, ids, obsqra.SourceSimulated)
				return len(m), err
			},
			"LatestRiskScores": func(ids []int64) (int, error) { m, err := db.LatestRiskScores(ctx, ids); return len(m), err },
			"MetricsHistory":   func(ids []int64) (int, error) { m, err := db.MetricsHistory(ctx, ids, page); return len(m), err },
			"RiskHistory":      func(ids []int64) (int, error) { m, err := db.RiskHistory(ctx, ids, page); return len(m), err },
			"DailySeries":      func(ids []int64) (int, error) { m, err := db.DailySeries(ctx, ids, day, day+1); return len(m), err },
		} {
			for _, ids := range [][]int64{all[:1], all, nil} {
				before := db.Statements()
				n, err := read(ids)
				ran := db.Statements() - before
				want := int64(min(len(ids), 1))
				if err != nil || n != len(ids) || ran != want {
					t.Errorf("%s(%d protocols) = %d protocols, %v, in %d statements, want %d protocols in %d", name, len(ids), n, err, ran, len(ids), want)
				}
			}
		}
	})
}
