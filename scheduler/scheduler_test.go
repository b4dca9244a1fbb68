package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

func succeed(context.Context) error { return nil }

func TestNewValidates(t *testing.T) {
	t.Parallel()
	rec, el := &fakeRecorder{}, &fakeElector{}
	good := Job{Name: "a", Interval: time.Minute, Timeout: time.Second, Run: succeed}
	with := func(f func(*Job)) Job { j := good; f(&j); return j }
	tests := []struct {
		name string
		cfg  Config
		jobs []Job
	}{
		{"no recorder", Config{Elector: el}, []Job{good}},
		{"no elector", Config{Recorder: rec}, []Job{good}},
		{"negative poll", Config{Recorder: rec, Elector: el, LeaderPoll: -time.Second}, []Job{good}},
		{"negative backoff", Config{Recorder: rec, Elector: el, MaxBackoff: -time.Second}, []Job{good}},
		{"no name", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Name = "" })}},
		{"same name", Config{Recorder: rec, Elector: el}, []Job{good, good}},
		{"no run", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Run = nil })}},
		{"zero interval", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Interval = 0 })}},
		{"huge interval", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Interval = MaxDuration + 1 })}},
		{"zero timeout", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Timeout = 0 })}},
		{"negative jitter", Config{Recorder: rec, Elector: el}, []Job{with(func(j *Job) { j.Jitter = -1 })}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg, tt.jobs...); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("New(%s) = %v, want code %s", tt.name, err, obsqra.EINVALID)
		}
	}
	s, err := New(Config{Recorder: rec, Elector: el}, good, with(func(j *Job) { j.Name = "b" }))
	if err != nil {
		t.Fatalf("New(two good jobs) = %v", err)
	}
	if s.name != DefaultName || s.poll != DefaultLeaderPoll || s.maxBackoff != DefaultMaxBackoff || !strings.Contains(s.instance, ":") {
		t.Errorf("New defaults: name %q, poll %s, max backoff %s, instance %q", s.name, s.poll, s.maxBackoff, s.instance)
	}
}

