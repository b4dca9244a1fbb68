package obsqra

import (
	"io"
	"strconv"
)

// The enums of the schema are string types; these are their GraphQL
// encodings.

// marshalEnum writes v as a GraphQL enum value.
func marshalEnum[T ~string](w io.Writer, v T) { io.WriteString(w, strconv.Quote(string(v))) }

// unmarshalEnum sets *dst to the GraphQL enum value v when valid accepts
// it; otherwise it is EINVALID naming the schema's type, name.
func unmarshalEnum[T ~string](dst *T, v any, valid func(T) bool, name string) error {
	s, ok := v.(string)
	if !ok || !valid(T(s)) {
		return Errorf(EINVALID, "%v is not a valid %s", v, name)
	}
	*dst = T(s)
	return nil
}
