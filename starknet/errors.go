package starknet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/obsqra/obsqra"
)

// Sentinels that a JSON-RPC error of the matching code satisfies with
// errors.Is. The *RPCError itself, with the node's data, stays reachable
// with errors.As.
var (
	// ErrContractNotFound is JSON-RPC error 20: no contract is deployed at
	// the address (in the block asked about).
	ErrContractNotFound = errors.New("starknet: contract not found")
	// ErrEntrypointNotFound is JSON-RPC error 21: the contract has no such
	// function.
	ErrEntrypointNotFound = errors.New("starknet: entry point not found")
	// ErrTransactionNotFound is JSON-RPC error 29: the node does not know the
	// transaction hash (not yet received, or dropped).
	ErrTransactionNotFound = errors.New("starknet: transaction hash not found")
	// ErrContractError is JSON-RPC error 40: the call reverted. The revert
	// data is the RPCError's Data; RevertReason flattens it.
	ErrContractError = errors.New("starknet: contract error")
	// ErrBlockNotFound is JSON-RPC error 24: the node does not have the
	// block asked about (it lags behind the one that named it).
	ErrBlockNotFound = errors.New("starknet: block not found")
)

// JSON-RPC error codes of the Starknet spec 0.9 that this package names.
const (
	CodeContractNotFound   = 20
	CodeBlockNotFound      = 24
	CodeEntrypointNotFound = 21
	CodeTxNotFound         = 29
	CodeContractError      = 40
)

// ErrUnavailable is what every error satisfies (errors.Is) when no node
// answered: every endpoint failed in every round, through timeouts,
// refused or dropped connections, 5xx answers, or a wrong chain. The
// causes are in the *UnavailableError.
var ErrUnavailable = errors.New("starknet: no node available")

// ErrChainMismatch is what a *ChainMismatchError satisfies with errors.Is.
var ErrChainMismatch = errors.New("starknet: node on the wrong chain")

// RPCError is a JSON-RPC error the node answered with. It is an answer,
// not a failure of the node, so the client returns it at once instead of
// asking the next endpoint.
type RPCError struct {
	Code    int
	Message string
	// Data is the error's data member as the node sent it; nil when absent.
	Data json.RawMessage
}

// Error implements the error interface.
func (e *RPCError) Error() string {
	msg := fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message)
	if e.Code == CodeContractError {
		if reason := e.RevertReason(); reason != "" {
			msg += ": " + obsqra.Clip(reason, 500)
		}
	} else if len(e.Data) > 0 && string(e.Data) != "null" {
		msg += ": " + obsqra.Clip(string(e.Data), 500)
	}
	return msg
}

// Is makes errors.Is(err, ErrTransactionNotFound) and the other sentinels of this
// package true for the error of their code.
func (e *RPCError) Is(target error) bool {
	switch target {
	case ErrContractNotFound:
		return e.Code == CodeContractNotFound
	case ErrEntrypointNotFound:
		return e.Code == CodeEntrypointNotFound
	case ErrTransactionNotFound:
		return e.Code == CodeTxNotFound
	case ErrContractError:
		return e.Code == CodeContractError
	case ErrBlockNotFound:
		return e.Code == CodeBlockNotFound
	}
	return false
}

// RevertReason returns the revert error of a contract error (code 40) as
// one line: spec 0.9 nests it as {"revert_error": E} where E is a string
// or {contract_address, class_hash, selector, error: E}; the nested errors
// are joined by " > " from the outer call inwards. It returns "" when Data
// holds no revert error, and Data itself when it has another shape.
func (e *RPCError) RevertReason() string {
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return ""
	}
	var data struct {
		RevertError json.RawMessage `json:"revert_error"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil || data.RevertError == nil {
		return string(e.Data)
	}
	var parts []string
	raw := data.RevertError
	for depth := 0; depth < 64 && raw != nil; depth++ {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			parts = append(parts, s)
			break
		}
		var frame struct {
			ContractAddress string          `json:"contract_address"`
			Selector        string          `json:"selector"`
			Error           json.RawMessage `json:"error"`
		}
		if json.Unmarshal(raw, &frame) != nil {
			parts = append(parts, string(raw))
			break
		}
		parts = append(parts, fmt.Sprintf("contract %s selector %s", frame.ContractAddress, frame.Selector))
		raw = frame.Error
	}
	return strings.Join(parts, " > ")
}

// UnavailableError is returned when no endpoint answered a request. It
// satisfies errors.Is(err, ErrUnavailable), and errors.Is and errors.As
// reach each cause (e.g. a *ChainMismatchError).
type UnavailableError struct {
	// Method is the JSON-RPC method that was asked.
	Method string
	// Causes holds one error per failed attempt, in order, each naming
	// its endpoint by number and host (never the full URL, which may
	// carry an API key).
	Causes []error
}

// Error implements the error interface.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("starknet: %s: no node available: %s", e.Method, joinErrors(e.Causes))
}

// joinErrors writes errs on one line, separated by semicolons.
func joinErrors(errs []error) string {
	if len(errs) == 0 {
		return "no node to ask"
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns ErrUnavailable followed by the causes.
func (e *UnavailableError) Unwrap() []error {
	return append([]error{ErrUnavailable}, e.Causes...)
}

// ChainMismatchError is a node whose chain id is not the configured
// network's. The client does not use such a node (see CheckChain).
type ChainMismatchError struct {
	// Endpoint names the node by number and host, e.g. "node 2
	// (rpc.example.com)".
	Endpoint string
	// Network is the configured STARKNET_NETWORK, e.g. "sepolia".
	Network string
	// Expected and Actual are chain ids, e.g. "SN_SEPOLIA" and "SN_MAIN".
	Expected, Actual string
}

// Error implements the error interface.
func (e *ChainMismatchError) Error() string {
	return fmt.Sprintf("starknet: %s is on chain %s, but STARKNET_NETWORK=%s expects chain %s; the node is not used",
		e.Endpoint, e.Actual, e.Network, e.Expected)
}

// Is makes errors.Is(err, ErrChainMismatch) true.
func (e *ChainMismatchError) Is(target error) bool { return target == ErrChainMismatch }