func TestRunsOnSchedule(t *testing.T) {
	t.Parallel()
	s, b := setup(t, Config{LeaderPoll: time.Hour},
		Job{Name: "fast", Interval: time.Minute, Timeout: 10 * time.Second, Run: succeed},
		Job{Name: "slow", Interval: 90 * time.Second, Timeout: 10 * time.Second, Run: succeed},
	)
	start(t, s, b.sig)

	// Both run as soon as the scheduler leads.
	awaitDue(t, s, b, "fast", t0.Add(time.Minute))
	awaitDue(t, s, b, "slow", t0.Add(90*time.Second))
	for _, job := range []string{"fast", "slow"} {
		runs := awaitFinished(t, b, job, 1)
		if runs[0].StartedAt != t0 || runs[0].Outcome != obsqra.JobSucceeded || runs[0].Instance != "test:1" {
			t.Errorf("first run of %s = %+v, want SUCCEEDED at %v by test:1", job, runs[0], t0)
		}
	}
	if !s.Leader() || b.recorder.abandoned() != 1 {
		t.Errorf("Leader() = %v, AbandonJobRuns calls = %d; want true, 1", s.Leader(), b.recorder.abandoned())
	}
	jobs, err := s.Jobs(context.Background())
	if err != nil || len(jobs) != 2 {
		t.Fatalf("Jobs = %v, %v", jobs, err)
	}
	if j := jobs[0]; j.Name != "fast" || j.Interval != time.Minute || j.Timeout != 10*time.Second || j.Running ||
		j.NextDueAt == nil || !j.NextDueAt.Equal(t0.Add(time.Minute)) || len(j.LastRuns) != 1 || j.LastRuns[0].Outcome != obsqra.JobSucceeded {
		t.Errorf("Jobs()[0] = %+v, want fast, due at %v, one run", j, t0.Add(time.Minute))
	}

	// Each then runs every interval after its last run ended.
	steps := []struct {
		at   time.Duration
		fast int // runs of fast finished by then
		slow int
	}{
		{60 * time.Second, 2, 1},
		{90 * time.Second, 2, 2},
		{120 * time.Second, 3, 2},
		{180 * time.Second, 4, 3},
	}
	for _, st := range steps {
		b.clock.AdvanceTo(t0.Add(st.at))
		awaitFinished(t, b, "fast", st.fast)
		awaitFinished(t, b, "slow", st.slow)
		awaitDue(t, s, b, "fast", t0.Add(st.at-st.at%time.Minute+time.Minute))
		slowNext := t0.Add(st.at - st.at%(90*time.Second) + 90*time.Second)
		awaitDue(t, s, b, "slow", slowNext)
	}
	var starts []time.Duration
	for _, r := range b.recorder.of("fast") {
		starts = append(starts, r.StartedAt.Sub(t0))
	}
	if want := []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}; !slices.Equal(starts, want) {
		t.Errorf("fast started at %v, want %v", starts, want)
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	jitterJob := Job{Name: "j", Interval: time.Minute, Timeout: time.Second, Jitter: 10 * time.Second, Run: succeed}
	other := Job{Name: "other", Interval: time.Minute, Timeout: time.Second, Jitter: time.Hour, Run: succeed}
	waits := func(seed uint64, jobs ...Job) []time.Duration {
		s, err := New(Config{Recorder: &fakeRecorder{}, Elector: &fakeElector{}, Seed: seed}, jobs...)
		if err != nil {
			t.Fatal(err)
		}
		var ws []time.Duration
		for range 200 {
			if o := s.byName["other"]; o != nil {
				s.wait(o, 0) // another job's draws do not shift this one's
			}
			ws = append(ws, s.wait(s.byName["j"], 0))
		}
		return ws
	}
	a := waits(42, jitterJob)
	seen := map[time.Duration]bool{}
	for _, w := range a {
		if w < time.Minute || w >= time.Minute+10*time.Second {
			t.Fatalf("wait %s outside [1m, 1m10s)", w)
		}
		seen[w] = true
	}
	if len(seen) < 150 {
		t.Errorf("200 waits took only %d values: not random", len(seen))
	}
	if b := waits(42, jitterJob, other); !slices.Equal(a, b) {
		t.Error("the same seed gave other waits (with another job beside)")
	}
	if c := waits(43, jitterJob); slices.Equal(a, c) {
		t.Error("seeds 42 and 43 gave the same waits")
	}

	// The scheduler waits what the twin of its source draws.
	s, b := setup(t, Config{Seed: 42, LeaderPoll: time.Hour}, jitterJob)
	start(t, s, b.sig)
	at := t0
	for i := range 3 {
		at = at.Add(a[i])
		awaitDue(t, s, b, "j", at)
		b.clock.AdvanceTo(at)
		awaitFinished(t, b, "j", i+2)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interval, max time.Duration
		failures      int
		want          time.Duration
	}{
		{time.Minute, time.Hour, 0, 0},
		{time.Minute, time.Hour, 1, time.Minute},
		{time.Minute, time.Hour, 2, 3 * time.Minute},
		{time.Minute, time.Hour, 4, 15 * time.Minute},
		{time.Minute, time.Hour, 5, 15 * time.Minute},
		{time.Minute, time.Hour, 1000, 15 * time.Minute},
		{24 * time.Hour, time.Hour, 1, time.Hour},
		{10 * time.Minute, time.Hour, 3, time.Hour},
		{10 * time.Minute, time.Hour, 2, 30 * time.Minute},
		{MaxDuration, MaxDuration, 1000, MaxDuration},
	}
	for _, tt := range tests {
		if got := backoff(tt.interval, tt.failures, tt.max); got != tt.want {
			t.Errorf("backoff(%s, %d, %s) = %s, want %s", tt.interval, tt.failures, tt.max, got, tt.want)
		}
	}
}

