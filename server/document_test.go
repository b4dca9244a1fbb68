package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/server"
)

// unknownFields returns { nosuch nosuch … } with n fields: 2+n tokens, and
// a document that validation refuses with its own error ("Cannot query
// field"), so a refusal with another message shows that validation did
// not run.
func unknownFields(n int) string { return "{ " + strings.Repeat("nosuch ", n) + "}" }

// wantValidationRan fails unless res is validation's own refusal.
func wantValidationRan(t *testing.T, rec *httptest.ResponseRecorder, res gqlResult) {
	t.Helper()
	if len(res.Errors) == 0 || !strings.HasPrefix(res.Errors[0].Message, `Cannot query field "nosuch"`) ||
		rec.Code != http.StatusOK {
		t.Errorf("response = %d %+v, want 200 from validation (Cannot query field)", rec.Code, res.Errors)
	}
}

// wantRefused fails unless res is the document limits' refusal with msg.
func wantRefused(t *testing.T, rec *httptest.ResponseRecorder, res gqlResult, msg string) {
	t.Helper()
	e := onlyError(t, res)
	if rec.Code != http.StatusOK || e.Message != msg || e.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("response = %d %q %v, want 200 %q GRAPHQL_VALIDATION_FAILED", rec.Code, e.Message, e.Extensions, msg)
	}
}

func TestDocumentTokenLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *server.Config) { c.MaxTokens = 10 })

	t.Run("at the limit the document is validated", func(t *testing.T) {
		rec, res := b.graphQL(t, unknownFields(8), nil) // 10 tokens
		wantValidationRan(t, rec, res)
	})
	t.Run("one past it is refused before validation", func(t *testing.T) {
		rec, res := b.graphQL(t, unknownFields(9), nil) // 11 tokens
		wantRefused(t, rec, res, "query has more than 10 tokens")
	})
	t.Run("a valid document at the limit runs", func(t *testing.T) {
		rec, res := b.graphQL(t, `{ me { id email role } }`, nil, "Authorization", "Bearer "+goodToken) // 9 tokens
		noErrors(t, rec, res)
	})
}

func TestDocumentValidationCostLimit(t *testing.T) {
	t.Parallel()
	const n = 300 // 300 fields named nosuch cost 300² and a little more
	limit, ok := server.DocumentCost(appSchema, unknownFields(n), server.DefaultMaxTokens, 1<<30)
	if next, _ := server.DocumentCost(appSchema, unknownFields(n+1), server.DefaultMaxTokens, 1<<30); !ok || next <= limit {
		t.Fatalf("costs of %d and %d fields = %d and %d, want them to grow", n, n+1, limit, next)
	}
	b := setup(t, func(c *server.Config) { c.MaxValidationCost = limit })

	t.Run("at the limit the document is validated", func(t *testing.T) {
		rec, res := b.graphQL(t, unknownFields(n), nil)
		wantValidationRan(t, rec, res)
	})
	t.Run("one past it is refused before validation", func(t *testing.T) {
		rec, res := b.graphQL(t, unknownFields(n+1), nil)
		wantRefused(t, rec, res, fmt.Sprintf("query is too large to validate: it costs more than %d validation steps "+
			"(fields sharing a response name, fragment spreads and variable uses cost more)", limit))
	})
}

// TestDocumentLimitsDefaults runs the largest documents in the tests, and
// GraphiQL's introspection queries, under the default limits.
func TestDocumentLimitsDefaults(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"introspection.graphql", "introspection_full.graphql"} {
		query := readTestdata(t, file)
		cost, ok := server.DocumentCost(appSchema, query, server.DefaultMaxTokens, server.DefaultMaxValidationCost)
		// A tenth of the budget: real documents are far from it.
		if !ok || cost > server.DefaultMaxValidationCost/10 {
			t.Errorf("%s: cost %d (parsed %v), want at most %d", file, cost, ok, server.DefaultMaxValidationCost/10)
		}
	}
}

// TestDocumentLimitsCancelledRequest shows that the document of a request
// whose client is gone is not parsed or validated.
func TestDocumentLimitsCancelledRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body, err := json.Marshal(map[string]any{"query": unknownFields(1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res := decodeResult(t, b.serve(req))
	if e := onlyError(t, res); e.Message != "operation cancelled" {
		t.Errorf("error = %q, want operation cancelled (and no validation error)", e.Message)
	}
}
