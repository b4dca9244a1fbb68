package store_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func startRun(t *testing.T, db *store.DB, job string) obsqra.JobRun {
	t.Helper()
	r, err := db.StartJobRun(context.Background(), job, "host:1")
	if err != nil {
		t.Fatalf("StartJobRun(%q) = %v, want nil", job, err)
	}
	return r
}

func finishRun(t *testing.T, db *store.DB, id int64, outcome obsqra.JobOutcome, msg string) {
	t.Helper()
	if err := db.FinishJobRun(context.Background(), id, outcome, msg); err != nil {
		t.Fatalf("FinishJobRun(%d, %s) = %v, want nil", id, outcome, err)
	}
}

// latestRun returns the newest run of job.
func latestRun(t *testing.T, db *store.DB, job string) obsqra.JobRun {
	t.Helper()
	latest, err := db.LatestJobRuns(context.Background(), []string{job}, 1)
	if err != nil || len(latest[job]) != 1 {
		t.Fatalf("LatestJobRuns([%s], 1) = %v, %v, want one run", job, latest, err)
	}
	return latest[job][0]
}

func TestJobRuns(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now

		r := startRun(t, db, "ingest")
		want := obsqra.JobRun{ID: r.ID, Job: "ingest", Instance: "host:1", StartedAt: stampUTC(testTime), Outcome: obsqra.JobRunning}
		if r != want {
			t.Fatalf("StartJobRun = %+v, want %+v", r, want)
		}
		if got := latestRun(t, db, "ingest"); got != want {
			t.Fatalf("LatestJobRuns after start = %+v, want %+v", got, want)
		}

		clock.Advance(time.Minute)
		finishRun(t, db, r.ID, obsqra.JobFailed, "source down")
		got := latestRun(t, db, "ingest")
		finished := stampUTC(testTime.Add(time.Minute))
		if got.Outcome != obsqra.JobFailed || got.Error != "source down" || got.FinishedAt == nil || !got.FinishedAt.Equal(finished) || got.StartedAt != want.StartedAt {
			t.Fatalf("run after FinishJobRun(FAILED) = %+v, want FAILED %q finished at %v", got, "source down", finished)
		}

		// A run finishes once.
		err := db.FinishJobRun(ctx, r.ID, obsqra.JobSucceeded, "")
		wantCode(t, "FinishJobRun(finished run)", err, obsqra.ECONFLICT)
		if got := latestRun(t, db, "ingest"); got.Outcome != obsqra.JobFailed {
			t.Fatalf("a second FinishJobRun changed the run to %s", got.Outcome)
		}
		wantCode(t, "FinishJobRun(no such run)", db.FinishJobRun(ctx, r.ID+1000, obsqra.JobSucceeded, ""), obsqra.ENOTFOUND)
		for _, o := range []obsqra.JobOutcome{obsqra.JobRunning, "DONE", ""} {
			wantCode(t, "FinishJobRun(outcome "+string(o)+")", db.FinishJobRun(ctx, r.ID, o, ""), obsqra.EINVALID)
		}
		for _, args := range [][2]string{{"", "host:1"}, {"ingest", ""}} {
			_, err := db.StartJobRun(ctx, args[0], args[1])
			wantCode(t, "StartJobRun("+args[0]+", "+args[1]+")", err, obsqra.EINVALID)
		}
	})
}

func TestFinishJobRunMessage(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		long := strings.Repeat("é", store.MaxJobRunError) // 2 bytes each
		tests := []struct {
			name, msg string
			want      func(string) bool
		}{
			{"short", "boom", func(s string) bool { return s == "boom" }},
			{"long, cut at a character", long, func(s string) bool {
				return len(s) == store.MaxJobRunError && utf8.ValidString(s) && strings.HasPrefix(long, s)
			}},
			{"invalid UTF-8 and NUL", "bad \xff byte \x00 nul", func(s string) bool {
				return s == "bad \uFFFD byte \uFFFD nul"
			}},
		}
		for _, tt := range tests {
			r := startRun(t, db, "job")
			finishRun(t, db, r.ID, obsqra.JobFailed, tt.msg)
			if got := latestRun(t, db, "job"); !tt.want(got.Error) {
				t.Errorf("%s: stored error %q (%d bytes)", tt.name, got.Error, len(got.Error))
			}
		}
	})
}

