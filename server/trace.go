package server

// Traces: a span for every HTTP request, continuing the trace of an
// incoming W3C traceparent, and a child span for every GraphQL operation.
// The server records into the OpenTelemetry API (Config.TracerProvider);
// the SDK, the exporter and the sampler are cmd/obsqra's choice. Without a
// TracerProvider none of this is installed: the middleware is left out of
// the chain and the extension is not used, so an untraced request pays a
// nil check or two.
//
// What a span carries is chosen so that it holds no secret: a request's
// method, route, path (never its query, where a GET carries a document's
// variables) and status; an operation's type, name, complexity and cost,
// never its document (which may hold a password inline) nor its
// variables.

import (
	"context"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra/server/wire"
)

// tracerName is the instrumentation scope of the server's spans.
const tracerName = "github.com/obsqra/obsqra/server"

// Attributes of the server's spans beyond the semantic conventions.
const (
	requestIDKey     = attribute.Key("obsqra.request_id")
	complexityKey    = attribute.Key("obsqra.graphql.complexity")
	costRequestedKey = attribute.Key("obsqra.cost.requested")
	costActualKey    = attribute.Key("obsqra.cost.actual")
)

// traceContext reads and writes W3C traceparent and tracestate headers.
var traceContext = propagation.TraceContext{}

// traceRequests starts the span of every request, a child of the span an
// incoming traceparent names (else the root of a new trace), and ends it
// once the request is answered; accessLog records the status on it. Its
// span context is in the request's context from then on, so that every
// later layer logs and reports under its trace id.
func (s *Server) traceRequests(next http.Handler) http.Handler {
	if s.tracer == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		method, route := methodOf(r.Method), routeOf(r.URL.Path)
		name := method
		attrs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(method), semconv.URLPath(r.URL.Path)}
		if route != "" {
			name += " " + route
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		ctx, span := s.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// methodOf returns an HTTP method as the semantic conventions name it:
// itself when it is a standard one, else "_OTHER" (a client may send any
// token).
func methodOf(method string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodOptions, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

// routeOf returns the route of the server's that path belongs to, "" for
// a path it does not serve: a span's name holds no path a client made up.
func routeOf(path string) string {
	switch path {
	case "/graphql", "/health", "/ready", "/favicon.ico", "/", "/playground", "/graphql/schema.graphql":
		return path
	}
	if strings.HasPrefix(path, "/playground/assets/") {
		return "/playground/assets/{file}"
	}
	if strings.HasPrefix(path, "/api/v1/") {
		// The REST API's paths carry hashes: one route name for all.
		return "/api/v1/"
	}
	return ""
}

// traceIDOf returns the trace id of the span in ctx, "" when there is
// none.
func traceIDOf(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// annotateRequest records the request id on the request's span.
func (s *Server) annotateRequest(ctx context.Context, requestID string) {
	if s.tracer == nil {
		return
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(requestIDKey.String(requestID))
	}
}

// recordStatus records the status a request was answered with on its
// span: a 5xx is an error of the server's.
func (s *Server) recordStatus(ctx context.Context, status int) {
	if s.tracer == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	if status >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, "")
	}
}

// failSpan marks the span of ctx (an operation's) as failed: an internal
// error or a panic, which the client sees only as INTERNAL_SERVER_ERROR.
func failSpan(ctx context.Context) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetStatus(codes.Error, wire.InternalMessage)
	}
}

// operationSpans starts a span for every GraphQL operation, a child of
// its request's: its type and name (graphql.operation.type and .name),
// its complexity, and its cost when cost budgets price it (requested
// before it ran, actual once answered). A query's or a mutation's span
// ends with its response (the last one of a deferred response), a
// subscription's when its stream ends.
type operationSpans struct {
	tracer trace.Tracer
}

var (
	_ graphql.HandlerExtension     = operationSpans{}
	_ graphql.OperationInterceptor = operationSpans{}
)

// ExtensionName names the extension in gqlgen's stats.
func (operationSpans) ExtensionName() string { return "OperationSpans" }

// Validate accepts every schema.
func (operationSpans) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation starts the operation's span and ends it with the
// operation.
func (o operationSpans) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	rc := graphql.GetOperationContext(ctx)
	if rc == nil || rc.Operation == nil {
		return next(ctx)
	}
	kind := string(rc.Operation.Operation)
	name := kind
	attrs := []attribute.KeyValue{semconv.GraphQLOperationTypeKey.String(kind)}
	if rc.Operation.Name != "" {
		name += " " + rc.Operation.Name
		attrs = append(attrs, semconv.GraphQLOperationName(rc.Operation.Name))
	}
	if stats := extension.GetComplexityStats(ctx); stats != nil {
		attrs = append(attrs, complexityKey.Int(stats.Complexity))
	}
	if oc := costOf(rc); oc != nil {
		attrs = append(attrs, costRequestedKey.Int64(oc.requested))
	}
	ctx, span := o.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
	responses := next(ctx)
	subscription := rc.Operation.Operation == ast.Subscription
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil {
			span.End()
			return nil
		}
		if report, ok := resp.Extensions["cost"].(costReport); ok {
			span.SetAttributes(costActualKey.Int64(report.Actual))
		}
		if !subscription && (resp.HasNext == nil || !*resp.HasNext) {
			span.End()
		}
		return resp
	}
}

// operationNameOf returns the name of the GraphQL operation of ctx, "" for
// an anonymous one or outside an operation.
func operationNameOf(ctx context.Context) string {
	if !graphql.HasOperationContext(ctx) {
		return ""
	}
	rc := graphql.GetOperationContext(ctx)
	if rc.Operation != nil {
		return rc.Operation.Name
	}
	return rc.OperationName
}
