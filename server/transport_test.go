package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// send sends a request to /graphql with body and headers (name, value
// pairs), a Content-Type of application/json unless headers set one.
func (b *testBundle) send(method, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", mediaJSON)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return b.serve(req)
}

// batchOf returns a batch of n requests, the i-th { a<i>: __typename }.
func batchOf(n int) string {
	reqs := make([]map[string]any, n)
	for i := range reqs {
		reqs[i] = map[string]any{"query": fmt.Sprintf("{ a%d: __typename }", i)}
	}
	b, _ := json.Marshal(reqs)
	return string(b)
}

// decodeBatch decodes a batched response.
func decodeBatch(t *testing.T, rec *httptest.ResponseRecorder) []gqlResult {
	t.Helper()
	var res []gqlResult
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatalf("response %d %q is not a JSON array: %v", rec.Code, rec.Body.String(), err)
	}
	return res
}

// wantCoded fails unless rec is status with one error of code, and no
// data entry.
func wantCoded(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) gqlErr {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d (%s)", rec.Code, status, rec.Body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatalf("response %q is not a JSON object: %v", rec.Body, err)
	}
	if _, ok := raw["data"]; ok {
		t.Errorf("response %s has a data entry, want none", rec.Body)
	}
	e := onlyError(t, decodeResult(t, rec))
	if e.Extensions["code"] != code {
		t.Errorf("error = %q %v, want code %s", e.Message, e.Extensions, code)
	}
	return e
}

func TestBatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		batchMax int // 0 keeps the default, 10
		n        int
	}{
		{name: "the default BATCH_MAX", n: server.DefaultBatchMax},
		{name: "one past the default", n: server.DefaultBatchMax + 1},
		{name: "BATCH_MAX 3", batchMax: 3, n: 3},
		{name: "one past BATCH_MAX 3", batchMax: 3, n: 4},
		{name: "one", n: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *server.Config) { c.BatchMax = tt.batchMax })
			limit := cmp(tt.batchMax, server.DefaultBatchMax)
			for _, media := range []string{mediaJSON, mediaGraphQLResponse} {
				rec := b.send(http.MethodPost, batchOf(tt.n), "Accept", media)
				if tt.n > limit {
					e := wantCoded(t, rec, http.StatusBadRequest, "BATCH_TOO_LARGE")
					if want := fmt.Sprintf("a batch holds at most %d operations, this one %d", limit, tt.n); e.Message != want {
						t.Errorf("message = %q, want %q", e.Message, want)
					}
					continue
				}
				if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != media {
					t.Errorf("%s: status %d, Content-Type %q, want 200 %s", media, rec.Code, rec.Header().Get("Content-Type"), media)
				}
				res := decodeBatch(t, rec)
				if len(res) != tt.n {
					t.Fatalf("%d responses, want %d", len(res), tt.n)
				}
				for i, r := range res {
					if want := fmt.Sprintf(`{"a%d":"Query"}`, i); string(r.Data) != want || len(r.Errors) != 0 {
						t.Errorf("response %d = %s %+v, want %s", i, r.Data, r.Errors, want)
					}
				}
			}
		})
	}
}

// TestBatchOwnErrors: each operation of a batch is answered in order with
// its own data and errors, the document limits applying to each.
func TestBatchOwnErrors(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.MaxDepth = 2 })
	body := `[
		{"query": "{ me { id } }"},
		{"query": "{ nosuch }"},
		{"query": "{ c: __typename }"},
		{"query": "{ me { preferences { riskTolerance } } }"},
		{"query": "query Q($n: Int!) { __typename }", "variables": {"n": "x"}},
		{"query": "{"},
		{"query": "{ b: __typename }"}
	]`
	for _, media := range []string{mediaJSON, mediaGraphQLResponse} {
		rec := b.send(http.MethodPost, body, "Accept", media)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d %s, want 200", media, rec.Code, rec.Body)
		}
		res := decodeBatch(t, rec)
		want := []struct{ data, code string }{
			{`{"me":null}`, ""},
			{"", "GRAPHQL_VALIDATION_FAILED"},
			{`{"c":"Query"}`, ""},
			{"", "GRAPHQL_VALIDATION_FAILED"},
			{"", "GRAPHQL_VALIDATION_FAILED"},
			{"", "GRAPHQL_PARSE_FAILED"},
			{`{"b":"Query"}`, ""},
		}
		if len(res) != len(want) {
			t.Fatalf("%d responses, want %d: %s", len(res), len(want), rec.Body)
		}
		for i, w := range want {
			code := ""
			if len(res[i].Errors) > 0 {
				code, _ = res[i].Errors[0].Extensions["code"].(string)
			}
			if string(res[i].Data) != w.data || code != w.code {
				t.Errorf("%s: response %d = %s %+v, want data %q, code %q", media, i, res[i].Data, res[i].Errors, w.data, w.code)
			}
		}
	}
}

