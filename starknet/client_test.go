package starknet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// testBundle holds what a test of the client may look at besides it.
type testBundle struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (b *testBundle) Waits() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]time.Duration(nil), b.waits...)
}

// setup returns a client of the sepolia network over urls that never
// sleeps: it records its waits between rounds, and draws the middle of
// every jitter range. cfg may override the other fields.
func setup(t *testing.T, cfg starknet.Config, urls ...string) (*starknet.Client, *testBundle) {
	t.Helper()
	b := &testBundle{}
	cfg.URLs = urls
	if cfg.Network == "" {
		cfg.Network = starknet.NetworkSepolia
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	cfg.Wait = func(ctx context.Context, d time.Duration) error {
		b.mu.Lock()
		b.waits = append(b.waits, d)
		b.mu.Unlock()
		return ctx.Err()
	}
	cfg.Rand = func() float64 { return 0.5 }
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := starknet.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, b
}

func mustFelt(t *testing.T, s string) obsqra.Felt {
	t.Helper()
	f, err := obsqra.ParseFelt(s)
	if err != nil {
		t.Fatalf("ParseFelt(%q): %v", s, err)
	}
	return f
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  starknet.Config
		want string
	}{
		{"no URL", starknet.Config{Network: "sepolia"}, "STARKNET_RPC_URL"},
		{"no network", starknet.Config{URLs: []string{"http://localhost:1"}}, "STARKNET_NETWORK must be sepolia or mainnet"},
		{"unknown network", starknet.Config{URLs: []string{"http://localhost:1"}, Network: "goerli"}, `not "goerli"`},
		{"not http", starknet.Config{URLs: []string{"http://localhost:1", "ftp://secret.example/KEY123"}, Network: "mainnet"}, "URL 2 of 2 is not an http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := starknet.New(tc.cfg)
			if err == nil || c != nil {
				t.Fatalf("New(%+v) = %v, %v, want an error", tc.cfg, c, err)
			}
			if code := obsqra.ErrorCode(err); code != obsqra.EINVALID {
				t.Errorf("New: code %q, want %q (%v)", code, obsqra.EINVALID, err)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "KEY123") {
				t.Errorf("New: %q, want it to contain %q and no URL", err, tc.want)
			}
		})
	}
}

func TestChainIDOf(t *testing.T) {
	t.Parallel()
	for network, want := range map[string]string{"sepolia": "SN_SEPOLIA", "Mainnet": "SN_MAIN", " SEPOLIA ": "SN_SEPOLIA"} {
		if got, err := starknet.ChainIDOf(network); err != nil || got != want {
			t.Errorf("ChainIDOf(%q) = %q, %v, want %q", network, got, err, want)
		}
	}
}

func TestSpecVersionChainIDBlockNumber(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t, starknettest.WithBlockNumber(77))
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()

	if v, err := c.SpecVersion(ctx); err != nil || v != "0.9.0" {
		t.Errorf("SpecVersion = %q, %v, want 0.9.0", v, err)
	}
	if id, err := c.ChainID(ctx); err != nil || id != "SN_SEPOLIA" {
		t.Errorf("ChainID = %q, %v, want SN_SEPOLIA", id, err)
	}
	if n, err := c.BlockNumber(ctx); err != nil || n != 77 {
		t.Errorf("BlockNumber = %d, %v, want 77", n, err)
	}
	node.SetBlockNumber(1 << 40)
	if n, err := c.BlockNumber(ctx); err != nil || n != 1<<40 {
		t.Errorf("BlockNumber = %d, %v, want %d", n, err, uint64(1<<40))
	}
	if c.ExpectedChainID() != "SN_SEPOLIA" || c.Network() != "sepolia" {
		t.Errorf("ExpectedChainID, Network = %q, %q", c.ExpectedChainID(), c.Network())
	}
}

