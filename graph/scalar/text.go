package scalar

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
)

// String, ID and JSON inputs are checked here, where every argument and
// variable enters (literal or variable, at any depth of an input object or
// list), so that text no database stores never reaches a service: a NUL
// character or invalid UTF-8 was an internal error on PostgreSQL and was
// stored on SQLite. gqlgen calls these with the argument's path in ctx, so
// the error names the field ("input.fullName must not contain …").

// MarshalString writes a String as gqlgen's graphql.MarshalString does.
func MarshalString(s string) graphql.ContextMarshaler {
	return graphql.ContextWriterFunc(func(_ context.Context, w io.Writer) error {
		graphql.MarshalString(s).MarshalGQL(w)
		return nil
	})
}

// UnmarshalString reads a String input: text that obsqra.CheckText takes.
// Errors: EINVALID naming the field.
func UnmarshalString(ctx context.Context, v any) (string, error) {
	s, err := graphql.UnmarshalString(v)
	if err != nil {
		return "", obsqra.Errorf(obsqra.EINVALID, "%s must be a string", inputPath(ctx))
	}
	if err := obsqra.CheckText(inputPath(ctx), s); err != nil {
		return "", err
	}
	return s, nil
}

// MarshalID writes an ID as gqlgen's graphql.MarshalID does.
func MarshalID(s string) graphql.ContextMarshaler {
	return graphql.ContextWriterFunc(func(_ context.Context, w io.Writer) error {
		graphql.MarshalID(s).MarshalGQL(w)
		return nil
	})
}

// UnmarshalID reads an ID input: text that obsqra.CheckText takes.
// Errors: EINVALID naming the field.
func UnmarshalID(ctx context.Context, v any) (string, error) {
	s, err := graphql.UnmarshalID(v)
	if err != nil {
		return "", obsqra.Errorf(obsqra.EINVALID, "%s must be a string", inputPath(ctx))
	}
	if err := obsqra.CheckText(inputPath(ctx), s); err != nil {
		return "", err
	}
	return s, nil
}

// MarshalJSONObject writes a JSON object as obsqra.JSONObject.MarshalGQL
// does.
func MarshalJSONObject(j obsqra.JSONObject) graphql.ContextMarshaler {
	return graphql.ContextWriterFunc(func(_ context.Context, w io.Writer) error {
		j.MarshalGQL(w)
		return nil
	})
}

// UnmarshalJSONObject reads a JSON input: an object that obsqra.CheckJSON
// takes (no NUL and valid UTF-8 in every key and string at any depth,
// numbers a float64 holds).
// Errors: EINVALID naming the field.
func UnmarshalJSONObject(ctx context.Context, v any) (obsqra.JSONObject, error) {
	field := inputPath(ctx)
	if _, ok := v.(map[string]any); !ok {
		return nil, obsqra.Errorf(obsqra.EINVALID, "%s must be a JSON object", field)
	}
	if err := obsqra.CheckJSON(field, v); err != nil {
		return nil, err
	}
	var j obsqra.JSONObject
	if err := j.UnmarshalGQL(v); err != nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "%s must be a JSON object", field)
	}
	return j, nil
}

// inputPath names the input value being read from the path gqlgen put in
// ctx: the argument, then the fields and list indexes within it, such as
// "input.fullName" or "protocols[2]". The path of the field whose argument
// it is (part of the error's path) is left out.
func inputPath(ctx context.Context) string {
	var steps []string
	for pc := graphql.GetPathContext(ctx); pc != nil; pc = pc.Parent {
		switch {
		case pc.Index != nil:
			steps = append(steps, "["+strconv.Itoa(*pc.Index)+"]")
		case pc.Field != nil:
			steps = append(steps, *pc.Field)
		}
	}
	if len(steps) == 0 {
		return "the value"
	}
	var b strings.Builder
	for i := len(steps) - 1; i >= 0; i-- {
		if b.Len() > 0 && !strings.HasPrefix(steps[i], "[") {
			b.WriteByte('.')
		}
		b.WriteString(steps[i])
	}
	return b.String()
}