// TestFailingJobBacksOff: a failing job is recorded FAILED with its error,
// waits longer after each failure, back to its interval after a success;
// another job keeps its pace meanwhile.
func TestFailingJobBacksOff(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	flaky := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 5 {
			return fmt.Errorf("source down #%d", calls)
		}
		return nil
	}
	s, b := setup(t, Config{LeaderPoll: 24 * time.Hour},
		Job{Name: "flaky", Interval: time.Minute, Timeout: 10 * time.Second, Run: flaky},
		Job{Name: "steady", Interval: time.Minute, Timeout: 10 * time.Second, Run: succeed},
	)
	start(t, s, b.sig)

	// flaky runs at these minutes: waits 2, 4, 8, 16, 16 (at most 16
	// intervals) after the five failures, then 1 after the success.
	flakyAt := []int{0, 2, 6, 14, 30, 46, 47}
	for m := 0; m <= 47; m++ {
		b.clock.AdvanceTo(t0.Add(time.Duration(m) * time.Minute))
		awaitFinished(t, b, "steady", m+1)
		awaitDue(t, s, b, "steady", t0.Add(time.Duration(m+1)*time.Minute))
		if i := slices.Index(flakyAt, m); i >= 0 {
			runs := awaitFinished(t, b, "flaky", i+1)
			if i+1 < len(flakyAt) {
				awaitDue(t, s, b, "flaky", t0.Add(time.Duration(flakyAt[i+1])*time.Minute))
			}
			r := runs[i]
			if i < 5 && (r.Outcome != obsqra.JobFailed || r.Error != fmt.Sprintf("source down #%d", i+1)) {
				t.Errorf("run %d of flaky = %s %q, want FAILED %q", i+1, r.Outcome, r.Error, fmt.Sprintf("source down #%d", i+1))
			}
			if i >= 5 && r.Outcome != obsqra.JobSucceeded {
				t.Errorf("run %d of flaky = %s %q, want SUCCEEDED", i+1, r.Outcome, r.Error)
			}
		}
	}
	logs := b.logs.String()
	if !strings.Contains(logs, `"msg":"job failed","job":"flaky","run_id":`) || !strings.Contains(logs, `"error":"source down #1"`) ||
		!strings.Contains(logs, `"failures":5`) {
		t.Errorf("logs lack the failures of flaky:\n%s", logs)
	}
}

func TestPanickingJobIsRecovered(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	s, b := setup(t, Config{LeaderPoll: time.Hour}, Job{Name: "p", Interval: time.Minute, Timeout: 10 * time.Second, Run: func(context.Context) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			panic("boom")
		}
		return nil
	}})
	start(t, s, b.sig)

	runs := awaitFinished(t, b, "p", 1)
	if runs[0].Outcome != obsqra.JobFailed || runs[0].Error != "panic: boom" {
		t.Errorf("run of a panicking job = %s %q, want FAILED %q", runs[0].Outcome, runs[0].Error, "panic: boom")
	}
	awaitDue(t, s, b, "p", t0.Add(2*time.Minute)) // a failure: backs off
	b.clock.Advance(2 * time.Minute)
	if runs := awaitFinished(t, b, "p", 2); runs[1].Outcome != obsqra.JobSucceeded {
		t.Errorf("run after the panic = %+v, want SUCCEEDED", runs[1])
	}
	logs := b.logs.String()
	if !strings.Contains(logs, `"msg":"job panicked","job":"p"`) || !strings.Contains(logs, `"stack":"goroutine`) {
		t.Errorf("logs lack the panic and its stack:\n%s", logs)
	}
}

// TestTimeout: a run that outlives its timeout has its context cancelled
// (cause errTimedOut) and is recorded TIMED_OUT; a run that ignores the
// cancellation keeps the job from starting again until it returns.
func TestTimeout(t *testing.T) {
	t.Parallel()
	causes := make(chan error, 10)
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	s, b := setup(t, Config{LeaderPoll: time.Hour}, Job{Name: "slow", Interval: time.Minute, Timeout: 10 * time.Second, Run: func(ctx context.Context) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 2 {
			<-release // ignores its context
			return nil
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}})
	start(t, s, b.sig)

	await(t, b.sig, "the timeout timer", func() bool { return b.clock.TimersAt(t0.Add(10*time.Second)) == 1 })
	b.clock.Advance(10 * time.Second)
	runs := awaitFinished(t, b, "slow", 1)
	if r := runs[0]; r.Outcome != obsqra.JobTimedOut || r.Error != "timed out after 10s" || !r.FinishedAt.Equal(t0.Add(10*time.Second)) {
		t.Errorf("run past its timeout = %+v, want TIMED_OUT at +10s", r)
	}
	if cause := <-causes; !errors.Is(cause, errTimedOut) {
		t.Errorf("the run's context ended with cause %v, want errTimedOut", cause)
	}
	if runs, _ := b.observer.seen(); !slices.Equal(runs, []string{"slow TIMED_OUT 10s"}) {
		t.Errorf("observed runs %q, want [slow TIMED_OUT 10s]", runs)
	}

	// Backs off (2 intervals), then runs a second time, ignoring its context.
	second := t0.Add(10*time.Second + 2*time.Minute)
	awaitDue(t, s, b, "slow", second)
	b.clock.AdvanceTo(second)
	await(t, b.sig, "the second timeout timer", func() bool { return b.clock.TimersAt(second.Add(10*time.Second)) == 1 })
	b.clock.Advance(10 * time.Second)
	runs = awaitFinished(t, b, "slow", 2)
	if runs[1].Outcome != obsqra.JobTimedOut {
		t.Errorf("second run = %+v, want TIMED_OUT", runs[1])
	}
	// Still running: no next run is due until it returns.
	if !running(s, "slow") || !nextDue(s, "slow").IsZero() {
		t.Errorf("a timed-out run that has not returned: running %v, next due %v; want running, none", running(s, "slow"), nextDue(s, "slow"))
	}
	close(release)
	third := b.clock.Now().Add(4 * time.Minute)
	awaitDue(t, s, b, "slow", third)
	if running(s, "slow") {
		t.Error("slow still running after its run returned")
	}
}

