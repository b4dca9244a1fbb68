package ml

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"

	"github.com/obsqra/obsqra"
)

// OptimizeInput is the allocation problem of one user: the protocols'
// forecasts and risks, and the user's limits and tolerance.
type OptimizeInput struct {
	// ExpectedApyBps is each protocol's expected APY over the decision
	// period, in bps. Its length n (≥ 1) is the number of protocols.
	ExpectedApyBps []float64
	// Covariance is the n×n covariance of the protocols' APYs in bps²,
	// symmetric and positive semidefinite. Nil means: estimate it from
	// Histories with LedoitWolf. When set, Histories is ignored.
	Covariance *mat.SymDense
	// Histories holds each protocol's aligned APY history in bps (same
	// length T ≥ 2 for all), used when Covariance is nil. Nil as well means
	// zero covariance: the variance term then plays no part.
	Histories [][]float64
	// Risks holds each protocol's risk score, 0–100 (higher is riskier).
	Risks []float64
	// MaxSingleBps caps every weight, 1–10000 bps; n·MaxSingleBps must
	// reach 10000.
	MaxSingleBps int
	// MinDiversification is how many protocols must hold at least 1000 bps
	// each, 0–n (and at most 10, since ten such weights fill the portfolio).
	MinDiversification int
	// RiskAversion is λ in bps of APY per bps² of variance. Zero (the
	// default) means: take λ from RiskTolerance, or 0 when that is empty.
	RiskAversion float64
	// RiskTolerance is "" or LOW, MEDIUM or HIGH; see RiskAversionFor.
	RiskTolerance obsqra.RiskTolerance
	// RiskPenalty is ρ in bps of APY per risk point. Zero (the default)
	// means: take ρ from RiskTolerance, or 0 when that is empty.
	RiskPenalty float64
}

// Allocation is the optimal allocation: the continuous optimum and its
// rounding to integer bps, with the figures of the integer weights.
type Allocation struct {
	// Weights is the exact continuous optimum (after the diversification
	// step); it sums to 1.
	Weights []float64
	// WeightsBps is Weights in integer bps by the largest remainder: it
	// sums to exactly 10000, no weight exceeds MaxSingleBps, and at least
	// MinDiversification weights are 1000 bps or more (the contract's
	// CheckConstraints holds).
	WeightsBps []int
	// ExpectedApyBps is μᵀw for the integer weights, in bps.
	ExpectedApyBps float64
	// Variance is wᵀΣw for the integer weights, in bps².
	Variance float64
	// Objective is μᵀw − λ·wᵀΣw − ρ·rᵀw for the integer weights, in bps.
	Objective float64
	// Diversified reports whether the diversification step changed the
	// support: the continuous optimum had fewer than MinDiversification
	// weights of 1000 bps or more, and the floors of the best support were
	// imposed and the problem re-solved.
	Diversified bool
	// SearchComplete is false only when the diversification step ran out
	// of its budget of divMaxNodes QP solves before proving its support
	// best; Weights then hold the best support it found.
	SearchComplete bool
	// RiskAversion and RiskPenalty are the λ and ρ that were used.
	RiskAversion, RiskPenalty float64
	// Shrinkage is the Ledoit–Wolf intensity when the covariance was
	// estimated from Histories, else 0.
	Shrinkage float64
}

// Risk aversion and risk penalty for each tolerance; see RiskAversionFor.
const (
	lambdaLow, rhoLow       = 0.005, 10.0
	lambdaMedium, rhoMedium = 0.002, 4.0
	lambdaHigh, rhoHigh     = 0.0005, 1.0
)

