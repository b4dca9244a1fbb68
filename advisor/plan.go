package advisor

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// maxPortfolioUsd bounds a portfolio value (a quadrillion USD): the costs
// are computed in float64, exact to the cent far beyond it.
var maxPortfolioUsd = big.NewRat(1e15, 1)

// z80 is the standard normal quantile of 0.9: an 80 % interval spans ±z80 σ.
const z80 = 1.2815515655446004

// planSpec is what a plan is made for: resolved limits and protocols.
type planSpec struct {
	slugs             []string // nil: every enabled protocol with history
	tolerance         obsqra.RiskTolerance
	maxSingle, minDiv int
	maxVol, maxTier   int
	// signed is the user's active signed constraint set, which the limits
	// above already obey; nil when they signed none.
	signed            *obsqra.SignedConstraints
	value             obsqra.Decimal
	thresholdBps      int
	userID            int64
	explicitProtocols bool
	explicitMaxSingle bool
	explicitMinDivers bool
}

// preferences returns the signed-in user's preferences, or the defaults
// for an anonymous caller, and the user's id (0 when anonymous).
// Errors: refused credentials (see obsqra.Viewer).
func preferences(ctx context.Context) (obsqra.Preferences, int64, error) {
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return obsqra.Preferences{}, 0, err
	}
	if u != nil {
		return u.Preferences, u.ID, nil
	}
	return obsqra.DefaultPreferences(), 0, nil
}

// resolve fills in what in leaves out from prefs and checks the ranges.
// Errors: EINVALID naming the field.
func resolve(in obsqra.OptimizeAllocationInput, prefs obsqra.Preferences) (planSpec, error) {
	sp := planSpec{
		tolerance: prefs.RiskTolerance, maxSingle: prefs.MaxSingleBps, minDiv: prefs.MinDiversification,
		maxVol: prefs.MaxVolatilityBps, maxTier: prefs.MaxLiquidityTier,
		value: obsqra.DefaultPortfolioValueUsd, thresholdBps: prefs.RebalanceThresholdBps,
	}
	if in.Protocols != nil {
		if len(in.Protocols) == 0 || len(in.Protocols) > 100 {
			return sp, obsqra.Errorf(obsqra.EINVALID, "input.protocols must name 1 to 100 protocols, got %d", len(in.Protocols))
		}
		seen := make(map[string]bool, len(in.Protocols))
		for i, slug := range in.Protocols {
			if seen[slug] {
				return sp, obsqra.Errorf(obsqra.EINVALID, "input.protocols[%d]: %s is named twice", i, obsqra.QuoteInput(slug))
			}
			seen[slug] = true
		}
		sp.slugs, sp.explicitProtocols = in.Protocols, true
	}
	if in.RiskTolerance != nil {
		sp.tolerance = *in.RiskTolerance
	}
	if in.MaxSingleBps != nil {
		sp.maxSingle, sp.explicitMaxSingle = *in.MaxSingleBps, true
	}
	if in.MinDiversification != nil {
		sp.minDiv, sp.explicitMinDivers = *in.MinDiversification, true
	}
	if in.MaxVolatilityBps != nil {
		sp.maxVol = *in.MaxVolatilityBps
	}
	if in.MaxLiquidityTier != nil {
		sp.maxTier = *in.MaxLiquidityTier
	}
	if in.PortfolioValueUsd != nil {
		sp.value = *in.PortfolioValueUsd
	}
	switch {
	case !sp.tolerance.IsValid():
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.riskTolerance must be LOW, MEDIUM or HIGH")
	case sp.maxSingle < 1 || sp.maxSingle > 10000:
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.maxSingleBps must be between 1 and 10000 basis points, got %d", sp.maxSingle)
	case sp.minDiv < 0 || sp.minDiv > obsqra.MaxDiversification:
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.minDiversification must be between 0 and %d, got %d", obsqra.MaxDiversification, sp.minDiv)
	case sp.maxVol < 0 || sp.maxVol > obsqra.MaxVolatility:
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.maxVolatilityBps must be between 0 and %d basis points, got %d", obsqra.MaxVolatility, sp.maxVol)
	case sp.maxTier < 0 || sp.maxTier > obsqra.MaxLiquidityTier:
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.maxLiquidityTier must be between 0 (deepest) and %d, got %d", obsqra.MaxLiquidityTier, sp.maxTier)
	case sp.value.Rat().Sign() <= 0 || sp.value.Rat().Cmp(maxPortfolioUsd) > 0:
		return sp, obsqra.Errorf(obsqra.EINVALID, "input.portfolioValueUsd must be more than 0 and at most 1e15 USD, got %s", sp.value)
	}
	return sp, nil
}

