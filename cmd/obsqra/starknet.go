package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// newStarknet returns the client of the configured nodes, or nil when
// there are none. A node on another chain than STARKNET_NETWORK is never
// used; the check at start only reports it early.
func newStarknet(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*starknet.Client, error) {
	if len(cfg.StarknetRPCURLs) == 0 {
		return nil, nil
	}
	c, err := starknet.New(starknet.Config{URLs: cfg.StarknetRPCURLs, Network: cfg.StarknetNetwork, Logger: logger})
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

// ledgerNode adapts the Starknet client to what the ledger's watcher reads.
type ledgerNode struct{ c *starknet.Client }

// TransactionStatus reports the node's status of hash; ledger.ErrNotFound
// when the node does not know it (error 29).
func (n ledgerNode) TransactionStatus(ctx context.Context, hash obsqra.Felt) (ledger.NodeStatus, error) {
	s, err := n.c.TransactionStatus(ctx, hash)
	if errors.Is(err, starknet.ErrTxNotFound) {
		return ledger.NodeStatus{}, fmt.Errorf("%w: %w", ledger.ErrNotFound, err)
	}
	if err != nil {
		return ledger.NodeStatus{}, err
	}
	return ledger.NodeStatus{Finality: s.FinalityStatus, Execution: s.ExecutionStatus, FailureReason: s.FailureReason, Raw: s.Raw}, nil
}

// TransactionReceipt reports the node's receipt of hash.
func (n ledgerNode) TransactionReceipt(ctx context.Context, hash obsqra.Felt) (ledger.NodeReceipt, error) {
	r, err := n.c.TransactionReceipt(ctx, hash)
	if errors.Is(err, starknet.ErrTxNotFound) {
		return ledger.NodeReceipt{}, fmt.Errorf("%w: %w", ledger.ErrNotFound, err)
	}
	if err != nil {
		return ledger.NodeReceipt{}, err
	}
	out := ledger.NodeReceipt{
		FeeAmount: r.Fee.Amount.String(), FeeUnit: r.Fee.Unit, Events: r.EventsEmitted,
		Execution: r.ExecutionStatus, RevertReason: r.RevertReason, Finality: r.FinalityStatus, Raw: r.Raw,
	}
	if r.BlockNumber != nil {
		b := int64(*r.BlockNumber)
		out.BlockNumber = &b
	}
	return out, nil
}

func newLedger(db *store.DB, cfg *config.Config, logger *slog.Logger, node *starknet.Client) *ledger.Service {
	var nc ledger.NodeClient
	if node != nil {
		nc = ledgerNode{node}
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
