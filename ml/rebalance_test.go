package ml

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
)

// rbtBase moves 2000 bps from a 500 bps protocol to an 800 bps one in a
// $100,000 portfolio: gross 2000/10000·300 = 60 bps a year; cost $5 gas ×
// 2 trades + 10 bps slippage on $40,000 traded = $50 = 5 bps.
func rbtBase() RebalanceInput {
	return RebalanceInput{
		CurrentBps:        []int{6000, 4000},
		TargetBps:         []int{4000, 6000},
		ExpectedApyBps:    []float64{500, 800},
		PortfolioValueUsd: 100_000,
		GasCostUsdPerMove: 5,
		SlippageBps:       10,
		ThresholdBps:      20,
	}
}

func TestSuggestRebalanceHandComputed(t *testing.T) {
	t.Parallel()
	trades := []Trade{{Protocol: 0, DeltaBps: -2000, AmountUsd: -20000}, {Protocol: 1, DeltaBps: 2000, AmountUsd: 20000}}
	tests := []struct {
		name   string
		mutate func(*RebalanceInput)
		want   Rebalance
	}{
		{
			// Net = 60 − 5·365/365 = 55; E ~ N(0, 0.2²·(100² + 200²)) =
			// N(0, 2000), so Confidence = Φ(55/√2000).
			name:   "a year, normal errors",
			mutate: func(in *RebalanceInput) { in.ApySigmaBps = []float64{100, 200} },
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 55,
				BreakEvenDays: 5 / (60.0 / 365), ClearsThreshold: true, Confidence: 0.8906209977333038},
		},
		{
			// Over 30 days the cost counts 365/30 times: Net = 60 − 60.83.
			name: "30 days, normal errors",
			mutate: func(in *RebalanceInput) {
				in.ApySigmaBps = []float64{100, 200}
				in.HorizonDays = 30
			},
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 60 - 5*365.0/30,
				BreakEvenDays: 5 / (60.0 / 365), Confidence: 0.4925665796933056},
		},
		{
			// E_k = 0.2·(e1 − e0) = {−40, 20, 60, −6}; it must exceed
			// −Net = 0.83: two dates of four.
			name: "30 days, past errors",
			mutate: func(in *RebalanceInput) {
				in.ApyErrorBps = [][]float64{{100, -50, 0, 20}, {-100, 50, 300, -10}}
				in.HorizonDays = 30
			},
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 60 - 5*365.0/30,
				BreakEvenDays: 5 / (60.0 / 365), Confidence: 0.5},
		},
		{
			// Over a year −Net = −55 and every past date clears it.
			name: "a year, past errors",
			mutate: func(in *RebalanceInput) {
				in.ApyErrorBps = [][]float64{{100, -50, 0, 20}, {-100, 50, 300, -10}}
			},
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 55,
				BreakEvenDays: 5 / (60.0 / 365), ClearsThreshold: true, Confidence: 1},
		},
		{
			name:   "threshold above the net gain",
			mutate: func(in *RebalanceInput) { in.ThresholdBps = 56 },
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 55,
				BreakEvenDays: 5 / (60.0 / 365), Confidence: 1},
		},
		{
			name:   "threshold equal to the net gain",
			mutate: func(in *RebalanceInput) { in.ThresholdBps = 55 },
			want: Rebalance{Trades: trades, GrossImprovementBps: 60, CostUsd: 50, CostBps: 5, NetImprovementBps: 55,
				BreakEvenDays: 5 / (60.0 / 365), ClearsThreshold: true, Confidence: 1},
		},
		{
			name:   "nothing to do",
			mutate: func(in *RebalanceInput) { in.TargetBps = in.CurrentBps },
			want:   Rebalance{},
		},
		{
			// Gross −60, so the move never pays: break-even never, and the
			// forecasts without errors say it surely loses.
			name:   "worse target",
			mutate: func(in *RebalanceInput) { in.CurrentBps, in.TargetBps = in.TargetBps, in.CurrentBps },
			want: Rebalance{
				Trades:              []Trade{{Protocol: 1, DeltaBps: -2000, AmountUsd: -20000}, {Protocol: 0, DeltaBps: 2000, AmountUsd: 20000}},
				GrossImprovementBps: -60, CostUsd: 50, CostBps: 5, NetImprovementBps: -65, BreakEvenDays: math.Inf(1),
			},
		},
		{
			// Withdrawals first, then deposits, each by index; $0 gas, 30 bps
			// slippage on 12000 bps of $1M traded = $3600 = 36 bps; gross =
			// (−5000·400 + 6000·900 − 1000·700)/10000 = 270.
			name: "three protocols",
			mutate: func(in *RebalanceInput) {
				in.CurrentBps, in.TargetBps = []int{5000, 0, 5000}, []int{0, 6000, 4000}
				in.ExpectedApyBps = []float64{400, 900, 700}
				in.PortfolioValueUsd, in.GasCostUsdPerMove, in.SlippageBps = 1_000_000, 0, 30
			},
			want: Rebalance{
				Trades: []Trade{{Protocol: 0, DeltaBps: -5000, AmountUsd: -500000}, {Protocol: 2, DeltaBps: -1000, AmountUsd: -100000},
					{Protocol: 1, DeltaBps: 6000, AmountUsd: 600000}},
				GrossImprovementBps: 270, CostUsd: 3600, CostBps: 36, NetImprovementBps: 234, BreakEvenDays: 36 / (270.0 / 365),
				ClearsThreshold: true, Confidence: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := rbtBase()
			tt.mutate(&in)
			got, err := SuggestRebalance(in)
			if err != nil {
				t.Fatalf("SuggestRebalance(%s) error %v", tt.name, err)
			}
			if !reflect.DeepEqual(got.Trades, tt.want.Trades) && (len(got.Trades) > 0 || len(tt.want.Trades) > 0) {
				t.Errorf("SuggestRebalance(%s).Trades = %v, want %v", tt.name, got.Trades, tt.want.Trades)
			}
			near := func(a, b float64) bool { return a == b || math.Abs(a-b) <= 1e-9*(1+math.Abs(b)) }
			if !near(got.GrossImprovementBps, tt.want.GrossImprovementBps) || !near(got.CostUsd, tt.want.CostUsd) ||
				!near(got.CostBps, tt.want.CostBps) || !near(got.NetImprovementBps, tt.want.NetImprovementBps) ||
				!near(got.BreakEvenDays, tt.want.BreakEvenDays) || got.ClearsThreshold != tt.want.ClearsThreshold ||
				!near(got.Confidence, tt.want.Confidence) {
				got.Trades, tt.want.Trades = nil, nil
				t.Errorf("SuggestRebalance(%s) = %+v, want %+v", tt.name, got, tt.want)
			}
		})
	}
}

