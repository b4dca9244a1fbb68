package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

// qptProblem draws a random feasible QP with n protocols: APYs 100–2000 bps
// (sometimes tied), risk scores 0–100, a covariance of random rank 0..n
// (so often singular, sometimes with identical protocols), λ from 0 to 1,
// ρ from 0 to 10, caps from 1/n (everything at the cap) to 1, and at times
// floors and fixed weights.
func qptProblem(rng *rand.Rand, n int) QP {
	p := QP{Mu: make([]float64, n), Risk: make([]float64, n)}
	ties := rng.IntN(3) == 0
	for i := range p.Mu {
		p.Mu[i] = 100 + 1900*rng.Float64()
		if ties {
			p.Mu[i] = 100 * math.Round(p.Mu[i]/400)
		}
		p.Risk[i] = float64(rng.IntN(101))
	}
	lambdas := []float64{0, 1e-5, 1e-4, 5e-4, 2e-3, 5e-3, 0.05, 1}
	p.Lambda = lambdas[rng.IntN(len(lambdas))]
	rhos := []float64{0, 0, 1, 4, 10}
	p.Rho = rhos[rng.IntN(len(rhos))]
	switch rng.IntN(6) {
	case 0: // no covariance at all
	default:
		rank := rng.IntN(n + 1)
		f := make([]float64, n*max(rank, 1))
		sd := make([]float64, n)
		for i := range sd {
			sd[i] = 20 + 280*rng.Float64()
		}
		for i := 0; i < n; i++ {
			for k := 0; k < rank; k++ {
				f[i*rank+k] = sd[i] * rng.NormFloat64() / math.Sqrt(float64(rank))
			}
		}
		if rank > 0 && n > 1 && rng.IntN(3) == 0 { // an identical pair
			a, b := rng.IntN(n), rng.IntN(n)
			copy(f[b*rank:(b+1)*rank], f[a*rank:(a+1)*rank])
			p.Mu[b], p.Risk[b] = p.Mu[a], p.Risk[a]
		}
		s := mat.NewSymDense(n, nil)
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				var v float64
				for k := 0; k < rank; k++ {
					v += f[i*rank+k] * f[j*rank+k]
				}
				s.SetSym(i, j, v)
			}
		}
		p.Sigma = s
	}
	capv := 1.0
	switch rng.IntN(5) {
	case 0:
		capv = 1 / float64(n)
	case 1, 2:
		capv = 1/float64(n) + (1-1/float64(n))*rng.Float64()
	}
	p.Upper = make([]float64, n)
	p.Lower = make([]float64, n)
	for i := range p.Upper {
		p.Upper[i] = capv
	}
	if capv > 1/float64(n) {
		switch rng.IntN(4) {
		case 0: // floors on a few, as the diversification step sets them
			floor := 0.1
			m := rng.IntN(min(n, 10) + 1)
			if float64(m)*floor <= 1 && floor <= capv {
				for _, i := range rng.Perm(n)[:m] {
					p.Lower[i] = floor
				}
			}
		case 1: // one fixed weight
			i := rng.IntN(n)
			p.Lower[i] = math.Min(capv, 0.5*rng.Float64()/float64(n))
			p.Upper[i] = p.Lower[i]
			var su float64
			for _, u := range p.Upper {
				su += u
			}
			if su < 1 {
				p.Upper[i] = capv
				p.Lower[i] = 0
			}
		}
	}
	return p
}

// qptScale is the size of the gradient of f over the simplex: 1 + max|c| +
// 2λ·max|Σ|. KKT residuals are judged relative to it.
func qptScale(p QP) float64 {
	s := 1.0
	var cmax float64
	for i := range p.Mu {
		c := p.Mu[i]
		if p.Risk != nil {
			c -= p.Rho * p.Risk[i]
		}
		cmax = math.Max(cmax, math.Abs(c))
	}
	var smax float64
	if p.Sigma != nil {
		r, _ := p.Sigma.Dims()
		for i := 0; i < r; i++ {
			for j := 0; j < r; j++ {
				smax = math.Max(smax, math.Abs(p.Sigma.At(i, j)))
			}
		}
	}
	return s + cmax + 2*p.Lambda*smax
}

