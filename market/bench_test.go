package market_test

import (
	"context"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// BenchmarkIngestPoll measures one poll's ingestion: five samples stored,
// scored, recorded as decisions and published, in one unit of work.
func BenchmarkIngestPoll(b *testing.B) {
	for _, dialect := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		b.Run(dialect.name, func(b *testing.B) {
			db := dialect.open(b)
			decisions, err := decision.New(db, testKey, market.NewRiskScores(db, nil, nil))
			if err != nil {
				b.Fatal(err)
			}
			s, err := market.New(db, decisions, market.Config{})
			if err != nil {
				b.Fatal(err)
			}
			slugs := []string{"ekubo", "jediswap", "nostra", "vesu", "zklend"}
			at := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
			b.ReportAllocs()
			for b.Loop() {
				at = at.Add(time.Second)
				in := make([]obsqra.MetricsInput, len(slugs))
				for i, p := range slugs {
					tvl := obsqra.MustDecimal("25000000")
					in[i] = obsqra.MetricsInput{Protocol: p, ObservedAt: at, ApyBps: 400 + i, TvlUsd: &tvl, UtilizationBps: 6000}
				}
				if _, err := s.Ingest(context.Background(), obsqra.SourceSimulated, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
