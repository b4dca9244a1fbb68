package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
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

// UnavailableRetryAfter is the RetryAfterSeconds of an EUNAVAILABLE error:
// long enough for a restarted or failed-over database to come back, short
// enough that a client retrying by hand does not wait for nothing.
const UnavailableRetryAfter = 5

// unavailableMessage is what a client learns of an unavailable database.
const unavailableMessage = "the database is not answering; try again shortly"

// translate is the store's one place that interprets driver errors:
//   - sql.ErrNoRows becomes ENOTFOUND "<what> not found";
//   - a unique violation becomes ECONFLICT, with the message of the
//     violated constraint in uniqueConflicts or "<what> already exists";
//   - text PostgreSQL refuses to store (a NUL character, invalid UTF-8, or
//     "\u0000" in jsonb) becomes EINVALID: the API refuses such input where
//     it enters (obsqra.CheckText), so this is a second line for text that
//     came in another way, never an internal error;
//   - a database that did not answer in time or refused the connection
//     (see unavailable) becomes EUNAVAILABLE, with the cause in Err;
//   - anything else, a cancelled context included (the client went away:
//     not the database's fault), is wrapped as "<op>: <err>" and stays
//     internal.
func translate(err error, op, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if e, ok := errors.AsType[*obsqra.Error](err); ok && e.Code == obsqra.EUNAVAILABLE {
		return err // translated already, by an inner call
	}
	if unavailable(err) {
		return &obsqra.Error{
			Code:              obsqra.EUNAVAILABLE,
			Message:           unavailableMessage,
			RetryAfterSeconds: UnavailableRetryAfter,
			Err:               fmt.Errorf("%s: %w", op, err),
		}
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

// unavailable reports whether err says the database did not answer in
// time or could not be reached, rather than that the statement was wrong:
//   - the context's deadline passed (a request's or a job's, while waiting
//     for a pooled connection, connecting, or for a statement's result);
//   - PostgreSQL cancelled the statement (57014: statement_timeout, or the
//     cancel request sent when a deadline passed), timed out on a lock
//     (55P03), is shutting down or starting up (57P01-57P03), has no
//     connection slot left (53300), or lost the connection (class 08);
//   - the connection failed: refused, reset, timed out, closed mid-way
//     (net.Error, io.EOF), or broken (driver.ErrBadConn, sql.ErrConnDone);
//   - SQLite found the database locked by another process for longer than
//     its busy timeout.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if pqErr, ok := errors.AsType[*pq.Error](err); ok {
		switch code := string(pqErr.Code); code {
		case "57014", "55P03", "57P01", "57P02", "57P03", "53300":
			return true
		default:
			return strings.HasPrefix(code, "08")
		}
	}
	if liteErr, ok := errors.AsType[*sqlite.Error](err); ok {
		switch liteErr.Code() & 0xff { // the primary code of an extended one
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	return false
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
