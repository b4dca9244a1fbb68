package ml

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// qptBenchProblem is a realistic problem with n protocols: APYs 300–1500
// bps, APY standard deviations 50–300 bps correlated through three common
// factors, risk scores 5–80, cap 40 %, λ = 0.002 and ρ = 4.
func qptBenchProblem(n int) QP {
	rng := rand.New(rand.NewPCG(10, uint64(n)))
	p := QP{Mu: make([]float64, n), Risk: make([]float64, n), Upper: make([]float64, n), Lambda: 0.002, Rho: 4}
	const factors = 3
	load := make([]float64, n*factors)
	sd := make([]float64, n)
	for i := 0; i < n; i++ {
		p.Mu[i] = 300 + 1200*rng.Float64()
		p.Risk[i] = float64(5 + rng.IntN(76))
		p.Upper[i] = 0.4
		sd[i] = 50 + 250*rng.Float64()
		for k := 0; k < factors; k++ {
			load[i*factors+k] = rng.NormFloat64() * 0.4
		}
	}
	s := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			var c float64
			for k := 0; k < factors; k++ {
				c += load[i*factors+k] * load[j*factors+k]
			}
			if i == j {
				c = math.Max(c, 0) + 0.5
			}
			s.SetSym(i, j, c*sd[i]*sd[j])
		}
	}
	p.Sigma = s
	return p
}

func BenchmarkSolveQP10(b *testing.B) {
	p := qptBenchProblem(10)
	var s QPSolver
	var sol QPSolution
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Solve(p, &sol); err != nil {
			b.Fatal(err)
		}
	}
}

// optBenchInput is qptBenchProblem(10) as an Optimize input at HIGH
// tolerance with a 50 % cap and five protocols of at least 1000 bps: the
// continuous optimum holds fewer, so the diversification step runs.
func optBenchInput() OptimizeInput {
	p := qptBenchProblem(10)
	return OptimizeInput{
		ExpectedApyBps:     p.Mu,
		Covariance:         p.Sigma.(*mat.SymDense),
		Risks:              p.Risk,
		MaxSingleBps:       5000,
		MinDiversification: 5,
		RiskTolerance:      "HIGH",
	}
}

func BenchmarkOptimize10Diversified(b *testing.B) {
	in := optBenchInput()
	a, err := Optimize(in)
	if err != nil {
		b.Fatal(err)
	}
	if !a.Diversified {
		b.Fatalf("Optimize(bench input).Diversified = false, want the diversification step to run")
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Optimize(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLedoitWolf10x365(b *testing.B) {
	rng := rand.New(rand.NewPCG(30, 31))
	hist := make([][]float64, 10)
	for i := range hist {
		hist[i] = make([]float64, 365)
		for k := range hist[i] {
			hist[i][k] = 500 + 100*rng.NormFloat64()
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := LedoitWolf(hist); err != nil {
			b.Fatal(err)
		}
	}
}
