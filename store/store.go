// Package store keeps the domain of package obsqra in PostgreSQL or SQLite.
// It is the only package that writes SQL. Reads of one table are methods of
// both *DB and *Tx; writes are methods of *Tx only, so that a change and its
// outbox event always commit together in one unit of work (WithTx).
//
// Driver errors are translated in one place: a missing row is ENOTFOUND, a
// unique violation is ECONFLICT, and anything else is an internal error that
// wraps the driver's.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the "postgres" driver
	"github.com/obsqra/obsqra"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// urlForms names the forms of DATABASE_URL that Open accepts, for errors.
const urlForms = "postgres://…, postgresql://…, sqlite:PATH, sqlite://PATH, file:PATH or a file path ending in .db"

// sqliteOptions are the driver parameters of every SQLite connection:
//   - busy_timeout (appended by OpenWith): a statement that finds the database locked (by
//     another process, e.g. `obsqra migrate`) retries for up to
//     Options.StatementTimeout (default 10 s) before failing with
//     SQLITE_BUSY (EUNAVAILABLE), instead of failing at once;
//   - foreign_keys(1): SQLite ignores REFERENCES unless asked, per connection;
//   - journal_mode(WAL): readers do not block the writer nor it them;
//   - synchronous(FULL): every commit is fsynced to the WAL before it is
//     acknowledged, so an acknowledged change survives a power loss too.
//     NORMAL would be faster and still never corrupt, but could undo the
//     last acknowledged commits, and nothing acknowledged may be lost.
//   - _txlock=immediate: every read-write transaction begins IMMEDIATE,
//     taking the write lock up front. A DEFERRED transaction that reads and
//     then writes can fail with SQLITE_BUSY at its first write whatever the
//     busy timeout, because waiting could deadlock with another such
//     transaction; IMMEDIATE waits for the lock at BEGIN instead.
const sqliteOptions = "_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(FULL)" +
	"&_txlock=immediate"

// Pool sizes. SQLite in WAL mode serves several readers at once but one
// writer; the store serialises its writers itself (see DB.writeSem).
const (
	sqliteMaxConns          = 8
	sqliteBusyTimeout       = 10 * time.Second
	postgresMaxConns        = 20
	postgresMaxIdle         = 10
	postgresConnMaxIdle     = 5 * time.Minute
	postgresConnMaxLifetime = 0 // forever
)

// Options tune a database's connections. The zero value is what Open uses:
// no statement or connect timeout, and the default pool.
type Options struct {
	// StatementTimeout bounds each statement on the server: PostgreSQL's
	// statement_timeout, set for every connection (a statement past it
	// fails with 57014, EUNAVAILABLE; WithStatementTimeout changes it for
	// one context), and SQLite's busy_timeout, how long a statement waits
	// for a database another process has locked. 0: none on PostgreSQL,
	// 10 s on SQLite. Whatever it is, a statement also ends with its
	// context's deadline, on both dialects.
	StatementTimeout time.Duration
	// ConnectTimeout bounds opening a PostgreSQL connection, TCP connect
	// and handshake (lib/pq's connect_timeout). 0: none (the context's
	// deadline still ends it when a request is waiting for it).
	ConnectTimeout time.Duration
	// MaxOpenConns, MaxIdleConns, ConnMaxLifetime and ConnMaxIdleTime size
	// the PostgreSQL pool (database/sql's settings of the same names); zero
	// or negative: 20 connections, 10 idle, no lifetime, 5 minutes idle.
	// SQLite's pool is fixed: 8 connections (one writer at a time anyway).
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
	// TracerProvider, when set, traces the statements run inside a
	// recorded span, one span each (see trace.go). Default nil: none.
	TracerProvider trace.TracerProvider
}

