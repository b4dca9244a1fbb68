package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
)

// StarknetNode is the NodeClient of a Starknet JSON-RPC client: the node's
// answers in the watcher's terms, error 29 as ErrNotFound.
func StarknetNode(c *starknet.Client) NodeClient { return starknetNode{c} }

type starknetNode struct{ c *starknet.Client }

func (n starknetNode) TransactionStatus(ctx context.Context, hash obsqra.Felt) (NodeStatus, error) {
	s, err := n.c.TransactionStatus(ctx, hash)
	if err != nil {
		return NodeStatus{}, classify(err)
	}
	return NodeStatus{Finality: s.FinalityStatus, Execution: s.ExecutionStatus, FailureReason: s.FailureReason, Raw: s.Raw}, nil
}

func (n starknetNode) TransactionReceipt(ctx context.Context, hash obsqra.Felt) (NodeReceipt, error) {
	r, err := n.c.TransactionReceipt(ctx, hash)
	if err != nil {
		return NodeReceipt{}, classify(err)
	}
	out := NodeReceipt{
		FeeAmount: r.Fee.Amount.String(), FeeUnit: r.Fee.Unit, Events: r.EventsEmitted,
		Execution: r.ExecutionStatus, RevertReason: r.RevertReason, Finality: r.FinalityStatus, Raw: r.Raw,
	}
	if r.BlockNumber != nil {
		b := int64(*r.BlockNumber)
		out.BlockNumber = &b
	}
	return out, nil
}

// classify wraps a client error in the watcher's terms: ErrNotFound for
// error 29, ErrUnavailable when no node answered.
func classify(err error) error {
	switch {
	case errors.Is(err, starknet.ErrTransactionNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, starknet.ErrUnavailable):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}
