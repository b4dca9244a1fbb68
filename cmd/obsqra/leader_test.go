package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"github.com/obsqra/obsqra/store/storetest"
)

// TestServeHelperProcess is not a test: TestSchedulerLeaderTakeover runs
// the test binary again with OBSQRA_HELPER_SERVE=1 so that this function
// is `obsqra serve` in a process of its own.
func TestServeHelperProcess(t *testing.T) {
	if os.Getenv("OBSQRA_HELPER_SERVE") != "1" {
		t.Skip("helper process for TestSchedulerLeaderTakeover")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := []string{"serve"}
	if a := os.Getenv("OBSQRA_HELPER_ARGS"); a != "" {
		args = strings.Fields(a) // another command, e.g. "user promote x@example.com"
	}
	if err := run(ctx, args, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, args[0]+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestSchedulerLeaderTakeover starts two server processes on one
// PostgreSQL database: the jobs run on exactly one of them; when it is
// killed (SIGKILL: no goodbye, its session simply ends), the other takes
// over within two intervals of the ingest job.
func TestSchedulerLeaderTakeover(t *testing.T) {
	// Parallel tests start once the sequential ones, which change the
	// environment with t.Setenv, are done: the processes inherit a clean one.
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two server processes")
	}
	dbURL := postgresSchema(t)
	admin, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	const interval = 3 * time.Second
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
		cmd.Env = append(os.Environ(),
			"OBSQRA_HELPER_SERVE=1",
			"DATABASE_URL="+dbURL,
			"API_HOST=127.0.0.1",
			"API_PORT="+strconv.Itoa(freePort(t)),
			"SECRET_KEY="+strings.Repeat("k", 32),
			"MARKET_POLL_INTERVAL="+interval.String(),
			"MARKET_HISTORY_DAYS=3",
			"LOG_LEVEL=warn",
			"METRICS_ADDR=off", // two processes: neither takes the default port
			"DATA_DIR="+t.TempDir(),
		)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd
	}
	first := start()
	// The first process migrates and leads before the second starts, so
	// which one leads is known; the second then follows.
	runsBy := func(since time.Time) map[int]int {
		rows, err := admin.Query(`SELECT instance, COUNT(*) FROM job_runs
			WHERE job = 'market-ingest' AND started_at >= $1 GROUP BY instance`, since)
		if err != nil {
			return nil // the tables may not exist yet
		}
		defer rows.Close()
		out := map[int]int{}
		for rows.Next() {
			var instance string
			var n int
			if err := rows.Scan(&instance, &n); err != nil {
				t.Fatal(err)
			}
			_, pid, _ := strings.Cut(instance, ":")
			p, _ := strconv.Atoi(pid)
			out[p] = n
		}
		return out
	}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		begin := time.Now()
		for !ok() {
			if time.Since(begin) > within {
				t.Fatalf("%s: not within %s", what, within)
			}
			time.Sleep(50 * time.Millisecond) // polling another process's effect
		}
		return time.Since(begin)
	}
	t0 := time.Now().Add(-time.Minute)
	waitFor("first process runs the ingest job", time.Minute, func() bool { return runsBy(t0)[first.Process.Pid] > 0 })
	second := start()
	// Three more intervals: the second process is up and following, and
	// every run is the first's.
	since := time.Now()
	waitFor("first process keeps running the job", time.Minute, func() bool { return runsBy(since)[first.Process.Pid] >= 3 })
	if got := runsBy(t0); len(got) != 1 {
		t.Fatalf("ingest runs by instance = %v, want only the first process %d", got, first.Process.Pid)
	}

	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	killed := time.Now()
	took := waitFor("second process takes over", time.Minute, func() bool { return runsBy(killed)[second.Process.Pid] > 0 })
	t.Logf("second process took over %s after the first was killed (interval %s)", took.Round(10*time.Millisecond), interval)
	if took > 2*interval {
		t.Errorf("takeover took %s, more than two intervals (%s)", took, 2*interval)
	}
}

// postgresSchema creates a schema of its own on the test PostgreSQL server,
// dropped when the test ends, and returns a database URL that uses it. It
// skips the test when the server does not answer, or fails it with
// REQUIRE_POSTGRES=1.
func postgresSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		base = storetest.DefaultPostgresURL
	}
	admin, err := sql.Open("postgres", base)
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL is required: %v", err)
		}
		t.Skipf("PostgreSQL is not reachable: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "cmdtest_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
