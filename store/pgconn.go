package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// This file makes every PostgreSQL call end when its context does, even when
// the server has stopped answering (a frozen host, a partitioned network).
//
// lib/pq honours a context only by sending the server a cancel request on a
// second connection and then waiting for the server's answer on the first:
// a server that answers nothing (SIGSTOP, a paused VM, a dropped route)
// leaves the call blocked in a socket read until it answers again, whatever
// the deadline. So the store opens its connections itself (pgConnector),
// keeps each one's socket, and when the context of a call ends before the
// call does, sets the socket's deadline to now: the read fails at once, the
// call returns the context's error, and the connection, its state now
// unknown, is discarded by database/sql (IsValid, ResetSession). Waiting for
// a pooled connection already ends with the context (database/sql), and
// opening one is bounded by connect_timeout.
//
// The same wrapper applies a statement timeout other than the connection's
// default when the context asks for one (WithStatementTimeout).

// pgConnector opens lib/pq connections wrapped in pgConn.
type pgConnector struct {
	cfg pq.Config
	// statementTimeout is the connections' default statement_timeout (0:
	// none), as set in cfg's run-time parameters.
	statementTimeout time.Duration
}

// newPGConnector returns a connector for dsn with the options' connect and
// statement timeouts; an option left zero keeps what dsn says.
func newPGConnector(dsn string, opts Options) (*pgConnector, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres URL: %w", err)
	}
	if opts.ConnectTimeout > 0 {
		cfg.ConnectTimeout = opts.ConnectTimeout
	}
	c := &pgConnector{cfg: cfg}
	if opts.StatementTimeout > 0 {
		// Sent in the startup packet: the server applies it from the
		// connection's first statement, with no extra round trip.
		runtime := make(map[string]string, len(cfg.Runtime)+1)
		for k, v := range cfg.Runtime {
			runtime[k] = v
		}
		runtime["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
		c.cfg.Runtime = runtime
		c.statementTimeout = opts.StatementTimeout
	} else if v, ok := cfg.Runtime["statement_timeout"]; ok {
		// Set in the URL: known only if given in milliseconds, as a bare
		// number; otherwise WithStatementTimeout sets it each time.
		var ms int64
		if _, err := fmt.Sscan(v, &ms); err == nil && fmt.Sprint(ms) == v {
			c.statementTimeout = time.Duration(ms) * time.Millisecond
		} else {
			c.statementTimeout = -1
		}
	}
	return c, nil
}

// Connect opens a connection, ending the handshake when ctx ends.
func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	d := &socketDialer{}
	pc, err := pq.NewConnectorConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	pc.Dialer(d)
	stop := context.AfterFunc(ctx, d.expire)
	conn, err := pc.Connect(ctx)
	expired := !stop()
	if err != nil {
		if expired {
			return nil, fmt.Errorf("connect: %w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	pg := &pgConn{conn: conn, sock: d.conn(), timeout: c.statementTimeout, current: c.statementTimeout}
	if expired || pg.sock == nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connect: %w", context.Cause(ctx))
	}
	return pg, nil
}

// Driver returns lib/pq's driver.
func (c *pgConnector) Driver() driver.Driver { return &pq.Driver{} }

// socketDialer dials as lib/pq's default dialer does and keeps the first
// socket it opens: the connection's own (lib/pq dials again only to send
// cancel requests, which keep their own sockets).
type socketDialer struct {
	net.Dialer
	mu      sync.Mutex
	first   net.Conn
	expired bool
}

func (d *socketDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *socketDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *socketDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := d.Dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.first == nil {
		d.first = nc
		if d.expired {
			_ = nc.SetDeadline(time.Now())
		}
	}
	return nc, nil
}

// expire ends every blocked read or write of the connection's socket.
func (d *socketDialer) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expired = true
	if d.first != nil {
		_ = d.first.SetDeadline(time.Now())
	}
}

func (d *socketDialer) conn() net.Conn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.first
}

// pgDriverConn is what lib/pq's connection implements, which pgConn wraps.
type pgDriverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.QueryerContext
	driver.ExecerContext
	driver.Pinger
	driver.NamedValueChecker
	driver.SessionResetter
	driver.Validator
}

