package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

func newAdvisor(db *store.DB, cfg *config.Config, logger *slog.Logger, markets *market.Service, decisions *decision.Log) (*advisor.Service, error) {
	return advisor.New(db, markets, decisions, advisor.Config{
		HorizonDays:        cfg.PredictionWindowDays,
		BacktestWindowDays: cfg.BacktestWindowDays,
		GasUsdPerMove:      cfg.RebalanceGasUSD,
		SlippageBps:        float64(cfg.RebalanceSlippageBps),
		Logger:             logger,
	})
}

// newPortfolio returns the portfolio service, reading wallets' positions
// on node (nil: none).
func newPortfolio(db *store.DB, cfg *config.Config, node *starknet.Client) *portfolio.Service {
	pc := portfolio.Config{HorizonDays: cfg.PredictionWindowDays}
	if node != nil {
		pc.Chain, pc.Lagging = node, starknet.ErrBlockNotFound
	}
	return portfolio.New(db, pc)
}

// adviceJobs are the advisor's periodic jobs: forecasts, their outcomes,
// and the users' rebalance checks.
func adviceJobs(cfg *config.Config, logger *slog.Logger, advice *advisor.Service) []scheduler.Job {
	counted := func(what string, run func(context.Context) (int, error)) func(context.Context) error {
		return func(ctx context.Context) error {
			n, err := run(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			logger.Debug(what, "recorded", n)
			return nil
		}
	}
	return []scheduler.Job{{
		Name:     "forecast-refresh",
		Interval: cfg.ForecastRefreshInterval,
		Timeout:  max(cfg.ForecastRefreshInterval, minIngestTimeout),
		Jitter:   cfg.ForecastRefreshInterval / 10,
		Run:      counted("refresh forecasts", advice.RefreshForecasts),
	}, {
		Name:     "outcome-scoring",
		Interval: cfg.OutcomeScoringInterval,
		Timeout:  max(cfg.OutcomeScoringInterval, minIngestTimeout),
		Jitter:   cfg.OutcomeScoringInterval / 10,
		Run:      counted("score outcomes", advice.ScoreOutcomes),
	}, {
		Name:     "rebalance-check",
		Interval: cfg.RebalanceCheckInterval,
		Timeout:  max(cfg.RebalanceCheckInterval/2, minIngestTimeout),
		Jitter:   cfg.RebalanceCheckInterval / 10,
		Run:      counted("check rebalances", advice.CheckRebalances),
	}}
}
