package obsqra

import (
	"io"
	"time"
)

// JobOutcome is how a scheduler job run ended.
type JobOutcome string

// Job outcomes.
const (
	JobRunning   JobOutcome = "RUNNING"
	JobSucceeded JobOutcome = "SUCCEEDED"
	JobFailed    JobOutcome = "FAILED"
	// JobTimedOut: the run did not finish within its timeout.
	JobTimedOut JobOutcome = "TIMED_OUT"
	// JobAbandoned: the instance stopped or lost its leadership before the
	// run finished (or crashed; such runs are closed by the next leader).
	JobAbandoned JobOutcome = "ABANDONED"
)

// String returns the outcome's name.
func (o JobOutcome) String() string { return string(o) }

// MarshalGQL writes the outcome as a GraphQL enum value.
func (o JobOutcome) MarshalGQL(w io.Writer) { marshalEnum(w, o) }

// UnmarshalGQL reads the outcome from a GraphQL enum value.
func (o *JobOutcome) UnmarshalGQL(v any) error {
	return unmarshalEnum(o, v, JobOutcome.IsValid, "JobOutcome")
}

// IsValid reports whether o is a known outcome.
func (o JobOutcome) IsValid() bool {
	switch o {
	case JobRunning, JobSucceeded, JobFailed, JobTimedOut, JobAbandoned:
		return true
	}
	return false
}

// JobRun is one run of a scheduler job.
type JobRun struct {
	ID  int64
	Job string
	// Instance names the server process that ran it (host:pid).
	Instance   string
	StartedAt  time.Time
	FinishedAt *time.Time
	Outcome    JobOutcome
	// Error is the failure's message, "" on success.
	Error string
}

// SchedulerJob is a named periodic job as the scheduler of this instance
// sees it.
type SchedulerJob struct {
	Name     string
	Interval time.Duration
	Timeout  time.Duration
	// NextDueAt is when the job runs next on the leader; nil while this
	// instance does not lead.
	NextDueAt *time.Time
	Running   bool
	// LastRuns are the most recent runs, newest first, on any instance.
	LastRuns []JobRun
}
