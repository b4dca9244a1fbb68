// Package scheduler runs named periodic jobs on one instance among the many
// that share a database: the leader, elected through the database (a
// PostgreSQL advisory lock; on SQLite the one process leads). It records
// every run, backs off from a failing job, survives a panicking one, stops
// the jobs when it loses the leadership, and lets runs in flight finish
// when it stops.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obsqra/obsqra"
)

// Recorder keeps the runs of the jobs; *store.DB is one.
type Recorder interface {
	// StartJobRun records that instance started a run of job.
	StartJobRun(ctx context.Context, job, instance string) (obsqra.JobRun, error)
	// FinishJobRun records how run id ended, once.
	FinishJobRun(ctx context.Context, id int64, outcome obsqra.JobOutcome, message string) error
	// AbandonJobRuns marks every unfinished run ABANDONED.
	AbandonJobRuns(ctx context.Context) (int64, error)
	// LatestJobRuns returns the newest perJob runs of each job, newest first.
	LatestJobRuns(ctx context.Context, jobs []string, perJob int) (map[string][]obsqra.JobRun, error)
	// PruneJobRuns deletes the finished runs started before before and
	// returns how many it deleted.
	PruneJobRuns(ctx context.Context, before time.Time) (int64, error)
}

// Lease is a leadership that an Elector granted: Check returns an error once
// it is lost, Release gives it up. It is the same interface literal as
// store.Lease (an alias, not a named type), so that *store.DB satisfies
// Elector without this package importing store.
type Lease = interface {
	Check(ctx context.Context) error
	Release(ctx context.Context) error
}

// Elector grants the leadership called name to one instance at a time;
// *store.DB is one. TryLead does not wait: it returns false when another
// instance leads.
type Elector interface {
	TryLead(ctx context.Context, name string) (Lease, bool, error)
}

// Job is a named periodic job.
type Job struct {
	// Name identifies the job in runs and logs; unique in a Scheduler.
	Name string
	// Interval is the wait between the end of a run and the start of the
	// next (before jitter and backoff). Positive, at most MaxDuration.
	Interval time.Duration
	// Timeout bounds a run: its context is cancelled then and the run is
	// recorded TIMED_OUT. Positive, at most MaxDuration.
	Timeout time.Duration
	// Jitter, when positive, adds to each wait a random duration in
	// [0, Jitter), so that jobs of equal intervals spread out. At most
	// MaxDuration.
	Jitter time.Duration
	// Run does the work. It must return when its context ends; context.Cause
	// then tells why (timeout, lost leadership). A panic in Run (not in
	// goroutines it starts) is recovered and recorded as a failure.
	Run func(ctx context.Context) error
}

// MaxDuration bounds a job's Interval, Timeout and Jitter and a
// Config.MaxBackoff: a year is more than any job needs, and it keeps the
// arithmetic of waits far from overflowing.
const MaxDuration = 366 * 24 * time.Hour

// Config configures a Scheduler.
type Config struct {
	// Recorder records every run. Required.
	Recorder Recorder
	// Elector decides which instance leads. Required.
	Elector Elector
	// Name is the leadership the instances compete for: schedulers of one
	// database with the same Name elect one leader among them. Default
	// "scheduler".
	Name string
	// Instance names this process in the runs it records. Default
	// "hostname:pid".
	Instance string
	// Logger receives the scheduler's logs. Default slog.Default().
	Logger *slog.Logger
	// Clock tells the time. Default the system clock.
	Clock Clock
	// Seed seeds the jitter. Each job draws from its own source, derived
	// from Seed and its name, so one seed gives each job the same waits
	// whatever the other jobs do. Default 0: a random seed.
	Seed uint64
	// LeaderPoll is how often a follower tries to lead and a leader checks
	// that it still does. Default 5 s.
	LeaderPoll time.Duration
	// MaxBackoff is the most that failures can add to a job's interval
	// (see Scheduler.Run). Default 1 h.
	MaxBackoff time.Duration
	// Observer is told of every run and of each change of leadership, for
	// metrics. Default: nobody.
	Observer Observer
}

