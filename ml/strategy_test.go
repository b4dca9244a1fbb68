package ml

import (
	"math"
	"testing"

	"github.com/obsqra/obsqra"
)

// testBasket has two reserves growing at constant rates of 3 % and 5 % a
// year (quoting 300 and 500 bps) over 401 consecutive days.
func testBasket(rateA, rateB func(day int) float64) *Basket {
	const days = 401
	b := &Basket{
		Name:           "test",
		Reserves:       []string{"a", "b"},
		Index:          [][]float64{make([]float64, days), make([]float64, days)},
		APYBps:         [][]float64{make([]float64, days), make([]float64, days)},
		UtilizationBps: [][]float64{make([]float64, days), make([]float64, days)},
		LiquidityTier:  []int64{2, 2},
		AuditScore:     []int64{90, 90},
		LaunchDay:      []obsqra.Date{-10000, -10000},
	}
	idx := []float64{1, 1}
	rates := []func(int) float64{rateA, rateB}
	for d := range days {
		b.Days = append(b.Days, obsqra.Date(20000+d))
		for i := range 2 {
			if d > 0 {
				idx[i] *= math.Exp(rates[i](d-1) / 365)
			}
			b.Index[i][d] = idx[i]
			b.APYBps[i][d] = rates[i](d) * 10_000
			b.UtilizationBps[i][d] = 5000
		}
	}
	return b
}

func constant(r float64) func(int) float64 { return func(int) float64 { return r } }