func TestTransactionStatus(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()

	for i, tc := range []struct {
		name    string
		chainTx starknettest.Transaction
	}{
		{"received", starknettest.Transaction{FinalityStatus: starknet.StatusReceived}},
		{"candidate", starknettest.Transaction{FinalityStatus: starknet.StatusCandidate}},
		{"pre-confirmed", starknettest.Transaction{FinalityStatus: starknet.StatusPreConfirmed, ExecutionStatus: starknet.ExecutionSucceeded}},
		{"accepted on L2", starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionSucceeded}},
		{"reverted", starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL1, ExecutionStatus: starknet.ExecutionReverted, FailureReason: "u256_sub Overflow"}},
	} {
		// The client sends the spec's FELT form (no leading zeros, which
		// the fake node insists on) whatever the padding and case here.
		hash := mustFelt(t, fmt.Sprintf("0x00ABC%d", i))
		node.SetTransaction(hash, tc.chainTx)
		got, err := c.TransactionStatus(ctx, hash)
		if err != nil {
			t.Fatalf("%s: TransactionStatus: %v", tc.name, err)
		}
		if got.FinalityStatus != tc.chainTx.FinalityStatus || got.ExecutionStatus != tc.chainTx.ExecutionStatus || got.FailureReason != tc.chainTx.FailureReason {
			t.Errorf("%s: TransactionStatus = %+v, want %+v", tc.name, got, tc.chainTx)
		}
		if !strings.Contains(string(got.Raw), `"finality_status":"`+tc.chainTx.FinalityStatus+`"`) {
			t.Errorf("%s: Raw = %s, want the node's answer", tc.name, got.Raw)
		}
	}
}

func TestTransactionReceipt(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t, starknettest.WithBlockNumber(500))
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()

	preConfirmed := mustFelt(t, "0x1001")
	node.SetTransaction(preConfirmed, starknettest.Transaction{FinalityStatus: starknet.StatusPreConfirmed, ExecutionStatus: starknet.ExecutionSucceeded,
		Fee: obsqra.Fee{Amount: obsqra.MustDecimal("21000"), Unit: "WEI"}, Events: 1})
	r, err := c.TransactionReceipt(ctx, preConfirmed)
	if err != nil {
		t.Fatalf("TransactionReceipt(pre-confirmed): %v", err)
	}
	if r.TxHash != preConfirmed || r.FinalityStatus != starknet.StatusPreConfirmed || r.ExecutionStatus != starknet.ExecutionSucceeded ||
		r.BlockNumber == nil || *r.BlockNumber != 500 || r.BlockHash != nil ||
		r.Fee.Amount.String() != "21000" || r.Fee.Unit != "WEI" || r.EventsEmitted != 1 || r.RevertReason != "" {
		t.Errorf("TransactionReceipt(pre-confirmed) = %+v", r)
	}

	accepted := mustFelt(t, "0x1002")
	bigFee := "3618502788666131213697322783095070105623107215331596699973092056135872020480" // p − 1, the largest felt
	node.SetTransaction(accepted, starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL1, ExecutionStatus: starknet.ExecutionSucceeded,
		BlockNumber: 42, Fee: obsqra.Fee{Amount: obsqra.MustDecimal(bigFee), Unit: "FRI"}, Events: 3})
	r, err = c.TransactionReceipt(ctx, accepted)
	if err != nil {
		t.Fatalf("TransactionReceipt(accepted): %v", err)
	}
	if r.BlockNumber == nil || *r.BlockNumber != 42 || r.BlockHash == nil || r.Fee.Amount.String() != bigFee || r.Fee.Unit != "FRI" || r.EventsEmitted != 3 {
		t.Errorf("TransactionReceipt(accepted) = %+v", r)
	}
	if !strings.Contains(string(r.Raw), `"block_number":42`) {
		t.Errorf("Raw = %s, want the node's answer", r.Raw)
	}

	reverted := mustFelt(t, "0x1003")
	node.SetTransaction(reverted, starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionReverted,
		FailureReason: "Error in the called contract: insufficient balance"})
	r, err = c.TransactionReceipt(ctx, reverted)
	if err != nil {
		t.Fatalf("TransactionReceipt(reverted): %v", err)
	}
	if r.ExecutionStatus != starknet.ExecutionReverted || r.RevertReason != "Error in the called contract: insufficient balance" {
		t.Errorf("TransactionReceipt(reverted) = %+v", r)
	}

	// No receipt before execution: the node says it does not know the hash.
	received := mustFelt(t, "0x1004")
	node.SetTransaction(received, starknettest.Transaction{FinalityStatus: starknet.StatusReceived})
	if _, err := c.TransactionReceipt(ctx, received); !errors.Is(err, starknet.ErrTransactionNotFound) {
		t.Errorf("TransactionReceipt(received) error = %v, want ErrTransactionNotFound", err)
	}
}

