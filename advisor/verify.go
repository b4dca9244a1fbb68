package advisor

import (
	"encoding/json"

	"github.com/obsqra/obsqra"
)

// RecomputeOptimization computes an OPTIMIZATION decision's plan and
// rebalance again from its recorded inputs and reports whether the result
// is, byte for byte, the recorded output. A record that no longer parses
// or decides does not match.
func RecomputeOptimization(d *obsqra.Decision) (obsqra.JSONObject, bool) {
	var in OptimizationInputs
	if d.Kind != obsqra.DecisionOptimization || d.ModelVersion != ModelVersion || json.Unmarshal(d.Inputs, &in) != nil {
		return nil, false
	}
	out, err := decide(in)
	if err != nil {
		return nil, false
	}
	b, err := obsqra.EncodeDecision(out)
	if err != nil {
		return nil, false
	}
	return b, string(b) == string(d.Output)
}

// OptimizationOwner returns the user an OPTIMIZATION decision was made
// for, 0 when the record does not say.
func OptimizationOwner(d *obsqra.Decision) int64 {
	var in struct {
		UserID int64 `json:"userId"`
	}
	if d.Kind != obsqra.DecisionOptimization || json.Unmarshal(d.Inputs, &in) != nil {
		return 0
	}
	return in.UserID
}
