package server

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// Incremental delivery (@defer).
//
// A query whose selected operation has an active @defer (one not turned off
// by if: false, nor inside a skipped selection) is delivered in increments
// to a client that said it can merge them: an HTTP request whose Accept
// names multipart/mixed without a subscriptionSpec (wire.MultipartIncremental,
// which Apollo Client's Defer20220824Handler sends) or text/event-stream
// (graphql-sse, each payload an event next). The payloads are those of the
// @defer draft of 2022-08-24 that Apollo Router and GraphQL Yoga send and
// Apollo Client reads: the initial result with "hasNext", then results of
// {"incremental": [{"data", "path", "label", "errors"}], "hasNext"}, the
// last with "hasNext": false.
//
// Every other operation runs with its @defer removed, and is answered whole
// in one response: a plain JSON request (application/json or
// application/graphql-response+json), a batch, a WebSocket operation
// (graphql-transport-ws and graphql-ws have no way for a client to say that
// it merges increments, and Apollo's GraphQLWsLink hands them on unmerged),
// a mutation and a subscription (gqlgen's generated handlers of both send
// one result each and never the deferred ones).
//
// Removing @defer before execution, rather than executing with it and
// merging the deferred results into the first one at their paths, costs
// nothing for the documents without @defer (a look for the word in the
// document's text), and for the others a copy of the nodes between the
// operation and each @defer; the execution then resolves the deferred
// fields in place, as any other field, and writes one response. Merging
// would parse and rewrite the response's JSON, in order, at every path a
// deferred result names, and wait for gqlgen's goroutines in between.

// incrementsKey is the context key of whether the operation created under
// the context may be delivered in increments.
type incrementsKey struct{}

// withIncrements returns ctx saying that the client of the operation to be
// created under it merges increments, so that its @defer is kept.
func withIncrements(ctx context.Context) context.Context {
	return context.WithValue(ctx, incrementsKey{}, true)
}

// incrementsAccepted reports whether withIncrements made ctx.
func incrementsAccepted(ctx context.Context) bool {
	ok, _ := ctx.Value(incrementsKey{}).(bool)
	return ok
}

// incrementalDelivery is the gqlgen extension that removes @defer from
// every operation that is not to be delivered in increments: anything but
// a query created under withIncrements.
type incrementalDelivery struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = incrementalDelivery{}

// ExtensionName names the extension in gqlgen's stats.
func (incrementalDelivery) ExtensionName() string { return "IncrementalDelivery" }

// Validate accepts every schema.
func (incrementalDelivery) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext gives rc a copy of its document without @defer,
// unless rc is a query whose client merges increments or has no active
// @defer. The document itself is shared by every request that sends the
// same text (the query cache), and stays as it is.
func (incrementalDelivery) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation.Operation == ast.Query && incrementsAccepted(ctx) {
		return nil
	}
	if deferred(rc) {
		rc.Doc, rc.Operation = withoutDefer(rc.Doc, rc.Operation)
	}
	return nil
}

// deferred reports whether the operation of rc has an active @defer: one on
// an inline fragment or a fragment spread that its own fragments included
// reach, whose if argument (true by default) is true, and that no @skip or
// @include leaves out. It decides as gqlgen's field collection does, which
// defers what it finds so.
func deferred(rc *graphql.OperationContext) bool {
	if rc == nil || rc.Doc == nil || rc.Operation == nil {
		return false
	}
	// The document was parsed from RawQuery, and a directive's name is
	// written out in full: without the word, no @defer.
	if rc.RawQuery != "" && !strings.Contains(rc.RawQuery, "defer") {
		return false
	}
	f := deferFinder{doc: rc.Doc, variables: rc.Variables, seen: map[string]bool{}}
	return f.in(rc.Operation.SelectionSet)
}

// deferFinder looks for an active @defer, in each fragment once.
type deferFinder struct {
	doc       *ast.QueryDocument
	variables map[string]any
	seen      map[string]bool
}

// in reports whether set, or a selection set under it, has an active
// @defer.
func (f *deferFinder) in(set ast.SelectionSet) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if included(sel.Directives, f.variables) && f.in(sel.SelectionSet) {
				return true
			}
		case *ast.InlineFragment:
			if !included(sel.Directives, f.variables) {
				continue
			}
			if deferActive(sel.Directives, f.variables) || f.in(sel.SelectionSet) {
				return true
			}
		case *ast.FragmentSpread:
			if !included(sel.Directives, f.variables) {
				continue
			}
			if deferActive(sel.Directives, f.variables) {
				return true
			}
			if f.seen[sel.Name] {
				continue
			}
			f.seen[sel.Name] = true
			if def := f.doc.Fragments.ForName(sel.Name); def != nil && f.in(def.SelectionSet) {
				return true
			}
		}
	}
	return false
}

