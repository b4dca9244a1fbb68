package config

import (
	"strings"
	"testing"
)

// TestLoadTraces: the OTLP endpoint of traces, from the traces variable
// as it is or the base one with /v1/traces; OTEL_SDK_DISABLED; the
// sampler and its ratio.
func TestLoadTraces(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		env          map[string]string
		wantEndpoint string
		wantSampler  string
		wantRatio    float64
	}{
		{"off", nil, "", "parentbased_always_on", 1},
		{"base", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318/v1/traces", "parentbased_always_on", 1},
		{"base with a path", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example/otlp/"}, "https://otlp.example/otlp/v1/traces", "parentbased_always_on", 1},
		{"traces wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/custom"},
			"http://b:4318/custom", "parentbased_always_on", 1},
		{"disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, "", "parentbased_always_on", 1},
		{"ratio", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "ParentBased_TraceIDRatio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://c:4318/v1/traces", "parentbased_traceidratio", 0.1},
	} {
		cfg, err := Load(env(tt.env))
		if err != nil {
			t.Errorf("%s: Load() error = %v", tt.name, err)
			continue
		}
		if cfg.TracesEndpoint != tt.wantEndpoint || cfg.TracesSampler != tt.wantSampler || cfg.TracesSamplerRatio != tt.wantRatio {
			t.Errorf("%s: endpoint %q, sampler %q %g; want %q, %q %g", tt.name, cfg.TracesEndpoint, cfg.TracesSampler, cfg.TracesSamplerRatio,
				tt.wantEndpoint, tt.wantSampler, tt.wantRatio)
		}
	}
}

// TestLoadTracesRefuses: malformed trace and Sentry variables are refused
// naming the variable, never quoting a URL or a DSN.
func TestLoadTracesRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:hunter2@4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: is not an http:// or https:// URL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "grpc://hunter2"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: is not an http:// or https:// URL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, `OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" is not supported`},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" is not supported`},
		{map[string]string{"OTEL_TRACES_SAMPLER": "jaeger_remote"}, `OTEL_TRACES_SAMPLER: "jaeger_remote" is not one of always_on`},
		{map[string]string{"OTEL_TRACES_SAMPLER_ARG": "2"}, `OTEL_TRACES_SAMPLER_ARG: "2" is not a ratio from 0 to 1`},
		{map[string]string{"OTEL_SDK_DISABLED": "maybe"}, `OTEL_SDK_DISABLED: "maybe" is not one of true`},
		{map[string]string{"SENTRY_DSN": "https://o1.ingest.sentry.io/hunter2"}, "SENTRY_DSN: is not a Sentry DSN"},
		{map[string]string{"SENTRY_DSN": "https://hunter2@o1.ingest.sentry.io/"}, "SENTRY_DSN: is not a Sentry DSN"},
		{map[string]string{"SENTRY_DSN": "hunter2"}, "SENTRY_DSN: is not a Sentry DSN"},
	} {
		_, err := Load(env(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v) = %v, want an error containing %q", tt.env, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Load(%v) error %q quotes the value", tt.env, err)
		}
	}
}
