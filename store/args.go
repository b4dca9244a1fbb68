package store

import (
	"fmt"

	"github.com/obsqra/obsqra"
)

// The query arguments of nullable columns, the counterparts of the
// scanners in null.go: a zero value or a nil pointer is stored as NULL.
// (Times go through the dialect: timeArg, nullTimeArg.)

// idArg returns an id as a query argument: NULL for 0.
func idArg(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// textArg returns s as a query argument: NULL for "".
func textArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// stringArg returns the text of *v (a decimal, a felt) as a query
// argument: NULL for nil.
func stringArg[T fmt.Stringer](v *T) any {
	if v == nil {
		return nil
	}
	return (*v).String()
}

// jsonObjectArg returns a JSON object as a query argument: NULL for none.
// It is a string: lib/pq would send []byte as bytea.
func jsonObjectArg(j obsqra.JSONObject) any {
	if len(j) == 0 {
		return nil
	}
	return string(j)
}

// execArg returns an execution status as a query argument: NULL for nil.
func execArg(e *obsqra.ExecutionStatus) any {
	if e == nil {
		return nil
	}
	return string(*e)
}

// boolArg returns *b as a query argument: NULL for nil. A bool is stored
// as boolean on PostgreSQL and INTEGER 0 or 1 on SQLite (the drivers
// convert it).
func boolArg(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
