package advisor

import (
	"context"
	"encoding/json"

	"github.com/obsqra/obsqra"
)

// Optimizations is the OPTIMIZATION kind of the decision log (a
// decision.Kind): an allocation plan computed for a user, theirs to see.
type Optimizations struct{}

// Kind returns obsqra.DecisionOptimization.
func (Optimizations) Kind() obsqra.DecisionKind { return obsqra.DecisionOptimization }

// Verify computes an OPTIMIZATION decision's plan and rebalance again from
// its recorded inputs and records in v whether the result is, byte for
// byte, the recorded output. A record that no longer parses or decides
// does not match. Errors: none.
func (Optimizations) Verify(_ context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) error {
	v.Recomputed, v.Matches = recomputeOptimization(d)
	return nil
}

// recomputeOptimization is Verify's recomputation: the output computed
// again, and whether it is the recorded one.
func recomputeOptimization(d *obsqra.Decision) (obsqra.JSONObject, bool) {
	var in OptimizationInputs
	if d.Kind != obsqra.DecisionOptimization || d.ModelVersion != ModelVersion || json.Unmarshal(d.Inputs, &in) != nil {
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
