package obsqra

import (
	"io"
	"time"
)

// TxType is what a logged transaction did.
type TxType string

// Transaction types.
const (
	TxDeposit   TxType = "DEPOSIT"
	TxWithdraw  TxType = "WITHDRAW"
	TxAllocate  TxType = "ALLOCATE"
	TxRebalance TxType = "REBALANCE"
)

// IsValid reports whether t is a known type.
func (t TxType) IsValid() bool {
	return t == TxDeposit || t == TxWithdraw || t == TxAllocate || t == TxRebalance
}

// String returns the type's name.
func (t TxType) String() string { return string(t) }

// MarshalGQL writes the type as a GraphQL enum value.
func (t TxType) MarshalGQL(w io.Writer) { marshalEnum(w, t) }

// UnmarshalGQL reads the type from a GraphQL enum value.
func (t *TxType) UnmarshalGQL(v any) error {
	return unmarshalEnum(t, v, TxType.IsValid, "TransactionType")
}

// TxStatus is where a transaction stands on Starknet, as the server last
// saw it. Statuses only move forward, in the order of their declaration;
// DROPPED ends a transaction the node never saw within TX_DROP_AFTER.
type TxStatus string

// Transaction statuses, in the order they are reached.
const (
	TxPending      TxStatus = "PENDING" // logged, the node has not reported it yet
	TxReceived     TxStatus = "RECEIVED"
	TxCandidate    TxStatus = "CANDIDATE"
	TxPreConfirmed TxStatus = "PRE_CONFIRMED"
	TxAcceptedOnL2 TxStatus = "ACCEPTED_ON_L2"
	TxAcceptedOnL1 TxStatus = "ACCEPTED_ON_L1"
	TxDropped      TxStatus = "DROPPED"
)

// txStatusRank orders the statuses a transaction moves through.
var txStatusRank = map[TxStatus]int{
	TxPending: 0, TxReceived: 1, TxCandidate: 2, TxPreConfirmed: 3, TxAcceptedOnL2: 4, TxAcceptedOnL1: 5, TxDropped: 6,
}

// IsValid reports whether s is a known status.
func (s TxStatus) IsValid() bool { _, ok := txStatusRank[s]; return ok }

// Rank is s's place in the order statuses are reached (PENDING 0).
func (s TxStatus) Rank() int { return txStatusRank[s] }

// IsFinal reports whether no later status can follow s: accepted on L1,
// or dropped.
func (s TxStatus) IsFinal() bool { return s == TxAcceptedOnL1 || s == TxDropped }

// String returns the status's name.
func (s TxStatus) String() string { return string(s) }

// MarshalGQL writes the status as a GraphQL enum value.
func (s TxStatus) MarshalGQL(w io.Writer) { marshalEnum(w, s) }

// UnmarshalGQL reads the status from a GraphQL enum value.
func (s *TxStatus) UnmarshalGQL(v any) error {
	return unmarshalEnum(s, v, TxStatus.IsValid, "TransactionStatus")
}

// ExecutionStatus is whether a transaction's execution succeeded.
type ExecutionStatus string

// Execution statuses.
const (
	ExecSucceeded ExecutionStatus = "SUCCEEDED"
	ExecReverted  ExecutionStatus = "REVERTED"
)

// IsValid reports whether e is a known execution status.
func (e ExecutionStatus) IsValid() bool { return e == ExecSucceeded || e == ExecReverted }

// MarshalGQL writes the status as a GraphQL enum value.
func (e ExecutionStatus) MarshalGQL(w io.Writer) { marshalEnum(w, e) }

// UnmarshalGQL reads the status from a GraphQL enum value.
func (e *ExecutionStatus) UnmarshalGQL(v any) error {
	return unmarshalEnum(e, v, ExecutionStatus.IsValid, "ExecutionStatus")
}

// Fee is what a transaction paid.
type Fee struct {
	// Amount is in the unit's smallest denomination (wei or fri).
	Amount Decimal `json:"amount"`
	// Unit is WEI or FRI.
	Unit string `json:"unit"`
}

// Transaction is a user's on-chain transaction as logged, with what the
// chain watcher has learnt of it since. The logged columns (TxHash, Type,
// Amount, Token, TokenAddress, Details, UserID, CreatedAt) never change;
// the rest is the latest of History. Its JSON form is the payload of a
// transaction.updated event (see the event catalogue).
type Transaction struct {
	ID           int64      `json:"id"`
	UserID       int64      `json:"userId"`
	TxHash       Felt       `json:"txHash"`
	Type         TxType     `json:"type"`
	Amount       Decimal    `json:"amount"`
	Token        string     `json:"token"`
	TokenAddress *Felt      `json:"tokenAddress,omitempty"`
	Details      JSONObject `json:"details,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`

	Status          TxStatus         `json:"status"`
	ExecutionStatus *ExecutionStatus `json:"executionStatus,omitempty"`
	FailureReason   *string          `json:"failureReason,omitempty"`
	BlockNumber     *int64           `json:"blockNumber,omitempty"`
	Fee             *Fee             `json:"fee,omitempty"`
	EventsEmitted   *int             `json:"eventsEmitted,omitempty"`
	UpdatedAt       time.Time        `json:"updatedAt"`
	// LastCheckedAt is when the watcher last asked the node about it; the
	// watcher's bookkeeping, not carried by events.
	LastCheckedAt *time.Time `json:"-"`
}

// NodeID returns the transaction's global id.
func (t *Transaction) NodeID() string { return NodeID(NodeTransaction, t.ID) }

// TxStatusChange is one step of a transaction's history: a new row for
// every change, never edited.
type TxStatusChange struct {
	ID              int64
	TransactionID   int64
	Status          TxStatus
	ExecutionStatus *ExecutionStatus
	// RawStatus is the node's answer as it came (finality and execution
	// status, or the error), for the record.
	RawStatus string
	Reason    string
	At        time.Time
}

// LogTransactionInput is what logTransaction takes.
type LogTransactionInput struct {
	TxHash       Felt
	Type         TxType
	Amount       Decimal
	Token        string
	TokenAddress *Felt
	Details      JSONObject
}

// TransactionFilter selects a user's transactions; nil fields select all.
type TransactionFilter struct {
	Type   *TxType
	Status *TxStatus
	// From and To bound CreatedAt, inclusive.
	From, To *time.Time
}

// WatchedTransaction is a transaction the watcher follows, with its
// schedule.
type WatchedTransaction struct {
	Transaction
	// NextCheckAt is when it is due.
	NextCheckAt time.Time
	// NotFoundSince is when the node first answered, of the checks since
	// it last knew it, that it does not know the transaction; nil while it
	// does.
	NotFoundSince *time.Time
}

// StatusUpdate is a step of a transaction's history: what the node said
// and what the watcher made of it.
type StatusUpdate struct {
	Status TxStatus
	// ExecutionStatus, when set, must be the one already known, if any;
	// nil keeps what is known.
	ExecutionStatus *ExecutionStatus
	// FailureReason, when set, replaces the known one; nil keeps it.
	FailureReason *string
	// RawStatus is the node's answer as it came; Reason says why the step
	// was taken.
	RawStatus string
	Reason    string
}

// Receipt is what a transaction's receipt tells once it is in a block.
type Receipt struct {
	BlockNumber *int64
	Fee         *Fee
	// EventsEmitted is how many events the transaction emitted.
	EventsEmitted *int
}
