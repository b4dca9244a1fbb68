package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// deferredFields are the fields that gqlgen deferred in one operation, by
// the path of the object they belong to. The query handler that
// cmd/gqlgen-obsqra generates (root_.generated.go) records each deferred
// group in its ProcessDeferredGroup and leaves the group's fields out of
// every result it writes their object in.
//
// gqlgen writes a deferred field as null in the result that holds its
// object (the initial result, or the increment of an enclosing deferred
// fragment), then its value in an increment of its own. The @defer draft
// that Apollo Client's Defer20220824Handler reads has the field absent until
// its increment comes: Apollo reads a null as the field's value, writes it
// into its cache over the value it had, and reports the result complete
// while the field is still on its way.
//
// The zero value records nothing yet; it is safe for concurrent use, as
// gqlgen resolves objects, and records their deferred groups, on several
// goroutines.
type deferredFields struct {
	mu   sync.Mutex
	root *deferredNode
}

// deferredNode is the object at one path of the result, or a list on the
// way to one.
type deferredNode struct {
	// children are the nodes below, by response name (string) or list
	// index (int).
	children map[any]*deferredNode
	// fields are the response names of the object's deferred fields.
	fields map[string]bool
}

// record notes the fields of dg, a deferred group not yet dispatched, as
// deferred in the object at dg.Path.
func (d *deferredFields) record(dg graphql.DeferredGroup) {
	names := fieldNames(dg.FieldSet)
	if len(names) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.root == nil {
		d.root = &deferredNode{}
	}
	n := d.root
	for _, step := range dg.Path {
		n = n.child(pathKey(step), true)
	}
	if n.fields == nil {
		n.fields = map[string]bool{}
	}
	for _, name := range names {
		n.fields[name] = true
	}
}

// omit returns data, a result written at path (nil for the initial
// result; an increment's path otherwise), without the deferred fields of
// the objects it holds. The object at an increment's path holds the
// deferred fields themselves: they stay. data that is not the JSON expected
// comes back as it is.
func (d *deferredFields) omit(data []byte, path ast.Path) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.root
	for _, step := range path {
		if n == nil {
			break
		}
		n = n.child(pathKey(step), false)
	}
	if n == nil {
		return data
	}
	var out bytes.Buffer
	out.Grow(len(data))
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := n.rewrite(dec, &out, path != nil); err != nil {
		return data
	}
	return out.Bytes()
}

// child returns n's child at key, made when create is set and it is missing
// (nil otherwise).
func (n *deferredNode) child(key any, create bool) *deferredNode {
	c := n.children[key]
	if c == nil && create {
		if n.children == nil {
			n.children = map[any]*deferredNode{}
		}
		c = &deferredNode{}
		n.children[key] = c
	}
	return c
}

// errNotJSON is a result that does not decode as expected.
var errNotJSON = errors.New("unexpected JSON in a result")

// rewrite copies the value dec is at to out, leaving out the deferred
// fields of n and of the nodes below it (n's own when keepOwn is not set).
// The values that hold no deferred field are copied as they are.
func (n *deferredNode) rewrite(dec *json.Decoder, out *bytes.Buffer, keepOwn bool) error {
	if n == nil {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		out.Write(raw)
		return nil
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		out.WriteByte('{')
		first := true
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			name, ok := tok.(string)
			if !ok {
				return errNotJSON
			}
			if !keepOwn && n.fields[name] {
				var skipped json.RawMessage
				if err := dec.Decode(&skipped); err != nil {
					return err
				}
				continue
			}
			if !first {
				out.WriteByte(',')
			}
			first = false
			key, _ := json.Marshal(name)
			out.Write(key)
			out.WriteByte(':')
			if err := n.children[name].rewrite(dec, out, false); err != nil {
				return err
			}
		}
		out.WriteByte('}')
	case json.Delim('['):
		out.WriteByte('[')
		for i := 0; dec.More(); i++ {
			if i > 0 {
				out.WriteByte(',')
			}
			if err := n.children[i].rewrite(dec, out, false); err != nil {
				return err
			}
		}
		out.WriteByte(']')
	case nil:
		out.WriteString("null") // an object that is null: nothing to leave out
		return nil
	default:
		return errNotJSON
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// pathKey is step as a key of deferredNode.children.
func pathKey(step ast.PathElement) any {
	switch s := step.(type) {
	case ast.PathIndex:
		return int(s)
	case ast.PathName:
		return string(s)
	}
	return step
}

// fieldNames returns the response names of the fields of fs, a deferred
// group's field set before its dispatch. gqlgen keeps a field set's fields
// to itself, and writes them, with their values, only in MarshalGQL: fs is
// written with a placeholder in each value, which the dispatch has yet to
// set, then given its nil values back. A field set whose values are set
// already is not one this knows how to read: none.
func fieldNames(fs *graphql.FieldSet) []string {
	for _, v := range fs.Values {
		if v != nil {
			return nil
		}
	}
	for i := range fs.Values {
		fs.Values[i] = graphql.Null
	}
	var b bytes.Buffer
	fs.MarshalGQL(&b)
	clear(fs.Values)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b.Bytes(), &fields); err != nil {
		return nil
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	return names
}
