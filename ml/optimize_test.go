package ml

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

func TestRiskAversionFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        obsqra.RiskTolerance
		lambda    float64
		rho       float64
		wantError bool
	}{
		{obsqra.RiskLow, 0.005, 10, false},
		{obsqra.RiskMedium, 0.002, 4, false},
		{obsqra.RiskHigh, 0.0005, 1, false},
		{"", 0, 0, true},
		{"low", 0, 0, true},
	}
	for _, tt := range tests {
		lambda, rho, err := RiskAversionFor(tt.in)
		if tt.wantError {
			if obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Errorf("RiskAversionFor(%q) error = %v, want %s", tt.in, err, obsqra.EINVALID)
			}
			continue
		}
		if err != nil || lambda != tt.lambda || rho != tt.rho {
			t.Errorf("RiskAversionFor(%q) = %v, %v, %v, want %v, %v, nil", tt.in, lambda, rho, err, tt.lambda, tt.rho)
		}
	}
}

// optConcentrated is a case whose continuous optimum holds two protocols:
// one far better than the rest, capped at 60 %.
func optConcentrated() OptimizeInput {
	return OptimizeInput{
		ExpectedApyBps:     []float64{1800, 900, 700, 650, 600, 500},
		Covariance:         mat.NewSymDense(6, []float64{90000, 0, 0, 0, 0, 0, 0, 2500, 0, 0, 0, 0, 0, 0, 6400, 0, 0, 0, 0, 0, 0, 3600, 0, 0, 0, 0, 0, 0, 1600, 0, 0, 0, 0, 0, 0, 900}),
		Risks:              []float64{40, 20, 30, 25, 15, 10},
		MaxSingleBps:       6000,
		MinDiversification: 4,
		RiskTolerance:      obsqra.RiskHigh,
	}
}

func TestOptimizeDiversifies(t *testing.T) {
	t.Parallel()
	in := optConcentrated()
	free := in
	free.MinDiversification = 0
	base, err := Optimize(free)
	if err != nil {
		t.Fatalf("Optimize(no diversification) error %v", err)
	}
	if k := divCount(base.Weights); k >= 4 {
		t.Fatalf("Optimize(no diversification) holds %d protocols of ≥ 1000 bps: %v; the case must concentrate", k, base.Weights)
	}
	if base.Diversified {
		t.Errorf("Optimize(no diversification).Diversified = true, want false")
	}
	got, err := Optimize(in)
	if err != nil {
		t.Fatalf("Optimize error %v", err)
	}
	if !got.Diversified || !got.SearchComplete {
		t.Errorf("Optimize.Diversified, SearchComplete = %v, %v, want true, true", got.Diversified, got.SearchComplete)
	}
	if k := divCount(got.Weights); k < 4 {
		t.Errorf("Optimize.Weights = %v holds %d protocols of ≥ 0.1, want ≥ 4", got.Weights, k)
	}
	w64 := make([]int64, len(got.WeightsBps))
	for i, v := range got.WeightsBps {
		w64[i] = int64(v)
	}
	if !CheckConstraints(w64, int64(in.MaxSingleBps), int64(in.MinDiversification)) {
		t.Errorf("CheckConstraints(%v, %d, %d) = false, want true", got.WeightsBps, in.MaxSingleBps, in.MinDiversification)
	}
	if got.Objective > base.Objective+1e-9 {
		t.Errorf("Optimize.Objective = %v above the unconstrained %v", got.Objective, base.Objective)
	}
	// The best protocol keeps as much as the others' floors leave it.
	if got.Weights[0] < 0.5 {
		t.Errorf("Optimize.Weights[0] = %v, want the leader to keep ≥ 0.5", got.Weights[0])
	}
}

// optBruteForce returns the best continuous objective over all supports
// of m floors, solving one QP per m-subset.
func optBruteForce(t *testing.T, p QP, capW float64, m int) float64 {
	t.Helper()
	n := len(p.Mu)
	best := math.Inf(-1)
	p.Upper = make([]float64, n)
	for i := range p.Upper {
		p.Upper[i] = capW
	}
	for mask := 0; mask < 1<<n; mask++ {
		if bits.OnesCount(uint(mask)) != m {
			continue
		}
		p.Lower = make([]float64, n)
		for i := 0; i < n; i++ {
			if mask&(1<<i) != 0 {
				p.Lower[i] = 0.1
			}
		}
		sol, err := solveQP(p)
		if err != nil {
			t.Fatalf("brute force solveQP error %v", err)
		}
		best = math.Max(best, sol.Objective)
	}
	return best
}

