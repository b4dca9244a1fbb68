package ml

import (
	"github.com/obsqra/obsqra"
)

// This file reproduces the on-chain RiskEngine contract's arithmetic exactly:
// integers only, floor division, and a division by zero yields zero as the
// contract's does. Inputs are validated instead of being allowed to wrap.

// The model's parameters are the domain's obsqra.RiskParams (the
// contract's ModelParams): start from obsqra.DefaultRiskParams, merge an
// obsqra.RiskParamsPatch over it, and check it with its Validate.

// RiskInputs are the five integers the contract scores a protocol from.
type RiskInputs struct {
	UtilizationBps int64 // 0–10000
	VolatilityBps  int64 // 0–1,000,000
	LiquidityTier  int64 // 0 (deepest) – 3
	AuditScore     int64 // 0–100
	AgeDays        int64 // 0–36500
}

// Validate returns an EINVALID error naming the first input out of range.
func (in RiskInputs) Validate() error {
	fields := []struct {
		name    string
		v, max_ int64
	}{
		{"utilization", in.UtilizationBps, 10_000},
		{"volatility", in.VolatilityBps, 1_000_000},
		{"liquidity", in.LiquidityTier, 3},
		{"auditScore", in.AuditScore, 100},
		{"ageDays", in.AgeDays, 36_500},
	}
	for _, f := range fields {
		if f.v < 0 || f.v > f.max_ {
			return obsqra.Errorf(obsqra.EINVALID, "%s must be between 0 and %d, got %d", f.name, f.max_, f.v)
		}
	}
	return nil
}

// RiskScore is a score with the components it was summed from.
type RiskScore struct {
	Score       int64 // Unclamped clamped to [ClampMin, ClampMax]
	Utilization int64
	Volatility  int64
	Liquidity   int64
	Audit       int64
	Age         int64
	Unclamped   int64 // the sum of the five components
}

// ScoreRisk validates in and p and scores in exactly as the contract's
// calculate_risk_score does. Errors: EINVALID naming the field.
func ScoreRisk(in RiskInputs, p obsqra.RiskParams) (RiskScore, error) {
	if !in.inRange() {
		return RiskScore{}, in.Validate()
	}
	if !paramsInRange(&p) {
		return RiskScore{}, p.Validate()
	}
	var s RiskScore
	score(&in, &p, &s)
	return s, nil
}

// inRange is Validate's verdict without building an error: the hot path.
func (in *RiskInputs) inRange() bool {
	return uint64(in.UtilizationBps) <= 10_000 && uint64(in.VolatilityBps) <= 1_000_000 &&
		uint64(in.LiquidityTier) <= 3 && uint64(in.AuditScore) <= 100 && uint64(in.AgeDays) <= 36_500
}

// paramsInRange is p.Validate's verdict without building an error: the
// hot path.
func paramsInRange(p *obsqra.RiskParams) bool {
	const m = obsqra.MaxRiskParam
	return uint64(p.WUtilization) <= m && uint64(p.WVolatility) <= m &&
		uint64(p.WLiquidity0) <= m && uint64(p.WLiquidity1) <= m &&
		uint64(p.WLiquidity2) <= m && uint64(p.WLiquidity3) <= m &&
		uint64(p.WAudit) <= m && uint64(p.WAge) <= m &&
		p.AgeCapDays > 0 && p.AgeCapDays <= m &&
		p.ClampMin >= 0 && p.ClampMin <= p.ClampMax && p.ClampMax <= 100
}

// Model is the contract's scoring with validated parameters: what a caller
// that scores many protocols with the same parameters holds, so that each
// score checks only its inputs and copies nothing large.
type Model struct{ p obsqra.RiskParams }

// NewModel validates p and returns a Model scoring with it.
// Errors: EINVALID naming the parameter out of range.
func NewModel(p obsqra.RiskParams) (*Model, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Model{p: p}, nil
}

// Params returns the model's parameters.
func (m *Model) Params() obsqra.RiskParams { return m.p }

// Score scores in exactly as the contract's calculate_risk_score does.
// Errors: EINVALID naming the input out of range.
func (m *Model) Score(in RiskInputs) (s RiskScore, err error) {
	if !in.inRange() {
		return RiskScore{}, in.Validate()
	}
	score(&in, &m.p, &s)
	return s, nil
}

