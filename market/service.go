// Package market keeps the protocols Obsqra follows and their market data:
// the feeds (simulated, DefiLlama, CSV import, admin push), ingestion, and
// the risk score of every new sample with the RiskEngine's parity formula,
// recorded in the hash-chained decision log.
package market

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/store"
)

// Defaults of Config.
const (
	DefaultHistoryDays = 400
	// VolatilityWindowDays is the trailing window of daily APYs whose
	// standard deviation is a sample's volatility (ml's).
	VolatilityWindowDays = ml.VolatilityWindowDays
	// maxFutureSkew is how far ahead of the server's clock an observation
	// may be stamped (clock skew between a feed and the server).
	maxFutureSkew = time.Minute
	// MaxIngestBatch bounds one ingestMetrics call.
	MaxIngestBatch = 1000
	// importChunk is how many samples an import or a backfill commits per
	// unit of work.
	importChunk = 500
)

// DefaultTierThresholds are LIQUIDITY_TIER_USD's default: TVL of at least
// 50 M USD is tier 0, 10 M tier 1, 1 M tier 2, less tier 3.
var DefaultTierThresholds = [3]obsqra.Decimal{
	obsqra.MustDecimal("50000000"), obsqra.MustDecimal("10000000"), obsqra.MustDecimal("1000000"),
}

// Config configures a Service.
type Config struct {
	// Source is the live feed the ingest job polls; nil for none (only
	// pushed data).
	Source Source
	// PollInterval is how often the ingest job polls Source; samples of the
	// feed older than three intervals are reported stale.
	PollInterval time.Duration
	// TierThresholds are the TVLs in USD from which a protocol's liquidity
	// tier is 0, 1 and 2 (descending); below the last it is 3, and an
	// unknown TVL is tier 2.
	TierThresholds [3]obsqra.Decimal
	// HistoryDays is how many days of daily history the first poll of an
	// empty database asks the feed for (default 400).
	HistoryDays int
	Logger      *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ProtocolTTL is how old ProtocolsByID's snapshot may be (default
	// 1s): how long another instance's change of a protocol may take to
	// show in this one's subscriptions. This instance's own changes show
	// at once.
	ProtocolTTL time.Duration
}

// Service holds the market use cases. Resolvers, the importer and the
// scheduler's ingest job all go through it.
type Service struct {
	db        *store.DB
	decisions *decision.Log
	cfg       Config

	mu sync.Mutex
	// models caches the scoring model of each parameters version.
	models map[int]*ml.Model
	// feedErr is the last poll's error while the feed is down.
	feedErr error
	// backfilled holds the protocols whose history this process has
	// checked (and loaded when it lacked).
	backfilled map[int64]bool
	protocols  protocolSnapshot
}

// protocolSnapshot is ProtocolsByID's read model of the protocols table.
type protocolSnapshot struct {
	mu   sync.Mutex
	byID map[int64]*obsqra.Protocol // nil when none is valid
	at   time.Time                  // when the read of byID began
	// gen counts invalidations: a read that began before one is not kept.
	gen uint64
	// loading is closed when the read in progress ends; nil when none is.
	loading chan struct{}
}

