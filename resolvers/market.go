package resolvers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/market"
)

// Page sizes of connections.
const (
	defaultFirst = 20
	maxFirst     = 100
)

// Protocols resolves protocols.
func (r *queryResolver) Protocols(ctx context.Context) ([]*obsqra.Protocol, error) {
	ps, err := r.Market.Protocols(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.Protocol, len(ps))
	for i := range ps {
		out[i] = &ps[i]
	}
	loadersFrom(ctx).addSiblings(out...)
	return out, nil
}

// Protocol resolves protocol(slug): null when there is none. A string that
// cannot be a slug is answered without a query: PostgreSQL refuses some
// (a NUL byte) with an error the client would see as internal.
func (r *queryResolver) Protocol(ctx context.Context, slug string) (*obsqra.Protocol, error) {
	if !market.ValidSlug(slug) {
		return nil, nil
	}
	p, err := r.Market.Protocol(ctx, slug)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	loadersFrom(ctx).addSiblings(p)
	return p, nil
}

// RiskParams resolves riskParams.
func (r *queryResolver) RiskParams(ctx context.Context) (*obsqra.RiskParams, error) {
	l := loadersFrom(ctx)
	l.riskParamsOnce.Do(func() { l.riskParams, l.riskParamsErr = r.Market.RiskParams(ctx) })
	return l.riskParams, l.riskParamsErr
}

// RiskScorePreview resolves riskScorePreview: a RiskScore that is not
// stored, shown as a RiskScorePreview (no id).
func (r *queryResolver) RiskScorePreview(ctx context.Context, in obsqra.RiskInputs, params *obsqra.RiskParamsPatch) (*obsqra.RiskScore, error) {
	return r.Market.PreviewRisk(ctx, in, params)
}

// VerifyDecision resolves verifyDecision.
func (r *queryResolver) VerifyDecision(ctx context.Context, id string) (*obsqra.DecisionVerification, error) {
	n, err := obsqra.ParseNodeIDOf(obsqra.NodeDecision, id)
	if err != nil {
		return nil, err
	}
	return r.Decisions.Verify(ctx, n)
}

// SchedulerJobs resolves schedulerJobs (admins only).
func (r *queryResolver) SchedulerJobs(ctx context.Context) ([]*obsqra.SchedulerJob, error) {
	if _, err := obsqra.RequireAdmin(ctx, "see the scheduler's jobs"); err != nil {
		return nil, err
	}
	if r.Scheduler == nil {
		return []*obsqra.SchedulerJob{}, nil
	}
	jobs, err := r.Scheduler.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.SchedulerJob, len(jobs))
	for i := range jobs {
		out[i] = &jobs[i]
	}
	return out, nil
}

// UpsertProtocol resolves upsertProtocol.
func (r *mutationResolver) UpsertProtocol(ctx context.Context, in graph.UpsertProtocolInput) (*obsqra.Protocol, error) {
	pi := obsqra.ProtocolInput{
		Slug: in.Slug, Name: in.Name, Chain: in.Chain, Category: in.Category,
		AuditScore: in.AuditScore, LaunchedOn: in.LaunchedOn, Enabled: in.Enabled, PositionToken: in.PositionToken,
	}
	if in.ContractAddress != nil {
		a, err := obsqra.ParseAddress(*in.ContractAddress)
		if err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "contractAddress: %s", obsqra.ErrorMessage(err))
		}
		pi.ContractAddress = &a
	}
	if len(in.SourceIds) > 0 {
		if err := json.Unmarshal(in.SourceIds, &pi.SourceIDs); err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "sourceIds must be an object of strings")
		}
	}
	return r.Market.UpsertProtocol(ctx, pi)
}

// SetProtocolEnabled resolves setProtocolEnabled. A string that cannot be
// a slug is NOT_FOUND without a query, as for protocol(slug).
func (r *mutationResolver) SetProtocolEnabled(ctx context.Context, slug string, enabled bool) (*obsqra.Protocol, error) {
	if _, err := obsqra.RequireAdmin(ctx, "enable or disable protocols"); err != nil {
		return nil, err
	}
	if !market.ValidSlug(slug) {
		return nil, obsqra.Errorf(obsqra.ENOTFOUND, "no protocol has slug %q", slug)
	}
	return r.Market.SetProtocolEnabled(ctx, slug, enabled)
}

// IngestMetrics resolves ingestMetrics.
func (r *mutationResolver) IngestMetrics(ctx context.Context, input []*obsqra.MetricsInput) ([]*obsqra.MetricsSample, error) {
	in := make([]obsqra.MetricsInput, len(input))
	for i, m := range input {
		in[i] = *m
	}
	res, err := r.Market.IngestMetrics(ctx, in)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.MetricsSample, len(res))
	for i := range res {
		out[i] = &res[i].Sample
	}
	return out, nil
}

// SetRiskParams resolves setRiskParams.
func (r *mutationResolver) SetRiskParams(ctx context.Context, input obsqra.RiskParamsPatch) (*obsqra.RiskParams, error) {
	return r.Market.SetRiskParams(ctx, input)
}

