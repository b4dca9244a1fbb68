package graph

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// group is a deferred group at path of fields with the response names
// names, before its dispatch.
func group(path ast.Path, names ...string) graphql.DeferredGroup {
	fs := graphql.NewFieldSet(nil)
	for _, name := range names {
		fs.AddField(graphql.CollectedField{Field: &ast.Field{Name: name, Alias: name}})
	}
	return graphql.DeferredGroup{Path: path, FieldSet: fs}
}

func TestFieldNames(t *testing.T) {
	t.Parallel()
	g := group(nil, "a", "b", "a")
	names := fieldNames(g.FieldSet)
	if len(names) != 2 || !(names[0] == "a" && names[1] == "b" || names[0] == "b" && names[1] == "a") {
		t.Errorf("fieldNames = %v, want a and b", names)
	}
	for i, v := range g.FieldSet.Values {
		if v != nil {
			t.Errorf("value %d = %v after fieldNames, want nil for the dispatch", i, v)
		}
	}
	g.FieldSet.Values[0] = graphql.MarshalInt(1)
	if names := fieldNames(g.FieldSet); names != nil {
		t.Errorf("fieldNames of a dispatched field set = %v, want none", names)
	}
}

func TestDeferredFieldsOmit(t *testing.T) {
	t.Parallel()
	protocol := func(i int, more ...ast.PathElement) ast.Path {
		return append(ast.Path{ast.PathName("protocols"), ast.PathIndex(i)}, more...)
	}
	for _, tt := range []struct {
		name   string
		groups []graphql.DeferredGroup
		data   string
		path   ast.Path
		want   string
	}{
		{
			name: "nothing deferred",
			data: `{"protocols":[{"slug":"a","latestRisk":null}]}`,
			want: `{"protocols":[{"slug":"a","latestRisk":null}]}`,
		},
		{
			name:   "initial result",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk"), group(protocol(1), "latestRisk", "name")},
			data:   `{"protocols":[{"slug":"a","latestRisk":null},{"slug":"b","name":null,"latestRisk":null,"id":"x"}]}`,
			want:   `{"protocols":[{"slug":"a"},{"slug":"b","id":"x"}]}`,
		},
		{
			name:   "values copied as they are",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk")},
			data:   `{"protocols":[{"slug":"a\u00e9\"<\u2028","n":1.50,"latestRisk":null,"list":[1, {"x":null}]}],"other":{"latestRisk":null}}`,
			want:   `{"protocols":[{"slug":"a\u00e9\"<\u2028","n":1.50,"list":[1, {"x":null}]}],"other":{"latestRisk":null}}`,
		},
		{
			name:   "increment keeps its own fields, not those deferred below",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk"), group(protocol(0, ast.PathName("latestRisk")), "observedAt")},
			path:   protocol(0),
			data:   `{"latestRisk":{"score":1,"observedAt":null}}`,
			want:   `{"latestRisk":{"score":1}}`,
		},
		{
			name:   "increment of an object with nothing deferred below",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk")},
			path:   protocol(1),
			data:   `{"latestRisk":null}`,
			want:   `{"latestRisk":null}`,
		},
		{
			name:   "a null object",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk")},
			data:   `{"protocols":[null]}`,
			want:   `{"protocols":[null]}`,
		},
		{
			name:   "not the JSON expected",
			groups: []graphql.DeferredGroup{group(protocol(0), "latestRisk")},
			data:   `{"protocols":[7]}`,
			want:   `{"protocols":[7]}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var d deferredFields
			for _, g := range tt.groups {
				d.record(g)
			}
			if got := string(d.omit([]byte(tt.data), tt.path)); got != tt.want {
				t.Errorf("omit(%s, %v) = %s, want %s", tt.data, tt.path, got, tt.want)
			}
		})
	}
}