// DB is an open database of either dialect. It is safe for concurrent use.
type DB struct {
	db      *sqlx.DB
	dialect *dialect

	// writeSem, on SQLite only, lets one unit of work at a time into the
	// database. SQLite would serialise them anyway; waiting here, queued
	// roughly in arrival order, is cheaper and fairer than SQLite's
	// busy-retry loop with sleeps of up to 100 ms, and the wait ends when
	// the context does. Other processes (a migration) still meet
	// busy_timeout.
	writeSem chan struct{}

	// stmts holds the prepared statements of the store's queries.
	stmts *stmtCache
	// tracer traces statements (Options.TracerProvider), or is nil.
	tracer trace.Tracer

	// dsn is what the driver was opened with, for ListenEvents.
	dsn string
	// committed is broadcast after each unit of work that appended events
	// commits (see EventsCommitted).
	committed broadcast
	// mailsQueued is broadcast after each unit of work that queued mails
	// commits (see MailsQueued).
	mailsQueued broadcast
	// requestsQueued is broadcast after each unit of work that queued
	// email requests commits (see EmailRequestsQueued).
	requestsQueued broadcast

	// statements counts the SQL statements run through the store, for
	// tests that check a request's statement count (see Statements).
	statements atomic.Int64
	// eventsCommitted counts the outbox events of committed units of
	// work, listenReconnects the LISTEN connection's reconnections (see
	// Stats).
	eventsCommitted, listenReconnects atomic.Int64
	// lastLocalEvent is the highest outbox id a committed unit of work of
	// this process appended (see LastLocalEventID).
	lastLocalEvent atomic.Int64

	// Now returns the current time; the store stamps every time it sets with
	// it. It defaults to time.Now; tests replace it before using the DB.
	Now func() time.Time
}

// Open opens the database named by url, which is one of
// postgres://… or postgresql://… (PostgreSQL through lib/pq), or
// sqlite:PATH, sqlite://PATH, file:PATH or a bare PATH ending in .db
// (SQLite; the file and its parent directory are created if missing).
// It checks that the database answers but does not migrate it (see Migrate).
// Errors: EINVALID for a URL of another form; otherwise internal ones (the
// database does not answer, the directory cannot be created).
func Open(ctx context.Context, url string) (*DB, error) {
	return OpenWith(ctx, url, Options{})
}

// OpenWith is Open with the connections tuned by opts.
func OpenWith(ctx context.Context, url string, opts Options) (*DB, error) {
	d, dsn, path, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	db := &DB{dialect: d, dsn: dsn, Now: time.Now, tracer: tracerOf(opts.TracerProvider)}
	switch d {
	case sqliteDialect:
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("create directory of sqlite database %s: %w", path, err)
		}
		busy := sqliteBusyTimeout
		if opts.StatementTimeout > 0 {
			busy = opts.StatementTimeout
		}
		db.dsn = fmt.Sprintf("%s&_pragma=busy_timeout(%d)", dsn, busy.Milliseconds())
		if db.db, err = sqlx.Open("sqlite", db.dsn); err != nil {
			return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
		}
		db.db.SetMaxOpenConns(sqliteMaxConns)
		db.db.SetMaxIdleConns(sqliteMaxConns)
		db.writeSem = make(chan struct{}, 1)
	case postgresDialect:
		connector, err := newPGConnector(dsn, opts)
		if err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "DATABASE_URL: %s", err.Error())
		}
		db.db = sqlx.NewDb(sql.OpenDB(connector), "postgres")
		db.db.SetMaxOpenConns(positive(opts.MaxOpenConns, postgresMaxConns))
		db.db.SetMaxIdleConns(positive(opts.MaxIdleConns, postgresMaxIdle))
		db.db.SetConnMaxIdleTime(positive(opts.ConnMaxIdleTime, postgresConnMaxIdle))
		db.db.SetConnMaxLifetime(positive(opts.ConnMaxLifetime, postgresConnMaxLifetime))
		if opts.ConnectTimeout > 0 {
			db.dsn = withConnectTimeout(dsn, opts.ConnectTimeout)
		}
	}
	if err := db.Ping(ctx); err != nil {
		db.db.Close()
		return nil, err
	}
	db.stmts = &stmtCache{db: db.db}
	return db, nil
}

