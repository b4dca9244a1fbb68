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

// TestRiskEngineModelParams: get_model_params(version) is read in the
// ModelParams struct's order; all zeros is an unknown version; a short
// answer or a value that is no parameter is an error.
func TestRiskEngineModelParams(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	address, _ := obsqra.ParseAddress("0x5e2")
	answer := func(vs ...int64) []obsqra.Felt {
		out := make([]obsqra.Felt, len(vs))
		for i, v := range vs {
			big.NewInt(v).FillBytes(out[i][:])
		}
		return out
	}
	var asked []obsqra.Felt
	next := answer(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)
	node.SetFunction(address, "get_model_params", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
		asked = calldata
		return next, nil
	})
	e := starknet.RiskEngine{Client: c, Address: address}
	version := obsqra.FeltFromUint64(7)
	p, known, err := e.ModelParams(context.Background(), version)
	want := obsqra.RiskParams{WUtilization: 1, WVolatility: 2, WLiquidity0: 3, WLiquidity1: 4, WLiquidity2: 5, WLiquidity3: 6,
		WAudit: 7, WAge: 8, AgeCapDays: 9, ClampMin: 10, ClampMax: 11, ChainVersion: &version}
	if err != nil || !known || p.ChainVersion == nil || *p.ChainVersion != version || len(asked) != 1 || asked[0] != version {
		t.Fatalf("ModelParams = %+v, %v, %v (asked %v)", p, known, err, asked)
	}
	p.ChainVersion, want.ChainVersion = nil, nil
	if p != want {
		t.Errorf("ModelParams = %+v, want %+v", p, want)
	}
	next = answer(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	if _, known, err := e.ModelParams(context.Background(), version); err != nil || known {
		t.Errorf("ModelParams(unknown) = known %v, %v", known, err)
	}
	next = answer(1, 2, 3)
	if _, _, err := e.ModelParams(context.Background(), version); err == nil {
		t.Error("ModelParams(3 felts) succeeded")
	}
	next = answer(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1<<31)
	if _, _, err := e.ModelParams(context.Background(), version); err == nil {
		t.Error("ModelParams(2^31) succeeded")
	}
}