// Observer is told what a Scheduler does (*telemetry.Jobs is one). Its
// methods must be quick: they are called on the scheduler's goroutines.
type Observer interface {
	// JobRun: a run of job ended with outcome after took (on the
	// scheduler's clock), as it is about to be recorded.
	JobRun(job string, outcome obsqra.JobOutcome, took time.Duration)
	// Leading: this instance began (true) or stopped (false) leading.
	Leading(leads bool)
}

// nobody is the Observer that ignores everything.
type nobody struct{}

func (nobody) JobRun(string, obsqra.JobOutcome, time.Duration) {}
func (nobody) Leading(bool)                                    {}

// Defaults of Config.
const (
	// DefaultName is the leadership schedulers compete for by default.
	DefaultName = "scheduler"
	// DefaultLeaderPoll is how often, by default, a follower tries to lead
	// and a leader checks that it still does.
	DefaultLeaderPoll = 5 * time.Second
	// DefaultMaxBackoff is the most, by default, that failures add to a
	// job's interval.
	DefaultMaxBackoff = time.Hour
)

// LastRuns is how many runs of each job Jobs returns.
const LastRuns = 10

// ioTimeout bounds each call to the Recorder and the Elector, in real time:
// the scheduler must not hang on a database that does not answer.
const ioTimeout = 10 * time.Second

// Causes of the cancellation of a run's context, for context.Cause.
var (
	errTimedOut       = errors.New("job run timed out")
	errLostLeadership = errors.New("scheduler lost its leadership")
	errRunOver        = errors.New("job run is over")
	errTermOver       = errors.New("scheduler stopped leading")
)

// Scheduler runs jobs on the leader only. Create it with New, then call Run.
// Its methods are safe for concurrent use.
type Scheduler struct {
	recorder   Recorder
	elector    Elector
	name       string
	instance   string
	log        *slog.Logger
	clock      Clock
	poll       time.Duration
	maxBackoff time.Duration
	observer   Observer

	jobs   []*job
	byName map[string]*job

	leader atomic.Bool
	active atomic.Bool // Run is running

	// changed, when set (by tests), is called after each change of the
	// state that Leader and Jobs report, so that a test can wait for a
	// state instead of sleeping.
	changed func()
}

// job is a Job and its state.
type job struct {
	Job
	// rng draws the jitter. Only the job's loop uses it, and loops of
	// successive leadership terms never overlap.
	rng *rand.Rand
	// trigger holds a pending (*Scheduler).trigger.
	trigger chan struct{}

	mu      sync.Mutex
	next    *time.Time // when the next run is due; nil while running or not leading
	running bool
}

// New returns a Scheduler of jobs.
// Errors: EINVALID for a config without Recorder or Elector, a negative
// LeaderPoll or MaxBackoff, or a job without a name, with a name already
// taken, without Run, or with an Interval, Timeout or Jitter out of range.
func New(cfg Config, jobs ...Job) (*Scheduler, error) {
	if cfg.Recorder == nil || cfg.Elector == nil {
		return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler needs a recorder and an elector")
	}
	if cfg.LeaderPoll < 0 || cfg.MaxBackoff < 0 || cfg.MaxBackoff > MaxDuration {
		return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler leader poll %s and max backoff %s must be positive (or 0 for the default), the backoff at most %s", cfg.LeaderPoll, cfg.MaxBackoff, MaxDuration)
	}
	s := &Scheduler{
		recorder:   cfg.Recorder,
		elector:    cfg.Elector,
		name:       cmp.Or(cfg.Name, DefaultName),
		instance:   cfg.Instance,
		log:        cfg.Logger,
		clock:      cfg.Clock,
		poll:       cmp.Or(cfg.LeaderPoll, DefaultLeaderPoll),
		maxBackoff: cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff),
		observer:   cfg.Observer,
		byName:     make(map[string]*job, len(jobs)),
		changed:    func() {},
	}
	if s.instance == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown"
		}
		s.instance = host + ":" + strconv.Itoa(os.Getpid())
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.observer == nil {
		s.observer = nobody{}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for _, j := range jobs {
		switch {
		case j.Name == "":
			return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler job needs a name")
		case s.byName[j.Name] != nil:
			return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler job %q is defined twice", j.Name)
		case j.Run == nil:
			return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler job %q has no Run", j.Name)
		case j.Interval <= 0 || j.Interval > MaxDuration || j.Timeout <= 0 || j.Timeout > MaxDuration:
			return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler job %q: interval %s and timeout %s must be positive and at most %s", j.Name, j.Interval, j.Timeout, MaxDuration)
		case j.Jitter < 0 || j.Jitter > MaxDuration:
			return nil, obsqra.Errorf(obsqra.EINVALID, "scheduler job %q: jitter %s must be between 0 and %s", j.Name, j.Jitter, MaxDuration)
		}
		h := fnv.New64a()
		h.Write([]byte(j.Name))
		sj := &job{Job: j, rng: rand.New(rand.NewPCG(seed, h.Sum64())), trigger: make(chan struct{}, 1)}
		s.jobs = append(s.jobs, sj)
		s.byName[j.Name] = sj
	}
	return s, nil
}