// RiskAversionFor returns the risk aversion λ (bps of APY per bps² of
// variance) and the risk penalty ρ (bps of APY per risk point) for a
// tolerance:
//
//	LOW     λ = 0.005   ρ = 10
//	MEDIUM  λ = 0.002   ρ = 4
//	HIGH    λ = 0.0005  ρ = 1
//
// Why these numbers. The objective is in bps of APY, so λ·σ² is the APY a
// user would give up to remove a variance σ² (a certainty equivalent), and
// ρ·r what they would give up per risk point. Typical APYs are 100–2000
// bps and their standard deviations 20–300 bps. At LOW a single protocol
// with σ = 100 bps (10⁴ bps²) costs 50 bps and one with σ = 300 bps costs
// 450 bps — most of a typical yield, so a volatile rate must pay for
// itself — while 100 bps² costs 0.5 bps; MEDIUM charges 20 and 180 bps
// (0.2 bps per 100 bps²), HIGH 5 and 45 bps (0.05 bps per 100 bps²), so a
// HIGH user follows the best rate unless it is wildly unstable.
// Diversification lowers the charge further: wᵀΣw falls as weight
// spreads over protocols that do not move together. For risk, 10 points of
// RiskEngine score cost 100 bps at LOW, 40 bps at MEDIUM and 10 bps at
// HIGH: a LOW user needs 500 bps more APY to prefer a protocol scored 70
// over one scored 20, a HIGH user 50 bps.
//
// Errors: EINVALID for anything but LOW, MEDIUM or HIGH.
func RiskAversionFor(t obsqra.RiskTolerance) (lambda, rho float64, err error) {
	switch t {
	case obsqra.RiskLow:
		return lambdaLow, rhoLow, nil
	case obsqra.RiskMedium:
		return lambdaMedium, rhoMedium, nil
	case obsqra.RiskHigh:
		return lambdaHigh, rhoHigh, nil
	}
	return 0, 0, obsqra.Errorf(obsqra.EINVALID, "risk tolerance %q is not LOW, MEDIUM or HIGH", string(t))
}

// Diversification step: the weight a protocol must hold to count, the most
// QP solves the support search may spend, and the most the local search
// after an exhausted one may spend on top.
const (
	divFloorBps = 1000
	divFloor    = 0.1
	divMaxNodes = 2000
	divMaxSwaps = 20000
)

// Optimize returns the allocation that maximises μᵀw − λ·wᵀΣw − ρ·rᵀw
// over weights w ≥ 0 summing to 1 with w_i ≤ MaxSingleBps/10000, such that
// at least MinDiversification protocols hold 1000 bps or more, rounded to
// integer bps.
//
// The continuous problem is solved exactly by QPSolver. When its optimum
// already has MinDiversification weights of 1000 bps or more, that is the
// answer. Otherwise the constraint is combinatorial: which m =
// MinDiversification protocols hold the floor. Optimize finds the best
// support by branch and bound. A node is a set S of protocols given the
// floor 0.1 (others stay free in [0, cap]); its QP optimum bounds every
// superset of S from above, because adding floors only removes
// allocations. Nodes are explored depth first, adding protocols in a fixed
// ranking — by their continuous weight, then by their stand-alone score
// μ_i − ρr_i − λΣ_ii, then by index — so the first leaf is the natural
// greedy choice; a node is pruned when its bound does not beat the best
// allocation found by more than 1e-9 (relative), and closed when its QP
// optimum already has m weights of at least 1000 bps. A child is skipped
// without a solve when its parent's bound minus 0.1·α_i (α_i the parent's
// multiplier of w_i ≥ 0; the optimal value is concave in the floors, so
// this bounds the child's whole subtree) cannot beat the best either, and
// each child's QP starts from its parent's optimum. The search visits
// every m-subset it cannot prune, so its result is the exact optimum of
// the combinatorial problem (ties: the first found). For n = 10 there are
// at most 1024 nodes; when a search exceeds divMaxNodes solves (large n
// with a large MinDiversification) it stops, improves the best support
// found by single swaps until no swap of one floored protocol for another
// helps (improve), and reports SearchComplete = false: the result is then
// optimal among its neighbours, not proven optimal.
//
// The weights are rounded by RoundBps with each protocol's cap, and a floor
// of 1000 bps for every weight of at least 0.1, so the integer weights keep
// the diversification.
//
// Errors: EINVALID naming the field when the input is malformed or the
// constraints cannot be met: no protocols, lengths that differ, numbers
// that are not finite, a risk outside 0–100, MaxSingleBps outside
// 1–10000 or n·MaxSingleBps < 10000, MinDiversification outside 0–n or
// above 10, a cap below 1000 bps with MinDiversification > 0, a negative
// RiskAversion or RiskPenalty, an unknown RiskTolerance, or a covariance
// (given or estimated) that is not n×n, symmetric and positive
// semidefinite.
func Optimize(in OptimizeInput) (Allocation, error) {
	n := len(in.ExpectedApyBps)
	if err := in.validate(); err != nil {
		return Allocation{}, err
	}
	a := Allocation{SearchComplete: true}
	lambda, rho, err := in.aversion()
	if err != nil {
		return Allocation{}, err
	}
	a.RiskAversion, a.RiskPenalty = lambda, rho
	var sigma mat.Matrix
	switch {
	case in.Covariance != nil:
		sigma = in.Covariance
	case in.Histories != nil:
		s, delta, err := LedoitWolf(in.Histories)
		if err != nil {
			return Allocation{}, err
		}
		sigma, a.Shrinkage = s, delta
	}
	capW := float64(in.MaxSingleBps) / 10000
	ws := divSearch{
		lower: make([]float64, n),
		upper: make([]float64, n),
		m:     in.MinDiversification,
	}
	for i := range ws.upper {
		ws.upper[i] = capW
	}
	p := QP{Mu: in.ExpectedApyBps, Sigma: sigma, Risk: in.Risks, Lambda: lambda, Rho: rho}
	ws.solver.sigmaName = "covariance"
	if err := ws.solver.load(p); err != nil {
		return Allocation{}, err
	}
	if err := ws.solve(); err != nil {
		return Allocation{}, err
	}
	w := append([]float64(nil), ws.sol.W...)
	if divCount(w) < ws.m {
		a.Diversified = true
		if err := ws.search(p); err != nil {
			return Allocation{}, err
		}
		if !ws.found {
			// The first path of the search reaches a support of m floors
			// within m+1 solves, far inside the budget.
			return Allocation{}, fmt.Errorf("ml: diversification search found no support")
		}
		if ws.exhausted {
			if err := ws.improve(); err != nil {
				return Allocation{}, err
			}
		}
		w = ws.bestW
		a.SearchComplete = !ws.exhausted
	}
	a.Weights = w
	lo, hi := make([]int, n), make([]int, n)
	for i := range w {
		hi[i] = in.MaxSingleBps
		if w[i] >= divFloor {
			lo[i] = divFloorBps
		}
	}
	a.WeightsBps, err = RoundBps(w, 10000, lo, hi)
	if err != nil {
		return Allocation{}, err
	}
	a.ExpectedApyBps, a.Variance, a.Objective = allocationFigures(a.WeightsBps, in.ExpectedApyBps, sigma, in.Risks, lambda, rho)
	return a, nil
}

