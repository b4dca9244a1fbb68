// Package market keeps the protocols Obsqra follows and their market data:
// the feeds (simulated, DefiLlama, CSV import, admin push), ingestion, and
// the risk score of every new sample with the RiskEngine's parity formula,
// recorded in the hash-chained decision log.
package market

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// Defaults of Config.
const (
	DefaultHistoryDays = 400
	// VolatilityWindowDays is the trailing window of daily APYs whose
	// standard deviation is a sample's volatility (ml's).
	VolatilityWindowDays = ml.VolatilityWindowDays
	// maxFutureSkew is how far ahead of the server's clock an observation
	// may be stamped (clock skew between a feed and the server).
	maxFutureSkew = time.Minute
	// MaxIngestBatch bounds one ingestMetrics call.
	MaxIngestBatch = 1000
	// importChunk is how many samples an import or a backfill commits per
	// unit of work.
	importChunk = 500
)

// DefaultTierThresholds are LIQUIDITY_TIER_USD's default: TVL of at least
// 50 M USD is tier 0, 10 M tier 1, 1 M tier 2, less tier 3.
var DefaultTierThresholds = [3]obsqra.Decimal{
	obsqra.MustDecimal("50000000"), obsqra.MustDecimal("10000000"), obsqra.MustDecimal("1000000"),
}

// Config configures a Service.
type Config struct {
	// Source is the live feed the ingest job polls; nil for none (only
	// pushed data).
	Source Source
	// PollInterval is how often the ingest job polls Source; samples of the
	// feed older than three intervals are reported stale.
	PollInterval time.Duration
	// TierThresholds are the TVLs in USD from which a protocol's liquidity
	// tier is 0, 1 and 2 (descending); below the last it is 3, and an
	// unknown TVL is tier 2.
	TierThresholds [3]obsqra.Decimal
	// HistoryDays is how many days of daily history the first poll of an
	// empty database asks the feed for (default 400).
	HistoryDays int
	Logger      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Engine is the deployed RiskEngine whose model parameters setRiskParams
	// may adopt and CheckDeployedParams compares; nil when
	// RISK_ENGINE_ADDRESS is not set.
	Engine ModelParamsReader
	// ProtocolTTL is how old ProtocolsByID's snapshot may be (default
	// 1s): how long another instance's change of a protocol may take to
	// show in this one's subscriptions. This instance's own changes show
	// at once.
	ProtocolTTL time.Duration
}

// Service holds the market use cases. Resolvers, the importer and the
// scheduler's ingest job all go through it.
type Service struct {
	db        *store.DB
	decisions *decision.Log
	cfg       Config

	mu sync.Mutex
	// models caches the scoring model of each parameters version.
	models map[int]*ml.Model
	// feedErr is the last poll's error while the feed is down.
	feedErr error
	// backfilled holds the protocols whose history this process has
	// checked (and loaded when it lacked).
	backfilled map[int64]bool
	protocols  protocolSnapshot
}

// New returns a market service on db that records its risk scores in
// decisions.
func New(db *store.DB, decisions *decision.Log, cfg Config) (*Service, error) {
	if decisions == nil {
		return nil, errors.New("market: no decision log")
	}
	if cfg.TierThresholds == ([3]obsqra.Decimal{}) {
		cfg.TierThresholds = DefaultTierThresholds
	}
	t := cfg.TierThresholds
	if t[0].Cmp(t[1]) <= 0 || t[1].Cmp(t[2]) <= 0 || t[2].IsNegative() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "liquidity tier thresholds must be descending and not negative, got %s, %s, %s", t[0], t[1], t[2])
	}
	if cfg.HistoryDays == 0 {
		cfg.HistoryDays = DefaultHistoryDays
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProtocolTTL <= 0 {
		cfg.ProtocolTTL = time.Second
	}
	return &Service{db: db, decisions: decisions, cfg: cfg, models: make(map[int]*ml.Model), backfilled: make(map[int64]bool)}, nil
}

// SourceName is the name of the live feed, "none" when there is none.
func (s *Service) SourceName() string {
	if s.cfg.Source == nil {
		return "none"
	}
	return s.cfg.Source.Name()
}

// newModel validates p and returns its scoring model. Errors: EINVALID
// naming the parameter.
func newModel(p obsqra.RiskParams) (*ml.Model, error) {
	weights := []struct {
		name string
		v    int
	}{
		{"wUtilization", p.WUtilization}, {"wVolatility", p.WVolatility},
		{"wLiquidity0", p.WLiquidity0}, {"wLiquidity1", p.WLiquidity1},
		{"wLiquidity2", p.WLiquidity2}, {"wLiquidity3", p.WLiquidity3},
		{"wAudit", p.WAudit}, {"wAge", p.WAge}, {"ageCapDays", p.AgeCapDays},
	}
	for _, w := range weights {
		if w.v > MaxRiskWeight {
			return nil, obsqra.Errorf(obsqra.EINVALID, "%s must be at most %d, got %d", w.name, MaxRiskWeight, w.v)
		}
	}
	return ml.NewModel(p)
}