// Leader reports whether this instance leads and schedules the jobs.
func (s *Scheduler) Leader() bool { return s.leader.Load() }

// PruneRuns deletes the records of the runs, of every instance, that
// finished and started before before; runs still going stay whatever their
// age. It returns how many it deleted. Errors: only internal ones.
func (s *Scheduler) PruneRuns(ctx context.Context, before time.Time) (int64, error) {
	return s.recorder.PruneJobRuns(ctx, before)
}

func (s *Scheduler) setLeader(v bool) {
	s.leader.Store(v)
	s.observer.Leading(v)
	s.changed()
}

// trigger makes the job called name run now, or as soon as its run in
// flight ends. Triggers made while one is pending count once. Only the
// tests trigger a job today; it stays unexported until an operation needs
// it. The run is
// recorded like any other, and the job's next wait counts from its end.
// Errors: ENOTFOUND for an unknown job; ECONFLICT when this instance does
// not lead (trigger it on the leader).
func (s *Scheduler) trigger(name string) error {
	j := s.byName[name]
	if j == nil {
		return obsqra.Errorf(obsqra.ENOTFOUND, "scheduler job %q not found", name)
	}
	if !s.Leader() {
		return obsqra.Errorf(obsqra.ECONFLICT, "this instance does not run the scheduler's jobs; trigger %q on the leader", name)
	}
	select {
	case j.trigger <- struct{}{}:
	default: // one is pending already
	}
	return nil
}

// Jobs returns every job in the order New was given them: its interval and
// timeout, when it is due next (nil unless this instance leads and the job
// waits), whether this instance runs it now, and its last LastRuns runs on
// any instance, newest first, read in one call to the Recorder.
// Errors: internal ones (the runs cannot be read).
func (s *Scheduler) Jobs(ctx context.Context) ([]obsqra.SchedulerJob, error) {
	names := make([]string, len(s.jobs))
	for i, j := range s.jobs {
		names[i] = j.Name
	}
	latest, err := s.recorder.LatestJobRuns(ctx, names, LastRuns)
	if err != nil {
		return nil, fmt.Errorf("load last runs of scheduler jobs: %w", err)
	}
	leader := s.Leader()
	out := make([]obsqra.SchedulerJob, len(s.jobs))
	for i, j := range s.jobs {
		next, running := j.state()
		if !leader {
			next = nil
		}
		out[i] = obsqra.SchedulerJob{
			Name:      j.Name,
			Interval:  j.Interval,
			Timeout:   j.Timeout,
			NextDueAt: next,
			Running:   running,
			LastRuns:  latest[j.Name],
		}
	}
	return out, nil
}

