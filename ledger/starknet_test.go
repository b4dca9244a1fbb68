package ledger_test

import (
	"context"
	"errors"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// TestStarknetNode: the adapter answers in the watcher's terms.
func TestStarknetNode(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	n := ledger.StarknetNode(c)
	ctx := context.Background()
	hash, _ := obsqra.ParseFelt("0xbeef")
	if _, err := n.TransactionStatus(ctx, hash); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("TransactionStatus(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := n.TransactionReceipt(ctx, hash); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("TransactionReceipt(unknown) = %v, want ErrNotFound", err)
	}
	node.SetTransaction(hash, starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionReverted,
		FailureReason: "out of gas", BlockNumber: 77, Fee: obsqra.Fee{Amount: obsqra.MustDecimal("12345"), Unit: "WEI"}, Events: 2})
	s, err := n.TransactionStatus(ctx, hash)
	if err != nil || s.Finality != "ACCEPTED_ON_L2" || s.Execution != "REVERTED" || s.FailureReason != "out of gas" || len(s.Raw) == 0 {
		t.Fatalf("TransactionStatus = %+v, %v", s, err)
	}
	r, err := n.TransactionReceipt(ctx, hash)
	if err != nil || r.BlockNumber == nil || *r.BlockNumber != 77 || r.FeeAmount != "12345" || r.FeeUnit != "WEI" || r.Events != 2 ||
		r.Execution != "REVERTED" || r.RevertReason == "" || len(r.Raw) == 0 {
		t.Fatalf("TransactionReceipt = %+v, %v", r, err)
	}
}
