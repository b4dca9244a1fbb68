package portfolio_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/advisor/advisortest"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/store"
)

// now0 is the injected clock's start: 18:00 UTC, after the day's sample
// (observed at noon).
var now0 = time.Date(2025, 6, 30, 18, 0, 0, 0, time.UTC)

// testBundle holds what a portfolio test works with besides the service.
type testBundle struct {
	*advisortest.Env
	advisor *advisor.Service
	anon    context.Context
	// user is a signed-in user with the default preferences; ctx is their
	// context.
	user *obsqra.User
	ctx  context.Context
}

// setup returns a portfolio service on db with the clock at now0, and an
// advisor on the same database and clock.
func setup(t *testing.T, db *store.DB) (*portfolio.Service, *testBundle) {
	t.Helper()
	env := advisortest.New(t, db, now0)
	b := &testBundle{Env: env, anon: context.Background()}
	b.user, b.ctx = env.User(t, "user@example.com", obsqra.DefaultPreferences())
	a, err := advisor.New(db, env.Market, env.Decisions, advisor.Config{Now: env.Clock.Now, GasUsdPerMove: 0.5, SlippageBps: 10})
	if err != nil {
		t.Fatalf("advisor.New() = %v", err)
	}
	b.advisor = a
	return portfolio.New(db, portfolio.Config{Now: env.Clock.Now}), b
}

// flat is a market that holds still: enough history for forecasts.
func flat(apy int) advisortest.Shape {
	return func(obsqra.Date) (int, int, string) { return apy, 5000, "20000000" }
}

// weights returns weight inputs from slug, bps, slug, bps, ….
func weights(ws ...any) []obsqra.WeightInput {
	var out []obsqra.WeightInput
	for i := 0; i < len(ws); i += 2 {
		out = append(out, obsqra.WeightInput{Protocol: ws[i].(string), WeightBps: ws[i+1].(int)})
	}
	return out
}

// record records ws as ctx's user's allocation, failing on an error.
func record(t *testing.T, ctx context.Context, s *portfolio.Service, ws ...any) *obsqra.Allocation {
	t.Helper()
	a, err := s.RecordAllocation(ctx, obsqra.RecordAllocationInput{Weights: weights(ws...), Reason: obsqra.ReasonUserInitiated})
	if err != nil {
		t.Fatalf("RecordAllocation(%v) = %v", ws, err)
	}
	return a
}

// checkErr is the shared obsqratest.CheckErr.
var checkErr = obsqratest.CheckErr

func ptr[T any](v T) *T { return &v }

// show formats v as JSON, pointers followed, for a failure message.
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
