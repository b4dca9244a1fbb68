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
//   - text PostgreSQL refuses to store (a NUL character, invalid UTF-8, or
//     "\u0000" in jsonb) becomes EINVALID: the API refuses such input where
//     it enters (obsqra.CheckText), so this is a second line for text that
//     came in another way, never an internal error;
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
	if untranslatableText(err) {
		return obsqra.Errorf(obsqra.EINVALID, "%s holds text the database cannot store (a NUL character or invalid UTF-8)", what)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// untranslatableText reports whether err is PostgreSQL refusing text:
// character_not_in_repertoire (22021: a NUL byte or invalid UTF-8 in text)
// or untranslatable_character (22P05: "\u0000" in jsonb). SQLite stores
// any bytes.
func untranslatableText(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && (pqErr.Code == "22021" || pqErr.Code == "22P05")
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
