package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
)

// t0 is when every fake clock starts.
var t0 = time.Date(2025, 11, 25, 12, 0, 0, 0, time.UTC)

// signal wakes the waiters of await whenever something they may wait for
// changed: the fakes and the scheduler's changed hook notify it.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// await returns once cond holds, checking it again at each notification of
// sig, and fails the test if that takes more than a generous real-time
// deadline (something is stuck).
func await(t testing.TB, sig *signal, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		ch := sig.wait()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// fakeClock is the shared test clock as a Clock: it moves only when the
// test advances it, and notifies its signal of every move and new timer.
type fakeClock struct{ *obsqratest.Clock }

func newFakeClock(sig *signal) *fakeClock {
	c := obsqratest.NewClock(t0)
	c.OnChange(sig.notify)
	return &fakeClock{c}
}

func (c *fakeClock) NewTimer(d time.Duration) Timer { return c.Clock.NewTimer(d) }

// fakeRecorder is a Recorder in memory, stamping runs with the fake clock.
type fakeRecorder struct {
	sig   *signal
	clock Clock

	mu       sync.Mutex
	runs     []obsqra.JobRun // runs[i].ID == i+1
	abandons int
}

func (r *fakeRecorder) StartJobRun(ctx context.Context, job, instance string) (obsqra.JobRun, error) {
	r.mu.Lock()
	run := obsqra.JobRun{ID: int64(len(r.runs) + 1), Job: job, Instance: instance, StartedAt: r.clock.Now(), Outcome: obsqra.JobRunning}
	r.runs = append(r.runs, run)
	r.mu.Unlock()
	r.sig.notify()
	return run, nil
}

func (r *fakeRecorder) FinishJobRun(ctx context.Context, id int64, outcome obsqra.JobOutcome, message string) error {
	r.mu.Lock()
	defer r.sig.notify()
	defer r.mu.Unlock()
	run := &r.runs[id-1]
	if run.Outcome != obsqra.JobRunning {
		return obsqra.Errorf(obsqra.ECONFLICT, "job run %d has already finished", id)
	}
	now := r.clock.Now()
	run.FinishedAt, run.Outcome, run.Error = &now, outcome, message
	return nil
}

func (r *fakeRecorder) AbandonJobRuns(ctx context.Context) (int64, error) {
	r.mu.Lock()
	defer r.sig.notify()
	defer r.mu.Unlock()
	r.abandons++
	var n int64
	for i := range r.runs {
		if r.runs[i].Outcome == obsqra.JobRunning {
			now := r.clock.Now()
			r.runs[i].FinishedAt, r.runs[i].Outcome, r.runs[i].Error = &now, obsqra.JobAbandoned, "instance stopped before the run finished"
			n++
		}
	}
	return n, nil
}

func (r *fakeRecorder) LatestJobRuns(ctx context.Context, jobs []string, perJob int) (map[string][]obsqra.JobRun, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	latest := map[string][]obsqra.JobRun{}
	for i := len(r.runs) - 1; i >= 0; i-- {
		run := r.runs[i]
		if slices.Contains(jobs, run.Job) && len(latest[run.Job]) < perJob {
			latest[run.Job] = append(latest[run.Job], run)
		}
	}
	return latest, nil
}

func (r *fakeRecorder) PruneJobRuns(ctx context.Context, before time.Time) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for i := range r.runs {
		// Pruned runs keep their slot, as runs[i].ID == i+1 requires.
		if run := &r.runs[i]; run.Job != "" && run.FinishedAt != nil && run.StartedAt.Before(before) {
			*run = obsqra.JobRun{ID: run.ID}
			n++
		}
	}
	return n, nil
}

// of returns the runs of job, oldest first.
func (r *fakeRecorder) of(job string) []obsqra.JobRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	var runs []obsqra.JobRun
	for _, run := range r.runs {
		if run.Job == job {
			runs = append(runs, run)
		}
	}
	return runs
}

// finished returns how many runs of job have finished.
func (r *fakeRecorder) finished(job string) int {
	n := 0
	for _, run := range r.of(job) {
		if run.Outcome != obsqra.JobRunning {
			n++
		}
	}
	return n
}

func (r *fakeRecorder) abandoned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.abandons
}

// fakeElector is one lock shared by the schedulers that use it: TryLead
// grants it when it is open and no lease holds it.
type fakeElector struct {
	sig *signal

	mu     sync.Mutex
	closed bool // another instance, not a scheduler of the test, leads
	holder *fakeLease
	tries  int
	leases []*fakeLease
}

type fakeLease struct {
	e        *fakeElector
	lost     bool // Check fails
	released bool
	checks   int
}

