// Package tracingtest gives tests the two endpoints the server reports to,
// each an httptest server of the test's own: an OpenTelemetry collector
// that takes OTLP/HTTP exports of spans (Collector), and a Sentry host
// that takes envelopes of events (Sentry). Each decodes what it receives
// as the real one would and keeps the raw bodies too, so that a test can
// check both what arrived and that no secret did.
package tracingtest

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// wait bounds how long Wait waits.
const wait = 10 * time.Second

// Span is a span as a collector received it, with its ids in hex.
type Span struct {
	Name                          string
	TraceID, SpanID, ParentSpanID string
	// Kind is the span kind's name in the protocol, such as
	// SPAN_KIND_SERVER.
	Kind string
	// Attributes are the span's, each value as text.
	Attributes map[string]string
	// Error is set when the span's status is an error.
	Error bool
	// Links are the spans this one links to.
	Links []Link
	// Scope is the instrumentation scope's name; Resource the resource's
	// attributes.
	Scope    string
	Resource map[string]string
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Collector is an OTLP/HTTP endpoint for traces.
type Collector struct {
	// Endpoint is the URL of its traces (…/v1/traces); Base the URL to
	// give as OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint, Base string

	mu      sync.Mutex
	spans   []Span
	raw     [][]byte
	arrived chan struct{}
}

// NewCollector starts a collector that the test closes when it ends.
func NewCollector(t testing.TB) *Collector {
	t.Helper()
	c := &Collector{arrived: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.Base = srv.URL
	c.Endpoint = srv.URL + "/v1/traces"
	return c
}

// serve takes one ExportTraceServiceRequest.
func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a POST of application/x-protobuf to /v1/traces", http.StatusNotFound)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var spans []Span
	for _, rs := range req.GetResourceSpans() {
		resource := attributes(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				span := Span{
					Name:         s.GetName(),
					TraceID:      hex.EncodeToString(s.GetTraceId()),
					SpanID:       hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Kind:         s.GetKind().String(),
					Attributes:   attributes(s.GetAttributes()),
					Error:        s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					Scope:        ss.GetScope().GetName(),
					Resource:     resource,
				}
				for _, l := range s.GetLinks() {
					span.Links = append(span.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				spans = append(spans, span)
			}
		}
	}
	c.mu.Lock()
	c.spans = append(c.spans, spans...)
	c.raw = append(c.raw, body)
	c.mu.Unlock()
	select {
	case c.arrived <- struct{}{}:
	default:
	}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// attributes returns key-values as text.
func attributes(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(v.GetBoolValue())
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = strconv.FormatFloat(v.GetDoubleValue(), 'g', -1, 64)
		default:
			m[kv.GetKey()] = v.GetStringValue()
		}
	}
	return m
}

// Spans returns the spans received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Raw returns every body received so far, decompressed, end to end: a
// test searches it for what no span may hold.
func (c *Collector) Raw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Join(c.raw, nil)
}

// Wait returns the spans once done reports that they are all there,
// failing the test if they are not within 10 s.
func (c *Collector) Wait(t testing.TB, done func([]Span) bool) []Span {
	t.Helper()
	timeout := time.After(wait)
	for {
		if spans := c.Spans(); done(spans) {
			return spans
		}
		select {
		case <-c.arrived:
		case <-timeout:
			t.Fatalf("tracingtest: the spans expected did not arrive within %s; received %v", wait, Names(c.Spans()))
		}
	}
}

// Names returns the names of spans.
func Names(spans []Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// Sentry is a Sentry host for one project.
type Sentry struct {
	// DSN is the project's DSN, with the public key "public".
	DSN string

	mu      sync.Mutex
	events  []map[string]any
	raw     [][]byte
	arrived chan struct{}
}

// NewSentry starts a Sentry host for project (a number) that the test
// closes when it ends.
func NewSentry(t testing.TB, project string) *Sentry {
	t.Helper()
	s := &Sentry{arrived: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/"+project+"/envelope/", s.serve)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.DSN = strings.Replace(srv.URL, "http://", "http://public@", 1) + "/" + project
	return s
}

// serve takes one envelope: a header line, then items, each a header line
// and a payload of the header's length (or up to the next newline).
func (s *Sentry) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.Contains(r.Header.Get("X-Sentry-Auth"), "sentry_key=public") {
		http.Error(w, "no sentry_key", http.StatusUnauthorized)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	events, err := envelopeEvents(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.events = append(s.events, events...)
	s.raw = append(s.raw, body)
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{}`))
}

// envelopeEvents returns the payloads of an envelope's event items.
func envelopeEvents(body []byte) ([]map[string]any, error) {
	_, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("envelope without items")
	}
	var events []map[string]any
	for len(bytes.TrimSpace(rest)) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		var header struct {
			Type   string `json:"type"`
			Length *int   `json:"length"`
		}
		if err := json.Unmarshal(line, &header); err != nil {
			return nil, fmt.Errorf("item header %q: %w", line, err)
		}
		var payload []byte
		if header.Length != nil {
			if *header.Length > len(after) {
				return nil, fmt.Errorf("item of %d bytes in %d", *header.Length, len(after))
			}
			payload, rest = after[:*header.Length], bytes.TrimPrefix(after[*header.Length:], []byte("\n"))
		} else {
			payload, rest, _ = bytes.Cut(after, []byte("\n"))
		}
		if header.Type != "event" {
			continue
		}
		var event map[string]any
		if err := json.Unmarshal(payload, &event); err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		events = append(events, event)
	}
	return events, nil
}

// Events returns the events received so far, as decoded JSON.
func (s *Sentry) Events() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.events...)
}

// Raw returns every envelope received so far, decompressed, end to end.
func (s *Sentry) Raw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.raw, nil)
}

// Wait returns the events once there are at least n, failing the test if
// they do not arrive within 10 s.
func (s *Sentry) Wait(t testing.TB, n int) []map[string]any {
	t.Helper()
	timeout := time.After(wait)
	for {
		if events := s.Events(); len(events) >= n {
			return events
		}
		select {
		case <-s.arrived:
		case <-timeout:
			t.Fatalf("tracingtest: %d of %d Sentry events arrived within %s", len(s.Events()), n, wait)
		}
	}
}

// readBody returns r's body, gunzipped when it says it is gzipped.
func readBody(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer z.Close()
		body = z
	}
	return io.ReadAll(body)
}