// qptGradient returns ∇f(w) = 2λΣw − (μ − ρr), computed with gonum.
func qptGradient(p QP, w []float64) []float64 {
	n := len(w)
	g := mat.NewVecDense(n, nil)
	if p.Sigma != nil && p.Lambda != 0 {
		g.MulVec(p.Sigma, mat.NewVecDense(n, append([]float64(nil), w...)))
		g.ScaleVec(2*p.Lambda, g)
	}
	out := make([]float64, n)
	for i := range out {
		c := p.Mu[i]
		if p.Risk != nil {
			c -= p.Rho * p.Risk[i]
		}
		out[i] = g.AtVec(i) - c
	}
	return out
}

// qptBounds returns the bounds with nil filled in.
func qptBounds(p QP) (lo, hi []float64) {
	n := len(p.Mu)
	lo, hi = make([]float64, n), make([]float64, n)
	for i := range lo {
		hi[i] = 1
		if p.Lower != nil {
			lo[i] = p.Lower[i]
		}
		if p.Upper != nil {
			hi[i] = p.Upper[i]
		}
	}
	return lo, hi
}

// qptCheckKKT fails t unless sol is optimal for p; see qptKKT.
func qptCheckKKT(t *testing.T, name string, p QP, sol QPSolution) {
	t.Helper()
	for _, v := range qptKKT(p, sol) {
		t.Errorf("%s: %s", name, v)
	}
}

// qptKKT returns the ways sol fails the KKT conditions of p, with
// multipliers it computes itself from w alone; then it checks the
// multipliers sol reports. Residuals must be within 1e-9 of the problem's
// scale, Σw within 1e-12 of 1, and bounds must hold exactly.
func qptKKT(p QP, sol QPSolution) []string {
	var out []string
	errorf := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	tol := 1e-9 * qptScale(p)
	lo, hi := qptBounds(p)
	w := sol.W
	var sum float64
	for i := range w {
		if w[i] < lo[i] || w[i] > hi[i] {
			errorf("w[%d] = %v outside [%v, %v]", i, w[i], lo[i], hi[i])
		}
		sum += w[i]
	}
	if math.Abs(sum-1) > 1e-12 {
		errorf("Σw = %v, want 1 within 1e-12", sum)
	}
	g := qptGradient(p, w)
	// ν from the interior variables, or from the interval the variables at
	// their bounds allow.
	inMin, inMax := math.Inf(1), math.Inf(-1)
	low, high := math.Inf(-1), math.Inf(1) // ν must lie in [low, high]
	for i := range w {
		switch {
		case lo[i] == hi[i]:
		case w[i] > lo[i] && w[i] < hi[i]:
			inMin, inMax = math.Min(inMin, -g[i]), math.Max(inMax, -g[i])
		case w[i] == lo[i]: // g_i + ν ≥ 0
			low = math.Max(low, -g[i])
		default: // at upper: g_i + ν ≤ 0
			high = math.Min(high, -g[i])
		}
	}
	var nu float64
	switch {
	case !math.IsInf(inMin, 1):
		nu = (inMin + inMax) / 2
		if inMax-inMin > 2*tol {
			errorf("interior gradients differ by %v > 2·%v", inMax-inMin, tol)
		}
	case !math.IsInf(low, -1) && !math.IsInf(high, 1):
		nu = (low + high) / 2
	case !math.IsInf(low, -1):
		nu = low
	case !math.IsInf(high, 1):
		nu = high
	}
	for i := range w {
		if lo[i] == hi[i] {
			continue
		}
		r := g[i] + nu
		switch {
		case w[i] > lo[i] && w[i] < hi[i]:
			if math.Abs(r) > tol {
				errorf("interior w[%d] = %v has g+ν = %v, want 0 within %v", i, w[i], r, tol)
			}
		case w[i] == lo[i]:
			if r < -tol {
				errorf("w[%d] at its lower bound has multiplier %v < 0 (tol %v)", i, r, tol)
			}
		default:
			if r > tol {
				errorf("w[%d] at its upper bound has multiplier %v < 0 (tol %v)", i, -r, tol)
			}
		}
	}
	// The reported multipliers.
	for i := range w {
		if sol.Alpha[i] < 0 || sol.Beta[i] < 0 {
			errorf("Alpha[%d] = %v, Beta[%d] = %v, want ≥ 0", i, sol.Alpha[i], i, sol.Beta[i])
		}
		if r := g[i] + sol.Nu - sol.Alpha[i] + sol.Beta[i]; math.Abs(r) > tol {
			errorf("stationarity residual[%d] = %v, want 0 within %v", i, r, tol)
		}
		if sol.Alpha[i]*(w[i]-lo[i]) > tol || sol.Beta[i]*(hi[i]-w[i]) > tol {
			errorf("complementary slackness fails at %d: Alpha %v, w−l %v, Beta %v, u−w %v", i, sol.Alpha[i], w[i]-lo[i], sol.Beta[i], hi[i]-w[i])
		}
	}
	if u := qptObjective(p, w); math.Abs(u-sol.Objective) > 1e-9*qptScale(p) {
		errorf("Objective = %v, want U(w) = %v", sol.Objective, u)
	}
	return out
}