func TestLatestJobRuns(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now

		ids := map[string][]int64{}
		for _, job := range []string{"a", "b", "a", "c", "a", "b", "a", "a", "other"} {
			clock.Advance(time.Second)
			r := startRun(t, db, job)
			ids[job] = append(ids[job], r.ID)
			finishRun(t, db, r.ID, obsqra.JobSucceeded, "")
		}
		delete(ids, "other") // not asked for

		latest, err := db.LatestJobRuns(ctx, []string{"a", "b", "c", "missing"}, 3)
		if err != nil {
			t.Fatalf("LatestJobRuns = %v, want nil", err)
		}
		if len(latest) != 3 {
			t.Errorf("LatestJobRuns has %d jobs, want 3 (a, b, c): %v", len(latest), latest)
		}
		for job, all := range ids {
			var want []int64
			for i := len(all) - 1; i >= 0 && len(want) < 3; i-- {
				want = append(want, all[i])
			}
			var got []int64
			for _, r := range latest[job] {
				if r.Job != job {
					t.Errorf("LatestJobRuns[%s] holds a run of %s", job, r.Job)
				}
				got = append(got, r.ID)
			}
			if !slicesEqual(got, want) {
				t.Errorf("LatestJobRuns[%s] ids = %v, want %v (newest first, at most 3)", job, got, want)
			}
		}

		if got, err := db.LatestJobRuns(ctx, nil, 3); err != nil || len(got) != 0 {
			t.Errorf("LatestJobRuns(no jobs) = %v, %v, want an empty map", got, err)
		}
		_, err = db.LatestJobRuns(ctx, []string{"a"}, 0)
		wantCode(t, "LatestJobRuns(perJob 0)", err, obsqra.EINVALID)
	})
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAbandonJobRuns(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now

		running := startRun(t, db, "a")
		startRun(t, db, "b")
		done := startRun(t, db, "c")
		finishRun(t, db, done.ID, obsqra.JobSucceeded, "")
		clock.Advance(time.Hour)

		n, err := db.AbandonJobRuns(ctx)
		if err != nil || n != 2 {
			t.Fatalf("AbandonJobRuns = %d, %v, want 2, nil", n, err)
		}
		abandonedAt := stampUTC(testTime.Add(time.Hour))
		for _, job := range []string{"a", "b"} {
			got := latestRun(t, db, job)
			if got.Outcome != obsqra.JobAbandoned || got.Error != "instance stopped before the run finished" ||
				got.FinishedAt == nil || !got.FinishedAt.Equal(abandonedAt) {
				t.Errorf("run of %s after AbandonJobRuns = %+v, want ABANDONED at %v", job, got, abandonedAt)
			}
		}
		if got := latestRun(t, db, "c"); got.Outcome != obsqra.JobSucceeded || got.FinishedAt.Equal(abandonedAt) {
			t.Errorf("finished run after AbandonJobRuns = %+v, want it unchanged", got)
		}
		// The old leader's late finish does not overwrite the verdict.
		wantCode(t, "FinishJobRun(abandoned run)", db.FinishJobRun(ctx, running.ID, obsqra.JobSucceeded, ""), obsqra.ECONFLICT)
		if n, err := db.AbandonJobRuns(ctx); err != nil || n != 0 {
			t.Fatalf("AbandonJobRuns again = %d, %v, want 0, nil", n, err)
		}
	})
}

