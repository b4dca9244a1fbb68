package telemetry_test

import (
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/telemetry"
)

// series gathers m and returns the value of every series of the metrics
// named with prefix, keyed name{label="value",…} with labels sorted; a
// histogram's value is its count of observations.
func series(t *testing.T, m *telemetry.Metrics, prefix string) map[string]float64 {
	t.Helper()
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), prefix) {
			continue
		}
		for _, s := range f.GetMetric() {
			out[key(f.GetName(), s.GetLabel())] = value(f.GetType(), s)
		}
	}
	return out
}

// key is the series' name{label="value",…}.
func key(name string, labels []*dto.LabelPair) string {
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+strconv.Quote(l.GetValue()))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// value is a series' value; a histogram's count of observations.
func value(typ dto.MetricType, s *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return s.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return s.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(s.GetHistogram().GetSampleCount())
	}
	return s.GetUntyped().GetValue()
}

func TestGraphQLRequestLabels(t *testing.T) {
	t.Parallel()
	m := telemetry.New(telemetry.Options{OperationNames: []string{"Dashboard", "Login"}, Codes: []string{"BAD_USER_INPUT", "RATE_LIMITED"}})
	g := m.GraphQL
	g.GraphQLRequest("query", "Dashboard", "OK", 3*time.Millisecond)
	g.GraphQLRequest("query", "Dashboard", "OK", 4*time.Millisecond)
	g.GraphQLRequest("mutation", "Login", "BAD_USER_INPUT", time.Millisecond)
	g.GraphQLRequest("query", "Untrusted", "OK", time.Millisecond)
	g.GraphQLRequest("query", "", "SOMETHING_NEW", time.Millisecond)
	g.GraphQLRequest("", "", "RATE_LIMITED", time.Millisecond)
	g.GraphQLRequest("subscription", "Dashboard", "OK", -1) // a stream: counted, not timed
	g.GraphQLError("BAD_USER_INPUT")
	g.GraphQLError("SOMETHING_NEW")
	g.GraphQLError("OK")

	got := series(t, m, "obsqra_graphql_")
	want := map[string]float64{
		`obsqra_graphql_requests_total{code="OK",operation="Dashboard",type="query"}`:            2,
		`obsqra_graphql_requests_total{code="BAD_USER_INPUT",operation="Login",type="mutation"}`: 1,
		`obsqra_graphql_requests_total{code="OK",operation="other",type="query"}`:                1,
		`obsqra_graphql_requests_total{code="OTHER",operation="other",type="query"}`:             1,
		`obsqra_graphql_requests_total{code="RATE_LIMITED",operation="other",type="none"}`:       1,
		`obsqra_graphql_requests_total{code="OK",operation="Dashboard",type="subscription"}`:     1,
		`obsqra_graphql_request_duration_seconds{operation="Dashboard",type="query"}`:            2,
		`obsqra_graphql_request_duration_seconds{operation="Login",type="mutation"}`:             1,
		`obsqra_graphql_request_duration_seconds{operation="other",type="query"}`:                2,
		`obsqra_graphql_request_duration_seconds{operation="other",type="none"}`:                 1,
		`obsqra_graphql_errors_total{code="BAD_USER_INPUT"}`:                                     1,
		`obsqra_graphql_errors_total{code="RATE_LIMITED"}`:                                       0,
		`obsqra_graphql_errors_total{code="OTHER"}`:                                              1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s = %v", k, got[k])
		}
	}
}

// TestGraphQLNamesFlood: however many distinct names and codes clients
// send, the series stay those of the trusted names and known codes.
func TestGraphQLNamesFlood(t *testing.T) {
	t.Parallel()
	m := telemetry.New(telemetry.Options{OperationNames: []string{"Dashboard"}, Codes: []string{"BAD_USER_INPUT"}})
	m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
	before := len(series(t, m, "obsqra_graphql_"))
	for i := range 5000 {
		m.GraphQL.GraphQLRequest("query", "Op"+strconv.Itoa(i), "CODE_"+strconv.Itoa(i), time.Millisecond)
		m.GraphQL.GraphQLError("CODE_" + strconv.Itoa(i))
	}
	got := series(t, m, "obsqra_graphql_")
	// The flood adds at most one counter, one histogram (other) and no
	// error series (OTHER exists from the start).
	if len(got) > before+2 {
		t.Errorf("after 5000 distinct names: %d series, want at most %d", len(got), before+2)
	}
	if v := got[`obsqra_graphql_requests_total{code="OTHER",operation="other",type="query"}`]; v != 5000 {
		t.Errorf("other/OTHER requests = %v, want 5000", v)
	}
}

// TestGraphQLRequestAllocates nothing once its series exist.
func TestGraphQLRequestAllocates(t *testing.T) {
	m := telemetry.New(telemetry.Options{OperationNames: []string{"Dashboard"}, Codes: []string{"BAD_USER_INPUT"}})
	m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
	if n := testing.AllocsPerRun(1000, func() {
		m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
		m.GraphQL.GraphQLError("BAD_USER_INPUT")
	}); n != 0 {
		t.Errorf("GraphQLRequest allocates %v times per call, want 0", n)
	}
}

