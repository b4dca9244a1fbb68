// Package starknettest is an in-process Starknet node for tests: an
// httptest server that answers the JSON-RPC (spec 0.9) methods the
// starknet package uses, from state the test controls, and that fails on
// demand (HTTP 500, an answer slower than the client's timeout, a dropped
// connection, a JSON-RPC error). Accounts check Stark-curve signatures for
// real. No test touches the network.
package starknettest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
)

// SpecVersion is what the node answers to starknet_specVersion.
const SpecVersion = "0.9.0"

// Failure is a way for the node to fail a request (see FailNext).
type Failure int

// Failures.
const (
	// HTTP500 answers 500 Internal Server Error with a text body.
	HTTP500 Failure = iota + 1
	// Slow holds the answer until the client gives up (its request's
	// context ends), the node is closed, or a minute passes, and then
	// answers normally.
	Slow
	// Drop reads the request and closes the connection without a word.
	Drop
	// RPCError answers JSON-RPC error -32603 "Internal error".
	RPCError
)

// String returns the failure's name, e.g. "HTTP500".
func (f Failure) String() string {
	switch f {
	case HTTP500:
		return "HTTP500"
	case Slow:
		return "Slow"
	case Drop:
		return "Drop"
	case RPCError:
		return "RPCError"
	}
	return fmt.Sprintf("Failure(%d)", int(f))
}

// Transaction is the state of a transaction as the node reports it.
type Transaction struct {
	// FinalityStatus is one of starknet.Status*. Required.
	FinalityStatus string
	// ExecutionStatus is starknet.ExecutionSucceeded or
	// starknet.ExecutionReverted; "" before execution (RECEIVED,
	// CANDIDATE). A receipt of an executed transaction that leaves it ""
	// says SUCCEEDED.
	ExecutionStatus string
	// FailureReason is the status's failure_reason and, when REVERTED, the
	// receipt's revert_reason.
	FailureReason string
	// BlockNumber is the receipt's block; 0 means the node's block number
	// at the time of the request.
	BlockNumber uint64
	// Fee is the receipt's actual fee; its Amount must be a whole number.
	// Default 0 FRI.
	Fee obsqra.Fee
	// Events is how many events the receipt lists.
	Events int
}

// ContractFunc is a contract's function: the Cairo serialisation of its
// arguments in, of its result out. An error reverts the call: the node
// answers JSON-RPC error 40 whose revert error is the error's text.
type ContractFunc func(calldata []obsqra.Felt) ([]obsqra.Felt, error)

// Option configures a Node.
type Option func(*Node)

// WithChainID sets the chain id the node reports, e.g. starknet.ChainMainnet.
// Default starknet.ChainSepolia.
func WithChainID(chainID string) Option {
	return func(n *Node) { n.chainID = chainID }
}

// WithBlockNumber sets the node's block number. Default 1000.
func WithBlockNumber(block uint64) Option {
	return func(n *Node) { n.block = block }
}

// Node is a fake Starknet node. Its methods are safe for concurrent use,
// also while it serves requests.
type Node struct {
	// URL is the node's JSON-RPC endpoint.
	URL string

	t    testing.TB
	srv  *httptest.Server
	done chan struct{}

	mu           sync.Mutex
	chainID      string
	block        uint64
	callBlocks   []uint64
	lagCalls     int
	transactions map[obsqra.Felt]Transaction
	contracts    map[obsqra.Felt]map[obsqra.Felt]namedFunc
	failures     []Failure
	calls        map[string]int
}

type namedFunc struct {
	name string
	fn   BlockFunc
}

// BlockFunc answers a contract function as of block: a call on "latest"
// gets the node's latest block number.
type BlockFunc func(block uint64, calldata []obsqra.Felt) ([]obsqra.Felt, error)

// slowDelay is how long a Slow answer waits when the client does not give
// up first.
const slowDelay = time.Minute

