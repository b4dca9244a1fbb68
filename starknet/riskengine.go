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
		calldata[i] = obsqra.FeltFromUint64(uint64(a))
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

// ModelParams calls the contract's get_model_params(version) and returns
// the deployed parameters of that model version, in the order of its
// ModelParams struct (w_utilization, w_volatility, w_liquidity_0 … _3,
// w_audit, w_age, age_cap_days, clamp_min, clamp_max), and whether the
// contract knows the version: it answers all zeros for one it does not.
// Errors: those of Call; an answer that is not eleven numbers below 2^31.
func (e RiskEngine) ModelParams(ctx context.Context, version obsqra.Felt) (obsqra.RiskParams, bool, error) {
	out, err := e.Client.Call(ctx, e.Address, "get_model_params", []obsqra.Felt{version})
	if err != nil {
		return obsqra.RiskParams{}, false, err
	}
	if len(out) != 11 {
		return obsqra.RiskParams{}, false, fmt.Errorf("risk engine at %s answered %d felts for get_model_params, want 11", e.Address, len(out))
	}
	var v [11]int
	known := false
	for i, f := range out {
		n := new(big.Int).SetBytes(f[:])
		if !n.IsInt64() || n.Int64() >= 1<<31 {
			return obsqra.RiskParams{}, false, fmt.Errorf("risk engine at %s answered %s for a model parameter, not a number below 2^31", e.Address, f)
		}
		v[i] = int(n.Int64())
		known = known || v[i] != 0
	}
	return obsqra.RiskParams{
		WUtilization: v[0], WVolatility: v[1], WLiquidity0: v[2], WLiquidity1: v[3], WLiquidity2: v[4], WLiquidity3: v[5],
		WAudit: v[6], WAge: v[7], AgeCapDays: v[8], ClampMin: v[9], ClampMax: v[10], ChainVersion: &version,
	}, known, nil
}