// qptObjective is U(w) = μᵀw − λwᵀΣw − ρrᵀw, computed directly.
func qptObjective(p QP, w []float64) float64 {
	var u float64
	for i := range w {
		c := p.Mu[i]
		if p.Risk != nil {
			c -= p.Rho * p.Risk[i]
		}
		u += c * w[i]
	}
	if p.Sigma != nil && p.Lambda != 0 {
		var q float64
		for i := range w {
			for j := range w {
				q += w[i] * p.Sigma.At(i, j) * w[j]
			}
		}
		u -= p.Lambda * q
	}
	return u
}

func TestSolveQPKKTRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	var s QPSolver // reused on purpose: the workspace must not leak between problems
	var sol QPSolution
	for trial := 0; trial < 3000; trial++ {
		n := 1 + rng.IntN(50)
		if trial%3 == 0 {
			n = 1 + rng.IntN(6)
		}
		p := qptProblem(rng, n)
		if err := s.Solve(p, &sol); err != nil {
			t.Fatalf("trial %d (n=%d, λ=%v): Solve error %v", trial, n, p.Lambda, err)
		}
		qptCheckKKT(t, "trial "+strconv.Itoa(trial), p, sol)
		if t.Failed() {
			t.Fatalf("trial %d: n=%d λ=%v ρ=%v w=%v", trial, n, p.Lambda, p.Rho, sol.W)
		}
	}
}

func TestSolveQPKKTIllConditioned(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 10))
	var s QPSolver
	var sol QPSolution
	for trial := 0; trial < 600; trial++ {
		n := 2 + rng.IntN(49)
		p := qptProblem(rng, n)
		sd, ok := p.Sigma.(*mat.SymDense)
		if !ok {
			continue
		}
		// A near-duplicate protocol and a tiny ridge: condition numbers up
		// to 1e12 and more, and λ up to 100.
		a, b := rng.IntN(n), rng.IntN(n)
		if a != b {
			for k := 0; k < n; k++ {
				sd.SetSym(b, k, sd.At(a, k)*(1+1e-9))
			}
			sd.SetSym(b, b, sd.At(a, a)*(1+2e-9)+1e-6)
		}
		for k := 0; k < n; k++ {
			sd.SetSym(k, k, sd.At(k, k)+1e-7*rng.Float64())
		}
		p.Lambda = []float64{1e-3, 0.1, 10, 100}[rng.IntN(4)]
		if err := s.Solve(p, &sol); err != nil {
			t.Fatalf("trial %d (n=%d, λ=%v): Solve error %v", trial, n, p.Lambda, err)
		}
		qptCheckKKT(t, "trial "+strconv.Itoa(trial), p, sol)
		if t.Failed() {
			t.Fatalf("trial %d: n=%d λ=%v ρ=%v w=%v", trial, n, p.Lambda, p.Rho, sol.W)
		}
	}
}