// optRandom draws a random Optimize input with n protocols.
func optRandom(rng *rand.Rand, n int) OptimizeInput {
	in := OptimizeInput{ExpectedApyBps: make([]float64, n), Risks: make([]float64, n), Histories: make([][]float64, n)}
	const days = 30
	common := make([]float64, days)
	for k := range common {
		common[k] = 80 * rng.NormFloat64()
	}
	for i := 0; i < n; i++ {
		in.ExpectedApyBps[i] = 100 + 1900*rng.Float64()
		if rng.IntN(4) == 0 {
			in.ExpectedApyBps[i] = 2500 + 1000*rng.Float64() // a standout
		}
		in.Risks[i] = float64(rng.IntN(101))
		sd := 20 + 280*rng.Float64()
		beta := rng.Float64()
		in.Histories[i] = make([]float64, days)
		for k := range in.Histories[i] {
			in.Histories[i][k] = in.ExpectedApyBps[i] + beta*common[k] + sd*rng.NormFloat64()
		}
	}
	minCap := max(1000, (10000+n-1)/n)
	in.MaxSingleBps = minCap + rng.IntN(10001-minCap)
	in.MinDiversification = rng.IntN(min(n, 10) + 1)
	in.RiskTolerance = []obsqra.RiskTolerance{"", obsqra.RiskLow, obsqra.RiskMedium, obsqra.RiskHigh}[rng.IntN(4)]
	return in
}

func TestOptimizeMatchesSupportEnumeration(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(17, 18))
	var diversified int
	for trial := 0; trial < 400; trial++ {
		n := 2 + rng.IntN(9)
		in := optRandom(rng, n)
		if trial%2 == 1 && n >= 4 {
			// Strong, mixed-sign common factors: the stand-alone ranking of
			// protocols then often misses the best support (a greedy pick of
			// the top m was suboptimal in about 8 % of such cases).
			for i := range in.Histories {
				f := rng.NormFloat64()
				for k := range in.Histories[i] {
					in.Histories[i][k] += f * 300 * math.Sin(float64(k))
				}
			}
			in.MinDiversification = 2 + rng.IntN(min(n, 10)-1)
		}
		got, err := Optimize(in)
		if err != nil {
			t.Fatalf("trial %d: Optimize error %v", trial, err)
		}
		cov, _, err := LedoitWolf(in.Histories)
		if err != nil {
			t.Fatal(err)
		}
		p := QP{Mu: in.ExpectedApyBps, Sigma: cov, Risk: in.Risks, Lambda: got.RiskAversion, Rho: got.RiskPenalty}
		capW := float64(in.MaxSingleBps) / 10000
		want := optBruteForce(t, p, capW, in.MinDiversification)
		obj := qptObjective(p, got.Weights)
		if math.Abs(obj-want) > 1e-9*qptScale(p) {
			t.Errorf("trial %d (n=%d, m=%d): Optimize objective %v, best over all supports %v", trial, n, in.MinDiversification, obj, want)
		}
		if got.Diversified {
			diversified++
		}
		optCheckAllocation(t, trial, in, got)
	}
	if diversified < 100 {
		t.Errorf("only %d of 400 trials needed the diversification step; the test does not exercise it", diversified)
	}
}

