package store

import (
	"context"
	"fmt"
)

// ExecRaw runs one SQL statement as it is, outside any unit of work, with
// the database's own rules applied (triggers, constraints, privileges). It
// exists for tests that act as a database administrator would, e.g. to
// tamper with history and check that verification notices; the server
// never calls it. Errors: only internal ones.
func (db *DB) ExecRaw(ctx context.Context, query string, args ...any) error {
	if _, err := db.conn().exec(ctx, query, args...); err != nil {
		return fmt.Errorf("exec raw statement: %w", err)
	}
	return nil
}
