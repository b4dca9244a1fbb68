// Package advisortest helps the tests of advisor and portfolio: a clock
// they move (obsqratest's), users, and daily market history fed through a real
// market.Service, so that every sample is scored and recorded as in
// production.
package advisortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
)

// Key is the key of the decision logs of the tests.
var Key = []byte("advisortest: the decision log's key")

// Env is a migrated database with a market service and a decision log,
// sharing one clock.
type Env struct {
	DB     *store.DB
	Clock  *obsqratest.Clock
	Market *market.Service
	// Decisions is the decision log, keyed by Key, that knows risk scores.
	Decisions *decision.Log
	// Protocols are the seeded protocols by slug.
	Protocols map[string]obsqra.Protocol
}

// New returns an Env on db whose clock reads now. It sets db.Now.
func New(t testing.TB, db *store.DB, now time.Time) *Env {
	t.Helper()
	clock := obsqratest.NewClock(now)
	db.Now = clock.Now
	decisions, err := decision.New(db, Key, market.NewRiskScores(db, nil, nil))
	if err != nil {
		t.Fatalf("decision.New() = %v", err)
	}
	m, err := market.New(db, decisions, market.Config{Now: clock.Now})
	if err != nil {
		t.Fatalf("market.New() = %v", err)
	}
	e := &Env{DB: db, Clock: clock, Market: m, Decisions: decisions, Protocols: make(map[string]obsqra.Protocol)}
	ps, err := db.Protocols(context.Background())
	if err != nil {
		t.Fatalf("Protocols() = %v", err)
	}
	for _, p := range ps {
		e.Protocols[p.Slug] = p
	}
	return e
}

// Today is the current UTC day by the clock.
func (e *Env) Today() obsqra.Date { return obsqra.DateOf(e.Clock.Now()) }

// ID returns the id of the protocol slug.
func (e *Env) ID(t testing.TB, slug string) int64 {
	t.Helper()
	p, ok := e.Protocols[slug]
	if !ok {
		t.Fatalf("no seeded protocol %q", slug)
	}
	return p.ID
}

// Prefs returns preferences with the given tolerance, threshold and limits.
func Prefs(tol obsqra.RiskTolerance, thresholdBps, maxSingleBps, minDiv int, auto bool) obsqra.Preferences {
	return obsqra.Preferences{
		RiskTolerance: tol, AutoRebalance: auto, RebalanceThresholdBps: thresholdBps,
		MaxSingleBps: maxSingleBps, MinDiversification: minDiv, EmailAlerts: true,
		MaxVolatilityBps: obsqra.MaxVolatility, MaxLiquidityTier: obsqra.MaxLiquidityTier,
	}
}

// User stores an active user with prefs and returns them with a context
// they are signed in on.
func (e *Env) User(t testing.TB, email string, prefs obsqra.Preferences) (*obsqra.User, context.Context) {
	t.Helper()
	ctx := context.Background()
	u := &obsqra.User{Email: email, PasswordHash: "x", Role: obsqra.RoleUser, Active: true, Preferences: prefs}
	if err := e.DB.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	return u, SignedIn(u)
}

// Admin stores an active admin and returns a context they are signed in on.
func (e *Env) Admin(t testing.TB, email string) context.Context {
	t.Helper()
	ctx := context.Background()
	u := &obsqra.User{Email: email, PasswordHash: "x", Role: obsqra.RoleAdmin, Active: true, Preferences: obsqra.DefaultPreferences()}
	if err := e.DB.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	return SignedIn(u)
}

// SetPreferences stores u's new preferences and returns a context u is
// signed in on with them.
func (e *Env) SetPreferences(t testing.TB, u *obsqra.User, prefs obsqra.Preferences) context.Context {
	t.Helper()
	ctx := context.Background()
	u.Preferences = prefs
	if err := e.DB.WithTx(ctx, func(tx *store.Tx) error { return tx.UpdateUser(ctx, u) }); err != nil {
		t.Fatalf("UpdateUser(%s) = %v", u.Email, err)
	}
	return SignedIn(u)
}

// SignedIn returns a context u is signed in on.
func SignedIn(u *obsqra.User) context.Context {
	c := *u
	return obsqra.NewContextWithPrincipal(context.Background(), &obsqra.Principal{User: &c})
}

// SetEnabled enables or disables the protocol slug.
func (e *Env) SetEnabled(t testing.TB, slug string, enabled bool) {
	t.Helper()
	ctx := context.Background()
	err := e.DB.WithTx(ctx, func(tx *store.Tx) error {
		p, err := tx.SetProtocolEnabled(ctx, slug, enabled)
		if err == nil {
			e.Protocols[slug] = *p
		}
		return err
	})
	if err != nil {
		t.Fatalf("SetProtocolEnabled(%s, %v) = %v", slug, enabled, err)
	}
}