type protocolResolver struct{ *Resolver }

// AgeDays resolves Protocol.ageDays: whole days since launch, today.
func (r *protocolResolver) AgeDays(ctx context.Context, p *obsqra.Protocol) (int, error) {
	return p.AgeDays(r.now()), nil
}

// LatestMetrics resolves Protocol.latestMetrics, batched.
func (r *protocolResolver) LatestMetrics(ctx context.Context, p *obsqra.Protocol) (*obsqra.MetricsSample, error) {
	m, ok, err := load(ctx, "latestMetrics", p.ID, r.Market.LatestMetrics)
	if err != nil || !ok {
		return nil, err
	}
	return &m, nil
}

// LatestRisk resolves Protocol.latestRisk, batched.
func (r *protocolResolver) LatestRisk(ctx context.Context, p *obsqra.Protocol) (*obsqra.RiskScore, error) {
	s, ok, err := load(ctx, "latestRisk", p.ID, r.Market.LatestRisk)
	if err != nil || !ok {
		return nil, err
	}
	return &s, nil
}

// historyPage checks a history field's arguments.
func historyPage(first *int, after *string, from, to *time.Time) (obsqra.HistoryPage, string, error) {
	page := obsqra.HistoryPage{First: defaultFirst, From: from, To: to}
	if first != nil {
		if *first < 1 || *first > maxFirst {
			return page, "", obsqra.Errorf(obsqra.EINVALID, "first must be between 1 and %d, got %d", maxFirst, *first)
		}
		page.First = *first
	}
	if from != nil && to != nil && from.After(*to) {
		return page, "", obsqra.Errorf(obsqra.EINVALID, "from must not be after to")
	}
	key := strconv.Itoa(page.First)
	if after != nil {
		k, err := parseHistoryCursor(*after)
		if err != nil {
			return page, "", err
		}
		page.After = &k
		key += "|" + *after
	}
	key += "|" + timeKey(from) + "|" + timeKey(to)
	return page, key, nil
}

func timeKey(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// historyCursor is the opaque cursor of a history row: base64url of
// "h:<observedAt in Unix microseconds>:<id>".
func historyCursor(at time.Time, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("h:" + strconv.FormatInt(at.UnixMicro(), 10) + ":" + strconv.FormatInt(id, 10)))
}

// The range of a cursor's time: ingestion refuses samples before 2009, and
// PostgreSQL refuses a timestamp far outside this range with an error the
// client would see as internal.
var (
	minCursorMicros = time.Date(2009, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() // exclusive
)

func parseHistoryCursor(s string) (obsqra.HistoryKey, error) {
	bad := obsqra.Errorf(obsqra.EINVALID, "after: not a cursor of this list")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 100 {
		return obsqra.HistoryKey{}, bad
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "h" {
		return obsqra.HistoryKey{}, bad
	}
	us, err1 := strconv.ParseInt(parts[1], 10, 64)
	id, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || id < 1 || us < minCursorMicros || us >= maxCursorMicros {
		return obsqra.HistoryKey{}, bad
	}
	return obsqra.HistoryKey{At: time.UnixMicro(us).UTC(), ID: id}, nil
}

// MetricsHistory resolves Protocol.metricsHistory, batched over the
// operation's protocols that ask for the same page.
func (r *protocolResolver) MetricsHistory(ctx context.Context, p *obsqra.Protocol, first *int, after *string, from, to *time.Time) (*graph.MetricsSampleConnection, error) {
	page, key, err := historyPage(first, after, from, to)
	if err != nil {
		return nil, err
	}
	rows, _, err := load(ctx, "metricsHistory|"+key, p.ID, func(ctx context.Context, ids []int64) (map[int64][]obsqra.MetricsSample, error) {
		return r.Market.MetricsHistory(ctx, ids, page)
	})
	if err != nil {
		return nil, err
	}
	cursors, info := pageOf(rows, page, after, func(m *obsqra.MetricsSample) (time.Time, int64) { return m.ObservedAt, m.ID })
	conn := &graph.MetricsSampleConnection{PageInfo: info, Edges: make([]*graph.MetricsSampleEdge, len(cursors))}
	for i, c := range cursors {
		conn.Edges[i] = &graph.MetricsSampleEdge{Cursor: c, Node: &rows[i]}
	}
	return conn, nil
}

// RiskHistory resolves Protocol.riskHistory, batched over the operation's
// protocols that ask for the same page.
func (r *protocolResolver) RiskHistory(ctx context.Context, p *obsqra.Protocol, first *int, after *string, from, to *time.Time) (*graph.RiskScoreConnection, error) {
	page, key, err := historyPage(first, after, from, to)
	if err != nil {
		return nil, err
	}
	rows, _, err := load(ctx, "riskHistory|"+key, p.ID, func(ctx context.Context, ids []int64) (map[int64][]obsqra.RiskScore, error) {
		return r.Market.RiskHistory(ctx, ids, page)
	})
	if err != nil {
		return nil, err
	}
	cursors, info := pageOf(rows, page, after, func(r *obsqra.RiskScore) (time.Time, int64) { return r.ObservedAt, r.ID })
	conn := &graph.RiskScoreConnection{PageInfo: info, Edges: make([]*graph.RiskScoreEdge, len(cursors))}
	for i, c := range cursors {
		conn.Edges[i] = &graph.RiskScoreEdge{Cursor: c, Node: &rows[i]}
	}
	return conn, nil
}

// pageOf returns the cursors of the rows of a history page (the store read
// up to First+1 rows, so that one more means a next page) and the page's
// info.
func pageOf[T any](rows []T, page obsqra.HistoryPage, after *string, key func(*T) (time.Time, int64)) ([]string, *graph.PageInfo) {
	n := min(len(rows), page.First)
	info := &graph.PageInfo{HasPreviousPage: after != nil, HasNextPage: len(rows) > page.First}
	cursors := make([]string, n)
	for i := range n {
		cursors[i] = historyCursor(key(&rows[i]))
	}
	if n > 0 {
		info.StartCursor, info.EndCursor = &cursors[0], &cursors[n-1]
	}
	return cursors, info
}

type metricsSampleResolver struct{ *Resolver }

// Protocol resolves MetricsSample.protocol.
func (r *metricsSampleResolver) Protocol(ctx context.Context, m *obsqra.MetricsSample) (*obsqra.Protocol, error) {
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, m.ProtocolID)
}

type riskScoreResolver struct{ *Resolver }

// Protocol resolves RiskScore.protocol: null for a preview.
func (r *riskScoreResolver) Protocol(ctx context.Context, s *obsqra.RiskScore) (*obsqra.Protocol, error) {
	if s.ProtocolID == 0 {
		return nil, nil
	}
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, s.ProtocolID)
}