// optCheckAllocation checks the invariants of an allocation: weights in
// bounds summing to one, integer weights that pass the contract's check
// and lie within one unit of the continuous ones, and figures recomputed.
func optCheckAllocation(t *testing.T, trial int, in OptimizeInput, a Allocation) {
	t.Helper()
	capW := float64(in.MaxSingleBps) / 10000
	var sum float64
	var sumBps int
	w64 := make([]int64, len(a.WeightsBps))
	for i, w := range a.Weights {
		sum += w
		if w < 0 || w > capW {
			t.Errorf("trial %d: Weights[%d] = %v outside [0, %v]", trial, i, w, capW)
		}
		b := a.WeightsBps[i]
		sumBps += b
		w64[i] = int64(b)
		if math.Abs(float64(b)-w*10000) > 1+1e-9 {
			t.Errorf("trial %d: WeightsBps[%d] = %d, want within 1 of %v", trial, i, b, w*10000)
		}
	}
	if math.Abs(sum-1) > 1e-12 || sumBps != 10000 {
		t.Errorf("trial %d: Σ Weights = %v, Σ WeightsBps = %d, want 1 and 10000", trial, sum, sumBps)
	}
	if !CheckConstraints(w64, int64(in.MaxSingleBps), int64(in.MinDiversification)) {
		t.Errorf("trial %d: CheckConstraints(%v, %d, %d) = false", trial, a.WeightsBps, in.MaxSingleBps, in.MinDiversification)
	}
	var apy, risk float64
	for i, b := range a.WeightsBps {
		apy += in.ExpectedApyBps[i] * float64(b) / 10000
		risk += in.Risks[i] * float64(b) / 10000
	}
	if math.Abs(apy-a.ExpectedApyBps) > 1e-9 || math.Abs(a.ExpectedApyBps-a.RiskAversion*a.Variance-a.RiskPenalty*risk-a.Objective) > 1e-9 || a.Variance < 0 {
		t.Errorf("trial %d: figures expectedApyBps %v Variance %v Objective %v, want apy %v", trial, a.ExpectedApyBps, a.Variance, a.Objective, apy)
	}
}

func TestOptimizeToleranceOrdersRiskAndReturn(t *testing.T) {
	t.Parallel()
	// λ and ρ keep the same ratio across tolerances, so one penalty
	// P = 0.0005·wᵀΣw + rᵀw is scaled by 10, 4, 1: exact optima must have
	// P and μᵀw both falling from HIGH to MEDIUM to LOW.
	rng := rand.New(rand.NewPCG(19, 20))
	for trial := 0; trial < 60; trial++ {
		in := optRandom(rng, 3+rng.IntN(8))
		cov, _, _ := LedoitWolf(in.Histories)
		var prevP, prevMu float64
		for k, tol := range []obsqra.RiskTolerance{obsqra.RiskHigh, obsqra.RiskMedium, obsqra.RiskLow} {
			in.RiskTolerance = tol
			a, err := Optimize(in)
			if err != nil {
				t.Fatalf("trial %d: Optimize(%s) error %v", trial, tol, err)
			}
			var mu, quad, risk float64
			for i, w := range a.Weights {
				mu += in.ExpectedApyBps[i] * w
				risk += in.Risks[i] * w
				for j, v := range a.Weights {
					quad += w * cov.At(i, j) * v
				}
			}
			pen := 0.0005*quad + risk
			slack := 1e-9 * (1 + math.Abs(mu))
			if k > 0 && (pen > prevP+slack || mu > prevMu+slack) {
				t.Errorf("trial %d: Optimize(%s) penalty %v, APY %v; the looser tolerance had %v, %v", trial, tol, pen, mu, prevP, prevMu)
			}
			prevP, prevMu = pen, mu
		}
	}
}

func TestOptimizeSources(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 22))
	in := optRandom(rng, 8)
	in.MinDiversification = 3
	in.RiskTolerance = obsqra.RiskMedium
	fromHist, err := Optimize(in)
	if err != nil {
		t.Fatal(err)
	}
	cov, delta, _ := LedoitWolf(in.Histories)
	withCov := in
	withCov.Covariance, withCov.Histories = cov, nil
	fromCov, err := Optimize(withCov)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fromHist.Weights, fromCov.Weights) || fromHist.Shrinkage != delta || fromCov.Shrinkage != 0 {
		t.Errorf("Optimize(histories).Weights = %v (shrinkage %v), Optimize(LedoitWolf(histories)) = %v: want the same bits",
			fromHist.Weights, fromHist.Shrinkage, fromCov.Weights)
	}
	// An explicit λ and ρ override the tolerance's.
	explicit := in
	explicit.RiskTolerance = ""
	explicit.RiskAversion, explicit.RiskPenalty = lambdaMedium, rhoMedium
	same, err := Optimize(explicit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(same.Weights, fromHist.Weights) {
		t.Errorf("Optimize(λ, ρ of MEDIUM) = %v, Optimize(MEDIUM) = %v: want the same", same.Weights, fromHist.Weights)
	}
	override := in
	override.RiskAversion, override.RiskPenalty = 0.1, 0.5
	o, err := Optimize(override)
	if err != nil {
		t.Fatal(err)
	}
	if o.RiskAversion != 0.1 || o.RiskPenalty != 0.5 {
		t.Errorf("Optimize(MEDIUM, λ 0.1, ρ 0.5) used λ %v, ρ %v, want 0.1, 0.5", o.RiskAversion, o.RiskPenalty)
	}
	// Neither covariance nor histories: the linear problem, filled greedily.
	lin := OptimizeInput{ExpectedApyBps: []float64{500, 900, 700}, Risks: []float64{0, 0, 0}, MaxSingleBps: 5000}
	l, err := Optimize(lin)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 5000, 5000}; !slices.Equal(l.WeightsBps, want) || l.Variance != 0 || l.ExpectedApyBps != 800 {
		t.Errorf("Optimize(linear) = %v (APY %v, variance %v), want %v (800, 0)", l.WeightsBps, l.ExpectedApyBps, l.Variance, want)
	}
}