// Noon is noon UTC of day d: when the fed samples are observed.
func Noon(d obsqra.Date) time.Time { return d.Time().Add(12 * time.Hour) }

// Sample is a sample of slug observed at noon of day d.
func Sample(slug string, d obsqra.Date, apyBps, utilizationBps int, tvlUsd string) obsqra.MetricsInput {
	tvl := obsqra.MustDecimal(tvlUsd)
	return obsqra.MetricsInput{Protocol: slug, ObservedAt: Noon(d), ApyBps: apyBps, TvlUsd: &tvl, UtilizationBps: utilizationBps}
}

// Ingest ingests inputs through the market service in one unit of work and
// returns what it stored, in input order.
func (e *Env) Ingest(t testing.TB, inputs ...obsqra.MetricsInput) []market.Ingested {
	t.Helper()
	out, err := e.Market.Ingest(context.Background(), "import", inputs)
	if err != nil {
		t.Fatalf("Ingest(%d inputs) = %v", len(inputs), err)
	}
	return out
}

// Shape is a protocol's market on each day: its APY, utilization and TVL.
type Shape func(d obsqra.Date) (apyBps, utilizationBps int, tvlUsd string)

// Feed ingests one sample of slug a day, shaped by shape, from day from
// through day to, and returns each day's risk score as the market scored it.
func (e *Env) Feed(t testing.TB, slug string, from, to obsqra.Date, shape Shape) map[obsqra.Date]int {
	t.Helper()
	var in []obsqra.MetricsInput
	for d := from; d <= to; d++ {
		apy, util, tvl := shape(d)
		in = append(in, Sample(slug, d, apy, util, tvl))
	}
	out := e.Ingest(t, in...)
	risk := make(map[obsqra.Date]int, len(out))
	for i, r := range out {
		risk[obsqra.DateOf(in[i].ObservedAt)] = r.Risk.Score
	}
	return risk
}

// templates holds, by key, the bytes of SQLite databases a seed filled.
var templates sync.Map // string → *template

type template struct {
	once sync.Once
	data []byte
	err  error
}

// SQLiteFrom returns a fresh migrated SQLite database in t.TempDir(),
// closed when the test ends, that starts as a copy of the database seed
// filled. seed runs once per key and process, on a database of its own
// whose Env's clock reads now, so that tests sharing a costly fixture (a
// few months of scored history) do not each ingest it again. Every test
// of a key must get the same data from seed.
func SQLiteFrom(t testing.TB, key string, now time.Time, seed func(t testing.TB, env *Env)) *store.DB {
	t.Helper()
	v, _ := templates.LoadOrStore(key, new(template))
	tpl := v.(*template)
	tpl.once.Do(func() {
		// Set until seed returns: a seed that fails (t.Fatal ends it
		// early) leaves the template unusable for every test.
		tpl.err = errors.New("the seed failed in the test that ran it first")
		ctx := context.Background()
		dir, err := os.MkdirTemp("", "advisortest-")
		if err != nil {
			tpl.err = err
			return
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "template.db")
		db, err := store.Open(ctx, "sqlite:"+path)
		if err != nil {
			tpl.err = err
			return
		}
		defer db.Close()
		if err := db.Migrate(ctx); err != nil {
			tpl.err = err
			return
		}
		seed(t, New(t, db, now))
		// Closing the last connection checkpoints the WAL into the file.
		if err := db.Close(); err != nil {
			tpl.err = err
			return
		}
		tpl.data, tpl.err = os.ReadFile(path)
	})
	if tpl.err != nil {
		t.Fatalf("advisortest: template %s: %v", key, tpl.err)
	}
	path := filepath.Join(t.TempDir(), "test.db")
	if err := os.WriteFile(path, tpl.data, 0o600); err != nil {
		t.Fatalf("advisortest: copy template %s: %v", key, err)
	}
	db, err := store.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatalf("advisortest: open copy of template %s: %v", key, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Events returns the events after id with topic.
func (e *Env) Events(t testing.TB, after int64, topic string) []obsqra.Event {
	t.Helper()
	all, err := e.DB.EventsAfter(context.Background(), after, 10_000)
	if err != nil {
		t.Fatalf("EventsAfter(%d) = %v", after, err)
	}
	var out []obsqra.Event
	for _, ev := range all {
		if ev.Topic == topic {
			out = append(out, ev)
		}
	}
	return out
}

// LastEvent returns the id of the newest event, 0 for none.
func (e *Env) LastEvent(t testing.TB) int64 {
	t.Helper()
	id, err := e.DB.LastEventID(context.Background())
	if err != nil {
		t.Fatalf("LastEventID() = %v", err)
	}
	return id
}
