package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rpcBuckets are the bounds of the RPC duration histogram, in seconds: a
// node's answer takes tens of ms; failing over and backing off, seconds.
var rpcBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Starknet records the Starknet JSON-RPC client's calls. It implements
// starknet.Observer.
type Starknet struct {
	calls     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	failovers prometheus.Counter
}

// newStarknet registers the RPC client's metrics in reg.
func newStarknet(reg prometheus.Registerer) *Starknet {
	s := &Starknet{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "starknet_calls_total",
			Help: "Starknet JSON-RPC calls by method and outcome (ok, rpc_error: the node answered with an error, " +
				"unavailable: no node answered, cancelled, error: an answer that does not decode).",
		}, []string{"method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "starknet_call_duration_seconds",
			Help:    "Duration of Starknet JSON-RPC calls, failovers and backoff included, by method.",
			Buckets: rpcBuckets,
		}, []string{"method"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "starknet_failovers_total",
			Help: "Times the Starknet client moved to another node after the one it used failed.",
		}),
	}
	reg.MustRegister(s.calls, s.duration, s.failovers)
	return s
}

// RPCCall records a call of method that ended with outcome after took.
func (s *Starknet) RPCCall(method, outcome string, took time.Duration) {
	s.calls.WithLabelValues(method, outcome).Inc()
	s.duration.WithLabelValues(method).Observe(max(took, 0).Seconds())
}

// RPCFailover records a move to another node.
func (s *Starknet) RPCFailover() { s.failovers.Inc() }
