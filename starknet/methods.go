package starknet

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/obsqra/obsqra"
)

// Finality statuses of spec 0.9, in the order a transaction reaches them.
const (
	StatusReceived     = "RECEIVED"
	StatusCandidate    = "CANDIDATE"
	StatusPreConfirmed = "PRE_CONFIRMED"
	StatusAcceptedOnL2 = "ACCEPTED_ON_L2"
	StatusAcceptedOnL1 = "ACCEPTED_ON_L1"
)

// Execution statuses of spec 0.9.
const (
	ExecutionSucceeded = "SUCCEEDED"
	ExecutionReverted  = "REVERTED"
)

// SpecVersion returns the JSON-RPC spec version the node implements, e.g.
// "0.9.0" (starknet_specVersion). Errors: ErrUnavailable.
func (c *Client) SpecVersion(ctx context.Context) (string, error) {
	var v string
	if err := c.call(ctx, "starknet_specVersion", nil, &v); err != nil {
		return "", err
	}
	return v, nil
}

// ChainID returns the chain id a node reports (starknet_chainId), decoded
// from its felt to its text, e.g. "SN_SEPOLIA" for 0x534e5f5345504f4c4941;
// a chain id that is not printable text comes back in hex. Unlike every
// other request, it is not refused by a node on another chain: it is how
// one finds out. Errors: ErrUnavailable.
func (c *Client) ChainID(ctx context.Context) (string, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "starknet_chainId", nil, &raw); err != nil {
		return "", err
	}
	id, err := decodeChainID(raw)
	if err != nil {
		return "", fmt.Errorf("starknet_chainId: %w", err)
	}
	return id, nil
}

func decodeChainID(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("decode chain id %s: %w", obsqra.Clip(string(raw), 80), err)
	}
	f, err := obsqra.ParseFelt(s)
	if err != nil {
		return "", fmt.Errorf("decode chain id: %w", err)
	}
	return decodeShortString(f), nil
}

// BlockNumber returns the number of the latest accepted block
// (starknet_blockNumber). Errors: ErrUnavailable, *RPCError (32: no
// blocks).
func (c *Client) BlockNumber(ctx context.Context) (uint64, error) {
	var n uint64
	if err := c.call(ctx, "starknet_blockNumber", nil, &n); err != nil {
		return 0, err
	}
	return n, nil
}

// TransactionStatus is what starknet_getTransactionStatus reports of a transaction.
type TransactionStatus struct {
	// FinalityStatus is one of the Status* constants.
	FinalityStatus string
	// ExecutionStatus is ExecutionSucceeded or ExecutionReverted once the
	// transaction was executed, "" before.
	ExecutionStatus string
	// FailureReason says why a transaction reverted (or failed validation).
	FailureReason string
	// Raw is the node's result as it came, for the record.
	Raw json.RawMessage
}

