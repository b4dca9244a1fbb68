package ml

import (
	"math"
	"math/rand/v2"

	"github.com/obsqra/obsqra"
)

// RebalanceInput describes a possible move from the current allocation to
// a target one: the forecasts, their calibrated errors, and the costs.
type RebalanceInput struct {
	// CurrentBps and TargetBps are the allocations in bps, one entry per
	// protocol (n ≥ 1, same length), each entry 0–10000, each summing to
	// exactly 10000.
	CurrentBps, TargetBps []int
	// ExpectedApyBps is each protocol's forecast APY over the horizon, bps.
	ExpectedApyBps []float64
	// ApyErrorBps optionally holds, per protocol, past errors (realised −
	// forecast, bps of APY) of the same forecasting method at the same
	// horizon, from rolling-origin calibration (e.g. RollingErrors). When
	// every moved protocol has the same number of errors, entry k is taken
	// to be the same past date for all of them, which keeps their
	// correlation. A protocol with no errors falls back to ApySigmaBps.
	ApyErrorBps [][]float64
	// ApySigmaBps optionally holds each protocol's forecast error standard
	// deviation in bps, used for protocols without ApyErrorBps; the errors
	// are then taken as independent normals with mean 0.
	ApySigmaBps []float64
	// PortfolioValueUsd is the value of the portfolio in USD, > 0.
	PortfolioValueUsd float64
	// GasCostUsdPerMove is the gas cost of one trade in USD, ≥ 0.
	GasCostUsdPerMove float64
	// SlippageBps is the cost of trading, in bps of each traded notional
	// (withdrawals and deposits alike), ≥ 0.
	SlippageBps float64
	// HorizonDays is the period over which the move must pay for itself,
	// in days; 0 means 365.
	HorizonDays int
	// ThresholdBps is the least net annual improvement (NetImprovementBps)
	// worth a rebalance, in bps of the portfolio, ≥ 0.
	ThresholdBps int
	// Seed drives the simulation used when the error samples cannot be
	// counted exactly (see SuggestRebalance).
	Seed uint64
}

// Trade is one move of a rebalance.
type Trade struct {
	// Protocol is the index of the protocol in the input.
	Protocol int
	// DeltaBps is target − current in bps: negative withdraws, positive
	// deposits.
	DeltaBps int
	// AmountUsd is DeltaBps/10000 of the portfolio value, signed like it.
	AmountUsd float64
}

// Rebalance is a rebalancing suggestion and its economics. All
// improvements are in bps of the portfolio value.
type Rebalance struct {
	// Trades are the non-zero moves: withdrawals first, then deposits,
	// each group by protocol index (the order they can be executed in).
	Trades []Trade
	// GrossImprovementBps is the forecast annual gain of the target over
	// the current allocation: Σ (target_i − current_i)/10000 · μ_i.
	GrossImprovementBps float64
	// CostUsd is the one-off cost: gas per trade plus slippage on the
	// traded notional Σ|target_i − current_i|/10000 · value.
	CostUsd float64
	// CostBps is CostUsd in bps of the portfolio value.
	CostBps float64
	// NetImprovementBps is the annual improvement net of the cost spread
	// over the horizon: Gross − CostBps·365/HorizonDays. It is positive
	// exactly when the move pays for itself within the horizon, and over
	// the horizon the portfolio gains NetImprovementBps·HorizonDays/365.
	NetImprovementBps float64
	// BreakEvenDays is CostBps / (GrossImprovementBps/365): the days until
	// the forecast gain repays the cost. It is 0 when there are no trades
	// and +Inf when the gross improvement is not positive (never); callers
	// that serialise it must map +Inf themselves (JSON has no infinity).
	BreakEvenDays float64
	// ClearsThreshold reports whether the suggestion is worth acting on:
	// there are trades and NetImprovementBps is positive and at least
	// ThresholdBps.
	ClearsThreshold bool
	// Confidence is the probability that the realised improvement over
	// the horizon exceeds the cost (NetImprovementBps realised > 0) under
	// the calibrated error distribution; 0 when there are no trades.
	Confidence float64
}

// rebalanceDraws is the number of simulated outcomes when Confidence has
// to be simulated.
const rebalanceDraws = 2000

// rebalanceStream is the second PCG word of the simulation's generator.
const rebalanceStream = 0x5eba1a9ce

