package ml

import (
	"fmt"

	"github.com/obsqra/obsqra"
)

// z80 is the standard normal quantile of 0.9, √2·erf⁻¹(0.8): a central
// 80 % interval is ±z80 standard deviations.
const z80 = 1.2815515655446004

// Optimizer is the strategy of Obsqra's own allocation: the expected APY
// of each reserve is its forecast over the decision period (ForecastSeries
// on the APY up to the decision day), the covariance comes from the
// trailing HistoryDays of APYs (Ledoit–Wolf, inside Optimize), the risk
// penalty from the contract's risk score, and Optimize solves for integer
// weights within MaxSingleBps and MinDiversification.
//
// Once invested it moves only when SuggestRebalance says the move clears
// ThresholdBps: the forecast gain, net of SlippageBps on the traded
// notional spread over PaybackDays, as a user's rebalance threshold works.
type Optimizer struct {
	Tolerance          obsqra.RiskTolerance
	MaxSingleBps       int
	MinDiversification int
	HorizonDays        int     // forecast horizon; default 7
	HistoryDays        int     // covariance window; default 90
	ThresholdBps       int     // least net annual improvement worth a move; 0: any that pays back
	SlippageBps        float64 // trading cost in bps of the traded notional
	PaybackDays        int     // the move must pay for itself within this; default 30
	Params             obsqra.RiskParams
	Forecast           ForecastOptions
}

// Name implements Strategy.
func (o Optimizer) Name() string {
	return fmt.Sprintf("optimizer-%s", o.Tolerance)
}

// Target implements Strategy.
func (o Optimizer) Target(b *Basket, current []float64) ([]float64, error) {
	horizon, window := o.HorizonDays, o.HistoryDays
	if horizon <= 0 {
		horizon = 7
	}
	if window <= 0 {
		window = 90
	}
	t := b.last()
	lo := t
	for lo > 0 && b.Days[t]-b.Days[lo-1] < obsqra.Date(window) {
		lo--
	}
	n := len(b.Reserves)
	in := OptimizeInput{
		ExpectedApyBps:     make([]float64, n),
		Histories:          make([][]float64, n),
		Risks:              make([]float64, n),
		MaxSingleBps:       o.MaxSingleBps,
		MinDiversification: o.MinDiversification,
		RiskTolerance:      o.Tolerance,
	}
	opts := o.Forecast
	opts.NonNegative = true
	sigma := make([]float64, n) // forecast error standard deviation, from the 80 % interval
	for i := range n {
		// Too short a history for a forecast: today's APY is the expectation.
		in.ExpectedApyBps[i] = b.APYBps[i][t]
		if t+1 >= max(opts.MinObservations, fcDefaultMinObs) {
			util := make([]float64, t+1) // the global model reads the utilisation
			for j := range util {
				util[j] = min(max(b.UtilizationBps[i][j]/10_000, 0), 1)
			}
			f, err := ForecastSeries(Series{Days: b.Days[:t+1], Values: b.APYBps[i][:t+1], Utilization: util}, b.Days[t], horizon, opts)
			if err != nil {
				return nil, fmt.Errorf("forecast %s: %w", b.Reserves[i], err)
			}
			in.ExpectedApyBps[i] = f.Point
			sigma[i] = (f.Upper80 - f.Lower80) / (2 * z80)
		}
		in.Histories[i] = b.APYBps[i][lo : t+1]
		s, err := ScoreRisk(b.RiskInputsAt(i, t), o.Params)
		if err != nil {
			return nil, err
		}
		in.Risks[i] = float64(s.Score)
	}
	if t-lo < 1 {
		in.Histories = nil // one day has no covariance to estimate
	}
	a, err := Optimize(in)
	if err != nil {
		return nil, err
	}
	w := make([]float64, n)
	for i, bps := range a.WeightsBps {
		w[i] = float64(bps) / 10_000
	}
	if current == nil {
		return w, nil
	}
	held, err := RoundBps(current, 10_000, nil, nil)
	if err != nil {
		return nil, err
	}
	payback := o.PaybackDays
	if payback <= 0 {
		payback = 30
	}
	r, err := SuggestRebalance(RebalanceInput{
		CurrentBps: held, TargetBps: a.WeightsBps, ExpectedApyBps: in.ExpectedApyBps, ApySigmaBps: sigma,
		PortfolioValueUsd: 1, SlippageBps: o.SlippageBps, HorizonDays: payback, ThresholdBps: o.ThresholdBps,
	})
	if err != nil {
		return nil, err
	}
	if !r.ClearsThreshold {
		return current, nil
	}
	return w, nil
}
