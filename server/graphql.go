package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// queryCacheSize is how many parsed and validated documents are kept; the
// frontend sends a few dozen distinct ones.
const queryCacheSize = 1000

// The bound on an operation's expanded fields (see limits) is this many
// times the complexity budget, and at least minMaxExpandedFields: far above
// anything the budget lets through, and still a walk of microseconds.
const (
	maxExpandedFieldsFactor = 10
	minMaxExpandedFields    = 10000
)

// graphQL returns the gqlgen handler of /graphql: the WebSocket transport
// and the HTTP one (POST, batches included, and GET; see httpTransport), the error presenter, the resolver panic handler, the
// document limits (before validation), the operation limits (after), @defer
// kept only where increments can be delivered (defer.go) and the deadline
// of queries and mutations (RequestTimeout).
func (s *Server) graphQL(schema graphql.ExecutableSchema) http.Handler {
	h := handler.New(schema)
	sockets := s.webSocket()
	h.AddTransport(sockets)
	s.eventStreams = &eventStreams{
		subscriptions: sockets,
		heartbeat:     s.cfg.SSEHeartbeat,
		writeTimeout:  s.cfg.WSWriteTimeout,
		shuttingDown:  s.shuttingDown,
		log:           s.log,
		presentError:  s.presentError,
		recover:       s.recoverResolver,
	}
	h.AddTransport(httpTransport{batchMax: s.cfg.BatchMax, requestTimeout: s.cfg.RequestTimeout, charge: s.charge, presentError: s.presentError,
		streams: s.eventStreams, cache: s.cfg.ReadCache, limits: s.cfg.RateLimits})
	cache := lru.New[*ast.QueryDocument](queryCacheSize)
	h.SetQueryCache(cache)
	// gqlgen's parse is bounded like documentLimits' own, which runs first.
	h.SetParserTokenLimit(s.cfg.MaxTokens)
	h.SetErrorPresenter(s.presentError)
	h.SetRecoverFunc(s.recoverResolver)
	h.Use(operationLog{})
	if s.tracer != nil {
		// Before the deadline: the span covers the whole operation.
		h.Use(operationSpans{tracer: s.tracer})
	}
	// First: the other extensions see the document a hash stands for.
	h.Use(&persistedQueries{
		cache:       newDocumentCache(s.cfg.PersistedQueryCacheBytes),
		trusted:     s.cfg.TrustedDocuments,
		trustedOnly: s.cfg.TrustedDocumentsOnly,
	})
	if s.cfg.Introspection {
		h.Use(extension.Introspection{})
	}
	h.Use(&documentLimits{
		schema:    schema.Schema(),
		maxTokens: s.cfg.MaxTokens,
		maxCost:   s.cfg.MaxValidationCost,
		validated: cache,
	})
	h.Use(&limits{
		maxDepth:      s.cfg.MaxDepth,
		maxAliases:    s.cfg.MaxAliases,
		maxFields:     max(maxExpandedFieldsFactor*s.cfg.ComplexityLimit, minMaxExpandedFields),
		introspection: s.cfg.Introspection,
	})
	h.Use(extension.FixedComplexityLimit(s.cfg.ComplexityLimit))
	if s.cfg.RateLimits != nil {
		// After the complexity limit, whose figure it prices.
		h.Use(costs{limits: s.cfg.RateLimits})
	}
	// Last of the operation's checks: a deferred operation costs what it
	// would without @defer, and is checked as it was sent.
	h.Use(incrementalDelivery{})
	h.Use(&operationDeadline{timeout: s.cfg.RequestTimeout})
	return h
}

