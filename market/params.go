// This file holds the risk parameters, their cached scoring models, and
// the scoring of previews and samples.

package market

import (
	"context"
	"fmt"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// ModelParamsReader reads the deployed RiskEngine's model parameters
// (starknet.RiskEngine is one).
type ModelParamsReader interface {
	// ModelParams returns the parameters of model version, and whether the
	// contract knows it (all zeros when not).
	ModelParams(ctx context.Context, version obsqra.Felt) (obsqra.RiskParams, bool, error)
}

// DeployedParams asks the deployed RiskEngine for the parameters of its
// model version chainVersion (nil: the one ours is mapped to) and compares
// them with ours. Admins only: each call asks the node.
// Errors: EUNAUTHENTICATED, EFORBIDDEN; EINVALID when no RiskEngine is
// configured, for a malformed chain version, or when neither it nor ours
// names one; EUNAVAILABLE when the node does not answer.
func (s *Service) DeployedParams(ctx context.Context, ours *obsqra.RiskParams, chainVersion *string) (*obsqra.DeployedRiskParams, error) {
	if _, err := obsqra.RequireAdmin(ctx, "read the deployed risk parameters"); err != nil {
		return nil, err
	}
	if s.cfg.Engine == nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "no RiskEngine is configured (RISK_ENGINE_ADDRESS)")
	}
	var version obsqra.Felt
	switch {
	case chainVersion != nil:
		v, err := obsqra.ParseFelt(*chainVersion)
		if err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "chainVersion: %s", obsqra.ErrorMessage(err))
		}
		version = v
	case ours.ChainVersion != nil:
		version = *ours.ChainVersion
	default:
		return nil, obsqra.Errorf(obsqra.EINVALID, "risk parameters version %d is mapped to no chain model version: name one with chainVersion", ours.Version)
	}
	deployed, known, err := s.cfg.Engine.ModelParams(ctx, version)
	if err != nil {
		return nil, engineError(err)
	}
	deployed.ChainVersion = &version
	return &obsqra.DeployedRiskParams{RiskParams: deployed, Known: known, Matches: known && sameModel(deployed, *ours), Ours: ours}, nil
}

// CheckDeployedParams compares the active parameters with the deployed
// RiskEngine's model version they are mapped to, and logs a warning when
// they differ or the contract does not know that version. It reports
// whether they match; true when there is nothing to compare (no engine,
// or no mapping). Errors: EUNAVAILABLE when the node does not answer;
// internal ones.
func (s *Service) CheckDeployedParams(ctx context.Context) (bool, error) {
	ours, err := s.db.ActiveRiskParams(ctx)
	if err != nil || s.cfg.Engine == nil || ours.ChainVersion == nil {
		return true, err
	}
	deployed, known, err := s.cfg.Engine.ModelParams(ctx, *ours.ChainVersion)
	if err != nil {
		return false, engineError(err)
	}
	if !known || !sameModel(deployed, *ours) {
		s.cfg.Logger.WarnContext(ctx, "risk parameters differ from the deployed RiskEngine's", "version", ours.Version,
			"chain_version", ours.ChainVersion.String(), "known_on_chain", known, "ours", fmt.Sprintf("%+v", modelValues(*ours)),
			"deployed", fmt.Sprintf("%+v", modelValues(deployed)))
		return false, nil
	}
	return true, nil
}

// engineError codes a failed call of the RiskEngine.
func engineError(err error) error {
	return &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: "the Starknet node did not answer the RiskEngine call; try again later", Err: err}
}

// modelValues are the eleven parameters, for logs.
func modelValues(p obsqra.RiskParams) [11]int {
	return [11]int{p.WUtilization, p.WVolatility, p.WLiquidity0, p.WLiquidity1, p.WLiquidity2, p.WLiquidity3,
		p.WAudit, p.WAge, p.AgeCapDays, p.ClampMin, p.ClampMax}
}

// sameModel reports whether a and b have the same eleven parameters.
func sameModel(a, b obsqra.RiskParams) bool { return modelValues(a) == modelValues(b) }

// RiskParams returns the active risk parameters.
// Errors: only internal ones.
func (s *Service) RiskParams(ctx context.Context) (*obsqra.RiskParams, error) {
	return s.db.ActiveRiskParams(ctx)
}

// SetRiskParams merges patch over the active parameters and stores the
// result as a new version, which scores every later sample; earlier scores
// keep theirs. Errors: EUNAUTHENTICATED, EFORBIDDEN, EINVALID naming the
// parameter.
func (s *Service) SetRiskParams(ctx context.Context, patch obsqra.RiskParamsPatch) (*obsqra.RiskParams, error) {
	p, err := obsqra.RequireAdmin(ctx, "change risk parameters")
	if err != nil {
		return nil, err
	}
	var mapped *obsqra.Felt
	if patch.ChainVersion != nil {
		v, err := obsqra.ParseFelt(*patch.ChainVersion)
		if err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.chainVersion: %s", obsqra.ErrorMessage(err))
		}
		mapped = &v
	}
	var adopted *obsqra.RiskParams
	if patch.FromChainVersion != nil {
		if adopted, err = s.adopt(ctx, patch); err != nil {
			return nil, err
		}
	}
	var out *obsqra.RiskParams
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.ActiveRiskParams(ctx)
		if err != nil {
			return err
		}
		next := patch.Apply(*cur)
		next.ChainVersion = mapped
		if adopted != nil {
			next = *adopted
		}
		if _, err := newModel(next); err != nil {
			if adopted != nil {
				return obsqra.Errorf(obsqra.EINVALID, "the deployed parameters of chain model version %s cannot be used here: %s", adopted.ChainVersion, obsqra.ErrorMessage(err))
			}
			return err
		}
		next.CreatedBy = p.User.ID
		if err := tx.InsertRiskParams(ctx, &next); err != nil {
			return err
		}
		out = &next
		return nil
	})
	return out, err
}