func TestSuggestRebalanceSimulated(t *testing.T) {
	t.Parallel()
	// Protocol 0 has four past errors, protocol 1 only σ = 150: the
	// confidence is simulated. Exactly it is the mean over the samples of
	// P(0.2·150·Z > −Net + 0.2·e0[k]).
	in := rbtBase()
	in.HorizonDays = 30
	in.ApyErrorBps = [][]float64{{100, -50, 0, 20}, nil}
	in.ApySigmaBps = []float64{0, 150}
	in.Seed = 7
	got, err := SuggestRebalance(in)
	if err != nil {
		t.Fatal(err)
	}
	net := got.NetImprovementBps
	var exact float64
	for _, e0 := range in.ApyErrorBps[0] {
		// E = −0.2·e0 + 0.2·ε1 > −net  ⇔  ε1 > (−net + 0.2·e0)/0.2.
		z := (-net + 0.2*e0) / 0.2 / 150
		exact += 0.5 * math.Erfc(z/math.Sqrt2) / 4
	}
	if se := math.Sqrt(exact * (1 - exact) / rebalanceDraws); math.Abs(got.Confidence-exact) > 4*se {
		t.Errorf("SuggestRebalance(mixed).Confidence = %v, exact %v (±%v)", got.Confidence, exact, 4*se)
	}
	again, _ := SuggestRebalance(in)
	if again.Confidence != got.Confidence {
		t.Errorf("SuggestRebalance(mixed, seed 7) = %v then %v, want the same", got.Confidence, again.Confidence)
	}
	// Unequal sample lengths: independent resampling; exactly the mean of
	// the indicator over all pairs of samples.
	in.ApyErrorBps = [][]float64{{100, -50, 0, 20}, {-100, 50, 300}}
	in.ApySigmaBps = nil
	got, err = SuggestRebalance(in)
	if err != nil {
		t.Fatal(err)
	}
	exact = 0
	for _, e0 := range in.ApyErrorBps[0] {
		for _, e1 := range in.ApyErrorBps[1] {
			if 0.2*(e1-e0) > -net {
				exact += 1.0 / 12
			}
		}
	}
	if se := math.Sqrt(exact * (1 - exact) / rebalanceDraws); math.Abs(got.Confidence-exact) > 4*se {
		t.Errorf("SuggestRebalance(unequal lengths).Confidence = %v, exact %v (±%v)", got.Confidence, exact, 4*se)
	}
}