// pgConn is a lib/pq connection whose calls end with their context (see
// the top of this file). database/sql uses a connection from one goroutine
// at a time; only expire runs beside a call.
type pgConn struct {
	conn driver.Conn
	sock net.Conn
	// expired is set once a context ended a call: the socket is unusable.
	expired atomic.Bool

	// timeout is the connection's default statement_timeout, current the
	// session's value now (-1: unknown); inTx is set while a transaction
	// is open, whose statement timeout BeginTx fixed with SET LOCAL.
	timeout, current time.Duration
	inTx             bool
}

var _ pgDriverConn = (*pgConn)(nil)

func (c *pgConn) pq() pgDriverConn { return c.conn.(pgDriverConn) }

// watch ends the socket's blocked reads and writes when ctx ends, until
// the returned function is called; that function returns the error to
// report: err, or, when ctx ended the call, ctx's error (the driver's own
// is then only the consequence, a read past the deadline).
func (c *pgConn) watch(ctx context.Context) func(err error) error {
	stop := context.AfterFunc(ctx, func() {
		c.expired.Store(true)
		_ = c.sock.SetDeadline(time.Now())
	})
	return func(err error) error {
		if stop() || err == nil {
			// Not ended; or ended just after the call succeeded, whose
			// result stands (the connection is discarded all the same).
			return err
		}
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
}

// setTimeout sets the session's statement_timeout to what ctx asks for
// (WithStatementTimeout, or the connection's default), outside a
// transaction, when it differs from the session's value.
func (c *pgConn) setTimeout(ctx context.Context) error {
	want := c.wantTimeout(ctx)
	if c.inTx || want == c.current {
		return nil
	}
	c.current = -1 // unknown until the SET succeeds
	if _, err := c.execContext(ctx, fmt.Sprintf("SET statement_timeout = %d", max(want, 0).Milliseconds()), nil); err != nil {
		return err
	}
	c.current = want
	return nil
}

// wantTimeout is the statement timeout ctx asks for.
func (c *pgConn) wantTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(statementTimeoutKey{}).(time.Duration); ok {
		return d
	}
	if c.timeout < 0 {
		return 0
	}
	return c.timeout
}

func (c *pgConn) execContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	done := c.watch(ctx)
	res, err := c.pq().ExecContext(ctx, query, args)
	return res, done(err)
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.setTimeout(ctx); err != nil {
		return nil, err
	}
	return c.execContext(ctx, query, args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.setTimeout(ctx); err != nil {
		return nil, err
	}
	done := c.watch(ctx)
	rows, err := c.pq().QueryContext(ctx, query, args)
	if err != nil {
		return nil, done(err)
	}
	return &pgRows{rows: rows, done: done}, nil
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	done := c.watch(ctx)
	st, err := c.pq().PrepareContext(ctx, query)
	if err = done(err); err != nil {
		return nil, err
	}
	return &pgStmt{stmt: st, conn: c}, nil
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	done := c.watch(ctx)
	tx, err := c.pq().BeginTx(ctx, opts)
	if err = done(err); err != nil {
		return nil, err
	}
	t := &pgTx{tx: tx, conn: c, ctx: ctx}
	if want := c.wantTimeout(ctx); want != c.current {
		// For this transaction only: SET LOCAL ends with it.
		if _, err := c.execContext(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", max(want, 0).Milliseconds()), nil); err != nil {
			_ = t.Rollback()
			return nil, err
		}
	}
	c.inTx = true
	return t, nil
}

func (c *pgConn) Ping(ctx context.Context) error {
	done := c.watch(ctx)
	return done(c.pq().Ping(ctx))
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *pgConn) CheckNamedValue(nv *driver.NamedValue) error { return c.pq().CheckNamedValue(nv) }

func (c *pgConn) ResetSession(ctx context.Context) error {
	if c.expired.Load() {
		return driver.ErrBadConn
	}
	return c.pq().ResetSession(ctx)
}

func (c *pgConn) IsValid() bool { return !c.expired.Load() && c.pq().IsValid() }

