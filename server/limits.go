package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// limits refuses operations that nest fields too deeply, use too many
// aliases, expand to too many fields, or introspect the schema when
// introspection is off. It runs after gqlparser's validation, on the
// validated document, before anything executes, and before gqlgen's
// complexity limit.
//
// The field bound protects that complexity limit: gqlgen computes
// complexity by walking every fragment spread anew, so fragments that each
// spread the next one twice cost it 2^n steps for a document of n lines (22
// such fragments already take seconds). limits measures each fragment once,
// and refuses an operation whose expanded fields number more than
// maxFields, which is set well above the complexity budget: under gqlgen's
// default costs (1 per field) such an operation could never pass it anyway.
//
// Its errors carry extensions.code GRAPHQL_VALIDATION_FAILED, not
// BAD_USER_INPUT: like a validation rule, they judge the document itself and
// not the values in it, and they are answered the same way (no data; HTTP
// 400 under application/graphql-response+json, see httpTransport) before
// any resolver runs. A client cannot fix them by changing
// variables, only by changing the query.
type limits struct {
	maxDepth      int
	maxAliases    int
	maxFields     int
	introspection bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = (*limits)(nil)

// ExtensionName names the extension in gqlgen's stats.
func (l *limits) ExtensionName() string { return "OperationLimits" }

// Validate accepts every schema.
func (l *limits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext measures the operation about to run and refuses it
// when it is over a limit.
func (l *limits) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation == nil {
		return nil
	}
	m := measurer{
		doc:       opCtx.Doc,
		aliasCap:  l.maxAliases + 1,
		fieldCap:  l.maxFields + 1,
		fragments: map[string]*fragmentShape{},
	}
	sh := m.selectionSet(opCtx.Operation.SelectionSet)
	switch {
	case sh.introspects && !l.introspection:
		return limitError("introspection is disabled on this server")
	case sh.depth > l.maxDepth:
		return limitError("query depth %d exceeds the limit of %d", sh.depth, l.maxDepth)
	case sh.aliases > l.maxAliases:
		// The counts saturate just over their limits, hence "more than".
		return limitError("query has more than %d aliased fields", l.maxAliases)
	case sh.fields > l.maxFields:
		return limitError("query has more than %d fields once its fragments are expanded", l.maxFields)
	}
	return nil
}

func limitError(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// shape is what the limits measure of a selection set.
type shape struct {
	// depth is the number of fields on the longest path down, not counting
	// introspection fields and what they select.
	depth int
	// aliases counts aliased fields, each fragment once per spread; it
	// stops growing at the measurer's aliasCap.
	aliases int
	// fields counts the fields selected, each fragment once per spread, as
	// gqlgen's complexity walk visits them (it skips __schema); it stops
	// growing at the measurer's fieldCap.
	fields int
	// introspects is set when __schema or __type is selected.
	introspects bool
}

// fragmentShape memoises the shape of a named fragment. A fragment is
// measured once however often it is spread, which keeps the walk linear in
// the document's size; inProgress breaks fragment cycles (the validator
// refuses them anyway).
type fragmentShape struct {
	shape      shape
	inProgress bool
}

// measurer walks one operation's selections.
type measurer struct {
	doc       *ast.QueryDocument
	aliasCap  int
	fieldCap  int
	fragments map[string]*fragmentShape
}

func (m *measurer) selectionSet(set ast.SelectionSet) shape {
	var total shape
	for _, sel := range set {
		var sh shape
		switch sel := sel.(type) {
		case *ast.Field:
			sh = m.field(sel)
		case *ast.InlineFragment:
			sh = m.selectionSet(sel.SelectionSet)
		case *ast.FragmentSpread:
			sh = m.fragment(sel)
		}
		total.depth = max(total.depth, sh.depth)
		total.aliases = min(total.aliases+sh.aliases, m.aliasCap)
		total.fields = min(total.fields+sh.fields, m.fieldCap)
		total.introspects = total.introspects || sh.introspects
	}
	return total
}

func (m *measurer) field(f *ast.Field) shape {
	sh := m.selectionSet(f.SelectionSet)
	// gqlparser sets Alias to the field's name when there is none.
	if f.Alias != "" && f.Alias != f.Name {
		sh.aliases = min(sh.aliases+1, m.aliasCap)
	}
	sh.fields = min(sh.fields+1, m.fieldCap)
	switch f.Name {
	case "__typename":
		sh.depth = 0
	case "__schema", "__type":
		// GraphiQL's own introspection query nests ofType a dozen levels
		// deep; gqlparser's MaxIntrospectionDepth rule guards that tree.
		sh.depth = 0
		sh.introspects = true
		if f.Name == "__schema" {
			sh.fields = 0
		}
	default:
		sh.depth++
	}
	return sh
}

func (m *measurer) fragment(spread *ast.FragmentSpread) shape {
	if memo, ok := m.fragments[spread.Name]; ok {
		if memo.inProgress {
			return shape{}
		}
		return memo.shape
	}
	def := spread.Definition
	if def == nil {
		def = m.doc.Fragments.ForName(spread.Name)
	}
	if def == nil {
		return shape{}
	}
	memo := &fragmentShape{inProgress: true}
	m.fragments[spread.Name] = memo
	memo.shape = m.selectionSet(def.SelectionSet)
	memo.inProgress = false
	return memo.shape
}
