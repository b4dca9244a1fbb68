package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ratelimit"
)

// Limiter charges operations' costs to budgets (*ratelimit.Limiter).
type Limiter interface {
	Charge(ctx context.Context, key string, p *ratelimit.Policy, cost int64) (ratelimit.Decision, error)
	Refund(key string, n int64)
}

// RateLimits are the cost budgets of the API: every operation's cost is
// charged, before it runs, to the budget of its signed-in user under the
// policy of the user's role, or to that of its client address when
// anonymous.
type RateLimits struct {
	Limiter Limiter
	// The policies of the anonymous (per client address), users and
	// admins (per user).
	Anonymous, User, Admin *ratelimit.Policy
	// MutationCost is added to a mutation's complexity, SubscriptionCost
	// to a subscription's (charged once, when it starts).
	MutationCost, SubscriptionCost int64
}

// costStats is the key of an operation's opCost in its context's Stats.
const costStats = "obsqra.cost"

// opCost is what an operation costs and what was charged for it.
type opCost struct {
	// requested is the cost charged before it ran: its complexity, plus
	// the price of its kind.
	requested int64
	// price is the part of requested that is not its fields' (the
	// mutation's or subscription's price, a backtest's weight): always
	// part of the actual cost.
	price int64
	// charged is set once the cost was charged to key's budget, with
	// decision its outcome.
	charged  bool
	key      string
	decision ratelimit.Decision
	// neutral is set for a response that must not depend on its client
	// (an anonymous GET by hash, which shared caches may keep): it reports
	// no cost.
	neutral bool
}

// costOf returns the opCost of rc, or nil.
func costOf(rc *graphql.OperationContext) *opCost {
	if rc == nil {
		return nil
	}
	oc, _ := rc.Stats.GetExtension(costStats).(*opCost)
	return oc
}

// backtestWeight is the fixed weight of Query.backtest in the complexity
// (resolvers.backtestComplexity): its cost is CPU, not fields.
const backtestWeight = 2000

// costs prices every validated operation (after the complexity limit has
// computed its complexity) and reports the cost in each response's
// extensions.cost: requested (charged before it ran), actual (what it
// returned: the fields of its data, as the complexity counts them, plus
// its price), and remaining (the budget's points left, an estimate across
// instances); the difference between requested and actual is refunded.
type costs struct {
	limits *RateLimits
}

var (
	_ graphql.HandlerExtension        = costs{}
	_ graphql.OperationContextMutator = costs{}
	_ graphql.ResponseInterceptor     = costs{}
)

func (costs) ExtensionName() string { return "Costs" }

func (costs) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext prices rc.
func (c costs) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	var complexity int64
	if stats, ok := rc.Stats.GetExtension("ComplexityLimit").(*extension.ComplexityStats); ok {
		complexity = int64(stats.Complexity)
	}
	oc := &opCost{}
	switch rc.Operation.Operation {
	case ast.Mutation:
		oc.price = c.limits.MutationCost
		complexity += oc.price
	case ast.Subscription:
		oc.price = c.limits.SubscriptionCost
		complexity += oc.price
	default:
		// The complexity counts a backtest's weight already.
		oc.price = backtestWeight * countRootFields(rc.Doc, rc.Operation.SelectionSet, "backtest", 0)
	}
	oc.requested = max(1, complexity)
	rc.Stats.SetExtension(costStats, oc)
	return nil
}

// countRootFields counts the fields named name in the root selection set
// sel, through fragments (whose nesting depth bounds the document limits).
func countRootFields(doc *ast.QueryDocument, sel ast.SelectionSet, name string, depth int) int64 {
	var n int64
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			if s.Name == name {
				n++
			}
		case *ast.InlineFragment:
			n += countRootFields(doc, s.SelectionSet, name, depth+1)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil && depth < maxFragmentDepth {
				n += countRootFields(doc, f.SelectionSet, name, depth+1)
			}
		}
	}
	return n
}

// maxFragmentDepth stops countRootFields in fragments that spread each
// other (validation refuses cycles; this is a second line).
const maxFragmentDepth = 32

// InterceptResponse reports the cost of a charged operation in its first
// response (a subscription's first event; later events cost nothing more)
// and refunds what it did not use.
func (c costs) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	rc := graphql.GetOperationContext(ctx)
	oc := costOf(rc)
	if resp == nil || oc == nil || !oc.charged || oc.neutral {
		return resp
	}
	actual := oc.requested
	deferred := resp.HasNext != nil && *resp.HasNext
	if rc.Operation.Operation != ast.Subscription && !deferred {
		actual = actualCost(oc, resp.Data)
	}
	if resp.Extensions == nil {
		resp.Extensions = make(map[string]any, 1)
	}
	resp.Extensions["cost"] = c.limits.settle(oc, actual)
	return resp
}

// actualCost is what an operation that returned data cost: the fields of
// its data, plus its price, at most what was charged.
func actualCost(oc *opCost, data []byte) int64 {
	return min(oc.requested, max(1, countFields(data)+oc.price))
}

// settle refunds a charged operation what it did not use of its
// requested cost, given its actual cost, and returns its report
// (extensions.cost), once: oc is then neutral.
func (l *RateLimits) settle(oc *opCost, actual int64) costReport {
	if actual < oc.requested {
		l.Limiter.Refund(oc.key, oc.requested-actual)
	}
	oc.neutral = true // reported once
	return costReport{
		Requested: oc.requested,
		Actual:    actual,
		Remaining: oc.decision.Remaining + (oc.requested - actual),
		Policy:    oc.decision.Policy.Name,
	}
}