// included reports whether a selection with directives is executed: no
// @skip(if: true), no @include(if: false).
func included(directives ast.DirectiveList, variables map[string]any) bool {
	if d := directives.ForName("skip"); d != nil {
		if skip, ok := ifArgument(d, variables); ok && skip {
			return false
		}
	}
	if d := directives.ForName("include"); d != nil {
		if include, ok := ifArgument(d, variables); ok && !include {
			return false
		}
	}
	return true
}

// deferActive reports whether directives have a @defer that gqlgen honours:
// its if argument is missing (true by default) or true. An if that is not a
// boolean (a null variable) turns it off, as in gqlgen.
func deferActive(directives ast.DirectiveList, variables map[string]any) bool {
	d := directives.ForName("defer")
	if d == nil {
		return false
	}
	if d.Arguments.ForName("if") == nil {
		return true
	}
	active, ok := ifArgument(d, variables)
	return ok && active
}

// ifArgument is the value of d's if argument, with variables; ok is false
// when it has none or its value is not a boolean.
func ifArgument(d *ast.Directive, variables map[string]any) (value, ok bool) {
	arg := d.Arguments.ForName("if")
	if arg == nil {
		return false, false
	}
	v, err := arg.Value.Value(variables)
	if err != nil {
		return false, false
	}
	value, ok = v.(bool)
	return value, ok
}

// withoutDefer returns doc and its operation op without any @defer. The
// nodes between op (or a fragment) and each @defer are copies; every other
// node, and doc and op when they have no @defer, are shared with doc.
func withoutDefer(doc *ast.QueryDocument, op *ast.OperationDefinition) (*ast.QueryDocument, *ast.OperationDefinition) {
	s := deferStripper{doc: doc, fragments: map[string]*ast.FragmentDefinition{}}
	out := *doc
	out.Fragments = make(ast.FragmentDefinitionList, len(doc.Fragments))
	for i, f := range doc.Fragments {
		out.Fragments[i] = s.fragment(f.Name)
	}
	newOp := op
	if set, changed := s.selections(op.SelectionSet); changed {
		o := *op
		o.SelectionSet = set
		newOp = &o
	}
	out.Operations = make(ast.OperationList, len(doc.Operations))
	for i, o := range doc.Operations {
		if o == op {
			o = newOp
		}
		out.Operations[i] = o
	}
	return &out, newOp
}

// deferStripper takes @defer out of a document's selections, copying what
// it changes.
type deferStripper struct {
	doc *ast.QueryDocument
	// fragments are the document's fragments without @defer, by name, as
	// they are worked out.
	fragments map[string]*ast.FragmentDefinition
}

// fragment returns the fragment name without @defer, or nil when the
// document has none of that name.
func (s *deferStripper) fragment(name string) *ast.FragmentDefinition {
	if f, ok := s.fragments[name]; ok {
		return f
	}
	f := s.doc.Fragments.ForName(name)
	if f == nil {
		return nil
	}
	// Set before the fragment's own spreads are worked out: a cycle (which
	// validation refuses) would end here.
	s.fragments[name] = f
	if set, changed := s.selections(f.SelectionSet); changed {
		c := *f
		c.SelectionSet = set
		s.fragments[name] = &c
	}
	return s.fragments[name]
}

// selections returns set without @defer, and whether that is a new set.
func (s *deferStripper) selections(set ast.SelectionSet) (ast.SelectionSet, bool) {
	var out ast.SelectionSet // nil until a selection changes
	for i, sel := range set {
		next := s.selection(sel)
		if next != sel && out == nil {
			out = make(ast.SelectionSet, len(set))
			copy(out, set)
		}
		if out != nil {
			out[i] = next
		}
	}
	if out == nil {
		return set, false
	}
	return out, true
}

// selection returns sel without @defer: sel itself, or a changed copy.
func (s *deferStripper) selection(sel ast.Selection) ast.Selection {
	switch sel := sel.(type) {
	case *ast.Field:
		set, changed := s.selections(sel.SelectionSet)
		if !changed {
			return sel
		}
		c := *sel
		c.SelectionSet = set
		return &c
	case *ast.InlineFragment:
		directives, removed := withoutDeferDirective(sel.Directives)
		set, changed := s.selections(sel.SelectionSet)
		if !removed && !changed {
			return sel
		}
		c := *sel
		c.Directives, c.SelectionSet = directives, set
		return &c
	case *ast.FragmentSpread:
		directives, removed := withoutDeferDirective(sel.Directives)
		def := s.fragment(sel.Name)
		if !removed && (def == nil || def == sel.Definition) {
			return sel
		}
		c := *sel
		c.Directives = directives
		if def != nil {
			c.Definition = def
		}
		return &c
	}
	return sel
}

