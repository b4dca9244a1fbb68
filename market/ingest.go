// This file holds ingestion: the validation, storage, scoring and events of
// new samples, whichever feed they come from.

package market

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// Ingested is one sample as ingestion left it.
type Ingested struct {
	Sample obsqra.MetricsSample
	Risk   obsqra.RiskScore
	// Created is false when the same sample was stored already
	// (ingestion is idempotent), in which case nothing new was written.
	Created bool
}

// IngestMetrics is the admins' push of samples (source "admin").
// Errors: EUNAUTHENTICATED, EFORBIDDEN, and those of Ingest.
func (s *Service) IngestMetrics(ctx context.Context, inputs []obsqra.MetricsInput) ([]Ingested, error) {
	if _, err := obsqra.RequireAdmin(ctx, "push metrics"); err != nil {
		return nil, err
	}
	if len(inputs) > MaxIngestBatch {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input: at most %d samples per call, got %d", MaxIngestBatch, len(inputs))
	}
	return s.Ingest(ctx, obsqra.SourceAdmin, inputs)
}

// Ingest validates every input, then in one unit of work stores each
// sample with its derived volatility and liquidity tier, scores it with the
// active risk parameters, appends the decision, stores the score, and
// publishes the metrics and risk events. Inputs are processed in order of
// observation. Nothing is stored unless everything is.
// Errors: EINVALID naming the input and field (unknown protocol, negative
// TVL, utilization outside 0–10000, an observation in the future, …);
// ECONFLICT when a different sample with the same protocol, observation
// time and source is stored already.
func (s *Service) Ingest(ctx context.Context, source string, inputs []obsqra.MetricsInput) ([]Ingested, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	protocols, err := s.db.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	bySlug := make(map[string]*obsqra.Protocol, len(protocols))
	for i := range protocols {
		bySlug[protocols[i].Slug] = &protocols[i]
	}
	now := s.cfg.Now()
	for i := range inputs {
		if err := validateInput(&inputs[i], bySlug, now); err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input[%d].%s", i, obsqra.ErrorMessage(err))
		}
	}
	var out []Ingested
	err = s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		out, err = s.ingestTx(ctx, tx, source, inputs, bySlug)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ingestTx is Ingest's unit of work for inputs already validated against
