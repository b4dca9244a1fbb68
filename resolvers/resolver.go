// Package resolvers connects the GraphQL schema to the domain services:
// arguments in, service calls out. It holds no SQL and no maths; the
// services decide and authorise, so the same rules hold for every caller.
package resolvers

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/portfolio"
)

// Resolver is the root of all resolvers; its fields are the services they
// call. It is the one place where dependencies are injected.
type Resolver struct {
	Accounts *account.Service
	Market   *market.Service
	// Decisions is the decision log: node(id:) of a decision and
	// verifyDecision.
	Decisions *decision.Log
	// Advisor makes forecasts, plans, suggestions and backtests.
	Advisor *advisor.Service
	// Portfolio keeps allocations and makes dashboards.
	Portfolio *portfolio.Service
	// Ledger keeps the users' transaction logs.
	Ledger *ledger.Service
	// Scheduler lists the scheduler's jobs; nil when none runs.
	Scheduler Scheduler
	// Live fans events out to subscriptions; nil when no hub runs (then
	// every subscription is refused).
	Live Hub
	// Now is the clock of derived fields such as Protocol.ageDays
	// (default time.Now).
	Now func() time.Time
}

// Scheduler is what the resolvers need of the job scheduler.
type Scheduler interface {
	Jobs(ctx context.Context) ([]obsqra.SchedulerJob, error)
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// NewExecutableSchema returns the GraphQL schema backed by r. Every
// operation gets its own batch loaders, and connections cost their page
// size times their selection in the server's complexity budget.
func NewExecutableSchema(r *Resolver) graphql.ExecutableSchema {
	cfg := graph.Config{Resolvers: r}
	cfg.Complexity.Protocol.MetricsHistory = historyComplexity
	cfg.Complexity.Protocol.RiskHistory = historyComplexity
	cfg.Complexity.Query.AllocationHistory = historyComplexity
	cfg.Complexity.Query.Transactions = func(child int, _ *obsqra.TransactionFilter, first *int, after *string) int {
		return historyComplexity(child, first, after, nil, nil)
	}
	cfg.Complexity.Query.Predictions = func(child int, _ *obsqra.PredictionFilter, first *int, after *string) int {
		return historyComplexity(child, first, after, nil, nil)
	}
	cfg.Complexity.Query.Users = func(child int, _ *obsqra.UserFilter, first *int, after *string) int {
		return historyComplexity(child, first, after, nil, nil)
	}
	// A backtest runs hundreds of forecasts (about a second of CPU for
	// five protocols): at most two fit in one operation's budget.
	cfg.Complexity.Query.Backtest = func(child int, _ []string, _ int, _ *int) int {
		return saturatingAdd(backtestComplexity, child)
	}
	return schemaWithLoaders{graph.NewExecutableSchema(cfg)}
}

// historyComplexity is the cost of a history connection: its selection
// once per row it may return, plus one for the field. gqlgen's default
// (the selection once) let a history nested in a history's rows ask for
// 100 × 100 × … rows within the budget. A first outside 1–100 is refused
// by the resolver; here it is clamped so the estimate stays sane.
func historyComplexity(childComplexity int, first *int, _ *string, _, _ *time.Time) int {
	n := defaultFirst
	if first != nil {
		n = min(max(*first, 1), maxFirst)
	}
	return saturatingAdd(saturatingMul(n, childComplexity), 1)
}

// backtestComplexity is the cost of one backtest in the complexity budget.
const backtestComplexity = 2000

// maxComplexity is the largest complexity: what gqlgen's walk saturates at
// too, so a nested estimate can never wrap around to a small number.
const maxComplexity = int(^uint(0) >> 1)

// saturatingMul returns a·b for a ≥ 1, or maxComplexity when that would
// overflow; a negative b (a broken estimate) counts as 0.
func saturatingMul(a, b int) int {
	if b <= 0 {
		return 0
	}
	if b > maxComplexity/a {
		return maxComplexity
	}
	return a * b
}

// saturatingAdd returns a+b for a, b ≥ 0, or maxComplexity when that would
// overflow.
func saturatingAdd(a, b int) int {
	if a > maxComplexity-b {
		return maxComplexity
	}
	return a + b
}

// Protocol returns the resolvers of the Protocol type.
func (r *Resolver) Protocol() graph.ProtocolResolver { return &protocolResolver{r} }

// MetricsSample returns the resolvers of the MetricsSample type.
func (r *Resolver) MetricsSample() graph.MetricsSampleResolver { return &metricsSampleResolver{r} }

// RiskScore returns the resolvers of the RiskScore type.
func (r *Resolver) RiskScore() graph.RiskScoreResolver { return &riskScoreResolver{r} }

// DecisionVerification returns the resolvers of the DecisionVerification type.
func (r *Resolver) DecisionVerification() graph.DecisionVerificationResolver {
	return &decisionVerificationResolver{r}
}

// SchedulerJob returns the resolvers of the SchedulerJob type.
func (r *Resolver) SchedulerJob() graph.SchedulerJobResolver { return &schedulerJobResolver{r} }

// JobRun returns the resolvers of the JobRun type.
func (r *Resolver) JobRun() graph.JobRunResolver { return &jobRunResolver{r} }

// Query returns the resolvers of the Query type.
func (r *Resolver) Query() graph.QueryResolver { return &queryResolver{r} }

// Mutation returns the resolvers of the Mutation type.
func (r *Resolver) Mutation() graph.MutationResolver { return &mutationResolver{r} }

type queryResolver struct{ *Resolver }

type mutationResolver struct{ *Resolver }

// Node resolves node(id:): the object when the caller may see it, else null.
func (r *queryResolver) Node(ctx context.Context, id string) (obsqra.Node, error) {
	if userID, windowDays, err := obsqra.ParseDashboardNodeID(id); err == nil {
		// Only the viewer's own dashboard: there is no way to compute
		// another user's.
		u, err := obsqra.Viewer(ctx)
		if err != nil || u == nil || u.ID != userID {
			return nil, err
		}
		return nodeOrNil(r.dashboard(ctx, windowDays))
	}
	typ, n, err := obsqra.ParseNodeID(id)
	if err != nil {
		return nil, err
	}
	switch typ {
	case obsqra.NodeUser:
		u, err := r.Accounts.User(ctx, n)
		if err != nil || u == nil {
			// A typed nil pointer would not be a nil interface.
			return nil, err
		}
		return u, nil
	case obsqra.NodeProtocol:
		return nodeOrNil(r.Market.ProtocolByID(ctx, n))
	case obsqra.NodeMetricsSample:
		return nodeOrNil(r.Market.MetricsSample(ctx, n))
	case obsqra.NodeRiskScore:
		return nodeOrNil(r.Market.RiskScore(ctx, n))
	case obsqra.NodePrediction:
		return nodeOrNil(r.Advisor.Prediction(ctx, n))
	case obsqra.NodeRebalanceSuggestion:
		return nodeOrNil(r.Advisor.Suggestion(ctx, n))
	case obsqra.NodeOptimizationRun:
		return nodeOrNil(r.Advisor.OptimizationRun(ctx, n))
	case obsqra.NodeAllocation:
		return nodeOrNil(r.Portfolio.Allocation(ctx, n))
	case obsqra.NodeTransaction:
		return nodeOrNil(r.Ledger.TransactionByID(ctx, n))
	case obsqra.NodeDecision:
		d, err := r.Decisions.Decision(ctx, n)
		if err == nil && d != nil {
			if visible, err := r.Decisions.Visible(ctx, d); err != nil || !visible {
				return nil, err
			}
		}
		return nodeOrNil(d, err)
	}
	return nil, nil
}

// nodeOrNil turns a lookup's result into node(id:)'s: null for a missing
// object, and never a typed nil pointer in the Node interface.
func nodeOrNil[T any, P interface {
	*T
	obsqra.Node
}](v P, err error) (obsqra.Node, error) {
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, nil
	}
	if err != nil || v == nil {
		return nil, err
	}
	return v, nil
}
