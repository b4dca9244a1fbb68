package telemetry

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the labels the GraphQL recorder fills in itself.
const (
	// OtherOperation is the operation label of every operation whose name
	// is not a trusted document's (an anonymous one included).
	OtherOperation = "other"
	// CodeOK is the code label of a request whose response has no error.
	CodeOK = "OK"
	// CodeOther is the code label of a code outside Options.Codes.
	CodeOther = "OTHER"
)

// operationTypes are the values of the type label, by index: a request
// that did not get as far as an operation is "none".
var operationTypes = [...]string{"none", "query", "mutation", "subscription"}

// Transports of the connection gauges and of the slow consumers' counter.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
	TransportMultipart = "multipart"
)

// requestBuckets are the bounds of the request latency histogram, in
// seconds: from a cached query (about 0.1 ms of handler time, 1 ms with
// the network) to REQUEST_TIMEOUT's default of 10 s.
var requestBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// GraphQL records the API's requests over HTTP. It implements
// server.Metrics. Its hot path (GraphQLRequest) allocates nothing once a
// series exists: the series of each (type, operation, code) is resolved
// once, on first use, and kept in a table indexed by the three.
type GraphQL struct {
	names map[string]int // operation name → index; len(names) is "other"
	codes map[string]int // code → index; len(codes) is "OTHER"
	// nameValues and codeValues are the label values by index.
	nameValues, codeValues []string

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	slow        *prometheus.CounterVec

	// counters holds the request counter of each (type, name, code), and
	// observers the latency histogram of each (type, name), nil until
	// first used (most combinations never are, and an unused series is
	// not exported).
	counters  []atomic.Pointer[prometheus.Counter]
	observers []atomic.Pointer[prometheus.Observer]
	// errorCounters is the error counter of each code, made at once so
	// that a rate over them exists before the first error.
	errorCounters []prometheus.Counter
}

// newGraphQL registers the GraphQL metrics in reg, for operations named
// names and errors with codes.
func newGraphQL(reg prometheus.Registerer, names, codes []string) *GraphQL {
	g := &GraphQL{
		names: make(map[string]int, len(names)),
		codes: make(map[string]int, len(codes)+1),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "graphql_requests_total",
			Help: "GraphQL requests over HTTP (each operation of a batch counts as one) by operation type, " +
				"operation name (a trusted document's, else other) and outcome (the first error's code, else OK).",
		}, []string{"type", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "graphql_request_duration_seconds",
			Help: "Time from the arrival of a GraphQL request over HTTP to its answer, by operation type and name " +
				"(subscriptions streamed over HTTP are not observed: their streams last as long as the client reads).",
			Buckets: requestBuckets,
		}, []string{"type", "operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "graphql_errors_total",
			Help: "Errors in the responses to GraphQL requests over HTTP, by extensions.code.",
		}, []string{"code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "rate_limited_total",
			Help: "Operations refused by their cost budget (RATE_LIMITED), by policy.",
		}, []string{"policy"}),
		slow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "slow_consumers_total",
			Help: "Subscribers too slow for their send buffer: WebSockets closed with 1013, HTTP streams cut, by transport.",
		}, []string{"transport"}),
	}
	for _, n := range names {
		if _, dup := g.names[n]; !dup && n != "" {
			g.names[n] = len(g.nameValues)
			g.nameValues = append(g.nameValues, n)
		}
	}
	g.nameValues = append(g.nameValues, OtherOperation)
	for _, c := range append([]string{CodeOK}, codes...) {
		if _, dup := g.codes[c]; !dup && c != "" && c != CodeOther {
			g.codes[c] = len(g.codeValues)
			g.codeValues = append(g.codeValues, c)
		}
	}
	g.codeValues = append(g.codeValues, CodeOther)
	g.counters = make([]atomic.Pointer[prometheus.Counter], len(operationTypes)*len(g.nameValues)*len(g.codeValues))
	g.observers = make([]atomic.Pointer[prometheus.Observer], len(operationTypes)*len(g.nameValues))
	for _, c := range g.codeValues {
		if c != CodeOK {
			g.errorCounters = append(g.errorCounters, g.errors.WithLabelValues(c))
		} else {
			g.errorCounters = append(g.errorCounters, nil) // OK is no error
		}
	}
	for _, t := range []string{TransportWebSocket, TransportSSE, TransportMultipart} {
		g.slow.WithLabelValues(t)
	}
	reg.MustRegister(g.requests, g.duration, g.errors, g.rateLimited, g.slow)
	return g
}

// typeIndex is the index of an operation type in operationTypes: "" and
// anything unknown are none.
func typeIndex(typ string) int {
	switch typ {
	case "query":
		return 1
	case "mutation":
		return 2
	case "subscription":
		return 3
	}
	return 0
}

// nameIndex is the index of an operation name's label value.
func (g *GraphQL) nameIndex(name string) int {
	if i, ok := g.names[name]; ok {
		return i
	}
	return len(g.nameValues) - 1
}

// codeIndex is the index of a code's label value.
func (g *GraphQL) codeIndex(code string) int {
	if i, ok := g.codes[code]; ok {
		return i
	}
	return len(g.codeValues) - 1
}

// GraphQLRequest records one GraphQL request over HTTP: its operation's
// type ("query", "mutation", "subscription"; "" when it has none) and
// name, its outcome code (CodeOK or the first error's extensions.code),
// and how long it took; a negative took is not observed (a subscription's
// stream).
func (g *GraphQL) GraphQLRequest(typ, name, code string, took time.Duration) {
	t, n, c := typeIndex(typ), g.nameIndex(name), g.codeIndex(code)
	i := (t*len(g.nameValues)+n)*len(g.codeValues) + c
	counter := g.counters[i].Load()
	if counter == nil {
		v := prometheus.Counter(g.requests.WithLabelValues(operationTypes[t], g.nameValues[n], g.codeValues[c]))
		g.counters[i].CompareAndSwap(nil, &v)
		counter = g.counters[i].Load()
	}
	(*counter).Inc()
	if took < 0 {
		return
	}
	j := t*len(g.nameValues) + n
	obs := g.observers[j].Load()
	if obs == nil {
		v := g.duration.WithLabelValues(operationTypes[t], g.nameValues[n])
		g.observers[j].CompareAndSwap(nil, &v)
		obs = g.observers[j].Load()
	}
	(*obs).Observe(took.Seconds())
}

// GraphQLError records one error of a response, by its extensions.code.
// CodeOK is not an error and is ignored.
func (g *GraphQL) GraphQLError(code string) {
	if c := g.errorCounters[g.codeIndex(code)]; c != nil {
		c.Inc()
	}
}

// RateLimited records an operation refused by the cost budget of policy
// (anonymous, user, admin: the configured policies' names).
func (g *GraphQL) RateLimited(policy string) {
	g.rateLimited.WithLabelValues(policy).Inc()
}

// SlowConsumer records a subscriber cut for falling behind its send
// buffer, on transport (TransportWebSocket, TransportSSE or
// TransportMultipart).
func (g *GraphQL) SlowConsumer(transport string) {
	g.slow.WithLabelValues(transport).Inc()
}
