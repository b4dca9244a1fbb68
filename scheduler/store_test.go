package scheduler

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// The store is what the scheduler runs on.
var (
	_ Recorder = (*store.DB)(nil)
	_ Elector  = (*store.DB)(nil)
)

// notifyingStore is the real store, notifying sig after each call that the
// scheduler makes, so that a test can wait for its effects.
type notifyingStore struct {
	*store.DB
	sig   *signal
	tries *atomic.Int64
}

func newNotifyingStore(db *store.DB, sig *signal) notifyingStore {
	return notifyingStore{DB: db, sig: sig, tries: new(atomic.Int64)}
}

func (n notifyingStore) StartJobRun(ctx context.Context, job, instance string) (obsqra.JobRun, error) {
	defer n.sig.notify()
	return n.DB.StartJobRun(ctx, job, instance)
}

func (n notifyingStore) FinishJobRun(ctx context.Context, id int64, outcome obsqra.JobOutcome, message string) error {
	defer n.sig.notify()
	return n.DB.FinishJobRun(ctx, id, outcome, message)
}

func (n notifyingStore) TryLead(ctx context.Context, name string) (Lease, bool, error) {
	defer n.sig.notify()
	defer n.tries.Add(1)
	return n.DB.TryLead(ctx, name)
}

// runsIn returns the runs of job in db, newest first.
func runsIn(t *testing.T, db *store.DB, job string) []obsqra.JobRun {
	t.Helper()
	latest, err := db.LatestJobRuns(context.Background(), []string{job}, 100)
	if err != nil {
		t.Fatalf("LatestJobRuns = %v", err)
	}
	return latest[job]
}

// finishedIn counts the finished runs of job in db by instance.
func finishedIn(t *testing.T, db *store.DB, job, instance string) int {
	t.Helper()
	n := 0
	for _, r := range runsIn(t, db, job) {
		if r.Instance == instance && r.Outcome != obsqra.JobRunning {
			n++
		}
	}
	return n
}

var discard = slog.New(slog.DiscardHandler)

func uniqueName() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "test-" + hex.EncodeToString(b)
}

// TestWithStore runs a scheduler on the real store of each dialect: runs
// are recorded, and a run left RUNNING by a crashed leader is abandoned.
func TestWithStore(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		crashed, err := db.StartJobRun(ctx, "ok", "crashed:1")
		if err != nil {
			t.Fatal(err)
		}
		sig := &signal{}
		clock := newFakeClock(sig)
		ns := newNotifyingStore(db, sig)
		s, err := New(Config{Recorder: ns, Elector: ns, Name: uniqueName(), Instance: "one", Clock: clock, LeaderPoll: time.Hour, Seed: 1, Logger: discard},
			Job{Name: "ok", Interval: time.Minute, Timeout: time.Minute, Run: succeed},
			Job{Name: "bad", Interval: time.Minute, Timeout: time.Minute, Run: func(context.Context) error { return errors.New("nope") }},
		)
		if err != nil {
			t.Fatal(err)
		}
		s.changed = sig.notify
		start(t, s, sig)

		await(t, sig, "first runs recorded", func() bool {
			return finishedIn(t, db, "ok", "one") == 1 && finishedIn(t, db, "bad", "one") == 1
		})
		awaitDueOn(t, s, sig, "ok", t0.Add(time.Minute))
		clock.Advance(time.Minute)
		await(t, sig, "second run of ok recorded", func() bool { return finishedIn(t, db, "ok", "one") == 2 })

		ok := runsIn(t, db, "ok")
		if len(ok) != 3 || ok[0].Outcome != obsqra.JobSucceeded || ok[1].Outcome != obsqra.JobSucceeded || ok[0].FinishedAt == nil {
			t.Errorf("runs of ok = %+v, want two SUCCEEDED after the crashed one", ok)
		}
		if c := ok[2]; c.ID != crashed.ID || c.Outcome != obsqra.JobAbandoned || c.FinishedAt == nil {
			t.Errorf("the crashed leader's run = %+v, want ABANDONED", c)
		}
		if bad := runsIn(t, db, "bad"); len(bad) != 1 || bad[0].Outcome != obsqra.JobFailed || bad[0].Error != "nope" {
			t.Errorf("runs of bad = %+v, want one FAILED %q", bad, "nope")
		}
		jobs, err := s.Jobs(ctx)
		if err != nil || len(jobs) != 2 || len(jobs[0].LastRuns) != 3 || jobs[0].LastRuns[0].ID != ok[0].ID || len(jobs[1].LastRuns) != 1 {
			t.Errorf("Jobs = %+v, %v; want the runs of the store", jobs, err)
		}
	})
}