func TestTxNotFound(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()
	hash := mustFelt(t, "0xdead")

	_, err := c.TransactionStatus(ctx, hash)
	if !errors.Is(err, starknet.ErrTransactionNotFound) {
		t.Fatalf("TransactionStatus(unknown) error = %v, want ErrTransactionNotFound", err)
	}
	var rpcErr *starknet.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != 29 {
		t.Errorf("TransactionStatus(unknown) error = %#v, want an *RPCError of code 29", err)
	}
	if errors.Is(err, starknet.ErrUnavailable) || errors.Is(err, starknet.ErrContractNotFound) {
		t.Errorf("error %v is also another sentinel", err)
	}
	if !strings.Contains(err.Error(), hash.String()) || !strings.Contains(err.Error(), "json-rpc error 29") {
		t.Errorf("error %q, want the hash and the code", err)
	}

	node.SetTransaction(hash, starknettest.Transaction{FinalityStatus: starknet.StatusReceived})
	if _, err := c.TransactionStatus(ctx, hash); err != nil {
		t.Fatalf("TransactionStatus(set): %v", err)
	}
	node.ForgetTransaction(hash)
	if _, err := c.TransactionStatus(ctx, hash); !errors.Is(err, starknet.ErrTransactionNotFound) {
		t.Errorf("TransactionStatus(forgotten) error = %v, want ErrTransactionNotFound", err)
	}
}

func TestCall(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()
	engine := mustFelt(t, "0x0456")
	var got []obsqra.Felt
	node.SetRiskEngine(engine, func(calldata []obsqra.Felt) []obsqra.Felt {
		got = calldata
		return []obsqra.Felt{mustFelt(t, "0x2a"), {}}
	})

	calldata := []obsqra.Felt{mustFelt(t, "0x0"), mustFelt(t, "0x1388"), mustFelt(t, "0x00FF")}
	result, err := c.Call(ctx, engine, "calculate_risk_score", calldata)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if len(result) != 2 || result[0] != mustFelt(t, "0x2a") || !result[1].IsZero() {
		t.Errorf("Call = %v, want [0x2a 0x0]", result)
	}
	if len(got) != 3 || got[0] != calldata[0] || got[1] != calldata[1] || got[2] != calldata[2] {
		t.Errorf("the contract got calldata %v, want %v", got, calldata)
	}

	if _, err := c.Call(ctx, mustFelt(t, "0x999"), "calculate_risk_score", nil); !errors.Is(err, starknet.ErrContractNotFound) {
		t.Errorf("Call(no contract) error = %v, want ErrContractNotFound", err)
	}
	if _, err := c.Call(ctx, engine, "no_such_function", nil); !errors.Is(err, starknet.ErrEntrypointNotFound) {
		t.Errorf("Call(no function) error = %v, want ErrEntrypointNotFound", err)
	}

	node.SetFunction(engine, "explode", func([]obsqra.Felt) ([]obsqra.Felt, error) {
		return nil, errors.New("RiskEngine: invalid utilization")
	})
	_, err = c.Call(ctx, engine, "explode", nil)
	var rpcErr *starknet.RPCError
	if !errors.Is(err, starknet.ErrContractError) || !errors.As(err, &rpcErr) {
		t.Fatalf("Call(revert) error = %v, want ErrContractError", err)
	}
	if reason := rpcErr.RevertReason(); !strings.Contains(reason, "RiskEngine: invalid utilization") || !strings.Contains(reason, "0x456") {
		t.Errorf("RevertReason = %q, want the contract and its error", reason)
	}
	if !strings.Contains(string(rpcErr.Data), "revert_error") {
		t.Errorf("Data = %s, want the node's revert data", rpcErr.Data)
	}
}