// costReport is extensions.cost.
type costReport struct {
	Requested int64  `json:"requested"`
	Actual    int64  `json:"actual"`
	Remaining int64  `json:"remaining"`
	Policy    string `json:"policy"`
}

// countFields counts the fields of a JSON response's data as complexity
// counts them: every member of every object, once per object. It scans
// without decoding: a colon outside a string ends a member's name.
func countFields(data []byte) int64 {
	var n int64
	inString, escaped := false, false
	for _, b := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == ':':
			n++
		}
	}
	return n
}

// charge charges the operations rcs (one, or a batch's valid ones, whose
// costs are charged together) to the budget of the request's viewer, and
// records the outcome in each. It returns nil when there are no rate
// limits, or the refusal (RATE_LIMITED with retryAfter), or the error of
// a budget that could not be read.
func (s *Server) charge(ctx context.Context, rcs ...*graphql.OperationContext) (*ratelimit.Decision, error) {
	if s.cfg.RateLimits == nil {
		return nil, nil
	}
	var total int64
	for _, rc := range rcs {
		if oc := costOf(rc); oc != nil {
			total += oc.requested
		}
	}
	key, d, decided, err := s.spend(ctx, total)
	if !decided {
		return d, err
	}
	neutral := false
	if mark, ok := ctx.Value(cacheableKey{}).(*cacheable); ok && mark.byHash.Load() {
		neutral = true
	}
	for _, rc := range rcs {
		if oc := costOf(rc); oc != nil {
			oc.charged, oc.key, oc.decision, oc.neutral = d.Allowed, key, *d, neutral
		}
	}
	return d, err
}

// ChargeRequest charges cost to the budget of the caller in ctx, as an
// operation of the GraphQL API is charged, and sets the rate-limit headers
// on h: the REST API's routes (rest.Budget) share the budgets. It returns
// the refusal (RATE_LIMITED with retryAfter) or the error of a budget that
// could not be read; nil without rate limits.
func (s *Server) ChargeRequest(ctx context.Context, cost int64, h http.Header) error {
	if s.cfg.RateLimits == nil {
		return nil
	}
	_, d, decided, err := s.spend(ctx, cost)
	if decided {
		setRateLimitHeaders(h, d, false)
	}
	return err
}

// spend charges total to the budget of ctx's caller. decided reports that
// the budget was read and d is its decision: allowed, or refused with the
// RATE_LIMITED error. Otherwise err says why not (a cost above any budget,
// with d; a budget that could not be read, without).
func (s *Server) spend(ctx context.Context, total int64) (key string, d *ratelimit.Decision, decided bool, err error) {
	limits := s.cfg.RateLimits
	key, policy := s.budgetOf(ctx)
	dec, err := limits.Limiter.Charge(ctx, key, policy, total)
	if s.cfg.Metrics != nil && (errors.Is(err, ratelimit.ErrTooCostly) || err == nil && !dec.Allowed) {
		s.cfg.Metrics.RateLimited(policy.Name)
	}
	switch {
	case errors.Is(err, ratelimit.ErrTooCostly):
		return key, &dec, false, &obsqra.Error{Code: obsqra.ERATELIMIT, Message: fmt.Sprintf(
			"this request costs %d points, more than the whole budget of %d points of the %q policy: ask for less (smaller pages, fewer fields, or fewer operations in the batch)",
			total, policy.Capacity, policy.Name)}
	case err != nil:
		return key, nil, false, &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: "the rate limit budget could not be read; try again", Err: err}
	}
	if !dec.Allowed {
		secs := int(math.Ceil(dec.RetryAfter.Seconds()))
		return key, &dec, true, &obsqra.Error{Code: obsqra.ERATELIMIT, RetryAfterSeconds: secs, Message: fmt.Sprintf(
			"this request costs %d points and the %q budget has %d left: retry in %d s",
			total, policy.Name, dec.Remaining, secs)}
	}
	return key, &dec, true, nil
}

// budgetOf returns the budget key and policy of the request in ctx: its
// user's under the user's role, or its client address's when anonymous
// (or when its token was refused: the operation then fails, at the
// address's expense).
func (s *Server) budgetOf(ctx context.Context) (string, *ratelimit.Policy) {
	limits := s.cfg.RateLimits
	if u, err := obsqra.Viewer(ctx); err == nil && u != nil {
		p := limits.User
		if u.Role == obsqra.RoleAdmin {
			p = limits.Admin
		}
		return "user:" + strconv.FormatInt(u.ID, 10), p
	}
	return "addr:" + obsqra.ClientFromContext(ctx).LimitKey(), limits.Anonymous
}

// setRateLimitHeaders sets the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers-10 for d (nothing for a response
// that must not depend on its client), and Retry-After when refused.
func setRateLimitHeaders(h http.Header, d *ratelimit.Decision, neutral bool) {
	if d == nil || neutral {
		return
	}
	name := strconv.Quote(d.Policy.Name)
	h.Set("RateLimit-Policy", name+";q="+strconv.FormatInt(d.Policy.Capacity, 10)+
		";w="+strconv.FormatInt(int64(d.Policy.Window/time.Second), 10))
	h.Set("RateLimit", name+";r="+strconv.FormatInt(max(0, d.Remaining), 10)+
		";t="+strconv.FormatInt(int64(d.Reset/time.Second), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.RetryAfter.Seconds())), 10))
	}
}
