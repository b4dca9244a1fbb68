package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/telemetry/tracing"
)

// flushTimeout bounds how long a stopping server waits for its last spans
// and error reports to be sent.
const flushTimeout = 5 * time.Second

// traces are the traces and error reports of a serving process, each on
// only when the configuration asks for it: with neither, serve wires
// nothing of them (no provider, no reporter, no log handler), and the
// packages that would record skip it at a nil check.
type traces struct {
	// provider exports spans over OTLP/HTTP, or is nil (no endpoint).
	provider *sdktrace.TracerProvider
	// reports sends errors to Sentry, or is nil (no SENTRY_DSN).
	reports *tracing.Reporter
}

// startTraces starts what cfg asks for. The OpenTelemetry SDK's own errors
// (a collector that does not answer) go to logger.
// Errors: a sampler, an endpoint or a DSN the SDKs refuse.
func startTraces(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*traces, error) {
	t := &traces{}
	if cfg.TracesEndpoint != "" {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("opentelemetry", "error", err.Error())
		}))
		tp, err := tracing.NewProvider(ctx, tracing.Options{
			Endpoint:     cfg.TracesEndpoint,
			Sampler:      cfg.TracesSampler,
			SamplerRatio: cfg.TracesSamplerRatio,
			Version:      version,
			Environment:  string(cfg.Environment),
		})
		if err != nil {
			return nil, fmt.Errorf("traces: %w", err)
		}
		t.provider = tp
	}
	if cfg.SentryDSN != "" {
		r, err := tracing.NewReporter(tracing.ReporterOptions{DSN: cfg.SentryDSN, Release: version, Environment: string(cfg.Environment)})
		if err != nil {
			t.stop(ctx, logger)
			return nil, fmt.Errorf("SENTRY_DSN: %w", err)
		}
		t.reports = r
	}
	return t, nil
}

// tracerProvider is what the store, the Starknet client and the server
// record spans into: nil when tracing is off (never a nil pointer in an
// interface, which would not read as off).
func (t *traces) tracerProvider() trace.TracerProvider {
	if t.provider == nil {
		return nil
	}
	return t.provider
}

// hubTracer is the live hub's tracer, nil when tracing is off.
func (t *traces) hubTracer() live.Tracer {
	if t.provider == nil {
		return nil
	}
	return tracing.NewDispatches(t.provider)
}

// reporter is the server's error reporter, nil without SENTRY_DSN.
func (t *traces) reporter() server.Reporter {
	if t.reports == nil {
		return nil
	}
	return t.reports
}

// stop sends the spans and reports still waiting, for up to flushTimeout,
// and stops the exporter.
func (t *traces) stop(ctx context.Context, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if t.provider != nil {
		if err := t.provider.Shutdown(ctx); err != nil {
			logger.Warn("traces: the last spans were not all sent", "error", err.Error())
		}
	}
	if t.reports != nil && !t.reports.Flush(flushTimeout) {
		logger.Warn("sentry: the last error reports were not all sent")
	}
}

// logHandler is h, adding the trace id to the lines of traced requests
// when tracing is on.
func logHandler(cfg *config.Config, h slog.Handler) slog.Handler {
	if cfg.TracesEndpoint == "" {
		return h
	}
	return tracing.LogHandler(h)
}
