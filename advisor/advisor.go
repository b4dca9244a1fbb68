// Package advisor makes Obsqra's advice: forecasts of each protocol's yield
// and risk from the stored daily history, optimal allocations for a user's
// tolerance and limits, rebalancing suggestions net of cost, and backtests.
// Every forecast and suggestion it hands out on a schedule or for a user is
// recorded as a prediction, and later judged against what happened.
package advisor

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// ModelVersion names the forecasting and optimisation as a whole; it is
// recorded with every prediction and decision.
const ModelVersion = "advisor-v2/" + ml.DefaultModel + "@" + ml.DefaultGlobalVersion

// Defaults of Config.
const (
	DefaultHorizonDays        = 7
	DefaultHistoryDays        = 365
	DefaultBacktestWindowDays = 90
	DefaultGasUsdPerMove      = 0.50
	DefaultSlippageBps        = 10
	// PaybackDays is the period over which a rebalance must pay for its
	// costs out of its forecast gain (ml.RebalanceInput.HorizonDays).
	PaybackDays = 30
	// covarianceDays is the trailing window of aligned daily APYs whose
	// covariance the optimiser uses.
	covarianceDays = 90
	// maxHorizonDays bounds every horizon a client may ask for.
	maxHorizonDays = 365
	// minForecastDays is the fewest observed days a forecast needs (ml's
	// default MinObservations).
	minForecastDays = 30
)

// Config configures a Service.
type Config struct {
	// HorizonDays is the forecast horizon when a request names none, and
	// that of the scheduled forecasts (PREDICTION_WINDOW_DAYS, default 7).
	HorizonDays int
	// HistoryDays is how many days of daily history a forecast uses
	// (default 365).
	HistoryDays int
	// BacktestWindowDays bounds a backtest's window (BACKTEST_WINDOW_DAYS,
	// default 90).
	BacktestWindowDays int
	// GasUsdPerMove is the gas cost of one rebalance trade in USD, at
	// least 0. Zero is a valid cost (free), so it is not defaulted: the
	// server passes REBALANCE_GAS_USD, whose default is
	// DefaultGasUsdPerMove.
	GasUsdPerMove float64
	// SlippageBps is the cost of trading in bps of the traded notional,
	// 0–10000. Zero is valid and not defaulted: the server passes
	// REBALANCE_SLIPPAGE_BPS, whose default is DefaultSlippageBps.
	SlippageBps float64
	Logger      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// RiskModel is what the advisor needs of the market: the scoring model of
// the active risk parameters.
type RiskModel interface {
	ActiveModel(ctx context.Context) (*ml.Model, *obsqra.RiskParams, error)
}

// Service holds the advice use cases. Resolvers and the scheduler's
// forecast, outcome and rebalance jobs go through it.
type Service struct {
	db        *store.DB
	risk      RiskModel
	decisions *decision.Log
	cfg       Config

	mu sync.Mutex
	// forecasts caches forecasts by the digest of everything they were
	// computed from: the same inputs always give the same forecast.
	forecasts map[string]obsqra.Forecast
	// backtests caches backtest reports likewise.
	backtests map[string]*obsqra.BacktestReport
	// backtestSlot lets one backtest compute at a time: each costs up to a
	// second of CPU, and requests with distinct arguments (which the cache
	// does not absorb) must not take every core from the API.
	backtestSlot chan struct{}
}

// maxCached bounds each cache; a full cache is emptied (the entries are
// recomputed on demand).
const maxCached = 4096

// New returns an advisor on db that records its optimisation runs in
// decisions.
func New(db *store.DB, risk RiskModel, decisions *decision.Log, cfg Config) (*Service, error) {
	if decisions == nil {
		return nil, errors.New("advisor: no decision log")
	}
	if cfg.HorizonDays == 0 {
		cfg.HorizonDays = DefaultHorizonDays
	}
	if cfg.HistoryDays == 0 {
		cfg.HistoryDays = DefaultHistoryDays
	}
	if cfg.BacktestWindowDays == 0 {
		cfg.BacktestWindowDays = DefaultBacktestWindowDays
	}
	switch {
	case cfg.HorizonDays < 1 || cfg.HorizonDays > maxHorizonDays:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the prediction window must be 1 to %d days, got %d", maxHorizonDays, cfg.HorizonDays)
	case cfg.HistoryDays < minForecastDays || cfg.HistoryDays > 3650:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the forecast history must be %d to 3650 days, got %d", minForecastDays, cfg.HistoryDays)
	case cfg.BacktestWindowDays < 1 || cfg.BacktestWindowDays > 3650:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the backtest window must be 1 to 3650 days, got %d", cfg.BacktestWindowDays)
	case cfg.GasUsdPerMove < 0 || math.IsNaN(cfg.GasUsdPerMove) || math.IsInf(cfg.GasUsdPerMove, 0):
		return nil, obsqra.Errorf(obsqra.EINVALID, "the gas cost per move must be a finite amount of at least 0 USD")
	case cfg.SlippageBps < 0 || cfg.SlippageBps > 10000 || math.IsNaN(cfg.SlippageBps):
		return nil, obsqra.Errorf(obsqra.EINVALID, "the slippage must be 0 to 10000 bps")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{db: db, risk: risk, decisions: decisions, cfg: cfg,
		forecasts: make(map[string]obsqra.Forecast), backtests: make(map[string]*obsqra.BacktestReport),
		backtestSlot: make(chan struct{}, 1)}, nil
}

// HorizonDays is the default forecast horizon.
func (s *Service) HorizonDays() int { return s.cfg.HorizonDays }

// today is the current UTC day by the service's clock.
func (s *Service) today() obsqra.Date { return obsqra.DateOf(s.cfg.Now()) }

// horizon resolves an optional horizon argument. Errors: EINVALID.
func (s *Service) horizon(h *int) (int, error) {
	if h == nil {
		return s.cfg.HorizonDays, nil
	}
	if *h < 1 || *h > maxHorizonDays {
		return 0, obsqra.Errorf(obsqra.EINVALID, "horizonDays must be between 1 and %d, got %d", maxHorizonDays, *h)
	}
	return *h, nil
}
