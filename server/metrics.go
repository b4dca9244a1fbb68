package server

import (
	"net/http"
	"slices"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra/server/wire"
	"github.com/obsqra/obsqra/server/ws"
)

// Metrics receives what the server measures (*telemetry.GraphQL is one).
// Its methods are called on the requests' goroutines: they must be quick,
// and GraphQLRequest and GraphQLError, which every request calls, should
// not allocate.
type Metrics interface {
	// GraphQLRequest: a GraphQL request over HTTP (each operation of a
	// batch is one) was answered. typ is its operation's type ("query",
	// "mutation", "subscription"; "" when it got no operation, such as a
	// malformed body), name its operation's name (any string a client
	// sent: the recorder keeps it only when it knows it), code the first
	// error's extensions.code or "OK", took the time from its arrival to
	// its answer; negative for a subscription streamed over HTTP, whose
	// stream lasts as long as the client reads.
	GraphQLRequest(typ, name, code string, took time.Duration)
	// GraphQLError: an error with code was in a response over HTTP.
	GraphQLError(code string)
	// RateLimited: an operation was refused by its cost budget, of the
	// policy named policy (RateLimits' policies' names).
	RateLimited(policy string)
	// SlowConsumer: a subscriber was cut for falling behind its send
	// buffer, on transport (ws.TransportWebSocket, ws.TransportSSE,
	// ws.TransportMultipart).
	SlowConsumer(transport string)
}

// codeOK is the outcome code of a request without errors.
const codeOK = "OK"

// allCodes are every extensions.code the server sends (README, "The API
// by example"), domain errors' and gqlgen's included.
var allCodes = []string{
	"UNAUTHENTICATED", "FORBIDDEN", "BAD_USER_INPUT", "NOT_FOUND", "CONFLICT", "RATE_LIMITED",
	codeUnavailable, wire.CodeInternal,
	errcode.ParseFailed, errcode.ValidationFailed, "COMPLEXITY_LIMIT_EXCEEDED",
	codePersistedQueryNotFound, codePersistedQueryNotSupported, codePersistedQueryHashMismatch, codePersistedQueryNotTrusted,
	codeCSRFPrevented, codeBadRequest, codeBatchTooLarge, codeSubscriptionStream, codePayloadTooLarge,
	codeMethodNotAllowed, codeUnsupportedMediaType,
}

// ErrorCodes returns every extensions.code the server sends: the fixed set
// that metrics label errors with.
func ErrorCodes() []string { return slices.Clone(allCodes) }

// statusCodes are the codes of the answers to /graphql that no layer of
// the server described to the metrics (a WebSocket upgrade refused before
// it happened), by HTTP status.
var statusCodes = map[int]string{
	http.StatusBadRequest:            codeBadRequest,
	http.StatusForbidden:             "FORBIDDEN",
	http.StatusMethodNotAllowed:      codeMethodNotAllowed,
	http.StatusRequestEntityTooLarge: codePayloadTooLarge,
	http.StatusUnsupportedMediaType:  codeUnsupportedMediaType,
	http.StatusTooManyRequests:       "RATE_LIMITED",
	http.StatusInternalServerError:   wire.CodeInternal,
	http.StatusServiceUnavailable:    codeUnavailable,
}

// codeOfStatus is the outcome code of an answer of status that no layer
// described.
func codeOfStatus(status int) string {
	if status >= 200 && status < 300 {
		return codeOK
	}
	if c, ok := statusCodes[status]; ok {
		return c
	}
	return "" // the recorder's OTHER
}

// graphQLRequest is what the metrics learn of a request to /graphql from
// the layers that answer it. It lives in the access log's recorder (no
// allocation of its own), where graphQLRequestOf finds it, and the access
// log records it once the request is answered. Only the request's own
// goroutine touches it.
type graphQLRequest struct {
	// metrics is the server's; nil records nothing.
	metrics Metrics
	// typ and name are the operation's, "" when it has none.
	typ, name string
	// code is the outcome: the first error's code, or "" for the code of
	// the answer's status.
	code string
	// stream: the results were streamed over the response.
	stream bool
	// recorded: the request was recorded operation by operation (a batch)
	// and is not to be recorded again.
	recorded bool
}

