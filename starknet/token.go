package starknet

import (
	"context"
	"fmt"
	"math/big"

	"github.com/obsqra/obsqra"
)

// two128 is 2^128, the base of a u256's high half.
var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// U256 returns the Cairo u256 {low, high} as a number.
// Errors: a half of 2^128 or more.
func U256(low, high obsqra.Felt) (*big.Int, error) {
	l, h := new(big.Int).SetBytes(low[:]), new(big.Int).SetBytes(high[:])
	if l.Cmp(two128) >= 0 || h.Cmp(two128) >= 0 {
		return nil, fmt.Errorf("u256 halves %s and %s are not both below 2^128", low, high)
	}
	return l.Add(l, h.Mul(h, two128)), nil
}

// U256Felts returns v (0 ≤ v < 2^256) as the Cairo u256 {low, high}.
func U256Felts(v *big.Int) (low, high obsqra.Felt) {
	q, r := new(big.Int).QuoRem(v, two128, new(big.Int))
	r.FillBytes(low[:])
	q.FillBytes(high[:])
	return low, high
}

// BalanceAt asks the ERC-20 token at token for owner's balance on block,
// through entryPoint ("balanceOf" or "balance_of"): a u256.
// Errors: those of CallAt; an answer that is not a u256.
func (c *Client) BalanceAt(ctx context.Context, block uint64, token obsqra.Felt, entryPoint string, owner obsqra.Felt) (*big.Int, error) {
	out, err := c.CallAt(ctx, block, token, entryPoint, []obsqra.Felt{owner})
	if err != nil {
		return nil, err
	}
	return u256Answer(out, token, entryPoint)
}

// ConvertToAssetsAt asks the ERC-4626 vault at token how many of its
// underlying assets shares are worth on block: a u256. The entry point is
// named in the style of the token's balance entry point: convertToAssets
// beside balanceOf, convert_to_assets beside balance_of.
// Errors: those of CallAt; an answer that is not a u256.
func (c *Client) ConvertToAssetsAt(ctx context.Context, block uint64, token obsqra.Felt, balanceEntryPoint string, shares *big.Int) (*big.Int, error) {
	entryPoint := "convert_to_assets"
	if balanceEntryPoint == "balanceOf" {
		entryPoint = "convertToAssets"
	}
	low, high := U256Felts(shares)
	out, err := c.CallAt(ctx, block, token, entryPoint, []obsqra.Felt{low, high})
	if err != nil {
		return nil, err
	}
	return u256Answer(out, token, entryPoint)
}

func u256Answer(out []obsqra.Felt, token obsqra.Felt, entryPoint string) (*big.Int, error) {
	if len(out) != 2 {
		return nil, fmt.Errorf("%s of %s answered %d felts, want a u256 (2)", entryPoint, token, len(out))
	}
	v, err := U256(out[0], out[1])
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", entryPoint, token, err)
	}
	return v, nil
}
