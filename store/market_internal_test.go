package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

// These tests run raw SQL against the market tables, as the tables' owner
// could, so they live inside the package. storetest imports store, so
// they cannot use it: eachDialect and openPostgres do what storetest.Each
// and storetest.Postgres do.

// eachDialect runs fn as the subtests "sqlite" and "postgres", each with a
// fresh migrated database of that dialect.
func eachDialect(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPostgres(t)) })
}

// openPostgres returns a fresh migrated PostgreSQL database: a schema of its
// own on the server of TEST_DATABASE_URL, dropped when the test ends. It
// skips the test when the server does not answer, or fails it when
// REQUIRE_POSTGRES=1.
func openPostgres(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		raw = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable" // storetest.DefaultPostgresURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	admin, err := sql.Open("postgres", raw)
	if err == nil {
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = admin.PingContext(pingCtx)
		cancel()
	}
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("REQUIRE_POSTGRES=1 but PostgreSQL at %s is not reachable: %v", u.Redacted(), err)
		}
		t.Skipf("PostgreSQL at %s is not reachable: %v", u.Redacted(), err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema := "storetest_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := Open(ctx, u.String())
	if err != nil {
		t.Fatalf("open postgres schema %s: %v", schema, err)
	}
	t.Cleanup(func() { db.Close() }) // before the schema is dropped
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate postgres schema %s: %v", schema, err)
	}
	return db
}

// TestMarketHistoryIsAppendOnly: the database itself refuses to change or
// remove history, whatever SQL the server runs.
func TestMarketHistoryIsAppendOnly(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, db *DB) {
		t.Parallel()
		ctx := context.Background()
		err := db.WithTx(ctx, func(tx *Tx) error {
			m, _, err := tx.InsertMetricsSample(ctx, obsqra.MetricsSample{ProtocolID: 1, ObservedAt: time.Now(), ApyBps: 500, Source: obsqra.SourceSimulated})
			if err != nil {
				return err
			}
			if err := tx.RecordDaily(ctx, m); err != nil {
				return err
			}
			d := &obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: obsqra.JSONObject(`{}`), Output: obsqra.JSONObject(`{}`), ModelVersion: obsqra.RiskModelVersion}
			if err := tx.AppendDecision(ctx, d, testHash); err != nil {
				return err
			}
			return tx.InsertRiskScore(ctx, &obsqra.RiskScore{ProtocolID: 1, SampleID: m.ID, ObservedAt: m.ObservedAt, Score: 50,
				ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: d.CreatedAt, DecisionID: d.ID})
		})
		if err != nil {
			t.Fatal(err)
		}
		refused := func(stmt string) {
			t.Helper()
			_, err := db.db.ExecContext(ctx, stmt)
			if err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s = %v, want refused as append-only", stmt, err)
			}
		}
		tables := []string{"metrics_samples", "risk_scores", "risk_params", "decisions"}
		set := map[string]string{"metrics_samples": "apy_bps = 0", "risk_scores": "score = 0",
			"risk_params": "w_audit = 0", "decisions": "output = '{}'"}
		for _, table := range tables {
			refused("UPDATE " + table + " SET " + set[table])
			refused("DELETE FROM " + table + " WHERE 1 = 1")
			refused("DELETE FROM " + table) // SQLite's truncate optimisation meets the trigger too
			if db.dialect == postgresDialect {
				// CASCADE, or the foreign keys would refuse first.
				refused("TRUNCATE " + table + " CASCADE")
			}
		}
		for _, table := range append(tables, "metrics_daily") {
			var n int
			if err := db.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s holds %d rows, %v, want its 1 row", table, n, err)
			}
		}
		// The daily series is derived, and may change.
		if _, err := db.db.ExecContext(ctx, "UPDATE metrics_daily SET apy_bps = 1"); err != nil {
			t.Errorf("UPDATE metrics_daily = %v, want nil", err)
		}
	})
}

// TestHistoryPagesSeekToCursor: a page after a cursor starts its index walk
// at the cursor, so its cost does not grow with the history before it.
// SQLite only: its plans do not depend on statistics, PostgreSQL's do.
func TestHistoryPagesSeekToCursor(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	page := obsqra.HistoryPage{First: 20, After: &obsqra.HistoryKey{At: time.Now(), ID: 42}}
	for table, cols := range map[string][]string{"metrics_samples": metricsColumns, "risk_scores": riskScoreColumns} {
		q, args := pagesQuery(db.conn(), table, cols, []int64{1, 2}, page)
		rows, err := db.db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		want := table + "_protocol_time_idx (protocol_id=? AND observed_at<?)"
		if n := strings.Count(strings.Join(plan, "\n"), want); n != 2 {
			t.Errorf("plan of a page after a cursor:\n%s\nwant twice: %s", strings.Join(plan, "\n"), want)
		}
	}
}

// TestConcurrentRiskParams: on PostgreSQL, of two units of work that store
// the next risk parameters at once, the one that inserts second fails with
// ECONFLICT instead of numbering its version after one it never read.
func TestConcurrentRiskParams(t *testing.T) {
	t.Parallel()
	db := openPostgres(t)
	ctx := context.Background()
	v1, err := db.ActiveRiskParams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inserted, release, firstDone := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	go func() {
		firstDone <- db.WithTx(ctx, func(tx *Tx) error {
			p := *v1
			err := tx.InsertRiskParams(ctx, &p)
			inserted <- err
			<-release
			return err
		})
	}()
	if err := <-inserted; err != nil {
		close(release)
		t.Fatalf("first InsertRiskParams = %v", err)
	}
	pid, secondDone := make(chan int, 1), make(chan error, 1)
	go func() {
		secondDone <- db.WithTx(ctx, func(tx *Tx) error {
			var id int
			if err := tx.conn().queryRow(ctx, "SELECT pg_backend_pid()").Scan(&id); err != nil {
				pid <- 0
				return err
			}
			pid <- id
			p := *v1
			return tx.InsertRiskParams(ctx, &p)
		})
	}()
	// Let the first commit once the second waits for it.
	backend := <-pid
	for deadline := time.Now().Add(10 * time.Second); backend != 0; {
		var wait sql.NullString
		if err := db.db.QueryRowContext(ctx, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", backend).Scan(&wait); err != nil {
			t.Errorf("state of the second unit of work: %v", err)
			break
		}
		if wait.String == "Lock" {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the second unit of work never waited for the first")
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first unit of work = %v, want nil", err)
	}
	if err := <-secondDone; obsqra.ErrorCode(err) != obsqra.ECONFLICT {
		t.Fatalf("second InsertRiskParams = %v, want ECONFLICT", err)
	}
	if p, err := db.ActiveRiskParams(ctx); err != nil || p.Version != 2 {
		t.Fatalf("ActiveRiskParams() = %+v, %v, want version 2", p, err)
	}
}