func TestSelector(t *testing.T) {
	t.Parallel()
	// The well-known selector of ERC-20 transfer.
	want := "0x0083afd3f4caedc6eebf44246fe54e38c95e3179a5ec9ea81740eca5b482d12e"
	if got := starknet.Selector("transfer").String(); got != want {
		t.Errorf("Selector(transfer) = %s, want %s", got, want)
	}
}

func TestFailover(t *testing.T) {
	t.Parallel()
	for _, kind := range []starknettest.Failure{starknettest.HTTP500, starknettest.Slow, starknettest.Drop} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			first, second := starknettest.NewNode(t), starknettest.NewNode(t, starknettest.WithBlockNumber(2))
			c, b := setup(t, starknet.Config{Timeout: 200 * time.Millisecond}, first.URL, second.URL)
			ctx := context.Background()
			if err := c.CheckChain(ctx); err != nil {
				t.Fatalf("CheckChain: %v", err)
			}

			first.FailNext(1, kind)
			n, err := c.BlockNumber(ctx)
			if err != nil || n != 2 {
				t.Fatalf("BlockNumber = %d, %v, want 2 from the second node", n, err)
			}
			if first.Calls("starknet_blockNumber") != 1 || second.Calls("starknet_blockNumber") != 1 {
				t.Errorf("blockNumber calls: first %d, second %d, want 1 each", first.Calls("starknet_blockNumber"), second.Calls("starknet_blockNumber"))
			}
			if waits := b.Waits(); len(waits) != 0 {
				t.Errorf("waits %v, want none: the second node answered in the first round", waits)
			}
			// The node that answered is asked first from then on.
			if n, err := c.BlockNumber(ctx); err != nil || n != 2 {
				t.Errorf("BlockNumber = %d, %v, want 2", n, err)
			}
			if got := first.Calls("starknet_blockNumber"); got != 1 {
				t.Errorf("first node got %d blockNumber calls, want it left alone after failing", got)
			}
		})
	}
}

// A node that fails before its chain was checked is failed over the same
// way, and checked when it is first used.
func TestFailoverBeforeTheChainCheck(t *testing.T) {
	t.Parallel()
	first, second := starknettest.NewNode(t, starknettest.WithBlockNumber(1)), starknettest.NewNode(t, starknettest.WithBlockNumber(2))
	c, _ := setup(t, starknet.Config{}, first.URL, second.URL)
	first.FailNext(1, starknettest.Drop)
	if n, err := c.BlockNumber(context.Background()); err != nil || n != 2 {
		t.Fatalf("BlockNumber = %d, %v, want 2", n, err)
	}
	if first.Calls("starknet_chainId") != 1 || second.Calls("starknet_chainId") != 1 || first.Calls("starknet_blockNumber") != 0 {
		t.Errorf("calls: chainId %d and %d, blockNumber of the first %d; want 1, 1, 0",
			first.Calls("starknet_chainId"), second.Calls("starknet_chainId"), first.Calls("starknet_blockNumber"))
	}
}