// NewNode starts a node that is closed when the test ends.
func NewNode(t testing.TB, opts ...Option) *Node {
	t.Helper()
	n := &Node{
		t:            t,
		done:         make(chan struct{}),
		chainID:      starknet.ChainSepolia,
		block:        1000,
		transactions: map[obsqra.Felt]Transaction{},
		contracts:    map[obsqra.Felt]map[obsqra.Felt]namedFunc{},
		calls:        map[string]int{},
	}
	for _, o := range opts {
		o(n)
	}
	if _, err := starknet.ShortString(n.chainID); err != nil {
		t.Fatalf("starknettest: chain id: %v", err)
	}
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	n.URL = n.srv.URL
	t.Cleanup(func() {
		close(n.done) // first, so that Slow answers end and Close does not wait for them
		n.srv.Close()
	})
	return n
}

// SetTransaction sets what the node reports of the transaction hash,
// replacing what it reported before.
func (n *Node) SetTransaction(hash obsqra.Felt, chainTx Transaction) {
	n.t.Helper()
	if chainTx.FinalityStatus == "" {
		n.t.Fatalf("starknettest: SetTransaction(%s): no FinalityStatus", hash)
	}
	if _, ok := new(big.Int).SetString(chainTx.Fee.Amount.String(), 10); !ok {
		n.t.Fatalf("starknettest: SetTransaction(%s): fee %s is not a whole number", hash, chainTx.Fee.Amount)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.transactions[hash] = chainTx
}

// ForgetTransaction makes the node forget the transaction hash: it answers
// error 29 (transaction hash not found) again, as for a dropped transaction.
func (n *Node) ForgetTransaction(hash obsqra.Felt) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.transactions, hash)
}

// SetBlockNumber sets the node's latest block number.
func (n *Node) SetBlockNumber(block uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.block = block
}

// SetFunction deploys, or adds to, a contract at address: entryPoint
// answers with fn. A call to an address with no function is error 20
// (contract not found); to a function the contract lacks, error 21.
func (n *Node) SetFunction(address obsqra.Felt, entryPoint string, fn ContractFunc) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.contracts[address] == nil {
		n.contracts[address] = map[obsqra.Felt]namedFunc{}
	}
	n.contracts[address][starknet.Selector(entryPoint)] = namedFunc{name: entryPoint, fn: func(_ uint64, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		return fn(calldata)
	}}
}

// SetBlockFunction is SetFunction for a function whose answer depends on
// the block asked about. A call naming a block after the node's latest
// (SetBlockNumber) is error 24, block not found, as from a node that lags.
func (n *Node) SetBlockFunction(address obsqra.Felt, entryPoint string, fn BlockFunc) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.contracts[address] == nil {
		n.contracts[address] = map[obsqra.Felt]namedFunc{}
	}
	n.contracts[address][starknet.Selector(entryPoint)] = namedFunc{name: entryPoint, fn: fn}
}

// LagNext makes the next count starknet_calls that name a block answer
// error 24 (block not found), as a node behind that block does.
func (n *Node) LagNext(count int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lagCalls += count
}

// CallBlocks returns the block of every starknet_call answered so far, in
// order ("latest" as the latest block number then).
func (n *Node) CallBlocks() []uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.callBlocks)
}

// SetRiskEngine deploys a RiskEngine at address whose calculate_risk_score
// answers fn(calldata).
func (n *Node) SetRiskEngine(address obsqra.Felt, fn func(calldata []obsqra.Felt) []obsqra.Felt) {
	n.SetFunction(address, "calculate_risk_score", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		return fn(calldata), nil
	})
}

// AddAccount deploys an account at address whose owner has the Stark-curve
// publicKey. Its is_valid_signature(hash, signature: Span<felt252>) checks
// the ECDSA signature [r, s] over hash for real, as OpenZeppelin's and
// Argent's accounts do: a valid signature answers 'VALID' (0x56414c4944),
// a wrong one 0; a signature of another length than 2, or calldata whose
// length prefix does not match, reverts (error 40), as Argent's account
// does.
func (n *Node) AddAccount(address, publicKey obsqra.Felt) {
	n.SetFunction(address, "is_valid_signature", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		if len(calldata) < 2 || feltUint(calldata[1]) != uint64(len(calldata)-2) {
			return nil, errors.New("Failed to deserialize param #2")
		}
		sig := calldata[2:]
		if len(sig) != 2 {
			return nil, errors.New("argent/invalid-signature-length")
		}
		if !verify(calldata[0], sig[0], sig[1], publicKey) {
			return []obsqra.Felt{{}}, nil
		}
		return []obsqra.Felt{valid}, nil
	})
}

