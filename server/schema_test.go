package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra/graph"
	"github.com/obsqra/obsqra/server"
)

func TestSDL(t *testing.T) {
	t.Parallel()
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	sdl := server.SDL(schema)
	parsed, err := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphql", Input: sdl})
	if err != nil {
		t.Fatalf("SDL does not load as a schema: %v", err)
	}
	for name, def := range schema.Types {
		if def.BuiltIn {
			continue
		}
		if got := parsed.Types[name]; got == nil || len(got.Fields) != len(def.Fields) || len(got.EnumValues) != len(def.EnumValues) {
			t.Errorf("SDL type %s = %v, want it with %d fields and %d enum values", name, got, len(def.Fields), len(def.EnumValues))
		}
	}
	if strings.Contains(sdl, "__Schema") {
		t.Error("SDL includes the introspection types")
	}
}

func TestSchemaEndpoint(t *testing.T) {
	t.Parallel()
	on := setup(t)
	rec := on.serve(httpGET("/graphql/schema.graphql"))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || !strings.Contains(rec.Body.String(), "type Query") {
		t.Errorf("GET /graphql/schema.graphql with introspection = %d %q, want 200 text/plain with the SDL", rec.Code, rec.Header().Get("Content-Type"))
	}
	off := setup(t, func(c *server.Config) { c.Introspection = false })
	if rec := off.serve(httpGET("/graphql/schema.graphql")); rec.Code != http.StatusNotFound {
		t.Errorf("GET /graphql/schema.graphql without introspection = %d, want 404", rec.Code)
	}
}