// TransactionStatus returns the status of the transaction hash
// (starknet_getTransactionStatus). Errors: ErrTransactionNotFound (the node has not
// seen it, or dropped it), ErrUnavailable.
func (c *Client) TransactionStatus(ctx context.Context, hash obsqra.Felt) (TransactionStatus, error) {
	var raw json.RawMessage
	params := map[string]any{"transaction_hash": rpcHex(hash)}
	if err := c.call(ctx, "starknet_getTransactionStatus", params, &raw); err != nil {
		return TransactionStatus{}, fmt.Errorf("status of transaction %s: %w", hash, err)
	}
	var r struct {
		FinalityStatus  string `json:"finality_status"`
		ExecutionStatus string `json:"execution_status"`
		FailureReason   string `json:"failure_reason"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return TransactionStatus{}, fmt.Errorf("status of transaction %s: decode %s: %w", hash, obsqra.Clip(string(raw), 200), err)
	}
	if r.FinalityStatus == "" {
		return TransactionStatus{}, fmt.Errorf("status of transaction %s: no finality_status in %s", hash, obsqra.Clip(string(raw), 200))
	}
	return TransactionStatus{FinalityStatus: r.FinalityStatus, ExecutionStatus: r.ExecutionStatus, FailureReason: r.FailureReason, Raw: raw}, nil
}

// Receipt is the part of a transaction receipt
// (starknet_getTransactionReceipt) that the transaction log keeps.
type Receipt struct {
	TxHash obsqra.Felt
	// FinalityStatus is StatusPreConfirmed, StatusAcceptedOnL2 or
	// StatusAcceptedOnL1: a node has no receipt before execution.
	FinalityStatus string
	// ExecutionStatus is ExecutionSucceeded or ExecutionReverted.
	ExecutionStatus string
	// RevertReason says why the transaction reverted; "" when it did not.
	RevertReason string
	// BlockNumber is the number of the block that holds the transaction,
	// nil when the node names none. For a transaction of the pre-confirmed
	// block (BlockHash nil) it is the number that block will have.
	BlockNumber *uint64
	// BlockHash is the hash of the block, nil while the transaction is in
	// the pre-confirmed block, which has none yet.
	BlockHash *obsqra.Felt
	// Fee is the actual fee, Amount in the unit's smallest denomination
	// (wei for WEI, fri for FRI) as a decimal number.
	Fee obsqra.Fee
	// EventsEmitted is the number of events the transaction emitted.
	EventsEmitted int
	// Raw is the node's result as it came, for the record.
	Raw json.RawMessage
}

// TransactionReceipt returns the receipt of the transaction hash
// (starknet_getTransactionReceipt). Errors: ErrTransactionNotFound (unknown, or not
// executed yet: RECEIVED and CANDIDATE transactions have no receipt),
// ErrUnavailable.
func (c *Client) TransactionReceipt(ctx context.Context, hash obsqra.Felt) (Receipt, error) {
	var raw json.RawMessage
	params := map[string]any{"transaction_hash": rpcHex(hash)}
	if err := c.call(ctx, "starknet_getTransactionReceipt", params, &raw); err != nil {
		return Receipt{}, fmt.Errorf("receipt of transaction %s: %w", hash, err)
	}
	rc, err := decodeReceipt(raw)
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt of transaction %s: %w", hash, err)
	}
	return rc, nil
}

func decodeReceipt(raw json.RawMessage) (Receipt, error) {
	var r struct {
		TransactionHash obsqra.Felt  `json:"transaction_hash"`
		FinalityStatus  string       `json:"finality_status"`
		ExecutionStatus string       `json:"execution_status"`
		RevertReason    string       `json:"revert_reason"`
		BlockHash       *obsqra.Felt `json:"block_hash"`
		BlockNumber     *uint64      `json:"block_number"`
		ActualFee       *struct {
			Amount obsqra.Felt `json:"amount"`
			Unit   string      `json:"unit"`
		} `json:"actual_fee"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Receipt{}, fmt.Errorf("decode %s: %w", obsqra.Clip(string(raw), 200), err)
	}
	if r.FinalityStatus == "" || r.ExecutionStatus == "" || r.ActualFee == nil || r.ActualFee.Unit == "" {
		return Receipt{}, fmt.Errorf("finality_status, execution_status or actual_fee missing in %s", obsqra.Clip(string(raw), 200))
	}
	amount, err := obsqra.ParseDecimal(feltDecimal(r.ActualFee.Amount))
	if err != nil { // a felt has at most 76 digits, a Decimal 78
		return Receipt{}, fmt.Errorf("fee amount: %w", err)
	}
	return Receipt{
		TxHash:          r.TransactionHash,
		FinalityStatus:  r.FinalityStatus,
		ExecutionStatus: r.ExecutionStatus,
		RevertReason:    r.RevertReason,
		BlockNumber:     r.BlockNumber,
		BlockHash:       r.BlockHash,
		Fee:             obsqra.Fee{Amount: amount, Unit: r.ActualFee.Unit},
		EventsEmitted:   len(r.Events),
		Raw:             raw,
	}, nil
}

// Call calls a view function of a contract on the latest block
// (starknet_call): entryPoint is the function's name, whose selector is
// its Starknet Keccak; calldata and result are the Cairo serialisation of
// its arguments and return value. Errors: ErrContractNotFound,
// ErrEntrypointNotFound, ErrContractError (the RPCError's RevertReason
// says why), ErrUnavailable.
func (c *Client) Call(ctx context.Context, contract obsqra.Felt, entryPoint string, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
	return c.callOn(ctx, "latest", contract, entryPoint, calldata)
}

// CallAt is Call on the block numbered block: calls that name one block
// read one state, however many there are and whichever endpoint answers.
// Errors: those of Call; ErrBlockNotFound when the node answering lags
// behind block.
func (c *Client) CallAt(ctx context.Context, block uint64, contract obsqra.Felt, entryPoint string, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
	return c.callOn(ctx, map[string]uint64{"block_number": block}, contract, entryPoint, calldata)
}

func (c *Client) callOn(ctx context.Context, blockID any, contract obsqra.Felt, entryPoint string, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
	params := map[string]any{
		"request": map[string]any{
			"contract_address":     rpcHex(contract),
			"entry_point_selector": rpcHex(Selector(entryPoint)),
			"calldata":             rpcHexes(calldata),
		},
		"block_id": blockID,
	}
	var result []obsqra.Felt
	if err := c.call(ctx, "starknet_call", params, &result); err != nil {
		return nil, fmt.Errorf("call %s of %s: %w", entryPoint, contract, err)
	}
	return result, nil
}
