package market

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// RiskEngine is the on-chain RiskEngine: its calculate_risk_score.
type RiskEngine interface {
	CalculateRiskScore(ctx context.Context, in obsqra.RiskInputs) (int, error)
}

// RiskScores is the RISK_SCORE kind of the decision log (a decision.Kind):
// it recomputes a risk score decision with the parity formula, checks that
// the score served from it says what it recorded, and asks the deployed
// RiskEngine, when there is one, for its own score.
type RiskScores struct {
	db     *store.DB
	engine RiskEngine
	logger *slog.Logger
}

// NewRiskScores returns the RISK_SCORE kind on db. engine is the deployed
// contract verification also asks (RISK_ENGINE_ADDRESS); nil for none.
// logger defaults to discarding.
func NewRiskScores(db *store.DB, engine RiskEngine, logger *slog.Logger) *RiskScores {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &RiskScores{db: db, engine: engine, logger: logger}
}

// Kind returns obsqra.DecisionRiskScore.
func (*RiskScores) Kind() obsqra.DecisionKind { return obsqra.DecisionRiskScore }

// Owner reports risk scores public: they are market-wide.
func (*RiskScores) Owner(*obsqra.Decision) (int64, bool) { return 0, true }

// Verify recomputes d with its recorded parameters and checks that the
// risk score the API serves from it (protocols { latestRisk }) says what d
// recorded; with a RiskEngine, it records the contract's score too.
// Errors: only internal ones.
func (k *RiskScores) Verify(ctx context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) error {
	v.Recomputed, v.Matches = recomputeRiskScore(d)
	if v.Matches {
		var err error
		if v.Matches, err = k.servedScoreMatches(ctx, d); err != nil {
			return err
		}
	}
	if k.engine != nil {
		k.askRiskEngine(ctx, d, v)
	}
	return nil
}

// recomputeRiskScore scores a risk decision's recorded inputs with its
// recorded parameters and compares the result with the recorded output. A
// record that no longer parses or scores does not match.
func recomputeRiskScore(d *obsqra.Decision) (obsqra.JSONObject, bool) {
	var rec obsqra.RiskScoreDecision
	if err := json.Unmarshal(d.Inputs, &rec); err != nil || d.ModelVersion != obsqra.RiskModelVersion {
		return nil, false
	}
	m, err := newModel(rec.Params)
	if err != nil {
		return nil, false
	}
	out, err := score(m, rec.Inputs)
	if err != nil {
		return nil, false
	}
	return d.Recomputed(out)
}

// servedScoreMatches reports whether the stored risk score of a decision
// (what protocols { latestRisk } serves) holds the decision's recorded
// inputs, parameters version and output.
func (k *RiskScores) servedScoreMatches(ctx context.Context, d *obsqra.Decision) (bool, error) {
	r, err := k.db.RiskScoreByDecision(ctx, d.ID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	var rec obsqra.RiskScoreDecision
	var out obsqra.RiskScoreOutcome
	if json.Unmarshal(d.Inputs, &rec) != nil || json.Unmarshal(d.Output, &out) != nil {
		return false, nil
	}
	return r.Score == out.Score && r.Components == out.Components && r.Inputs == rec.Inputs &&
		r.ParamsVersion == rec.ParamsVersion && r.SampleID == rec.SampleID && r.ModelVersion == d.ModelVersion, nil
}

// askRiskEngine asks the deployed RiskEngine to score the decision's
// recorded inputs and records its answer, and whether it is the recorded
// score, in v. The contract scores with its own on-chain parameters, so a
// decision made under other parameters disagrees with it by design. A
// failure to ask is kept in v.OnChainErr: the off-chain verdict stands.
func (k *RiskScores) askRiskEngine(ctx context.Context, d *obsqra.Decision, v *obsqra.DecisionVerification) {
	var rec obsqra.RiskScoreDecision
	var out obsqra.RiskScoreOutcome
	if json.Unmarshal(d.Inputs, &rec) != nil || json.Unmarshal(d.Output, &out) != nil {
		v.OnChainErr = obsqra.Errorf(obsqra.EINVALID, "decision %d no longer parses; the RiskEngine was not asked", d.ID)
		return
	}
	score, err := k.engine.CalculateRiskScore(ctx, rec.Inputs)
	if err != nil {
		k.logger.Warn("risk engine call failed", "decision", d.ID, "error", err)
		v.OnChainErr = fmt.Errorf("ask the RiskEngine: %w", err)
		return
	}
	matches := score == out.Score
	v.OnChainScore, v.MatchesOnChain = &score, &matches
}
