package starknet_test

import (
	"context"
	"errors"
	"math/big"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

func TestU256(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456",
		"115792089237316195423570985008687907853269984665640564039457584007913129639935"} {
		v, _ := new(big.Int).SetString(s, 10)
		low, high := starknet.U256Felts(v)
		back, err := starknet.U256(low, high)
		if err != nil || back.Cmp(v) != 0 {
			t.Errorf("U256(U256Felts(%s)) = %v, %v", s, back, err)
		}
	}
	var big128 obsqra.Felt
	new(big.Int).Lsh(big.NewInt(1), 128).FillBytes(big128[:])
	if _, err := starknet.U256(big128, obsqra.Felt{}); err == nil {
		t.Error("U256 with a low half of 2^128 succeeded")
	}
}

// TestBalanceAt: balances and share conversions are read on the block
// named, each entry point in its style; a node behind that block says so.
func TestBalanceAt(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	node.SetBlockNumber(120)
	token, _ := obsqra.ParseAddress("0x70c")
	vault, _ := obsqra.ParseAddress("0x7a1")
	owner, _ := obsqra.ParseAddress("0xa11ce")
	u256 := func(v *big.Int) []obsqra.Felt { l, h := starknet.U256Felts(v); return []obsqra.Felt{l, h} }
	// The owner held 1,000 + block units (and 2^130 more, to use both
	// halves).
	huge := new(big.Int).Lsh(big.NewInt(1), 130)
	node.SetBlockFunction(token, "balance_of", func(block uint64, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		if len(calldata) != 1 || calldata[0] != owner {
			return nil, errors.New("unexpected calldata")
		}
		return u256(new(big.Int).Add(huge, big.NewInt(1000+int64(block)))), nil
	})
	// A vault whose share is worth 1.5 assets at block 100 and 2 after.
	node.SetBlockFunction(vault, "convertToAssets", func(block uint64, calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		shares, err := starknet.U256(calldata[0], calldata[1])
		if err != nil {
			return nil, err
		}
		if block <= 100 {
			return u256(new(big.Int).Div(new(big.Int).Mul(shares, big.NewInt(3)), big.NewInt(2))), nil
		}
		return u256(new(big.Int).Mul(shares, big.NewInt(2))), nil
	})
	ctx := context.Background()
	got, err := c.BalanceAt(ctx, 100, token, "balance_of", owner)
	if want := new(big.Int).Add(huge, big.NewInt(1100)); err != nil || got.Cmp(want) != 0 {
		t.Fatalf("BalanceAt(100) = %v, %v, want %v", got, err, want)
	}
	assets, err := c.ConvertToAssetsAt(ctx, 100, vault, "balanceOf", big.NewInt(10))
	if err != nil || assets.Int64() != 15 {
		t.Fatalf("ConvertToAssetsAt(100) = %v, %v, want 15", assets, err)
	}
	if assets, err := c.ConvertToAssetsAt(ctx, 110, vault, "balanceOf", big.NewInt(10)); err != nil || assets.Int64() != 20 {
		t.Fatalf("ConvertToAssetsAt(110) = %v, %v, want 20", assets, err)
	}
	if blocks := node.CallBlocks(); len(blocks) != 3 || blocks[0] != 100 || blocks[1] != 100 || blocks[2] != 110 {
		t.Errorf("the node was asked about blocks %v, want [100 100 110]", blocks)
	}
	// A style the vault does not answer: entry point not found.
	if _, err := c.ConvertToAssetsAt(ctx, 100, vault, "balance_of", big.NewInt(10)); !errors.Is(err, starknet.ErrEntrypointNotFound) {
		t.Errorf("convert_to_assets of a camelCase vault = %v, want ErrEntrypointNotFound", err)
	}
	// A block the node has not seen yet.
	if _, err := c.BalanceAt(ctx, 121, token, "balance_of", owner); !errors.Is(err, starknet.ErrBlockNotFound) {
		t.Errorf("BalanceAt(121) on a node at 120 = %v, want ErrBlockNotFound", err)
	}
	// An answer that is no u256.
	node.SetFunction(token, "balanceOf", func([]obsqra.Felt) ([]obsqra.Felt, error) { return []obsqra.Felt{{}}, nil })
	if _, err := c.BalanceAt(ctx, 100, token, "balanceOf", owner); err == nil {
		t.Error("BalanceAt of a one-felt answer succeeded")
	}
}