func TestRetryAfterBackoff(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t, starknettest.WithBlockNumber(9))
	c, b := setup(t, starknet.Config{Backoff: 100 * time.Millisecond}, node.URL)
	node.FailNext(2, starknettest.HTTP500) // the chain check, then its retry
	if n, err := c.BlockNumber(context.Background()); err != nil || n != 9 {
		t.Fatalf("BlockNumber = %d, %v, want 9 in the third round", n, err)
	}
	// Rand is 0.5: each wait is ¾ of its backoff, which doubles.
	if got, want := b.Waits(), []time.Duration{75 * time.Millisecond, 150 * time.Millisecond}; !equalDurations(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	first, second := starknettest.NewNode(t), starknettest.NewNode(t)
	// The path of a URL may hold an API key: no error may show it.
	c, b := setup(t, starknet.Config{Rounds: 3, MaxBackoff: 300 * time.Millisecond}, first.URL+"/v3/SECRETKEY", second.URL+"/rpc?key=SECRETKEY")
	first.FailNext(3, starknettest.HTTP500)
	second.FailNext(3, starknettest.Drop)

	_, err := c.SpecVersion(context.Background())
	if !errors.Is(err, starknet.ErrUnavailable) {
		t.Fatalf("SpecVersion error = %v, want ErrUnavailable", err)
	}
	var unavailable *starknet.UnavailableError
	if !errors.As(err, &unavailable) || len(unavailable.Causes) != 6 || unavailable.Method != "starknet_specVersion" {
		t.Fatalf("error %#v, want an *UnavailableError of 6 causes", err)
	}
	msg := err.Error()
	for _, want := range []string{"node 1 (127.0.0.1:", "node 2 (127.0.0.1:", "HTTP 500", "request failed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q, want it to contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "SECRETKEY") {
		t.Errorf("error %q shows a URL's secret", msg)
	}
	var rpcErr *starknet.RPCError
	if errors.As(err, &rpcErr) {
		t.Errorf("error %v holds an *RPCError", err)
	}
	// 250 ms then 500 ms capped at 300 ms, each drawn at ¾.
	if got, want := b.Waits(), []time.Duration{187500 * time.Microsecond, 225 * time.Millisecond}; !equalDurations(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	// Once the nodes are back, the client is too.
	if v, err := c.SpecVersion(context.Background()); err != nil || v != starknettest.SpecVersion {
		t.Errorf("SpecVersion = %q, %v after the outage", v, err)
	}
}

func TestTimeoutIsNotTheCallersDeadline(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{Timeout: 50 * time.Millisecond, Rounds: 1}, node.URL)
	node.FailNext(1, starknettest.Slow)
	_, err := c.ChainID(context.Background())
	if !errors.Is(err, starknet.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("ChainID error = %v, want ErrUnavailable after a 50ms timeout, not the caller's deadline", err)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.BlockNumber(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, starknet.ErrUnavailable) {
		t.Errorf("BlockNumber(canceled) error = %v, want context.Canceled", err)
	}

	// A caller that gives up during a slow answer gets its own error.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	node.FailNext(1, starknettest.Slow)
	if _, err := c.ChainID(ctx); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, starknet.ErrUnavailable) {
		t.Errorf("ChainID(deadline) error = %v, want context.DeadlineExceeded", err)
	}
}

// A JSON-RPC error is the node's answer: it is not failed over.
func TestRPCErrorIsAnAnswer(t *testing.T) {
	t.Parallel()
	first, second := starknettest.NewNode(t), starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, first.URL, second.URL)
	if err := c.CheckChain(context.Background()); err != nil {
		t.Fatalf("CheckChain: %v", err)
	}
	first.FailNext(1, starknettest.RPCError)
	_, err := c.BlockNumber(context.Background())
	var rpcErr *starknet.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != -32603 || rpcErr.Message != "Internal error" {
		t.Fatalf("BlockNumber error = %v, want the node's JSON-RPC error -32603", err)
	}
	if errors.Is(err, starknet.ErrUnavailable) || second.Calls("starknet_blockNumber") != 0 {
		t.Errorf("error %v: the request went on to the second node (%d calls)", err, second.Calls("starknet_blockNumber"))
	}
}

