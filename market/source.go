package market

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
)

// Source is a market data feed: the simulator, DefiLlama, or nothing. The
// market service polls it on the scheduler's ingest job and asks it once for
// history when the database has none.
type Source interface {
	// Name is the source's name as samples record it (obsqra.Source*).
	Name() string
	// Poll returns the current sample of each protocol the source knows
	// (protocols it does not know are left out, not an error), observed at
	// or before now. last holds each protocol's latest stored sample of
	// this source, keyed by protocol id, for sources that evolve from it.
	Poll(ctx context.Context, protocols []obsqra.Protocol, last map[int64]obsqra.MetricsSample, now time.Time) ([]obsqra.MetricsInput, error)
	// History returns up to days of daily samples per protocol, ending
	// before now, oldest first; nil when the source has none.
	History(ctx context.Context, protocols []obsqra.Protocol, now time.Time, days int) ([]obsqra.MetricsInput, error)
}