func TestPruneJobRuns(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now

		oldDone := startRun(t, db, "old")
		finishRun(t, db, oldDone.ID, obsqra.JobSucceeded, "")
		oldRunning := startRun(t, db, "stuck")
		clock.Advance(48 * time.Hour)
		recent := startRun(t, db, "new")
		finishRun(t, db, recent.ID, obsqra.JobFailed, "x")

		n, err := db.PruneJobRuns(ctx, testTime.Add(24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PruneJobRuns = %d, %v, want 1, nil", n, err)
		}
		latest, err := db.LatestJobRuns(ctx, []string{"old", "stuck", "new"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(latest["old"]) != 0 || len(latest["stuck"]) != 1 || len(latest["new"]) != 1 {
			t.Errorf("after PruneJobRuns: %v, want only the old finished run gone", latest)
		}
		if latest["stuck"][0].ID != oldRunning.ID {
			t.Errorf("the running run was replaced: %+v", latest["stuck"])
		}
	})
}

func TestTryLeadSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := storetest.SQLite(t)
	l1, ok, err := db.TryLead(ctx, "scheduler")
	if err != nil || !ok {
		t.Fatalf("TryLead = %v, %v, %v, want a lease", l1, ok, err)
	}
	if err := l1.Check(ctx); err != nil {
		t.Fatalf("Check = %v, want nil", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatalf("Release = %v, want nil", err)
	}
	if err := l1.Check(ctx); err == nil {
		t.Fatal("Check after Release = nil, want an error")
	}
	_, _, err = db.TryLead(ctx, "")
	wantCode(t, `TryLead("")`, err, obsqra.EINVALID)
}

// TestTryLeadPostgres: two processes on one schema cannot both lead; a
// released lease or a session that dies hands the leadership over.
func TestTryLeadPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db1 := storetest.Postgres(t)
	db2 := storetest.Reopen(t, db1)
	elsewhere := storetest.Postgres(t) // another schema, another lock
	name := "test-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")

	l1, ok, err := db1.TryLead(ctx, name)
	if err != nil || !ok {
		t.Fatalf("db1.TryLead = %v, %v, want a lease", ok, err)
	}
	if err := l1.Check(ctx); err != nil {
		t.Fatalf("l1.Check = %v, want nil", err)
	}
	for _, db := range []*store.DB{db2, db1} { // db1 too: another session of the pool
		if l, ok, err := db.TryLead(ctx, name); err != nil || ok || l != nil {
			t.Fatalf("TryLead while another leads = %v, %v, %v, want nil, false, nil", l, ok, err)
		}
	}
	l3, ok, err := elsewhere.TryLead(ctx, name)
	if err != nil || !ok {
		t.Fatalf("TryLead in another schema = %v, %v, want a lease", ok, err)
	}
	if err := l3.Release(ctx); err != nil { // before terminateLeader looks for the leader of name
		t.Fatalf("Release in another schema = %v, want nil", err)
	}
	lOther, ok, err := db2.TryLead(ctx, name+"-other")
	if err != nil || !ok {
		t.Fatalf("TryLead of another name = %v, %v, want a lease", ok, err)
	}
	defer lOther.Release(ctx)

	// Released: the other process takes over.
	if err := l1.Release(ctx); err != nil {
		t.Fatalf("l1.Release = %v, want nil", err)
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatalf("l1.Release again = %v, want nil", err)
	}
	if err := l1.Check(ctx); err == nil {
		t.Fatal("l1.Check after Release = nil, want an error")
	}
	l2, ok, err := db2.TryLead(ctx, name)
	if err != nil || !ok {
		t.Fatalf("db2.TryLead after db1 released = %v, %v, want a lease", ok, err)
	}

	// The leader's connection dies (a crash, a network cut): its lease
	// fails its check and db1 takes over.
	terminateLeader(t, name)
	if err := l2.Check(ctx); err == nil {
		t.Fatal("l2.Check after its session was terminated = nil, want an error")
	}
	l4, ok, err := db1.TryLead(ctx, name)
	if err != nil || !ok {
		t.Fatalf("db1.TryLead after the leader's session died = %v, %v, want a lease", ok, err)
	}
	defer l4.Release(ctx)
	_ = l2.Release(ctx) // fails or not; the connection is discarded
	if err := db2.Ping(ctx); err != nil {
		t.Fatalf("db2 after releasing a dead lease: %v", err)
	}
	if l, ok, err := db2.TryLead(ctx, name); err != nil || ok || l != nil {
		t.Fatalf("db2.TryLead while db1 leads again = %v, %v, %v, want nil, false, nil", l, ok, err)
	}
}

// terminateLeader ends the server session that leads name, as a crash of
// its process would, and waits until it is gone.
func terminateLeader(t *testing.T, name string) {
	t.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		url = storetest.DefaultPostgresURL
	}
	admin, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// Find the pid first: in one statement PostgreSQL may well call
	// pg_terminate_backend before it filters on the name.
	var pids []int
	rows, err := admin.Query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", "obsqra leader "+name)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil || len(pids) != 1 {
		t.Fatalf("sessions leading %q: %v, %v; want one", name, pids, err)
	}
	var gone bool
	if err := admin.QueryRow("SELECT pg_terminate_backend($1, 10000)", pids[0]).Scan(&gone); err != nil || !gone {
		t.Fatalf("terminate session %d leading %q: %v, %v; want it gone", pids[0], name, gone, err)
	}
}
