package ml

import (
	"fmt"
	"math"
)

// This file is the QP solver's method: the primal active-set iteration
// described on QPSolver, from its starting points (cold and warm) to the
// finish (Newton polish, sum repair, multipliers). The problem it works on
// is loaded and validated in qp.go; its dense kernels are in qp_linalg.go.

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