func TestOptimizeDeterministic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(23, 24))
	for trial := 0; trial < 30; trial++ {
		in := optRandom(rng, 2+rng.IntN(9))
		first, err := Optimize(in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Optimize(in)
		if err != nil {
			t.Fatal(err)
		}
		same := slices.Equal(first.WeightsBps, again.WeightsBps) &&
			math.Float64bits(first.Objective) == math.Float64bits(again.Objective) &&
			math.Float64bits(first.Variance) == math.Float64bits(again.Variance)
		for i := range first.Weights {
			same = same && math.Float64bits(first.Weights[i]) == math.Float64bits(again.Weights[i])
		}
		if !same {
			t.Fatalf("trial %d: Optimize = %v then %v", trial, first.Weights, again.Weights)
		}
	}
}

func TestOptimizeInvalid(t *testing.T) {
	t.Parallel()
	good := func() OptimizeInput {
		return OptimizeInput{
			ExpectedApyBps: []float64{500, 600, 700},
			Risks:          []float64{10, 20, 30},
			MaxSingleBps:   5000, MinDiversification: 2,
			RiskTolerance: obsqra.RiskMedium,
		}
	}
	tests := []struct {
		name   string
		field  string // named in the message, case aside
		mutate func(*OptimizeInput)
	}{
		{"no protocols", "expectedApyBps", func(in *OptimizeInput) { in.ExpectedApyBps, in.Risks = nil, nil }},
		{"risks length", "risks", func(in *OptimizeInput) { in.Risks = in.Risks[:2] }},
		{"risk above 100", "risks[0]", func(in *OptimizeInput) { in.Risks[0] = 101 }},
		{"risk NaN", "risks[0]", func(in *OptimizeInput) { in.Risks[0] = math.NaN() }},
		{"APY infinite", "expectedApyBps[2]", func(in *OptimizeInput) { in.ExpectedApyBps[2] = math.Inf(1) }},
		{"cap zero", "maxSingleBps", func(in *OptimizeInput) { in.MaxSingleBps = 0 }},
		{"cap above 10000", "maxSingleBps", func(in *OptimizeInput) { in.MaxSingleBps = 10001 }},
		{"caps cannot fill", "maxSingleBps", func(in *OptimizeInput) { in.MaxSingleBps = 3333 }},
		{"diversification negative", "minDiversification", func(in *OptimizeInput) { in.MinDiversification = -1 }},
		{"diversification above n", "minDiversification", func(in *OptimizeInput) { in.MinDiversification = 4 }},
		{"diversification above ten", "minDiversification", func(in *OptimizeInput) {
			in.ExpectedApyBps, in.Risks = make([]float64, 12), make([]float64, 12)
			in.MaxSingleBps, in.MinDiversification = 1000, 11
		}},
		{"cap below the floor", "maxSingleBps", func(in *OptimizeInput) {
			in.ExpectedApyBps, in.Risks = make([]float64, 12), make([]float64, 12)
			in.MaxSingleBps, in.MinDiversification = 900, 1
		}},
		{"negative aversion", "riskAversion", func(in *OptimizeInput) { in.RiskAversion = -1 }},
		{"negative penalty", "riskPenalty", func(in *OptimizeInput) { in.RiskPenalty = -1 }},
		{"unknown tolerance", "riskTolerance", func(in *OptimizeInput) { in.RiskTolerance = "EXTREME" }},
		{"covariance size", "covariance", func(in *OptimizeInput) { in.Covariance = mat.NewSymDense(2, nil) }},
		{"covariance not PSD", "covariance", func(in *OptimizeInput) {
			in.Covariance = mat.NewSymDense(3, []float64{1, 2, 0, 2, 1, 0, 0, 0, 1})
		}},
		{"histories count", "histories", func(in *OptimizeInput) { in.Histories = [][]float64{{1, 2}, {1, 2}} }},
		{"histories ragged", "histories", func(in *OptimizeInput) { in.Histories = [][]float64{{1, 2}, {1, 2}, {1}} }},
		{"histories too short", "histories", func(in *OptimizeInput) { in.Histories = [][]float64{{1}, {1}, {1}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := good()
			tt.mutate(&in)
			_, err := Optimize(in)
			if obsqra.ErrorCode(err) != obsqra.EINVALID {
				t.Fatalf("Optimize(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
			}
			if msg := obsqra.ErrorMessage(err); !strings.Contains(strings.ToLower(msg), strings.ToLower(tt.field)) {
				t.Errorf("Optimize(%s) message %q does not name %s", tt.name, msg, tt.field)
			}
		})
	}
	if _, err := Optimize(good()); err != nil {
		t.Errorf("Optimize(good) error = %v, want nil", err)
	}
}

// TestOptimizeLargeSearchIsSwapOptimal: when n is large and the
// diversification search runs out of budget, the local search leaves a
// support that no single swap of a floored protocol improves.
func TestOptimizeLargeSearchIsSwapOptimal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(41, 42))
	var exhausted int
	for trial := 0; trial < 12; trial++ {
		n := 30 + rng.IntN(21)
		in := optRandom(rng, n)
		// A covariance of a few strong mixed-sign factors.
		const factors = 4
		a := mat.NewDense(n, factors, nil)
		for i := range n {
			for k := range factors {
				a.Set(i, k, 100*rng.NormFloat64())
			}
		}
		cov := mat.NewSymDense(n, nil)
		cov.SymOuterK(1, a)
		for i := range n {
			cov.SetSym(i, i, cov.At(i, i)+100)
		}
		in.Histories, in.Covariance = nil, cov
		// Ten floors of 1000 bps leave no freedom: choosing the support is
		// all there is, and correlated protocols make greedy choices poor.
		in.MinDiversification = 10
		in.MaxSingleBps = 7075
		in.RiskTolerance, in.RiskAversion = "", 0.05
		got, err := Optimize(in)
		if err != nil {
			t.Fatalf("trial %d: Optimize error %v", trial, err)
		}
		optCheckAllocation(t, trial, in, got)
		if got.SearchComplete {
			continue
		}
		exhausted++
		p := QP{Mu: in.ExpectedApyBps, Sigma: cov, Risk: in.Risks, Lambda: got.RiskAversion, Rho: got.RiskPenalty,
			Lower: make([]float64, n), Upper: make([]float64, n)}
		for i := range p.Upper {
			p.Upper[i] = 1
		}
		obj := qptObjective(p, got.Weights)
		// The floors sit on the m heaviest weights.
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return got.Weights[order[a]] > got.Weights[order[b]] })
		held := order[:in.MinDiversification]
		for k := range held {
			for j := 0; j < n; j++ {
				if slices.Contains(held, j) {
					continue
				}
				for i := range p.Lower {
					p.Lower[i] = 0
				}
				for _, i := range held {
					p.Lower[i] = 0.1
				}
				p.Lower[held[k]], p.Lower[j] = 0, 0.1
				sol, err := solveQP(p)
				if err != nil {
					t.Fatal(err)
				}
				if divCount(sol.W) >= in.MinDiversification && sol.Objective > obj+1e-9*qptScale(p) {
					t.Fatalf("trial %d (n=%d, m=%d): swapping %d for %d gives %v > %v", trial, n, in.MinDiversification, held[k], j, sol.Objective, obj)
				}
			}
		}
	}
	if exhausted == 0 {
		t.Error("no trial exhausted the search; the test does not exercise the local search")
	}
}