// TestQPSolverWarmStartKKT solves problems from the optimum of a
// neighbour with one more or one fewer floor, or from an arbitrary point,
// as the diversification search does, and checks KKT and agreement with a
// cold solve.
func TestQPSolverWarmStartKKT(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(25, 26))
	var s QPSolver
	var first, warm QPSolution
	for trial := 0; trial < 1500; trial++ {
		n := 2 + rng.IntN(30)
		p := qptProblem(rng, n)
		if err := s.Solve(p, &first); err != nil {
			t.Fatalf("trial %d: Solve error %v", trial, err)
		}
		from := append([]float64(nil), first.W...)
		switch rng.IntN(3) {
		case 0: // arbitrary, even infeasible, starting point
			for i := range from {
				from[i] = 2*rng.Float64() - 0.5
			}
		default: // a neighbour: one floor raised to what the caps allow
			i := rng.IntN(n)
			var sl float64
			for _, l := range p.Lower {
				sl += l
			}
			p.Lower[i] = math.Min(p.Upper[i], p.Lower[i]+math.Max(0, 1-sl)*rng.Float64())
		}
		if err := s.load(p); err != nil {
			t.Fatal(err)
		}
		if err := s.setBounds(p.Lower, p.Upper); err != nil {
			t.Fatal(err)
		}
		if err := s.runFrom(from, &warm); err != nil {
			t.Fatalf("trial %d: runFrom error %v", trial, err)
		}
		qptCheckKKT(t, "trial "+strconv.Itoa(trial), p, warm)
		cold, err := solveQP(p)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(cold.Objective-warm.Objective) > 1e-9*qptScale(p) {
			t.Errorf("trial %d: warm objective %v, cold %v", trial, warm.Objective, cold.Objective)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// TestKKTCheckerRejectsPerturbed shows that the KKT checker the other
// tests rely on can fail: it rejects optima nudged by 1e-6 of weight, and
// multipliers that were not the solver's.
func TestKKTCheckerRejectsPerturbed(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	var tried, rejected int
	for trial := 0; trial < 300; trial++ {
		p := qptProblem(rng, 2+rng.IntN(20))
		sol, err := solveQP(p)
		if err != nil {
			t.Fatalf("trial %d: solveQP error %v", trial, err)
		}
		if v := qptKKT(p, sol); len(v) > 0 {
			t.Fatalf("trial %d: optimum rejected: %v", trial, v)
		}
		// Move 1e-6 from the largest movable weight to another that can take it.
		lo, hi := qptBounds(p)
		a, b := -1, -1
		for i := range sol.W {
			if sol.W[i]-1e-6 >= lo[i] && (a < 0 || sol.W[i] > sol.W[a]) {
				a = i
			}
		}
		for i := range sol.W {
			if i != a && sol.W[i]+1e-6 <= hi[i] && (b < 0 || sol.Alpha[i] > sol.Alpha[b]) {
				b = i
			}
		}
		if a < 0 || b < 0 {
			continue
		}
		bad := sol
		bad.W = append([]float64(nil), sol.W...)
		bad.W[a] -= 1e-6
		bad.W[b] += 1e-6
		bad.Objective = qptObjective(p, bad.W)
		tried++
		if len(qptKKT(p, bad)) > 0 {
			rejected++
		}
		wrongNu := sol
		wrongNu.Nu += 1e-3 * qptScale(p)
		if len(qptKKT(p, wrongNu)) == 0 {
			t.Errorf("trial %d: qptKKT accepted Nu off by 1e-3 of the scale", trial)
		}
	}
	// A nudge along a direction of zero curvature and zero reduced gradient
	// (ties, singular Σ) may leave a point that is still optimal; most must
	// be caught.
	if rejected < tried*9/10 {
		t.Errorf("qptKKT rejected %d of %d perturbed optima, want at least 90%%", rejected, tried)
	}
}

func TestSolveQPHandComputed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    QP
		want []float64
	}{
		{
			// Uncorrelated pair: U'(w₁) = 400 − 2λ(40000w₁ − 10000(1−w₁)) = 0
			// gives w₁ = (400 + 200)/(0.02·50000) = 0.6.
			name: "two uncorrelated",
			p: QP{
				Mu:     []float64{1000, 600},
				Sigma:  mat.NewSymDense(2, []float64{40000, 0, 0, 10000}),
				Lambda: 0.01,
			},
			want: []float64{0.6, 0.4},
		},
		{
			// λ = 0.005 moves the stationary point to w₁ = 500/500 = 1.
			name: "two uncorrelated at the bound",
			p: QP{
				Mu:     []float64{1000, 600},
				Sigma:  mat.NewSymDense(2, []float64{40000, 0, 0, 10000}),
				Lambda: 0.005,
			},
			want: []float64{1, 0},
		},
		{
			name: "linear: fill by APY up to the cap",
			p:    QP{Mu: []float64{500, 800, 300, 800}, Upper: []float64{0.4, 0.4, 0.4, 0.4}},
			want: []float64{0.2, 0.4, 0, 0.4},
		},
		{
			// c = μ − 10·r = {500, 300, 600}: risk penalty reorders.
			name: "linear with risk penalty",
			p:    QP{Mu: []float64{600, 800, 700}, Risk: []float64{10, 50, 10}, Rho: 10, Upper: []float64{0.5, 0.5, 0.5}},
			want: []float64{0.5, 0, 0.5},
		},
		{
			name: "linear ties go to the lower index",
			p:    QP{Mu: []float64{700, 700, 700}, Upper: []float64{0.6, 0.6, 0.6}},
			want: []float64{0.6, 0.4, 0},
		},
		{
			name: "floors",
			p:    QP{Mu: []float64{900, 100, 100}, Lower: []float64{0, 0.1, 0.1}},
			want: []float64{0.8, 0.1, 0.1},
		},
		{
			name: "caps summing exactly to one",
			p:    QP{Mu: []float64{1, 2, 3, 4}, Upper: []float64{0.25, 0.25, 0.25, 0.25}},
			want: []float64{0.25, 0.25, 0.25, 0.25},
		},
		{
			// Perfectly correlated equal risks (singular Σ): variance is the
			// same for every split, so the linear part decides.
			name: "singular covariance",
			p: QP{
				Mu:     []float64{900, 1000},
				Sigma:  mat.NewSymDense(2, []float64{10000, 10000, 10000, 10000}),
				Lambda: 1,
				Upper:  []float64{0.7, 0.7},
			},
			want: []float64{0.3, 0.7},
		},
		{
			name: "one protocol",
			p:    QP{Mu: []float64{500}, Sigma: mat.NewSymDense(1, []float64{400}), Lambda: 1},
			want: []float64{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sol, err := solveQP(tt.p)
			if err != nil {
				t.Fatalf("solveQP(%s) error %v", tt.name, err)
			}
			for i := range tt.want {
				if math.Abs(sol.W[i]-tt.want[i]) > 1e-12 {
					t.Errorf("solveQP(%s).W = %v, want %v", tt.name, sol.W, tt.want)
					break
				}
			}
			qptCheckKKT(t, tt.name, tt.p, sol)
		})
	}
}

