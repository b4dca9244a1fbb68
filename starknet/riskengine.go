package starknet

import (
	"context"
	"fmt"
	"math/big"

	"github.com/obsqra/obsqra"
)

// RiskEngine is the deployed RiskEngine contract, asked through a client.
type RiskEngine struct {
	Client  *Client
	Address obsqra.Felt
}

// CalculateRiskScore calls the contract's calculate_risk_score with the
// five parity inputs (utilization, volatility, liquidity tier, audit
// score, age in days) and returns the score it answers, with its own
// on-chain parameters.
// Errors: those of Call (ErrContractNotFound, ErrContractError,
// ErrUnavailable); an answer that is not one score of 0–100.
func (e RiskEngine) CalculateRiskScore(ctx context.Context, in obsqra.RiskInputs) (int, error) {
	args := []int{in.Utilization, in.Volatility, in.Liquidity, in.AuditScore, in.AgeDays}
	calldata := make([]obsqra.Felt, len(args))
	for i, a := range args {
		if a < 0 {
			return 0, fmt.Errorf("risk engine: input %d is negative", i)
		}
		calldata[i] = feltOf(uint64(a))
	}
	out, err := e.Client.Call(ctx, e.Address, "calculate_risk_score", calldata)
	if err != nil {
		return 0, err
	}
	if len(out) == 0 {
		return 0, fmt.Errorf("risk engine at %s answered no score", e.Address)
	}
	v := new(big.Int).SetBytes(out[0][:])
	if !v.IsInt64() || v.Int64() > 100 {
		return 0, fmt.Errorf("risk engine at %s answered %s, not a score of 0-100", e.Address, out[0])
	}
	return int(v.Int64()), nil
}

// feltOf is the felt of a small number.
func feltOf(v uint64) obsqra.Felt {
	var f obsqra.Felt
	for i := 31; i >= 24; i-- {
		f[i] = byte(v)
		v >>= 8
	}
	return f
}
