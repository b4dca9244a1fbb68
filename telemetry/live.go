package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lagBuckets are the bounds of the delivery lag histogram, in seconds:
// from an event delivered as its commit is announced (a few ms) to one
// found by the hub's 5 s poll after a lost notification, and beyond.
var lagBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Live records what the live hub does with the outbox's events. It
// implements live.Observer.
type Live struct {
	dispatched prometheus.Counter
	delivered  prometheus.Counter
	lag        prometheus.Histogram
	slow       prometheus.Counter
}

// newLive registers the hub's metrics in reg.
func newLive(reg prometheus.Registerer) *Live {
	l := &Live{
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "live_events_dispatched_total",
			Help: "Outbox events this instance's hub read and dispatched to its subscriptions (every instance reads every event).",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "live_events_delivered_total",
			Help: "Live events taken by the subscriptions they were queued for (replayed ones are not counted).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "live_delivery_lag_seconds",
			Help:    "Time from an event's commit to the outbox to its subscription taking it to send (live events only).",
			Buckets: lagBuckets,
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "live_slow_subscriptions_total",
			Help: "Subscriptions the hub ended with RATE_LIMITED: a live event would have taken their queue past its budget.",
		}),
	}
	reg.MustRegister(l.dispatched, l.delivered, l.lag, l.slow)
	return l
}

// EventsDispatched records n events read from the outbox and dispatched.
func (l *Live) EventsDispatched(n int) { l.dispatched.Add(float64(n)) }

// EventDelivered records a live event taken by its subscription lag after
// its commit; a negative lag (clocks of two instances apart) counts as 0.
func (l *Live) EventDelivered(lag time.Duration) {
	l.delivered.Inc()
	l.lag.Observe(max(lag, 0).Seconds())
}

// SubscriptionTooSlow records a subscription ended for a queue past its
// budget.
func (l *Live) SubscriptionTooSlow() { l.slow.Inc() }