// graphQLRequestOf returns the graphQLRequest of the response w, or nil
// when it has none or nothing records it: w is the access log's recorder
// or wraps it.
func graphQLRequestOf(w http.ResponseWriter) *graphQLRequest {
	for w != nil {
		if rec, ok := w.(*recorder); ok {
			if rec.gql.metrics == nil {
				return nil
			}
			return &rec.gql
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// operation notes the operation of rc, if any.
func (g *graphQLRequest) operation(rc *graphql.OperationContext) {
	if g == nil {
		return
	}
	g.typ, g.name = operationOf(rc)
}

// operationOf returns the type and name of rc's operation, "" when there
// is none.
func operationOf(rc *graphql.OperationContext) (typ, name string) {
	if rc == nil || rc.Operation == nil {
		return "", ""
	}
	return string(rc.Operation.Operation), rc.Operation.Name
}

// cached notes that the request was answered from the read cache: a
// query named name that succeeded.
func (g *graphQLRequest) cached(name string) {
	if g == nil {
		return
	}
	g.typ, g.name = string(ast.Query), name
	g.code = codeOK
}

// fail notes an error of code that the server wrote itself, and counts
// it; the first code noted is the request's.
func (g *graphQLRequest) fail(code string) {
	if g == nil {
		return
	}
	if g.code == "" {
		g.code = code
	}
	g.metrics.GraphQLError(code)
}

// noteErrors notes the errors of a response, and counts each.
func (g *graphQLRequest) noteErrors(errs gqlerror.List) {
	if g == nil {
		return
	}
	for _, e := range errs {
		g.fail(codeOf(e))
	}
}

// outcome notes the answer o as the request's.
func (g *graphQLRequest) outcome(o outcome) {
	if g == nil {
		return
	}
	if code := g.count(o); g.code == "" {
		g.code = code
	}
}

// count counts the errors of the answer o and returns its code.
func (g *graphQLRequest) count(o outcome) string {
	switch {
	case o.transport != nil:
		g.metrics.GraphQLError(o.transport.code)
		return o.transport.code
	case o.resp != nil && len(o.resp.Errors) > 0:
		for _, e := range o.resp.Errors {
			g.metrics.GraphQLError(codeOf(e))
		}
		return codeOf(o.resp.Errors[0])
	}
	return codeOK
}

// replace makes code the request's, whatever was noted before: the body
// was too large, and what the handler made of its truncated part is
// replaced.
func (g *graphQLRequest) replace(code string) {
	if g == nil {
		return
	}
	g.code = code
	g.metrics.GraphQLError(code)
}

// codeOf is e's extensions.code, "" when it has none.
func codeOf(e *gqlerror.Error) string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// record records the request, answered with status after took; completed
// is false when a panic cut it short.
func (g *graphQLRequest) record(status int, took time.Duration, completed bool) {
	if g.metrics == nil || g.recorded || status == http.StatusSwitchingProtocols {
		return
	}
	code := g.code
	switch {
	case !completed:
		code = wire.CodeInternal
	case code == "":
		code = codeOfStatus(status)
	}
	if g.stream && g.typ == "subscription" {
		took = -1
	}
	g.metrics.GraphQLRequest(g.typ, g.name, code, took)
}

// recordOperation records one operation of a batch, rc (nil when it did
// not validate), answered with o after took, and marks the request
// recorded.
func (g *graphQLRequest) recordOperation(rc *graphql.OperationContext, o outcome, took time.Duration) {
	if g == nil {
		return
	}
	typ, name := operationOf(rc)
	g.metrics.GraphQLRequest(typ, name, g.count(o), took)
	g.recorded = true
}

// Stats returns what the server holds now: its WebSockets and streamed
// responses, their subscriptions, the shared streams.
func (s *Server) Stats() ws.Stats {
	st := s.ws.Stats()
	if es := s.eventStreams; es != nil {
		st.Connections.SSE += int(es.open[sseStream].Load())
		st.Connections.Multipart += int(es.open[multipartStream].Load())
	}
	return st
}