func (e *fakeElector) TryLead(ctx context.Context, name string) (Lease, bool, error) {
	e.mu.Lock()
	defer e.sig.notify()
	defer e.mu.Unlock()
	e.tries++
	if e.closed || (e.holder != nil && !e.holder.released && !e.holder.lost) {
		return nil, false, nil
	}
	e.holder = &fakeLease{e: e}
	e.leases = append(e.leases, e.holder)
	return e.holder, true, nil
}

func (e *fakeElector) setClosed(v bool) {
	e.mu.Lock()
	e.closed = v
	e.mu.Unlock()
}

// lose makes the current lease fail its next check.
func (e *fakeElector) lose() {
	e.mu.Lock()
	e.holder.lost = true
	e.mu.Unlock()
}

func (e *fakeElector) state() (tries int, leases []fakeLease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.leases {
		leases = append(leases, *l)
	}
	return e.tries, leases
}

func (l *fakeLease) Check(ctx context.Context) error {
	l.e.mu.Lock()
	defer l.e.sig.notify()
	defer l.e.mu.Unlock()
	l.checks++
	if l.lost || l.released {
		return errors.New("lease lost")
	}
	return nil
}

func (l *fakeLease) Release(ctx context.Context) error {
	l.e.mu.Lock()
	defer l.e.sig.notify()
	defer l.e.mu.Unlock()
	l.released = true
	return nil
}

// bundle holds the collaborators of a Scheduler under test.
type bundle struct {
	sig      *signal
	clock    *fakeClock
	recorder *fakeRecorder
	elector  *fakeElector
	observer *fakeObserver
	logs     *obsqratest.Buffer
}

// fakeObserver records what the scheduler tells its Observer.
type fakeObserver struct {
	mu      sync.Mutex
	runs    []string // "job outcome took"
	leading []bool
}

func (o *fakeObserver) JobRun(job string, outcome obsqra.JobOutcome, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.runs = append(o.runs, fmt.Sprintf("%s %s %s", job, outcome, took))
}

func (o *fakeObserver) Leading(leads bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.leading = append(o.leading, leads)
}

// seen returns the runs and the changes of leadership observed so far.
func (o *fakeObserver) seen() (runs []string, leading []bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.runs), slices.Clone(o.leading)
}

// setup returns a Scheduler of jobs on fakes, with cfg's fields that the
// fakes do not set (the fakes' zero fields are filled in), and its bundle.
func setup(t *testing.T, cfg Config, jobs ...Job) (*Scheduler, *bundle) {
	t.Helper()
	b := &bundle{sig: &signal{}, logs: &obsqratest.Buffer{}}
	b.clock = newFakeClock(b.sig)
	b.recorder = &fakeRecorder{sig: b.sig, clock: b.clock}
	b.elector = &fakeElector{sig: b.sig}
	b.observer = &fakeObserver{}
	if cfg.Observer == nil {
		cfg.Observer = b.observer
	}
	if cfg.Recorder == nil {
		cfg.Recorder = b.recorder
	}
	if cfg.Elector == nil {
		cfg.Elector = b.elector
	}
	if cfg.Clock == nil {
		cfg.Clock = b.clock
	}
	cfg.Instance = cmp.Or(cfg.Instance, "test:1")
	cfg.Logger = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := New(cfg, jobs...)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	s.changed = b.sig.notify
	return s, b
}

// start runs s until the test ends or the returned stop is called; stop
// waits for Run to return.
func start(t *testing.T, s *Scheduler, sig *signal) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx)
		sig.notify()
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// nextDue returns when job is due next on s, or the zero time.
func nextDue(s *Scheduler, job string) time.Time {
	next, _ := s.byName[job].state()
	if next == nil {
		return time.Time{}
	}
	return *next
}

func running(s *Scheduler, job string) bool {
	_, r := s.byName[job].state()
	return r
}

// awaitDue waits until job waits for its next run at at (its timer is set).
func awaitDue(t *testing.T, s *Scheduler, b *bundle, job string, at time.Time) {
	t.Helper()
	await(t, b.sig, job+" due at "+at.Format(time.TimeOnly), func() bool { return nextDue(s, job).Equal(at) })
}

// awaitFinished waits until n runs of job have finished.
func awaitFinished(t *testing.T, b *bundle, job string, n int) []obsqra.JobRun {
	t.Helper()
	await(t, b.sig, "runs of "+job+" finished", func() bool { return b.recorder.finished(job) >= n })
	runs := b.recorder.of(job)
	if got := b.recorder.finished(job); got != n {
		t.Fatalf("%d runs of %s finished, want %d: %+v", got, job, n, runs)
	}
	return runs
}
