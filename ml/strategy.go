package ml

import (
	"math"

	"github.com/obsqra/obsqra"
)

// Basket is a set of reserves observed on the same days, for a strategy
// backtest. Index is the ground truth: the yield a holder of reserve i
// earned from Days[t] to Days[u] is Index[i][u] / Index[i][t]. APYBps and
// UtilizationBps are what a strategy may look at (only up to the decision
// day); AuditScore and LaunchDay feed the risk score.
type Basket struct {
	Name           string
	Reserves       []string
	Days           []obsqra.Date
	Index          [][]float64   // [reserve][day], cumulative supply index
	APYBps         [][]float64   // [reserve][day], quoted supply APY in bps
	UtilizationBps [][]float64   // [reserve][day]
	LiquidityTier  []int64       // per reserve; 2 when TVL is unknown
	AuditScore     []int64       // per reserve
	LaunchDay      []obsqra.Date // per reserve
}

// Validate checks shapes, finite values and positive indices.
func (b *Basket) Validate() error {
	n, m := len(b.Reserves), len(b.Days)
	if n == 0 || m < 2 {
		return obsqra.Errorf(obsqra.EINVALID, "basket %s needs at least one reserve and two days", b.Name)
	}
	if len(b.Index) != n || len(b.APYBps) != n || len(b.UtilizationBps) != n ||
		len(b.LiquidityTier) != n || len(b.AuditScore) != n || len(b.LaunchDay) != n {
		return obsqra.Errorf(obsqra.EINVALID, "basket %s: every per-reserve slice needs %d entries", b.Name, n)
	}
	for t := 1; t < m; t++ {
		if b.Days[t] <= b.Days[t-1] {
			return obsqra.Errorf(obsqra.EINVALID, "basket %s: days are not increasing at %s", b.Name, b.Days[t])
		}
	}
	for i := range n {
		if len(b.Index[i]) != m || len(b.APYBps[i]) != m || len(b.UtilizationBps[i]) != m {
			return obsqra.Errorf(obsqra.EINVALID, "basket %s: reserve %s needs %d days of data", b.Name, b.Reserves[i], m)
		}
		for t := range m {
			if !(b.Index[i][t] > 0) || math.IsInf(b.Index[i][t], 0) || !finite(b.APYBps[i][t]) || !finite(b.UtilizationBps[i][t]) {
				return obsqra.Errorf(obsqra.EINVALID, "basket %s: reserve %s has a bad value on %s", b.Name, b.Reserves[i], b.Days[t])
			}
		}
	}
	return nil
}

// VolatilityWindowDays is the window of the risk score's volatility: the
// standard deviation of the daily APY over the trailing 30 days.
const VolatilityWindowDays = 30

// VolatilityBps is the risk score's volatility input from the daily APYs
// (bps) of a window: their sample standard deviation (n − 1), 0 with fewer
// than two days. Market ingestion and the backtests both call it, so a
// backtested score is the score the server stores.
func VolatilityBps(dailyApyBps []float64) float64 {
	n := len(dailyApyBps)
	if n < 2 {
		return 0
	}
	var m float64
	for _, x := range dailyApyBps {
		m += x
	}
	m /= float64(n)
	var ss float64
	for _, x := range dailyApyBps {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss / float64(n-1))
}

// RiskInputsAt returns reserve i's risk-score inputs on day index t, from
// data up to t only: utilization, the trailing 30-day standard deviation of
// the APY, the liquidity tier, the audit score and the age.
func (b *Basket) RiskInputsAt(i, t int) RiskInputs {
	lo := t
	for lo > 0 && b.Days[t]-b.Days[lo-1] < VolatilityWindowDays {
		lo--
	}
	vol := VolatilityBps(b.APYBps[i][lo : t+1])
	age := int64(b.Days[t] - b.LaunchDay[i])
	return RiskInputs{
		UtilizationBps: clampInt(math.Round(b.UtilizationBps[i][t]), 0, 10_000),
		VolatilityBps:  clampInt(math.Round(vol), 0, 1_000_000),
		LiquidityTier:  min(max(b.LiquidityTier[i], 0), 3),
		AuditScore:     min(max(b.AuditScore[i], 0), 100),
		AgeDays:        min(max(age, 0), 36_500),
	}
}

func clampInt(v float64, lo, hi int64) int64 {
	return int64(math.Max(float64(lo), math.Min(float64(hi), v)))
}

