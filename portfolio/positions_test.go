package portfolio_test

import (
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestWalletPositionsNeedANodeAndAWallet: without a Starknet node, or
// signed out, positions (and allocations from them) are refused clearly.
func TestWalletPositionsNeedANodeAndAWallet(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	_, err := s.WalletPositions(b.ctx)
	checkErr(t, "WalletPositions(no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
	_, err = s.WalletPositions(b.anon)
	checkErr(t, "WalletPositions(anonymous)", err, obsqra.EUNAUTHENTICATED)
	yes := true
	_, err = s.RecordAllocation(b.ctx, obsqra.RecordAllocationInput{FromWallet: &yes, Reason: obsqra.ReasonUserInitiated})
	checkErr(t, "RecordAllocation(fromWallet, no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
}
