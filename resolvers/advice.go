package resolvers

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/graph"
)

// Predictions resolves Query.predictions.
func (r *queryResolver) Predictions(ctx context.Context, filter *obsqra.PredictionFilter, first *int, after *string) (*graph.PredictionConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	var afterID int64
	if after != nil {
		if afterID, err = parseIDCursor(*after); err != nil {
			return nil, err
		}
	}
	var kind obsqra.PredictionKind
	var protocolID int64
	if filter != nil {
		if filter.Kind != nil {
			kind = *filter.Kind
		}
		if filter.Protocol != nil {
			p, err := r.Market.Protocol(ctx, *filter.Protocol)
			if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
				return nil, obsqra.Errorf(obsqra.EINVALID, "filter.protocol: there is no protocol %s", obsqra.QuoteInput(*filter.Protocol))
			} else if err != nil {
				return nil, err
			}
			protocolID = p.ID
		}
	}
	rows, err := r.Advisor.Predictions(ctx, kind, protocolID, n, afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.PredictionConnection{PageInfo: &graph.PageInfo{HasPreviousPage: after != nil, HasNextPage: len(rows) > n}}
	rows = rows[:min(len(rows), n)]
	for i := range rows {
		conn.Edges = append(conn.Edges, &graph.PredictionEdge{Cursor: idCursor(rows[i].ID), Node: &rows[i]})
	}
	if len(conn.Edges) > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[len(conn.Edges)-1].Cursor
	} else {
		conn.Edges = []*graph.PredictionEdge{}
	}
	return conn, nil
}

// pageSize checks a connection's first argument.
func pageSize(first *int) (int, error) {
	if first == nil {
		return defaultFirst, nil
	}
	if *first < 1 || *first > maxFirst {
		return 0, obsqra.Errorf(obsqra.EINVALID, "first must be between 1 and %d, got %d", maxFirst, *first)
	}
	return *first, nil
}

// idCursor is the opaque cursor of a row ordered by id: base64url of
// "i:<id>".
func idCursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("i:" + strconv.FormatInt(id, 10)))
}

func parseIDCursor(s string) (int64, error) {
	bad := obsqra.Errorf(obsqra.EINVALID, "after: not a cursor of this list")
	if len(s) > 100 {
		return 0, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	num, ok := strings.CutPrefix(string(raw), "i:")
	if !ok {
		return 0, bad
	}
	id, err := strconv.ParseInt(num, 10, 64)
	if err != nil || id < 1 {
		return 0, bad
	}
	return id, nil
}

// ModelPerformance resolves Query.modelPerformance.
func (r *queryResolver) ModelPerformance(ctx context.Context, kind obsqra.PredictionKind, horizonDays int, windowDays *int) (*obsqra.ModelPerformance, error) {
	w := 90
	if windowDays != nil {
		w = *windowDays
	}
	return r.Advisor.ModelPerformance(ctx, kind, horizonDays, w)
}

// Backtest resolves Query.backtest.
func (r *queryResolver) Backtest(ctx context.Context, protocols []string, horizonDays int, windowDays *int) (*obsqra.BacktestReport, error) {
	return r.Advisor.Backtest(ctx, protocols, horizonDays, windowDays)
}

// OptimizeAllocation resolves Query.optimizeAllocation.
func (r *queryResolver) OptimizeAllocation(ctx context.Context, input *obsqra.OptimizeAllocationInput) (*obsqra.AllocationPlan, error) {
	var in obsqra.OptimizeAllocationInput
	if input != nil {
		in = *input
	}
	p, err := r.Advisor.OptimizeAllocation(ctx, in)
	if err == nil {
		weightSiblings(ctx, p.Weights)
	}
	return p, err
}

// RebalanceSuggestion resolves Query.rebalanceSuggestion: null while the
// user holds no allocation.
func (r *queryResolver) RebalanceSuggestion(ctx context.Context) (*obsqra.RebalanceSuggestion, error) {
	s, err := r.Advisor.RebalanceSuggestion(ctx)
	if err == nil {
		weightSiblings(ctx, s.Target)
	}
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		if _, authErr := obsqra.RequireUser(ctx); authErr == nil {
			return nil, nil
		}
	}
	return s, err
}

