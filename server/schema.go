package server

import (
	"net/http"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// SDL returns schema as an SDL document, without the built-in types and
// directives: what `obsqra schema` prints and GET /graphql/schema.graphql
// serves, for codegen tools (GraphQL Code Generator, Apollo's rover).
func SDL(schema *ast.Schema) string {
	var b strings.Builder
	formatter.NewFormatter(&b, formatter.WithIndent("  ")).FormatSchema(schema)
	return b.String()
}

// serveSchema answers GET /graphql/schema.graphql with the SDL. It is
// routed only where introspection is on: the SDL tells what introspection
// would.
func (s *Server) serveSchema(sdl string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write([]byte(sdl))
	}
}
