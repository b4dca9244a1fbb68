// Package scalar holds the marshalling of GraphQL scalars whose Go type is
// not the project's own (time.Time), so that gqlgen.yml can bind them to
// functions that speak the project's errors.
package scalar

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
)

// The range of a Time input: every instant the product has a use for, and
// nothing the databases cannot store (PostgreSQL refuses some timestamps
// that Go parses; SQLite stores text that must sort as time).
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// MarshalTime writes t as gqlgen's graphql.MarshalTime does, so responses
// keep their format: an RFC 3339 string with as many fraction digits as t
// has, or null for the zero time.
func MarshalTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads a Time input: an RFC 3339 string (fraction digits
// optional) from 1970 through 9999, returned in UTC. gqlgen's own
// graphql.UnmarshalTime also took "YYYY-MM-DD hh:mm:ss" without a zone and
// the empty string (as the zero time), and failed with an error that has
// no code, which the client saw as an internal error.
// Errors: EINVALID for anything else.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, obsqra.Errorf(obsqra.EINVALID, "a Time must be an RFC 3339 string such as \"2026-11-25T19:40:00Z\"")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, obsqra.Errorf(obsqra.EINVALID, "%s is not an RFC 3339 time such as \"2026-11-25T19:40:00Z\"", obsqra.QuoteInput(s))
	}
	t = t.UTC()
	if t.Before(minTime) || !t.Before(maxTime) {
		return time.Time{}, obsqra.Errorf(obsqra.EINVALID, "%s is not between 1970 and 9999", obsqra.QuoteInput(s))
	}
	return t, nil
}