// positive returns v, or def when v is not positive.
func positive[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// withConnectTimeout returns the PostgreSQL URL dsn with connect_timeout
// set to d in whole seconds, rounded up (the form lib/pq's URLs take), for
// the connections the store does not open through its connector (LISTEN).
func withConnectTimeout(dsn string, d time.Duration) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set("connect_timeout", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

// parseURL returns the dialect of a database URL, the DSN its driver takes
// and, for SQLite, the database file's path.
func parseURL(s string) (d *dialect, dsn, path string, err error) {
	switch {
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		return postgresDialect, s, "", nil
	}
	switch {
	case strings.HasPrefix(s, "sqlite://"):
		path = strings.TrimPrefix(s, "sqlite://")
	case strings.HasPrefix(s, "sqlite:"):
		path = strings.TrimPrefix(s, "sqlite:")
	case strings.HasPrefix(s, "file:"):
		path = strings.TrimPrefix(s, "file:")
	case strings.HasSuffix(s, ".db") && !strings.Contains(s, "://"):
		path = s
	default:
		scheme := "no scheme"
		if u, err := url.Parse(s); err == nil && u.Scheme != "" {
			scheme = "scheme " + u.Scheme // never the whole URL: it may hold a password
		}
		return nil, "", "", obsqra.Errorf(obsqra.EINVALID, "unsupported database URL (%s): DATABASE_URL must be %s", scheme, urlForms)
	}
	switch {
	case path == "":
		return nil, "", "", obsqra.Errorf(obsqra.EINVALID, "database URL %q names no file: DATABASE_URL must be %s", s, urlForms)
	case strings.ContainsAny(path, "?#"):
		return nil, "", "", obsqra.Errorf(obsqra.EINVALID, "sqlite database URL %q: the store sets the connection options itself, so the path may not contain ? or #", s)
	case path == ":memory:" || strings.HasPrefix(path, ":memory:"):
		// Every pooled connection would get its own empty database.
		return nil, "", "", obsqra.Errorf(obsqra.EINVALID, "sqlite database URL %q: in-memory databases are not supported, name a file", s)
	}
	return sqliteDialect, path + "?" + sqliteOptions, path, nil
}

// Ping checks that the database answers. Errors: only internal ones.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", db.dialect.name, err)
	}
	return nil
}

// Close closes the database's connections. Errors: only internal ones.
func (db *DB) Close() error {
	db.stmts.close()
	if err := db.db.Close(); err != nil {
		return fmt.Errorf("close %s database: %w", db.dialect.name, err)
	}
	return nil
}

// Dialect returns DialectPostgres or DialectSQLite.
func (db *DB) Dialect() string { return db.dialect.name }

// now returns the store's clock reading as it stores times.
func (db *DB) now() time.Time { return stamp(db.Now()) }

// conn returns the DB as a query target for the unexported query functions.
func (db *DB) conn() conn {
	return conn{ext: db.db, d: db.dialect, stmts: db.stmts, count: &db.statements, tracer: db.tracer}
}

// Statements returns how many SQL statements the store has run since it
// was opened: a test reads it before and after a request to check that the
// request runs a fixed number of them, whatever the size of the data.
func (db *DB) Statements() int64 { return db.statements.Load() }

// Stats are what the store reports of itself, for metrics.
type Stats struct {
	// Pool is the connection pool's state (database/sql's).
	Pool sql.DBStats
	// EventsCommitted counts the outbox events that units of work of this
	// process committed since the DB was opened.
	EventsCommitted int64
	// ListenReconnects counts the times a ListenEvents connection was
	// established again after it dropped (always 0 on SQLite).
	ListenReconnects int64
}

// Stats returns the store's state and counts now.
func (db *DB) Stats() Stats {
	return Stats{Pool: db.db.Stats(), EventsCommitted: db.eventsCommitted.Load(), ListenReconnects: db.listenReconnects.Load()}
}

// Tx is a unit of work: every method runs in one database transaction, which
// WithTx commits or rolls back. A Tx must not be used after fn returns, nor
// from several goroutines at once.
type Tx struct {
	tx *sqlx.Tx
	db *DB
	// appended counts AppendEvent's events: a commit of any then signals
	// EventsCommitted; lastEventID is the highest id among them.
	appended, lastEventID int64
	// mailsQueued counts QueueMail's mails: a commit of any then signals
	// MailsQueued.
	mailsQueued int
	// requestsQueued counts QueueEmailRequest's requests: a commit of any
	// then signals EmailRequestsQueued.
	requestsQueued int
	// stmts are the statements prepared on this transaction's connection,
	// for queries the pool's cache does not hold yet; database/sql closes
	// them when the transaction ends.
	stmts map[string]*sqlx.Stmt
}

// conn returns the Tx as a query target for the unexported query functions.
func (tx *Tx) conn() conn {
	return conn{ext: tx.tx, d: tx.db.dialect, stmts: tx.db.stmts, tx: tx.tx, txStmts: &tx.stmts, count: &tx.db.statements,
		tracer: tx.db.tracer}
}

// now returns the store's clock reading as it stores times.
func (tx *Tx) now() time.Time { return tx.db.now() }