// TestShutdownWaitsForRuns: when Run's context ends, a run in flight may
// finish (its context is not cancelled) before the leadership is released
// and Run returns.
func TestShutdownWaitsForRuns(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	event := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	release := make(chan struct{})
	started := make(chan struct{})
	s, b := setup(t, Config{LeaderPoll: time.Hour}, Job{Name: "long", Interval: time.Minute, Timeout: time.Hour, Run: func(ctx context.Context) error {
		close(started)
		select {
		case <-release:
			event(fmt.Sprintf("job returned, ctx err %v", ctx.Err()))
			return nil
		case <-ctx.Done():
			event("job cancelled")
			return ctx.Err()
		}
	}})
	stop := start(t, s, b.sig)
	<-started
	stopped := make(chan struct{})
	go func() {
		stop()
		event("Run returned")
		close(stopped)
	}()
	await(t, b.sig, "the scheduler to stop leading", func() bool { return !s.Leader() })
	close(release)
	<-stopped

	_, leases := b.elector.state()
	if len(leases) != 1 || !leases[0].released {
		t.Errorf("leases after Run returned: %+v, want one, released", leases)
	}
	want := []string{"job returned, ctx err <nil>", "Run returned"}
	if !slices.Equal(events, want) {
		t.Errorf("events %q, want %q", events, want)
	}
	if runs := b.recorder.of("long"); len(runs) != 1 || runs[0].Outcome != obsqra.JobSucceeded {
		t.Errorf("runs %+v, want one SUCCEEDED", runs)
	}
}

// TestShutdownWaitsAtMostTheTimeout: a run that will not return holds up
// Run only until its timeout.
func TestShutdownWaitsAtMostTheTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	s, b := setup(t, Config{LeaderPoll: time.Hour}, Job{Name: "stuck", Interval: time.Minute, Timeout: time.Minute, Run: func(ctx context.Context) error {
		<-release
		return nil
	}})
	stop := start(t, s, b.sig)
	await(t, b.sig, "the run and its timeout timer", func() bool {
		return running(s, "stuck") && b.clock.TimersAt(t0.Add(time.Minute)) == 1
	})
	stopped := make(chan struct{})
	go func() { stop(); close(stopped); b.sig.notify() }()
	await(t, b.sig, "the scheduler to stop leading", func() bool { return !s.Leader() })
	b.clock.Advance(time.Minute)
	await(t, b.sig, "Run to return", func() bool {
		select {
		case <-stopped:
			return true
		default:
			return false
		}
	})
	if runs := b.recorder.of("stuck"); len(runs) != 1 || runs[0].Outcome != obsqra.JobTimedOut {
		t.Errorf("runs %+v, want one TIMED_OUT", runs)
	}
	if _, leases := b.elector.state(); len(leases) != 1 || !leases[0].released {
		t.Errorf("leases %+v, want one, released", leases)
	}
}

