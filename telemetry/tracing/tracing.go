// Package tracing is the server's traces and error reports: the
// OpenTelemetry SDK that exports the spans of server, store, starknet and
// live over OTLP/HTTP (NewProvider), the live hub's tracer (Dispatches),
// the log handler that puts a request's trace id in its log lines
// (LogHandler), and the Sentry client that receives internal errors and
// panics (Reporter). The packages it serves record into the OpenTelemetry
// API, or, like live, into an interface of their own, and none imports
// this package: cmd/obsqra wires it, and only when the configuration asks
// for it (an OTLP endpoint, SENTRY_DSN), so that with neither set nothing
// of it runs.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// ServiceName is the service.name of the server's spans unless
// OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES name another.
const ServiceName = "obsqra"

// Samplers, as OTEL_TRACES_SAMPLER names them.
const (
	SamplerAlwaysOn                = "always_on"
	SamplerAlwaysOff               = "always_off"
	SamplerTraceIDRatio            = "traceidratio"
	SamplerParentBasedAlwaysOn     = "parentbased_always_on"
	SamplerParentBasedAlwaysOff    = "parentbased_always_off"
	SamplerParentBasedTraceIDRatio = "parentbased_traceidratio"
)

// Options are what NewProvider needs to know.
type Options struct {
	// Endpoint is the URL the spans are POSTed to over OTLP/HTTP
	// (protobuf), such as http://collector:4318/v1/traces. Required. The
	// exporter's other settings (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
	// _COMPRESSION, _CERTIFICATE…) it reads from the environment itself.
	Endpoint string
	// Sampler is one of the Sampler constants; "" is
	// parentbased_always_on, the OpenTelemetry default.
	Sampler string
	// SamplerRatio is the share of traces the ratio samplers keep, 0-1.
	SamplerRatio float64
	// Version is the build's version (service.version); Environment is
	// development or production (deployment.environment.name).
	Version, Environment string
}

// NewProvider returns a tracer provider that batches the spans its
// sampler keeps and exports them to opts.Endpoint over OTLP/HTTP, with the
// resource of this process: service.name (ServiceName, or what
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say), service.version,
// deployment.environment.name, the host and the SDK. The batch processor
// reads OTEL_BSP_* itself. Shutdown flushes what waits and stops it.
// Errors: an unknown sampler or a bad ratio; an endpoint the exporter
// refuses; a malformed OTEL_RESOURCE_ATTRIBUTES.
func NewProvider(ctx context.Context, opts Options) (*sdktrace.TracerProvider, error) {
	sampler, err := SamplerOf(opts.Sampler, opts.SamplerRatio)
	if err != nil {
		return nil, err
	}
	exporter, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(opts.Endpoint))
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(
			semconv.ServiceName(ServiceName),
			semconv.ServiceVersion(opts.Version),
			semconv.DeploymentEnvironmentNameKey.String(opts.Environment),
		),
		// Last, so that the environment's names win.
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	), nil
}

// SamplerOf returns the sampler name stands for ("" is
// parentbased_always_on), ratio being the share of the ratio samplers.
// Errors: an unknown name; a ratio outside 0-1.
func SamplerOf(name string, ratio float64) (sdktrace.Sampler, error) {
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("sampler ratio %g is not between 0 and 1", ratio)
	}
	switch name {
	case SamplerAlwaysOn:
		return sdktrace.AlwaysSample(), nil
	case SamplerAlwaysOff:
		return sdktrace.NeverSample(), nil
	case SamplerTraceIDRatio:
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "", SamplerParentBasedAlwaysOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case SamplerParentBasedAlwaysOff:
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case SamplerParentBasedTraceIDRatio:
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("unknown sampler %q", name)
}
