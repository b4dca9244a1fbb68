package advisor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// RunOptimization computes the plan of the signed-in user from current
// data (their preferences, the enabled protocols), records it as a
// decision and a REBALANCE_SUGGESTION prediction, and returns it with the
// move from their latest allocation (none when they hold none).
// Errors: EUNAUTHENTICATED; EINVALID when their limits cannot be met;
// ENOTFOUND when no protocol has enough history; internal ones.
func (s *Service) RunOptimization(ctx context.Context) (*obsqra.OptimizationRun, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	pl, err := s.planFor(ctx, pr.User)
	if err != nil {
		return nil, err
	}
	p, _, err := s.record(ctx, pl, false)
	if err != nil {
		return nil, err
	}
	return runOf(p)
}

// runOf is the optimisation run a suggestion prediction records.
func runOf(p *obsqra.Prediction) (*obsqra.OptimizationRun, error) {
	var d obsqra.RebalanceSuggestion
	if err := json.Unmarshal(p.Details, &d); err != nil {
		return nil, fmt.Errorf("decode suggestion %d: %w", p.ID, err)
	}
	run := &obsqra.OptimizationRun{ID: p.ID, Plan: d.Plan, CreatedAt: p.CreatedAt, DecisionID: p.DecisionID}
	sug, ok, err := p.Suggestion()
	if err != nil {
		return nil, err
	}
	if ok {
		run.Suggestion = sug
	}
	return run, nil
}

// RebalanceSuggestion returns the move the signed-in user should consider
// from their latest allocation to their plan on current data. Every
// suggestion handed out is recorded (decision and prediction), but only
// once: while the inputs stay the same, or for suggestionReuse while the
// allocation and preferences do, the recorded one is returned again.
// Errors: EUNAUTHENTICATED; ENOTFOUND when the user holds no allocation
// (or no protocol has enough history); EINVALID when their limits cannot
// be met; internal ones.
func (s *Service) RebalanceSuggestion(ctx context.Context) (*obsqra.RebalanceSuggestion, error) {
	pr, err := obsqra.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	sug, _, err := s.suggest(ctx, pr.User, false)
	return sug, err
}

// suggest makes the suggestion of user and records it unless the user's
// latest one has the same inputs; onlyClearing records only a suggestion
// that clears the user's threshold. It reports whether it recorded one.
func (s *Service) suggest(ctx context.Context, user *obsqra.User, onlyClearing bool) (*obsqra.RebalanceSuggestion, bool, error) {
	pl, err := s.planFor(ctx, user)
	if err != nil {
		return nil, false, err
	}
	if pl.decided.Suggestion == nil {
		return nil, false, obsqra.Errorf(obsqra.ENOTFOUND, "there is no allocation to rebalance yet: record one first")
	}
	last, followed, err := s.db.LatestSuggestion(ctx, user.ID)
	if err != nil && obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		return nil, false, err
	}
	if err == nil && s.reusable(last, followed, pl) {
		sug, ok, err := last.Suggestion()
		if err != nil {
			return nil, false, err
		}
		if ok {
			return sug, false, nil
		}
	}
	if onlyClearing && !pl.decided.Suggestion.ClearsThreshold {
		return pl.decided.Suggestion, false, nil
	}
	p, recorded, err := s.record(ctx, pl, true)
	if err != nil {
		return nil, false, err
	}
	sug, _, err := p.Suggestion()
	return sug, recorded, err
}

// suggestionReuse is how long a recorded suggestion answers for the same
// allocation and preferences although the market moved since: without it,
// a client polling rebalanceSuggestion would append a decision per market
// sample (every 10 s with the simulated feed) to a log that is never pruned.
const suggestionReuse = time.Hour