// marketView is the data a plan is made from: the protocols it may use
// with their histories and yield forecasts, in protocol id order.
type marketView struct {
	protocols []*obsqra.Protocol
	points    map[int64][]obsqra.DailyPoint
	yield     map[int64]obsqra.Forecast
	// extra holds protocols outside the plan that the user holds (disabled
	// ones, or ones without enough history), by id.
	extra map[int64]*obsqra.Protocol
}

// view loads the market for sp in two statements (the protocols, then
// every history) and forecasts each protocol's yield. held are protocols
// the user holds, loaded too even when the plan cannot use them.
// Errors: EINVALID for an unknown, disabled or history-less protocol named
// in sp; ENOTFOUND when no protocol has enough history; internal ones.
func (s *Service) view(ctx context.Context, sp planSpec, held []obsqra.Weight) (*marketView, error) {
	all, err := s.db.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	bySlug := make(map[string]*obsqra.Protocol, len(all))
	byID := make(map[int64]*obsqra.Protocol, len(all))
	for i := range all {
		bySlug[all[i].Slug], byID[all[i].ID] = &all[i], &all[i]
	}
	var cand []*obsqra.Protocol
	if sp.explicitProtocols {
		for i, slug := range sp.slugs {
			p, ok := bySlug[slug]
			switch {
			case !ok:
				return nil, obsqra.Errorf(obsqra.EINVALID, "input.protocols[%d]: there is no protocol %s", i, obsqra.QuoteInput(slug))
			case !p.Enabled:
				return nil, obsqra.Errorf(obsqra.EINVALID, "input.protocols[%d]: %s is disabled", i, slug)
			}
			cand = append(cand, p)
		}
	} else {
		for i := range all {
			if all[i].Enabled {
				cand = append(cand, &all[i])
			}
		}
	}
	load := slices.Clone(cand)
	inCand := make(map[int64]bool, len(cand))
	for _, p := range cand {
		inCand[p.ID] = true
	}
	for _, w := range held {
		if p, ok := byID[w.ProtocolID]; ok && !inCand[w.ProtocolID] {
			load = append(load, p)
		}
	}
	points, err := s.histories(ctx, load)
	if err != nil {
		return nil, err
	}
	v := &marketView{points: points, yield: make(map[int64]obsqra.Forecast), extra: make(map[int64]*obsqra.Protocol)}
	for i, p := range cand {
		f, err := s.forecast(obsqra.PredictionYieldForecast, p, points[p.ID], s.cfg.HorizonDays, nil)
		if err == nil && lastRisk(points[p.ID]) == nil {
			err = obsqra.Errorf(obsqra.ENOTFOUND, "%s has no risk score yet", p.Slug)
		}
		if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
			if sp.explicitProtocols {
				return nil, obsqra.Errorf(obsqra.EINVALID, "input.protocols[%d]: %s", i, obsqra.ErrorMessage(err))
			}
			v.extra[p.ID] = p
			continue
		} else if err != nil {
			return nil, err
		}
		v.yield[p.ID] = f
		v.protocols = append(v.protocols, p)
	}
	for _, w := range held {
		if p, ok := byID[w.ProtocolID]; ok && !inCand[w.ProtocolID] {
			v.extra[p.ID] = p
		}
	}
	if len(v.protocols) == 0 {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no protocol has the %d days of history a plan needs yet", minForecastDays)
	}
	slices.SortFunc(v.protocols, func(a, b *obsqra.Protocol) int { return int(a.ID - b.ID) })
	return v, nil
}

// lastRisk returns the newest risk score among points, or nil.
func lastRisk(points []obsqra.DailyPoint) *int {
	if pt := lastScored(points); pt != nil {
		return pt.RiskScore
	}
	return nil
}

// lastScored returns the newest scored point among points, or nil.
func lastScored(points []obsqra.DailyPoint) *obsqra.DailyPoint {
	for i := len(points) - 1; i >= 0; i-- {
		if points[i].RiskScore != nil {
			return &points[i]
		}
	}
	return nil
}