// ObservedAt resolves RiskScore.observedAt: null for a preview.
func (r *riskScoreResolver) ObservedAt(ctx context.Context, s *obsqra.RiskScore) (*time.Time, error) {
	if s.ObservedAt.IsZero() {
		return nil, nil
	}
	return &s.ObservedAt, nil
}

// ParamsVersion resolves RiskScore.paramsVersion: null for a preview.
func (r *riskScoreResolver) ParamsVersion(ctx context.Context, s *obsqra.RiskScore) (*int, error) {
	if s.ParamsVersion == 0 {
		return nil, nil
	}
	return &s.ParamsVersion, nil
}

// DecisionID resolves RiskScore.decisionId: null for a preview.
func (r *riskScoreResolver) DecisionID(ctx context.Context, s *obsqra.RiskScore) (*string, error) {
	if s.DecisionID == 0 {
		return nil, nil
	}
	id := obsqra.NodeID(obsqra.NodeDecision, s.DecisionID)
	return &id, nil
}

type decisionVerificationResolver struct{ *Resolver }

// OnChainScore resolves DecisionVerification.onChainScore: a failure to
// ask the RiskEngine is this field's error, not the verification's.
func (r *decisionVerificationResolver) OnChainScore(ctx context.Context, v *obsqra.DecisionVerification) (*int, error) {
	return v.OnChainScore, v.OnChainErr
}

// SignatureValid resolves DecisionVerification.signatureValid: a failure
// to ask the signer's account contract is this field's error.
func (r *decisionVerificationResolver) SignatureValid(ctx context.Context, v *obsqra.DecisionVerification) (*bool, error) {
	return v.SignatureValid, v.SignatureErr
}

// MatchesOnChain resolves DecisionVerification.matchesOnChain.
func (r *decisionVerificationResolver) MatchesOnChain(ctx context.Context, v *obsqra.DecisionVerification) (*bool, error) {
	return v.MatchesOnChain, v.OnChainErr
}

// BrokenAt resolves DecisionVerification.brokenAt.
func (r *decisionVerificationResolver) BrokenAt(ctx context.Context, v *obsqra.DecisionVerification) (*string, error) {
	if v.BrokenAt == 0 {
		return nil, nil
	}
	id := obsqra.NodeID(obsqra.NodeDecision, v.BrokenAt)
	return &id, nil
}

type schedulerJobResolver struct{ *Resolver }

// IntervalSeconds resolves SchedulerJob.intervalSeconds.
func (r *schedulerJobResolver) IntervalSeconds(ctx context.Context, j *obsqra.SchedulerJob) (float64, error) {
	return j.Interval.Seconds(), nil
}

// TimeoutSeconds resolves SchedulerJob.timeoutSeconds.
func (r *schedulerJobResolver) TimeoutSeconds(ctx context.Context, j *obsqra.SchedulerJob) (float64, error) {
	return j.Timeout.Seconds(), nil
}

type jobRunResolver struct{ *Resolver }

// Error resolves JobRun.error: null for a run without one.
func (r *jobRunResolver) Error(ctx context.Context, run *obsqra.JobRun) (*string, error) {
	if run.Error == "" {
		return nil, nil
	}
	return &run.Error, nil
}
