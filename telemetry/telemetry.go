// Package telemetry is the server's Prometheus metrics: one registry, the
// recorders the other packages report into through small interfaces of
// their own (server.Metrics, live.Observer, scheduler.Observer,
// starknet.Observer, which the recorders here satisfy without those
// packages importing Prometheus), and collectors that read the state of
// the server, the hub, the scheduler and the database pool when
// Prometheus scrapes. cmd/obsqra wires them and serves Handler on a
// listener of its own (METRICS_ADDR), never on the API's.
//
// Every name starts with obsqra_, counters end in _total, durations are
// in seconds, and no label takes a value a client chooses: operation
// names are those of the trusted documents or "other", error codes those
// the server sends or "OTHER", and the other labels come from fixed sets
// in the code (job names, RPC methods, transports, policies).
package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the server.
const namespace = "obsqra"

// Options are what New needs to know ahead of time: the sets some label
// values are drawn from.
type Options struct {
	// Version is the build's version, the value of obsqra_build_info's
	// version label.
	Version string
	// OperationNames are the names of the trusted documents' operations
	// (server.TrustedDocuments.OperationNames): the only values of the
	// operation label besides "other".
	OperationNames []string
	// Codes are the extensions.code values the server sends
	// (server.ErrorCodes): the only values of the code label besides "OK"
	// and "OTHER".
	Codes []string
}

// Metrics is the registry and its recorders. The recorders are ready to
// be handed to the packages that report into them; the Watch methods add
// what is read at scrape time.
type Metrics struct {
	reg *prometheus.Registry

	// GraphQL records the API's requests, errors, rate limit refusals and
	// slow consumers (a server.Metrics).
	GraphQL *GraphQL
	// Live records the hub's events (a live.Observer).
	Live *Live
	// Jobs records the scheduler's runs (a scheduler.Observer).
	Jobs *Jobs
	// Starknet records the JSON-RPC client's calls (a starknet.Observer).
	Starknet *Starknet
}

// New returns the metrics of one server process: its recorders, the Go
// runtime's and the process's collectors, and obsqra_build_info.
func New(opts Options) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Always 1; its version label is the build's.",
		ConstLabels: prometheus.Labels{"version": opts.Version},
	})
	buildInfo.Set(1)
	reg.MustRegister(buildInfo)
	return &Metrics{
		reg:      reg,
		GraphQL:  newGraphQL(reg, opts.OperationNames, opts.Codes),
		Live:     newLive(reg),
		Jobs:     newJobs(reg),
		Starknet: newStarknet(reg),
	}
}

// Handler serves the metrics in Prometheus' text format (or in
// OpenMetrics or protobuf to a scraper that asks for them).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Gatherer returns the registry, for tests that read the metrics without
// HTTP.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }
