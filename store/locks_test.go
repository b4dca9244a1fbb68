package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestEventAndDecisionLocksDoNotDeadlock: two units of work append an
// event and a decision in opposite orders, interleaved so that each holds
// its first lock when the other asks for it. Both commit: the decision
// log's lock is always taken after the outbox's. (With the log's lock
// alone, PostgreSQL found a deadlock and aborted one: 40P01.)
func TestEventAndDecisionLocksDoNotDeadlock(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		decision := func() *obsqra.Decision {
			return &obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: obsqra.JSONObject(`{}`), Output: obsqra.JSONObject(`{}`),
				ModelVersion: obsqra.RiskModelVersion}
		}
		event := func() *obsqra.Event { return &obsqra.Event{Topic: obsqra.TopicMarketChanged} }
		// The same with LockDecisions first, as a unit of work that will
		// append decisions does (the ingest, a plan).
		lockFirst := []func(tx *store.Tx) error{
			func(tx *store.Tx) error { return tx.AppendDecision(ctx, decision(), store.TestHash) },
			func(tx *store.Tx) error {
				if err := tx.LockDecisions(ctx); err != nil {
					return err
				}
				return tx.AppendDecision(ctx, decision(), store.TestHash)
			},
		}
		for round := range 2 * len(lockFirst) {
			decisionFirst := lockFirst[round%len(lockFirst)]
			eventFirstHolds := make(chan struct{})
			errs := make(chan error, 2)
			go func() { // event, then decision
				errs <- db.WithTx(ctx, func(tx *store.Tx) error {
					if err := tx.AppendEvent(ctx, event()); err != nil {
						return err
					}
					close(eventFirstHolds)
					// Give the other unit of work time to take what it
					// takes first.
					time.Sleep(150 * time.Millisecond)
					return tx.AppendDecision(ctx, decision(), store.TestHash)
				})
			}()
			go func() { // decision, then event
				<-eventFirstHolds
				errs <- db.WithTx(ctx, func(tx *store.Tx) error {
					if err := decisionFirst(tx); err != nil {
						return err
					}
					return tx.AppendEvent(ctx, event())
				})
			}()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
	})
}
