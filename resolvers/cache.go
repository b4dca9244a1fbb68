package resolvers

import "github.com/obsqra/obsqra"

// CacheScopes are the fields whose answers the server's read cache may
// keep (server.ReadCache), by coordinate ("Type.field", or "Type.*" for
// every field of Type), with what their values depend on. A field is here
// only when every write of what it shows appends an outbox event in the
// same unit of work (public for market data, owned by the user for a
// user's own rows), its value depends on the clock at most through the
// UTC day, and what it shows of the viewer comes from the account row
// that authentication reads for every request. Anything else (sessions,
// the scheduler, forecasts computed at read time, prediction outcomes
// scored later, a sample's staleness, decision checks) is left out, and a
// document that selects it is executed every time.
//
// When a resolver here starts reading something new, check that its
// writes append events, or take the field out.
var CacheScopes = map[string]obsqra.CacheScope{
	// The market: protocols (TopicMarketChanged), metrics samples
	// (TopicMetricsIngested), risk scores (TopicRiskScored), risk
	// parameters (TopicMarketChanged). History rows never change.
	"Query.protocols":          obsqra.CachePublic,
	"Query.protocol":           obsqra.CachePublic,
	"Query.riskParams":         obsqra.CachePublic,
	"Protocol.id":              obsqra.CachePublic,
	"Protocol.slug":            obsqra.CachePublic,
	"Protocol.name":            obsqra.CachePublic,
	"Protocol.chain":           obsqra.CachePublic,
	"Protocol.category":        obsqra.CachePublic,
	"Protocol.auditScore":      obsqra.CachePublic,
	"Protocol.launchedOn":      obsqra.CachePublic,
	"Protocol.ageDays":         obsqra.CachePublic, // whole days: the stamp's day
	"Protocol.contractAddress": obsqra.CachePublic,
	"Protocol.enabled":         obsqra.CachePublic,
	"Protocol.latestMetrics":   obsqra.CachePublic,
	"Protocol.latestRisk":      obsqra.CachePublic,
	"Protocol.metricsHistory":  obsqra.CachePublic,
	"Protocol.riskHistory":     obsqra.CachePublic,
	"MetricsSample.id":         obsqra.CachePublic,
	"MetricsSample.protocol":   obsqra.CachePublic,
	"MetricsSample.observedAt": obsqra.CachePublic,
	"MetricsSample.apyBps":     obsqra.CachePublic,
	"MetricsSample.tvlUsd":     obsqra.CachePublic,
	// MetricsSample.stale is not here: it turns true when the feed stops,
	// which no event says.
	"MetricsSample.utilizationBps": obsqra.CachePublic,
	"MetricsSample.volatilityBps":  obsqra.CachePublic,
	"MetricsSample.liquidityTier":  obsqra.CachePublic,
	"MetricsSample.source":         obsqra.CachePublic,
	"MetricsSampleConnection.*":    obsqra.CachePublic,
	"MetricsSampleEdge.*":          obsqra.CachePublic,
	"RiskScore.*":                  obsqra.CachePublic,
	"RiskComponents.*":             obsqra.CachePublic,
	"RiskInputs.*":                 obsqra.CachePublic,
	"RiskScoreConnection.*":        obsqra.CachePublic,
	"RiskScoreEdge.*":              obsqra.CachePublic,
	"RiskParams.*":                 obsqra.CachePublic,
	"PageInfo.*":                   obsqra.CachePublic,
	"Node.id":                      obsqra.CachePublic,

	// The viewer's portfolio: allocations (TopicAllocationRecorded, never
	// changed once recorded), suggestions (TopicPredictionCreated, owned;
	// never changed), the market series the dashboard weighs (public
	// events), the yield forecasts it takes (public TopicPredictionCreated),
	// the threshold of the viewer's preferences (the account row) and the
	// day its window ends.
	"Query.dashboard":         obsqra.CacheViewer,
	"Dashboard.*":             obsqra.CacheViewer,
	"DashboardProtocol.*":     obsqra.CacheViewer,
	"Query.allocationHistory": obsqra.CacheViewer,
	"AllocationConnection.*":  obsqra.CacheViewer,
	"AllocationEdge.*":        obsqra.CacheViewer,
	"Allocation.*":            obsqra.CacheViewer,
	"Weight.*":                obsqra.CachePublic,
	"RebalanceSuggestion.*":   obsqra.CacheViewer,
	"RebalanceTrade.*":        obsqra.CacheViewer,
	"AllocationPlan.*":        obsqra.CacheViewer,
	// The viewer's transactions: every logged transaction and every status
	// change or receipt appends TopicTransactionUpdated (owned); the
	// watcher's bookkeeping of when it checks next is not shown.
	"Query.transactions":        obsqra.CacheViewer,
	"TransactionConnection.*":   obsqra.CacheViewer,
	"TransactionEdge.*":         obsqra.CacheViewer,
	"Transaction.*":             obsqra.CacheViewer,
	"Fee.*":                     obsqra.CacheViewer,
	"TransactionStatusChange.*": obsqra.CacheViewer,
}