// stdDev is the population standard deviation (0 for fewer than 2 values).
func stdDev(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss / float64(len(xs)))
}

// Strategy chooses target weights (fractions summing to 1) on the last day
// of the basket it is given, knowing the weights held now (nil before the
// first investment). RunStrategy hands it only the days up to the
// decision, so no strategy can look ahead. Returning the current weights
// means "stay".
type Strategy interface {
	Name() string
	Target(b *Basket, current []float64) ([]float64, error)
}

// prefix returns b restricted to its first m days, sharing memory.
func (b *Basket) prefix(m int) *Basket {
	p := *b
	p.Days = b.Days[:m:m]
	p.Index = make([][]float64, len(b.Reserves))
	p.APYBps = make([][]float64, len(b.Reserves))
	p.UtilizationBps = make([][]float64, len(b.Reserves))
	for i := range b.Reserves {
		p.Index[i] = b.Index[i][:m:m]
		p.APYBps[i] = b.APYBps[i][:m:m]
		p.UtilizationBps[i] = b.UtilizationBps[i][:m:m]
	}
	return &p
}

// last is the index of the basket's last day: the decision day.
func (b *Basket) last() int { return len(b.Days) - 1 }

// EqualWeight holds every reserve in equal parts.
type EqualWeight struct{}

// Name implements Strategy.
func (EqualWeight) Name() string { return "equal" }

// Target implements Strategy.
func (EqualWeight) Target(b *Basket, _ []float64) ([]float64, error) {
	w := make([]float64, len(b.Reserves))
	for i := range w {
		w[i] = 1 / float64(len(w))
	}
	return w, nil
}

// HighestAPY puts everything in the reserve quoting the highest APY on the
// decision day (the first on ties).
type HighestAPY struct{}

// Name implements Strategy.
func (HighestAPY) Name() string { return "highest-apy" }

// Target implements Strategy.
func (HighestAPY) Target(b *Basket, _ []float64) ([]float64, error) {
	t := b.last()
	best := 0
	for i := range b.Reserves {
		if b.APYBps[i][t] > b.APYBps[best][t] {
			best = i
		}
	}
	w := make([]float64, len(b.Reserves))
	w[best] = 1
	return w, nil
}

// Parity is the on-chain contract's allocation: risk scores by ScoreRisk
// with Params, APYs rounded to integer bps, weights by ParityAllocation.
type Parity struct{ Params obsqra.RiskParams }

// Name implements Strategy.
func (Parity) Name() string { return "parity" }

// Target implements Strategy.
func (p Parity) Target(b *Basket, _ []float64) ([]float64, error) {
	t := b.last()
	n := len(b.Reserves)
	risks, apys := make([]int64, n), make([]int64, n)
	for i := range n {
		s, err := ScoreRisk(b.RiskInputsAt(i, t), p.Params)
		if err != nil {
			return nil, err
		}
		risks[i] = s.Score
		apys[i] = clampInt(math.Round(b.APYBps[i][t]), 0, maxParityAPY)
	}
	wb, err := ParityAllocation(risks, apys)
	if err != nil {
		return nil, err
	}
	w := make([]float64, n)
	for i := range wb {
		w[i] = float64(wb[i]) / 10_000
	}
	return w, nil
}

// BacktestConfig says how a strategy is run over a basket.
type BacktestConfig struct {
	WarmupDays   int     // days of history before the first decision; default 30
	EveryDays    int     // calendar days between decisions; default 7
	ThresholdBps int     // rebalance only when the one-way turnover to the target is at least this; 0 always
	CostBps      float64 // cost of trading, in bps of the traded notional (gas and slippage together)
}

func (c *BacktestConfig) defaults() {
	if c.WarmupDays <= 0 {
		c.WarmupDays = 30
	}
	if c.EveryDays <= 0 {
		c.EveryDays = 7
	}
}

// StrategyResult is what a strategy earned over a basket's history.
type StrategyResult struct {
	Strategy     string `json:"strategy"`
	Basket       string `json:"basket"`
	ThresholdBps int    `json:"thresholdBps"`
	From         string `json:"from"`
	To           string `json:"to"`
	// RealisedYieldBps is the annualised log growth of the portfolio, net
	// of trading costs, measured on the liquidity indices.
	RealisedYieldBps float64 `json:"realisedYieldBps"`
	// VolatilityBps is the standard deviation of the realised yield of each
	// decision period, annualised (bps). The indices carry 6 decimals, so
	// a 7-day period's yield has a resolution of about ±5 bps.
	VolatilityBps float64 `json:"volatilityBps"`
	// WorstDrawdownBps is the largest fall of the period yield from its
	// running peak (bps of APY): how far the yield sank below its best.
	WorstDrawdownBps float64 `json:"worstDrawdownBps"`
	// Turnover is the one-way traded fraction of the portfolio per year.
	Turnover   float64 `json:"turnover"`
	Rebalances int     `json:"rebalances"`
	CostBps    float64 `json:"costBps"` // total trading cost, bps of the final value
}

