package starknet

// Traces of the requests to the nodes. The client records into the
// OpenTelemetry API only (Config.TracerProvider; the SDK is cmd/obsqra's
// choice), and only inside a recorded span, a request's or an operation's:
// the watcher's polls, outside any trace, would otherwise each start a
// trace of their own. A call that fails over makes one span per node it
// asks. A span names its node by host and port alone: a provider's URL
// carries its API key in its path or query. Nor does it carry a node's
// error message, which may quote the call's data: only the JSON-RPC code.

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the client's spans.
const tracerName = "github.com/obsqra/obsqra/starknet"

// requestSpan is the span of one request to one node; its zero value
// stands for an untraced request.
type requestSpan struct{ span trace.Span }

// startRequest starts the span of a request of method to ep when the
// client is traced and ctx is inside a recorded span; otherwise it
// returns ctx and the zero requestSpan.
func (c *Client) startRequest(ctx context.Context, ep *endpoint, method string) (context.Context, requestSpan) {
	if c.cfg.TracerProvider == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, requestSpan{}
	}
	attrs := []attribute.KeyValue{semconv.RPCSystemNameJSONRPC, semconv.RPCMethod(method)}
	if u, err := url.Parse(ep.url); err == nil {
		attrs = append(attrs, semconv.ServerAddress(u.Hostname()))
		if port, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	ctx, span := c.cfg.TracerProvider.Tracer(tracerName).Start(ctx, method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx, requestSpan{span}
}

// end ends the span of a request that returned err: a JSON-RPC error with
// its code, any other failure of the node as "_OTHER".
func (s requestSpan) end(err error) {
	if s.span == nil {
		return
	}
	if err != nil {
		errorType := "_OTHER"
		if rpcErr, ok := errors.AsType[*RPCError](err); ok {
			errorType = strconv.Itoa(rpcErr.Code)
			s.span.SetAttributes(semconv.RPCResponseStatusCode(errorType))
		}
		s.span.SetAttributes(semconv.ErrorTypeKey.String(errorType))
		s.span.SetStatus(codes.Error, "")
	}
	s.span.End()
}
