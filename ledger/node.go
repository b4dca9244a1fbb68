package ledger

import (
	"context"
	"errors"

	"github.com/obsqra/obsqra"
)

// NodeClient is what the ledger asks of a Starknet node. The starknet
// package's client satisfies it through a small adapter in cmd/obsqra,
// which maps the node's error 29 (transaction hash not found) to
// ErrNotFound; any other error is taken for the node being unreachable.
type NodeClient interface {
	// TransactionStatus is starknet_getTransactionStatus.
	TransactionStatus(ctx context.Context, hash obsqra.Felt) (NodeStatus, error)
	// TransactionReceipt is starknet_getTransactionReceipt.
	TransactionReceipt(ctx context.Context, hash obsqra.Felt) (NodeReceipt, error)
}

// ErrNotFound is the error a NodeClient returns (or wraps) when the node
// does not know the transaction (JSON-RPC error 29).
var ErrNotFound = errors.New("transaction hash not found")

// ErrUnavailable is what a NodeClient's error wraps when no node could be
// reached at all (as opposed to an answer about one transaction): the
// watcher then stops its run and leaves everything due.
var ErrUnavailable = errors.New("starknet node unavailable")

// NodeStatus is a node's answer to starknet_getTransactionStatus.
type NodeStatus struct {
	// Finality is finality_status: RECEIVED, CANDIDATE, PRE_CONFIRMED,
	// ACCEPTED_ON_L2 or ACCEPTED_ON_L1 (REJECTED from nodes of older specs).
	Finality string
	// Execution is execution_status: SUCCEEDED, REVERTED, or "" while
	// unknown.
	Execution string
	// FailureReason is failure_reason, the revert reason of a REVERTED
	// transaction.
	FailureReason string
	// Raw is the answer's JSON as it came, kept in the history (clipped).
	Raw []byte
}

// NodeReceipt is what the ledger reads of a node's answer to
// starknet_getTransactionReceipt.
type NodeReceipt struct {
	// BlockNumber is nil when the node gives none.
	BlockNumber *int64
	// FeeAmount is actual_fee.amount in the unit's smallest denomination:
	// a 0x-prefixed hexadecimal felt, as the node gives it, or a decimal
	// integer. "" when the node gives none.
	FeeAmount string
	// FeeUnit is actual_fee.unit: WEI or FRI.
	FeeUnit string
	// Events is how many events the transaction emitted.
	Events int
	// Execution, RevertReason and Finality are execution_status,
	// revert_reason and finality_status.
	Execution, RevertReason, Finality string
	// Raw is the answer's JSON as it came.
	Raw []byte
}