// Run schedules the jobs until ctx ends, then returns nil.
//
// It follows until it wins the leadership, trying every LeaderPoll. As the
// leader it first marks ABANDONED the runs that a previous leader left
// RUNNING (it crashed or was cut off), then runs every job at once and
// then after each wait, each job in its own goroutine, never two runs of a
// job at once. A wait is the job's Interval, plus a random jitter in
// [0, Jitter), plus, after n consecutive failed or timed-out runs, a
// backoff of Interval·(2^n − 1), so the wait doubles with each failure, up
// to 16·Interval, and the backoff is at most MaxBackoff (so a daily job that
// fails is not put off for weeks). Backing off keeps a job from hammering a
// dependency that is down; a success resets it. A run's error is recorded
// and logged; a panic is recovered, recorded as FAILED and logged with its
// stack.
//
// The leader checks every LeaderPoll that it still leads. When it no
// longer does, it cancels the runs in flight (recorded ABANDONED), waits for
// them to return (each at most until its Timeout), and follows again from
// the next poll. When ctx ends it starts no new run, lets the runs in flight
// finish (each at most until its Timeout, when it is cancelled and recorded
// TIMED_OUT), releases the leadership and returns.
// Errors: only when Run is running already.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.active.CompareAndSwap(false, true) {
		return errors.New("scheduler is running already")
	}
	defer s.active.Store(false)
	s.log.Info("scheduler started", "instance", s.instance, "leadership", s.name, "jobs", len(s.jobs))
	for {
		tctx, cancel := context.WithTimeout(ctx, ioTimeout)
		lease, ok, err := s.elector.TryLead(tctx, s.name)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("scheduler could not try to lead", "leadership", s.name, "error", err)
		case err == nil && ok:
			s.lead(ctx, lease)
		}
		if ctx.Err() != nil || !s.sleep(ctx, s.poll) {
			s.log.Info("scheduler stopped", "instance", s.instance)
			return nil
		}
	}
}

// sleep waits d on the clock, and reports false when ctx ended first.
func (s *Scheduler) sleep(ctx context.Context, d time.Duration) bool {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}

// lead runs the jobs for one term of leadership, until ctx ends or the
// lease is lost, and releases the lease.
func (s *Scheduler) lead(ctx context.Context, lease Lease) {
	log := s.log.With("leadership", s.name, "instance", s.instance)
	// Runs in flight outlive ctx (they may finish when it ends), so the
	// term's context is detached from it; it ends when the lease is lost
	// or the term is over.
	term, endTerm := context.WithCancelCause(context.WithoutCancel(ctx))
	defer endTerm(errTermOver)

	actx, cancel := context.WithTimeout(term, ioTimeout)
	n, err := s.recorder.AbandonJobRuns(actx)
	cancel()
	if err != nil {
		log.Warn("scheduler could not close the runs of a previous leader", "error", err)
	} else if n > 0 {
		log.Info("scheduler closed the runs of a previous leader as abandoned", "runs", n)
	}

	s.setLeader(true)
	log.Info("scheduler leads")
	var loops sync.WaitGroup
	for _, j := range s.jobs {
		loops.Go(func() { s.loop(ctx, term, j) })
	}
	lost := s.hold(ctx, lease)
	s.setLeader(false)
	if lost != nil {
		log.Warn("scheduler lost its leadership; stopping its jobs", "error", lost)
		endTerm(errLostLeadership)
	}
	loops.Wait()

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ioTimeout)
	defer cancel()
	if err := lease.Release(rctx); err != nil {
		log.Warn("scheduler could not release its leadership", "error", err)
	}
	log.Info("scheduler stopped leading")
}

// hold checks the lease every LeaderPoll. It returns the check's error
// when the lease is lost, and nil when ctx ends.
//
// A check that does not answer within LeaderPoll counts as lost: an
// instance that cannot tell whether it leads must not go on as the leader.
// (A check blocked in the network longer than that, beyond the database
// driver's cancellation, would delay the stop; the runs, which need the
// database too, would fail meanwhile.)
func (s *Scheduler) hold(ctx context.Context, lease Lease) error {
	for s.sleep(ctx, s.poll) {
		cctx, cancel := context.WithTimeout(ctx, s.poll)
		err := lease.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// state returns when j is due next and whether it runs.
func (j *job) state() (*time.Time, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.next == nil {
		return nil, j.running
	}
	next := *j.next
	return &next, j.running
}

func (s *Scheduler) setNext(j *job, next *time.Time) {
	j.mu.Lock()
	j.next = next
	j.mu.Unlock()
	s.changed()
}

func (s *Scheduler) setRunning(j *job, running bool) {
	j.mu.Lock()
	j.running = running
	j.mu.Unlock()
	s.changed()
}
