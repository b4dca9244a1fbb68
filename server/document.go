package server

import (
	"context"
	"errors"
	"math"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// documentLimits bounds the work of parsing and validating a document. It
// runs before gqlgen parses the document, so before gqlparser's validation,
// which is where the cost lies: its OverlappingFieldsCanBeMerged rule
// compares every pair of fields that share a response name, so 8,000
// repeated fields (40 KB) took 2.5 s and 3,000 one-field fragments 18 s,
// all before limits (which needs a validated document) could refuse them.
//
// It parses the document itself, with the token limit, and estimates the
// validator's work on that unvalidated document (see validationCost); a
// document over either bound is refused without being validated. gqlgen
// then parses it again (the same bounded work) and validates it. A
// document already in the query cache passed both, and is not looked at.
//
// Its errors carry extensions.code GRAPHQL_VALIDATION_FAILED and are
// answered like limits' errors (see httpTransport for the status). A document that does not
// parse is let through to gqlgen, which reports the parse error itself.
type documentLimits struct {
	schema    *ast.Schema
	maxTokens int
	maxCost   int
	// validated holds the documents gqlgen has parsed and validated.
	validated graphql.Cache[*ast.QueryDocument]
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
} = (*documentLimits)(nil)

// ExtensionName names the extension in gqlgen's stats.
func (d *documentLimits) ExtensionName() string { return "DocumentLimits" }

// Validate accepts every schema.
func (d *documentLimits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters refuses a document over the token limit or
// whose validation would cost more than maxCost, before gqlgen parses and
// validates it. It changes nothing in params. It also refuses to start on
// the document of a client that is gone (ctx is done): nobody would read
// the answer.
func (d *documentLimits) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	if ctx.Err() != nil {
		return gqlerror.Errorf("operation cancelled")
	}
	if _, ok := d.validated.Get(ctx, params.Query); ok {
		return nil
	}
	return d.check(params.Query)
}

// check parses query and refuses it when it is over a limit.
func (d *documentLimits) check(query string) *gqlerror.Error {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, d.maxTokens)
	if err != nil {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Message == tokenLimitMessage(d.maxTokens) {
			return limitError("query has more than %d tokens", d.maxTokens)
		}
		// gqlgen parses the document again and reports the error.
		return nil
	}
	if validationCost(d.schema, doc, d.maxCost) > d.maxCost {
		return limitError("query is too large to validate: it costs more than %d validation steps "+
			"(fields sharing a response name, fragment spreads and variable uses cost more)", d.maxCost)
	}
	return nil
}

// tokenLimitMessage is gqlparser's message for a document over limit
// tokens; gqlparser has no error value to test for.
func tokenLimitMessage(limit int) string {
	return gqlerror.Errorf("exceeded token limit of %d", limit).Message
}