func TestChainMismatch(t *testing.T) {
	t.Parallel()
	mainnet := starknettest.NewNode(t, starknettest.WithChainID(starknet.ChainMainnet))
	c, b := setup(t, starknet.Config{}, mainnet.URL)
	ctx := context.Background()

	err := c.CheckChain(ctx)
	var mismatch *starknet.ChainMismatchError
	if !errors.As(err, &mismatch) || !errors.Is(err, starknet.ErrChainMismatch) {
		t.Fatalf("CheckChain error = %v, want a *ChainMismatchError", err)
	}
	if mismatch.Expected != "SN_SEPOLIA" || mismatch.Actual != "SN_MAIN" || mismatch.Network != "sepolia" {
		t.Errorf("mismatch = %+v", mismatch)
	}
	for _, want := range []string{"node 1 (127.0.0.1:", "is on chain SN_MAIN", "STARKNET_NETWORK=sepolia expects chain SN_SEPOLIA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("CheckChain error %q, want it to contain %q", err, want)
		}
	}

	// The node is never used, and the client does not wait for it to
	// change its mind.
	_, err = c.BlockNumber(ctx)
	if !errors.Is(err, starknet.ErrUnavailable) || !errors.Is(err, starknet.ErrChainMismatch) {
		t.Errorf("BlockNumber error = %v, want ErrUnavailable caused by the chain mismatch", err)
	}
	if mainnet.Calls("starknet_blockNumber") != 0 || mainnet.Calls("starknet_chainId") != 1 || len(b.Waits()) != 0 {
		t.Errorf("calls: blockNumber %d, chainId %d, waits %v; want 0, 1, none",
			mainnet.Calls("starknet_blockNumber"), mainnet.Calls("starknet_chainId"), b.Waits())
	}
	// ChainID reports what the node says: it is how one finds out.
	if id, err := c.ChainID(ctx); err != nil || id != "SN_MAIN" {
		t.Errorf("ChainID = %q, %v, want SN_MAIN", id, err)
	}
}

// A node on the wrong chain in a list is skipped: the others serve.
func TestChainMismatchInAList(t *testing.T) {
	t.Parallel()
	mainnet := starknettest.NewNode(t, starknettest.WithChainID(starknet.ChainMainnet))
	sepolia := starknettest.NewNode(t, starknettest.WithBlockNumber(5))
	c, _ := setup(t, starknet.Config{}, mainnet.URL, sepolia.URL)
	ctx := context.Background()

	if n, err := c.BlockNumber(ctx); err != nil || n != 5 {
		t.Fatalf("BlockNumber = %d, %v, want 5 from the sepolia node", n, err)
	}
	if mainnet.Calls("starknet_blockNumber") != 0 {
		t.Errorf("the mainnet node was asked the block number")
	}
	if err := c.CheckChain(ctx); !errors.Is(err, starknet.ErrChainMismatch) || !strings.Contains(err.Error(), "node 1") {
		t.Errorf("CheckChain error = %v, want the mismatch of node 1", err)
	}
	mainnetClient, _ := setup(t, starknet.Config{Network: "mainnet"}, mainnet.URL)
	if err := mainnetClient.CheckChain(ctx); err != nil {
		t.Errorf("CheckChain of a mainnet client on a mainnet node: %v", err)
	}
}

func TestCheckChainUnreachable(t *testing.T) {
	t.Parallel()
	down, up := starknettest.NewNode(t), starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, down.URL, up.URL)
	down.FailNext(1, starknettest.HTTP500)
	if err := c.CheckChain(context.Background()); err != nil {
		t.Errorf("CheckChain with one node down: %v, want nil", err)
	}
	down.FailNext(1, starknettest.HTTP500)
	up.FailNext(1, starknettest.HTTP500)
	if err := c.CheckChain(context.Background()); !errors.Is(err, starknet.ErrUnavailable) {
		t.Errorf("CheckChain with every node down: %v, want ErrUnavailable", err)
	}
}