// TestBatchDeadline: the request timeout bounds the batch as a whole, not
// each of its operations.
func TestBatchDeadline(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.RequestTimeout = time.Hour })
	var (
		mu        sync.Mutex
		deadlines []time.Time
	)
	b.resolver.login = func(ctx context.Context, _ graph.LoginInput) (*obsqra.AuthPayload, error) {
		d, _ := ctx.Deadline()
		mu.Lock()
		deadlines = append(deadlines, d)
		mu.Unlock()
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "wrong password")
	}
	const login = `{"query": "mutation { login(input: {email: \"ada@example.com\", password: \"pw\"}) { accessToken } }"}`
	rec := b.send(http.MethodPost, "["+login+","+login+"]")
	if res := decodeBatch(t, rec); rec.Code != http.StatusOK || len(res) != 2 {
		t.Fatalf("status %d, %d responses, want 200 and 2", rec.Code, len(res))
	}
	if len(deadlines) != 2 || deadlines[0].IsZero() || !deadlines[1].Equal(deadlines[0]) {
		t.Errorf("deadlines = %v, want the batch's one deadline for both operations", deadlines)
	}
}

// TestBatchBodyLimit: the body limit bounds the batch as a whole.
func TestBatchBodyLimit(t *testing.T) {
	t.Parallel()
	body := batchOf(3)
	for _, tt := range []struct {
		limit  int64
		status int
	}{
		{int64(len(body)), http.StatusOK},
		{int64(len(body)) - 1, http.StatusRequestEntityTooLarge},
	} {
		b := setup(t, func(c *server.Config) { c.MaxBodyBytes = tt.limit })
		rec := b.send(http.MethodPost, body)
		if tt.status == http.StatusOK {
			if rec.Code != http.StatusOK || len(decodeBatch(t, rec)) != 3 {
				t.Errorf("limit %d: status %d %s, want 200 and 3 responses", tt.limit, rec.Code, rec.Body)
			}
			continue
		}
		wantCoded(t, rec, tt.status, "PAYLOAD_TOO_LARGE")
	}
}

// TestRequestErrorStatus is the one rule for an operation refused before it
// executes, whatever refused it: 400 under
// application/graphql-response+json, 200 under application/json, and no
// data entry under either.
func TestRequestErrorStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) {
		c.MaxDepth = 2
		c.MaxAliases = 1
		c.ComplexityLimit = 3
	})
	tokens := setup(t, func(c *server.Config) { c.MaxTokens = 40 })
	noIntrospection := setup(t, func(c *server.Config) { c.Introspection = false })
	for _, tt := range []struct {
		name, query, code string
		variables         map[string]any
		b                 *testBundle
	}{
		{name: "parse", query: "{", code: "GRAPHQL_PARSE_FAILED"},
		{name: "validation", query: "{ nosuch }", code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "variables", query: "query Q($n: Int!) { __typename }", variables: map[string]any{"n": "x"}, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "tokens", query: "{ " + strings.Repeat("__typename ", 39) + "}", code: "GRAPHQL_VALIDATION_FAILED", b: tokens},
		{name: "depth", query: "{ me { preferences { riskTolerance } } }", code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "aliases", query: "{ a: __typename b: __typename }", code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "complexity", query: "{ me { id email fullName } }", code: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "introspection off", query: "{ __schema { queryType { name } } }", code: "GRAPHQL_VALIDATION_FAILED", b: noIntrospection},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bb := tt.b
			if bb == nil {
				bb = b
			}
			body, _ := json.Marshal(map[string]any{"query": tt.query, "variables": tt.variables})
			for media, status := range map[string]int{mediaJSON: http.StatusOK, mediaGraphQLResponse: http.StatusBadRequest} {
				rec := bb.send(http.MethodPost, string(body), "Accept", media)
				wantCoded(t, rec, status, tt.code)
				if ct := rec.Header().Get("Content-Type"); ct != media {
					t.Errorf("Content-Type = %q, want %q", ct, media)
				}
			}
		})
	}
	// At the limits, the same operations execute.
	for query, bb := range map[string]*testBundle{
		"{ " + strings.Repeat("__typename ", 38) + "}": tokens,
		"{ me { id } }":       b,
		"{ a: __typename }":   b,
		"{ me { id email } }": b,
	} {
		rec, res := bb.graphQL(t, query, nil, "Accept", mediaGraphQLResponse)
		if rec.Code != http.StatusOK || res.Data == nil {
			t.Errorf("%q = %d %s, want 200 with data", query, rec.Code, rec.Body)
		}
	}
}

