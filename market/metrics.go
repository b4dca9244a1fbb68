// This file holds the reads of samples and risk scores.

package market

import (
	"context"

	"github.com/obsqra/obsqra"
)

// LatestMetrics returns each protocol's newest sample, marking it stale
// when it comes from the live feed and the feed has not confirmed it
// within three poll intervals or its last poll failed.
// Errors: only internal ones.
func (s *Service) LatestMetrics(ctx context.Context, protocolIDs []int64) (map[int64]obsqra.MetricsSample, error) {
	latest, err := s.db.LatestMetrics(ctx, protocolIDs)
	if err != nil {
		return nil, err
	}
	if s.cfg.Source == nil {
		return latest, nil
	}
	feed := s.cfg.Source.Name()
	cutoff := s.cfg.Now().Add(-3 * s.cfg.PollInterval)
	s.mu.Lock()
	down := s.feedErr != nil
	s.mu.Unlock()
	for id, m := range latest {
		if m.Source == feed && (down || m.ObservedAt.Before(cutoff)) {
			m.Stale = true
			latest[id] = m
		}
	}
	return latest, nil
}

// LatestRisk returns each protocol's newest risk score.
// Errors: only internal ones.
func (s *Service) LatestRisk(ctx context.Context, protocolIDs []int64) (map[int64]obsqra.RiskScore, error) {
	return s.db.LatestRiskScores(ctx, protocolIDs)
}

// MetricsHistory returns a page of each protocol's samples, newest first.
// Errors: EINVALID for a bad page.
func (s *Service) MetricsHistory(ctx context.Context, protocolIDs []int64, page obsqra.HistoryPage) (map[int64][]obsqra.MetricsSample, error) {
	return s.db.MetricsHistory(ctx, protocolIDs, page)
}

// RiskHistory returns a page of each protocol's risk scores, newest first.
// Errors: EINVALID for a bad page.
func (s *Service) RiskHistory(ctx context.Context, protocolIDs []int64, page obsqra.HistoryPage) (map[int64][]obsqra.RiskScore, error) {
	return s.db.RiskHistory(ctx, protocolIDs, page)
}

// RiskScore returns the risk score with the given id.
// Errors: ENOTFOUND.
func (s *Service) RiskScore(ctx context.Context, id int64) (*obsqra.RiskScore, error) {
	return s.db.RiskScore(ctx, id)
}

// MetricsSample returns the sample with the given id.
// Errors: ENOTFOUND.
func (s *Service) MetricsSample(ctx context.Context, id int64) (*obsqra.MetricsSample, error) {
	return s.db.MetricsSample(ctx, id)
}