// rbtWorld is a synthetic world whose forecast errors have a known
// distribution: each protocol's error is s_i·(c·Z + √(1−c²)·U_i) with Z
// and U_i independent, standardised and skewed (Exp(1) − 1) when skewed,
// else standard normal; with correlated it shares Z across protocols.
type rbtWorld struct {
	s          []float64
	c          float64
	skewed     bool
	correlated bool
}

func (w rbtWorld) draw(rng *rand.Rand, out []float64) {
	std := func() float64 {
		if w.skewed {
			return rng.ExpFloat64() - 1
		}
		return rng.NormFloat64()
	}
	z := std()
	for i := range out {
		if !w.correlated {
			z = std()
		}
		out[i] = w.s[i] * (w.c*z + math.Sqrt(1-w.c*w.c)*std())
	}
}

// rbtCalibration runs cases cases in a world made by mode: "samples"
// (aligned past errors, correlated and skewed), "sigma" (independent normal
// errors, their σ given), or "overconfident" (past errors shrunk to a
// third). It returns the mean confidence and the fraction of cases whose
// realised improvement beat the cost, overall and in the cases with
// confidence below and at or above 0.5.
func rbtCalibration(cases int, mode string, seed uint64) (meanConf, hitRate float64, lowConf, lowHit, highConf, highHit float64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	var nLow, nHigh int
	for c := 0; c < cases; c++ {
		n := 2 + rng.IntN(4)
		in := RebalanceInput{
			CurrentBps: rbtRandomBps(rng, n), TargetBps: rbtRandomBps(rng, n),
			ExpectedApyBps: make([]float64, n), PortfolioValueUsd: 100_000,
			HorizonDays: []int{7, 30, 90, 365}[rng.IntN(4)], Seed: uint64(c),
		}
		world := rbtWorld{s: make([]float64, n), c: 0.6, skewed: true, correlated: true}
		if mode == "sigma" {
			world.c, world.skewed, world.correlated = 0, false, false
		}
		for i := range world.s {
			in.ExpectedApyBps[i] = 300 + 1200*rng.Float64()
			world.s[i] = 30 + 200*rng.Float64()
		}
		switch mode {
		case "sigma":
			in.ApySigmaBps = world.s
		default:
			const past = 150
			in.ApyErrorBps = make([][]float64, n)
			for i := range in.ApyErrorBps {
				in.ApyErrorBps[i] = make([]float64, past)
			}
			e := make([]float64, n)
			for k := 0; k < past; k++ {
				world.draw(rng, e)
				for i := range e {
					if mode == "overconfident" {
						e[i] /= 3
					}
					in.ApyErrorBps[i][k] = e[i]
				}
			}
		}
		// A cost that puts the net gain within about two error standard
		// deviations of zero, so that confidences spread over (0, 1).
		var gross, v float64
		for i := range in.CurrentBps {
			d := float64(in.TargetBps[i]-in.CurrentBps[i]) / 10000
			gross += d * in.ExpectedApyBps[i]
			v += d * d * world.s[i] * world.s[i]
		}
		net := math.Sqrt(v) * (4*rng.Float64() - 1.5)
		costBps := math.Max(0, (gross-net)*float64(in.HorizonDays)/365)
		in.GasCostUsdPerMove = costBps / 10000 * in.PortfolioValueUsd / float64(rbtMoves(in))
		r, err := SuggestRebalance(in)
		if err != nil {
			panic(err)
		}
		if len(r.Trades) == 0 {
			continue
		}
		// The truth: one fresh draw of the errors over the horizon.
		e := make([]float64, n)
		world.draw(rng, e)
		realised := r.GrossImprovementBps - r.CostBps*365/float64(in.HorizonDays)
		for i := range e {
			realised += float64(in.TargetBps[i]-in.CurrentBps[i]) / 10000 * e[i]
		}
		hit := 0.0
		if realised > 0 {
			hit = 1
		}
		meanConf += r.Confidence
		hitRate += hit
		if r.Confidence < 0.5 {
			lowConf, lowHit, nLow = lowConf+r.Confidence, lowHit+hit, nLow+1
		} else {
			highConf, highHit, nHigh = highConf+r.Confidence, highHit+hit, nHigh+1
		}
	}
	total := float64(nLow + nHigh)
	return meanConf / total, hitRate / total, lowConf / float64(nLow), lowHit / float64(nLow), highConf / float64(nHigh), highHit / float64(nHigh)
}

// rbtRandomBps draws an allocation of n protocols summing to 10000, with
// some zero weights.
func rbtRandomBps(rng *rand.Rand, n int) []int {
	out := make([]int, n)
	rest := 10000
	for i := 0; i < n-1; i++ {
		if rng.IntN(4) == 0 {
			continue
		}
		out[i] = rng.IntN(rest + 1)
		rest -= out[i]
	}
	out[n-1] += rest
	return out
}

