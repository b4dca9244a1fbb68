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
	var out *obsqra.RiskParams
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.ActiveRiskParams(ctx)
		if err != nil {
			return err
		}
		next := patch.Apply(*cur)
		if _, err := newModel(next); err != nil {
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