// adopt reads the deployed parameters patch.FromChainVersion names, for
// SetRiskParams. Errors: EINVALID when another field is given too, the
// version is malformed or unknown to the contract, or no RiskEngine is
// configured; EUNAVAILABLE when the node does not answer.
func (s *Service) adopt(ctx context.Context, patch obsqra.RiskParamsPatch) (*obsqra.RiskParams, error) {
	rest := patch
	rest.FromChainVersion = nil
	if rest != (obsqra.RiskParamsPatch{}) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.fromChainVersion adopts the deployed parameters as they are: give no other field with it")
	}
	if s.cfg.Engine == nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.fromChainVersion: no RiskEngine is configured (RISK_ENGINE_ADDRESS)")
	}
	version, err := obsqra.ParseFelt(*patch.FromChainVersion)
	if err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.fromChainVersion: %s", obsqra.ErrorMessage(err))
	}
	deployed, known, err := s.cfg.Engine.ModelParams(ctx, version)
	if err != nil {
		return nil, engineError(err)
	}
	if !known {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.fromChainVersion: the RiskEngine has no model version %s (it answered all zeros)", version)
	}
	deployed.ChainVersion = &version
	return &deployed, nil
}

// ActiveModel returns the scoring model of the active risk parameters, and
// the parameters. Errors: only internal ones.
func (s *Service) ActiveModel(ctx context.Context) (*ml.Model, *obsqra.RiskParams, error) {
	p, err := s.db.ActiveRiskParams(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := s.model(p)
	if err != nil {
		return nil, nil, err
	}
	return m, p, nil
}

// MaxRiskWeight bounds each risk parameter the server accepts, below the
// contract's own bound: with every weight at most a million, the largest
// component (volatility: 100 × wVolatility) and the sum of all five stay
// far inside a 32-bit integer, the width of GraphQL's Int and of the
// score columns.
const MaxRiskWeight = 1_000_000

// model returns the cached model of a stored parameters version.
func (s *Service) model(p *obsqra.RiskParams) (*ml.Model, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.models[p.Version]; ok {
		return m, nil
	}
	m, err := newModel(*p)
	if err != nil {
		return nil, fmt.Errorf("risk parameters version %d: %w", p.Version, err)
	}
	s.models[p.Version] = m
	return m, nil
}

// score scores in with m. Errors: EINVALID naming the input.
func score(m *ml.Model, in obsqra.RiskInputs) (obsqra.RiskScoreOutcome, error) {
	r, err := m.Score(ml.RiskInputs{
		UtilizationBps: int64(in.Utilization),
		VolatilityBps:  int64(in.Volatility),
		LiquidityTier:  int64(in.Liquidity),
		AuditScore:     int64(in.AuditScore),
		AgeDays:        int64(in.AgeDays),
	})
	if err != nil {
		return obsqra.RiskScoreOutcome{}, err
	}
	return obsqra.RiskScoreOutcome{Score: int(r.Score), Components: obsqra.RiskComponents{
		Utilization: int(r.Utilization), Volatility: int(r.Volatility), Liquidity: int(r.Liquidity),
		Audit: int(r.Audit), Age: int(r.Age), Unclamped: int(r.Unclamped),
	}}, nil
}

// PreviewRisk scores in with the active parameters, or with patch merged
// over them, without storing anything.
// Errors: EINVALID naming the input or parameter.
func (s *Service) PreviewRisk(ctx context.Context, in obsqra.RiskInputs, patch *obsqra.RiskParamsPatch) (*obsqra.RiskScore, error) {
	cur, err := s.db.ActiveRiskParams(ctx)
	if err != nil {
		return nil, err
	}
	var m *ml.Model
	if patch != nil && (patch.ChainVersion != nil || patch.FromChainVersion != nil) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "params.chainVersion and params.fromChainVersion are for setRiskParams: a preview scores values")
	}
	if patch != nil {
		if m, err = newModel(patch.Apply(*cur)); err != nil {
			return nil, err
		}
	} else if m, err = s.model(cur); err != nil {
		return nil, err
	}
	out, err := score(m, in)
	if err != nil {
		return nil, err
	}
	// A preview reports no parameters version: it is not a stored score.
	return &obsqra.RiskScore{
		Score: out.Score, Components: out.Components, Inputs: in,
		ModelVersion: obsqra.RiskModelVersion, ComputedAt: s.cfg.Now().UTC(),
	}, nil
}
