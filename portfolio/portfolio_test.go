package portfolio_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestRecordAllocation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t, db)
		_, err := s.RecordAllocation(b.anon, obsqra.RecordAllocationInput{Weights: weights("nostra", 10000), Reason: obsqra.ReasonUserInitiated})
		checkErr(t, "RecordAllocation(anonymous)", err, obsqra.EUNAUTHENTICATED)

		tx, err := obsqra.ParseFelt("0x04ab12000000000000000000000000000000000000000000000000000000000f")
		if err != nil {
			t.Fatal(err)
		}
		value := obsqra.MustDecimal("1234.56")
		before := b.LastEvent(t)
		b.Clock.Set(now0.Add(time.Minute))
		a, err := s.RecordAllocation(b.ctx, obsqra.RecordAllocationInput{
			// Out of id order, with a zero weight.
			Weights: weights("ekubo", 2500, "vesu", 0, "nostra", 7500), Reason: obsqra.ReasonOptimization,
			TxHash: &tx, PortfolioValueUsd: &value,
		})
		if err != nil {
			t.Fatalf("RecordAllocation() = %v", err)
		}
		want := &obsqra.Allocation{
			ID: a.ID, UserID: b.user.ID,
			Weights: []obsqra.Weight{{ProtocolID: b.ID(t, "nostra"), WeightBps: 7500}, {ProtocolID: b.ID(t, "ekubo"), WeightBps: 2500}},
			Reason:  obsqra.ReasonOptimization, TxHash: &tx, PortfolioValueUsd: &value, CreatedAt: now0.Add(time.Minute),
		}
		if b.ID(t, "nostra") > b.ID(t, "ekubo") {
			t.Fatal("the test expects nostra's id below ekubo's")
		}
		if a.ID == 0 || !reflect.DeepEqual(a, want) {
			t.Errorf("RecordAllocation() = %s, want %s", show(a), show(want))
		}
		if got, err := db.Allocation(ctx, a.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("stored allocation = %s, %v, want %s", show(got), err, show(want))
		}
		if got, err := s.Allocation(b.ctx, a.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Allocation(%d) = %s, %v, want %s", a.ID, show(got), err, show(want))
		}
		events := b.Events(t, before, obsqra.TopicAllocationRecorded)
		if len(events) != 1 || events[0].OwnerID != b.user.ID {
			t.Fatalf("allocation.recorded events = %+v, want one owned by user %d", events, b.user.ID)
		}
		if pl, err := obsqra.EventValue[obsqra.Allocation](&events[0]); err != nil || !reflect.DeepEqual(pl, want) {
			t.Errorf("event payload = %s (%v), want %s", show(pl), err, show(want))
		}

		// Another user cannot read it.
		_, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
		for name, ctx := range map[string]context.Context{"anonymous": b.anon, "another user": otherCtx} {
			_, err := s.Allocation(ctx, a.ID)
			checkErr(t, "Allocation("+name+")", err, obsqra.ENOTFOUND)
		}
		_, err = s.Allocation(b.ctx, a.ID+100)
		checkErr(t, "Allocation(unknown)", err, obsqra.ENOTFOUND)
	})
}

func TestRecordAllocationInvalid(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	b.SetEnabled(t, "jediswap", false)
	zero, negative, huge := obsqra.MustDecimal("0"), obsqra.MustDecimal("-1"), obsqra.MustDecimal("1000000000000001")
	var zeroFelt obsqra.Felt
	var many []any
	for range 101 {
		many = append(many, "nostra", 0)
	}
	ok := weights("nostra", 5000, "zklend", 5000)
	tests := []struct {
		name string
		in   obsqra.RecordAllocationInput
		want []string
	}{
		{"no reason", obsqra.RecordAllocationInput{Weights: ok}, []string{"input.reason"}},
		{"no weights", obsqra.RecordAllocationInput{Reason: obsqra.ReasonUserInitiated}, []string{"input.weights", "got 0"}},
		{"101 weights", obsqra.RecordAllocationInput{Weights: weights(many...), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights", "got 101"}},
		{"sum 9999", obsqra.RecordAllocationInput{Weights: weights("nostra", 4999, "zklend", 5000), Reason: obsqra.ReasonUserInitiated}, []string{"sum to 9999", "10000"}},
		{"sum 10001", obsqra.RecordAllocationInput{Weights: weights("nostra", 5001, "zklend", 5000), Reason: obsqra.ReasonUserInitiated}, []string{"sum to 10001"}},
		{"unknown protocol", obsqra.RecordAllocationInput{Weights: weights("nostra", 5000, "nope", 5000), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights[1].protocol", `"nope"`}},
		{"disabled protocol", obsqra.RecordAllocationInput{Weights: weights("jediswap", 10000), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights[0].protocol", "jediswap is disabled"}},
		{"duplicate", obsqra.RecordAllocationInput{Weights: weights("nostra", 5000, "nostra", 5000), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights[1].protocol", "named twice"}},
		{"negative weight", obsqra.RecordAllocationInput{Weights: weights("nostra", 10100, "zklend", -100), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights[0].weightBps"}},
		{"negative weight summing to 10000", obsqra.RecordAllocationInput{Weights: weights("nostra", 5000, "zklend", -100, "ekubo", 5100), Reason: obsqra.ReasonUserInitiated}, []string{"input.weights[1].weightBps", "got -100"}},
		{"portfolioValueUsd 0", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, PortfolioValueUsd: &zero}, []string{"input.portfolioValueUsd"}},
		{"portfolioValueUsd negative", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, PortfolioValueUsd: &negative}, []string{"input.portfolioValueUsd"}},
		{"portfolioValueUsd huge", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, PortfolioValueUsd: &huge}, []string{"input.portfolioValueUsd"}},
		{"zero txHash", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, TxHash: &zeroFelt}, []string{"input.txHash"}},
		{"malformed suggestionId", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, SuggestionID: ptr("nonsense!")}, []string{"input.suggestionId"}},
		{"suggestionId of a user", obsqra.RecordAllocationInput{Weights: ok, Reason: obsqra.ReasonUserInitiated, SuggestionID: ptr(b.user.NodeID())}, []string{"input.suggestionId"}},
	}
	for _, tt := range tests {
		a, err := s.RecordAllocation(b.ctx, tt.in)
		if a != nil {
			t.Errorf("RecordAllocation(%s) = %+v, want nil", tt.name, a)
		}
		checkErr(t, "RecordAllocation("+tt.name+")", err, obsqra.EINVALID, tt.want...)
	}
	if got, err := b.DB.Allocations(context.Background(), store.AllocationQuery{UserID: b.user.ID, Limit: 10}); err != nil || len(got) != 0 {
		t.Errorf("allocations after invalid input = %d, %v, want none", len(got), err)
	}
	if events := b.Events(t, 0, obsqra.TopicAllocationRecorded); len(events) != 0 {
		t.Errorf("allocation.recorded events after invalid input = %d, want none", len(events))
	}
}

func TestRecordAllocationFollowingSuggestion(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		s, b := setup(t, db)
		today := b.Today()
		b.Feed(t, "nostra", today-39, today, flat(300))
		b.Feed(t, "zklend", today-39, today, flat(900))
		b.Feed(t, "ekubo", today-39, today, flat(600))
		if n, err := b.advisor.RefreshForecasts(ctx); err != nil || n == 0 {
			t.Fatalf("RefreshForecasts() = %d, %v", n, err)
		}
		record(t, b.ctx, s, "nostra", 10000)
		sug, err := b.advisor.RebalanceSuggestion(b.ctx)
		if err != nil {
			t.Fatalf("RebalanceSuggestion() = %v", err)
		}
		follow := func(ctx context.Context, id string, ws []obsqra.WeightInput) (*obsqra.Allocation, error) {
			return s.RecordAllocation(ctx, obsqra.RecordAllocationInput{Weights: ws, Reason: obsqra.ReasonAutoRebalance, SuggestionID: &id})
		}
		var target []obsqra.WeightInput
		slugOf := map[int64]string{}
		for slug, p := range b.Protocols {
			slugOf[p.ID] = slug
		}
		for i := len(sug.Target) - 1; i >= 0; i-- { // any order will do
			target = append(target, obsqra.WeightInput{Protocol: slugOf[sug.Target[i].ProtocolID], WeightBps: sug.Target[i].WeightBps})
		}

		// Another user's suggestion, a forecast, an unknown id: not found.
		_, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
		forecasts, err := db.Predictions(ctx, store.PredictionQuery{Kind: obsqra.PredictionYieldForecast, Limit: 1})
		if err != nil || len(forecasts) != 1 {
			t.Fatalf("Predictions(yield) = %d, %v", len(forecasts), err)
		}
		for name, tt := range map[string]struct {
			ctx context.Context
			id  string
		}{
			"another user's suggestion": {otherCtx, sug.NodeID()},
			"a forecast":                {b.ctx, forecasts[0].NodeID()},
			"an unknown suggestion":     {b.ctx, obsqra.NodeID(obsqra.NodeRebalanceSuggestion, sug.ID+1000)},
		} {
			a, err := follow(tt.ctx, tt.id, target)
			if a != nil {
				t.Errorf("RecordAllocation(%s) = %+v, want nil", name, a)
			}
			checkErr(t, "RecordAllocation("+name+")", err, obsqra.ENOTFOUND, "input.suggestionId")
		}
		// Weights that are not the suggestion's target.
		moved := append([]obsqra.WeightInput(nil), target...)
		for i := range moved {
			if moved[i].WeightBps > 0 {
				moved[i].WeightBps--
				moved = append(moved, obsqra.WeightInput{Protocol: "vesu", WeightBps: 1})
				break
			}
		}
		_, err = follow(b.ctx, sug.NodeID(), moved)
		checkErr(t, "RecordAllocation(weights off the target)", err, obsqra.EINVALID, "input.weights", "suggestion")
		if _, followed, _ := db.LatestSuggestion(ctx, b.user.ID); followed {
			t.Errorf("suggestion followed after refused allocations")
		}

		// Its target, by the suggestion's or the prediction's id.
		for i, id := range []string{sug.NodeID(), obsqra.NodeID(obsqra.NodePrediction, sug.ID)} {
			a, err := follow(b.ctx, id, target)
			if err != nil {
				t.Fatalf("RecordAllocation(following %s) = %v", id, err)
			}
			var want []obsqra.Weight
			for _, w := range sug.Target {
				if w.WeightBps > 0 {
					want = append(want, w)
				}
			}
			if a.SuggestionID != sug.ID || a.DecisionID != sug.DecisionID || a.DecisionID == 0 || !reflect.DeepEqual(a.Weights, want) {
				t.Errorf("RecordAllocation(following, %d) = %s, want suggestion %d, decision %d, weights %v", i, show(a), sug.ID, sug.DecisionID, want)
			}
			if stored, err := db.Allocation(ctx, a.ID); err != nil || stored.SuggestionID != sug.ID || stored.DecisionID != sug.DecisionID {
				t.Errorf("stored allocation = %s, %v", show(stored), err)
			}
		}
		if _, followed, err := db.LatestSuggestion(ctx, b.user.ID); err != nil || !followed {
			t.Errorf("LatestSuggestion() followed = %v, %v, want true", followed, err)
		}
	})
}

func TestAllocationHistory(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	_, err := s.AllocationHistory(b.anon, 10, nil, nil, nil)
	checkErr(t, "AllocationHistory(anonymous)", err, obsqra.EUNAUTHENTICATED)
	var ids []int64
	for i := range 3 {
		b.Clock.Set(now0.Add(time.Duration(i) * time.Hour))
		ids = append(ids, record(t, b.ctx, s, "nostra", 10000-i, "zklend", i).ID)
	}
	_, otherCtx := b.User(t, "other@example.com", obsqra.DefaultPreferences())
	record(t, otherCtx, s, "ekubo", 10000)

	got, err := s.AllocationHistory(b.ctx, 2, nil, nil, nil)
	if err != nil || len(got) != 3 || got[0].ID != ids[2] || got[1].ID != ids[1] || got[2].ID != ids[0] {
		t.Errorf("AllocationHistory(first 2) = %s, %v, want first+1 = 3 rows, newest first: %v", show(got), err, ids)
	}
	from, to := now0.Add(30*time.Minute), now0.Add(90*time.Minute)
	got, err = s.AllocationHistory(b.ctx, 10, nil, &from, &to)
	if err != nil || len(got) != 1 || got[0].ID != ids[1] {
		t.Errorf("AllocationHistory(%v…%v) = %s, %v, want [%d]", from, to, show(got), err, ids[1])
	}
	_, err = s.AllocationHistory(b.ctx, 10, nil, &to, &from)
	checkErr(t, "AllocationHistory(from after to)", err, obsqra.EINVALID, "from")
	got, err = s.AllocationHistory(otherCtx, 10, nil, nil, nil)
	if err != nil || len(got) != 1 || got[0].UserID == b.user.ID {
		t.Errorf("AllocationHistory(other) = %s, %v, want their one allocation", show(got), err)
	}
}
