package telemetry

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// Database is what the store reports of itself at a scrape
// (store.DB.Stats).
type Database struct {
	// Pool is the connection pool's state.
	Pool sql.DBStats
	// EventsCommitted counts the outbox events this process committed.
	EventsCommitted int64
	// ListenReconnects counts the times the LISTEN connection that carries
	// other instances' commits was established again after it dropped.
	ListenReconnects int64
}

// Transports are counts by transport.
type Transports struct {
	WebSocket, SSE, Multipart int
}

// Connections is what the server holds at a scrape (server.Server.Stats).
type Connections struct {
	// Open are the open WebSockets and the streamed HTTP responses.
	Open Transports
	// Subscriptions are the running subscriptions, by the transport of
	// their subscriber.
	Subscriptions Transports
	// SharedStreams are the running subscription executions, each shared
	// by all its subscribers.
	SharedStreams int
}

// Hub is what the live hub holds at a scrape (live.Hub.Stats).
type Hub struct {
	// Subscriptions are the hub's running subscriptions (one per shared
	// stream, not per socket).
	Subscriptions int
	// QueuedBytes are the bytes of the events waiting in their queues.
	QueuedBytes int64
}

// WatchDatabase has every scrape read the database's state from stats.
func (m *Metrics) WatchDatabase(stats func() Database) {
	m.reg.MustRegister(newScrape(stats, []scraped[Database]{
		gauge("db_connections_max_open", "Most connections the pool may open (SQLite: its fixed pool).",
			func(d Database) float64 { return float64(d.Pool.MaxOpenConnections) }),
		gauge("db_connections_open", "Connections open, in use or idle.",
			func(d Database) float64 { return float64(d.Pool.OpenConnections) }),
		gauge("db_connections_in_use", "Connections in use.",
			func(d Database) float64 { return float64(d.Pool.InUse) }),
		gauge("db_connections_idle", "Idle connections.",
			func(d Database) float64 { return float64(d.Pool.Idle) }),
		counter("db_waits_total", "Times a query waited for a connection of the pool.",
			func(d Database) float64 { return float64(d.Pool.WaitCount) }),
		counter("db_wait_seconds_total", "Time spent waiting for a connection of the pool.",
			func(d Database) float64 { return d.Pool.WaitDuration.Seconds() }),
		counter("db_closed_max_idle_total", "Connections closed for DB_MAX_IDLE_CONNS.",
			func(d Database) float64 { return float64(d.Pool.MaxIdleClosed) }),
		counter("db_closed_max_idle_time_total", "Connections closed for DB_CONN_MAX_IDLE_TIME.",
			func(d Database) float64 { return float64(d.Pool.MaxIdleTimeClosed) }),
		counter("db_closed_max_lifetime_total", "Connections closed for DB_CONN_MAX_LIFETIME.",
			func(d Database) float64 { return float64(d.Pool.MaxLifetimeClosed) }),
		counter("live_events_committed_total", "Outbox events this process committed (with the changes they describe).",
			func(d Database) float64 { return float64(d.EventsCommitted) }),
		counter("live_listen_reconnects_total", "Times the PostgreSQL LISTEN connection of the outbox was re-established after it dropped.",
			func(d Database) float64 { return float64(d.ListenReconnects) }),
	}))
}

// WatchConnections has every scrape read the server's connections from
// stats.
func (m *Metrics) WatchConnections(stats func() Connections) {
	byTransport := func(name, help string, of func(Connections) Transports) []scraped[Connections] {
		// One description for the three series: a registry refuses two of
		// the same name.
		desc := prometheus.NewDesc(namespace+"_"+name, help, []string{"transport"}, nil)
		return []scraped[Connections]{
			labelled(desc, TransportWebSocket, func(c Connections) float64 { return float64(of(c).WebSocket) }),
			labelled(desc, TransportSSE, func(c Connections) float64 { return float64(of(c).SSE) }),
			labelled(desc, TransportMultipart, func(c Connections) float64 { return float64(of(c).Multipart) }),
		}
	}
	var all []scraped[Connections]
	all = append(all, byTransport("connections", "Open WebSockets and streamed HTTP responses (event streams, multipart), by transport.",
		func(c Connections) Transports { return c.Open })...)
	all = append(all, byTransport("subscriptions", "Running subscriptions by the transport of their subscriber.",
		func(c Connections) Transports { return c.Subscriptions })...)
	all = append(all, gauge("shared_streams", "Running subscription executions, each shared by all its subscribers.",
		func(c Connections) float64 { return float64(c.SharedStreams) }))
	m.reg.MustRegister(newScrape(stats, all))
}

// WatchHub has every scrape read the live hub's state from stats.
func (m *Metrics) WatchHub(stats func() Hub) {
	m.reg.MustRegister(newScrape(stats, []scraped[Hub]{
		gauge("live_subscriptions", "The live hub's running subscriptions (one per shared stream, not per socket).",
			func(h Hub) float64 { return float64(h.Subscriptions) }),
		gauge("live_queued_bytes", "Bytes of events waiting in the live hub's subscription queues.",
			func(h Hub) float64 { return float64(h.QueuedBytes) }),
	}))
}

// scraped is one metric read from a state S at a scrape.
type scraped[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(S) float64
	label string // the value of desc's one variable label, if it has one
}

// gauge is a gauge read from S.
func gauge[S any](name, help string, value func(S) float64) scraped[S] {
	return scraped[S]{desc: prometheus.NewDesc(namespace+"_"+name, help, nil, nil), kind: prometheus.GaugeValue, value: value}
}

// counter is a counter read from S (a count S keeps since the start).
func counter[S any](name, help string, value func(S) float64) scraped[S] {
	return scraped[S]{desc: prometheus.NewDesc(namespace+"_"+name, help, nil, nil), kind: prometheus.CounterValue, value: value}
}

// labelled is the series of desc, a gauge with one variable label, whose
// label is value, read from S.
func labelled[S any](desc *prometheus.Desc, value string, of func(S) float64) scraped[S] {
	return scraped[S]{desc: desc, kind: prometheus.GaugeValue, value: of, label: value}
}

// scrape is a collector that reads its state once per scrape and reports
// metrics of it: cheaper than keeping gauges up to date on every change.
type scrape[S any] struct {
	state   func() S
	metrics []scraped[S]
}

// newScrape returns a collector of metrics read from state.
func newScrape[S any](state func() S, metrics []scraped[S]) *scrape[S] {
	return &scrape[S]{state: state, metrics: metrics}
}

// Describe sends the descriptions of the metrics, each once.
func (c *scrape[S]) Describe(ch chan<- *prometheus.Desc) {
	seen := make(map[*prometheus.Desc]bool, len(c.metrics))
	for _, m := range c.metrics {
		if !seen[m.desc] {
			seen[m.desc] = true
			ch <- m.desc
		}
	}
}

// Collect reads the state and sends every metric of it.
func (c *scrape[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.state()
	for _, m := range c.metrics {
		if m.label != "" {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s), m.label)
		} else {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
		}
	}
}
