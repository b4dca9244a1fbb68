package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
)

// Job runs are the scheduler's bookkeeping, not history: each method below is
// one statement on its own (no outbox event goes with them), so they are
// methods of *DB. Writes still go through WithTx, which on SQLite queues them
// behind the store's one writer.

var jobRunColumns = columns("", "id", "job", "instance", "started_at", "finished_at", "outcome", "error")

func jobRunScanArgs(r *obsqra.JobRun) []any {
	return []any{&r.ID, &r.Job, &r.Instance, scanTime(&r.StartedAt), scanNullTime(&r.FinishedAt), &r.Outcome, &r.Error}
}

// MaxJobRunError is how many bytes of a run's error message FinishJobRun
// keeps: enough for any useful message, and a runaway one (a whole response
// body) cannot bloat the table.
const MaxJobRunError = 2000

// abandonedMessage is the error AbandonJobRuns records.
const abandonedMessage = "instance stopped before the run finished"

// StartJobRun records that instance started a run of job now, as RUNNING,
// and returns the run.
// Errors: EINVALID for an empty job or instance name; otherwise internal
// ones.
func (db *DB) StartJobRun(ctx context.Context, job, instance string) (obsqra.JobRun, error) {
	if job == "" || instance == "" {
		return obsqra.JobRun{}, obsqra.Errorf(obsqra.EINVALID, "a job run needs a job and an instance name")
	}
	run := obsqra.JobRun{Job: job, Instance: instance, StartedAt: db.now(), Outcome: obsqra.JobRunning}
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		err := c.queryRow(ctx,
			"INSERT INTO job_runs (job, instance, started_at, outcome, error) VALUES (?, ?, ?, ?, '') RETURNING id",
			job, instance, c.d.timeArg(run.StartedAt), string(obsqra.JobRunning)).Scan(&run.ID)
		return translate(err, "start job run", "job run")
	})
	if err != nil {
		return obsqra.JobRun{}, err
	}
	return run, nil
}

// FinishJobRun records how run id ended, with message as its error ("" on
// success), stamped now. A run finishes once: only a RUNNING run changes.
// The message is made valid UTF-8 without NUL bytes (PostgreSQL's text takes
// neither) and cut to MaxJobRunError bytes.
// Errors: EINVALID when outcome is not a final outcome; ENOTFOUND when there
// is no such run; ECONFLICT when it has already finished (for instance a new
// leader abandoned it); otherwise internal ones.
func (db *DB) FinishJobRun(ctx context.Context, id int64, outcome obsqra.JobOutcome, message string) error {
	switch outcome {
	case obsqra.JobSucceeded, obsqra.JobFailed, obsqra.JobTimedOut, obsqra.JobAbandoned:
	default:
		return obsqra.Errorf(obsqra.EINVALID, "%q is not the outcome of a finished job run", string(outcome))
	}
	return db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		n, err := c.execCount(ctx,
			"UPDATE job_runs SET finished_at = ?, outcome = ?, error = ? WHERE id = ? AND outcome = ?",
			c.d.timeArg(tx.now()), string(outcome), jobRunMessage(message), id, string(obsqra.JobRunning))
		if err != nil {
			return translate(err, "finish job run", "job run")
		}
		if n == 1 {
			return nil
		}
		var current string
		if err := c.queryRow(ctx, "SELECT outcome FROM job_runs WHERE id = ?", id).Scan(&current); err != nil {
			return translate(err, "load job run", "job run")
		}
		return obsqra.Errorf(obsqra.ECONFLICT, "job run %d has already finished (%s)", id, current)
	})
}

// jobRunMessage returns msg as FinishJobRun stores it: valid UTF-8, no NUL,
// at most MaxJobRunError bytes, cut at a character boundary.
func jobRunMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = strings.ReplaceAll(msg, "\x00", "\uFFFD")
	if len(msg) <= MaxJobRunError {
		return msg
	}
	cut := MaxJobRunError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
}