// AddMultisigAccount deploys an account at address owned by every one of
// publicKeys together: its is_valid_signature wants a signature of
// [r₁, s₁, r₂, s₂, …], each owner's ECDSA signature over hash in order, and
// answers 'VALID' only when all are; another length reverts. It stands
// for the accounts whose signatures hold more than two felts.
func (n *Node) AddMultisigAccount(address obsqra.Felt, publicKeys ...obsqra.Felt) {
	n.SetFunction(address, "is_valid_signature", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		if len(calldata) < 2 || feltUint(calldata[1]) != uint64(len(calldata)-2) {
			return nil, errors.New("Failed to deserialize param #2")
		}
		sig := calldata[2:]
		if len(sig) != 2*len(publicKeys) {
			return nil, errors.New("multisig/invalid-signature-length")
		}
		for i, pk := range publicKeys {
			if !verify(calldata[0], sig[2*i], sig[2*i+1], pk) {
				return []obsqra.Felt{{}}, nil
			}
		}
		return []obsqra.Felt{valid}, nil
	})
}

// NewAccount makes a key, deploys an account for it at an address derived
// from the public key, and returns both.
func (n *Node) NewAccount(t testing.TB) (obsqra.Felt, Key) {
	t.Helper()
	k := NewKey(t)
	address := accountAddress(k.Public())
	n.AddAccount(address, k.Public())
	return address, k
}

// FailNext makes the next count requests, whatever their method, fail as
// kind says. Calls add up: FailNext(1, HTTP500) then FailNext(1, Drop)
// fails the next request with a 500 and the one after by dropping it.
func (n *Node) FailNext(count int, kind Failure) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for range count {
		n.failures = append(n.failures, kind)
	}
}

// Calls returns how many requests of method (e.g. "starknet_call") the node
// received, failed ones included.
func (n *Node) Calls(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// The JSON-RPC error of a request the node cannot serve.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

var (
	errParse          = &rpcError{Code: -32700, Message: "Parse error"}
	errInvalidRequest = &rpcError{Code: -32600, Message: "Invalid Request"}
	errMethodNotFound = &rpcError{Code: -32601, Message: "Method not found"}
	errInternal       = &rpcError{Code: -32603, Message: "Internal error"}
	errTxNotFound     = &rpcError{Code: starknet.CodeTxNotFound, Message: "Transaction hash not found"}
	errContract       = &rpcError{Code: starknet.CodeContractNotFound, Message: "Contract not found"}
	errBlockNotFound  = &rpcError{Code: starknet.CodeBlockNotFound, Message: "Block not found"}
	errEntrypoint     = &rpcError{Code: starknet.CodeEntrypointNotFound, Message: "Requested entrypoint does not exist in the contract"}
)

func invalidParams(format string, args ...any) *rpcError {
	return &rpcError{Code: -32602, Message: "Invalid params", Data: fmt.Sprintf(format, args...)}
}

func (n *Node) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client is gone
	}
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if r.Method != http.MethodPost {
		http.Error(w, "JSON-RPC wants POST", http.StatusMethodNotAllowed)
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, nil, nil, errParse)
		return
	}

	n.mu.Lock()
	n.calls[req.Method]++
	var failure Failure
	if len(n.failures) > 0 {
		failure, n.failures = n.failures[0], n.failures[1:]
	}
	n.mu.Unlock()

	switch failure {
	case HTTP500:
		http.Error(w, "injected failure", http.StatusInternalServerError)
		return
	case Drop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			n.t.Errorf("starknettest: hijack: %v", err)
			return
		}
		conn.Close()
		return
	case RPCError:
		writeJSON(w, req.ID, nil, errInternal)
		return
	case Slow:
		timer := time.NewTimer(slowDelay)
		defer timer.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-n.done:
			return
		case <-timer.C:
		}
	}

	if req.JSONRPC != "2.0" || len(req.ID) == 0 || req.Method == "" {
		writeJSON(w, req.ID, nil, errInvalidRequest)
		return
	}
	result, rerr := n.dispatch(req.Method, req.Params)
	writeJSON(w, req.ID, result, rerr)
}