// withoutDeferDirective returns directives without @defer, and whether it
// had one.
func withoutDeferDirective(directives ast.DirectiveList) (ast.DirectiveList, bool) {
	if directives.ForName("defer") == nil {
		return directives, false
	}
	out := make(ast.DirectiveList, 0, len(directives)-1)
	for _, d := range directives {
		if d.Name != "defer" {
			out = append(out, d)
		}
	}
	return out, true
}

// initialResult is the first payload of an operation delivered in
// increments: a GraphQL response that says whether increments follow.
type initialResult struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data"`
	HasNext    bool            `json:"hasNext"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

// subsequentResult is every later payload: the results of deferred
// fragments, each with where its data goes, and whether more follow. Errors
// holds what ended the delivery early, and nothing else.
type subsequentResult struct {
	Incremental []incrementalResult `json:"incremental,omitempty"`
	Errors      gqlerror.List       `json:"errors,omitempty"`
	HasNext     bool                `json:"hasNext"`
	Extensions  map[string]any      `json:"extensions,omitempty"`
}

// incrementalResult is the result of one deferred fragment: the fields it
// selects of the object at Path (null when one of its non-null fields
// failed), and the errors of those fields (with their full paths).
type incrementalResult struct {
	Data   json.RawMessage `json:"data"`
	Path   ast.Path        `json:"path"`
	Label  string          `json:"label,omitempty"`
	Errors gqlerror.List   `json:"errors,omitempty"`
}

// hasNext reads gqlgen's hasNext: absent when nothing was deferred.
func hasNext(resp *graphql.Response) bool { return resp.HasNext != nil && *resp.HasNext }

// initialPayload is gqlgen's first response as incremental delivery's.
func initialPayload(resp *graphql.Response) initialResult {
	return initialResult{Errors: resp.Errors, Data: resp.Data, HasNext: hasNext(resp), Extensions: resp.Extensions}
}

// subsequentPayload is a later response of gqlgen, one deferred
// fragment's result with its Path and Label, as incremental delivery's.
func subsequentPayload(resp *graphql.Response) subsequentResult {
	path := resp.Path
	if path == nil {
		path = ast.Path{}
	}
	return subsequentResult{
		Incremental: []incrementalResult{{Data: resp.Data, Path: path, Label: resp.Label, Errors: resp.Errors}},
		HasNext:     hasNext(resp),
		Extensions:  resp.Extensions,
	}
}

// results streams the results of a query or mutation to st: its one
// response, or, when it is delivered in increments, its increments, each
// as the stream's next message. opCtx is the operation's context, which its
// deadline (RequestTimeout) ends; ctx is the stream's.
//
// An operation whose deadline passes before its last deferred result ends
// with an error of its own, SERVICE_UNAVAILABLE with "hasNext": false, and
// the stream's complete, so that the client stops waiting. The deferred
// fields' resolvers see their context end at the deadline too.
func (s *eventStreams) results(ctx, opCtx context.Context, st *eventStream, responses graphql.ResponseHandler, incremental bool) {
	more := false // the last payload said more would follow
	for first := true; ; first = false {
		resp := responses(opCtx)
		if resp == nil {
			break
		}
		switch {
		case !incremental:
			st.next(opCtx, resp)
		case first:
			st.send(opCtx, initialPayload(resp))
		default:
			st.send(opCtx, subsequentPayload(resp))
		}
		more = incremental && hasNext(resp)
	}
	if ctx.Err() != nil {
		// The client went away, or the server is shutting down.
		return
	}
	if more {
		s.log.WarnContext(ctx, "graphql: deferred results cut short by the request timeout",
			"request_id", obsqra.ClientFromContext(ctx).RequestID)
		st.send(ctx, subsequentResult{Errors: gqlerror.List{s.presentError(ctx, obsqra.Errorf(obsqra.EUNAVAILABLE,
			"the request timed out before every deferred result was delivered"))}})
	}
	st.complete()
}

// send sends payload, a result of incremental delivery, as the stream's
// next message, as next does gqlgen's responses.
func (st *eventStream) send(ctx context.Context, payload any) {
	data, err := json.Marshal(payload)
	if err != nil {
		client := obsqra.ClientFromContext(ctx)
		data, _ = json.Marshal(wire.Response(wire.Internal(client.RequestID, client.TraceID)))
	}
	st.write(st.format.Frame(data))
}