// AllocationHistory resolves Query.allocationHistory.
func (r *queryResolver) AllocationHistory(ctx context.Context, first *int, after *string, from, to *time.Time) (*graph.AllocationConnection, error) {
	page, _, err := historyPage(first, after, from, to)
	if err != nil {
		return nil, err
	}
	rows, err := r.Portfolio.AllocationHistory(ctx, page.First, page.After, from, to)
	if err != nil {
		return nil, err
	}
	cursors, info := pageOf(rows, page, after, func(a *obsqra.Allocation) (time.Time, int64) { return a.CreatedAt, a.ID })
	conn := &graph.AllocationConnection{PageInfo: info, Edges: make([]*graph.AllocationEdge, len(cursors))}
	for i, c := range cursors {
		conn.Edges[i] = &graph.AllocationEdge{Cursor: c, Node: &rows[i]}
	}
	return conn, nil
}

// Dashboard resolves Query.dashboard.
func (r *queryResolver) Dashboard(ctx context.Context, windowDays *int) (*obsqra.Dashboard, error) {
	w := 7
	if windowDays != nil {
		w = *windowDays
	}
	return r.dashboard(ctx, w)
}

// dashboard is the signed-in user's dashboard over the last windowDays,
// for Query.dashboard and node(id:).
func (r *Resolver) dashboard(ctx context.Context, windowDays int) (*obsqra.Dashboard, error) {
	d, err := r.Portfolio.Dashboard(ctx, windowDays)
	if err != nil {
		return nil, err
	}
	l := loadersFrom(ctx)
	for _, p := range d.Protocols {
		l.addSiblingIDs(p.ProtocolID)
	}
	if d.PendingSuggestion != nil {
		weightSiblings(ctx, d.PendingSuggestion.Target)
	}
	return d, nil
}

// PortfolioRiskHistory resolves Query.portfolioRiskHistory.
func (r *queryResolver) PortfolioRiskHistory(ctx context.Context, windowDays *int) ([]*obsqra.PortfolioRiskPoint, error) {
	w := 30
	if windowDays != nil {
		w = *windowDays
	}
	pts, err := r.Portfolio.PortfolioRiskHistory(ctx, w)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.PortfolioRiskPoint, len(pts))
	for i := range pts {
		out[i] = &pts[i]
	}
	return out, nil
}

// RunOptimization resolves Mutation.runOptimization.
func (r *mutationResolver) RunOptimization(ctx context.Context) (*obsqra.OptimizationRun, error) {
	run, err := r.Advisor.RunOptimization(ctx)
	if err == nil {
		weightSiblings(ctx, run.Plan.Weights)
	}
	return run, err
}

// RecordAllocation resolves Mutation.recordAllocation.
func (r *mutationResolver) RecordAllocation(ctx context.Context, input obsqra.RecordAllocationInput) (*obsqra.Allocation, error) {
	return r.Portfolio.RecordAllocation(ctx, input)
}

// YieldForecast resolves Protocol.yieldForecast, batched over the
// operation's protocols that ask for the same horizon.
func (r *protocolResolver) YieldForecast(ctx context.Context, p *obsqra.Protocol, horizonDays *int) (*obsqra.Forecast, error) {
	return r.forecast(ctx, obsqra.PredictionYieldForecast, p, horizonDays)
}

// RiskForecast resolves Protocol.riskForecast, batched likewise.
func (r *protocolResolver) RiskForecast(ctx context.Context, p *obsqra.Protocol, horizonDays *int) (*obsqra.Forecast, error) {
	return r.forecast(ctx, obsqra.PredictionRiskForecast, p, horizonDays)
}

func (r *protocolResolver) forecast(ctx context.Context, kind obsqra.PredictionKind, p *obsqra.Protocol, horizonDays *int) (*obsqra.Forecast, error) {
	key := "forecast|" + string(kind) + "|"
	if horizonDays != nil {
		key += strconv.Itoa(*horizonDays)
	}
	res, _, err := load(ctx, key, p.ID, func(ctx context.Context, ids []int64) (map[int64]advisor.ForecastResult, error) {
		l := loadersFrom(ctx)
		ps := make([]*obsqra.Protocol, 0, len(ids))
		for _, id := range ids {
			q, err := l.protocolByID(ctx, r.Resolver, id)
			if err != nil {
				return nil, err
			}
			ps = append(ps, q)
		}
		return r.Advisor.Forecasts(ctx, kind, ps, horizonDays)
	})
	if err != nil {
		return nil, err
	}
	return res.Forecast, res.Err
}

type predictionResolver struct{ *Resolver }

