package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

// TestStatementTimeoutPostgres: the server itself ends a statement past
// StatementTimeout (57014, EUNAVAILABLE); a context from
// WithStatementTimeout gets its own bound, on the pool and in a unit of
// work, and the next call on the same connection is back to the default.
func TestStatementTimeoutPostgres(t *testing.T) {
	t.Parallel()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable" // storetest.DefaultPostgresURL
	}
	ctx := context.Background()
	// One connection, so that every call below meets the session state
	// the previous one left.
	db, err := OpenWith(ctx, raw, Options{StatementTimeout: 200 * time.Millisecond, ConnectTimeout: 5 * time.Second, MaxOpenConns: 1})
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("REQUIRE_POSTGRES=1 but PostgreSQL is not reachable: %v", err)
		}
		t.Skipf("PostgreSQL is not reachable: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	sleep := func(ctx context.Context, c conn) error {
		_, err := c.exec(ctx, "SELECT pg_sleep(0.5)")
		return translate(err, "sleep", "sleep")
	}
	inTx := func(ctx context.Context) error {
		return db.WithTx(ctx, func(tx *Tx) error { return sleep(ctx, tx.conn()) })
	}
	job := WithStatementTimeout(ctx, 5*time.Second)
	steps := []struct {
		name string
		call func() error
		want string
	}{
		{"default on the pool", func() error { return sleep(ctx, db.conn()) }, obsqra.EUNAVAILABLE},
		{"job on the pool", func() error { return sleep(job, db.conn()) }, ""},
		{"default again", func() error { return sleep(ctx, db.conn()) }, obsqra.EUNAVAILABLE},
		{"job in a unit of work", func() error { return inTx(job) }, ""},
		{"default in a unit of work", func() error { return inTx(ctx) }, obsqra.EUNAVAILABLE},
		{"job after a unit of work", func() error { return sleep(job, db.conn()) }, ""},
		{"no bound", func() error { return sleep(WithStatementTimeout(ctx, 0), db.conn()) }, ""},
		{"default after no bound", func() error { return inTx(ctx) }, obsqra.EUNAVAILABLE},
	}
	for _, s := range steps {
		start := time.Now()
		err := s.call()
		if got := obsqra.ErrorCode(err); got != s.want {
			t.Fatalf("%s: pg_sleep(0.5) = %v (code %q), want code %q", s.name, err, got, s.want)
		}
		if s.want != "" && time.Since(start) > 450*time.Millisecond {
			t.Errorf("%s: the statement timeout ended pg_sleep(0.5) after %v, want about 200ms", s.name, time.Since(start))
		}
	}
}

// TestDeadlinesSQLite: on SQLite a statement, and a unit of work waiting
// for the writer, end with the context's deadline as EUNAVAILABLE, and
// StatementTimeout is the busy timeout.
func TestDeadlinesSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := OpenWith(ctx, "sqlite:"+filepath.Join(t.TempDir(), "x.db"), Options{StatementTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var busy int
	if err := db.db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 1500 {
		t.Errorf("busy_timeout = %d, %v, want 1500", busy, err)
	}

	t.Run("long statement", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		var n int64
		err := db.conn().queryRow(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
			SELECT count(*) FROM c`).Scan(&n)
		err = translate(err, "count", "count")
		if obsqra.ErrorCode(err) != obsqra.EUNAVAILABLE || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a statement past its deadline = %v, want EUNAVAILABLE", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the statement ended %v after its start, want about 200ms", took)
		}
	})
	t.Run("writer wait", func(t *testing.T) {
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- db.WithTx(ctx, func(*Tx) error { close(held); <-release; return nil })
		}()
		<-held
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err := db.WithTx(wctx, func(*Tx) error { return nil })
		close(release)
		if obsqra.ErrorCode(err) != obsqra.EUNAVAILABLE {
			t.Errorf("a unit of work waiting for the writer past its deadline = %v, want EUNAVAILABLE", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancelled by the client", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := db.UserByID(cctx, 1)
		if code := obsqra.ErrorCode(err); code != obsqra.EINTERNAL || !errors.Is(err, context.Canceled) {
			t.Errorf("a read whose client went away = %v (code %s), want the cancellation as it was", err, code)
		}
	})
}