// TestOnlyTheLeaderRuns: a follower runs nothing and retries every
// LeaderPoll; once it leads it runs the jobs; when it loses the leadership
// it cancels the run in flight (ABANDONED) and follows again.
func TestOnlyTheLeaderRuns(t *testing.T) {
	t.Parallel()
	causes := make(chan error, 10)
	quit := make(chan struct{})
	s, b := setup(t, Config{LeaderPoll: 5 * time.Second}, Job{Name: "j", Interval: time.Minute, Timeout: time.Hour, Run: func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return ctx.Err()
		case <-quit: // the test ends: shutdown would wait for the run
			return nil
		}
	}})
	b.elector.setClosed(true)
	start(t, s, b.sig)
	t.Cleanup(func() { close(quit) }) // before start's cleanup stops Run

	poll := func(tries int) {
		t.Helper()
		await(t, b.sig, fmt.Sprintf("try %d and the next poll", tries), func() bool {
			n, _ := b.elector.state()
			return n == tries && b.clock.TimersAt(b.clock.Now().Add(5*time.Second)) == 1
		})
	}
	for try := 1; try <= 3; try++ {
		poll(try)
		if s.Leader() || len(b.recorder.of("j")) != 0 || b.recorder.abandoned() != 0 {
			t.Fatalf("follower: Leader() %v, runs %v, abandons %d; want none", s.Leader(), b.recorder.of("j"), b.recorder.abandoned())
		}
		b.clock.Advance(5 * time.Second)
	}
	poll(4)
	if err := s.trigger("j"); obsqra.ErrorCode(err) != obsqra.ECONFLICT {
		t.Errorf("trigger on a follower = %v, want code %s", err, obsqra.ECONFLICT)
	}
	jobs, err := s.Jobs(context.Background())
	if err != nil || jobs[0].NextDueAt != nil || jobs[0].Running {
		t.Errorf("Jobs on a follower = %+v, %v; want nothing due or running", jobs, err)
	}

	// The leader goes away: the next try wins.
	b.elector.setClosed(false)
	b.clock.Advance(5 * time.Second)
	await(t, b.sig, "the leader's first run", func() bool { return s.Leader() && running(s, "j") })
	if n := b.recorder.abandoned(); n != 1 {
		t.Errorf("AbandonJobRuns called %d times on taking over, want 1", n)
	}

	// Its leadership is lost: the run is cancelled and recorded ABANDONED.
	leadAt := b.clock.Now()
	await(t, b.sig, "the leader's check timer", func() bool { return b.clock.TimersAt(leadAt.Add(5*time.Second)) == 1 })
	b.elector.lose()
	b.clock.Advance(5 * time.Second)
	runs := awaitFinished(t, b, "j", 1)
	if r := runs[0]; r.Outcome != obsqra.JobAbandoned || !strings.Contains(r.Error, "lost its leadership") {
		t.Errorf("run when the leadership was lost = %+v, want ABANDONED", r)
	}
	if cause := <-causes; !errors.Is(cause, errLostLeadership) {
		t.Errorf("the run's context ended with cause %v, want errLostLeadership", cause)
	}
	await(t, b.sig, "the lost lease released", func() bool {
		_, leases := b.elector.state()
		return len(leases) == 1 && leases[0].released
	})
	if s.Leader() || running(s, "j") || !nextDue(s, "j").IsZero() {
		t.Errorf("after losing: Leader() %v, running %v, due %v; want a follower", s.Leader(), running(s, "j"), nextDue(s, "j"))
	}

	// It follows again and, the lock being free, leads from the next poll.
	lostAt := b.clock.Now()
	await(t, b.sig, "the follower's poll", func() bool { return b.clock.TimersAt(lostAt.Add(5*time.Second)) == 1 && !s.Leader() })
	b.clock.Advance(5 * time.Second)
	await(t, b.sig, "leading again", func() bool { return s.Leader() && len(b.recorder.of("j")) == 2 })
	observed, leading := b.observer.seen()
	if !slices.Equal(leading, []bool{true, false, true}) || len(observed) == 0 || observed[0] != "j ABANDONED 5s" {
		t.Errorf("observed leadership %v and runs %q, want [true false true] and first j ABANDONED 5s", leading, observed)
	}
}

func TestTrigger(t *testing.T) {
	t.Parallel()
	s, b := setup(t, Config{LeaderPoll: 24 * time.Hour}, Job{Name: "j", Interval: time.Hour, Timeout: time.Minute, Run: succeed})
	start(t, s, b.sig)
	awaitDue(t, s, b, "j", t0.Add(time.Hour))
	if err := s.trigger("j"); err != nil {
		t.Fatalf("trigger = %v, want nil", err)
	}
	runs := awaitFinished(t, b, "j", 2)
	if !runs[1].StartedAt.Equal(t0) {
		t.Errorf("triggered run started at %v, want now (%v)", runs[1].StartedAt, t0)
	}
	awaitDue(t, s, b, "j", t0.Add(time.Hour))
	if err := s.trigger("nope"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		t.Errorf("trigger(unknown) = %v, want code %s", err, obsqra.ENOTFOUND)
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	s, b := setup(t, Config{}, Job{Name: "j", Interval: time.Hour, Timeout: time.Minute, Run: succeed})
	start(t, s, b.sig)
	await(t, b.sig, "leading", s.Leader)
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run at once = nil, want an error")
	}
}