// TestTransportErrors: a request that is not GraphQL over HTTP is a coded
// GraphQL error, with no Go internals and not the body echoed back.
func TestTransportErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const secret = "s3cr3t-body"
	for _, tt := range []struct {
		name, method, body, contentType string
		status                          int
		code, allow                     string
	}{
		{"not JSON", http.MethodPost, `{"query": "` + secret, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"an array of non-objects", http.MethodPost, `[1, "` + secret + `"]`, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"an empty batch", http.MethodPost, `[]`, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"a query that is not a string", http.MethodPost, `{"query": {"q": "` + secret + `"}}`, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"trailing data", http.MethodPost, `{"query": "{ __typename }"} {"` + secret + `": 1}`, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"no query", http.MethodPost, `{"qeury": "{ __typename }"}`, mediaJSON, http.StatusBadRequest, "BAD_REQUEST", ""},
		{"no Content-Type", http.MethodPost, `{"query": "{ __typename }"}`, "", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", ""},
		// A type a browser may send cross-origin without a preflight is
		// refused before the transport sees it (see TestCSRF).
		{"text/plain", http.MethodPost, `{"query": "{ __typename }"}`, "text/plain", http.StatusBadRequest, "CSRF_PREVENTED", ""},
		{"application/xml", http.MethodPost, `{"query": "{ __typename }"}`, "application/xml", http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"PUT", http.MethodPut, `{"query": "{ __typename }"}`, mediaJSON, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "GET, POST"},
		{"DELETE", http.MethodDelete, "", mediaJSON, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "GET, POST"},
	} {
		for _, media := range []string{mediaJSON, mediaGraphQLResponse} {
			rec := b.send(tt.method, tt.body, "Content-Type", tt.contentType, "Accept", media)
			e := wantCoded(t, rec, tt.status, tt.code)
			if strings.Contains(rec.Body.String(), secret) || strings.Contains(e.Message, "json:") || strings.Contains(e.Message, "Go value") {
				t.Errorf("%s: message %q shows the body or Go internals", tt.name, e.Message)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("%s: Allow = %q, want %q", tt.name, got, tt.allow)
			}
			if ct := rec.Header().Get("Content-Type"); ct != media {
				t.Errorf("%s: Content-Type = %q, want %q", tt.name, ct, media)
			}
		}
	}
}

func TestGETMutation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := url.Values{"query": {`mutation { login(input: {email: "a@example.com", password: "pw"}) { accessToken } }`}}
	// A bare GET, which a browser sends cross-origin without a preflight,
	// runs nothing.
	wantCoded(t, b.serve(httptest.NewRequest(http.MethodGet, "/graphql?"+q.Encode(), nil)), http.StatusBadRequest, "CSRF_PREVENTED")
	rec := b.serve(httpGET("/graphql?" + q.Encode()))
	wantCoded(t, rec, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	if got := rec.Header().Get("Allow"); got != "POST" {
		t.Errorf("Allow = %q, want POST", got)
	}

	req := httpGET("/graphql?" + url.Values{"query": {"{ __typename }"}}.Encode())
	if rec := b.serve(req); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"__typename":"Query"`) {
		t.Errorf("GET query = %d %s, want 200 with data", rec.Code, rec.Body)
	}
	req = httpGET("/graphql?query=%7B+__typename+%7D&variables=%5B1%5D")
	if e := wantCoded(t, b.serve(req), http.StatusBadRequest, "BAD_REQUEST"); !strings.Contains(e.Message, "variables") {
		t.Errorf("message = %q, want the variables' refusal", e.Message)
	}
}

// cmp returns v, or def when v is zero.
func cmp(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// TestWebSocketWithoutSubprotocol: an upgrade without a GraphQL
// subprotocol is a coded error too.
func TestWebSocketWithoutSubprotocol(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req := httptest.NewRequest(http.MethodGet, "/graphql", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "chat")
	if e := wantCoded(t, b.serve(req), http.StatusBadRequest, "BAD_REQUEST"); !strings.Contains(e.Message, "subprotocol") {
		t.Errorf("message = %q, want the subprotocol's refusal", e.Message)
	}
}
