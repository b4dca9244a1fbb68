package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/lib/pq"
	"github.com/obsqra/obsqra"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// uniqueConflicts names, for the unique constraints a client can run into,
// what the conflict means to them. A constraint is known by its name on
// PostgreSQL (the migrations name them) and by its table.column list on
// SQLite, whose error messages carry no constraint name.
var uniqueConflicts = []struct {
	postgres, sqlite, message string
}{
	{"users_email_key_unique", "users.email_key", "email is already registered"},
	{"users_wallet_address_unique", "users.wallet_address", "wallet address is already linked to another user"},
}

// translate is the store's one place that interprets driver errors:
//   - sql.ErrNoRows becomes ENOTFOUND "<what> not found";
//   - a unique violation becomes ECONFLICT, with the message of the
//     violated constraint in uniqueConflicts or "<what> already exists";
//   - anything else is wrapped as "<op>: <err>" and stays internal.
func translate(err error, op, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return obsqra.Errorf(obsqra.ENOTFOUND, "%s not found", what)
	}
	if constraint, ok := uniqueViolation(err); ok {
		for _, c := range uniqueConflicts {
			if constraint == c.postgres || constraint == c.sqlite {
				return obsqra.Errorf(obsqra.ECONFLICT, "%s", c.message)
			}
		}
		return obsqra.Errorf(obsqra.ECONFLICT, "%s already exists", what)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// uniqueViolation reports whether err is a unique (or primary key) violation
// and names the constraint: its name on PostgreSQL, "table.column[, …]" on
// SQLite.
func uniqueViolation(err error) (constraint string, ok bool) {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return pqErr.Constraint, pqErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			// "constraint failed: UNIQUE constraint failed: users.email_key (2067)"
			msg := liteErr.Error()
			const marker = "constraint failed: "
			if i := strings.LastIndex(msg, marker); i >= 0 {
				constraint, _, _ = strings.Cut(msg[i+len(marker):], " (")
			}
			return constraint, true
		}
	}
	return "", false
}