// validationCost estimates, in steps, the work of gqlparser's validation of
// doc, stopping once it passes budget. A step is about a tenth of a
// microsecond of the validator's time (BenchmarkDocumentLimits). It charges
//
//   - every selection (10 steps), argument value and directive (1 step)
//     each time the validator's walk enters it: once for each operation
//     and each fragment definition from which its fragment is reached;
//   - OverlappingFieldsCanBeMerged's comparisons: where n fields share a
//     response name under the same path (inline fragments and spread
//     fragments merged in, as the rule merges them), n times their total
//     size (a comparison compares arguments), and 20·n² more when they may
//     conflict (different fields, any arguments, or different parent
//     types), since the rule formats an error for each conflicting pair;
//   - the rule's loops over pairs of spreads in the sets under a path (s²),
//     and, once two different fragments are spread there, 16·f² for the f
//     fragments merged in, which it compares pair by pair;
//   - each operation's variable definitions times its variable uses (the
//     walker looks each use up in the list), and the fragment definitions
//     times the spreads (NoFragmentCycles looks each spread up in the
//     list).
//
// The estimate merges a fragment once per path, as the rule's memos do, so
// that fragments spreading each other many times over (which limits
// refuses after validation) cost what they cost the validator, not what
// they expand to. It overestimates chains of fragments (each fragment
// definition is charged for every field it reaches), which real documents
// keep short.
func validationCost(schema *ast.Schema, doc *ast.QueryDocument, budget int) int {
	c := costCounter{
		schema:    schema,
		budget:    budget,
		fragments: make(map[string]*ast.FragmentDefinition, len(doc.Fragments)),
	}
	for _, f := range doc.Fragments {
		if _, ok := c.fragments[f.Name]; !ok {
			c.fragments[f.Name] = f
		}
	}
	spreads := 0 // spreads in operations
	for _, op := range doc.Operations {
		c.vars = 0
		c.root(op.SelectionSet, c.rootType(op.Operation))
		for _, v := range op.VariableDefinitions {
			c.add(1 + values(v.DefaultValue))
			c.directives(v.Directives)
		}
		c.directives(op.Directives)
		c.add(mul(len(op.VariableDefinitions), c.vars))
		spreads += c.spreads
	}
	for _, f := range doc.Fragments {
		c.root(f.SelectionSet, f.TypeCondition)
		c.directives(f.Directives)
	}
	c.add(mul(len(doc.Fragments), spreads))
	return c.cost
}

// selectionCost is what validationCost charges, in steps, for the walk
// entering a selection: every rule looks at it, and some look its field up
// in the parent type's list of fields.
const selectionCost = 10

// spreadPairCost is what validationCost charges for a pair of fragment
// spreads merged under one path, in steps: the rule records each pair it
// compares in two maps of maps.
const spreadPairCost = 16

// clashPairCost is what validationCost charges, in steps, for a pair of
// fields under one response name that may conflict (different fields,
// arguments, or type conditions): the rule formats an error for each
// conflicting pair.
const clashPairCost = 20

// costCounter is validationCost's walk.
type costCounter struct {
	// schema gives the types of fields, to tell fields of different types
	// under one response name apart.
	schema    *ast.Schema
	budget    int
	cost      int
	fragments map[string]*ast.FragmentDefinition
	// vars counts the variable uses under the current root; spreads the
	// spreads under it, each time a fragment is merged in.
	vars    int
	spreads int
}

func (c *costCounter) add(n int) { c.cost = min(c.cost+n, math.MaxInt/2) }

func (c *costCounter) over() bool { return c.cost > c.budget }

// root charges the selection set of an operation or fragment definition,
// of type typ.
func (c *costCounter) root(set ast.SelectionSet, typ string) {
	c.spreads = 0
	c.path([]ast.SelectionSet{set}, typ)
}

// rootType is the name of the root type of operations of kind op.
func (c *costCounter) rootType(op ast.Operation) string {
	if c.schema == nil {
		return ""
	}
	var def *ast.Definition
	switch op {
	case ast.Mutation:
		def = c.schema.Mutation
	case ast.Subscription:
		def = c.schema.Subscription
	default:
		def = c.schema.Query
	}
	if def == nil {
		return ""
	}
	return def.Name
}

// fieldType is the name of the type of field name of the type named on, or
// "" when there is no such field.
func (c *costCounter) fieldType(on, name string) string {
	if c.schema == nil {
		return ""
	}
	def := c.schema.Types[on]
	if def == nil {
		return ""
	}
	f := def.Fields.ForName(name)
	if f == nil {
		return ""
	}
	return f.Type.Name()
}