// SuggestRebalance computes the economics and the confidence of moving
// from in.CurrentBps to in.TargetBps.
//
// Confidence. The realised APY of protocol i over the horizon is μ_i + ε_i
// with ε_i the forecast error, so the realised annual gain is Gross + E with
// E = Σ (target_i − current_i)/10000 · ε_i, and the move pays for itself
// when E > −NetImprovementBps. (The error of the forecast horizon stands
// for the error of the average APY over it, which is the cautious choice:
// averaging only shrinks errors.) Only protocols whose weight changes
// matter. Confidence = P(E > −Net) is computed:
//
//   - from error samples of equal length L for every moved protocol: exactly,
//     as the fraction of the L past dates k on which E_k = Σ Δ_i·e_i[k]/10000
//     exceeds −Net. That is the limit of the bootstrap that resamples a
//     past date for all protocols at once, without its simulation noise;
//   - from ApySigmaBps alone: exactly, Φ(Net/s) with s² = Σ (Δ_i/10000)²σ_i²
//     (independent normal errors); with s = 0, 1 if Net > 0 else 0;
//   - otherwise (error samples of unequal lengths, or samples for some
//     protocols and σ for others): by 2000 simulated draws seeded by
//     in.Seed, each protocol's error resampled from its own samples or
//     drawn from N(0, σ²) independently of the others;
//   - with no error information at all the forecasts are taken as exact:
//     1 if Net > 0, else 0.
//
// Errors: EINVALID naming the field when the allocations differ in length,
// are empty, hold an entry outside 0–10000 or do not sum to 10000, when
// ExpectedApyBps, ApyErrorBps or ApySigmaBps have the wrong length or hold
// a number that is not finite (or a negative σ), when a moved protocol has
// neither error samples nor σ while ApyErrorBps is given, or when the
// value, gas, slippage, horizon or threshold is out of range.
func SuggestRebalance(in RebalanceInput) (Rebalance, error) {
	if err := in.validate(); err != nil {
		return Rebalance{}, err
	}
	n := len(in.CurrentBps)
	horizon := in.HorizonDays
	if horizon == 0 {
		horizon = 365
	}
	var r Rebalance
	var traded float64 // Σ|Δ| in bps
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < n; i++ {
			d := in.TargetBps[i] - in.CurrentBps[i]
			if (pass == 0 && d < 0) || (pass == 1 && d > 0) {
				r.Trades = append(r.Trades, Trade{Protocol: i, DeltaBps: d, AmountUsd: float64(d) / 10000 * in.PortfolioValueUsd})
			}
		}
	}
	for i := 0; i < n; i++ {
		d := float64(in.TargetBps[i] - in.CurrentBps[i])
		r.GrossImprovementBps += d / 10000 * in.ExpectedApyBps[i]
		traded += math.Abs(d)
	}
	if len(r.Trades) == 0 {
		return r, nil
	}
	r.CostUsd = in.GasCostUsdPerMove*float64(len(r.Trades)) + in.SlippageBps/10000*traded/10000*in.PortfolioValueUsd
	r.CostBps = r.CostUsd / in.PortfolioValueUsd * 10000
	r.NetImprovementBps = r.GrossImprovementBps - r.CostBps*365/float64(horizon)
	if r.GrossImprovementBps > 0 {
		r.BreakEvenDays = r.CostBps / (r.GrossImprovementBps / 365)
	} else {
		r.BreakEvenDays = math.Inf(1)
	}
	r.ClearsThreshold = r.NetImprovementBps > 0 && r.NetImprovementBps >= float64(in.ThresholdBps)
	r.Confidence = in.confidence(r.NetImprovementBps)
	return r, nil
}

