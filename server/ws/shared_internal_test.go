package ws

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestStreamKey: executions are shared only by subscribers asking the same
// document and operation with the same variables, as the same viewer.
func TestStreamKey(t *testing.T) {
	t.Parallel()
	base := &graphql.RawParams{Query: "subscription { s(p: $p) }", Variables: map[string]any{"p": []any{"nostra"}, "q": 1}}
	same := &graphql.RawParams{Query: base.Query, Variables: map[string]any{"q": 1, "p": []any{"nostra"}}}
	if streamKey(base, 0) != streamKey(same, 0) {
		t.Error("the same variables in another order give another key")
	}
	for name, other := range map[string]struct {
		p      *graphql.RawParams
		viewer int64
	}{
		"variables": {&graphql.RawParams{Query: base.Query, Variables: map[string]any{"p": []any{"vesu"}, "q": 1}}, 0},
		"document":  {&graphql.RawParams{Query: base.Query + " ", Variables: base.Variables}, 0},
		"operation": {&graphql.RawParams{Query: base.Query, OperationName: "X", Variables: base.Variables}, 0},
		"viewer":    {base, 7},
	} {
		if streamKey(other.p, other.viewer) == streamKey(base, 0) {
			t.Errorf("another %s gives the same key", name)
		}
	}
}
