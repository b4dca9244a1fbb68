package scheduler

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/obsqra/obsqra"
)

// loop runs j for one term of leadership: at once, then after each wait,
// until stop (Run's context) or term ends, or a run is abandoned.
func (s *Scheduler) loop(stop, term context.Context, j *job) {
	// A trigger left from an earlier term is served by the first run.
	select {
	case <-j.trigger:
	default:
	}
	failures := 0
	for first := true; ; first = false {
		if !first && !s.due(stop, term, j, s.wait(j, failures)) {
			return
		}
		if stop.Err() != nil || term.Err() != nil {
			return
		}
		r := s.runOnce(stop, term, j)
		if r.outcome == obsqra.JobSucceeded {
			failures = 0
		} else {
			failures++
		}
		log := s.log.With("job", j.Name, "run_id", r.run.ID)
		switch r.outcome {
		case obsqra.JobSucceeded:
			log.Debug("job succeeded", "duration", r.took)
		case obsqra.JobAbandoned:
			log.Info("job run abandoned", "reason", r.message)
			return
		case obsqra.JobTimedOut:
			log.Warn("job timed out", "timeout", j.Timeout, "failures", failures)
		case obsqra.JobFailed:
			if r.panic != nil {
				log.Error("job panicked", "panic", fmt.Sprint(r.panic.value), "stack", string(r.panic.stack), "failures", failures)
			} else {
				log.Warn("job failed", "error", r.message, "duration", r.took, "failures", failures)
			}
		}
	}
}

// wait returns how long j waits after a run, with failures consecutive
// failures behind it (see Run).
func (s *Scheduler) wait(j *job, failures int) time.Duration {
	d := j.Interval + backoff(j.Interval, failures, s.maxBackoff)
	if j.Jitter > 0 {
		d += time.Duration(j.rng.Int64N(int64(j.Jitter)))
	}
	return d
}

// backoff returns what n consecutive failures add to interval:
// interval·(2^n − 1), so that the wait doubles with each failure, but at
// most 15·interval (waits stop at 16 intervals) and at most maxBackoff.
func backoff(interval time.Duration, n int, maxBackoff time.Duration) time.Duration {
	limit := maxBackoff
	if interval <= limit/15 {
		limit = 15 * interval
	}
	var extra time.Duration
	for step := interval; n > 0; n-- {
		if step >= limit-extra {
			return limit
		}
		extra += step
		step *= 2
	}
	return extra
}

// due waits d for j's next run, less when j is triggered, and reports
// false when stop or term ended first.
func (s *Scheduler) due(stop, term context.Context, j *job, d time.Duration) bool {
	next := s.clock.Now().Add(d)
	t := s.clock.NewTimer(d)
	defer t.Stop()
	// Set after the timer exists: whoever sees when j is due may move the
	// clock there.
	s.setNext(j, &next)
	defer s.setNext(j, nil)
	select {
	case <-t.C():
		return true
	case <-j.trigger:
		return true
	case <-stop.Done():
		return false
	case <-term.Done():
		return false
	}
}

// result is how a run went.
type result struct {
	run     obsqra.JobRun // ID 0 when the start could not be recorded
	outcome obsqra.JobOutcome
	message string
	took    time.Duration
	panic   *panicError
}

// runOnce runs j once, records the run and returns how it went. It returns
// once the run has returned, so that runs of a job never overlap, unless
// the run outlives its timeout and stop or term ends meanwhile: a run that
// ignores its context is then left behind.
func (s *Scheduler) runOnce(stop, term context.Context, j *job) result {
	// The run's time starts before it shows as running: whoever sees it
	// running (Jobs, a test that then moves the clock) sees a start
	// already taken.
	start := s.clock.Now()
	s.setRunning(j, true)
	defer s.setRunning(j, false)

	var r result
	sctx, cancel := context.WithTimeout(term, ioTimeout)
	run, err := s.recorder.StartJobRun(sctx, j.Name, s.instance)
	cancel()
	if err != nil {
		// Run the job all the same: the record is for people, the work is
		// what matters.
		s.log.Warn("could not record the start of a job run", "job", j.Name, "error", err)
	}
	r.run = run

	ctx, cancelRun := context.WithCancelCause(term)
	defer cancelRun(errRunOver)
	done := make(chan error, 1)
	go func() { done <- call(ctx, j.Run) }()
	timeout := s.clock.NewTimer(j.Timeout)
	defer timeout.Stop()

	returned := false
	select {
	case err = <-done:
		returned = true
	case <-timeout.C():
		cancelRun(errTimedOut)
	}
	r.took = s.clock.Now().Sub(start)
	switch {
	case returned && err == nil:
		r.outcome = obsqra.JobSucceeded
	case term.Err() != nil:
		r.outcome, r.message = obsqra.JobAbandoned, "the scheduler lost its leadership before the run finished"
	case !returned:
		r.outcome, r.message = obsqra.JobTimedOut, fmt.Sprintf("timed out after %s", j.Timeout)
	default:
		r.outcome, r.message = obsqra.JobFailed, err.Error()
		errors.As(err, &r.panic)
	}
	s.observer.JobRun(j.Name, r.outcome, r.took)
	s.finish(term, j, r)

	if !returned {
		select {
		case <-done:
		case <-stop.Done():
		case <-term.Done():
		}
	}
	return r
}

// finish records how run r of j ended. The record is made even when the
// term has ended (an abandoned run is recorded too).
func (s *Scheduler) finish(term context.Context, j *job, r result) {
	if r.run.ID == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(term), ioTimeout)
	defer cancel()
	if err := s.recorder.FinishJobRun(ctx, r.run.ID, r.outcome, r.message); err != nil {
		// ECONFLICT: a new leader has closed the run already.
		s.log.Warn("could not record the end of a job run", "job", j.Name, "run_id", r.run.ID, "outcome", r.outcome, "error", err)
	}
}

// panicError is a panic recovered from a job's Run.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// call runs run, turning a panic into a *panicError.
func call(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return run(ctx)
}