// OptimizationInputs are a plan's recorded inputs: everything decide needs
// to compute it again, bit for bit.
type OptimizationInputs struct {
	UserID             int64                `json:"userId"`
	Protocols          []string             `json:"protocols"`
	ProtocolIDs        []int64              `json:"protocolIds"`
	ExpectedApyBps     []float64            `json:"expectedApyBps"`
	ApySigmaBps        []float64            `json:"apySigmaBps"`
	LatestApyBps       []int64              `json:"latestApyBps"`
	Risks              []int64              `json:"risks"`
	Histories          [][]float64          `json:"histories"`
	RiskTolerance      obsqra.RiskTolerance `json:"riskTolerance"`
	MaxSingleBps       int                  `json:"maxSingleBps"`
	MinDiversification int                  `json:"minDiversification"`
	// MaxVolatilityBps and MaxLiquidityTier exclude the protocols above
	// them, by VolatilityBps and LiquidityTiers: the volatility and tier
	// each protocol's latest risk score was computed with. Decisions
	// recorded before these limits have none of the four.
	MaxVolatilityBps *int    `json:"maxVolatilityBps,omitempty"`
	MaxLiquidityTier *int    `json:"maxLiquidityTier,omitempty"`
	VolatilityBps    []int64 `json:"volatilityBps,omitempty"`
	LiquidityTiers   []int64 `json:"liquidityTiers,omitempty"`
	// SignedConstraintsID is the signed constraint set the limits obey
	// (they are at least as strict), 0 when the user had signed none.
	SignedConstraintsID int64          `json:"signedConstraintsId,omitempty"`
	PortfolioValueUsd   obsqra.Decimal `json:"portfolioValueUsd"`
	HorizonDays         int            `json:"horizonDays"`
	// Rebalance is set when the user holds an allocation to move from.
	Rebalance *RebalanceInputs `json:"rebalance,omitempty"`
}

// RebalanceInputs are the recorded inputs of the move to a plan.
type RebalanceInputs struct {
	AllocationID int64 `json:"allocationId"`
	// Held are holdings outside the plan's protocols (target 0), with
	// their expected APY.
	Held          []HeldOutside `json:"held"`
	CurrentBps    []int         `json:"currentBps"`
	GasUsdPerMove float64       `json:"gasUsdPerMove"`
	SlippageBps   float64       `json:"slippageBps"`
	PaybackDays   int           `json:"paybackDays"`
	ThresholdBps  int           `json:"thresholdBps"`
	Seed          uint64        `json:"seed"`
}

// HeldOutside is a holding in a protocol the plan does not use.
type HeldOutside struct {
	ProtocolID     int64   `json:"protocolId"`
	Slug           string  `json:"slug"`
	WeightBps      int     `json:"weightBps"`
	ExpectedApyBps float64 `json:"expectedApyBps"`
}

// Decided is what decide computes: the plan and, with an allocation to
// move from, the suggestion. It is a decision's recorded output.
type Decided struct {
	Plan       obsqra.AllocationPlan       `json:"plan"`
	Suggestion *obsqra.RebalanceSuggestion `json:"suggestion,omitempty"`
}