// Bounds of Optimize's inputs, far beyond any real market (an APY of
// 100,000 %, a standard deviation of 10⁶ bps) but small enough that no
// figure of the objective can overflow.
const (
	optMaxAPY        = 1e7
	optMaxCovariance = 1e12
	optMaxAversion   = 1e6
)

// validate checks the fields Optimize reads directly; the covariance's
// symmetry and semidefiniteness are checked by the QP.
func (in *OptimizeInput) validate() error {
	n := len(in.ExpectedApyBps)
	if n == 0 {
		return obsqra.Errorf(obsqra.EINVALID, "expectedApyBps is empty: there are no protocols to allocate to")
	}
	for i, v := range in.ExpectedApyBps {
		if !(math.Abs(v) <= optMaxAPY) {
			return obsqra.Errorf(obsqra.EINVALID, "expectedApyBps[%d] = %v is not a number of bps between −%g and %g", i, v, optMaxAPY, optMaxAPY)
		}
	}
	if len(in.Risks) != n {
		return obsqra.Errorf(obsqra.EINVALID, "risks has %d entries but expectedApyBps has %d", len(in.Risks), n)
	}
	for i, r := range in.Risks {
		if !(r >= 0 && r <= 100) {
			return obsqra.Errorf(obsqra.EINVALID, "risks[%d] = %v is not a score between 0 and 100", i, r)
		}
	}
	if in.Covariance != nil {
		if r := in.Covariance.SymmetricDim(); r != n {
			return obsqra.Errorf(obsqra.EINVALID, "covariance is %d×%d but there are %d protocols", r, r, n)
		}
		for i := range n {
			for j := range n {
				if v := in.Covariance.At(i, j); !(math.Abs(v) <= optMaxCovariance) {
					return obsqra.Errorf(obsqra.EINVALID, "covariance[%d][%d] = %v is not a number of bps² between −%g and %g", i, j, v, optMaxCovariance, optMaxCovariance)
				}
			}
		}
	} else if in.Histories != nil {
		if len(in.Histories) != n {
			return obsqra.Errorf(obsqra.EINVALID, "histories has %d series but there are %d protocols", len(in.Histories), n)
		}
		for i, h := range in.Histories {
			for k, v := range h {
				if !(math.Abs(v) <= optMaxAPY) {
					return obsqra.Errorf(obsqra.EINVALID, "histories[%d][%d] = %v is not a number of bps between −%g and %g", i, k, v, optMaxAPY, optMaxAPY)
				}
			}
		}
	}
	if in.MaxSingleBps < 1 || in.MaxSingleBps > 10000 {
		return obsqra.Errorf(obsqra.EINVALID, "maxSingleBps must be between 1 and 10000, got %d", in.MaxSingleBps)
	}
	if n*in.MaxSingleBps < 10000 {
		return obsqra.Errorf(obsqra.EINVALID, "maxSingleBps = %d allows at most %d bps over %d protocol(s), short of the 10000 to invest", in.MaxSingleBps, n*in.MaxSingleBps, n)
	}
	m := in.MinDiversification
	if m < 0 || m > n {
		return obsqra.Errorf(obsqra.EINVALID, "minDiversification must be between 0 and the %d protocols, got %d", n, m)
	}
	if m*divFloorBps > 10000 {
		return obsqra.Errorf(obsqra.EINVALID, "minDiversification = %d needs %d bps at 1000 bps each, more than 10000", m, m*divFloorBps)
	}
	if m > 0 && in.MaxSingleBps < divFloorBps {
		return obsqra.Errorf(obsqra.EINVALID, "maxSingleBps = %d is below the 1000 bps a protocol must hold to count for minDiversification = %d", in.MaxSingleBps, m)
	}
	if !(in.RiskAversion >= 0 && in.RiskAversion <= optMaxAversion) {
		return obsqra.Errorf(obsqra.EINVALID, "riskAversion must be between 0 and %g, got %v", optMaxAversion, in.RiskAversion)
	}
	if !(in.RiskPenalty >= 0 && in.RiskPenalty <= optMaxAversion) {
		return obsqra.Errorf(obsqra.EINVALID, "riskPenalty must be between 0 and %g, got %v", optMaxAversion, in.RiskPenalty)
	}
	return nil
}

