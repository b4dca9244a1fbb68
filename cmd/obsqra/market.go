package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// newSource returns the live feed MARKET_SOURCE names, nil for none.
func newSource(cfg *config.Config) market.Source {
	switch cfg.MarketSource {
	case "simulated":
		return market.NewSimulatorAt(cfg.MarketSeed, float64(cfg.MarketSimSpeed))
	case "defillama":
		return market.NewDefiLlama(market.DefiLlamaConfig{BaseURL: cfg.DefiLlamaURL})
	}
	return nil
}

// newDecisions returns the decision log, keyed by the server's secret
// (which the database never sees: its owner cannot rehash a rewritten
// entry), with the kinds of decision the services record: risk scores,
// checked against the RiskEngine on node when RISK_ENGINE_ADDRESS names
// one, and optimisation runs, whose signed constraints signatures (nil:
// none) checks again. node may be nil.
func newDecisions(db *store.DB, cfg *config.Config, logger *slog.Logger, node *starknet.Client, signatures advisor.SignatureChecker) (*decision.Log, error) {
	var engine market.RiskEngine
	if node != nil && cfg.RiskEngineAddress != nil {
		engine = starknet.RiskEngine{Client: node, Address: *cfg.RiskEngineAddress}
	}
	return decision.New(db, decision.Key(cfg.SecretKey),
		market.NewRiskScores(db, engine, logger), advisor.Optimizations{Signatures: signatures})
}

func newMarket(db *store.DB, cfg *config.Config, logger *slog.Logger, decisions *decision.Log, node *starknet.Client) (*market.Service, error) {
	mc := market.Config{
		Source:         newSource(cfg),
		PollInterval:   cfg.MarketPollInterval,
		TierThresholds: cfg.LiquidityTierUSD,
		HistoryDays:    cfg.MarketHistoryDays,
		Logger:         logger,
	}
	if node != nil && cfg.RiskEngineAddress != nil {
		mc.Engine = starknet.RiskEngine{Client: node, Address: *cfg.RiskEngineAddress}
	}
	return market.New(db, decisions, mc)
}

const importUsage = `usage: obsqra import metrics FILE
  FILE is a CSV in the generic format (header protocol,observed_at,apy_bps[,tvl_usd][,utilization_bps])
  or the Aave V3 daily rates format; "-" reads standard input. See the README.`

// runImport is `obsqra import metrics FILE`.
func runImport(ctx context.Context, cfg *config.Config, logger *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "metrics" {
		return errors.New(importUsage)
	}
	var r io.Reader = stdin
	if args[1] != "-" {
		f, err := os.Open(args[1])
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		r = f
	}
	imp, err := market.ParseMetricsCSV(r)
	if err != nil {
		return fmt.Errorf("import %s: %w", args[1], err)
	}
	db, err := open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	decisions, err := newDecisions(db, cfg, logger, nil, nil)
	if err != nil {
		return err
	}
	svc, err := market.New(db, decisions, market.Config{TierThresholds: cfg.LiquidityTierUSD, Logger: logger})
	if err != nil {
		return err
	}
	res, err := svc.Import(ctx, imp)
	if err != nil {
		return fmt.Errorf("import %s: %w", args[1], err)
	}
	fmt.Fprintf(stdout, "imported %s (%s format): %d samples, %d new, %d already stored; %d protocols created\n",
		args[1], imp.Format, res.Samples, res.Created, res.Samples-res.Created, res.ProtocolsCreated)
	return nil
}