func BenchmarkGraphQLRequest(b *testing.B) {
	m := telemetry.New(telemetry.Options{OperationNames: []string{"Dashboard", "Login", "Protocols"}, Codes: []string{"BAD_USER_INPUT"}})
	b.ReportAllocs()
	for b.Loop() {
		m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
	}
}

func TestRecorders(t *testing.T) {
	t.Parallel()
	m := telemetry.New(telemetry.Options{})
	m.GraphQL.RateLimited("anonymous")
	m.GraphQL.SlowConsumer(telemetry.TransportSSE)
	m.Live.EventsDispatched(3)
	m.Live.EventDelivered(20 * time.Millisecond)
	m.Live.EventDelivered(-time.Second)
	m.Live.SubscriptionTooSlow()
	m.Jobs.JobRun("prune", obsqra.JobTimedOut, time.Second)
	m.Jobs.JobRun("prune", obsqra.JobSucceeded, time.Second)
	m.Jobs.Leading(true)
	m.Starknet.RPCCall("starknet_call", "ok", 30*time.Millisecond)
	m.Starknet.RPCFailover()

	got := series(t, m, "obsqra_")
	for k, v := range map[string]float64{
		`obsqra_rate_limited_total{policy="anonymous"}`:                    1,
		`obsqra_slow_consumers_total{transport="sse"}`:                     1,
		`obsqra_slow_consumers_total{transport="websocket"}`:               0,
		`obsqra_live_events_dispatched_total{}`:                            3,
		`obsqra_live_events_delivered_total{}`:                             2,
		`obsqra_live_delivery_lag_seconds{}`:                               2,
		`obsqra_live_slow_subscriptions_total{}`:                           1,
		`obsqra_scheduler_runs_total{job="prune",outcome="timed_out"}`:     1,
		`obsqra_scheduler_runs_total{job="prune",outcome="succeeded"}`:     1,
		`obsqra_scheduler_run_duration_seconds{job="prune"}`:               2,
		`obsqra_scheduler_leader{}`:                                        1,
		`obsqra_starknet_calls_total{method="starknet_call",outcome="ok"}`: 1,
		`obsqra_starknet_call_duration_seconds{method="starknet_call"}`:    1,
		`obsqra_starknet_failovers_total{}`:                                1,
		`obsqra_build_info{version=""}`:                                    1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	m := telemetry.New(telemetry.Options{})
	reads := 0
	m.WatchDatabase(func() telemetry.Database {
		reads++
		return telemetry.Database{
			Pool:            sql.DBStats{MaxOpenConnections: 20, OpenConnections: 5, InUse: 3, Idle: 2, WaitCount: 7, WaitDuration: 1500 * time.Millisecond},
			EventsCommitted: 11, ListenReconnects: 2,
		}
	})
	m.WatchConnections(func() telemetry.Connections {
		return telemetry.Connections{
			Open:          telemetry.Transports{WebSocket: 4, SSE: 2, Multipart: 1},
			Subscriptions: telemetry.Transports{WebSocket: 9, SSE: 2, Multipart: 1},
			SharedStreams: 3,
		}
	})
	m.WatchHub(func() telemetry.Hub { return telemetry.Hub{Subscriptions: 3, QueuedBytes: 4096} })

	got := series(t, m, "obsqra_")
	if reads != 1 {
		t.Errorf("one scrape read the database %d times, want 1", reads)
	}
	for k, v := range map[string]float64{
		`obsqra_db_connections_max_open{}`:            20,
		`obsqra_db_connections_open{}`:                5,
		`obsqra_db_connections_in_use{}`:              3,
		`obsqra_db_connections_idle{}`:                2,
		`obsqra_db_waits_total{}`:                     7,
		`obsqra_db_wait_seconds_total{}`:              1.5,
		`obsqra_live_events_committed_total{}`:        11,
		`obsqra_live_listen_reconnects_total{}`:       2,
		`obsqra_connections{transport="websocket"}`:   4,
		`obsqra_connections{transport="sse"}`:         2,
		`obsqra_connections{transport="multipart"}`:   1,
		`obsqra_subscriptions{transport="websocket"}`: 9,
		`obsqra_shared_streams{}`:                     3,
		`obsqra_live_subscriptions{}`:                 3,
		`obsqra_live_queued_bytes{}`:                  4096,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestHandler: the handler answers Prometheus' text format, which parses,
// with the metrics' help and types.
func TestHandler(t *testing.T) {
	t.Parallel()
	m := telemetry.New(telemetry.Options{Version: "v1.2.3", OperationNames: []string{"Dashboard"}})
	m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the text format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	var names []string
	for name := range families {
		names = append(names, name)
	}
	for _, want := range []string{"obsqra_graphql_requests_total", "obsqra_graphql_request_duration_seconds", "obsqra_build_info",
		"go_goroutines", "process_cpu_seconds_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if f := families["obsqra_graphql_request_duration_seconds"]; f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("obsqra_graphql_request_duration_seconds is a %v, want a histogram", f.GetType())
	}
	if !strings.Contains(string(body), `obsqra_build_info{version="v1.2.3"} 1`) {
		t.Errorf("/metrics lacks the build info line:\n%s", body)
	}
}
