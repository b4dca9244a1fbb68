package ml

import (
	"fmt"
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

// SolveQP solves p exactly; see QPSolver.Solve.
func SolveQP(p QP) (QPSolution, error) {
	var s QPSolver
	var sol QPSolution
	err := s.Solve(p, &sol)
	return sol, err
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

// qpPSD reports whether the n×n symmetric matrix a is positive semidefinite
// up to tol, by a Cholesky factorisation with diagonal pivoting in work: it
// stops when every remaining diagonal is at most tol, and then the
// remainder must be negligible too.
func qpPSD(a, work []float64, n int, tol float64) bool {
	copy(work, a)
	m := work
	for k := 0; k < n; k++ {
		p := k
		for i := k + 1; i < n; i++ {
			if m[i*n+i] > m[p*n+p] {
				p = i
			}
		}
		if m[p*n+p] <= tol {
			for i := k; i < n; i++ {
				for j := k; j < n; j++ {
					if (i == j && m[i*n+i] < -tol) || (i != j && math.Abs(m[i*n+j]) > tol) {
						return false
					}
				}
			}
			return true
		}
		qpSwap(m, n, k, p)
		piv := m[k*n+k]
		for i := k + 1; i < n; i++ {
			f := m[i*n+k] / piv
			for j := k + 1; j < n; j++ {
				m[i*n+j] -= f * m[k*n+j]
			}
		}
	}
	return true
}

// qpSwap swaps rows and columns i and j of the n×n matrix m.
func qpSwap(m []float64, n, i, j int) {
	if i == j {
		return
	}
	for k := 0; k < n; k++ {
		m[i*n+k], m[j*n+k] = m[j*n+k], m[i*n+k]
	}
	for k := 0; k < n; k++ {
		m[k*n+i], m[k*n+j] = m[k*n+j], m[k*n+i]
	}
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

// run solves the loaded problem from the optimum of its linear part.
func (s *QPSolver) run(sol *QPSolution) error {
	s.start()
	return s.iterate(sol)
}

// runFrom solves the loaded problem from a point near w0, the optimum of a
// neighbouring problem (the diversification search adds one floor at a
// time): w0 is clamped into the bounds, the sum is repaired on the
// protocols of lowest score first (raising: highest first), and every
// variable at a bound starts in the working set. The result satisfies the
// same KKT test as run's; when the optimum is unique it is the same point
// up to rounding.
func (s *QPSolver) runFrom(w0 []float64, sol *QPSolution) error {
	s.warmStart(w0)
	return s.iterate(sol)
}

// iterate runs the active-set method from the feasible point and working
// set in s, and writes the solution.
func (s *QPSolver) iterate(sol *QPSolution) error {
	gscale := s.gradScale()
	mtol := qpMultTol * gscale
	maxIter := 50*s.n + 100
	bland := 5*s.n + 20 // after this many iterations, anti-cycling choices
	atMin := false
	iter := 0
	for ; ; iter++ {
		if iter > maxIter {
			return fmt.Errorf("ml: active-set QP did not converge in %d iterations", maxIter)
		}
		s.gradient()
		if !atMin {
			switch s.direction(gscale) {
			case qpDirZero:
				atMin = true
			case qpDirNewton:
				if s.step(false) {
					atMin = true
				}
				continue
			case qpDirRay:
				s.step(true)
				continue
			}
		}
		j := s.release(mtol, iter > bland)
		if j < 0 {
			break
		}
		s.state[j] = qpFree
		atMin = false
	}
	s.polish(gscale)
	s.fixSum()
	s.gradient()
	s.output(sol, iter)
	return nil
}

// start sets w to the exact optimum of the linear part, cᵀw over the box
// and the simplex: lower bounds everywhere, then the remaining weight to
// the protocols in decreasing c (ties: lower index first), each up to its
// upper bound. Every variable ends in the working set but one that is not
// fixed: the partly filled one, else the last filled, else the first in
// the order.
func (s *QPSolver) start() {
	n := s.n
	order := s.sortByScore()
	rest := 1.0
	for i := 0; i < n; i++ {
		s.w[i] = s.lo[i]
		rest -= s.lo[i]
		if s.lo[i] == s.hi[i] {
			s.state[i] = qpFixed
		} else {
			s.state[i] = qpLower
		}
	}
	partial, last, first := -1, -1, -1
	for _, i := range order {
		if s.state[i] == qpFixed {
			continue
		}
		if first < 0 {
			first = i
		}
		if rest <= 0 {
			continue
		}
		room := s.hi[i] - s.lo[i]
		if rest >= room {
			s.w[i] = s.hi[i]
			s.state[i] = qpUpper
			rest -= room
			last = i
		} else {
			s.w[i] = s.lo[i] + rest
			s.state[i] = qpFree
			rest = 0
			partial = i
		}
	}
	switch {
	case partial >= 0:
	case last >= 0:
		s.state[last] = qpFree
	case first >= 0:
		s.state[first] = qpFree
	}
}

// warmStart sets w and the working set from w0; see runFrom.
func (s *QPSolver) warmStart(w0 []float64) {
	n := s.n
	s.sortByScore()
	excess := -1.0
	for i := 0; i < n; i++ {
		s.w[i] = math.Min(math.Max(w0[i], s.lo[i]), s.hi[i])
		excess += s.w[i]
	}
	order := s.order[:n]
	if excess > 0 {
		for k := n - 1; k >= 0 && excess > 0; k-- {
			i := order[k]
			if slack := s.w[i] - s.lo[i]; slack <= excess {
				s.w[i] = s.lo[i]
				excess -= slack
			} else {
				s.w[i] -= excess
				excess = 0
			}
		}
	} else if excess < 0 {
		for k := 0; k < n && excess < 0; k++ {
			i := order[k]
			if room := s.hi[i] - s.w[i]; room <= -excess {
				s.w[i] = s.hi[i]
				excess += room
			} else {
				s.w[i] -= excess
				excess = 0
			}
		}
	}
	free := -1
	for i := 0; i < n; i++ {
		switch {
		case s.lo[i] == s.hi[i]:
			s.state[i] = qpFixed
			s.w[i] = s.lo[i]
		case s.w[i] <= s.lo[i]:
			s.state[i] = qpLower
			s.w[i] = s.lo[i]
		case s.w[i] >= s.hi[i]:
			s.state[i] = qpUpper
			s.w[i] = s.hi[i]
		default:
			s.state[i] = qpFree
			free = i
		}
	}
	if free < 0 {
		for _, i := range order {
			if s.state[i] != qpFixed {
				s.state[i] = qpFree
				break
			}
		}
	}
}

// sortByScore sets s.order to the protocols by decreasing c, ties to the
// lower index, and returns it.
func (s *QPSolver) sortByScore() []int {
	order := s.order[:s.n]
	for i := range order {
		order[i] = i
	}
	// Insertion sort: stable, allocation-free, n is small.
	for i := 1; i < len(order); i++ {
		v := order[i]
		j := i
		for j > 0 && s.c[order[j-1]] < s.c[v] {
			order[j] = order[j-1]
			j--
		}
		order[j] = v
	}
	return order
}

// gradScale bounds the size of the gradient of f over the feasible set:
// |c| plus |Q|·Σ|w|, where Σ|w| ≤ 1 + 2·Σ max(−l_i, 0).
func (s *QPSolver) gradScale() float64 {
	wabs := 1.0
	for i := 0; i < s.n; i++ {
		if s.lo[i] < 0 {
			wabs -= 2 * s.lo[i]
		}
	}
	return 1 + s.cmax + s.qmax*wabs
}

// gradient sets g = Qw − c, the gradient of f at w.
func (s *QPSolver) gradient() {
	n := s.n
	for i := 0; i < n; i++ {
		v := -s.c[i]
		if s.hasQ {
			row := s.q[i*n : (i+1)*n]
			for j, wj := range s.w[:n] {
				v += row[j] * wj
			}
		}
		s.g[i] = v
	}
}

// Kinds of search direction.
const (
	qpDirZero   = iota // w minimises f on the working set
	qpDirNewton        // step 1 reaches the minimum on the working set
	qpDirRay           // f decreases without bound along d until a bound
)

// direction computes d on the free variables: with p the first free
// variable and y the others' moves, d_p = −Σy keeps Σw = 1, and along such
// moves f changes by rᵀy + ½yᵀAy with reduced gradient r_i = g_i − g_p and
// reduced Hessian A_ij = Q_ij − Q_ip − Q_pj + Q_pp. A pivoted
// Cholesky factorisation PᵀAP = LLᵀ (stopping at pivots below tolerance)
// solves A·y = −r when −r lies in the range of A, and otherwise yields a
// null vector z of A with rᵀz < 0: a ray along which f falls linearly.
func (s *QPSolver) direction(gscale float64) int {
	n := s.n
	free := s.free[:0]
	for i := 0; i < n; i++ {
		if s.state[i] == qpFree {
			free = append(free, i)
		}
	}
	s.free = free
	for i := range s.d[:n] {
		s.d[i] = 0
	}
	if len(free) <= 1 {
		return qpDirZero
	}
	p := free[0]
	others := free[1:]
	k := len(others)
	a := s.red[:k*k]
	b := s.rhs[:k]
	perm := s.perm[:k]
	gp := s.g[p]
	var rmax float64
	for x, i := range others {
		b[x] = -(s.g[i] - gp)
		rmax = math.Max(rmax, math.Abs(b[x]))
		perm[x] = x
	}
	rank := 0
	if s.hasQ {
		q := s.q
		qpp := q[p*n+p]
		for x, i := range others {
			qip := q[i*n+p]
			for z, j := range others {
				a[x*k+z] = q[i*n+j] - qip - q[p*n+j] + qpp
			}
		}
		rank = qpCholPiv(a, perm, k, qpPivotTol*s.qmax)
	}
	// Permute b into the factor's order: bp[x] = b[perm[x]].
	y := s.y[:k]
	for x := 0; x < k; x++ {
		y[x] = b[perm[x]]
	}
	// Forward solve L11 u = b1 in place (y[:rank] becomes u).
	for x := 0; x < rank; x++ {
		v := y[x]
		for z := 0; z < x; z++ {
			v -= a[x*k+z] * y[z]
		}
		y[x] = v / a[x*k+x]
	}
	kind := qpDirNewton
	if rank < k {
		// h = b2 − L21 u: the part of −r that A cannot reach.
		var hmax float64
		for x := rank; x < k; x++ {
			v := y[x]
			for z := 0; z < rank; z++ {
				v -= a[x*k+z] * y[z]
			}
			y[x] = v
			hmax = math.Max(hmax, math.Abs(v))
		}
		if hmax > qpGradTol*gscale {
			kind = qpDirRay
			// z = [−L11⁻ᵀ L21ᵀ h; h]: first the right-hand side L21ᵀ h.
			for x := 0; x < rank; x++ {
				var v float64
				for z := rank; z < k; z++ {
					v += a[z*k+x] * y[z]
				}
				y[x] = -v
			}
		} else {
			for x := rank; x < k; x++ {
				y[x] = 0
			}
		}
	} else if rmax == 0 {
		return qpDirZero
	}
	// Back solve L11ᵀ v = y[:rank] in place.
	for x := rank - 1; x >= 0; x-- {
		v := y[x]
		for z := x + 1; z < rank; z++ {
			v -= a[z*k+x] * y[z]
		}
		y[x] = v / a[x*k+x]
	}
	var sum, dmax float64
	for x := 0; x < k; x++ {
		i := others[perm[x]]
		s.d[i] = y[x]
		sum += y[x]
		dmax = math.Max(dmax, math.Abs(y[x]))
	}
	s.d[p] = -sum
	dmax = math.Max(dmax, math.Abs(sum))
	if dmax == 0 {
		return qpDirZero
	}
	if kind == qpDirRay {
		for _, i := range free {
			s.d[i] /= dmax
		}
		return kind
	}
	if dmax <= 1e-15*s.wScale() {
		return qpDirZero
	}
	return kind
}

// wScale is the size of the weights, at least 1.
func (s *QPSolver) wScale() float64 {
	m := 1.0
	for _, v := range s.w[:s.n] {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// qpCholPiv factorises the k×k symmetric matrix a in place as PᵀAP = LLᵀ
// (L in the lower triangle) with diagonal pivoting (largest remaining
// diagonal first, ties to the lower position), stopping when every
// remaining diagonal is at most tol. It permutes perm along and returns the
// rank.
func qpCholPiv(a []float64, perm []int, k int, tol float64) int {
	for j := 0; j < k; j++ {
		p := j
		for i := j + 1; i < k; i++ {
			if a[i*k+i] > a[p*k+p] {
				p = i
			}
		}
		if a[p*k+p] <= tol {
			return j
		}
		qpSwap(a, k, j, p)
		perm[j], perm[p] = perm[p], perm[j]
		l := math.Sqrt(a[j*k+j])
		a[j*k+j] = l
		for i := j + 1; i < k; i++ {
			a[i*k+j] /= l
		}
		for i := j + 1; i < k; i++ {
			f := a[i*k+j]
			for z := j + 1; z <= i; z++ {
				a[i*k+z] -= f * a[z*k+j]
			}
			for z := j + 1; z < i; z++ {
				a[z*k+i] = a[i*k+z]
			}
		}
	}
	return k
}

// step moves w along d: up to t = 1 for a Newton direction, as far as the
// first bound for a ray. A bound met on the way (first in index order on
// ties) joins the working set with the variable set exactly to it. It
// reports whether the full Newton step was taken.
func (s *QPSolver) step(ray bool) bool {
	var dmax float64
	for _, i := range s.free {
		dmax = math.Max(dmax, math.Abs(s.d[i]))
	}
	tiny := qpStepTiny * dmax
	t := 1.0
	if ray {
		t = math.Inf(1)
	}
	block := -1
	var blockState int8
	for _, i := range s.free {
		di := s.d[i]
		var ti float64
		var st int8
		switch {
		case di < -tiny:
			ti, st = (s.lo[i]-s.w[i])/di, qpLower
		case di > tiny:
			ti, st = (s.hi[i]-s.w[i])/di, qpUpper
		default:
			continue
		}
		ti = math.Max(ti, 0)
		if ti < t {
			t, block, blockState = ti, i, st
		}
	}
	if block < 0 && ray {
		// Every component is negligible: nothing to do but treat w as a
		// minimum (cannot happen for a normalised ray, kept for safety).
		return true
	}
	for _, i := range s.free {
		v := s.w[i] + t*s.d[i]
		s.w[i] = math.Min(math.Max(v, s.lo[i]), s.hi[i])
	}
	if block >= 0 {
		s.state[block] = blockState
		if blockState == qpLower {
			s.w[block] = s.lo[block]
		} else {
			s.w[block] = s.hi[block]
		}
		return false
	}
	return true
}

// nu is the multiplier of Σw = 1 at a minimum on the working set: minus the
// mean gradient of the free variables (they are all equal there).
func (s *QPSolver) nu() float64 {
	var sum float64
	var m int
	for i := 0; i < s.n; i++ {
		if s.state[i] == qpFree {
			sum += s.g[i]
			m++
		}
	}
	if m == 0 {
		return 0
	}
	return -sum / float64(m)
}

// release returns the working-set variable to free: the one with the most
// negative multiplier below −tol (ties: lower index), or with bland the
// lowest index with a negative multiplier; −1 when w is optimal.
func (s *QPSolver) release(tol float64, bland bool) int {
	nu := s.nu()
	best, worst := -1, -tol
	for i := 0; i < s.n; i++ {
		var m float64
		switch s.state[i] {
		case qpLower:
			m = s.g[i] + nu
		case qpUpper:
			m = -(s.g[i] + nu)
		default:
			continue
		}
		if m < worst {
			best, worst = i, m
			if bland {
				break
			}
		}
	}
	return best
}

// polish takes one more Newton step on the final working set when it stays
// within the bounds, which removes the rounding left by the path.
func (s *QPSolver) polish(gscale float64) {
	s.gradient()
	if s.direction(gscale) != qpDirNewton {
		return
	}
	for _, i := range s.free {
		v := s.w[i] + s.d[i]
		if v < s.lo[i] || v > s.hi[i] {
			return
		}
	}
	for _, i := range s.free {
		s.w[i] += s.d[i]
	}
}

// fixSum puts the rounding error of Σw on the free variable with the most
// room, so that Σw = 1 to the last bit or two and bounds stay exact.
func (s *QPSolver) fixSum() {
	sum, comp := 0.0, 0.0 // Kahan summation
	for _, v := range s.w[:s.n] {
		y := v - comp
		t := sum + y
		comp = (t - sum) - y
		sum = t
	}
	diff := (1 - sum) + comp
	if diff == 0 {
		return
	}
	best, room := -1, 0.0
	for i := 0; i < s.n; i++ {
		if s.state[i] != qpFree {
			continue
		}
		r := s.hi[i] - s.w[i]
		if diff < 0 {
			r = s.w[i] - s.lo[i]
		}
		if r > room {
			best, room = i, r
		}
	}
	if best >= 0 && room >= math.Abs(diff) {
		s.w[best] += diff
	}
}

// output writes the solution and its multipliers into sol.
func (s *QPSolver) output(sol *QPSolution, iter int) {
	n := s.n
	sol.W = qpGrow(sol.W, n)
	sol.Alpha = qpGrow(sol.Alpha, n)
	sol.Beta = qpGrow(sol.Beta, n)
	copy(sol.W, s.w[:n])
	nu := s.nu()
	sol.Nu = nu
	var quad, lin float64
	for i := 0; i < n; i++ {
		m := s.g[i] + nu
		sol.Alpha[i], sol.Beta[i] = 0, 0
		switch s.state[i] {
		case qpLower:
			sol.Alpha[i] = math.Max(m, 0)
		case qpUpper:
			sol.Beta[i] = math.Max(-m, 0)
		case qpFixed:
			sol.Alpha[i], sol.Beta[i] = math.Max(m, 0), math.Max(-m, 0)
		}
		lin += s.c[i] * s.w[i]
		// g + c = Qw, so ½wᵀQw = ½Σ w_i (g_i + c_i).
		quad += s.w[i] * (s.g[i] + s.c[i])
	}
	sol.Objective = lin - quad/2
	sol.Iterations = iter
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