func TestRunStrategyYields(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05))
	years := float64(400-30) / 365
	tests := []struct {
		name      string
		s         Strategy
		cfg       BacktestConfig
		wantYield float64
		wantRebal int
	}{
		{"highest APY holds b", HighestAPY{}, BacktestConfig{}, 500, 0},
		{"highest APY pays 1 % once", HighestAPY{}, BacktestConfig{CostBps: 100}, 500 + math.Log(0.99)/years*10_000, 0},
		{
			// Never rebalanced: half in each, grown apart.
			"equal weight, threshold never reached", EqualWeight{}, BacktestConfig{ThresholdBps: 10_000},
			math.Log((math.Exp(0.03*years)+math.Exp(0.05*years))/2) / years * 10_000, 0,
		},
	}
	for _, tt := range tests {
		got, err := RunStrategy(b, tt.s, tt.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if math.Abs(got.RealisedYieldBps-tt.wantYield) > 1e-6 || got.Rebalances != tt.wantRebal {
			t.Errorf("%s: RunStrategy = %.9f bps, %d rebalances; want %.9f, %d",
				tt.name, got.RealisedYieldBps, got.Rebalances, tt.wantYield, tt.wantRebal)
		}
		if got.From != obsqra.Date(20030).String() || got.To != obsqra.Date(20400).String() {
			t.Errorf("%s: window %s–%s, want 30 days of warm-up to the last day", tt.name, got.From, got.To)
		}
	}

	// Rebalanced every week back to 50/50: a little over 400 bps, with a
	// small turnover (the weights drift by about 0.02 % a week).
	got, err := RunStrategy(b, EqualWeight{}, BacktestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got.RealisedYieldBps < 400 || got.RealisedYieldBps > 400.1 || got.Rebalances != 52 || got.Turnover <= 0 || got.Turnover > 0.02 {
		t.Errorf("weekly equal weight = %+v; want 400–400.1 bps, 52 rebalances, turnover in (0, 0.02]", got)
	}
	// Only the drift of the mix within a week moves the period yield.
	if got.VolatilityBps > 1e-3 {
		t.Errorf("constant rates give a volatility of %v bps, want about 0", got.VolatilityBps)
	}
}

func TestRunStrategyCannotLookAhead(t *testing.T) {
	t.Parallel()
	// b quotes (and earns) more than a only from day 200.
	b := testBasket(constant(0.03), func(d int) float64 {
		if d >= 200 {
			return 0.08
		}
		return 0.01
	})
	got, err := RunStrategy(b, HighestAPY{}, BacktestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Decisions fall on days 30, 37, …, 198, 205: a is held until 205.
	years := float64(370) / 365
	grow := 0.03*float64(205-30) + 0.08*float64(400-205)
	want := grow / 365 / years * 10_000
	if math.Abs(got.RealisedYieldBps-want) > 1e-6 || got.Rebalances != 1 || math.Abs(got.Turnover-1/years) > 1e-12 {
		t.Errorf("RunStrategy = %+v; want %.6f bps, 1 rebalance, turnover %.6f", got, want, 1/years)
	}
	// The yield of the periods fell from 800 to 300 bps at most… and rose;
	// the drawdown is measured from the running peak, so it is 0 here.
	if got.WorstDrawdownBps > 1e-6 {
		t.Errorf("drawdown = %v, want 0 for a yield that only rose", got.WorstDrawdownBps)
	}

	seen := &recorder{}
	if _, err := RunStrategy(b, seen, BacktestConfig{EveryDays: 10}); err != nil {
		t.Fatal(err)
	}
	for k, n := range seen.days {
		if want := 31 + 10*k; n != want {
			t.Fatalf("decision %d saw %d days, want %d", k, n, want)
		}
	}
}

type recorder struct{ days []int }

func (*recorder) Name() string { return "recorder" }
func (r *recorder) Target(b *Basket, _ []float64) ([]float64, error) {
	r.days = append(r.days, len(b.Days))
	return []float64{1, 0}, nil
}

func TestRunStrategyDrawdown(t *testing.T) {
	t.Parallel()
	// a earns 5 % until day 200, then 1 %: period yields fall by 400 bps.
	b := testBasket(func(d int) float64 {
		if d >= 200 {
			return 0.01
		}
		return 0.05
	}, constant(0))
	got, err := RunStrategy(b, recorderOf([]float64{1, 0}), BacktestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.WorstDrawdownBps-400) > 1e-6 || got.VolatilityBps < 150 {
		t.Errorf("RunStrategy = %+v, want a 400 bps drawdown and a volatility well above 0", got)
	}
}

type fixed []float64

func recorderOf(w []float64) fixed { return fixed(w) }
func (fixed) Name() string         { return "fixed" }
func (f fixed) Target(*Basket, []float64) ([]float64, error) {
	return append([]float64(nil), f...), nil
}

func TestParityStrategyIsTheContractAllocation(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05))
	// Each: utilization 5000 → 12, volatility 0, tier 2 → 15, audit 90 → 3,
	// age beyond the cap → 0: risk 30. s = 3000000/31 = 96774 and
	// 5000000/31 = 161290; 96774×10000/258064 = 3750 exactly; the last 6250.
	w, err := Parity{Params: obsqra.DefaultRiskParams()}.Target(b.prefix(100), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w[0] != 0.375 || w[1] != 0.625 {
		t.Errorf("Parity.Target = %v, want [0.375 0.625]", w)
	}
	in := b.RiskInputsAt(0, 99)
	if in != (RiskInputs{UtilizationBps: 5000, LiquidityTier: 2, AuditScore: 90, AgeDays: 30099}) {
		t.Errorf("RiskInputsAt = %+v", in)
	}
}

func TestRiskInputsAtVolatilityWindow(t *testing.T) {
	t.Parallel()
	// APY alternates 100/300 bps: over the trailing 30 days the sample
	// standard deviation is 100·√(30/29) = 101.7, rounded 102.
	b := testBasket(func(d int) float64 { return 0.01 + 0.02*float64(d%2) }, constant(0))
	if got := b.RiskInputsAt(0, 200).VolatilityBps; got != 102 {
		t.Errorf("volatility = %d, want 102", got)
	}
	// On the first day there is no spread yet.
	if got := b.RiskInputsAt(0, 0).VolatilityBps; got != 0 {
		t.Errorf("volatility on day 0 = %d, want 0", got)
	}
}

func TestRunStrategyRefusesBadBaskets(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05))
	b.Index[1][7] = 0
	if _, err := RunStrategy(b, EqualWeight{}, BacktestConfig{}); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("zero index: error = %v, want EINVALID", err)
	}
	short := testBasket(constant(0.03), constant(0.05)).prefix(20)
	if _, err := RunStrategy(short, EqualWeight{}, BacktestConfig{}); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("too short: error = %v, want EINVALID", err)
	}
	if _, err := RunStrategy(testBasket(constant(0.03), constant(0.05)), recorderOf([]float64{1}), BacktestConfig{}); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("wrong number of weights: error = %v, want EINVALID", err)
	}
}

