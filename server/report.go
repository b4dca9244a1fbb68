package server

import (
	"context"
)

// Reporter is told of what the server hides from its clients: the errors
// it answers as INTERNAL_SERVER_ERROR and the panics it recovers, in a
// resolver or anywhere below the HTTP middleware (*tracing.Reporter sends
// them to Sentry). ctx is the request's: it carries the request's client
// (obsqra.ClientFromContext: the request and trace ids) and its span.
// operation is the GraphQL operation's name, "" for an anonymous one or
// outside an operation. The server hands it nothing else of the request:
// no headers, no document, no variables. Its methods are called on the
// request's goroutine and must not block for long; ReportPanic is called
// while the panic unwinds, so the stack it sees is the panic's.
type Reporter interface {
	ReportError(ctx context.Context, err error, operation string)
	ReportPanic(ctx context.Context, v any, operation string)
}

// reportError tells the Reporter, if any, of an internal error.
func (s *Server) reportError(ctx context.Context, err error) {
	if s.cfg.Reporter != nil {
		s.cfg.Reporter.ReportError(ctx, err, operationNameOf(ctx))
	}
}

// reportPanic tells the Reporter, if any, of a recovered panic.
func (s *Server) reportPanic(ctx context.Context, v any) {
	if s.cfg.Reporter != nil {
		s.cfg.Reporter.ReportPanic(ctx, v, operationNameOf(ctx))
	}
}