// AbandonJobRuns marks every RUNNING run ABANDONED, finished now, with the
// error "instance stopped before the run finished", and returns how many it
// marked. A new scheduler leader calls it when it takes over: runs that a
// crashed or cut-off leader left RUNNING will never finish.
// Errors: internal ones.
func (db *DB) AbandonJobRuns(ctx context.Context) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx,
			"UPDATE job_runs SET finished_at = ?, outcome = ?, error = ? WHERE outcome = ?",
			c.d.timeArg(tx.now()), string(obsqra.JobAbandoned), abandonedMessage, string(obsqra.JobRunning))
		return translate(err, "abandon job runs", "job run")
	})
	return n, err
}

// LatestJobRuns returns the newest perJob runs of each of jobs, newest first,
// keyed by job name, in one statement; a job without runs has no entry.
// Errors: EINVALID for a perJob below 1; otherwise internal ones.
func (db *DB) LatestJobRuns(ctx context.Context, jobs []string, perJob int) (map[string][]obsqra.JobRun, error) {
	if perJob < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "runs per job must be at least 1, got %d", perJob)
	}
	latest := make(map[string][]obsqra.JobRun, len(jobs))
	if len(jobs) == 0 {
		return latest, nil
	}
	// One placeholder per job: a scheduler asks for the same list every
	// time, so this stays one statement text (and one prepared statement).
	args := make([]any, 0, len(jobs)+1)
	for _, j := range jobs {
		args = append(args, j)
	}
	args = append(args, perJob)
	query := "SELECT " + jobRunColumns + " FROM (" +
		"SELECT " + jobRunColumns + ", ROW_NUMBER() OVER (PARTITION BY job ORDER BY id DESC) AS n" +
		" FROM job_runs WHERE job IN (?" + strings.Repeat(", ?", len(jobs)-1) + ")" +
		") r WHERE n <= ? ORDER BY job, id DESC"
	rows, err := db.conn().query(ctx, query, args...)
	if err != nil {
		return nil, translate(err, "list latest job runs", "job run")
	}
	defer rows.Close()
	for rows.Next() {
		var r obsqra.JobRun
		if err := rows.Scan(jobRunScanArgs(&r)...); err != nil {
			return nil, translate(err, "scan job run", "job run")
		}
		latest[r.Job] = append(latest[r.Job], r)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list latest job runs", "row")
	}
	return latest, nil
}

// PruneJobRuns deletes the finished runs started before before and returns
// how many it deleted. Runs still RUNNING stay, whatever their age.
// Errors: internal ones.
func (db *DB) PruneJobRuns(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.WithTx(ctx, func(tx *Tx) error {
		c := tx.conn()
		var err error
		n, err = c.execCount(ctx, "DELETE FROM job_runs WHERE finished_at IS NOT NULL AND started_at < ?", c.d.timeArg(before))
		return translate(err, "prune job runs", "job run")
	})
	return n, err
}

// Lease is a leadership that TryLead granted: Check reports an error once
// it is lost, and Release gives it up (after which Check fails). Both are
// safe for concurrent use, and Release may be called more than once.
//
// Lease is an alias of an interface literal, not a named type, on purpose:
// a package that consumes leadership (the scheduler) declares the identical
// literal, so *DB satisfies its interface as is without that package
// importing store. Go has no covariant results, so a concrete result type
// would need an adapter at every wiring site.
type Lease = interface {
	Check(ctx context.Context) error
	Release(ctx context.Context) error
}

// leaderAppName prefixes the application_name of a leader's session, so
// that pg_stat_activity shows which process leads ("obsqra leader NAME").
const leaderAppName = "obsqra leader "

// TryLead tries, without waiting, to become the one leader called name
// among the processes sharing the database. It returns the lease and true
// when it did, and nil and false when another process leads.
//
// On PostgreSQL the lease is a session advisory lock, keyed by the current
// schema and name, on a connection taken from the pool and held until
// Release: the lock is released by the server when that session ends
// (the process crashed, the connection broke), so a follower's next TryLead
// takes over. While it leads, the session's application_name is
// "obsqra leader NAME". On SQLite one process owns the database, so TryLead
// always succeeds and the lease holds nothing.
// Errors: EINVALID for an empty name; otherwise internal ones.
func (db *DB) TryLead(ctx context.Context, name string) (Lease, bool, error) {
	if name == "" {
		return nil, false, obsqra.Errorf(obsqra.EINVALID, "a leadership needs a name")
	}
	if db.dialect != postgresDialect {
		return &leadership{name: name}, true, nil
	}
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("take connection for leadership %q: %w", name, err)
	}
	l := &leadership{name: name, conn: conn}
	ok, err := l.tryLock(ctx)
	if err != nil || !ok {
		// On an error the lock may have been granted before the answer was
		// lost: discard the connection, so the server drops the lock with it.
		l.close(err != nil)
		return nil, false, err
	}
	return l, true, nil
}

