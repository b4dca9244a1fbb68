package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// A subscription sent as plain JSON is refused at once: a JSON response
// holds one result, and waiting for it could take forever.
func TestSubscriptionOverPlainJSON(t *testing.T) {
	t.Parallel()
	const query = `subscription { ticks(topic: "plain") }`
	for _, tt := range []struct {
		name, method, body, accept string
	}{
		{"POST json", http.MethodPost, `{"query":"subscription { ticks(topic: \"plain\") }"}`, mediaJSON},
		{"POST graphql-response+json", http.MethodPost, `{"query":"subscription { ticks(topic: \"plain\") }"}`, mediaGraphQLResponse},
		{"GET json", http.MethodGet, "", mediaJSON},
		{"GET graphql-response+json", http.MethodGet, "", mediaGraphQLResponse},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			schema := newWSSchema()
			b := setupSchema(t, schema, nil)
			req := httptest.NewRequest(tt.method, "/graphql?query="+url.QueryEscape(query), nil)
			if tt.method == http.MethodPost {
				req = httptest.NewRequest(tt.method, "/graphql", strings.NewReader(tt.body))
			}
			req.Header.Set("Content-Type", mediaJSON)
			req.Header.Set("Accept", tt.accept)
			rec := b.serve(req)
			e := wantCoded(t, rec, http.StatusBadRequest, "SUBSCRIPTION_NEEDS_STREAM")
			if e.Message == "" {
				t.Error("the error has no message")
			}
			if n := schema.execs.Load(); n != 0 {
				t.Errorf("the subscription was executed %d times, want 0", n)
			}
		})
	}

	t.Run("in a batch", func(t *testing.T) {
		t.Parallel()
		b := setupSchema(t, newWSSchema(), nil)
		rec := b.send(http.MethodPost, `[{"query":"{ whoami }"},{"query":"subscription { ticks(topic: \"plain\") }"}]`)
		if rec.Code != http.StatusOK {
			t.Errorf("status = %d, want 200 (%s)", rec.Code, rec.Body)
		}
		res := decodeBatch(t, rec)
		if len(res) != 2 {
			t.Fatalf("batch answered %d responses, want 2: %s", len(res), rec.Body)
		}
		if e := onlyError(t, res[1]); e.Extensions["code"] != "SUBSCRIPTION_NEEDS_STREAM" {
			t.Errorf("the subscription's error = %q %v, want SUBSCRIPTION_NEEDS_STREAM", e.Message, e.Extensions)
		}
	})
}