// decide computes a plan, and the rebalance to it, from recorded inputs
// alone: the same inputs always give the same output, which is what lets
// a decision be verified. Errors: EINVALID for limits the protocols cannot
// meet; internal ones.
func decide(in OptimizationInputs) (Decided, error) {
	n := len(in.ProtocolIDs)
	if n == 0 || len(in.ExpectedApyBps) != n || len(in.Risks) != n || len(in.LatestApyBps) != n || len(in.ApySigmaBps) != n {
		return Decided{}, fmt.Errorf("optimization inputs: inconsistent lengths")
	}
	use, err := in.eligible()
	if err != nil {
		return Decided{}, err
	}
	m := len(use)
	if in.MaxSingleBps*m < 10000 {
		return Decided{}, obsqra.Errorf(obsqra.EINVALID,
			"maxSingleBps %d cannot place 10000 bps in %s: it must be at least %d", in.MaxSingleBps, in.protocolsLeft(m), (10000+m-1)/m)
	}
	if in.MinDiversification > m {
		return Decided{}, obsqra.Errorf(obsqra.EINVALID,
			"minDiversification %d exceeds %s", in.MinDiversification, in.protocolsLeft(m))
	}
	if in.MinDiversification*1000 > 10000 || (in.MinDiversification > 0 && in.MaxSingleBps < 1000) {
		return Decided{}, obsqra.Errorf(obsqra.EINVALID,
			"minDiversification %d needs weights of at least 1000 bps, which maxSingleBps %d does not allow", in.MinDiversification, in.MaxSingleBps)
	}
	risks := make([]float64, n)
	for i, r := range in.Risks {
		risks[i] = float64(r)
	}
	// The optimiser sees only the protocols the limits leave; the others
	// get 0.
	mu, rs := make([]float64, m), make([]float64, m)
	var hist [][]float64
	if len(in.Histories) == n && len(in.Histories[0]) >= 2 {
		hist = make([][]float64, m)
	}
	for j, i := range use {
		mu[j], rs[j] = in.ExpectedApyBps[i], risks[i]
		if hist != nil {
			hist[j] = in.Histories[i]
		}
	}
	alloc, err := ml.Optimize(ml.OptimizeInput{
		ExpectedApyBps: mu, Histories: hist, Risks: rs,
		MaxSingleBps: in.MaxSingleBps, MinDiversification: in.MinDiversification, RiskTolerance: in.RiskTolerance,
	})
	if err != nil {
		return Decided{}, fmt.Errorf("optimize: %w", err)
	}
	weights := make([]int, n)
	for j, i := range use {
		weights[i] = alloc.WeightsBps[j]
	}
	apys := make([]int64, n)
	for i, a := range in.LatestApyBps {
		apys[i] = min(max(a, 0), 10_000_000)
	}
	parity, err := ml.ParityAllocation(in.Risks, apys)
	if err != nil {
		return Decided{}, fmt.Errorf("parity allocation: %w", err)
	}
	w64 := make([]int64, n)
	plan := obsqra.AllocationPlan{
		RiskTolerance: in.RiskTolerance, MaxSingleBps: in.MaxSingleBps, MinDiversification: in.MinDiversification,
		MaxVolatilityBps: in.MaxVolatilityBps, MaxLiquidityTier: in.MaxLiquidityTier,
		PortfolioValueUsd: in.PortfolioValueUsd, HorizonDays: in.HorizonDays,
	}
	var risk float64
	for i, id := range in.ProtocolIDs {
		w := weights[i]
		w64[i] = int64(w)
		plan.Weights = append(plan.Weights, obsqra.Weight{ProtocolID: id, WeightBps: w})
		plan.ParityWeights = append(plan.ParityWeights, obsqra.Weight{ProtocolID: id, WeightBps: int(parity[i])})
		risk += float64(w) * risks[i]
	}
	plan.ExpectedApyBps = int(math.Round(alloc.ExpectedApyBps))
	plan.PortfolioRiskScore = round4(risk / 10000)
	plan.ConstraintsMet = ml.CheckConstraints(w64, int64(in.MaxSingleBps), int64(in.MinDiversification))
	out := Decided{Plan: plan}
	if in.Rebalance == nil {
		return out, nil
	}
	sug, err := rebalance(in, plan)
	if err != nil {
		return Decided{}, err
	}
	out.Suggestion = sug
	return out, nil
}

// rebalance computes the move from the recorded allocation to plan.
func rebalance(in OptimizationInputs, plan obsqra.AllocationPlan) (*obsqra.RebalanceSuggestion, error) {
	rb := in.Rebalance
	n := len(in.ProtocolIDs)
	ids := slices.Clone(in.ProtocolIDs)
	mu := slices.Clone(in.ExpectedApyBps)
	sigma := slices.Clone(in.ApySigmaBps)
	target := make([]int, 0, n+len(rb.Held))
	for _, w := range plan.Weights {
		target = append(target, w.WeightBps)
	}
	for _, h := range rb.Held {
		ids = append(ids, h.ProtocolID)
		mu = append(mu, h.ExpectedApyBps)
		sigma = append(sigma, 0)
		target = append(target, 0)
	}
	if len(rb.CurrentBps) != len(ids) {
		return nil, fmt.Errorf("rebalance inputs: %d current weights for %d protocols", len(rb.CurrentBps), len(ids))
	}
	value, _ := in.PortfolioValueUsd.Rat().Float64()
	r, err := ml.SuggestRebalance(ml.RebalanceInput{
		CurrentBps: rb.CurrentBps, TargetBps: target, ExpectedApyBps: mu, ApySigmaBps: sigma,
		PortfolioValueUsd: value, GasCostUsdPerMove: rb.GasUsdPerMove, SlippageBps: rb.SlippageBps,
		HorizonDays: rb.PaybackDays, ThresholdBps: rb.ThresholdBps, Seed: rb.Seed,
	})
	if err != nil {
		return nil, fmt.Errorf("suggest rebalance: %w", err)
	}
	s := &obsqra.RebalanceSuggestion{
		AllocationID: rb.AllocationID, ExpectedImprovementBps: round4(r.NetImprovementBps),
		CostUsd: usd(r.CostUsd), ClearsThreshold: r.ClearsThreshold, ThresholdBps: rb.ThresholdBps,
		Confidence: round4(r.Confidence), Tolerance: in.RiskTolerance, Plan: plan,
	}
	if !math.IsInf(r.BreakEvenDays, 0) && !math.IsNaN(r.BreakEvenDays) {
		d := round4(r.BreakEvenDays)
		s.BreakEvenDays = &d
	}
	for i, id := range ids {
		s.Current = append(s.Current, obsqra.Weight{ProtocolID: id, WeightBps: rb.CurrentBps[i]})
		s.Target = append(s.Target, obsqra.Weight{ProtocolID: id, WeightBps: target[i]})
	}
	for _, t := range r.Trades {
		i := t.Protocol
		s.Trades = append(s.Trades, obsqra.RebalanceTrade{
			ProtocolID: ids[i], FromBps: rb.CurrentBps[i], ToBps: target[i], AmountUsd: usd(t.AmountUsd),
		})
	}
	return s, nil
}

