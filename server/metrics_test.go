package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/server/ws"
)

// fakeMetrics records what the server tells its Metrics.
type fakeMetrics struct {
	mu          sync.Mutex
	requests    []string // "type name code", "+timed" when took ≥ 0
	errors      []string
	rateLimited []string
	slow        []string
}

func (m *fakeMetrics) GraphQLRequest(typ, name, code string, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := typ + " " + name + " " + code
	if took >= 0 {
		r += " timed"
	}
	m.requests = append(m.requests, r)
}

func (m *fakeMetrics) GraphQLError(code string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errors = append(m.errors, code)
}

func (m *fakeMetrics) RateLimited(policy string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rateLimited = append(m.rateLimited, policy)
}

func (m *fakeMetrics) SlowConsumer(transport string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slow = append(m.slow, transport)
}

// take returns the requests and errors recorded since the last take.
func (m *fakeMetrics) take() (requests, errors []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	requests, errors = m.requests, m.errors
	m.requests, m.errors = nil, nil
	return requests, errors
}

// withMetrics makes the server report to m.
func withMetrics(m *fakeMetrics) func(*server.Config) {
	return func(c *server.Config) { c.Metrics = m }
}

// TestMetricsHTTPRequests: every answer of /graphql is one request with
// its operation's type and name and the first error's code (each
// operation of a batch is one), every error is counted by its code, and
// nothing else is a GraphQL request.
func TestMetricsHTTPRequests(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{}
	b := setup(t, withMetrics(m), func(c *server.Config) { c.MaxBodyBytes = 1 << 10 })
	post := func(body string, headers ...string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		b.serve(req)
	}
	for _, tt := range []struct {
		name     string
		do       func()
		requests []string
		errors   []string
	}{
		{"a query", func() { post(`{"query":"query Me { me { id } }"}`, "Authorization", "Bearer "+goodToken) },
			[]string{"query Me OK timed"}, nil},
		{"an anonymous query failing in a resolver", func() { post(`{"query":"{ me { id } node(id: \"x\") { id } }"}`) },
			[]string{"query  NOT_FOUND timed"}, []string{"NOT_FOUND"}},
		{"a validation failure", func() { post(`{"query":"query Bad { nosuchfield }"}`) },
			[]string{"  GRAPHQL_VALIDATION_FAILED timed"}, []string{"GRAPHQL_VALIDATION_FAILED"}},
		{"a parse failure", func() { post(`{"query":"{"}`) },
			[]string{"  GRAPHQL_PARSE_FAILED timed"}, []string{"GRAPHQL_PARSE_FAILED"}},
		{"a malformed body", func() { post(`{"query":1}`) },
			[]string{"  BAD_REQUEST timed"}, []string{"BAD_REQUEST"}},
		{"a body too large", func() { post(`{"query":"` + strings.Repeat(" ", 2<<10) + `{ me { id } }"}`) },
			[]string{"  PAYLOAD_TOO_LARGE timed"}, []string{"PAYLOAD_TOO_LARGE"}},
		{"a mutation over GET", func() {
			req := httptest.NewRequest(http.MethodGet, "/graphql?query=mutation+Out+%7B+logout+%7D", nil)
			req.Header.Set("Content-Type", "application/json")
			b.serve(req)
		}, []string{"mutation Out METHOD_NOT_ALLOWED timed"}, []string{"METHOD_NOT_ALLOWED"}},
		{"a CSRF refusal", func() {
			req := httptest.NewRequest(http.MethodGet, "/graphql?query=%7B+me+%7B+id+%7D+%7D", nil)
			b.serve(req)
		}, []string{"  CSRF_PREVENTED timed"}, []string{"CSRF_PREVENTED"}},
		{"a batch", func() {
			post(`[{"query":"query A { me { id } }"},{"query":"mutation B { logout }"},{"query":"{ nosuch }"}]`, "Authorization", "Bearer "+goodToken)
		}, []string{"query A OK timed", "mutation B INTERNAL_SERVER_ERROR timed", "  GRAPHQL_VALIDATION_FAILED timed"},
			[]string{"INTERNAL_SERVER_ERROR", "GRAPHQL_VALIDATION_FAILED"}},
		{"a batch too large", func() { post(batchOf(11)) },
			[]string{"  BATCH_TOO_LARGE timed"}, []string{"BATCH_TOO_LARGE"}},
		{"the health check", func() { b.serve(httptest.NewRequest(http.MethodGet, "/health", nil)) }, nil, nil},
	} {
		tt.do()
		requests, errors := m.take()
		if !slices.Equal(requests, tt.requests) || !slices.Equal(errors, tt.errors) {
			t.Errorf("%s: requests %q, errors %q; want %q, %q", tt.name, requests, errors, tt.requests, tt.errors)
		}
	}
}