// score is the contract's formula on validated inputs: every value is
// non-negative and small enough that no product overflows. It writes
// through pointers because on this hot path copying the arguments and the
// result in and out costs as much as the arithmetic.
func score(in *RiskInputs, p *obsqra.RiskParams, s *RiskScore) {
	s.Utilization = floorDiv(in.UtilizationBps*int64(p.WUtilization), 10_000)
	s.Volatility = floorDiv(in.VolatilityBps*int64(p.WVolatility), 10_000)
	switch in.LiquidityTier {
	case 0:
		s.Liquidity = int64(p.WLiquidity0)
	case 1:
		s.Liquidity = int64(p.WLiquidity1)
	case 2:
		s.Liquidity = int64(p.WLiquidity2)
	default:
		s.Liquidity = int64(p.WLiquidity3)
	}
	s.Audit = floorDiv((100-in.AuditScore)*int64(p.WAudit), 10)
	s.Age = 0
	ageCap := int64(p.AgeCapDays)
	if in.AgeDays < ageCap {
		s.Age = ageDiv((ageCap-in.AgeDays)*int64(p.WAge), ageCap)
	}
	s.Unclamped = s.Utilization + s.Volatility + s.Liquidity + s.Audit + s.Age
	s.Score = min(max(s.Unclamped, int64(p.ClampMin)), int64(p.ClampMax))
}

// ageDiv is floorDiv for a positive divisor that is not a constant: the one
// real division in the score. A 32-bit division is several times cheaper
// than a 64-bit one, and with the default parameters both operands fit.
func ageDiv(a, b int64) int64 {
	if uint64(a)|uint64(b) <= 0xFFFFFFFF {
		return int64(uint32(a) / uint32(b))
	}
	return a / b
}

// floorDiv is the contract's unsigned division: a / b, and 0 when b is 0.
// Both operands are non-negative here, so Go's truncation is the floor.
func floorDiv(a, b int64) int64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Limits of ParityAllocation's inputs, so that no product overflows int64:
// s_i ≤ 10⁷·10⁴ and s_i·10⁴ summed over maxParityProtocols stays below 2⁶³.
const (
	maxParityProtocols = 1000
	maxParityRisk      = 1_000_000
	maxParityAPY       = 10_000_000 // bps: 100,000 %
)

// ParityAllocation reproduces the contract's allocation: s_i = a_i × 10000 /
// (r_i + 1); weight_i = s_i × 10000 / Σs for every protocol but the last,
// which gets 10000 minus the others, so the weights sum to exactly 10000.
// When Σs is 0 the contract's division yields 0 and the last gets 10000.
// Errors: EINVALID when the slices differ in length, are empty or longer
// than 1000, or hold a value out of range (risks 0–10⁶, apys 0–10⁷ bps).
func ParityAllocation(risks, apys []int64) ([]int64, error) {
	if len(risks) != len(apys) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "risks has %d entries but apys has %d", len(risks), len(apys))
	}
	if len(risks) == 0 || len(risks) > maxParityProtocols {
		return nil, obsqra.Errorf(obsqra.EINVALID, "risks must have between 1 and %d entries, got %d", maxParityProtocols, len(risks))
	}
	for i := range risks {
		if risks[i] < 0 || risks[i] > maxParityRisk {
			return nil, obsqra.Errorf(obsqra.EINVALID, "risks[%d] must be between 0 and %d, got %d", i, maxParityRisk, risks[i])
		}
		if apys[i] < 0 || apys[i] > maxParityAPY {
			return nil, obsqra.Errorf(obsqra.EINVALID, "apys[%d] must be between 0 and %d, got %d", i, maxParityAPY, apys[i])
		}
	}
	weights := make([]int64, len(risks))
	parityAllocation(weights, risks, apys)
	return weights, nil
}

// parityAllocation writes the contract's weights for validated inputs into
// weights, which has the inputs' length.
func parityAllocation(weights, risks, apys []int64) {
	var total int64
	for i := range risks {
		weights[i] = floorDiv(apys[i]*10_000, risks[i]+1)
		total += weights[i]
	}
	last := len(weights) - 1
	var assigned int64
	for i := 0; i < last; i++ {
		weights[i] = floorDiv(weights[i]*10_000, total)
		assigned += weights[i]
	}
	weights[last] = 10_000 - assigned
}

// CheckConstraints is the contract's constraint check: true when the largest
// weight is at most maxSingle and at least minDiversification weights hold
// 1000 bps or more.
func CheckConstraints(weights []int64, maxSingle, minDiversification int64) bool {
	var count int64
	for _, w := range weights {
		if w > maxSingle {
			return false
		}
		if w >= 1000 {
			count++
		}
	}
	return count >= minDiversification
}