// round4 rounds x to 4 decimals: recorded figures stay short and compare
// exactly after a JSON round trip.
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// usd formats an amount in USD to the cent.
func usd(x float64) obsqra.Decimal {
	d, err := obsqra.ParseDecimal(strconv.FormatFloat(math.Round(x*100)/100, 'f', 2, 64))
	if err != nil {
		return obsqra.MustDecimal("0")
	}
	return d
}

// inputs gathers a plan's inputs from the market view and, when the user
// holds one, their allocation.
func (s *Service) inputs(v *marketView, sp planSpec, current *obsqra.Allocation) (OptimizationInputs, error) {
	in := OptimizationInputs{
		UserID: sp.userID, RiskTolerance: sp.tolerance, MaxSingleBps: sp.maxSingle,
		MinDiversification: sp.minDiv, PortfolioValueUsd: sp.value, HorizonDays: s.cfg.HorizonDays,
		MaxVolatilityBps: &sp.maxVol, MaxLiquidityTier: &sp.maxTier,
	}
	if sp.signed != nil {
		in.SignedConstraintsID = sp.signed.ID
	}
	for _, p := range v.protocols {
		pt := lastScored(v.points[p.ID]) // view keeps only scored protocols
		tier := int64(obsqra.MaxLiquidityTier)
		if pt.LiquidityTier != nil {
			tier = int64(*pt.LiquidityTier)
		}
		in.Protocols = append(in.Protocols, p.Slug)
		in.ProtocolIDs = append(in.ProtocolIDs, p.ID)
		in.VolatilityBps = append(in.VolatilityBps, int64(pt.VolatilityBps))
		in.LiquidityTiers = append(in.LiquidityTiers, tier)
	}
	use, err := in.eligible()
	if err != nil {
		return OptimizationInputs{}, err
	}
	n, m := len(v.protocols), len(use)
	// Limits taken from the preferences bend to the protocols at hand
	// (a user who asks for 3 protocols when 2 have data, or when the
	// volatility and liquidity limits leave 2, still gets a plan); limits
	// the request named are held to.
	if !sp.explicitMinDivers {
		in.MinDiversification = min(in.MinDiversification, m)
	}
	if !sp.explicitMaxSingle {
		in.MaxSingleBps = max(in.MaxSingleBps, (10000+m-1)/m)
	}
	// The covariance reads the days every protocol was observed on, within
	// the trailing covarianceDays.
	from := s.today() - obsqra.Date(covarianceDays-1)
	count := make(map[obsqra.Date]int)
	for _, p := range v.protocols {
		for _, pt := range v.points[p.ID] {
			if pt.Day >= from {
				count[pt.Day]++
			}
		}
	}
	var days []obsqra.Date
	for d, c := range count {
		if c == n {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	for _, p := range v.protocols {
		f := v.yield[p.ID]
		pts := v.points[p.ID]
		in.ExpectedApyBps = append(in.ExpectedApyBps, round4(f.Point))
		in.ApySigmaBps = append(in.ApySigmaBps, round4(max(f.Upper80-f.Lower80, 0)/(2*z80)))
		in.LatestApyBps = append(in.LatestApyBps, int64(pts[len(pts)-1].ApyBps))
		in.Risks = append(in.Risks, int64(*lastRisk(pts)))
		if len(days) >= 2 {
			h := make([]float64, 0, len(days))
			for _, pt := range pts {
				if _, ok := slices.BinarySearch(days, pt.Day); ok {
					h = append(h, float64(pt.ApyBps))
				}
			}
			in.Histories = append(in.Histories, h)
		}
	}
	if current == nil {
		return in, nil
	}
	rb := &RebalanceInputs{
		AllocationID: current.ID, GasUsdPerMove: s.cfg.GasUsdPerMove, SlippageBps: s.cfg.SlippageBps,
		PaybackDays: PaybackDays, ThresholdBps: sp.thresholdBps,
	}
	held := make(map[int64]int, len(current.Weights))
	for _, w := range current.Weights {
		held[w.ProtocolID] = w.WeightBps
	}
	for _, id := range in.ProtocolIDs {
		rb.CurrentBps = append(rb.CurrentBps, held[id])
		delete(held, id)
	}
	for _, w := range current.Weights {
		if _, outside := held[w.ProtocolID]; !outside {
			continue
		}
		h := HeldOutside{ProtocolID: w.ProtocolID, WeightBps: w.WeightBps}
		if p, ok := v.extra[w.ProtocolID]; ok {
			h.Slug = p.Slug
			// What it earns now is the best guess of a protocol that
			// cannot be forecast.
			if pts := v.points[p.ID]; len(pts) > 0 {
				h.ExpectedApyBps = float64(pts[len(pts)-1].ApyBps)
			}
		}
		rb.Held = append(rb.Held, h)
		rb.CurrentBps = append(rb.CurrentBps, w.WeightBps)
	}
	in.Rebalance = rb
	// The seed of the rebalance's simulation is a function of everything
	// else, so the decision is reproducible from its record.
	b, err := json.Marshal(in)
	if err != nil {
		return in, fmt.Errorf("encode optimization inputs: %w", err)
	}
	sum := sha256.Sum256(b)
	rb.Seed = binary.BigEndian.Uint64(sum[:8])
	return in, nil
}

// OptimizeAllocation computes the optimal allocation for in, whose empty
// fields take the signed-in user's preferences (the defaults for an
// anonymous caller), without recording anything.
// Errors: EINVALID naming the field; ENOTFOUND when no protocol has enough
// history; internal ones.
func (s *Service) OptimizeAllocation(ctx context.Context, in obsqra.OptimizeAllocationInput) (*obsqra.AllocationPlan, error) {
	prefs, uid, err := preferences(ctx)
	if err != nil {
		return nil, err
	}
	sp, err := resolve(in, prefs)
	if err != nil {
		return nil, err
	}
	sp.userID = uid
	if err := s.obeySigned(ctx, &sp); err != nil {
		return nil, err
	}
	v, err := s.view(ctx, sp, nil)
	if err != nil {
		return nil, err
	}
	oi, err := s.inputs(v, sp, nil)
	if err != nil {
		return nil, signedRefusal(sp, err)
	}
	d, err := decide(oi)
	if err != nil {
		return nil, signedRefusal(sp, err)
	}
	return &d.Plan, nil
}

// obeySigned makes sp's limits obey the user's active signed constraint
// set, if they signed one: each limit becomes the stricter of the two,
// and none bends to the protocols at hand (the signed ones are held to).
// Errors: internal ones.
func (s *Service) obeySigned(ctx context.Context, sp *planSpec) error {
	if sp.userID == 0 {
		return nil
	}
	sc, err := s.db.ActiveSignedConstraints(ctx, sp.userID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil
	}
	if err != nil {
		return err
	}
	set := sc.Set
	sp.signed = sc
	sp.maxSingle, sp.explicitMaxSingle = min(sp.maxSingle, set.MaxSingleBps), true
	sp.minDiv, sp.explicitMinDivers = max(sp.minDiv, set.MinDiversification), true
	sp.maxVol = min(sp.maxVol, set.MaxVolatilityBps)
	sp.maxTier = min(sp.maxTier, set.MaxLiquidityTier)
	return nil
}

// signedRefusal adds to a refusal of the limits that they include the
// ones the user's wallet signed, when it did.
func signedRefusal(sp planSpec, err error) error {
	if sp.signed == nil || obsqra.ErrorCode(err) != obsqra.EINVALID {
		return err
	}
	return obsqra.Errorf(obsqra.EINVALID, "%s (the limits include those your wallet signed, signed constraints %d: %s; sign a new set to change them)",
		obsqra.ErrorMessage(err), sp.signed.ID, sp.signed.Set)
}

// planned is a plan made for a user, ready to be recorded.
type planned struct {
	inputs  OptimizationInputs
	decided Decided
	view    *marketView
	digest  string
}

// planFor makes the plan of the signed-in user from current data, with the
// move from their latest allocation when they hold one.
func (s *Service) planFor(ctx context.Context, user *obsqra.User) (*planned, error) {
	sp, err := resolve(obsqra.OptimizeAllocationInput{}, user.Preferences)
	if err != nil {
		return nil, err
	}
	sp.userID = user.ID
	if err := s.obeySigned(ctx, &sp); err != nil {
		return nil, err
	}
	current, err := s.db.LatestAllocation(ctx, user.ID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		current, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if current != nil && current.PortfolioValueUsd != nil {
		sp.value = *current.PortfolioValueUsd
	}
	var held []obsqra.Weight
	if current != nil {
		held = current.Weights
	}
	v, err := s.view(ctx, sp, held)
	if err != nil {
		return nil, err
	}
	oi, err := s.inputs(v, sp, current)
	if err != nil {
		return nil, signedRefusal(sp, err)
	}
	d, err := decide(oi)
	if err != nil {
		return nil, signedRefusal(sp, err)
	}
	b, err := obsqra.EncodeDecision(oi)
	if err != nil {
		return nil, fmt.Errorf("encode optimization inputs: %w", err)
	}
	sum := sha256.Sum256(b)
	return &planned{inputs: oi, decided: d, view: v, digest: hex.EncodeToString(sum[:])}, nil
}

// record appends pl to the decision log and records it as a
// REBALANCE_SUGGESTION prediction of the plan's APY, publishing the
// prediction to its user, in one unit of work. With once, it records
// nothing when the user's latest suggestion, not followed, has pl's inputs
// (another request recorded it meanwhile), and returns that one; recorded
// reports which happened.
func (s *Service) record(ctx context.Context, pl *planned, once bool) (p *obsqra.Prediction, recorded bool, err error) {
	inputs, err := obsqra.EncodeDecision(pl.inputs)
	if err != nil {
		return nil, false, fmt.Errorf("encode optimization inputs: %w", err)
	}
	output, err := obsqra.EncodeDecision(pl.decided)
	if err != nil {
		return nil, false, fmt.Errorf("encode optimization output: %w", err)
	}
	details := pl.decided.Suggestion
	if details == nil {
		details = &obsqra.RebalanceSuggestion{Plan: pl.decided.Plan, Tolerance: pl.inputs.RiskTolerance}
	}
	det, err := json.Marshal(details)
	if err != nil {
		return nil, false, fmt.Errorf("encode suggestion: %w", err)
	}
	np := s.planPrediction(pl)
	np.Details = det
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		if once {
			// The decision log's lock serialises the check with the
			// insert of a concurrent request for the same suggestion
			// (on SQLite the unit of work is the only writer already).
			if err := tx.LockDecisions(ctx); err != nil {
				return err
			}
			last, followed, err := tx.LatestSuggestion(ctx, pl.inputs.UserID)
			if err != nil && obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
				return err
			}
			if err == nil && s.reusable(last, followed, pl) {
				p = last
				return nil
			}
		}
		d := obsqra.Decision{Kind: obsqra.DecisionOptimization, Inputs: inputs, Output: output, ModelVersion: ModelVersion}
		if err := s.decisions.Append(ctx, tx, &d); err != nil {
			return err
		}
		np.DecisionID = d.ID
		if err := tx.InsertPrediction(ctx, &np); err != nil {
			return err
		}
		p, recorded = &np, true
		return appendPredictionEvent(ctx, tx, &np)
	})
	if err != nil {
		return nil, false, err
	}
	return p, recorded, nil
}