// TestMetricsStreams: a subscription over an event stream is a request
// of type subscription that is not timed; Stats counts its stream and its
// subscription, and a socket's, while they are open; a stream refused
// for its address's limit is RATE_LIMITED.
func TestMetricsStreams(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{}
	b := setupWS(t, withMetrics(m), func(c *server.Config) { c.WSMaxConnsPerAddress = 2 })
	sse := b.stream(t, `subscription Ticks { ticks(topic: "shared-metrics") }`)
	sub := b.schema.await(t, "shared-metrics")
	socket := b.dial(t, "graphql-transport-ws")
	socket.init(nil)
	socket.subscribe("1", ticks, topicVars("shared-metrics-ws"))
	b.schema.await(t, "shared-metrics-ws")
	awaitSharedSubscribers(t, b, 2)
	want := ws.Stats{
		Connections:   ws.Counts{WebSocket: 1, SSE: 1},
		Subscriptions: ws.Counts{WebSocket: 1, SSE: 1},
		SharedStreams: 2,
	}
	if got := b.srv.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	// A third stream from the address is refused.
	body := `{"query":"subscription { ticks(topic: \"refused\") }"}`
	resp, _ := b.post(t, body, "Accept", "text/event-stream")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third stream: %d, want 429", resp.StatusCode)
	}

	close(sub.events)
	sse.complete()
	_ = socket.conn.Close()
	deadline := time.Now().Add(wait)
	for b.srv.Stats() != (ws.Stats{}) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats() = %+v after everything closed, want zeros", b.srv.Stats())
		}
		time.Sleep(5 * time.Millisecond) // the server's goroutines wind down; nothing to wait on
	}
	requests, _ := m.take()
	slices.Sort(requests)
	if want := []string{"subscription  RATE_LIMITED", "subscription Ticks OK"}; !slices.Equal(requests, want) {
		t.Errorf("requests %q, want %q (a WebSocket is no GraphQL request over HTTP)", requests, want)
	}
}

// TestMetricsRateLimited: a refusal by a cost budget is counted under its
// policy, and its request's code is RATE_LIMITED.
func TestMetricsRateLimited(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{}
	b := setup(t, withMetrics(m), withBudgets(t, 2)) // me { id } costs 2
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader([]byte(`{"query":"query Me { me { id } }"}`)))
		req.Header.Set("Content-Type", "application/json")
		b.serve(req)
	}
	requests, errors := m.take()
	if want := []string{"query Me OK timed", "query Me RATE_LIMITED timed"}; !slices.Equal(requests, want) {
		t.Errorf("requests %q, want %q", requests, want)
	}
	if want := []string{"RATE_LIMITED"}; !slices.Equal(errors, want) {
		t.Errorf("errors %q, want %q", errors, want)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if want := []string{"anonymous"}; !slices.Equal(m.rateLimited, want) {
		t.Errorf("rate limited %q, want %q", m.rateLimited, want)
	}
}

// TestErrorCodes: the codes the metrics know are the README's table of
// codes, each once.
func TestErrorCodes(t *testing.T) {
	t.Parallel()
	codes := server.ErrorCodes()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	table := readme[strings.Index(readme, "| Code |"):]
	table = table[:strings.Index(table, "\n\n")]
	var documented []string
	for line := range strings.SplitSeq(table, "\n") {
		if rest, ok := strings.CutPrefix(line, "| `"); ok {
			documented = append(documented, rest[:strings.Index(rest, "`")])
		}
	}
	slices.Sort(codes)
	slices.Sort(documented)
	if !slices.Equal(codes, documented) {
		t.Errorf("ErrorCodes() = %q\nREADME's codes %q", codes, documented)
	}
}