func writeJSON(w http.ResponseWriter, id json.RawMessage, result any, rerr *rpcError) {
	if id == nil {
		id = json.RawMessage("null")
	}
	resp := map[string]any{"jsonrpc": "2.0", "id": id}
	if rerr != nil {
		resp["error"] = rerr
	} else {
		resp["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (n *Node) dispatch(method string, params json.RawMessage) (any, *rpcError) {
	switch method {
	case "starknet_specVersion":
		return SpecVersion, nil
	case "starknet_chainId":
		n.mu.Lock()
		defer n.mu.Unlock()
		id, _ := starknet.ShortString(n.chainID)
		return rpcHex(id), nil
	case "starknet_blockNumber":
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.block, nil
	case "starknet_getTransactionStatus":
		hash, rerr := feltParam(params, 0, "transaction_hash")
		if rerr != nil {
			return nil, rerr
		}
		n.mu.Lock()
		chainTx, ok := n.transactions[hash]
		n.mu.Unlock()
		if !ok {
			return nil, errTxNotFound
		}
		status := map[string]any{"finality_status": chainTx.FinalityStatus}
		if chainTx.ExecutionStatus != "" {
			status["execution_status"] = chainTx.ExecutionStatus
		}
		if chainTx.FailureReason != "" {
			status["failure_reason"] = chainTx.FailureReason
		}
		return status, nil
	case "starknet_getTransactionReceipt":
		hash, rerr := feltParam(params, 0, "transaction_hash")
		if rerr != nil {
			return nil, rerr
		}
		return n.receipt(hash)
	case "starknet_call":
		return n.call(params)
	}
	return nil, errMethodNotFound
}

// receipt answers like a spec 0.9 node: no receipt before execution; a
// block number but no block hash in the pre-confirmed block.
func (n *Node) receipt(hash obsqra.Felt) (any, *rpcError) {
	n.mu.Lock()
	chainTx, ok := n.transactions[hash]
	block := n.block
	n.mu.Unlock()
	if !ok || chainTx.FinalityStatus == starknet.StatusReceived || chainTx.FinalityStatus == starknet.StatusCandidate {
		return nil, errTxNotFound
	}
	if chainTx.BlockNumber != 0 {
		block = chainTx.BlockNumber
	}
	exec := chainTx.ExecutionStatus
	if exec == "" {
		exec = starknet.ExecutionSucceeded
	}
	unit := chainTx.Fee.Unit
	if unit == "" {
		unit = "FRI"
	}
	fee, _ := new(big.Int).SetString(chainTx.Fee.Amount.String(), 10)
	events := make([]any, chainTx.Events)
	for i := range events {
		events[i] = map[string]any{"from_address": "0x1", "keys": []string{fmt.Sprintf("0x%x", i+1)}, "data": []string{}}
	}
	r := map[string]any{
		"type":                "INVOKE",
		"transaction_hash":    rpcHex(hash),
		"actual_fee":          map[string]any{"amount": "0x" + fee.Text(16), "unit": unit},
		"execution_status":    exec,
		"finality_status":     chainTx.FinalityStatus,
		"block_number":        block,
		"messages_sent":       []any{},
		"events":              events,
		"execution_resources": map[string]any{"l1_gas": 0, "l1_data_gas": 0, "l2_gas": 0},
	}
	if chainTx.FinalityStatus != starknet.StatusPreConfirmed {
		r["block_hash"] = fmt.Sprintf("0xb10c%x", block)
	}
	if exec == starknet.ExecutionReverted {
		r["revert_reason"] = chainTx.FailureReason
	}
	return r, nil
}

func (n *Node) call(params json.RawMessage) (any, *rpcError) {
	raw, rerr := param(params, 0, "request")
	if rerr != nil {
		return nil, rerr
	}
	var req struct {
		ContractAddress string   `json:"contract_address"`
		Selector        string   `json:"entry_point_selector"`
		Calldata        []string `json:"calldata"`
	}
	if err := json.Unmarshal(raw, &req); err != nil || req.Calldata == nil {
		return nil, invalidParams("request: want {contract_address, entry_point_selector, calldata}")
	}
	rawBlock, rerr := param(params, 1, "block_id")
	if rerr != nil {
		return nil, rerr
	}
	var latest string
	var numbered struct {
		Number *uint64 `json:"block_number"`
	}
	n.mu.Lock()
	block := n.block
	n.mu.Unlock()
	switch {
	case json.Unmarshal(rawBlock, &latest) == nil && latest == "latest":
	case json.Unmarshal(rawBlock, &numbered) == nil && numbered.Number != nil:
		n.mu.Lock()
		lagging := n.lagCalls > 0
		if lagging {
			n.lagCalls--
		}
		n.mu.Unlock()
		if lagging || *numbered.Number > block {
			return nil, errBlockNotFound
		}
		block = *numbered.Number
	default:
		return nil, invalidParams(`block_id: want "latest" or {"block_number": N}`)
	}
	address, rerr := parseFelt("contract_address", req.ContractAddress)
	if rerr != nil {
		return nil, rerr
	}
	selector, rerr := parseFelt("entry_point_selector", req.Selector)
	if rerr != nil {
		return nil, rerr
	}
	calldata := make([]obsqra.Felt, len(req.Calldata))
	for i, s := range req.Calldata {
		if calldata[i], rerr = parseFelt(fmt.Sprintf("calldata[%d]", i), s); rerr != nil {
			return nil, rerr
		}
	}

	n.mu.Lock()
	contract, deployed := n.contracts[address]
	f, found := contract[selector]
	n.callBlocks = append(n.callBlocks, block)
	n.mu.Unlock()
	if !deployed {
		return nil, errContract
	}
	if !found {
		return nil, errEntrypoint
	}
	result, err := f.fn(block, calldata) // outside the lock: fn may use the node
	if err != nil {
		return nil, &rpcError{Code: starknet.CodeContractError, Message: "Contract error", Data: map[string]any{
			"revert_error": map[string]any{
				"contract_address": rpcHex(address),
				"class_hash":       "0x1",
				"selector":         rpcHex(selector),
				"error":            err.Error(),
			},
		}}
	}
	out := make([]string, len(result))
	for i, v := range result {
		out[i] = rpcHex(v)
	}
	return out, nil
}

// param returns the params member at index (positional params) or name
// (named params).
func param(params json.RawMessage, index int, name string) (json.RawMessage, *rpcError) {
	p := strings.TrimSpace(string(params))
	switch {
	case strings.HasPrefix(p, "["):
		var list []json.RawMessage
		if err := json.Unmarshal(params, &list); err == nil && index < len(list) {
			return list[index], nil
		}
	case strings.HasPrefix(p, "{"):
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(params, &obj); err == nil && obj[name] != nil {
			return obj[name], nil
		}
	}
	return nil, invalidParams("missing %s", name)
}

func feltParam(params json.RawMessage, index int, name string) (obsqra.Felt, *rpcError) {
	raw, rerr := param(params, index, name)
	if rerr != nil {
		return obsqra.Felt{}, rerr
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return obsqra.Felt{}, invalidParams("%s: want a string", name)
	}
	return parseFelt(name, s)
}

// feltPattern is the spec's FELT: no leading zeros, which a node may
// enforce, so the node here does.
var feltPattern = regexp.MustCompile(`^0x(0|[a-fA-F1-9][a-fA-F0-9]{0,62})$`)

func parseFelt(name, s string) (obsqra.Felt, *rpcError) {
	if !feltPattern.MatchString(s) {
		return obsqra.Felt{}, invalidParams("%s: %q is not a FELT (0x, no leading zeros)", name, s)
	}
	f, err := obsqra.ParseFelt(s)
	if err != nil {
		return obsqra.Felt{}, invalidParams("%s: %v", name, err)
	}
	return f, nil
}

func rpcHex(f obsqra.Felt) string {
	s := strings.TrimLeft(fmt.Sprintf("%x", f[:]), "0")
	if s == "" {
		return "0x0"
	}
	return "0x" + s
}

func feltUint(f obsqra.Felt) uint64 {
	for _, b := range f[:24] {
		if b != 0 {
			return ^uint64(0)
		}
	}
	var v uint64
	for _, b := range f[24:] {
		v = v<<8 | uint64(b)
	}
	return v
}
