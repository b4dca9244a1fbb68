// The parsers of the variables of traces and error reports: the
// OpenTelemetry variables the server reads itself (the SDK and its
// exporter read the others from the environment) and SENTRY_DSN.

package config

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Samplers that OTEL_TRACES_SAMPLER may name: the OpenTelemetry SDK's
// built-in ones.
var tracesSamplers = []string{
	"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
}

// Defaults of the trace variables: the OpenTelemetry specification's.
const (
	defaultTracesSampler = "parentbased_always_on"
	defaultOTLPProtocol  = "http/protobuf"
)

// tracesEndpoint reads where spans go over OTLP/HTTP: the traces endpoint
// (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) as it is, else the base endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT) with /v1/traces appended to its path, as
// the specification has it; "" when neither is set or OTEL_SDK_DISABLED
// is true. Both protocol variables must say http/protobuf, the only
// protocol the server speaks. An endpoint never appears in a message: a
// collector's URL may carry credentials.
func (l *loader) tracesEndpoint() string {
	disabled := l.boolean("OTEL_SDK_DISABLED", false)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if v, ok := l.value(name); ok && v != defaultOTLPProtocol {
			l.problemf(name, "%q is not supported: the server exports over OTLP/HTTP with protobuf, %s", v, defaultOTLPProtocol)
		}
	}
	endpoint := l.otlpURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if base := l.otlpURL("OTEL_EXPORTER_OTLP_ENDPOINT"); endpoint == "" && base != "" {
		u, _ := url.Parse(base) // otlpURL parsed it
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
		endpoint = u.String()
	}
	if disabled {
		return ""
	}
	return endpoint
}

// otlpURL reads an http(s) URL, "" when unset.
func (l *loader) otlpURL(name string) string {
	v, ok := l.value(name)
	if !ok {
		return ""
	}
	if !isHTTPURL(v) {
		l.problemf(name, "is not an http:// or https:// URL")
		return ""
	}
	return v
}

// tracesSampler reads OTEL_TRACES_SAMPLER and its ratio,
// OTEL_TRACES_SAMPLER_ARG (0-1, default 1; only the ratio samplers read
// it).
func (l *loader) tracesSampler() (string, float64) {
	sampler := defaultTracesSampler
	if v, ok := l.value("OTEL_TRACES_SAMPLER"); ok {
		sampler = strings.ToLower(v)
		if !slices.Contains(tracesSamplers, sampler) {
			l.problemf("OTEL_TRACES_SAMPLER", "%q is not one of %s", v, strings.Join(tracesSamplers, ", "))
			sampler = defaultTracesSampler
		}
	}
	ratio := 1.0
	if v, ok := l.value("OTEL_TRACES_SAMPLER_ARG"); ok {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			l.problemf("OTEL_TRACES_SAMPLER_ARG", "%q is not a ratio from 0 to 1 such as 0.1", v)
		} else {
			ratio = r
		}
	}
	return sampler, ratio
}

// sentryDSN reads SENTRY_DSN or the file SENTRY_DSN_FILE names (see
// secret): https://KEY@HOST/PROJECT. The DSN never appears in a message.
func (l *loader) sentryDSN() string {
	v, from, ok := l.secret("SENTRY_DSN")
	if !ok {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User.Username() == "" ||
		strings.Trim(u.Path, "/") == "" {
		l.problemf(from, "is not a Sentry DSN such as https://KEY@o0.ingest.sentry.io/PROJECT")
		return ""
	}
	return v
}
