// This file holds the ingest job: the poll of the live feed and the
// backfill of the history it lacks.

package market

import (
	"context"
	"fmt"

	"github.com/obsqra/obsqra"
)

// Poll is the scheduler's ingest job: on a database without history it
// first asks the feed for HistoryDays of daily history, then it ingests the
// feed's current samples of the enabled protocols. When the feed fails, the
// last good data stays (reported stale) and the error is returned for the
// scheduler to record and back off.
// Errors: the feed's failure; internal ones.
func (s *Service) Poll(ctx context.Context) error {
	src := s.cfg.Source
	if src == nil {
		return nil
	}
	all, err := s.db.Protocols(ctx)
	if err != nil {
		return err
	}
	var enabled []obsqra.Protocol
	ids := make([]int64, 0, len(all))
	for _, p := range all {
		if p.Enabled {
			enabled = append(enabled, p)
			ids = append(ids, p.ID)
		}
	}
	if len(enabled) == 0 {
		return nil
	}
	if err := s.backfill(ctx, src, enabled); err != nil {
		return s.feedFailed(err)
	}
	last, err := s.db.LatestMetricsOf(ctx, ids, src.Name())
	if err != nil {
		return err
	}
	inputs, err := src.Poll(ctx, enabled, last, s.cfg.Now())
	if err != nil {
		return s.feedFailed(err)
	}
	if _, err := s.Ingest(ctx, src.Name(), inputs); err != nil {
		return fmt.Errorf("ingest %s samples: %w", src.Name(), err)
	}
	s.mu.Lock()
	recovered := s.feedErr != nil
	s.feedErr = nil
	s.mu.Unlock()
	if recovered {
		s.cfg.Logger.Info("market feed recovered", "source", src.Name())
	}
	return nil
}

func (s *Service) feedFailed(err error) error {
	s.mu.Lock()
	s.feedErr = err
	s.mu.Unlock()
	return fmt.Errorf("poll %s: %w", s.SourceName(), err)
}

// backfill loads the feed's daily history for the enabled protocols that
// lack it, checking each protocol once per process (so one an admin adds
// while the server runs is checked at the next poll): a protocol lacks
// history when it has data on fewer than 90 % of the last HistoryDays days
// (every protocol of an empty database; a backfill interrupted halfway).
// Only days without data are ingested, so a feed whose history was revised
// since cannot conflict with what is stored.
func (s *Service) backfill(ctx context.Context, src Source, all []obsqra.Protocol) error {
	if s.cfg.HistoryDays <= 0 {
		return nil
	}
	var enabled []obsqra.Protocol
	s.mu.Lock()
	for _, p := range all {
		if !s.backfilled[p.ID] {
			enabled = append(enabled, p)
		}
	}
	s.mu.Unlock()
	if len(enabled) == 0 {
		return nil
	}
	now := s.cfg.Now()
	today := obsqra.DateOf(now)
	from := today - obsqra.Date(s.cfg.HistoryDays)
	ids := make([]int64, len(enabled))
	for i, p := range enabled {
		ids[i] = p.ID
	}
	have, err := s.db.DailySeries(ctx, ids, from, today-1)
	if err != nil {
		return err
	}
	var lacking []obsqra.Protocol
	haveDay := make(map[string]map[obsqra.Date]bool)
	for _, p := range enabled {
		days := make(map[obsqra.Date]bool, len(have[p.ID]))
		for _, d := range have[p.ID] {
			days[d.Day] = true
		}
		if len(days)*10 < s.cfg.HistoryDays*9 {
			lacking = append(lacking, p)
			haveDay[p.Slug] = days
		}
	}
	if len(lacking) > 0 {
		hist, err := src.History(ctx, lacking, now, s.cfg.HistoryDays)
		if err != nil {
			return fmt.Errorf("load %d days of history: %w", s.cfg.HistoryDays, err)
		}
		missing := hist[:0]
		for _, in := range hist {
			if days, ok := haveDay[in.Protocol]; ok && !days[obsqra.DateOf(in.ObservedAt)] {
				missing = append(missing, in)
			}
		}
		for start := 0; start < len(missing); start += importChunk {
			if _, err := s.Ingest(ctx, src.Name(), missing[start:min(start+importChunk, len(missing))]); err != nil {
				return fmt.Errorf("ingest history: %w", err)
			}
		}
		s.cfg.Logger.Info("market history loaded", "source", src.Name(), "protocols", len(lacking),
			"samples", len(missing), "days", s.cfg.HistoryDays)
	}
	s.mu.Lock()
	for _, p := range enabled {
		s.backfilled[p.ID] = true
	}
	s.mu.Unlock()
	return nil
}