// qptGridBest returns the best objective over the grid of step 1/steps
// on the feasible set of a problem with n = 2 or 3, and its argmax.
func qptGridBest(p QP, steps int) (float64, []float64) {
	n := len(p.Mu)
	lo, hi := qptBounds(p)
	best := math.Inf(-1)
	var arg []float64
	w := make([]float64, n)
	h := 1 / float64(steps)
	feasible := func(v, l, u float64) bool { return v >= l-1e-12 && v <= u+1e-12 }
	switch n {
	case 2:
		for a := 0; a <= steps; a++ {
			w[0], w[1] = float64(a)*h, float64(steps-a)*h
			if feasible(w[0], lo[0], hi[0]) && feasible(w[1], lo[1], hi[1]) {
				if u := qptObjective(p, w); u > best {
					best, arg = u, append(arg[:0], w...)
				}
			}
		}
	case 3:
		for a := 0; a <= steps; a++ {
			w[0] = float64(a) * h
			if !feasible(w[0], lo[0], hi[0]) {
				continue
			}
			for b := 0; a+b <= steps; b++ {
				w[1], w[2] = float64(b)*h, float64(steps-a-b)*h
				if feasible(w[1], lo[1], hi[1]) && feasible(w[2], lo[2], hi[2]) {
					if u := qptObjective(p, w); u > best {
						best, arg = u, append(arg[:0], w...)
					}
				}
			}
		}
	}
	return best, arg
}