// validate checks in; see SuggestRebalance.
func (in *RebalanceInput) validate() error {
	n := len(in.CurrentBps)
	if n == 0 {
		return obsqra.Errorf(obsqra.EINVALID, "currentBps is empty")
	}
	if len(in.TargetBps) != n {
		return obsqra.Errorf(obsqra.EINVALID, "targetBps has %d entries but currentBps has %d", len(in.TargetBps), n)
	}
	if len(in.ExpectedApyBps) != n {
		return obsqra.Errorf(obsqra.EINVALID, "expectedApyBps has %d entries but currentBps has %d", len(in.ExpectedApyBps), n)
	}
	for _, a := range []struct {
		name string
		bps  []int
	}{{"currentBps", in.CurrentBps}, {"targetBps", in.TargetBps}} {
		var sum int
		for i, v := range a.bps {
			if v < 0 || v > 10000 {
				return obsqra.Errorf(obsqra.EINVALID, "%s[%d] = %d is not between 0 and 10000", a.name, i, v)
			}
			sum += v
		}
		if sum != 10000 {
			return obsqra.Errorf(obsqra.EINVALID, "%s sums to %d, want 10000", a.name, sum)
		}
	}
	for i, v := range in.ExpectedApyBps {
		if !finite(v) {
			return obsqra.Errorf(obsqra.EINVALID, "expectedApyBps[%d] is not a finite number", i)
		}
	}
	if in.ApyErrorBps != nil && len(in.ApyErrorBps) != n {
		return obsqra.Errorf(obsqra.EINVALID, "apyErrorBps has %d series but there are %d protocols", len(in.ApyErrorBps), n)
	}
	for i, errs := range in.ApyErrorBps {
		for k, e := range errs {
			if !finite(e) {
				return obsqra.Errorf(obsqra.EINVALID, "apyErrorBps[%d][%d] is not a finite number", i, k)
			}
		}
	}
	if in.ApySigmaBps != nil && len(in.ApySigmaBps) != n {
		return obsqra.Errorf(obsqra.EINVALID, "apySigmaBps has %d entries but there are %d protocols", len(in.ApySigmaBps), n)
	}
	for i, s := range in.ApySigmaBps {
		if !finite(s) || s < 0 {
			return obsqra.Errorf(obsqra.EINVALID, "apySigmaBps[%d] = %v is not a finite number ≥ 0", i, s)
		}
	}
	if in.ApyErrorBps != nil && in.ApySigmaBps == nil {
		for i := range in.ApyErrorBps {
			if in.TargetBps[i] != in.CurrentBps[i] && len(in.ApyErrorBps[i]) == 0 {
				return obsqra.Errorf(obsqra.EINVALID, "apyErrorBps[%d] is empty and apySigmaBps is not given: protocol %d moves with no error information", i, i)
			}
		}
	}
	if !finite(in.PortfolioValueUsd) || in.PortfolioValueUsd <= 0 {
		return obsqra.Errorf(obsqra.EINVALID, "portfolioValueUsd must be a finite number > 0, got %v", in.PortfolioValueUsd)
	}
	if !finite(in.GasCostUsdPerMove) || in.GasCostUsdPerMove < 0 {
		return obsqra.Errorf(obsqra.EINVALID, "gasCostUsdPerMove must be a finite number ≥ 0, got %v", in.GasCostUsdPerMove)
	}
	if !finite(in.SlippageBps) || in.SlippageBps < 0 || in.SlippageBps > 10000 {
		return obsqra.Errorf(obsqra.EINVALID, "slippageBps must be between 0 and 10000, got %v", in.SlippageBps)
	}
	if in.HorizonDays < 0 {
		return obsqra.Errorf(obsqra.EINVALID, "horizonDays must be ≥ 0 (0 means 365), got %d", in.HorizonDays)
	}
	if in.ThresholdBps < 0 {
		return obsqra.Errorf(obsqra.EINVALID, "thresholdBps must be ≥ 0, got %d", in.ThresholdBps)
	}
	return nil
}

// confidence returns P(E > −net); see SuggestRebalance. in is valid and
// some protocol moves.
func (in *RebalanceInput) confidence(net float64) float64 {
	n := len(in.CurrentBps)
	// How the moved protocols' errors are known.
	samples, sigmas := 0, 0
	length, aligned := -1, true
	for i := 0; i < n; i++ {
		if in.TargetBps[i] == in.CurrentBps[i] {
			continue
		}
		if in.ApyErrorBps != nil && len(in.ApyErrorBps[i]) > 0 {
			samples++
			if length >= 0 && len(in.ApyErrorBps[i]) != length {
				aligned = false
			}
			length = len(in.ApyErrorBps[i])
		} else if in.ApySigmaBps != nil {
			sigmas++
		}
	}
	threshold := -net
	switch {
	case samples == 0 && sigmas == 0:
		if net > 0 {
			return 1
		}
		return 0
	case sigmas == 0 && aligned:
		var hits int
		for k := 0; k < length; k++ {
			var e float64
			for i := 0; i < n; i++ {
				if d := in.TargetBps[i] - in.CurrentBps[i]; d != 0 {
					e += float64(d) / 10000 * in.ApyErrorBps[i][k]
				}
			}
			if e > threshold {
				hits++
			}
		}
		return float64(hits) / float64(length)
	case samples == 0:
		var v float64
		for i := 0; i < n; i++ {
			d := float64(in.TargetBps[i]-in.CurrentBps[i]) / 10000
			v += d * d * in.ApySigmaBps[i] * in.ApySigmaBps[i]
		}
		if v == 0 {
			if net > 0 {
				return 1
			}
			return 0
		}
		return 0.5 * math.Erfc(-net/math.Sqrt(2*v))
	}
	rng := rand.New(rand.NewPCG(in.Seed, rebalanceStream))
	var hits int
	for draw := 0; draw < rebalanceDraws; draw++ {
		var e float64
		for i := 0; i < n; i++ {
			d := in.TargetBps[i] - in.CurrentBps[i]
			if d == 0 {
				continue
			}
			var eps float64
			if in.ApyErrorBps != nil && len(in.ApyErrorBps[i]) > 0 {
				errs := in.ApyErrorBps[i]
				eps = errs[rng.IntN(len(errs))]
			} else {
				eps = in.ApySigmaBps[i] * rng.NormFloat64()
			}
			e += float64(d) / 10000 * eps
		}
		if e > threshold {
			hits++
		}
	}
	return float64(hits) / rebalanceDraws
}
