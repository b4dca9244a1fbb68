package scalar_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph/scalar"
)

// at returns ctx as gqlgen makes it while it reads the argument input of a
// field at the given steps within it (names and list indexes).
func at(steps ...any) context.Context {
	ctx := graphql.WithFieldContext(context.Background(), &graphql.FieldContext{Field: graphql.CollectedField{}})
	for _, s := range steps {
		switch s := s.(type) {
		case string:
			ctx = graphql.WithPathContext(ctx, graphql.NewPathWithField(s))
		case int:
			ctx = graphql.WithPathContext(ctx, graphql.NewPathWithIndex(s))
		}
	}
	return ctx
}

// TestUnmarshalText: String and ID inputs refuse what no database stores,
// naming the input by its path within the argument.
func TestUnmarshalText(t *testing.T) {
	t.Parallel()
	for name, unmarshal := range map[string]func(context.Context, any) (string, error){
		"UnmarshalString": scalar.UnmarshalString,
		"UnmarshalID":     scalar.UnmarshalID,
	} {
		for _, tt := range []struct {
			ctx     context.Context
			in      any
			want    string
			message string // "" when in is taken
		}{
			{at("slug"), "zklend", "zklend", ""},
			{at("input", "fullName"), "Ada ☃", "Ada ☃", ""},
			{at("input", "fullName"), "a\x00b", "", "input.fullName must not contain the NUL character (U+0000)"},
			{at("protocols", 2), "\x00", "", "protocols[2] must not contain the NUL character (U+0000)"},
			{at("input", 0, "protocol"), "zk\xfflend", "", "input[0].protocol must be valid UTF-8 text"},
			{at("input", "weights", 1, "protocol"), "\x00", "", "input.weights[1].protocol must not contain the NUL character (U+0000)"},
			{context.Background(), "\x00", "", "the value must not contain the NUL character (U+0000)"},
			{at("id"), []any{}, "", "id must be a string"},
		} {
			got, err := unmarshal(tt.ctx, tt.in)
			if tt.message == "" && (err != nil || got != tt.want) ||
				tt.message != "" && (obsqra.ErrorCode(err) != obsqra.EINVALID || obsqra.ErrorMessage(err) != tt.message) {
				t.Errorf("%s(%q) = %q, %v; want %q, %q", name, tt.in, got, err, tt.want, tt.message)
			}
		}
	}
}

func TestUnmarshalJSONObject(t *testing.T) {
	t.Parallel()
	got, err := scalar.UnmarshalJSONObject(at("input", "details"), map[string]any{"a": []any{json.Number("1"), "é"}})
	if err != nil || string(got) != `{"a":[1,"é"]}` {
		t.Errorf("UnmarshalJSONObject = %s, %v", got, err)
	}
	for _, tt := range []struct {
		in      any
		message string
	}{
		{"{}", "input.details must be a JSON object"},
		{[]any{}, "input.details must be a JSON object"},
		{map[string]any{"a": map[string]any{"\x00": 1}}, "a key of input.details must not contain the NUL character (U+0000)"},
		{map[string]any{"a": []any{"\x00"}}, "input.details must not contain the NUL character (U+0000)"},
		{map[string]any{"a": json.Number("1e-999")}, `input.details holds the number "1e-999", which is out of range`},
	} {
		_, err := scalar.UnmarshalJSONObject(at("input", "details"), tt.in)
		if obsqra.ErrorCode(err) != obsqra.EINVALID || obsqra.ErrorMessage(err) != tt.message {
			t.Errorf("UnmarshalJSONObject(%#v) = %v, want %q", tt.in, err, tt.message)
		}
	}
}
