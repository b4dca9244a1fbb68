package telemetry

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obsqra/obsqra"
)

// jobBuckets are the bounds of the job duration histogram, in seconds:
// from a prune of nothing to a forecast of every protocol.
var jobBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900}

// Jobs records the scheduler's runs. It implements scheduler.Observer.
type Jobs struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	leader   prometheus.Gauge
}

// newJobs registers the scheduler's metrics in reg.
func newJobs(reg prometheus.Registerer) *Jobs {
	j := &Jobs{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "scheduler_runs_total",
			Help: "Scheduler job runs on this instance by job and outcome (succeeded, failed, timed_out, abandoned).",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "scheduler_run_duration_seconds",
			Help:    "Duration of scheduler job runs on this instance, by job.",
			Buckets: jobBuckets,
		}, []string{"job"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "scheduler_leader",
			Help: "1 while this instance holds the scheduler's leadership and runs the jobs, else 0.",
		}),
	}
	reg.MustRegister(j.runs, j.duration, j.leader)
	return j
}

// JobRun records a run of job that ended with outcome after took.
func (j *Jobs) JobRun(job string, outcome obsqra.JobOutcome, took time.Duration) {
	j.runs.WithLabelValues(job, strings.ToLower(string(outcome))).Inc()
	j.duration.WithLabelValues(job).Observe(max(took, 0).Seconds())
}

// Leading records whether this instance leads.
func (j *Jobs) Leading(leads bool) {
	if leads {
		j.leader.Set(1)
	} else {
		j.leader.Set(0)
	}
}