// aversion resolves λ and ρ: explicit values win, then the tolerance's.
func (in *OptimizeInput) aversion() (lambda, rho float64, err error) {
	if in.RiskTolerance != "" {
		lambda, rho, err = RiskAversionFor(in.RiskTolerance)
		if err != nil {
			return 0, 0, obsqra.Errorf(obsqra.EINVALID, "riskTolerance %q is not LOW, MEDIUM or HIGH", string(in.RiskTolerance))
		}
	}
	if in.RiskAversion > 0 {
		lambda = in.RiskAversion
	}
	if in.RiskPenalty > 0 {
		rho = in.RiskPenalty
	}
	return lambda, rho, nil
}

// divCount is the number of weights of at least 0.1 (1000 bps).
func divCount(w []float64) int {
	var k int
	for _, v := range w {
		if v >= divFloor {
			k++
		}
	}
	return k
}

// divSearch is the branch and bound over supports of the diversification
// step. lower holds the floors of the current node; nodeW[k] and
// nodeObj[k] hold the optimum of the node at depth k on the current path.
type divSearch struct {
	solver       QPSolver
	sol          QPSolution
	lower, upper []float64
	m            int
	order        []int
	nodeW        [][]float64
	nodeAlpha    [][]float64
	nodeObj      []float64
	best         float64
	bestW        []float64
	found        bool
	nodes        int
	exhausted    bool
}

// tol is the least improvement on the best objective found that counts.
func (d *divSearch) tol() float64 { return 1e-9 * (1 + math.Abs(d.best)) }

// solve solves the loaded QP with the current bounds into d.sol.
func (d *divSearch) solve() error {
	if err := d.solver.setBounds(d.lower, d.upper); err != nil {
		return err
	}
	return d.solver.run(&d.sol)
}

// solveFrom solves the loaded QP with the current bounds into d.sol,
// starting near w, the optimum of the parent node.
func (d *divSearch) solveFrom(w []float64) error {
	if err := d.solver.setBounds(d.lower, d.upper); err != nil {
		return err
	}
	return d.solver.runFrom(w, &d.sol)
}

// search runs the branch and bound from the root (no floors), whose
// optimum is in d.sol.
func (d *divSearch) search(p QP) error {
	n := len(d.lower)
	// Rank: continuous weight, then stand-alone score, then index.
	score := make([]float64, n)
	for i := range score {
		score[i] = p.Mu[i] - p.Rho*p.Risk[i] - d.solver.q[i*n+i]/2
	}
	d.nodeW = make([][]float64, d.m+1)
	d.nodeAlpha = make([][]float64, d.m+1)
	for k := range d.nodeW {
		d.nodeW[k] = make([]float64, n)
		d.nodeAlpha[k] = make([]float64, n)
	}
	d.nodeObj = make([]float64, d.m+1)
	copy(d.nodeW[0], d.sol.W)
	copy(d.nodeAlpha[0], d.sol.Alpha)
	d.nodeObj[0] = d.sol.Objective
	root := d.nodeW[0]
	d.order = make([]int, n)
	for i := range d.order {
		d.order[i] = i
	}
	slices.SortStableFunc(d.order, func(a, b int) int {
		if c := cmp.Compare(root[b], root[a]); c != 0 {
			return c
		}
		return cmp.Compare(score[b], score[a])
	})
	d.bestW = make([]float64, n)
	return d.visit(0, 0)
}

