package resolvers_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestEveryNodeRoundTrips creates a real object of every type that
// implements Node (taken from the schema, so a new type without a case
// here fails), and checks that node(id:) gives it back to its owner, that
// it is null to another user when the object is private, and that no two
// of the ids are the same.
func TestEveryNodeRoundTrips(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		e := newAdviceEnv(t, db, func(r *resolvers.Resolver) { r.Ledger = ledger.New(db, nil, ledger.Config{}) })
		e.ingestDays(t, 60, calm)
		if _, err := e.advice.RefreshForecasts(context.Background()); err != nil {
			t.Fatal(err)
		}
		ada := registerVia(t, e.h, "ada@example.com")
		bob := registerVia(t, e.h, "bob@example.com").AccessToken
		allocate(t, e.h, ada.AccessToken, "nostra", "zklend")

		type ids struct {
			Me       struct{ ID string }
			Protocol struct {
				ID            string
				LatestMetrics struct{ ID string }
				LatestRisk    struct{ ID string }
			}
			Predictions struct {
				Edges []struct{ Node struct{ ID string } }
			}
			AllocationHistory struct {
				Edges []struct{ Node struct{ ID string } }
			}
			Dashboard   struct{ ID string }
			Dashboard30 struct{ ID string }
		}
		r := do(t, e.h, ada.AccessToken, `{ me { id } protocol(slug: "nostra") { id latestMetrics { id } latestRisk { id } }
			predictions(filter: {kind: YIELD_FORECAST}, first: 1) { edges { node { id } } }
			allocationHistory(first: 1) { edges { node { id } } }
			dashboard { id } dashboard30: dashboard(windowDays: 30) { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("query ids: %+v", r.Errors)
		}
		q := decode[ids](t, json.RawMessage(mustJSON(r.Data)))
		r = do(t, e.h, ada.AccessToken, `mutation { runOptimization { id decisionId suggestion { id } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("runOptimization: %+v", r.Errors)
		}
		run := decode[struct {
			ID, DecisionID string
			Suggestion     struct{ ID string }
		}](t, r.Data["runOptimization"])
		r = do(t, e.h, ada.AccessToken, `mutation { logTransaction(input: {txHash: "0xabc", type: DEPOSIT, amount: "2.5", token: "ETH"}) { id } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("logTransaction: %+v", r.Errors)
		}
		tx := decode[struct{ ID string }](t, r.Data["logTransaction"])
		if len(q.Predictions.Edges) != 1 || len(q.AllocationHistory.Edges) != 1 {
			t.Fatalf("no forecast or allocation: %+v", q)
		}

		// Every Node type, with ids of real objects of it; private ones
		// are null to another user.
		type object struct {
			id      string
			private bool
		}
		pub := func(id string) object { return object{id, false} }
		own := func(id string) object { return object{id, true} }
		cases := map[string][]object{
			"User":                {own(q.Me.ID)},
			"Protocol":            {pub(q.Protocol.ID)},
			"MetricsSample":       {pub(q.Protocol.LatestMetrics.ID)},
			"RiskScore":           {pub(q.Protocol.LatestRisk.ID)},
			"Prediction":          {pub(q.Predictions.Edges[0].Node.ID)},
			"Allocation":          {own(q.AllocationHistory.Edges[0].Node.ID)},
			"Dashboard":           {own(q.Dashboard.ID), own(q.Dashboard30.ID)},
			"OptimizationRun":     {own(run.ID)},
			"RebalanceSuggestion": {own(run.Suggestion.ID)},
			"Decision":            {own(run.DecisionID)},
			"Transaction":         {own(tx.ID)},
		}
		// The run's prediction: a private Prediction, the same number as
		// the run and the suggestion but another id.
		cases["Prediction"] = append(cases["Prediction"], own(predictionOfRun(t, run.ID)))

		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{}).Schema()
		var types []string
		for _, def := range schema.GetPossibleTypes(schema.Types["Node"]) {
			types = append(types, def.Name)
		}
		slices.Sort(types)
		seen := map[string]string{}
		for _, typ := range types {
			objects, ok := cases[typ]
			if !ok {
				t.Errorf("%s implements Node but has no case here: add one", typ)
				continue
			}
			delete(cases, typ)
			for _, o := range objects {
				id := o.id
				if id == "" {
					t.Errorf("%s: empty id", typ)
					continue
				}
				if other, dup := seen[id]; dup {
					t.Errorf("%s and %s have the same id %s", other, typ, id)
				}
				seen[id] = typ
				const node = `query($id: ID!) { node(id: $id) { __typename id } }`
				r := do(t, e.h, ada.AccessToken, node, map[string]any{"id": id})
				want := `{"__typename":"` + typ + `","id":"` + id + `"}`
				if got := string(r.Data["node"]); got != want || len(r.Errors) > 0 {
					t.Errorf("node(%s) as owner = %s %+v, want %s", id, got, r.Errors, want)
				}
				r = do(t, e.h, bob, node, map[string]any{"id": id})
				if got := string(r.Data["node"]); (got == "null") != o.private || len(r.Errors) > 0 {
					t.Errorf("node(%s) as another user = %s %+v, want null: %v", id, got, r.Errors, o.private)
				}
			}
		}
		for typ := range cases {
			t.Errorf("case %s does not implement Node", typ)
		}
		// Another user's dashboard id for the same window is another id.
		r = do(t, e.h, bob, `{ dashboard { id } }`, nil)
		if got := decode[struct{ ID string }](t, r.Data["dashboard"]).ID; got == q.Dashboard.ID || got == "" {
			t.Errorf("bob's dashboard id = %q, ada's %q: want different", got, q.Dashboard.ID)
		}
	})
}
