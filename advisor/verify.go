package advisor

import (
	"context"
	"encoding/json"

	"github.com/obsqra/obsqra"
)

// Optimizations is the OPTIMIZATION kind of the decision log (a
// decision.Kind): an allocation plan computed for a user, theirs to see.
type Optimizations struct {
	// Signatures loads and checks again the signed constraint sets plans
	// obeyed (*account.Service is one); nil: a plan's signature is not
	// checked (signatureValid null).
	Signatures SignatureChecker
}

// SignatureChecker loads a signed constraint set and checks its signature
// again.
type SignatureChecker interface {
	// SignedConstraintsByID returns the set id (ENOTFOUND when none).
	SignedConstraintsByID(ctx context.Context, id int64) (*obsqra.SignedConstraints, error)
	// VerifySignedConstraints reports whether the set's signature verifies
	// now; nil when there is nothing to ask.
	VerifySignedConstraints(ctx context.Context, s *obsqra.SignedConstraints) (*bool, error)
}

// Kind returns obsqra.DecisionOptimization.
func (Optimizations) Kind() obsqra.DecisionKind { return obsqra.DecisionOptimization }

// Verify computes an OPTIMIZATION decision's plan and rebalance again from
// its recorded inputs and records in v whether the result is, byte for
// byte, the recorded output. A record that no longer parses or decides
// does not match. Errors: none.
//
// It also reports whether the recorded plan meets every limit its inputs
// recorded (ConstraintsMet), and, for a plan that obeyed a signed
// constraint set, that it did (ConstraintsSigned) and whether the set's
// signature verifies now (SignatureValid, through Signatures). The set
// must be the plan's user's, and the recorded limits at least as strict
// as the signed ones; otherwise the constraints are not met.
// When the signature cannot be checked (the node does not answer),
// SignatureValid is nil and SignatureErr says why.
// Errors: only internal ones, from Signatures (loading the set).
func (o Optimizations) Verify(ctx context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) error {
	var in OptimizationInputs
	var out Decided
	met := false
	v.ConstraintsMet = &met
	if d.Kind != obsqra.DecisionOptimization || json.Unmarshal(d.Inputs, &in) != nil {
		return nil
	}
	v.Recomputed, v.Matches = recomputeOptimization(d, in)
	if json.Unmarshal(d.Output, &out) != nil {
		return nil
	}
	met = meetsLimits(in, out.Plan)
	if in.SignedConstraintsID == 0 {
		return nil
	}
	v.ConstraintsSigned = true
	if o.Signatures == nil {
		return nil
	}
	sc, err := o.Signatures.SignedConstraintsByID(ctx, in.SignedConstraintsID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		valid := false
		met, v.SignatureValid = false, &valid
		return nil
	}
	if err != nil {
		return err
	}
	if !obeys(in, sc) {
		met = false
	}
	// A node that cannot be asked leaves the signature unchecked: the
	// field's error, while the rest of the verification stands.
	v.SignatureValid, v.SignatureErr = o.Signatures.VerifySignedConstraints(ctx, sc)
	return nil
}

// meetsLimits reports whether plan, recorded for in, meets every limit in
// records: weights over exactly its protocols summing to 10000 bps, none
// above MaxSingleBps, at least MinDiversification of 1000 bps or more, and
// none for a protocol the volatility and liquidity limits exclude.
func meetsLimits(in OptimizationInputs, plan obsqra.AllocationPlan) bool {
	n := len(in.ProtocolIDs)
	if len(plan.Weights) != n {
		return false
	}
	use, err := in.eligible()
	if err != nil {
		return false
	}
	eligible := make([]bool, n)
	for _, i := range use {
		eligible[i] = true
	}
	sum, counted := 0, 0
	for i, w := range plan.Weights {
		switch {
		case w.ProtocolID != in.ProtocolIDs[i], w.WeightBps < 0, w.WeightBps > in.MaxSingleBps, w.WeightBps > 0 && !eligible[i]:
			return false
		}
		sum += w.WeightBps
		if w.WeightBps >= 1000 {
			counted++
		}
	}
	return sum == 10000 && counted >= in.MinDiversification
}

// obeys reports whether in's limits are the signed set sc's or stricter,
// and sc is in's user's.
func obeys(in OptimizationInputs, sc *obsqra.SignedConstraints) bool {
	set := sc.Set
	return sc.UserID == in.UserID && in.MaxSingleBps <= set.MaxSingleBps && in.MinDiversification >= set.MinDiversification &&
		in.MaxVolatilityBps != nil && *in.MaxVolatilityBps <= set.MaxVolatilityBps &&
		in.MaxLiquidityTier != nil && *in.MaxLiquidityTier <= set.MaxLiquidityTier
}

// recomputeOptimization is Verify's recomputation: the output computed
// again, and whether it is the recorded one.
// d's inputs, in, parsed.
func recomputeOptimization(d *obsqra.Decision, in OptimizationInputs) (obsqra.JSONObject, bool) {
	if d.ModelVersion != ModelVersion {
		return nil, false
	}
	out, err := decide(in)
	if err != nil {
		return nil, false
	}
	return d.Recomputed(out)
}

// Owner returns the user an OPTIMIZATION decision was made for, 0 when the
// record does not say; it is never public.
func (Optimizations) Owner(d *obsqra.Decision) (int64, bool) {
	var in struct {
		UserID int64 `json:"userId"`
	}
	if d.Kind != obsqra.DecisionOptimization || json.Unmarshal(d.Inputs, &in) != nil {
		return 0, false
	}
	return in.UserID, false
}
