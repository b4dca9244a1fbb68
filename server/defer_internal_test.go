package server

import (
	"bytes"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/validator"
)

// deferSchema is a schema small enough to read the tests' documents by.
var deferSchema = gqlparser.MustLoadSchema(&ast.Source{Name: "defer.graphqls", Input: `
type Query { a: A, as: [A], note(text: String): Int }
type A { x: Int, y: Int, b: A }
`})

// operation validates query against deferSchema and returns its operation
// context as gqlgen's executor makes it, with variables coerced.
func operation(t *testing.T, query string, variables map[string]any) *graphql.OperationContext {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(deferSchema, query)
	if errs != nil {
		t.Fatalf("%s: %v", query, errs)
	}
	op := doc.Operations.ForName("")
	vars, err := validator.VariableValues(deferSchema, op, variables)
	if err != nil {
		t.Fatalf("%s: variables: %v", query, err)
	}
	return &graphql.OperationContext{RawQuery: query, Doc: doc, Operation: op, Variables: vars}
}

// format prints doc.
func format(doc *ast.QueryDocument) string {
	var b bytes.Buffer
	formatter.NewFormatter(&b).FormatQueryDocument(doc)
	return b.String()
}

func TestDeferred(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		query     string
		variables map[string]any
		want      bool
	}{
		{query: `{ a { x } }`},
		{query: `{ a { ... @defer { x } } }`, want: true},
		{query: `{ a { ... @defer(label: "l") { x } } }`, want: true},
		{query: `{ a { ... @defer(if: true) { x } } }`, want: true},
		{query: `{ a { ... @defer(if: false) { x } } }`},
		{query: `query($d: Boolean!) { a { ... @defer(if: $d) { x } } }`, variables: map[string]any{"d": true}, want: true},
		{query: `query($d: Boolean!) { a { ... @defer(if: $d) { x } } }`, variables: map[string]any{"d": false}},
		{query: `query($d: Boolean) { a { ... @defer(if: $d) { x } } }`, variables: map[string]any{"d": nil}},
		{query: `query($d: Boolean = true) { a { ... @defer(if: $d) { x } } }`, want: true},
		{query: `{ a { ...F @defer } } fragment F on A { x }`, want: true},
		{query: `{ a { ...F } } fragment F on A { b { ... @defer { x } } }`, want: true},
		{query: `{ a { ...F } } fragment F on A { b { ...G @defer } } fragment G on A { x }`, want: true},
		{query: `{ a @skip(if: true) { ... @defer { x } } }`},
		{query: `{ a @include(if: false) { ...F } } fragment F on A { ... @defer { x } }`},
		{query: `query($s: Boolean!) { a { ... @defer @skip(if: $s) { x } } }`, variables: map[string]any{"s": true}},
		{query: `query($s: Boolean!) { a { ... @defer @skip(if: $s) { x } } }`, variables: map[string]any{"s": false}, want: true},
		{query: `{ a { ...F ...G } } fragment F on A { ...G } fragment G on A { x }`},
		{query: `{ note(text: "@defer") }`},
		{query: `{ ... @defer { a { x } } }`, want: true},
	} {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			if got := deferred(operation(t, tt.query, tt.variables)); got != tt.want {
				t.Errorf("deferred(%s, %v) = %v, want %v", tt.query, tt.variables, got, tt.want)
			}
		})
	}

	t.Run("without the text", func(t *testing.T) {
		t.Parallel()
		rc := operation(t, `{ a { ... @defer { x } } }`, nil)
		rc.RawQuery = "" // a document not parsed from text: looked through
		if !deferred(rc) {
			t.Error("deferred = false, want true")
		}
	})
}

func TestWithoutDefer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ query, want string }{
		{`{ a { x ... @defer(label: "l") { y } } }`, `{ a { x ... { y } } }`},
		{`{ a { ...F @defer @include(if: true) } } fragment F on A { b { ... @defer { x } } }`,
			`{ a { ...F @include(if: true) } } fragment F on A { b { ... { x } } }`},
		{`{ a { ...F } as { ...G @defer } } fragment F on A { ... @defer(if: false) { x } } fragment G on A { y }`,
			`{ a { ...F } as { ...G } } fragment F on A { ... { x } } fragment G on A { y }`},
		{`query Q { a { x } } query R { as { ... @defer { y } } }`, `query Q { a { x } } query R { as { ... { y } } }`},
	} {
		t.Run(tt.query, func(t *testing.T) {
			t.Parallel()
			doc, errs := gqlparser.LoadQuery(deferSchema, tt.query)
			if errs != nil {
				t.Fatal(errs)
			}
			op := doc.Operations[len(doc.Operations)-1]
			before := format(doc)
			stripped, strippedOp := withoutDefer(doc, op)
			if after := format(doc); after != before {
				t.Errorf("the document changed:\n%s\nwant\n%s", after, before)
			}
			want, errs := gqlparser.LoadQuery(deferSchema, tt.want)
			if errs != nil {
				t.Fatal(errs)
			}
			if got := format(stripped); got != format(want) {
				t.Errorf("withoutDefer =\n%s\nwant\n%s", got, format(want))
			}
			if strippedOp != stripped.Operations[len(stripped.Operations)-1] {
				t.Error("the operation returned is not the document's")
			}
			rc := &graphql.OperationContext{Doc: stripped, Operation: strippedOp}
			if deferred(rc) {
				t.Error("deferred(withoutDefer) = true")
			}
		})
	}

	t.Run("shares what it does not change", func(t *testing.T) {
		t.Parallel()
		doc, _ := gqlparser.LoadQuery(deferSchema, `query Q { a { x } } query R { a { x } as { ...F @defer } } fragment F on A { y }`)
		r := doc.Operations.ForName("R")
		stripped, op := withoutDefer(doc, r)
		if stripped.Operations.ForName("Q") != doc.Operations.ForName("Q") {
			t.Error("operation Q was copied")
		}
		if op.SelectionSet[0] != r.SelectionSet[0] {
			t.Error("field a, without @defer under it, was copied")
		}
		if op.SelectionSet[1] == r.SelectionSet[1] {
			t.Error("field as, with @defer under it, was not copied")
		}
		if stripped.Fragments.ForName("F") != doc.Fragments.ForName("F") {
			t.Error("fragment F, without @defer in it, was copied")
		}
		spread := op.SelectionSet[1].(*ast.Field).SelectionSet[0].(*ast.FragmentSpread)
		if spread.Definition != stripped.Fragments.ForName("F") || len(spread.Directives) != 0 {
			t.Errorf("spread = %+v, want F without @defer", spread)
		}
	})
}