func TestOptimizerStrategy(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05))
	o := Optimizer{Tolerance: obsqra.RiskMedium, MaxSingleBps: 6000, MinDiversification: 2, Params: obsqra.DefaultRiskParams()}
	w, err := o.Target(b.prefix(100), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Constant rates, equal risks: as much as the cap allows in b.
	if w[0] != 0.4 || w[1] != 0.6 {
		t.Errorf("Optimizer.Target = %v, want [0.4 0.6]", w)
	}
	got, err := RunStrategy(b, o, BacktestConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got.RealisedYieldBps < 419 || got.RealisedYieldBps > 421 || got.Strategy != "optimizer-MEDIUM" {
		t.Errorf("RunStrategy(optimizer) = %+v, want about 420 bps", got)
	}
	o.MaxSingleBps = 4000 // 2 × 4000 < 10000
	if _, err := o.Target(b.prefix(100), nil); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("infeasible cap: error = %v, want EINVALID", err)
	}
}

func TestOptimizerStrategyWithShortHistory(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05))
	o := Optimizer{Tolerance: obsqra.RiskHigh, MaxSingleBps: 10000, MinDiversification: 1, Params: obsqra.DefaultRiskParams()}
	for _, days := range []int{1, 2, 29} {
		w, err := o.Target(b.prefix(days), nil)
		if err != nil || w[1] != 1 {
			t.Errorf("Optimizer.Target on %d days = %v, %v; want everything in b", days, w, err)
		}
	}
}

func TestOptimizerStrategyMovesOnlyWhenItPays(t *testing.T) {
	t.Parallel()
	b := testBasket(constant(0.03), constant(0.05)).prefix(100)
	held := []float64{0.5, 0.5}
	// The optimum is 40/60: 0.1 × (500 − 300) = 20 bps a year gross.
	tests := []struct {
		slippage  float64
		threshold int
		move      bool
	}{
		{0, 0, true},
		{0, 20, true},
		{0, 21, false},
		// 100 bps on a turnover of 0.1 costs 10 bps, 121.7 bps a year
		// when repaid within 30 days: more than the gain.
		{100, 0, false},
		{1, 0, true}, // 0.1 bps, 1.2 a year
	}
	for _, tt := range tests {
		o := Optimizer{Tolerance: obsqra.RiskMedium, MaxSingleBps: 6000, MinDiversification: 2,
			Params: obsqra.DefaultRiskParams(), SlippageBps: tt.slippage, ThresholdBps: tt.threshold}
		w, err := o.Target(b, held)
		if err != nil {
			t.Fatal(err)
		}
		if moved := w[1] == 0.6; moved != tt.move || (!moved && w[1] != 0.5) {
			t.Errorf("slippage %v, threshold %d: Target = %v, want a move: %v", tt.slippage, tt.threshold, w, tt.move)
		}
	}
}

func TestZ80(t *testing.T) {
	t.Parallel()
	if want := math.Sqrt2 * math.Erfinv(0.8); math.Abs(z80-want) > 1e-15 {
		t.Errorf("z80 = %v, want √2·erf⁻¹(0.8) = %v", z80, want)
	}
}

func TestVolatilityBps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{500}, 0},
		{[]float64{100, 200, 300}, 100}, // sample (n − 1) standard deviation
		{[]float64{400, 400, 400}, 0},
	}
	for _, tt := range tests {
		if got := VolatilityBps(tt.in); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("VolatilityBps(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