func TestSolveQPMatchesGrid(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 40; trial++ {
		n := 2 + trial%2
		steps := 10000
		if n == 3 {
			steps = 1000
		}
		p := QP{Mu: make([]float64, n), Risk: make([]float64, n), Rho: 2, Lower: make([]float64, n), Upper: make([]float64, n)}
		for i := range p.Mu {
			p.Mu[i] = 100 + 1900*rng.Float64()
			p.Risk[i] = float64(rng.IntN(101))
			// Bounds on the grid, so the optimal face holds grid points.
			p.Upper[i] = float64(600+rng.IntN(401)) / 1000
			if rng.IntN(3) == 0 {
				p.Lower[i] = 0.1
			}
		}
		// A well-conditioned covariance: sd 20–300 bps, correlation ±0.3.
		sd := make([]float64, n)
		for i := range sd {
			sd[i] = 20 + 280*rng.Float64()
		}
		s := mat.NewSymDense(n, nil)
		for i := 0; i < n; i++ {
			s.SetSym(i, i, sd[i]*sd[i])
			for j := i + 1; j < n; j++ {
				s.SetSym(i, j, (0.6*rng.Float64()-0.3)*sd[i]*sd[j]/float64(n-1))
			}
		}
		p.Sigma = s
		p.Lambda = []float64{0, 0.002, 0.01, 0.1}[trial%4]
		sol, err := solveQP(p)
		if err != nil {
			t.Fatalf("trial %d: solveQP error %v", trial, err)
		}
		best, arg := qptGridBest(p, steps)
		if sol.Objective < best-1e-9*qptScale(p) {
			t.Errorf("trial %d: solveQP objective %v < grid best %v", trial, sol.Objective, best)
		}
		if p.Lambda == 0 {
			continue // the LP optimum may be a whole face
		}
		// Uniqueness margin: with Hessian eigenvalues in [κ, L], the grid's
		// best point lies within h·√(2L/κ) + h of the optimum.
		var eig mat.EigenSym
		if !eig.Factorize(s, false) {
			t.Fatal("eigen decomposition failed")
		}
		v := eig.Values(nil)
		radius := (1 / float64(steps)) * (math.Sqrt(2*v[n-1]/v[0]) + 1)
		for i := range arg {
			if math.Abs(arg[i]-sol.W[i]) > radius {
				t.Errorf("trial %d: solveQP.W = %v, grid argmax %v: differ by more than %v", trial, sol.W, arg, radius)
				break
			}
		}
	}
}

func TestSolveQPDeterministic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	var shared QPSolver
	for trial := 0; trial < 50; trial++ {
		p := qptProblem(rng, 1+rng.IntN(50))
		first, err := solveQP(p)
		if err != nil {
			t.Fatalf("trial %d: solveQP error %v", trial, err)
		}
		other := qptProblem(rng, 1+rng.IntN(50))
		var scratch QPSolution
		_ = shared.Solve(other, &scratch) // dirty the workspace
		for rep := 0; rep < 3; rep++ {
			var again QPSolution
			if err := shared.Solve(p, &again); err != nil {
				t.Fatalf("trial %d: Solve error %v", trial, err)
			}
			same := math.Float64bits(first.Objective) == math.Float64bits(again.Objective) &&
				math.Float64bits(first.Nu) == math.Float64bits(again.Nu) && first.Iterations == again.Iterations
			for i := range first.W {
				same = same && math.Float64bits(first.W[i]) == math.Float64bits(again.W[i]) &&
					math.Float64bits(first.Alpha[i]) == math.Float64bits(again.Alpha[i]) &&
					math.Float64bits(first.Beta[i]) == math.Float64bits(again.Beta[i])
			}
			if !same {
				t.Fatalf("trial %d rep %d: Solve(p) = %v, want the bits of %v", trial, rep, again.W, first.W)
			}
		}
	}
}

