package server

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// DefaultRequestTimeout bounds a query or mutation: what an API call may
// take before its client is better served by an error it can retry.
const DefaultRequestTimeout = 10 * time.Second

// operationDeadline gives each query and mutation, whatever its transport
// (POST, GET, a WebSocket operation), a deadline of timeout from the start
// of its execution. Every store call under it inherits the deadline, so a
// database that stops answering costs a request at most that long (it then
// fails with SERVICE_UNAVAILABLE) instead of holding it until the database
// returns. A subscription gets none: it lasts as long as its client wants,
// and its events carry their payloads as of their commit, so delivering
// one waits for no database.
type operationDeadline struct {
	timeout time.Duration
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = (*operationDeadline)(nil)

func (*operationDeadline) ExtensionName() string                   { return "OperationDeadline" }
func (*operationDeadline) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation runs a query or mutation under the deadline; the
// deadline's timer is released once the last response has been produced
// (a query with @defer produces several).
func (d *operationDeadline) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx).Operation
	if op == nil || op.Operation == ast.Subscription {
		return next(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil || resp.HasNext == nil || !*resp.HasNext {
			cancel()
		}
		return resp
	}
}