// path charges the selection sets, of type typ, merged under one response
// path and then, for each response name, the sets merged under it.
func (c *costCounter) path(sets []ast.SelectionSet, typ string) {
	var (
		names []string // response names in order, for a deterministic walk
		count = map[string]int{}
		size  = map[string]int{}
		// first is the first field of each response name, cond the type
		// it is selected on and types the type it selects; clash marks
		// the names whose fields may conflict, which the rule reports
		// pair by pair.
		first    = map[string]*ast.Field{}
		cond     = map[string]string{}
		types    = map[string]string{}
		clash    = map[string]bool{}
		children = map[string][]ast.SelectionSet{}
		// included holds the fragments merged in, each once as in the
		// rule's memos; direct counts the spreads in sets themselves,
		// which the rule compares pairwise, and distinct their names.
		included = map[string]bool{}
		direct   = 0
		distinct = map[string]bool{}
	)
	// visit merges set in; top is false inside a fragment merged in, and
	// on is the type condition set is under ("" for none).
	var visit func(set ast.SelectionSet, top bool, on string)
	visit = func(set ast.SelectionSet, top bool, on string) {
		for _, sel := range set {
			if c.over() {
				return
			}
			c.add(selectionCost)
			switch sel := sel.(type) {
			case *ast.Field:
				name := sel.Alias
				if name == "" {
					name = sel.Name
				}
				if f, ok := first[name]; !ok {
					names = append(names, name)
					first[name], cond[name] = sel, on
					types[name] = c.fieldType(on, sel.Name)
				} else if f.Name != sel.Name || cond[name] != on || len(f.Arguments)+len(sel.Arguments) > 0 {
					clash[name] = true
				}
				n := 1 + c.arguments(sel.Arguments)
				c.add(n)
				c.directives(sel.Directives)
				count[name]++
				size[name] += n
				if len(sel.SelectionSet) > 0 {
					children[name] = append(children[name], sel.SelectionSet)
				}
			case *ast.InlineFragment:
				c.directives(sel.Directives)
				if sel.TypeCondition != "" {
					on = sel.TypeCondition
				}
				visit(sel.SelectionSet, top, on)
			case *ast.FragmentSpread:
				c.directives(sel.Directives)
				c.spreads++
				if top {
					direct++
					distinct[sel.Name] = true
				}
				if included[sel.Name] {
					continue
				}
				included[sel.Name] = true
				if def := c.fragments[sel.Name]; def != nil {
					visit(def.SelectionSet, false, def.TypeCondition)
				}
			}
		}
	}
	for _, set := range sets {
		visit(set, true, typ)
	}
	// The rule's loops over pairs of spreads; and, once two different
	// fragments meet, its comparisons of the fragments they reach, pair
	// by pair.
	c.add(mul(direct, direct))
	if len(distinct) > 1 {
		c.add(mul(spreadPairCost, mul(len(included), len(included))))
	}
	for _, name := range names {
		c.add(mul(count[name], size[name]))
		if clash[name] {
			c.add(mul(clashPairCost, mul(count[name], count[name])))
		}
	}
	for _, name := range names {
		if c.over() {
			return
		}
		if sub := children[name]; len(sub) > 0 {
			c.path(sub, types[name])
		}
	}
}

// mul is a*b, saturated well below overflow.
func mul(a, b int) int {
	if a != 0 && b > math.MaxInt/4/a {
		return math.MaxInt / 4
	}
	return a * b
}

// values counts the nodes of an argument or default value.
func values(v *ast.Value) int {
	if v == nil {
		return 0
	}
	n := 1
	for _, child := range v.Children {
		n += values(child.Value)
	}
	return n
}

// variables counts the variable uses in a value.
func variables(v *ast.Value) int {
	if v == nil {
		return 0
	}
	n := 0
	if v.Kind == ast.Variable {
		n++
	}
	for _, child := range v.Children {
		n += variables(child.Value)
	}
	return n
}

// arguments returns the size of args, and counts their variable uses.
func (c *costCounter) arguments(args ast.ArgumentList) int {
	n := 0
	for _, arg := range args {
		n += values(arg.Value)
		c.vars += variables(arg.Value)
	}
	return n
}

// directives charges a list of directives with their arguments.
func (c *costCounter) directives(list ast.DirectiveList) {
	for _, d := range list {
		c.add(1 + c.arguments(d.Arguments))
	}
}
