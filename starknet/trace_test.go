package starknet_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// TestRequestSpans: inside a recorded span each request to a node is a
// child span named by its method, with the node's host and port and never
// the rest of its URL (where the API key is); a node that fails is an
// error span, a JSON-RPC error one with its code. Outside a span nothing
// is traced.
func TestRequestSpans(t *testing.T) {
	t.Parallel()
	failing, good := starknettest.NewNode(t), starknettest.NewNode(t, starknettest.WithBlockNumber(9))
	const key = "SECRETKEY123"
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	c, _ := setup(t, starknet.Config{TracerProvider: tp},
		failing.URL+"/v3/"+key, good.URL+"/rpc?apikey="+key)

	bg := context.Background()
	if _, err := c.SpecVersion(bg); err != nil {
		t.Fatal(err)
	}
	if n := len(spans.GetSpans()); n != 0 {
		t.Fatalf("calls outside any span made %d spans, want none", n)
	}
	spans.Reset()

	failing.FailNext(10, starknettest.HTTP500)
	ctx, request := tp.Tracer("test").Start(bg, "request")
	if n, err := c.BlockNumber(ctx); err != nil || n != 9 {
		t.Fatalf("BlockNumber = %d, %v, want 9 from the second node", n, err)
	}
	_, err := c.TransactionStatus(ctx, mustFelt(t, "0x123"))
	if err == nil {
		t.Fatal("TransactionStatus(an unknown hash) = nil error, want error 29")
	}
	request.End()

	port := func(rawURL string) string { u, _ := url.Parse(rawURL); return u.Port() }
	var failed, answered, rpcError bool
	for _, s := range spans.GetSpans() {
		if s.Name == "request" {
			continue
		}
		a := map[string]string{}
		for _, kv := range s.Attributes {
			a[string(kv.Key)] = kv.Value.Emit()
			if strings.Contains(kv.Value.Emit(), key) || strings.Contains(kv.Value.Emit(), "/v3") {
				t.Errorf("span %q: %s = %q names the URL's path or query", s.Name, kv.Key, kv.Value.Emit())
			}
		}
		if s.Parent.SpanID() != request.SpanContext().SpanID() || s.SpanKind != trace.SpanKindClient {
			t.Errorf("span %q: parent %v, kind %v; want the request's span, client", s.Name, s.Parent.SpanID(), s.SpanKind)
		}
		if a["rpc.system.name"] != "jsonrpc" || a["rpc.method"] != s.Name || a["server.address"] != "127.0.0.1" {
			t.Errorf("span %q: attributes %v, want jsonrpc, its method and the node's host", s.Name, a)
		}
		switch {
		case a["server.port"] == port(failing.URL):
			failed = failed || s.Status.Code == codes.Error && a["error.type"] == "_OTHER"
		case s.Name == "starknet_blockNumber" && s.Status.Code == codes.Unset:
			answered = true
		case s.Name == "starknet_getTransactionStatus":
			rpcError = s.Status.Code == codes.Error && a["error.type"] == "29" && a["rpc.response.status_code"] == "29"
		}
		if s.Status.Description != "" {
			t.Errorf("span %q: status description %q, want none (a node's message may quote the call)", s.Name, s.Status.Description)
		}
	}
	if !failed || !answered || !rpcError {
		t.Errorf("spans %v: failing node's error span %v, second node's answer %v, JSON-RPC error 29 %v; want all", spanNames(spans.GetSpans()), failed, answered, rpcError)
	}
}

// spanNames returns the names of spans.
func spanNames(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