// rbtMoves counts the protocols whose weight changes, at least 1.
func rbtMoves(in RebalanceInput) int {
	k := 0
	for i := range in.CurrentBps {
		if in.CurrentBps[i] != in.TargetBps[i] {
			k++
		}
	}
	return max(k, 1)
}

func TestSuggestRebalanceCalibrated(t *testing.T) {
	t.Parallel()
	// 3000 cases: the standard error of a hit rate is at most 0.009
	// overall and about 0.013 in each half.
	for _, mode := range []string{"samples", "sigma"} {
		conf, hit, lc, lh, hc, hh := rbtCalibration(3000, mode, 50)
		if math.Abs(conf-hit) > 0.03 || math.Abs(lc-lh) > 0.05 || math.Abs(hc-hh) > 0.05 {
			t.Errorf("SuggestRebalance(%s) mean confidence %.3f vs hit rate %.3f; below 0.5: %.3f vs %.3f; above: %.3f vs %.3f",
				mode, conf, hit, lc, lh, hc, hh)
		}
		if lc > 0.4 || hc < 0.6 {
			t.Errorf("SuggestRebalance(%s) confidences barely spread (%.3f, %.3f): the check is weak", mode, lc, hc)
		}
	}
	// The check has teeth: errors a third of their true size make the
	// confidence extreme, which the same check catches.
	_, _, lc, lh, hc, hh := rbtCalibration(3000, "overconfident", 50)
	if math.Abs(lc-lh) <= 0.05 && math.Abs(hc-hh) <= 0.05 {
		t.Errorf("overconfident errors passed the calibration check: below 0.5 %.3f vs %.3f, above %.3f vs %.3f", lc, lh, hc, hh)
	}
}

func TestSuggestRebalanceInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		field  string // named in the message
		mutate func(*RebalanceInput)
	}{
		{"empty", "currentBps", func(in *RebalanceInput) { in.CurrentBps, in.TargetBps, in.ExpectedApyBps = nil, nil, nil }},
		{"target length", "targetBps", func(in *RebalanceInput) { in.TargetBps = []int{10000} }},
		{"apy length", "expectedApyBps", func(in *RebalanceInput) { in.ExpectedApyBps = []float64{1} }},
		{"current sum", "currentBps", func(in *RebalanceInput) { in.CurrentBps = []int{6000, 3999} }},
		{"target negative", "targetBps[0]", func(in *RebalanceInput) { in.TargetBps = []int{-1, 10001} }},
		{"apy NaN", "expectedApyBps[0]", func(in *RebalanceInput) { in.ExpectedApyBps[0] = math.NaN() }},
		{"error series count", "apyErrorBps", func(in *RebalanceInput) { in.ApyErrorBps = [][]float64{{1}} }},
		{"error NaN", "apyErrorBps[1][0]", func(in *RebalanceInput) { in.ApyErrorBps = [][]float64{{1}, {math.Inf(1)}} }},
		{"moved protocol without errors", "apyErrorBps[1]", func(in *RebalanceInput) { in.ApyErrorBps = [][]float64{{1, 2}, nil} }},
		{"sigma length", "apySigmaBps", func(in *RebalanceInput) { in.ApySigmaBps = []float64{1} }},
		{"sigma negative", "apySigmaBps[1]", func(in *RebalanceInput) { in.ApySigmaBps = []float64{1, -1} }},
		{"value zero", "portfolioValueUsd", func(in *RebalanceInput) { in.PortfolioValueUsd = 0 }},
		{"value NaN", "portfolioValueUsd", func(in *RebalanceInput) { in.PortfolioValueUsd = math.NaN() }},
		{"gas negative", "gasCostUsdPerMove", func(in *RebalanceInput) { in.GasCostUsdPerMove = -1 }},
		{"slippage negative", "slippageBps", func(in *RebalanceInput) { in.SlippageBps = -1 }},
		{"horizon negative", "horizonDays", func(in *RebalanceInput) { in.HorizonDays = -1 }},
		{"threshold negative", "thresholdBps", func(in *RebalanceInput) { in.ThresholdBps = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := rbtBase()
			tt.mutate(&in)
			_, err := SuggestRebalance(in)
			if obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Fatalf("SuggestRebalance(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
			}
			if msg := obsqra.ErrorMessage(err); !strings.Contains(msg, tt.field) {
				t.Errorf("SuggestRebalance(%s) message %q does not name %s", tt.name, msg, tt.field)
			}
		})
	}
}