// planPrediction is the prediction of the plan's APY on the horizon's last
// day: each protocol's forecast weighted by the plan. Its intervals add the
// protocols' bounds (as if their errors moved together, the cautious
// case), and its confidence and tolerance are the weighted ones.
func (s *Service) planPrediction(pl *planned) obsqra.Prediction {
	today := s.today()
	p := obsqra.Prediction{
		Kind: obsqra.PredictionRebalanceSuggestion, UserID: pl.inputs.UserID, HorizonDays: s.cfg.HorizonDays,
		Origin: today, Target: today + obsqra.Date(s.cfg.HorizonDays), Model: "optimizer(" + string(pl.inputs.RiskTolerance) + ")",
		ModelVersion: ModelVersion, InputsDigest: pl.digest, WindowStart: today, WindowEnd: 0,
	}
	first := true
	for _, w := range pl.decided.Plan.Weights {
		f := pl.view.yield[w.ProtocolID]
		x := float64(w.WeightBps) / 10000
		p.Point += x * f.Point
		p.Lower80 += x * f.Lower80
		p.Upper80 += x * f.Upper80
		p.Lower95 += x * f.Lower95
		p.Upper95 += x * f.Upper95
		p.Confidence += x * f.Confidence
		p.Tolerance += x * f.Tolerance
		p.Last += x * f.Last
		if first || f.WindowStart < p.WindowStart {
			p.WindowStart = f.WindowStart
		}
		p.WindowEnd = max(p.WindowEnd, f.WindowEnd)
		first = false
	}
	return p
}