// bySlug. Errors name the input by its index in inputs.
func (s *Service) ingestTx(ctx context.Context, tx *store.Tx, source string, inputs []obsqra.MetricsInput, bySlug map[string]*obsqra.Protocol) ([]Ingested, error) {
	order := make([]int, len(inputs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return inputs[order[a]].ObservedAt.Before(inputs[order[b]].ObservedAt) })

	// The decision log's lock first: taken later, it would be awaited
	// while holding rows (a day of the daily series) that the holder of
	// the lock may need next.
	if err := tx.LockDecisions(ctx); err != nil {
		return nil, err
	}
	params, err := tx.ActiveRiskParams(ctx)
	if err != nil {
		return nil, err
	}
	model, err := s.model(params)
	if err != nil {
		return nil, err
	}
	daily, err := s.loadDaily(ctx, tx, inputs, bySlug)
	if err != nil {
		return nil, err
	}
	out := make([]Ingested, len(inputs))
	var events []obsqra.Event
	for _, i := range order {
		in := inputs[i]
		p := bySlug[in.Protocol]
		res, evs, err := s.ingestOne(ctx, tx, p, in, source, params, model, daily[p.ID])
		if err != nil {
			if obsqra.ErrorCode(err) != obsqra.EINTERNAL {
				return nil, obsqra.Errorf(obsqra.ErrorCode(err), "input[%d]: %s", i, obsqra.ErrorMessage(err))
			}
			return nil, err
		}
		out[i] = res
		events = append(events, evs...)
	}
	for i := range events {
		if err := tx.AppendEvent(ctx, &events[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// validateInput checks one input against the known protocols and the clock.
// Its error message starts with the field's name.
func validateInput(in *obsqra.MetricsInput, bySlug map[string]*obsqra.Protocol, now time.Time) error {
	in.Protocol = strings.TrimSpace(in.Protocol)
	switch {
	case bySlug[in.Protocol] == nil:
		return obsqra.Errorf(obsqra.EINVALID, "protocol: unknown protocol %q", in.Protocol)
	case in.ObservedAt.IsZero():
		return obsqra.Errorf(obsqra.EINVALID, "observedAt: required")
	case in.ObservedAt.After(now.Add(maxFutureSkew)):
		return obsqra.Errorf(obsqra.EINVALID, "observedAt: %s is in the future", in.ObservedAt.UTC().Format(time.RFC3339))
	case in.ObservedAt.UTC().Year() < 2009:
		return obsqra.Errorf(obsqra.EINVALID, "observedAt: %s is before any blockchain existed", in.ObservedAt.UTC().Format(time.RFC3339))
	case in.ApyBps < -10000 || in.ApyBps > 1_000_000:
		return obsqra.Errorf(obsqra.EINVALID, "apyBps: must be between -10000 and 1000000, got %d", in.ApyBps)
	case in.UtilizationBps < 0 || in.UtilizationBps > 10000:
		return obsqra.Errorf(obsqra.EINVALID, "utilizationBps: must be between 0 and 10000, got %d", in.UtilizationBps)
	case in.TvlUsd != nil && in.TvlUsd.IsNegative():
		return obsqra.Errorf(obsqra.EINVALID, "tvlUsd: must not be negative, got %s", in.TvlUsd)
	}
	return nil
}

// dailyWindow is a protocol's daily series as volatility reads it: the APY
// of each day's last sample, and when that sample was observed.
type dailyWindow struct {
	apy map[obsqra.Date]int
	at  map[obsqra.Date]time.Time
}

// loadDaily reads, in one statement, the daily APYs the batch's volatility
// windows need.
func (s *Service) loadDaily(ctx context.Context, tx *store.Tx, inputs []obsqra.MetricsInput, bySlug map[string]*obsqra.Protocol) (map[int64]dailyWindow, error) {
	var ids []int64
	first, last := obsqra.Date(math.MaxInt32), obsqra.Date(math.MinInt32)
	for _, in := range inputs {
		id := bySlug[in.Protocol].ID
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		d := obsqra.DateOf(in.ObservedAt)
		first, last = min(first, d), max(last, d)
	}
	series, err := tx.DailySeries(ctx, ids, first-VolatilityWindowDays+1, last)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]dailyWindow, len(ids))
	for _, id := range ids {
		w := dailyWindow{apy: make(map[obsqra.Date]int), at: make(map[obsqra.Date]time.Time)}
		for _, p := range series[id] {
			w.apy[p.Day], w.at[p.Day] = p.ApyBps, p.ObservedAt
		}
		out[id] = w
	}
	return out, nil
}

// Volatility is the risk score's volatility of a sample observed on day:
// ml.VolatilityBps of the daily APYs (bps) of the VolatilityWindowDays days
// ending on day, rounded to whole bps; 0 with fewer than two days of data.
func Volatility(daily map[obsqra.Date]int, day obsqra.Date) int {
	values := make([]float64, 0, VolatilityWindowDays)
	for d := day - VolatilityWindowDays + 1; d <= day; d++ {
		if v, ok := daily[d]; ok {
			values = append(values, float64(v))
		}
	}
	return int(math.Round(ml.VolatilityBps(values)))
}

// LiquidityTier returns the tier of a TVL: 0 at or above thresholds[0], 1
// at or above thresholds[1], 2 at or above thresholds[2], else 3; an
// unknown TVL is tier 2.
func LiquidityTier(tvl *obsqra.Decimal, thresholds [3]obsqra.Decimal) int {
	if tvl == nil {
		return 2
	}
	for i, t := range thresholds {
		if tvl.Cmp(t) >= 0 {
			return i
		}
	}
	return 3
}

// ingestOne stores, scores and records one validated sample in tx and
// returns the events to publish.
func (s *Service) ingestOne(ctx context.Context, tx *store.Tx, p *obsqra.Protocol, in obsqra.MetricsInput, source string,
	params *obsqra.RiskParams, model *ml.Model, daily dailyWindow) (Ingested, []obsqra.Event, error) {
	// The sample's own day counts with its own APY; whether it stays the
	// day's value for later samples is settled once it is stored.
	day := obsqra.DateOf(in.ObservedAt)
	prevDay, hadDay := daily.apy[day]
	daily.apy[day] = in.ApyBps
	m := obsqra.MetricsSample{
		ProtocolID:     p.ID,
		ObservedAt:     in.ObservedAt.UTC(),
		ApyBps:         in.ApyBps,
		TvlUsd:         in.TvlUsd,
		UtilizationBps: in.UtilizationBps,
		VolatilityBps:  Volatility(daily.apy, day),
		LiquidityTier:  LiquidityTier(in.TvlUsd, s.cfg.TierThresholds),
		Source:         source,
	}
	stored, created, err := tx.InsertMetricsSample(ctx, m)
	if err != nil {
		return Ingested{}, nil, err
	}
	// The day keeps the value RecordDaily keeps: that of its last sample
	// by observation time (a tie goes to the newer sample). A late sample,
	// older than the day's recorded last, must not stand in for its day in
	// the volatility of the batch's later samples: they would get another
	// value than the same samples ingested in separate batches.
	if created && (!hadDay || !stored.ObservedAt.Before(daily.at[day])) {
		daily.at[day] = stored.ObservedAt
	} else if hadDay {
		daily.apy[day] = prevDay
	} else {
		delete(daily.apy, day)
	}
	if !created {
		if stored.ApyBps != in.ApyBps || stored.UtilizationBps != in.UtilizationBps || !sameTVL(stored.TvlUsd, in.TvlUsd) {
			return Ingested{}, nil, obsqra.Errorf(obsqra.ECONFLICT,
				"a different %s sample of %s observed at %s is stored already", source, p.Slug, stored.ObservedAt.Format(time.RFC3339Nano))
		}
		risk, err := tx.RiskScoreBySample(ctx, stored.ID)
		if err != nil {
			return Ingested{}, nil, err
		}
		return Ingested{Sample: *stored, Risk: *risk}, nil, nil
	}
	inputs := obsqra.RiskInputs{
		Utilization: stored.UtilizationBps,
		Volatility:  stored.VolatilityBps,
		Liquidity:   stored.LiquidityTier,
		AuditScore:  p.AuditScore,
		AgeDays:     p.AgeDays(stored.ObservedAt),
	}
	outcome, err := score(model, inputs)
	if err != nil {
		// Stored samples are validated, so the inputs are in range; a
		// failure here is the server's.
		return Ingested{}, nil, fmt.Errorf("score sample %d of %s: %w", stored.ID, p.Slug, err)
	}
	rec, err := obsqra.EncodeDecision(obsqra.RiskScoreDecision{
		Protocol: p.Slug, SampleID: stored.ID, ObservedAt: stored.ObservedAt,
		Inputs: inputs, ParamsVersion: params.Version, Params: *params,
	})
	if err != nil {
		return Ingested{}, nil, fmt.Errorf("record risk inputs: %w", err)
	}
	outJSON, err := obsqra.EncodeDecision(outcome)
	if err != nil {
		return Ingested{}, nil, fmt.Errorf("record risk score: %w", err)
	}
	d := obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: rec, Output: outJSON, ModelVersion: obsqra.RiskModelVersion}
	if err := s.decisions.Append(ctx, tx, &d); err != nil {
		return Ingested{}, nil, err
	}
	risk := obsqra.RiskScore{
		ProtocolID: p.ID, SampleID: stored.ID, ObservedAt: stored.ObservedAt,
		Score: outcome.Score, Components: outcome.Components, Inputs: inputs,
		ParamsVersion: params.Version, ModelVersion: obsqra.RiskModelVersion,
		ComputedAt: d.CreatedAt, DecisionID: d.ID,
	}
	if err := tx.InsertRiskScore(ctx, &risk); err != nil {
		return Ingested{}, nil, err
	}
	// The daily row is written only after AppendDecision has taken the
	// decision log's lock (on PostgreSQL): a unit of work that locked a
	// protocol's day row first and then waited for the log could deadlock
	// with one that holds the log and reaches the same row with a later
	// sample of its batch.
	if err := tx.RecordDaily(ctx, stored); err != nil {
		return Ingested{}, nil, err
	}
	evs, err := ingestEvents(p, stored, &risk)
	if err != nil {
		return Ingested{}, nil, err
	}
	return Ingested{Sample: *stored, Risk: risk, Created: true}, evs, nil
}

func sameTVL(a, b *obsqra.Decimal) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// ingestEvents returns the outbox events of a stored sample m of p and its
// score r.
func ingestEvents(p *obsqra.Protocol, m *obsqra.MetricsSample, r *obsqra.RiskScore) ([]obsqra.Event, error) {
	me, err := obsqra.MetricsIngestedEvent(p.Slug, m)
	if err != nil {
		return nil, err
	}
	re, err := obsqra.RiskScoredEvent(p.Slug, r)
	if err != nil {
		return nil, err
	}
	return []obsqra.Event{*me, *re}, nil
}