// RunStrategy replays strategy s over basket b: after the warm-up it
// invests at the first decision day, lets every holding grow with its
// reserve's liquidity index, and at each later decision day moves to the
// strategy's target when the turnover reaches the threshold, paying
// CostBps on the traded notional. Decisions see only data up to their day.
func RunStrategy(b *Basket, s Strategy, cfg BacktestConfig) (StrategyResult, error) {
	if err := b.Validate(); err != nil {
		return StrategyResult{}, err
	}
	cfg.defaults()
	if cfg.ThresholdBps < 0 || cfg.CostBps < 0 || !finite(cfg.CostBps) {
		return StrategyResult{}, obsqra.Errorf(obsqra.EINVALID, "threshold and cost must not be negative")
	}
	start := -1
	for t := range b.Days {
		if int(b.Days[t]-b.Days[0]) >= cfg.WarmupDays {
			start = t
			break
		}
	}
	if start < 0 || start >= len(b.Days)-1 {
		return StrategyResult{}, obsqra.Errorf(obsqra.EINVALID, "basket %s is too short for a %d-day warm-up", b.Name, cfg.WarmupDays)
	}
	n := len(b.Reserves)
	res := StrategyResult{Strategy: s.Name(), Basket: b.Name, ThresholdBps: cfg.ThresholdBps,
		From: b.Days[start].String(), To: b.Days[len(b.Days)-1].String()}

	hold := make([]float64, n)
	value, cost, traded := 1.0, 0.0, 0.0
	rebalance := func(t int, first bool) error {
		var current []float64
		if !first {
			current = make([]float64, n)
			for i := range n {
				current[i] = hold[i] / value
			}
		}
		target, err := s.Target(b.prefix(t+1), current)
		if err != nil {
			return err
		}
		if len(target) != n {
			return obsqra.Errorf(obsqra.EINVALID, "strategy %s gave %d weights for %d reserves", s.Name(), len(target), n)
		}
		var turnover float64
		for i := range n {
			turnover += math.Abs(target[i] - hold[i]/value)
		}
		turnover /= 2
		if first {
			turnover = 1 // the initial purchase
		} else if turnover*10_000 < float64(cfg.ThresholdBps) || turnover == 0 {
			return nil
		}
		c := turnover * value * cfg.CostBps / 10_000
		if !first {
			traded += turnover
			res.Rebalances++
		}
		cost += c
		value -= c
		for i := range n {
			hold[i] = target[i] * value
		}
		return nil
	}
	if err := rebalance(start, true); err != nil {
		return StrategyResult{}, err
	}
	var periods []float64 // annualised log yield of each decision period
	periodStart, periodValue := start, value
	next := b.Days[start] + obsqra.Date(cfg.EveryDays)
	for t := start + 1; t < len(b.Days); t++ {
		value = 0
		for i := range n {
			hold[i] *= b.Index[i][t] / b.Index[i][t-1]
			value += hold[i]
		}
		if b.Days[t] >= next || t == len(b.Days)-1 {
			years := float64(b.Days[t]-b.Days[periodStart]) / 365
			periods = append(periods, math.Log(value/periodValue)/years*10_000)
			if t < len(b.Days)-1 {
				if err := rebalance(t, false); err != nil {
					return StrategyResult{}, err
				}
			}
			periodStart, periodValue = t, value
			next = b.Days[t] + obsqra.Date(cfg.EveryDays)
		}
	}
	years := float64(b.Days[len(b.Days)-1]-b.Days[start]) / 365
	res.RealisedYieldBps = math.Log(value) / years * 10_000
	res.VolatilityBps = stdDev(periods)
	peak := math.Inf(-1)
	for _, p := range periods {
		peak = math.Max(peak, p)
		res.WorstDrawdownBps = math.Max(res.WorstDrawdownBps, peak-p)
	}
	res.Turnover = traded / years
	res.CostBps = cost / value * 10_000
	return res, nil
}
