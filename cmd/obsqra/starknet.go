package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// newStarknet returns the client of the configured nodes, or nil when
// there are none; observer (nil: none) hears of every call, and its
// requests are traced into tp when it is not nil. A node on another chain
// than STARKNET_NETWORK is never used; the check at start only reports it
// early.
func newStarknet(ctx context.Context, cfg *config.Config, logger *slog.Logger, observer starknet.Observer, tp trace.TracerProvider) (*starknet.Client, error) {
	if len(cfg.StarknetRPCURLs) == 0 {
		return nil, nil
	}
	c, err := starknet.New(starknet.Config{URLs: cfg.StarknetRPCURLs, Network: cfg.StarknetNetwork, Logger: logger, Observer: observer, TracerProvider: tp})
	if err != nil {
		return nil, fmt.Errorf("starknet: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.CheckChain(ctx); err != nil {
		logger.Warn("starknet node check failed; such nodes are not used", "error", err)
	}
	return c, nil
}

func newLedger(db *store.DB, cfg *config.Config, logger *slog.Logger, node *starknet.Client) *ledger.Service {
	var nc ledger.NodeClient
	if node != nil {
		nc = ledger.StarknetNode(node)
	}
	return ledger.New(db, nc, ledger.Config{WatchInterval: cfg.TxWatchInterval, DropAfter: cfg.TxDropAfter, Logger: logger})
}

// ledgerJobs is the chain watcher, when there is a node to watch with.
func ledgerJobs(cfg *config.Config, node *starknet.Client, l *ledger.Service) []scheduler.Job {
	if node == nil {
		return nil
	}
	return []scheduler.Job{{
		Name:     "tx-watch",
		Interval: cfg.TxWatchInterval,
		Timeout:  max(minIngestTimeout, 4*cfg.TxWatchInterval),
		Jitter:   cfg.TxWatchInterval / 10,
		Run: func(ctx context.Context) error {
			_, err := l.Watch(ctx)
			return err
		},
	}}
}
