package starknet_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// observer records what a client tells its Observer.
type observer struct {
	mu        sync.Mutex
	calls     []string // "method outcome"
	failovers int
}

func (o *observer) RPCCall(method, outcome string, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if took < 0 {
		outcome += " (negative duration)"
	}
	o.calls = append(o.calls, method+" "+outcome)
}

func (o *observer) RPCFailover() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failovers++
}

// TestObserver: every call is reported with its method and outcome, and a
// call answered by another node than the preferred one as a failover.
func TestObserver(t *testing.T) {
	t.Parallel()
	obs := &observer{}
	first, second := starknettest.NewNode(t, starknettest.WithBlockNumber(1)), starknettest.NewNode(t, starknettest.WithBlockNumber(2))
	c, _ := setup(t, starknet.Config{Observer: obs, Rounds: 1, Timeout: 200 * time.Millisecond}, first.URL, second.URL)
	ctx := context.Background()
	if err := c.CheckChain(ctx); err != nil {
		t.Fatalf("CheckChain: %v", err)
	}
	if _, err := c.BlockNumber(ctx); err != nil {
		t.Fatal(err)
	}
	first.FailNext(1, starknettest.HTTP500)
	if n, err := c.BlockNumber(ctx); err != nil || n != 2 {
		t.Fatalf("BlockNumber = %d, %v, want 2 from the second node", n, err)
	}
	second.FailNext(1, starknettest.RPCError)
	if _, err := c.BlockNumber(ctx); err == nil {
		t.Fatal("BlockNumber with a JSON-RPC error succeeded")
	}
	first.FailNext(1, starknettest.HTTP500)
	second.FailNext(1, starknettest.HTTP500)
	if _, err := c.SpecVersion(ctx); err == nil {
		t.Fatal("SpecVersion with no node answering succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.BlockNumber(cancelled); err == nil {
		t.Fatal("BlockNumber with a cancelled context succeeded")
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []string{
		"starknet_blockNumber ok",
		"starknet_blockNumber ok",
		"starknet_blockNumber rpc_error",
		"starknet_specVersion unavailable",
		"starknet_blockNumber cancelled",
	}
	if !slices.Equal(obs.calls, want) {
		t.Errorf("observed calls\n%q\nwant\n%q", obs.calls, want)
	}
	if obs.failovers != 1 {
		t.Errorf("observed %d failovers, want 1", obs.failovers)
	}
}