// Protocol resolves Prediction.protocol: null for a suggestion.
func (r *predictionResolver) Protocol(ctx context.Context, p *obsqra.Prediction) (*obsqra.Protocol, error) {
	if p.ProtocolID == 0 {
		return nil, nil
	}
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, p.ProtocolID)
}

type allocationResolver struct{ *Resolver }

// Suggestion resolves Allocation.suggestion.
func (r *allocationResolver) Suggestion(ctx context.Context, a *obsqra.Allocation) (*obsqra.RebalanceSuggestion, error) {
	if a.SuggestionID == 0 {
		return nil, nil
	}
	s, err := r.Advisor.Suggestion(ctx, a.SuggestionID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		// An optimisation run made before the user held anything has no
		// move to show.
		return nil, nil
	}
	return s, err
}

// DecisionID resolves Allocation.decisionId.
func (r *allocationResolver) DecisionID(ctx context.Context, a *obsqra.Allocation) (*string, error) {
	if a.DecisionID == 0 {
		return nil, nil
	}
	id := obsqra.NodeID(obsqra.NodeDecision, a.DecisionID)
	return &id, nil
}

type rebalanceSuggestionResolver struct{ *Resolver }

// DecisionID resolves RebalanceSuggestion.decisionId.
func (r *rebalanceSuggestionResolver) DecisionID(ctx context.Context, s *obsqra.RebalanceSuggestion) (string, error) {
	return obsqra.NodeID(obsqra.NodeDecision, s.DecisionID), nil
}

type optimizationRunResolver struct{ *Resolver }

// DecisionID resolves OptimizationRun.decisionId.
func (r *optimizationRunResolver) DecisionID(ctx context.Context, run *obsqra.OptimizationRun) (string, error) {
	return obsqra.NodeID(obsqra.NodeDecision, run.DecisionID), nil
}

type weightResolver struct{ *Resolver }

// Protocol resolves Weight.protocol.
func (r *weightResolver) Protocol(ctx context.Context, w *obsqra.Weight) (*obsqra.Protocol, error) {
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, w.ProtocolID)
}

type rebalanceTradeResolver struct{ *Resolver }

// Protocol resolves RebalanceTrade.protocol.
func (r *rebalanceTradeResolver) Protocol(ctx context.Context, t *obsqra.RebalanceTrade) (*obsqra.Protocol, error) {
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, t.ProtocolID)
}

type dashboardProtocolResolver struct{ *Resolver }

// Protocol resolves DashboardProtocol.protocol.
func (r *dashboardProtocolResolver) Protocol(ctx context.Context, d *obsqra.DashboardProtocol) (*obsqra.Protocol, error) {
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, d.ProtocolID)
}

type backtestReportResolver struct{ *Resolver }

// Protocols resolves BacktestReport.protocols.
func (r *backtestReportResolver) Protocols(ctx context.Context, b *obsqra.BacktestReport) ([]*obsqra.Protocol, error) {
	l := loadersFrom(ctx)
	out := make([]*obsqra.Protocol, 0, len(b.ProtocolIDs))
	for _, id := range b.ProtocolIDs {
		p, err := l.protocolByID(ctx, r.Resolver, id)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Allocation returns the resolvers of the Allocation type.
func (r *Resolver) Allocation() graph.AllocationResolver { return &allocationResolver{r} }

// BacktestReport returns the resolvers of the BacktestReport type.
func (r *Resolver) BacktestReport() graph.BacktestReportResolver { return &backtestReportResolver{r} }

// DashboardProtocol returns the resolvers of the DashboardProtocol type.
func (r *Resolver) DashboardProtocol() graph.DashboardProtocolResolver {
	return &dashboardProtocolResolver{r}
}

// OptimizationRun returns the resolvers of the OptimizationRun type.
func (r *Resolver) OptimizationRun() graph.OptimizationRunResolver {
	return &optimizationRunResolver{r}
}

// Prediction returns the resolvers of the Prediction type.
func (r *Resolver) Prediction() graph.PredictionResolver { return &predictionResolver{r} }

// RebalanceSuggestion returns the resolvers of the RebalanceSuggestion type.
func (r *Resolver) RebalanceSuggestion() graph.RebalanceSuggestionResolver {
	return &rebalanceSuggestionResolver{r}
}

// RebalanceTrade returns the resolvers of the RebalanceTrade type.
func (r *Resolver) RebalanceTrade() graph.RebalanceTradeResolver { return &rebalanceTradeResolver{r} }

// Weight returns the resolvers of the Weight type.
func (r *Resolver) Weight() graph.WeightResolver { return &weightResolver{r} }