// An HTTP client of the caller's is used as it is.
func TestHTTPClient(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	var count int
	var mu sync.Mutex
	hc := &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		count++
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, _ := setup(t, starknet.Config{HTTPClient: hc}, node.URL)
	if _, err := c.SpecVersion(context.Background()); err != nil {
		t.Fatalf("SpecVersion: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if count != 2 { // the chain check, then the request
		t.Errorf("the HTTP client sent %d requests, want 2", count)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// oddNode answers starknet_chainId as a sepolia node does and every other
// request with status and the body that body returns for the request's id.
func oddNode(t *testing.T, status int, body func(id string) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("odd node: %v", err)
			return
		}
		if req.Method == "starknet_chainId" {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":"0x534e5f5345504f4c4941"}`, req.ID)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, body(string(req.ID)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestOddAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		body   func(id string) string
		// answer: the odd node's answer is returned, not failed over.
		answer bool
	}{
		{"400 with a JSON-RPC error", 400, func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32602,"message":"Invalid params"}}`
		}, true},
		{"400 without", 400, func(string) string { return "bad request" }, false},
		{"401 with a JSON-RPC error", 401, func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32001,"message":"invalid API key"}}`
		}, false},
		{"429", 429, func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32005,"message":"rate limited"}}`
		}, false},
		{"503 with a JSON-RPC error", 503, func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32603,"message":"Internal error"}}`
		}, false},
		{"not JSON", 200, func(string) string { return "<html>gateway</html>" }, false},
		{"another id", 200, func(string) string { return `{"jsonrpc":"2.0","id":999999,"result":"0.9.0"}` }, false},
		{"null result", 200, func(id string) string { return `{"jsonrpc":"2.0","id":` + id + `,"result":null}` }, false},
		{"too long", 200, func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"result":"` + strings.Repeat("9", 5000) + `"}`
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := starknettest.NewNode(t)
			c, _ := setup(t, starknet.Config{MaxResponseBytes: 4096}, oddNode(t, tc.status, tc.body), good.URL)
			v, err := c.SpecVersion(context.Background())
			if tc.answer {
				var rpcErr *starknet.RPCError
				if !errors.As(err, &rpcErr) || rpcErr.Code != -32602 || good.Calls("starknet_specVersion") != 0 {
					t.Errorf("SpecVersion = %q, %v; want the odd node's JSON-RPC error", v, err)
				}
				return
			}
			if err != nil || v != starknettest.SpecVersion || good.Calls("starknet_specVersion") != 1 {
				t.Errorf("SpecVersion = %q, %v; want the good node's answer", v, err)
			}
		})
	}
}

// A request that needed a failover is logged once, as a warning that names
// the nodes by host only.
func TestFailoverIsLogged(t *testing.T) {
	t.Parallel()
	first, second := starknettest.NewNode(t), starknettest.NewNode(t)
	var buf obsqratest.Buffer
	c, err := starknet.New(starknet.Config{URLs: []string{first.URL + "/KEY123", second.URL}, Network: "sepolia",
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	first.FailNext(1, starknettest.HTTP500)
	if _, err := c.BlockNumber(context.Background()); err != nil {
		t.Fatalf("BlockNumber: %v", err)
	}
	if _, err := c.BlockNumber(context.Background()); err != nil {
		t.Fatalf("BlockNumber: %v", err)
	}
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "failed_attempts=1") ||
		!strings.Contains(out, "node 1 (127.0.0.1:") || strings.Contains(out, "KEY123") {
		t.Errorf("log:\n%s\nwant one warning naming node 1 by host", out)
	}
}

// Many goroutines share a client while its nodes fail now and then.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	first, second := starknettest.NewNode(t, starknettest.WithBlockNumber(3)), starknettest.NewNode(t, starknettest.WithBlockNumber(3))
	c, _ := setup(t, starknet.Config{}, first.URL, second.URL)
	// Fewer failures per node than rounds: no request can fail every time.
	first.FailNext(2, starknettest.HTTP500)
	second.FailNext(2, starknettest.Drop)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Go(func() {
			n, err := c.BlockNumber(context.Background())
			if err == nil && n != 3 {
				err = fmt.Errorf("block %d, want 3", n)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("BlockNumber: %v", err)
		}
	}
}