// presentError is the one place where errors become what the client sees.
//
//   - An *obsqra.Error anywhere in the chain, including one that gqlgen
//     wrapped in a *gqlerror.Error (a resolver's error, or a scalar's or
//     enum's UnmarshalGQL error during argument coercion), shows its
//     Message with its code's public name (obsqra.PublicCode) and keeps its path. An
//     unavailable database (SERVICE_UNAVAILABLE) is logged at warn with
//     its cause; the response stays HTTP 200 like every other execution
//     error, so that Apollo Client keeps the fields that did resolve, and
//     extensions.retryAfter says when to try again.
//   - A *gqlerror.Error that wraps nothing is gqlgen's or gqlparser's own
//     (parse, validation, limits, "must not be null") and is kept as is.
//   - Anything else is logged and reported (Config.Reporter) with the
//     request id and shown as "internal error" with the request id, and
//     the trace id of a traced request, so a report can be matched to the
//     log and the trace; but an operation cancelled under its resolvers (the client
//     went away, the socket closed, the stream ended, the server shut
//     down) is not an error, and says so once, at debug level, however
//     many fields and events it fails (see cancelled).
func (s *Server) presentError(ctx context.Context, err error) *gqlerror.Error {
	if err == nil {
		return nil
	}
	gqlErr, _ := errors.AsType[*gqlerror.Error](err)
	var (
		path      ast.Path
		locations []gqlerror.Location
	)
	if gqlErr != nil {
		path, locations = gqlErr.Path, gqlErr.Locations
	}
	if path == nil {
		path = graphql.GetPath(ctx)
	}

	if e, ok := errors.AsType[*obsqra.Error](err); ok {
		if code := obsqra.PublicCode(e.Code); code != "" {
			out := &gqlerror.Error{
				Message:    e.Message,
				Path:       path,
				Locations:  locations,
				Extensions: map[string]any{"code": code},
			}
			if e.Reason != "" {
				out.Extensions["reason"] = e.Reason
			}
			if (e.Code == obsqra.ERATELIMIT || e.Code == obsqra.EUNAVAILABLE) && e.RetryAfterSeconds > 0 {
				out.Extensions["retryAfter"] = e.RetryAfterSeconds
			}
			if e.Code == obsqra.EUNAVAILABLE && e.Err != nil {
				// The client learns only that it may retry; the operator
				// needs the cause (a deadline, a refused connection).
				s.log.WarnContext(ctx, "graphql: database unavailable", "request_id", obsqra.ClientFromContext(ctx).RequestID,
					"path", path.String(), "error", e.Err.Error())
			}
			return out
		}
	}
	if gqlErr != nil && gqlErr.Err == nil {
		return gqlErr
	}

	client := obsqra.ClientFromContext(ctx)
	id := client.RequestID
	_, panicked := errors.AsType[*panicError](err)
	switch {
	case panicked:
		// Logged and reported with its stack by recoverResolver already.
		failSpan(ctx)
	case wire.Cancelled(ctx, err):
		if l, _ := ctx.Value(operationLogKey{}).(*operationLogState); l == nil || !l.cancelled.Swap(true) {
			s.log.DebugContext(ctx, "graphql operation cancelled", "request_id", id, "path", path.String(), "error", err.Error())
		}
	default:
		s.log.ErrorContext(ctx, "graphql internal error", "request_id", id, "path", path.String(), "error", err.Error())
		s.reportError(ctx, err)
		failSpan(ctx)
	}
	return &gqlerror.Error{
		Message:    wire.InternalMessage,
		Path:       path,
		Locations:  locations,
		Extensions: wire.Internal(id, client.TraceID).Extensions,
	}
}

// operationLog gives every operation (a query, a mutation, a whole
// subscription with all its events) the state presentError needs to log
// its cancellation once: gqlgen presents each failed field on its own, and
// a subscription cancelled under a burst of events fails thousands.
type operationLog struct{}

// ExtensionName names the extension in gqlgen's stats.
func (operationLog) ExtensionName() string { return "OperationLog" }

// Validate accepts every schema.
func (operationLog) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation gives the operation its log state.
func (operationLog) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(context.WithValue(ctx, operationLogKey{}, &operationLogState{}))
}

type operationLogKey struct{}

// operationLogState is what one operation has logged.
type operationLogState struct {
	cancelled atomic.Bool // its cancellation
}

// panicError stands for a recovered panic on its way to presentError.
type panicError struct{}

// Error says what happened, for the log; the client never sees it.
func (*panicError) Error() string { return "panic in graphql resolver" }

// recoverResolver logs and reports a panic inside gqlgen (a resolver, a
// marshaller) with its stack and the request id; presentError then shows
// the client an internal error.
func (s *Server) recoverResolver(ctx context.Context, v any) error {
	s.log.ErrorContext(ctx, "panic in graphql resolver",
		"request_id", obsqra.ClientFromContext(ctx).RequestID,
		"path", graphql.GetPath(ctx).String(),
		"panic", fmt.Sprint(v),
		"stack", string(debug.Stack()))
	s.reportPanic(ctx, v)
	return &panicError{}
}
