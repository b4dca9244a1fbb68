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

func TestRiskEngine(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	address, _ := obsqra.ParseAddress("0x5e1")
	var got []obsqra.Felt
	node.SetRiskEngine(address, func(calldata []obsqra.Felt) []obsqra.Felt {
		got = calldata
		sum := new(big.Int)
		for _, f := range calldata {
			sum.Add(sum, new(big.Int).SetBytes(f[:]))
		}
		var out obsqra.Felt
		sum.Mod(sum, big.NewInt(101)).FillBytes(out[:])
		return []obsqra.Felt{out}
	})
	e := starknet.RiskEngine{Client: c, Address: address}
	in := obsqra.RiskInputs{Utilization: 8000, Volatility: 250, Liquidity: 2, AuditScore: 85, AgeDays: 400}
	score, err := e.CalculateRiskScore(context.Background(), in)
	if want := (8000 + 250 + 2 + 85 + 400) % 101; err != nil || score != want {
		t.Fatalf("CalculateRiskScore = %d, %v, want %d", score, err, want)
	}
	if len(got) != 5 || new(big.Int).SetBytes(got[0][:]).Int64() != 8000 || new(big.Int).SetBytes(got[4][:]).Int64() != 400 {
		t.Fatalf("calldata = %v, want the five inputs in order", got)
	}
	missing, _ := obsqra.ParseAddress("0x777")
	if _, err := (starknet.RiskEngine{Client: c, Address: missing}).CalculateRiskScore(context.Background(), in); !errors.Is(err, starknet.ErrContractNotFound) {
		t.Fatalf("CalculateRiskScore(no contract) = %v, want ErrContractNotFound", err)
	}
}