// visit explores the node at depth (its floors in d.lower, its optimum in
// nodeW[depth]); its children add the protocol at one order position from
// start on.
func (d *divSearch) visit(start, depth int) error {
	w, alpha, obj := d.nodeW[depth], d.nodeAlpha[depth], d.nodeObj[depth]
	if d.found && obj <= d.best+d.tol() {
		return nil // no superset of this support can do better
	}
	if divCount(w) >= d.m {
		d.best, d.found = obj, true
		copy(d.bestW, w)
		return nil
	}
	n := len(d.lower)
	need := d.m - depth
	if need <= 0 {
		return nil
	}
	for pos := start; pos <= n-need; pos++ {
		i := d.order[pos]
		// The optimal value is concave in the bounds, with slope −α_i in
		// l_i: raising l_i from 0 to 0.1 costs at least 0.1·α_i, for the
		// child and every support below it.
		if d.found && obj-divFloor*alpha[i] <= d.best+d.tol() {
			continue
		}
		d.lower[i] = divFloor
		if w[i] >= divFloor {
			// The floor does not bind: the child's optimum is this node's.
			copy(d.nodeW[depth+1], w)
			copy(d.nodeAlpha[depth+1], alpha)
			d.nodeObj[depth+1] = obj
		} else {
			if d.nodes >= divMaxNodes {
				d.lower[i] = 0
				d.exhausted = true
				return nil
			}
			d.nodes++
			if err := d.solveFrom(w); err != nil {
				return err
			}
			copy(d.nodeW[depth+1], d.sol.W)
			copy(d.nodeAlpha[depth+1], d.sol.Alpha)
			d.nodeObj[depth+1] = d.sol.Objective
		}
		err := d.visit(pos+1, depth+1)
		d.lower[i] = 0
		if err != nil || d.exhausted {
			return err
		}
	}
	return nil
}

// improve is a local search from the best support found by an exhausted
// search. Its floors sit on the m heaviest weights of the best allocation
// (ties: lower index); a swap of one of them for a protocol without a floor
// is taken as soon as it raises the objective, and the floors are then
// placed anew on the heaviest weights. It stops when no swap helps, so the
// result is optimal among its single-swap neighbours, or when divMaxSwaps
// solves are spent. Scans run in index order: the result is deterministic.
func (d *divSearch) improve() error {
	n := len(d.lower)
	order := make([]int, n)
	held := make([]bool, n)
	defer func() {
		for i := range d.lower {
			d.lower[i] = 0
		}
	}()
	budget := divMaxSwaps
	for {
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(d.bestW[b], d.bestW[a]) })
		floors := order[:d.m]
		for i := range held {
			held[i] = false
		}
		for _, i := range floors {
			held[i] = true
		}
		improved := false
		for k := 0; k < len(floors) && !improved; k++ {
			for j := 0; j < n && !improved; j++ {
				if held[j] {
					continue
				}
				if budget == 0 {
					return nil
				}
				budget--
				for i := range d.lower {
					d.lower[i] = 0
					if held[i] {
						d.lower[i] = divFloor
					}
				}
				d.lower[floors[k]], d.lower[j] = 0, divFloor
				if err := d.solveFrom(d.bestW); err != nil {
					return err
				}
				if d.sol.Objective > d.best+d.tol() && divCount(d.sol.W) >= d.m {
					d.best = d.sol.Objective
					copy(d.bestW, d.sol.W)
					improved = true
				}
			}
		}
		if !improved {
			return nil
		}
	}
}

// allocationFigures returns μᵀw, wᵀΣw and the objective for integer weights.
func allocationFigures(bps []int, mu []float64, sigma mat.Matrix, risks []float64, lambda, rho float64) (apy, variance, objective float64) {
	n := len(bps)
	var risk float64
	for i, b := range bps {
		f := float64(b) / 10000
		apy += mu[i] * f
		risk += risks[i] * f
	}
	if sigma != nil {
		for i := 0; i < n; i++ {
			fi := float64(bps[i]) / 10000
			if fi == 0 {
				continue
			}
			for j := 0; j < n; j++ {
				variance += fi * sigma.At(i, j) * (float64(bps[j]) / 10000)
			}
		}
	}
	return apy, variance, apy - lambda*variance - rho*risk
}
