// Package storetest gives tests a fresh, migrated store.DB of each dialect.
//
// SQLite databases live in t.TempDir(). PostgreSQL databases are schemas,
// one per call with a random name, on the server named by TEST_DATABASE_URL
// (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable), dropped
// when the test ends. When that server does not answer, PostgreSQL tests are
// skipped with one loud line on stderr, or fail when REQUIRE_POSTGRES=1.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq" // the admin connection's driver
	"github.com/obsqra/obsqra/store"
)

// DefaultPostgresURL is the server tried when TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Each runs fn twice, as the subtests "sqlite" and "postgres", each time
// with a fresh migrated database of that dialect. fn may call t.Parallel.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// SQLite returns a fresh migrated SQLite database in t.TempDir(), closed
// when the test ends.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := store.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("storetest: open sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate sqlite: %v", err)
	}
	urls.Store(db, "sqlite:"+path)
	return db
}

// PostgresIfReachable is Postgres for a test that runs on SQLite either
// way (a fuzz target, say): it returns nil, with the same one loud line,
// instead of skipping the test when the server does not answer, and fails
// the test if REQUIRE_POSTGRES=1.
func PostgresIfReachable(t testing.TB) *store.DB {
	t.Helper()
	if srv := server(); srv.err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("storetest: REQUIRE_POSTGRES=1 but PostgreSQL at %s is not reachable: %v", srv.redacted, srv.err)
		}
		srv.warn.Do(func() {
			warn("storetest: PostgreSQL at %s is not reachable: %v; PostgreSQL tests SKIPPED (set REQUIRE_POSTGRES=1 to fail instead)\n", srv.redacted, srv.err)
		})
		return nil
	}
	return Postgres(t)
}

// Postgres returns a fresh migrated PostgreSQL database: a new schema on the
// server of TEST_DATABASE_URL, dropped when the test ends. When the server
// does not answer, the test is skipped, or fails if REQUIRE_POSTGRES=1.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	srv := server()
	if srv.err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("storetest: REQUIRE_POSTGRES=1 but PostgreSQL at %s is not reachable: %v", srv.redacted, srv.err)
		}
		srv.warn.Do(func() {
			warn("storetest: PostgreSQL at %s is not reachable: %v; PostgreSQL tests SKIPPED (set REQUIRE_POSTGRES=1 to fail instead)\n", srv.redacted, srv.err)
		})
		t.Skipf("PostgreSQL at %s is not reachable: %v", srv.redacted, srv.err)
	}

	schema := "storetest_" + randomHex(8)
	if _, err := srv.admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		// Runs after db.Close below (cleanups run last-in first-out).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := srv.admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})

	// lib/pq sends URL parameters it does not know, such as search_path, to
	// the server as run-time parameters of every connection.
	u := *srv.url
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatalf("storetest: open postgres schema %s: %v", schema, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("storetest: migrate postgres schema %s: %v", schema, err)
	}
	urls.Store(db, u.String())
	return db
}

// urls remembers the URL of each database SQLite and Postgres opened, for
// Reopen and Exec.
var urls sync.Map // *store.DB → string

// Reopen opens a second connection pool on the PostgreSQL schema of db, as
// another server process sharing the database would, and closes it when
// the test ends.
func Reopen(t testing.TB, db *store.DB) *store.DB {
	t.Helper()
	u, ok := urls.Load(db)
	if !ok {
		t.Fatal("storetest: Reopen needs a database from Postgres")
	}
	other, err := store.Open(context.Background(), u.(string))
	if err != nil {
		t.Fatalf("storetest: reopen: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

// ReopenAs is Reopen with the connections named application in
// PostgreSQL's pg_stat_activity, so that a test can find them (and
// terminate them, as a failover or an administrator would).
func ReopenAs(t testing.TB, db *store.DB, application string) *store.DB {
	t.Helper()
	raw, ok := urls.Load(db)
	if !ok {
		t.Fatal("storetest: ReopenAs needs a database from Postgres")
	}
	u, err := url.Parse(raw.(string))
	if err != nil {
		t.Fatalf("storetest: reopen: %v", err)
	}
	q := u.Query()
	q.Set("application_name", application)
	u.RawQuery = q.Encode()
	other, err := store.Open(context.Background(), u.String())
	if err != nil {
		t.Fatalf("storetest: reopen: %v", err)
	}
	t.Cleanup(func() { other.Close() })
	urls.Store(other, u.String())
	return other
}

// URL returns the database URL db was opened with (a PostgreSQL URL naming
// its schema, or sqlite:path), for a server process of the test's own.
func URL(t testing.TB, db *store.DB) string {
	t.Helper()
	u, ok := urls.Load(db)
	if !ok {
		t.Fatal("storetest: URL needs a database from SQLite or Postgres")
	}
	return u.(string)
}

// Exec runs one SQL statement on db's database through a connection of
// its own, as a database administrator would at a prompt: the test acts
// outside the store (to tamper with history and see verification notice,
// say). The database's own rules (triggers, constraints) still apply.
func Exec(t testing.TB, db *store.DB, query string, args ...any) error {
	t.Helper()
	u, ok := urls.Load(db)
	if !ok {
		t.Fatal("storetest: Exec needs a database from SQLite or Postgres")
	}
	driver, dsn := "postgres", u.(string)
	if path, isSQLite := strings.CutPrefix(dsn, "sqlite:"); isSQLite {
		driver, dsn = "sqlite", path+"?_pragma=busy_timeout(10000)"
	}
	conn, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", driver, err)
	}
	defer conn.Close()
	_, err = conn.ExecContext(context.Background(), query, args...)
	return err
}

// pgServer is the PostgreSQL server of the test process, checked once.
type pgServer struct {
	url      *url.URL
	redacted string
	// admin creates and drops the schemas; it stays open for the process.
	admin *sql.DB
	// err is why the server cannot be used; warn prints it once.
	err  error
	warn sync.Once
}

var server = sync.OnceValue(func() *pgServer {
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = DefaultPostgresURL
	}
	srv := &pgServer{redacted: raw}
	u, err := url.Parse(raw)
	if err != nil {
		srv.err = fmt.Errorf("parse TEST_DATABASE_URL: %w", err)
		return srv
	}
	srv.url, srv.redacted = u, u.Redacted()
	if srv.admin, err = sql.Open("postgres", raw); err != nil {
		srv.err = err
		return srv
	}
	srv.admin.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.admin.PingContext(ctx); err != nil {
		srv.admin.Close()
		srv.err = err
	}
	return srv
})

// warn prints a line the developer must see. `go test ./...` shows the
// output of a passing package only with -v, so the line goes to the
// controlling terminal when there is one, and to stderr otherwise (CI, where
// REQUIRE_POSTGRES=1 should be set anyway).
func warn(format string, args ...any) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if _, err := fmt.Fprintf(tty, format, args...); err == nil {
			return
		}
	}
	fmt.Fprintf(os.Stderr, format, args...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}