// reusable reports whether last, the user's latest recorded suggestion,
// answers for pl: not followed yet, and made from the same inputs, or from
// the same allocation and preferences within suggestionReuse.
func (s *Service) reusable(last *obsqra.Prediction, followed bool, pl *planned) bool {
	if followed {
		return false
	}
	if last.InputsDigest == pl.digest {
		return true
	}
	prev, ok, err := last.Suggestion()
	rb := pl.inputs.Rebalance
	if err != nil || !ok || rb == nil || s.cfg.Now().Sub(last.CreatedAt) >= suggestionReuse {
		return false
	}
	in := pl.inputs
	return prev.AllocationID == rb.AllocationID && prev.ThresholdBps == rb.ThresholdBps &&
		prev.Plan.RiskTolerance == in.RiskTolerance && prev.Plan.MaxSingleBps == in.MaxSingleBps &&
		prev.Plan.MinDiversification == in.MinDiversification && prev.Plan.PortfolioValueUsd == in.PortfolioValueUsd &&
		sameLimit(prev.Plan.MaxVolatilityBps, in.MaxVolatilityBps) && sameLimit(prev.Plan.MaxLiquidityTier, in.MaxLiquidityTier) &&
		slices.Equal(planProtocols(prev.Plan), in.ProtocolIDs)
}

// sameLimit reports whether two recorded limits are equal (both absent
// counts as equal).
func sameLimit(a, b *int) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// planProtocols returns the protocols a plan weighs, in its order.
func planProtocols(p obsqra.AllocationPlan) []int64 {
	ids := make([]int64, len(p.Weights))
	for i, w := range p.Weights {
		ids[i] = w.ProtocolID
	}
	return ids
}

// CheckRebalances is the scheduler's rebalance job: for every active user
// with autoRebalance it makes the suggestion from their latest allocation
// and records it when it clears their rebalanceThresholdBps (and differs
// from their last). Users without an allocation, or whose limits cannot be
// met, are skipped. It returns how many suggestions it recorded.
// Errors: only internal ones.
func (s *Service) CheckRebalances(ctx context.Context) (int, error) {
	users, err := s.db.AutoRebalanceUsers(ctx)
	if err != nil {
		return 0, err
	}
	stored := 0
	for i := range users {
		if err := ctx.Err(); err != nil {
			return stored, err
		}
		_, rec, err := s.suggest(ctx, &users[i], true)
		switch obsqra.ErrorCode(err) {
		case "":
		case obsqra.ENOTFOUND, obsqra.EINVALID:
			continue
		default:
			return stored, fmt.Errorf("check rebalance of user %d: %w", users[i].ID, err)
		}
		if rec {
			stored++
		}
	}
	return stored, nil
}

// Suggestion returns the suggestion with the given prediction id, for its
// owner only. Errors: ENOTFOUND (also for another user's and for a plan
// made without an allocation).
func (s *Service) Suggestion(ctx context.Context, id int64) (*obsqra.RebalanceSuggestion, error) {
	p, err := s.Prediction(ctx, id)
	if err != nil {
		return nil, err
	}
	sug, ok, err := p.Suggestion()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "suggestion not found")
	}
	return sug, nil
}

// OptimizationRun returns the optimisation run recorded as the prediction
// with the given id, for its owner only. Errors: ENOTFOUND.
func (s *Service) OptimizationRun(ctx context.Context, id int64) (*obsqra.OptimizationRun, error) {
	p, err := s.Prediction(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.Kind != obsqra.PredictionRebalanceSuggestion {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "optimization run not found")
	}
	return runOf(p)
}

// Prediction returns the prediction with the given id: a market forecast
// to anyone, a suggestion to its owner only.
// Errors: ENOTFOUND (also for another user's).
func (s *Service) Prediction(ctx context.Context, id int64) (*obsqra.Prediction, error) {
	p, err := s.db.Prediction(ctx, id)
	if err != nil {
		return nil, err
	}
	if p.UserID != 0 {
		u, err := obsqra.Viewer(ctx)
		if err != nil {
			return nil, err
		}
		if u == nil || u.ID != p.UserID {
			return nil, obsqra.Errorf(obsqra.ENOTFOUND, "prediction not found")
		}
	}
	return p, nil
}

// Predictions returns a page of the predictions the caller may see (market
// forecasts, and their own suggestions), newest first: first+1 rows so the
// caller knows whether there is a next page. protocolID 0 means any.
// Errors: refused credentials; internal ones.
func (s *Service) Predictions(ctx context.Context, kind obsqra.PredictionKind, protocolID int64, first int, afterID int64) ([]obsqra.Prediction, error) {
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	var viewer int64
	if u != nil {
		viewer = u.ID
	}
	return s.db.Predictions(ctx, store.PredictionQuery{
		Kind: kind, ProtocolID: protocolID, ViewerID: viewer, AfterID: afterID, Limit: first + 1,
	})
}
