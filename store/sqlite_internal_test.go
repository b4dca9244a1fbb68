package store

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

func openSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate = %v", err)
	}
	return db
}

// TestSQLitePragmas checks that every pooled connection got the DSN's
// settings, not only the first one.
func TestSQLitePragmas(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	ctx := context.Background()
	conns := make([]interface{ Close() error }, 0, 3)
	for i := range 3 {
		c, err := db.db.Connx(ctx)
		if err != nil {
			t.Fatalf("Connx = %v", err)
		}
		conns = append(conns, c)
		for pragma, want := range map[string]string{
			"journal_mode": "wal",
			"foreign_keys": "1",
			"busy_timeout": "10000",
			"synchronous":  "2", // FULL
		} {
			var got string
			if err := c.QueryRowxContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
				t.Errorf("connection %d: PRAGMA %s = %q, %v, want %q", i, pragma, got, err, want)
			}
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestSQLiteTransactionsBeginImmediate runs units of work that read and then
// write, concurrently, past the store's own writer queue. Begun DEFERRED,
// they would fail with SQLITE_BUSY when upgrading to a write lock;
// begun IMMEDIATE, they wait for each other under busy_timeout.
func TestSQLiteTransactionsBeginImmediate(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	db.writeSem = nil
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			err := db.WithTx(ctx, func(tx *Tx) error {
				var failures int
				err := tx.conn().queryRow(ctx, "SELECT COALESCE(SUM(failures), 0) FROM login_throttle").Scan(&failures)
				if err != nil {
					return err
				}
				return tx.SaveThrottle(ctx, Throttle{Key: "k", Failures: failures + 1})
			})
			if err != nil {
				t.Errorf("read-then-write unit of work = %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	var got int
	if err := db.db.QueryRowContext(ctx, "SELECT failures FROM login_throttle WHERE key = 'k'").Scan(&got); err != nil || got != n {
		t.Fatalf("failures after %d read-then-write units of work = %d, %v, want %d", n, got, err, n)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url     string
		dialect *dialect
		path    string
	}{
		{"postgres://u@h/db?sslmode=disable", postgresDialect, ""},
		{"postgresql://u@h/db", postgresDialect, ""},
		{"sqlite:data/obsqra.db", sqliteDialect, "data/obsqra.db"},
		{"sqlite://data/obsqra.db", sqliteDialect, "data/obsqra.db"},
		{"sqlite:///var/lib/obsqra.db", sqliteDialect, "/var/lib/obsqra.db"},
		{"file:/tmp/x.sqlite3", sqliteDialect, "/tmp/x.sqlite3"},
		{"./data/obsqra.db", sqliteDialect, "./data/obsqra.db"},
	} {
		d, dsn, path, err := parseURL(tc.url)
		if err != nil || d != tc.dialect || path != tc.path {
			t.Errorf("parseURL(%q) = %v, %q, %q, %v, want %v, %q", tc.url, d, dsn, path, err, tc.dialect, tc.path)
		}
		if d == sqliteDialect && dsn != tc.path+"?"+sqliteOptions {
			t.Errorf("parseURL(%q) DSN = %q, want the path and the store's options", tc.url, dsn)
		}
	}
}