// eligible returns the indices of the protocols the limits leave, in
// order: those whose volatility is at most MaxVolatilityBps and whose
// liquidity tier is at most MaxLiquidityTier (every protocol when the
// inputs have no limits, as decisions recorded before them).
// Errors: EINVALID naming the limit that leaves no protocol; internal ones
// for recorded inputs of the wrong length.
func (in *OptimizationInputs) eligible() ([]int, error) {
	n := len(in.ProtocolIDs)
	maxVol, maxTier := int64(obsqra.MaxVolatility), int64(obsqra.MaxLiquidityTier)
	if in.MaxVolatilityBps != nil {
		if len(in.VolatilityBps) != n {
			return nil, fmt.Errorf("optimization inputs: %d volatilities for %d protocols", len(in.VolatilityBps), n)
		}
		maxVol = int64(*in.MaxVolatilityBps)
	}
	if in.MaxLiquidityTier != nil {
		if len(in.LiquidityTiers) != n {
			return nil, fmt.Errorf("optimization inputs: %d liquidity tiers for %d protocols", len(in.LiquidityTiers), n)
		}
		maxTier = int64(*in.MaxLiquidityTier)
	}
	use := make([]int, 0, n)
	volOK, tierOK := 0, 0
	for i := range n {
		v := in.MaxVolatilityBps == nil || in.VolatilityBps[i] <= maxVol
		t := in.MaxLiquidityTier == nil || in.LiquidityTiers[i] <= maxTier
		if v {
			volOK++
		}
		if t {
			tierOK++
		}
		if v && t {
			use = append(use, i)
		}
	}
	if len(use) > 0 {
		return use, nil
	}
	switch {
	case volOK == 0 && tierOK == 0:
		return nil, obsqra.Errorf(obsqra.EINVALID,
			"maxVolatilityBps %d and maxLiquidityTier %d each exclude every one of the %d protocols the plan can use", maxVol, maxTier, n)
	case volOK == 0:
		return nil, obsqra.Errorf(obsqra.EINVALID,
			"maxVolatilityBps %d excludes every one of the %d protocols the plan can use: the least volatile is at %d bps", maxVol, n, slices.Min(in.VolatilityBps))
	case tierOK == 0:
		return nil, obsqra.Errorf(obsqra.EINVALID,
			"maxLiquidityTier %d excludes every one of the %d protocols the plan can use: the deepest is in tier %d", maxTier, n, slices.Min(in.LiquidityTiers))
	}
	return nil, obsqra.Errorf(obsqra.EINVALID,
		"maxVolatilityBps %d and maxLiquidityTier %d together exclude every one of the %d protocols the plan can use: no protocol meets both", maxVol, maxTier, n)
}

// protocolsLeft describes the m protocols a plan may use: "the 3
// protocols the plan can use", or, when the limits excluded some, how many
// they left.
func (in *OptimizationInputs) protocolsLeft(m int) string {
	n := len(in.ProtocolIDs)
	if m == n {
		return fmt.Sprintf("the %d protocols the plan can use", n)
	}
	return fmt.Sprintf("the %d of %d protocols that maxVolatilityBps %s and maxLiquidityTier %s leave", m, n,
		limitString(in.MaxVolatilityBps), limitString(in.MaxLiquidityTier))
}

// limitString formats a recorded limit.
func limitString(v *int) string {
	if v == nil {
		return "(none)"
	}
	return strconv.Itoa(*v)
}