func TestSolveQPInvalid(t *testing.T) {
	t.Parallel()
	good := func() QP {
		return QP{
			Mu:     []float64{500, 600},
			Sigma:  mat.NewSymDense(2, []float64{100, 0, 0, 100}),
			Risk:   []float64{10, 20},
			Lambda: 0.01, Rho: 1,
			Upper: []float64{0.8, 0.8},
		}
	}
	nonSym := mat.NewDense(2, 2, []float64{100, 1, 2, 100})
	tests := []struct {
		name   string
		mutate func(*QP)
	}{
		{"no protocols", func(p *QP) { p.Mu, p.Risk, p.Upper, p.Sigma = nil, nil, nil, nil }},
		{"risk length", func(p *QP) { p.Risk = []float64{1} }},
		{"NaN mu", func(p *QP) { p.Mu[1] = math.NaN() }},
		{"Inf risk", func(p *QP) { p.Risk[0] = math.Inf(1) }},
		{"negative lambda", func(p *QP) { p.Lambda = -1 }},
		{"negative rho", func(p *QP) { p.Rho = -0.5 }},
		{"NaN lambda", func(p *QP) { p.Lambda = math.NaN() }},
		{"sigma dims", func(p *QP) { p.Sigma = mat.NewSymDense(3, nil) }},
		{"sigma NaN", func(p *QP) { p.Sigma = mat.NewSymDense(2, []float64{100, math.NaN(), math.NaN(), 100}) }},
		{"sigma not symmetric", func(p *QP) { p.Sigma = nonSym }},
		{"sigma not PSD", func(p *QP) { p.Sigma = mat.NewSymDense(2, []float64{100, 200, 200, 100}) }},
		{"sigma negative diagonal", func(p *QP) { p.Sigma = mat.NewSymDense(2, []float64{-1, 0, 0, 100}) }},
		{"sigma zero diagonal, off-diagonal", func(p *QP) { p.Sigma = mat.NewSymDense(2, []float64{0, 5, 5, 0}) }},
		{"caps below one", func(p *QP) { p.Upper = []float64{0.4, 0.5} }},
		{"floors above one", func(p *QP) { p.Lower = []float64{0.6, 0.5} }},
		{"lower above upper", func(p *QP) { p.Lower = []float64{0.9, 0} }},
		{"upper length", func(p *QP) { p.Upper = []float64{1} }},
		{"lower length", func(p *QP) { p.Lower = []float64{0, 0, 0} }},
		{"NaN bound", func(p *QP) { p.Upper[0] = math.NaN() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := good()
			tt.mutate(&p)
			_, err := solveQP(p)
			if code := obsqra.ErrorCode(err); code != obsqra.EINVALID {
				t.Errorf("solveQP(%s) error = %v, want %s", tt.name, err, obsqra.EINVALID)
			}
		})
	}
	if _, err := solveQP(good()); err != nil {
		t.Errorf("solveQP(good) error = %v, want nil", err)
	}
}

func TestSolveQPAllocations(t *testing.T) {
	p := qptBenchProblem(10)
	var s QPSolver
	var sol QPSolution
	if err := s.Solve(p, &sol); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() { _ = s.Solve(p, &sol) })
	if allocs != 0 {
		t.Errorf("QPSolver.Solve allocations = %v, want 0 with a warm workspace", allocs)
	}
}

// solveQP solves p exactly with a fresh QPSolver; see QPSolver.Solve.
func solveQP(p QP) (QPSolution, error) {
	var s QPSolver
	var sol QPSolution
	err := s.Solve(p, &sol)
	return sol, err
}
