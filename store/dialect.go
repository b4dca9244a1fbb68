package store

import (
	"database/sql/driver"
	"fmt"
	"io/fs"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
)

// Dialect names returned by (*DB).Dialect.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// sqliteTimeLayout is how the store writes every time on SQLite: TEXT in UTC
// with exactly six fractional digits and a literal Z, e.g.
// "2025-11-25T19:45:00.123456Z". The width is fixed, so comparing and sorting
// the text in SQL is comparing and sorting the instants, and microseconds are
// PostgreSQL's resolution, so both dialects return identical values. The
// driver never sees a time.Time on SQLite: the store formats and parses the
// text itself, whatever the driver's own time settings are.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// eventLockKey is the pg_advisory_xact_lock key that serialises outbox
// appends on PostgreSQL ("obsqra/events" in ASCII, for a reader of pg_locks).
const eventLockKey int64 = 0x6f62737172616576

// dialect holds everything that differs between PostgreSQL and SQLite once
// the migrations have run. Queries are written once with ? placeholders.
type dialect struct {
	name string
	// bind is the sqlx bindvar type queries are rebound to.
	bind int
	// goose is goose's name of the dialect; migrations holds its SQL files.
	goose      goose.Dialect
	migrations string
	// forUpdate ends a SELECT that locks its rows for the rest of the
	// transaction. SQLite has no row locks: a transaction there begins
	// IMMEDIATE and so already holds the database's only write lock.
	forUpdate string
	// skipLocked ends a SELECT that locks its rows for the rest of the
	// transaction and passes over rows another transaction has locked, so
	// that concurrent claimers of a queue each take other rows; empty on
	// SQLite, whose writers run one at a time.
	skipLocked string
	// eventLock is run before an outbox insert so that ids become visible in
	// id order; empty where writers are serialised anyway (SQLite).
	eventLock string
	// eventNotify, run after an outbox insert, tells every process sharing
	// the database that events committed (PostgreSQL delivers a NOTIFY at
	// commit, and not at all on rollback); empty where one process owns the
	// database (SQLite), which signals in process instead.
	eventNotify string
}

var (
	postgresDialect = &dialect{
		name:        DialectPostgres,
		bind:        sqlx.DOLLAR,
		goose:       goose.DialectPostgres,
		migrations:  "migrations/postgres",
		forUpdate:   " FOR UPDATE",
		skipLocked:  " FOR UPDATE SKIP LOCKED",
		eventLock:   "SELECT pg_advisory_xact_lock(?)",
		eventNotify: "SELECT pg_notify('" + EventsChannel + "', ?)",
	}
	sqliteDialect = &dialect{
		name:       DialectSQLite,
		bind:       sqlx.QUESTION,
		goose:      goose.DialectSQLite3,
		migrations: "migrations/sqlite",
	}
)

// rebind turns the ? placeholders of query into the dialect's own.
func (d *dialect) rebind(query string) string { return sqlx.Rebind(d.bind, query) }

// migrationFS returns the dialect's migration files.
func (d *dialect) migrationFS() (fs.FS, error) { return fs.Sub(migrationFiles, d.migrations) }

// stamp returns t as the store keeps times: UTC, truncated to microseconds.
func stamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// timeArg returns t as a query argument in the dialect's representation.
func (d *dialect) timeArg(t time.Time) driver.Value {
	t = stamp(t)
	if d == sqliteDialect {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// nullTimeArg is timeArg for a nullable column: nil stays NULL.
func (d *dialect) nullTimeArg(t *time.Time) driver.Value {
	if t == nil {
		return nil
	}
	return d.timeArg(*t)
}

// timeScanner reads a NOT NULL time column of either dialect into *dst, as
// UTC truncated to microseconds (nullTimeScanner reads a nullable one).
type timeScanner struct {
	dst *time.Time
}

func (s timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*s.dst = stamp(v)
		return nil
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	}
	return fmt.Errorf("scan time from %T", src)
}

func (s timeScanner) parse(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("scan time: %w", err)
	}
	*s.dst = stamp(t)
	return nil
}

// scanTime returns a scanner for a NOT NULL time column.
func scanTime(dst *time.Time) timeScanner { return timeScanner{dst: dst} }
