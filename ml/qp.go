package ml

import (
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

// QP is the continuous allocation problem: choose weights w that maximise
//
//	U(w) = μᵀw − λ·wᵀΣw − ρ·rᵀw
//
// subject to Lower_i ≤ w_i ≤ Upper_i and Σw = 1. With μ in bps of APY, Σ in
// bps² and r in risk points, U is in bps of APY. The problem is convex (Σ is
// positive semidefinite, λ ≥ 0), so a point that satisfies the KKT
// conditions is a global maximum; it is unique when λ·Σ is positive definite
// on the directions the constraints leave free.
type QP struct {
	// Mu is each protocol's expected APY, in bps.
	Mu []float64
	// Sigma is the n×n covariance of the APYs, in bps². It must be
	// symmetric (within a relative 1e-10) and positive semidefinite; it may
	// be singular. Nil means zero covariance.
	Sigma mat.Matrix
	// Risk is each protocol's risk score (0–100 for RiskEngine scores, but
	// any finite number is accepted). Nil means zero.
	Risk []float64
	// Lambda is the risk aversion λ ≥ 0, in bps of APY per bps² of
	// variance. Zero makes the problem a linear programme.
	Lambda float64
	// Rho is the risk penalty ρ ≥ 0, in bps of APY per risk point.
	Rho float64
	// Lower holds the lower bounds l_i. Nil means 0 for every protocol.
	Lower []float64
	// Upper holds the upper bounds u_i. Nil means 1 for every protocol.
	Upper []float64
}

// QPSolution is the optimum of a QP with its KKT multipliers. With the
// minimisation objective f = −U, that is f(w) = λ·wᵀΣw − (μ − ρr)ᵀw, they
// satisfy
//
//	∇f(w) + Nu·1 − Alpha + Beta = 0,  Alpha, Beta ≥ 0,
//	Alpha_i·(w_i − l_i) = 0,  Beta_i·(u_i − w_i) = 0,
//
// so Alpha_i is what raising l_i would cost and Beta_i what raising u_i
// would gain, both in bps of APY per unit of weight.
type QPSolution struct {
	// W holds the optimal weights: they sum to 1 within 1e-12, and a weight
	// at a bound equals that bound exactly.
	W []float64
	// Nu is the multiplier of Σw = 1.
	Nu float64
	// Alpha holds the multipliers of the lower bounds.
	Alpha []float64
	// Beta holds the multipliers of the upper bounds.
	Beta []float64
	// Objective is U(W), in bps of APY.
	Objective float64
	// Iterations is the number of active-set iterations the solve took.
	Iterations int
}

// Tolerances of the solver. The problem's own scale enters through qpScale:
// multipliers and reduced gradients are compared with it, pivots with the
// largest entry of the Hessian.
const (
	qpFeasTol  = 1e-12 // slack allowed in Σl ≤ 1 ≤ Σu
	qpSymTol   = 1e-10 // relative asymmetry allowed in Sigma
	qpPSDTol   = 1e-9  // relative negative curvature allowed in Sigma
	qpPivotTol = 1e-12 // relative pivot below which the reduced Hessian is singular
	qpGradTol  = 1e-12 // relative reduced gradient treated as zero
	qpMultTol  = 1e-11 // relative negative multiplier treated as zero
	qpStepTiny = 1e-13 // relative direction component ignored by the ratio test
)

// Working-set states of a variable.
const (
	qpFree  int8 = iota // not in the working set
	qpLower             // held at its lower bound
	qpUpper             // held at its upper bound
	qpFixed             // lower = upper: held for good
)

// QPSolver solves QPs by a primal active-set method and keeps its workspace
// between calls, so repeated solves of problems of the same size allocate
// nothing. The zero value is ready to use; a QPSolver must not be used by
// two goroutines at once.
//
// The method: start from the exact optimum of the linear part (fill the
// protocols by μ_i − ρr_i, best first, ties to the lower index), hold every
// variable at a bound in the working set, and repeat: on the free variables,
// minimise f subject to Σw = 1 through the null-space form of the KKT system
// (a pivoted Cholesky factorisation of the reduced Hessian, so a singular Σ
// or λ = 0 gives a zero-curvature descent ray instead of a division by
// zero); take the step up to the first bound it meets (ties to the lower
// index) and hold that bound; at a minimum of the working set compute the
// multipliers and release the bound with the most negative one (ties to the
// lower index), or stop when none is negative. After 5n+20 iterations the
// release takes the lowest index with a negative multiplier instead (Bland's
// rule, against cycling on degenerate problems); after 50n+100 the solver
// gives up with an internal error (random tests of n ≤ 50 need at most
// about 100). The finish: one more Newton step on the final working set
// when it stays feasible, the rounding error of Σw moved onto a free
// variable, and the multipliers recomputed at the final point, negative
// ones within tolerance set to 0. Every choice is a fixed function of the
// input, so the same problem gives the same bits.
type QPSolver struct {
	n      int
	q      []float64 // n×n Hessian of f: 2λΣ, row-major, symmetric
	c      []float64 // μ − ρr
	lo, hi []float64
	w, g   []float64 // iterate and gradient of f
	d      []float64 // search direction
	state  []int8
	free   []int
	order  []int
	red    []float64 // reduced Hessian, factorised in place
	perm   []int
	rhs    []float64
	y      []float64
	// sigmaName names the covariance in error messages: "Sigma" when
	// empty, the caller's field name otherwise.
	sigmaName string
	qmax      float64 // largest |q_ij|
	cmax      float64 // largest |c_i|
	hasQ      bool
}

// Solve solves p and writes the optimum into sol, reusing sol's slices when
// they are large enough.
//
// Errors: EINVALID when p is malformed — empty or mismatched lengths,
// non-finite numbers, λ or ρ negative, Sigma not n×n, not symmetric or not
// positive semidefinite, a lower bound above its upper bound — or
// infeasible, Σl > 1 or Σu < 1. An error that is not EINVALID means the
// method failed to converge, which is a bug.
func (s *QPSolver) Solve(p QP, sol *QPSolution) error {
	if err := s.load(p); err != nil {
		return err
	}
	if err := s.setBounds(p.Lower, p.Upper); err != nil {
		return err
	}
	return s.run(sol)
}

// load validates everything in p but the bounds and fills q and c.
func (s *QPSolver) load(p QP) error {
	n := len(p.Mu)
	if n == 0 {
		return obsqra.Errorf(obsqra.EINVALID, "the problem has no protocols")
	}
	if p.Risk != nil && len(p.Risk) != n {
		return obsqra.Errorf(obsqra.EINVALID, "Risk has %d entries but Mu has %d", len(p.Risk), n)
	}
	if !finite(p.Lambda) || p.Lambda < 0 {
		return obsqra.Errorf(obsqra.EINVALID, "Lambda must be a finite number ≥ 0, got %v", p.Lambda)
	}
	if !finite(p.Rho) || p.Rho < 0 {
		return obsqra.Errorf(obsqra.EINVALID, "Rho must be a finite number ≥ 0, got %v", p.Rho)
	}
	s.resize(n)
	s.cmax = 0
	for i, m := range p.Mu {
		if !finite(m) {
			return obsqra.Errorf(obsqra.EINVALID, "Mu[%d] is not a finite number", i)
		}
		c := m
		if p.Risk != nil {
			if !finite(p.Risk[i]) {
				return obsqra.Errorf(obsqra.EINVALID, "Risk[%d] is not a finite number", i)
			}
			c -= p.Rho * p.Risk[i]
		}
		if !finite(c) {
			return obsqra.Errorf(obsqra.EINVALID, "Mu[%d] − Rho·Risk[%d] overflows", i, i)
		}
		s.c[i] = c
		s.cmax = math.Max(s.cmax, math.Abs(c))
	}
	return s.loadSigma(p.Sigma, p.Lambda)
}

// resize makes every workspace slice fit n variables.
func (s *QPSolver) resize(n int) {
	s.n = n
	s.q = qpGrow(s.q, n*n)
	s.c = qpGrow(s.c, n)
	s.lo = qpGrow(s.lo, n)
	s.hi = qpGrow(s.hi, n)
	s.w = qpGrow(s.w, n)
	s.g = qpGrow(s.g, n)
	s.d = qpGrow(s.d, n)
	s.rhs = qpGrow(s.rhs, n)
	s.y = qpGrow(s.y, n)
	s.red = qpGrow(s.red, n*n)
	if cap(s.state) < n {
		s.state = make([]int8, n)
	}
	s.state = s.state[:n]
	s.free = qpGrowInt(s.free, n)
	s.order = qpGrowInt(s.order, n)
	s.perm = qpGrowInt(s.perm, n)
}

// loadSigma validates Sigma and stores the Hessian 2λΣ (symmetrised).
func (s *QPSolver) loadSigma(sigma mat.Matrix, lambda float64) error {
	n := s.n
	q := s.q
	s.qmax, s.hasQ = 0, false
	if qpIsNil(sigma) {
		clear(q)
		return nil
	}
	if r, c := sigma.Dims(); r != n || c != n {
		return obsqra.Errorf(obsqra.EINVALID, "%s is %d×%d but there are %d protocols", s.sigmaField(), r, c, n)
	}
	switch m := sigma.(type) {
	case *mat.SymDense:
		raw := m.RawSymmetric()
		for i := 0; i < n; i++ {
			for j := i; j < n; j++ {
				v := raw.Data[i*raw.Stride+j]
				q[i*n+j], q[j*n+i] = v, v
			}
		}
	case *mat.Dense:
		raw := m.RawMatrix()
		for i := 0; i < n; i++ {
			copy(q[i*n:(i+1)*n], raw.Data[i*raw.Stride:i*raw.Stride+n])
		}
	default:
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				q[i*n+j] = sigma.At(i, j)
			}
		}
	}
	var big float64
	for i, v := range q[:n*n] {
		if !finite(v) {
			return obsqra.Errorf(obsqra.EINVALID, "%s[%d][%d] is not a finite number", s.sigmaField(), i/n, i%n)
		}
		big = math.Max(big, math.Abs(v))
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			a, b := q[i*n+j], q[j*n+i]
			if math.Abs(a-b) > qpSymTol*big {
				return obsqra.Errorf(obsqra.EINVALID, "%s is not symmetric: [%d][%d] = %v but [%d][%d] = %v", s.sigmaField(), i, j, a, j, i, b)
			}
			v := (a + b) / 2
			q[i*n+j], q[j*n+i] = v, v
		}
	}
	if !qpPSD(q[:n*n], s.red[:n*n], n, qpPSDTol*big) {
		return obsqra.Errorf(obsqra.EINVALID, "%s is not positive semidefinite", s.sigmaField())
	}
	if lambda == 0 || big == 0 {
		clear(q[:n*n])
		return nil
	}
	for i := range q[:n*n] {
		q[i] *= 2 * lambda
		s.qmax = math.Max(s.qmax, math.Abs(q[i]))
	}
	if !finite(s.qmax) {
		return obsqra.Errorf(obsqra.EINVALID, "λ·%s overflows", s.sigmaField())
	}
	s.hasQ = s.qmax > 0
	return nil
}

