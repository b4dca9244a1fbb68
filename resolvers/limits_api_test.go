package resolvers_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestPreferenceLimitsAPI: maxVolatilityBps and maxLiquidityTier are
// preferences (checked, kept, refused out of range without a change) and
// inputs of optimizeAllocation; the plans a user is given carry the limits
// they obeyed and their decisions verify; a limit that leaves no protocol
// is a BAD_USER_INPUT naming it.
func TestPreferenceLimitsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newAdviceEnv(t, db)
		e.ingestDays(t, 40, calm)
		ada := registerVia(t, e.h, "ada@example.com").AccessToken

		const prefsQuery = `{ me { preferences { maxVolatilityBps maxLiquidityTier } } }`
		r := do(t, e.h, ada, prefsQuery, nil)
		if got := string(r.Data["me"]); len(r.Errors) > 0 || got != `{"preferences":{"maxVolatilityBps":1000000,"maxLiquidityTier":3}}` {
			t.Fatalf("default limits = %s %+v", got, r.Errors)
		}
		r = do(t, e.h, ada, `mutation { updatePreferences(input: {maxVolatilityBps: 5000, maxLiquidityTier: 2}) { preferences { maxVolatilityBps maxLiquidityTier } } }`, nil)
		if got := string(r.Data["updatePreferences"]); len(r.Errors) > 0 || got != `{"preferences":{"maxVolatilityBps":5000,"maxLiquidityTier":2}}` {
			t.Fatalf("updatePreferences = %s %+v", got, r.Errors)
		}
		for _, c := range []struct{ input, mention string }{
			{`{maxVolatilityBps: -1}`, "maxVolatilityBps"},
			{`{maxVolatilityBps: 1000001}`, "maxVolatilityBps"},
			{`{maxLiquidityTier: -1}`, "maxLiquidityTier"},
			{`{maxLiquidityTier: 4, maxVolatilityBps: 7}`, "maxLiquidityTier"},
		} {
			r := do(t, e.h, ada, `mutation { updatePreferences(input: `+c.input+`) { id } }`, nil)
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("updatePreferences(%s) = %+v, want BAD_USER_INPUT naming %s", c.input, r.Errors, c.mention)
			}
		}
		// Nothing of a refused change was kept.
		if got := string(do(t, e.h, ada, prefsQuery, nil).Data["me"]); got != `{"preferences":{"maxVolatilityBps":5000,"maxLiquidityTier":2}}` {
			t.Errorf("limits after refused changes = %s", got)
		}

		// The plan given to the user obeys and shows their limits; its
		// decision verifies.
		r = do(t, e.h, ada, `mutation { runOptimization { decisionId plan { maxVolatilityBps maxLiquidityTier constraintsMet weights { weightBps } } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("runOptimization: %+v", r.Errors)
		}
		var run struct {
			DecisionID string
			Plan       struct {
				MaxVolatilityBps, MaxLiquidityTier *int
				ConstraintsMet                     bool
			}
		}
		if err := json.Unmarshal(r.Data["runOptimization"], &run); err != nil {
			t.Fatal(err)
		}
		if run.Plan.MaxVolatilityBps == nil || *run.Plan.MaxVolatilityBps != 5000 || run.Plan.MaxLiquidityTier == nil || *run.Plan.MaxLiquidityTier != 2 || !run.Plan.ConstraintsMet {
			t.Errorf("runOptimization plan = %s", r.Data["runOptimization"])
		}
		r = do(t, e.h, ada, `query($id: ID!) { verifyDecision(id: $id) { matches } }`, map[string]any{"id": run.DecisionID})
		if string(r.Data["verifyDecision"]) != `{"matches":true}` {
			t.Errorf("verifyDecision = %s %+v", r.Data["verifyDecision"], r.Errors)
		}

		// Every calm protocol moves a little: a volatility limit of 0
		// leaves none, and says so; out of range is refused as input.
		for _, c := range []struct{ input, mention string }{
			{`{maxVolatilityBps: 0}`, "maxVolatilityBps 0 excludes every one"},
			{`{maxVolatilityBps: -5}`, "input.maxVolatilityBps"},
			{`{maxLiquidityTier: 9}`, "input.maxLiquidityTier"},
		} {
			r := do(t, e.h, "", `{ optimizeAllocation(input: `+c.input+`) { expectedApyBps } }`, nil)
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, c.mention) {
				t.Errorf("optimizeAllocation(%s) = %+v, want BAD_USER_INPUT saying %q", c.input, r.Errors, c.mention)
			}
		}
	})
}
