package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestEventKeysMigration: events stored by the previous version (without
// routing keys) get their keys from their payloads when migration 6 runs,
// so a subscriber resuming with a cursor from before the deploy is routed
// as it was.
func TestEventKeysMigration(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		t.Run("old schema", func(t *testing.T) {
			if err := store.MigrateDownTo(ctx, db, 5); err != nil {
				t.Fatal(err)
			}
		})
		// The rows as the previous version wrote them: its payloads, no
		// protocol_id nor kind column.
		old := []struct{ topic, owner, payload string }{
			{obsqra.TopicMetricsIngested, "NULL", `{"protocol":"nostra","protocolId":3,"id":11,"observedAt":"2025-06-01T12:00:00Z","apyBps":512,"tvlUsd":"123.5","utilizationBps":7421,"volatilityBps":113,"liquidityTier":0,"source":"defillama","createdAt":"2025-06-01T12:00:03Z"}`},
			{obsqra.TopicRiskScored, "NULL", `{"protocol":"nostra","protocolId":3,"id":21,"sampleId":11,"observedAt":"2025-06-01T12:00:00Z","score":42,"components":{"utilization":1,"volatility":2,"liquidity":3,"audit":4,"age":5,"unclamped":15},"inputs":{"utilization":7421,"volatility":113,"liquidity":0,"auditScore":90,"ageDays":700},"paramsVersion":1,"modelVersion":"parity-v1","computedAt":"2025-06-01T12:00:03Z","decisionId":7}`},
			{obsqra.TopicRiskScored, "NULL", `{"protocol":"vesu","protocolId":4,"id":22,"sampleId":12,"observedAt":"2025-06-01T12:00:00Z","score":57,"components":{},"inputs":{},"paramsVersion":1,"modelVersion":"parity-v1","computedAt":"2025-06-01T12:00:03Z","decisionId":8}`},
			{obsqra.TopicPredictionCreated, "NULL", `{"id":31,"kind":"YIELD_FORECAST","protocolId":4,"horizonDays":7,"origin":"2025-06-01","target":"2025-06-08","point":5.1,"lower80":4,"upper80":6,"lower95":3,"upper95":7,"confidence":0.8,"tolerance":0.5,"last":5,"model":"ets","modelVersion":"advisor-v1/ets","inputsDigest":"ab","windowStart":"2025-05-01","windowEnd":"2025-06-01","createdAt":"2025-06-01T12:00:04Z"}`},
			{obsqra.TopicPredictionCreated, "9", `{"id":32,"kind":"REBALANCE_SUGGESTION","userId":9,"horizonDays":30,"origin":"2025-06-01","target":"2025-07-01","point":1,"lower80":0,"upper80":2,"lower95":0,"upper95":3,"confidence":0.5,"tolerance":0.5,"last":0,"model":"plan","modelVersion":"advisor-v1/ets","inputsDigest":"cd","windowStart":"2025-05-01","windowEnd":"2025-06-01","decisionId":9,"details":{"plan":{}},"createdAt":"2025-06-01T12:00:05Z"}`},
			{obsqra.TopicAllocationRecorded, "9", `{"id":41,"userId":9,"weights":[{"protocolId":3,"weightBps":10000}],"reason":"MANUAL","createdAt":"2025-06-01T12:00:06Z"}`},
		}
		for _, e := range old {
			if err := storetest.Exec(t, db, "INSERT INTO events (topic, owner_user_id, payload, created_at) VALUES ('"+
				e.topic+"', "+e.owner+", '"+e.payload+"', '2025-06-01T12:00:06Z')"); err != nil {
				t.Fatalf("insert an old %s event: %v", e.topic, err)
			}
		}
		t.Run("migrate", func(t *testing.T) {
			if err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		})

		type keys struct {
			topic           string
			owner, protocol int64
			kind            string
		}
		want := []keys{
			{obsqra.TopicMetricsIngested, 0, 3, ""},
			{obsqra.TopicRiskScored, 0, 3, ""},
			{obsqra.TopicRiskScored, 0, 4, ""},
			{obsqra.TopicPredictionCreated, 0, 4, "YIELD_FORECAST"},
			{obsqra.TopicPredictionCreated, 9, 0, "REBALANCE_SUGGESTION"},
			{obsqra.TopicAllocationRecorded, 9, 0, ""},
		}
		events, err := db.EventsAfter(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		t.Run("keys", func(t *testing.T) {
			var got []keys
			for _, e := range events {
				got = append(got, keys{e.Topic, e.OwnerID, e.ProtocolID, e.Kind})
			}
			if !slices.Equal(got, want) {
				t.Errorf("keys after migration = %v, want %v", got, want)
			}
		})

		t.Run("resume", func(t *testing.T) {
			h := live.NewHub(db, live.Options{})
			hctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { h.Run(hctx); close(done) }()
			defer func() { cancel(); <-done }()

			// A client of the previous version got the first event's
			// cursor, and resumes after it on the new one.
			after, err := obsqra.ParseEventCursor(obsqra.EventCursor(events[0].ID))
			if err != nil {
				t.Fatal(err)
			}
			receive := func(viewer int64, f obsqra.EventFilter, n int) []*obsqra.Event {
				t.Helper()
				sub, err := h.Subscribe(hctx, viewer, f, &after)
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
				var got []*obsqra.Event
				wctx, stop := context.WithTimeout(hctx, 5*time.Second)
				defer stop()
				for len(got) < n {
					e, ok := sub.Next(wctx)
					if !ok {
						t.Fatalf("received %d events, want %d: %v", len(got), n, sub.Err())
					}
					got = append(got, e)
				}
				// Nothing else: the hub queues what it has read at once.
				time.Sleep(50 * time.Millisecond)
				if sub.Waiting() {
					e, _ := sub.Take()
					t.Errorf("also received %s event %d", e.Topic, e.ID)
				}
				return got
			}

			vesuRisk := receive(0, obsqra.EventFilter{Rules: []obsqra.EventRule{
				{Topic: obsqra.TopicRiskScored, Protocols: obsqra.NewProtocolSet(4)}}}, 1)
			r, err := obsqra.EventValue[obsqra.RiskScore](vesuRisk[0])
			if err != nil || r.ID != 22 || r.ProtocolID != 4 || r.Score != 57 {
				t.Errorf("vesu's risk event = %+v, %v, want score 22 of protocol 4", r, err)
			}

			suggestions := receive(9, obsqra.EventFilter{Rules: []obsqra.EventRule{
				{Topic: obsqra.TopicPredictionCreated, Kinds: []string{string(obsqra.PredictionRebalanceSuggestion)}}}}, 1)
			p, err := obsqra.EventValue[obsqra.Prediction](suggestions[0])
			if err != nil || p.ID != 32 || p.UserID != 9 {
				t.Errorf("suggestion event = %+v, %v, want prediction 32 of user 9", p, err)
			}

			forecasts := receive(0, obsqra.EventFilter{Rules: []obsqra.EventRule{
				{Topic: obsqra.TopicPredictionCreated, Protocols: obsqra.NewProtocolSet(4)}}}, 1)
			if forecasts[0].ID != events[3].ID {
				t.Errorf("forecast of vesu = event %d, want %d", forecasts[0].ID, events[3].ID)
			}

			// Nostra's metrics event is the cursor's own: not again.
			nostra := receive(0, obsqra.EventFilter{Rules: []obsqra.EventRule{
				{Topic: obsqra.TopicMetricsIngested, Protocols: obsqra.NewProtocolSet(3)},
				{Topic: obsqra.TopicRiskScored, Protocols: obsqra.NewProtocolSet(3)}}}, 1)
			if nostra[0].ID != events[1].ID {
				t.Errorf("nostra's event = %d, want %d", nostra[0].ID, events[1].ID)
			}
		})

		t.Run("new events", func(t *testing.T) {
			e, err := obsqra.PredictionCreatedEvent(&obsqra.Prediction{Kind: obsqra.PredictionRiskForecast, ProtocolID: 5})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.AppendEvent(ctx, e) }); err != nil {
				t.Fatal(err)
			}
			got, err := db.EventsAfter(ctx, e.ID-1, 1)
			if err != nil || len(got) != 1 || got[0].ProtocolID != 5 || got[0].Kind != "RISK_FORECAST" || got[0].OwnerID != 0 {
				t.Errorf("EventsAfter = %+v, %v, want the forecast with its keys", got, err)
			}
		})
	})
}