// sigmaField is the name of the covariance in error messages.
func (s *QPSolver) sigmaField() string {
	if s.sigmaName == "" {
		return "Sigma"
	}
	return s.sigmaName
}

// setBounds validates and stores the bounds (nil lower = 0, nil upper = 1).
func (s *QPSolver) setBounds(lower, upper []float64) error {
	n := s.n
	if lower != nil && len(lower) != n {
		return obsqra.Errorf(obsqra.EINVALID, "Lower has %d entries but there are %d protocols", len(lower), n)
	}
	if upper != nil && len(upper) != n {
		return obsqra.Errorf(obsqra.EINVALID, "Upper has %d entries but there are %d protocols", len(upper), n)
	}
	var sl, su float64
	for i := 0; i < n; i++ {
		l, u := 0.0, 1.0
		if lower != nil {
			l = lower[i]
		}
		if upper != nil {
			u = upper[i]
		}
		if !finite(l) || !finite(u) {
			return obsqra.Errorf(obsqra.EINVALID, "the bounds of protocol %d are not finite numbers", i)
		}
		if l > u {
			return obsqra.Errorf(obsqra.EINVALID, "the lower bound of protocol %d (%v) is above its upper bound (%v)", i, l, u)
		}
		s.lo[i], s.hi[i] = l, u
		sl += l
		su += u
	}
	if sl > 1+qpFeasTol {
		return obsqra.Errorf(obsqra.EINVALID, "the lower bounds sum to %v, more than 1: no allocation satisfies them", sl)
	}
	if su < 1-qpFeasTol {
		return obsqra.Errorf(obsqra.EINVALID, "the upper bounds sum to %v, less than 1: no allocation satisfies them", su)
	}
	return nil
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// qpIsNil reports whether m is nil or a typed nil pointer to a gonum matrix.
func qpIsNil(m mat.Matrix) bool {
	switch v := m.(type) {
	case nil:
		return true
	case *mat.SymDense:
		return v == nil
	case *mat.Dense:
		return v == nil
	}
	return false
}

// qpGrow returns s resized to n, reallocating only when it is too small.
func qpGrow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// qpGrowInt is qpGrow for ints.
func qpGrowInt(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}