// leadership is the Lease of TryLead. On SQLite conn is nil and the lease
// holds nothing.
type leadership struct {
	name string

	mu       sync.Mutex
	conn     *sql.Conn
	key      int64  // the advisory lock key
	appName  string // the session's application_name before it led
	released bool
}

// tryLock derives the lock key from the session's schema and tries the
// lock; once it holds it, it names the session after the leadership.
func (l *leadership) tryLock(ctx context.Context) (bool, error) {
	var schema string
	err := l.conn.QueryRowContext(ctx, "SELECT COALESCE(current_schema(), ''), current_setting('application_name')").Scan(&schema, &l.appName)
	if err != nil {
		return false, fmt.Errorf("read session of leadership %q: %w", l.name, err)
	}
	h := fnv.New64a()
	h.Write([]byte("obsqra leader " + schema + "\x00" + l.name))
	l.key = int64(h.Sum64())
	var ok bool
	if err := l.conn.QueryRowContext(ctx, postgresDialect.rebind("SELECT pg_try_advisory_lock(?)"), l.key).Scan(&ok); err != nil {
		return false, fmt.Errorf("try lock of leadership %q: %w", l.name, err)
	}
	if !ok {
		return false, nil
	}
	if _, err := l.conn.ExecContext(ctx, postgresDialect.rebind("SELECT set_config('application_name', ?, false)"), leaderAppName+l.name); err != nil {
		return false, fmt.Errorf("name session of leadership %q: %w", l.name, err)
	}
	return true, nil
}

// Check returns nil while the lease's session is alive and holds its lock,
// and an error once it is lost or released. It asks pg_locks rather than
// merely pinging: that is the question, at the same cost.
func (l *leadership) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return fmt.Errorf("leadership %q was released", l.name)
	}
	if l.conn == nil {
		return nil
	}
	// A bigint advisory key shows in pg_locks as its high half in classid
	// and its low half in objid, with objsubid 1.
	var held bool
	err := l.conn.QueryRowContext(ctx, postgresDialect.rebind(
		"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"+
			" AND classid = ? AND objid = ? AND objsubid = 1)"),
		int64(uint64(l.key)>>32), int64(uint64(l.key)&0xffffffff)).Scan(&held)
	if err != nil {
		return fmt.Errorf("check leadership %q: %w", l.name, err)
	}
	if !held {
		return fmt.Errorf("check leadership %q: the lock is no longer held", l.name)
	}
	return nil
}

// Release unlocks the lease and returns its connection to the pool. When
// the session cannot be told (it is gone, or ctx ended first), the
// connection is discarded instead, which ends the session and with it the
// lock: a connection still holding the lock never goes back to the pool.
// Errors: internal ones, after which the lease is released all the same.
func (l *leadership) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	if l.conn == nil {
		return nil
	}
	var unlocked bool
	err := l.conn.QueryRowContext(ctx, postgresDialect.rebind(
		"SELECT pg_advisory_unlock(?), set_config('application_name', ?, false) IS NOT NULL"), l.key, l.appName).Scan(&unlocked, new(bool))
	if err == nil && !unlocked {
		err = errors.New("the lock was not held")
	}
	l.close(err != nil)
	if errors.Is(err, sql.ErrConnDone) {
		// database/sql closed the connection after it broke: the session,
		// and its lock with it, is gone already.
		return nil
	}
	if err != nil {
		return fmt.Errorf("release leadership %q: %w", l.name, err)
	}
	return nil
}

// close returns the lease's connection to the pool, or discards it.
func (l *leadership) close(discard bool) {
	if discard {
		// Returning driver.ErrBadConn from Raw makes database/sql close the
		// connection instead of pooling it.
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = l.conn.Close()
}