// New returns a market service on db that records its risk scores in
// decisions.
func New(db *store.DB, decisions *decision.Log, cfg Config) (*Service, error) {
	if decisions == nil {
		return nil, errors.New("market: no decision log")
	}
	if cfg.TierThresholds == ([3]obsqra.Decimal{}) {
		cfg.TierThresholds = DefaultTierThresholds
	}
	t := cfg.TierThresholds
	if t[0].Cmp(t[1]) <= 0 || t[1].Cmp(t[2]) <= 0 || t[2].IsNegative() {
		return nil, obsqra.Errorf(obsqra.EINVALID, "liquidity tier thresholds must be descending and not negative, got %s, %s, %s", t[0], t[1], t[2])
	}
	if cfg.HistoryDays == 0 {
		cfg.HistoryDays = DefaultHistoryDays
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProtocolTTL <= 0 {
		cfg.ProtocolTTL = time.Second
	}
	return &Service{db: db, decisions: decisions, cfg: cfg, models: make(map[int]*ml.Model), backfilled: make(map[int64]bool)}, nil
}

// SourceName is the name of the live feed, "none" when there is none.
func (s *Service) SourceName() string {
	if s.cfg.Source == nil {
		return "none"
	}
	return s.cfg.Source.Name()
}

// Protocols returns every protocol, ordered by slug.
// Errors: only internal ones.
func (s *Service) Protocols(ctx context.Context) ([]obsqra.Protocol, error) {
	return s.db.Protocols(ctx)
}

// Protocol returns the protocol with the given slug.
// Errors: ENOTFOUND.
func (s *Service) Protocol(ctx context.Context, slug string) (*obsqra.Protocol, error) {
	return s.db.ProtocolBySlug(ctx, slug)
}

// ProtocolByID returns the protocol with the given id.
// Errors: ENOTFOUND.
func (s *Service) ProtocolByID(ctx context.Context, id int64) (*obsqra.Protocol, error) {
	return s.db.ProtocolByID(ctx, id)
}

// ProtocolsByID returns every protocol by id from a snapshot at most
// Config.ProtocolTTL old, read once for all callers: what a subscription
// resolves for each event it sends (its protocol's slug, name, enabled),
// so that a stream of events costs one statement per TTL and instance, not
// one per event. The map and protocols are shared: callers must not
// modify them.
//
// Why a snapshot is correct here: protocols change only through this
// service (UpsertProtocol, SetProtocolEnabled, Import's creations), and
// each of those drops the snapshot once it has committed, so this
// instance's changes show at once. Another instance's change (or an
// operator's SQL) shows within ProtocolTTL; no event says that a protocol
// changed, and none needs to: an event's protocol field is the protocol
// as it is when the event is sent, not as of the event, so a subscriber
// has no order to keep between a rename and the events around it, and a
// second's delay is within the delay of delivery itself. Reads that decide
// something (ingestion, mutations, queries) read the table.
// Errors: only internal ones.
func (s *Service) ProtocolsByID(ctx context.Context) (map[int64]*obsqra.Protocol, error) {
	c := &s.protocols
	for {
		c.mu.Lock()
		if c.byID != nil && s.cfg.Now().Sub(c.at) < s.cfg.ProtocolTTL {
			m := c.byID
			c.mu.Unlock()
			return m, nil
		}
		if wait := c.loading; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		loading := make(chan struct{})
		c.loading = loading
		gen, at := c.gen, s.cfg.Now()
		c.mu.Unlock()

		ps, err := s.db.Protocols(ctx)
		var m map[int64]*obsqra.Protocol
		if err == nil {
			m = make(map[int64]*obsqra.Protocol, len(ps))
			for i := range ps {
				m[ps[i].ID] = &ps[i]
			}
		}
		c.mu.Lock()
		if err == nil && c.gen == gen {
			c.byID, c.at = m, at
		}
		c.loading = nil
		close(loading)
		c.mu.Unlock()
		return m, err
	}
}

// dropProtocols drops ProtocolsByID's snapshot after a change of protocols
// committed (or failed: dropping costs one read).
func (s *Service) dropProtocols() {
	c := &s.protocols
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byID = nil
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidSlug reports whether s has the form of a protocol slug: 1-63
// lowercase letters, digits and dashes, starting with a letter or digit.
// No other slug can name a protocol, so callers may refuse it unasked.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// validateProtocol checks an admin's protocol input.
func validateProtocol(in *obsqra.ProtocolInput) error {
	in.Slug = strings.TrimSpace(in.Slug)
	in.Name = strings.TrimSpace(in.Name)
	in.Chain = strings.ToLower(strings.TrimSpace(in.Chain))
	switch {
	case !ValidSlug(in.Slug):
		return obsqra.Errorf(obsqra.EINVALID, "slug must be 1-63 lowercase letters, digits and dashes, starting with a letter or digit")
	case !plainText(in.Name, 100):
		return obsqra.Errorf(obsqra.EINVALID, "name must be 1-100 characters of UTF-8 text without control characters")
	case !plainText(in.Chain, 50):
		return obsqra.Errorf(obsqra.EINVALID, "chain must be 1-50 characters of UTF-8 text without control characters")
	case !in.Category.IsValid():
		return obsqra.Errorf(obsqra.EINVALID, "category %q is not a valid ProtocolCategory", in.Category)
	case in.AuditScore < 0 || in.AuditScore > 100:
		return obsqra.Errorf(obsqra.EINVALID, "auditScore must be between 0 and 100, got %d", in.AuditScore)
	case in.LaunchedOn < obsqra.DateOf(time.Date(2009, 1, 3, 0, 0, 0, 0, time.UTC)):
		return obsqra.Errorf(obsqra.EINVALID, "launchedOn %s is before any blockchain existed", in.LaunchedOn)
	case len(in.SourceIDs) > 16:
		return obsqra.Errorf(obsqra.EINVALID, "sourceIds may hold at most 16 entries")
	}
	for k, v := range in.SourceIDs {
		if !plainText(k, 64) || (v != "" && !plainText(v, 256)) {
			return obsqra.Errorf(obsqra.EINVALID, "sourceIds: keys must be 1-64 and values at most 256 characters of UTF-8 text without control characters")
		}
	}
	return nil
}

// plainText reports whether s is 1 to max characters of valid UTF-8 with
// no control character (NUL included, which PostgreSQL's text refuses).
func plainText(s string, max int) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// UpsertProtocol creates or replaces the protocol of in.Slug.
// Errors: EUNAUTHENTICATED, EFORBIDDEN (not an admin), EINVALID naming the
// field.
func (s *Service) UpsertProtocol(ctx context.Context, in obsqra.ProtocolInput) (*obsqra.Protocol, error) {
	if _, err := obsqra.RequireAdmin(ctx, "change protocols"); err != nil {
		return nil, err
	}
	if err := validateProtocol(&in); err != nil {
		return nil, err
	}
	if in.LaunchedOn > obsqra.DateOf(s.cfg.Now()) {
		return nil, obsqra.Errorf(obsqra.EINVALID, "launchedOn %s is in the future", in.LaunchedOn)
	}
	var p *obsqra.Protocol
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		p, _, err = tx.UpsertProtocol(ctx, in)
		return err
	})
	s.dropProtocols()
	return p, err
}