func awaitDueOn(t *testing.T, s *Scheduler, sig *signal, job string, at time.Time) {
	t.Helper()
	await(t, sig, job+" due", func() bool { return nextDue(s, job).Equal(at) })
}

// TestLeaderHandover: two schedulers on two connection pools of one
// PostgreSQL schema (two server processes). Exactly one runs the jobs; when
// it stops, or its database session dies, the other takes over at its next
// poll.
func TestLeaderHandover(t *testing.T) {
	t.Parallel()
	db1 := storetest.Postgres(t)
	db2 := storetest.Reopen(t, db1)
	name := uniqueName()
	sig := &signal{}
	const poll = 5 * time.Second
	newScheduler := func(db *store.DB, instance string) (*Scheduler, *fakeClock, notifyingStore) {
		clock := newFakeClock(sig)
		ns := newNotifyingStore(db, sig)
		s, err := New(Config{Recorder: ns, Elector: ns, Name: name, Instance: instance, Clock: clock, LeaderPoll: poll, Seed: 1, Logger: discard},
			Job{Name: "j", Interval: time.Hour, Timeout: time.Minute, Run: succeed})
		if err != nil {
			t.Fatal(err)
		}
		s.changed = sig.notify
		return s, clock, ns
	}
	s1, clock1, ns1 := newScheduler(db1, "one")
	s2, clock2, ns2 := newScheduler(db2, "two")
	// followerPolls waits until ns has tried to lead tries times and waits
	// for its next poll on clock.
	followerPolls := func(ns notifyingStore, clock *fakeClock, tries int64) {
		t.Helper()
		await(t, sig, "a follower's poll", func() bool {
			return ns.tries.Load() == tries && clock.TimersAt(clock.Now().Add(poll)) == 1
		})
	}

	stop1 := start(t, s1, sig)
	await(t, sig, "one leads and runs j", func() bool { return s1.Leader() && finishedIn(t, db1, "j", "one") == 1 })
	start(t, s2, sig)
	for try := int64(1); try <= 2; try++ {
		followerPolls(ns2, clock2, try)
		if s2.Leader() {
			t.Fatal("two leads while one does")
		}
		clock2.Advance(poll)
	}
	followerPolls(ns2, clock2, 3)

	// One stops and releases: two leads from its next poll.
	stop1()
	if s1.Leader() {
		t.Fatal("one still leads after Run returned")
	}
	clock2.Advance(poll)
	await(t, sig, "two leads and runs j", func() bool { return s2.Leader() && finishedIn(t, db1, "j", "two") == 1 })

	// One follows again; two's session dies: one leads from its next poll,
	// and two finds out at its next check.
	start(t, s1, sig)
	followerPolls(ns1, clock1, 2)
	terminateLeader(t, name)
	clock1.Advance(poll)
	await(t, sig, "one leads again and runs j", func() bool { return s1.Leader() && finishedIn(t, db1, "j", "one") == 2 })
	await(t, sig, "two's check timer", func() bool { return clock2.TimersAt(clock2.Now().Add(poll)) == 1 })
	clock2.Advance(poll)
	await(t, sig, "two to follow", func() bool { return !s2.Leader() && ns2.tries.Load() == 4 })
	if !s1.Leader() {
		t.Error("one lost the leadership when two stepped down")
	}
	for _, r := range runsIn(t, db1, "j") {
		if r.Outcome != obsqra.JobSucceeded {
			t.Errorf("run %+v, want every run SUCCEEDED", r)
		}
	}
}

// terminateLeader ends the database session that leads name, as a crash of
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
	var pid int
	if err := admin.QueryRow("SELECT pid FROM pg_stat_activity WHERE application_name = $1", "obsqra leader "+name).Scan(&pid); err != nil {
		t.Fatalf("find the session leading %q: %v", name, err)
	}
	var gone bool
	if err := admin.QueryRow("SELECT pg_terminate_backend($1, 10000)", pid).Scan(&gone); err != nil || !gone {
		t.Fatalf("terminate session %d leading %q: %v, %v; want it gone", pid, name, gone, err)
	}
}