// WithTx runs fn in one transaction: it commits when fn returns nil and
// rolls back otherwise, returning fn's error unchanged so that its code
// survives. If fn panics, the transaction is rolled back and the panic goes
// on. Units of work must not nest: fn uses tx, never db.
// Errors: whatever fn returns; EUNAVAILABLE when the database does not
// answer the begin or the commit in time (a commit that fails so may still
// have committed: the caller reports a failure, never a lost success) or
// ctx's deadline passes while waiting for the SQLite writer; otherwise
// only internal ones.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if db.writeSem != nil {
		select {
		case db.writeSem <- struct{}{}:
			defer func() { <-db.writeSem }()
		case <-ctx.Done():
			return translate(ctx.Err(), "wait for sqlite writer", "transaction")
		}
	}
	stx, err := db.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err, "begin transaction", "transaction")
	}
	tx := &Tx{tx: stx, db: db}
	committed := false
	defer func() {
		if !committed {
			// The rollback's own error is dropped: fn's error or panic is
			// what the caller needs, and a failed rollback still discards
			// the transaction once the connection goes.
			_ = stx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		// database/sql has ended the transaction either way.
		committed = true
		return translate(err, "commit transaction", "transaction")
	}
	committed = true
	if tx.appended > 0 {
		db.eventsCommitted.Add(tx.appended)
		for {
			last := db.lastLocalEvent.Load()
			if last >= tx.lastEventID || db.lastLocalEvent.CompareAndSwap(last, tx.lastEventID) {
				break
			}
		}
		db.committed.signal()
	}
	if tx.mailsQueued > 0 {
		db.mailsQueued.signal()
	}
	if tx.requestsQueued > 0 {
		db.requestsQueued.signal()
	}
	return nil
}

// conn is where a query runs: the pool or one transaction. Every query is
// written once, in a function taking a conn, and exposed on *DB, *Tx or both.
type conn struct {
	ext   sqlx.ExtContext
	d     *dialect
	stmts *stmtCache
	tx    *sqlx.Tx // the transaction, or nil for the pool
	// txStmts are the transaction's own prepared statements.
	txStmts *map[string]*sqlx.Stmt
	count   *atomic.Int64
	// tracer traces the statements run inside a recorded span, or is nil.
	tracer trace.Tracer
}

// stmt returns the prepared statement of query for this conn, or nil to run
// it unprepared (which also reports any error in the query). A transaction
// never prepares into the pool's cache: that needs a second connection from
// the pool, and transactions waiting for one while holding theirs could
// exhaust the pool and deadlock. It uses the cached statement when there is
// one, and otherwise prepares the query on its own connection, once per
// transaction: a unit of work that stores many samples runs the same
// statements thousands of times, and on PostgreSQL an unprepared query with
// arguments costs two round trips where a prepared one costs one.
func (c conn) stmt(ctx context.Context, query string) *sqlx.Stmt {
	if c.tx == nil {
		return c.stmts.get(ctx, query)
	}
	if st, ok := c.stmts.lookup(query); ok {
		return c.tx.StmtxContext(ctx, st)
	}
	if c.txStmts == nil {
		return nil
	}
	if st, ok := (*c.txStmts)[query]; ok {
		return st
	}
	st, err := c.tx.PreparexContext(ctx, query)
	if err != nil {
		return nil
	}
	if *c.txStmts == nil {
		*c.txStmts = make(map[string]*sqlx.Stmt)
	}
	(*c.txStmts)[query] = st
	return st
}

func (c conn) queryRow(ctx context.Context, query string, args ...any) (row *sqlx.Row) {
	c.count.Add(1)
	query = c.d.rebind(query)
	ctx, span := c.startStatement(ctx, query)
	defer func() { span.end(row.Err()) }()
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowxContext(ctx, args...)
	}
	return c.ext.QueryRowxContext(ctx, query, args...)
}

func (c conn) query(ctx context.Context, query string, args ...any) (rows *sql.Rows, err error) {
	c.count.Add(1)
	query = c.d.rebind(query)
	ctx, span := c.startStatement(ctx, query)
	defer func() { span.end(err) }()
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.ext.QueryContext(ctx, query, args...)
}

func (c conn) exec(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	c.count.Add(1)
	query = c.d.rebind(query)
	ctx, span := c.startStatement(ctx, query)
	defer func() { span.end(err) }()
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.ext.ExecContext(ctx, query, args...)
}

// columns joins column names into a select list, each with prefix.
func columns(prefix string, names ...string) string {
	return prefix + strings.Join(names, ", "+prefix)
}

// execCount runs a statement and returns how many rows it changed.
func (c conn) execCount(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := c.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}
