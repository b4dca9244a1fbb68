package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestHistoryOfManyProtocols reads the histories of 510 protocols at once:
// one UNION ALL branch per protocol in one statement went past SQLite's
// 500 terms of a compound SELECT ("too many terms in compound SELECT").
// The reads take one statement per 200 protocols, whatever the size of the
// histories.
func TestHistoryOfManyProtocols(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		const protocols, perProtocol = 510, 3
		day := time.Date(2025, 11, 20, 0, 0, 0, 0, time.UTC)
		var ids []int64
		samples := map[int64][]obsqra.MetricsSample{} // newest first
		scores := map[int64][]obsqra.RiskScore{}      // newest first
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			for i := range protocols {
				p, _, err := tx.UpsertProtocol(ctx, obsqra.ProtocolInput{
					Slug: fmt.Sprintf("many-%03d", i), Name: "Many", Chain: "starknet", Category: obsqra.CategoryYield,
					AuditScore: 50, LaunchedOn: obsqra.DateOf(day) - 400, Enabled: true})
				if err != nil {
					return fmt.Errorf("UpsertProtocol(%d): %w", i, err)
				}
				ids = append(ids, p.ID)
				for h := range perProtocol {
					m, _, err := tx.InsertMetricsSample(ctx, obsqra.MetricsSample{ProtocolID: p.ID,
						ObservedAt: day.Add(time.Duration(h) * time.Hour), ApyBps: i*10 + h, Source: obsqra.SourceSimulated})
					if err != nil {
						return fmt.Errorf("InsertMetricsSample: %w", err)
					}
					d := &obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: obsqra.JSONObject(fmt.Sprintf(`{"sample":%d}`, m.ID)),
						Output: obsqra.JSONObject(`{"score":50}`), ModelVersion: obsqra.RiskModelVersion}
					if err := tx.AppendDecision(ctx, d, store.TestHash); err != nil {
						return fmt.Errorf("AppendDecision: %w", err)
					}
					s := &obsqra.RiskScore{ProtocolID: p.ID, SampleID: m.ID, ObservedAt: m.ObservedAt, Score: (i + h) % 101,
						ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: d.CreatedAt, DecisionID: d.ID}
					if err := tx.InsertRiskScore(ctx, s); err != nil {
						return fmt.Errorf("InsertRiskScore: %w", err)
					}
					samples[p.ID] = append([]obsqra.MetricsSample{*m}, samples[p.ID]...)
					scores[p.ID] = append([]obsqra.RiskScore{*s}, scores[p.ID]...)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("WithTx = %v", err)
		}

		// Every protocol twice: a repeated id is read once, and it does not
		// add a statement.
		asked := append(append([]int64(nil), ids...), ids[0], ids[199], ids[200], ids[protocols-1])
		for _, first := range []int{1, perProtocol} {
			page := obsqra.HistoryPage{First: first}
			before := db.Statements()
			gotSamples, err := db.MetricsHistory(ctx, asked, page)
			if ran := db.Statements() - before; err != nil || ran != 3 {
				t.Fatalf("MetricsHistory(%d protocols, first %d) = %v in %d statements, want 3", protocols, first, err, ran)
			}
			before = db.Statements()
			gotScores, err := db.RiskHistory(ctx, asked, page)
			if ran := db.Statements() - before; err != nil || ran != 3 {
				t.Fatalf("RiskHistory(%d protocols, first %d) = %v in %d statements, want 3", protocols, first, err, ran)
			}
			if len(gotSamples) != protocols || len(gotScores) != protocols {
				t.Fatalf("first %d: histories of %d and %d protocols, want %d", first, len(gotSamples), len(gotScores), protocols)
			}
			// First+1 rows, as many as there are.
			n := min(first+1, perProtocol)
			for _, id := range ids {
				if got, want := gotSamples[id], samples[id][:n]; !sameSamples(got, want) {
					t.Fatalf("first %d: MetricsHistory of protocol %d = %+v, want %+v", first, id, got, want)
				}
				if got, want := gotScores[id], scores[id][:n]; !sameScores(got, want) {
					t.Fatalf("first %d: RiskHistory of protocol %d = %+v, want %+v", first, id, got, want)
				}
			}
		}
	})
}

// sameSamples compares samples by id, protocol, time and APY.
func sameSamples(got, want []obsqra.MetricsSample) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.ProtocolID != w.ProtocolID || !g.ObservedAt.Equal(w.ObservedAt) || g.ApyBps != w.ApyBps {
			return false
		}
	}
	return true
}

// sameScores compares scores by id, protocol, time, score and decision.
func sameScores(got, want []obsqra.RiskScore) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.ProtocolID != w.ProtocolID || !g.ObservedAt.Equal(w.ObservedAt) || g.Score != w.Score || g.DecisionID != w.DecisionID {
			return false
		}
	}
	return true
}