// SetProtocolEnabled turns a protocol on or off.
// Errors: EUNAUTHENTICATED, EFORBIDDEN, ENOTFOUND.
func (s *Service) SetProtocolEnabled(ctx context.Context, slug string, enabled bool) (*obsqra.Protocol, error) {
	if _, err := obsqra.RequireAdmin(ctx, "enable or disable protocols"); err != nil {
		return nil, err
	}
	var p *obsqra.Protocol
	err := s.db.WithTx(ctx, func(tx *store.Tx) (err error) {
		p, err = tx.SetProtocolEnabled(ctx, slug, enabled)
		return err
	})
	s.dropProtocols()
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no protocol has slug %q", slug)
	}
	return p, err
}

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

// newModel validates p and returns its scoring model. Errors: EINVALID
// naming the parameter.
func newModel(p obsqra.RiskParams) (*ml.Model, error) {
	weights := []struct {
		name string
		v    int
	}{
		{"wUtilization", p.WUtilization}, {"wVolatility", p.WVolatility},
		{"wLiquidity0", p.WLiquidity0}, {"wLiquidity1", p.WLiquidity1},
		{"wLiquidity2", p.WLiquidity2}, {"wLiquidity3", p.WLiquidity3},
		{"wAudit", p.WAudit}, {"wAge", p.WAge}, {"ageCapDays", p.AgeCapDays},
	}
	for _, w := range weights {
		if w.v > MaxRiskWeight {
			return nil, obsqra.Errorf(obsqra.EINVALID, "%s must be at most %d, got %d", w.name, MaxRiskWeight, w.v)
		}
	}
	return ml.NewModel(p)
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

// MetricsSample returns the sample with the given id.
// Errors: ENOTFOUND.
func (s *Service) MetricsSample(ctx context.Context, id int64) (*obsqra.MetricsSample, error) {
	return s.db.MetricsSample(ctx, id)
}