// Close closes the connection; an expired one only its socket, since
// saying goodbye to the server would wait for it.
func (c *pgConn) Close() error {
	if c.expired.Load() {
		_ = c.sock.Close()
	}
	return c.conn.Close()
}

// pgTx ends its commit or rollback when the context it began with ends.
type pgTx struct {
	tx   driver.Tx
	conn *pgConn
	ctx  context.Context
}

func (t *pgTx) Commit() error {
	defer func() { t.conn.inTx = false }()
	done := t.conn.watch(t.ctx)
	return done(t.tx.Commit())
}

func (t *pgTx) Rollback() error {
	defer func() { t.conn.inTx = false }()
	done := t.conn.watch(t.ctx)
	return done(t.tx.Rollback())
}

// pgStmt is a prepared statement of a pgConn.
type pgStmt struct {
	stmt driver.Stmt
	conn *pgConn
}

type pgDriverStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

func (s *pgStmt) Close() error  { return s.stmt.Close() }
func (s *pgStmt) NumInput() int { return s.stmt.NumInput() }

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.conn.setTimeout(ctx); err != nil {
		return nil, err
	}
	done := s.conn.watch(ctx)
	res, err := s.stmt.(pgDriverStmt).ExecContext(ctx, args)
	return res, done(err)
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.conn.setTimeout(ctx); err != nil {
		return nil, err
	}
	done := s.conn.watch(ctx)
	rows, err := s.stmt.(pgDriverStmt).QueryContext(ctx, args)
	if err != nil {
		return nil, done(err)
	}
	return &pgRows{rows: rows, done: done}, nil
}

func (s *pgStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.stmt.Exec(args) //nolint:staticcheck // database/sql calls ExecContext
}

func (s *pgStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.stmt.Query(args) //nolint:staticcheck // database/sql calls QueryContext
}

// pgRows keeps its query's watch until it is closed: reading the rows
// waits for the server as much as sending the query did.
type pgRows struct {
	rows driver.Rows
	done func(error) error
	once sync.Once
}

type pgDriverRows interface {
	driver.Rows
	driver.RowsNextResultSet
	driver.RowsColumnTypeScanType
	driver.RowsColumnTypeDatabaseTypeName
	driver.RowsColumnTypeLength
	driver.RowsColumnTypePrecisionScale
}

func (r *pgRows) Columns() []string { return r.rows.Columns() }

func (r *pgRows) Next(dest []driver.Value) error {
	err := r.rows.Next(dest)
	if err != nil && !errors.Is(err, io.EOF) {
		return r.finish(err)
	}
	return err
}

func (r *pgRows) Close() error { return r.finish(r.rows.Close()) }

// finish ends the watch once and returns err as it reports it.
func (r *pgRows) finish(err error) error {
	out := err
	r.once.Do(func() { out = r.done(err) })
	return out
}

func (r *pgRows) HasNextResultSet() bool { return r.rows.(pgDriverRows).HasNextResultSet() }
func (r *pgRows) NextResultSet() error   { return r.rows.(pgDriverRows).NextResultSet() }
func (r *pgRows) ColumnTypeScanType(i int) reflect.Type {
	return r.rows.(pgDriverRows).ColumnTypeScanType(i)
}
func (r *pgRows) ColumnTypeDatabaseTypeName(i int) string {
	return r.rows.(pgDriverRows).ColumnTypeDatabaseTypeName(i)
}
func (r *pgRows) ColumnTypeLength(i int) (int64, bool) {
	return r.rows.(pgDriverRows).ColumnTypeLength(i)
}
func (r *pgRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	return r.rows.(pgDriverRows).ColumnTypePrecisionScale(i)
}

// statementTimeoutKey is the context key of WithStatementTimeout.
type statementTimeoutKey struct{}

// WithStatementTimeout returns ctx asking that the store's statements run
// under it be bounded by d on the PostgreSQL server, instead of the
// database's StatementTimeout; 0 means no bound. Scheduler jobs use it: a
// job may scan or prune more than a request ever should, and is bounded by
// its own timeout. A unit of work takes the timeout its WithTx context asks
// for. SQLite has no statement timeout: there, the context's deadline
// bounds each statement.
func WithStatementTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, statementTimeoutKey{}, max(d, 0))
}
