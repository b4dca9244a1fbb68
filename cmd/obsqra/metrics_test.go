package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url (a /metrics) and parses Prometheus' text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

// sample returns the value of the series of families named name whose
// labels are labels (name, value pairs), and whether there is one; a
// histogram's value is its count of observations.
func sample(families map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount()), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// hasLabels reports whether m has exactly labels (name, value pairs).
func hasLabels(m *dto.Metric, labels []string) bool {
	if len(m.GetLabel())*2 != len(labels) {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestMetrics runs `obsqra serve` with a metrics listener and a trusted
// document, makes requests, and reads them back from /metrics in
// Prometheus' text format: the trusted operation by its name, any other
// name as other (a flood of names adds no series), a validation failure
// as none with its code, the errors by code, and the state read at
// scrape time (the database pool, the scheduler's leadership and runs,
// the outbox). /metrics is not served on the API's port, nor the API on
// the metrics'.
func TestMetrics(t *testing.T) {
	dir := env(t)
	port, metricsPort := freePort(t), freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(metricsPort) + "/metrics"
	t.Setenv("API_PORT", strconv.Itoa(port))
	t.Setenv("METRICS_ADDR", "127.0.0.1:"+strconv.Itoa(metricsPort))
	const trusted = `query Protocols { protocols { id } }`
	sum := sha256.Sum256([]byte(trusted))
	hash := hex.EncodeToString(sum[:])
	manifest, _ := json.Marshal(map[string]string{hash: trusted})
	path := filepath.Join(dir, "persisted-documents.json")
	if err := os.WriteFile(path, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRUSTED_DOCUMENTS", path)

	serveWhile(t, base, func() {
		t.Run("requests", func(t *testing.T) {
			byHash := `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + hash + `"}}}`
			if body := postRaw(t, base, byHash); !strings.Contains(string(body), `"protocols"`) {
				t.Fatalf("trusted document by hash = %s", body)
			}
			if body := post(t, base, "", `query Sneaky { protocols { id } }`); !strings.Contains(string(body), `"protocols"`) {
				t.Fatalf("untrusted query = %s", body)
			}
			if body := post(t, base, "", `{ nosuchfield }`); !strings.Contains(string(body), "GRAPHQL_VALIDATION_FAILED") {
				t.Fatalf("invalid query = %s", body)
			}

			m := scrape(t, metricsURL)
			for _, tt := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"obsqra_graphql_requests_total", []string{"type", "query", "operation", "Protocols", "code", "OK"}, 1},
				{"obsqra_graphql_requests_total", []string{"type", "query", "operation", "other", "code", "OK"}, 1},
				{"obsqra_graphql_requests_total", []string{"type", "none", "operation", "other", "code", "GRAPHQL_VALIDATION_FAILED"}, 1},
				{"obsqra_graphql_request_duration_seconds", []string{"type", "query", "operation", "Protocols"}, 1},
				{"obsqra_graphql_errors_total", []string{"code", "GRAPHQL_VALIDATION_FAILED"}, 1},
				{"obsqra_graphql_errors_total", []string{"code", "RATE_LIMITED"}, 0},
				{"obsqra_connections", []string{"transport", "websocket"}, 0},
				{"obsqra_build_info", []string{"version", version}, 1},
			} {
				if got, ok := sample(m, tt.name, tt.labels...); !ok || got != tt.want {
					t.Errorf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
				}
			}
			if got, ok := sample(m, "obsqra_db_connections_max_open"); !ok || got < 1 {
				t.Errorf("obsqra_db_connections_max_open = %v (present %v), want the pool's size", got, ok)
			}
		})

		t.Run("a flood of names makes no series", func(t *testing.T) {
			before := len(scrape(t, metricsURL)["obsqra_graphql_requests_total"].GetMetric())
			for i := range 40 {
				post(t, base, "", fmt.Sprintf(`query Flood%d { protocols { id } }`, i))
			}
			m := scrape(t, metricsURL)
			if after := len(m["obsqra_graphql_requests_total"].GetMetric()); after != before {
				t.Errorf("obsqra_graphql_requests_total has %d series after 40 new names, %d before", after, before)
			}
			if got, _ := sample(m, "obsqra_graphql_requests_total", "type", "query", "operation", "other", "code", "OK"); got != 41 {
				t.Errorf("other queries = %v, want 41", got)
			}
		})

		t.Run("the jobs and the outbox", func(t *testing.T) {
			// The only instance leads at once; its first ingest runs and
			// commits events.
			deadline := time.Now().Add(20 * time.Second)
			for {
				m := scrape(t, metricsURL)
				leader, _ := sample(m, "obsqra_scheduler_leader")
				committed, _ := sample(m, "obsqra_live_events_committed_total")
				runs := len(m["obsqra_scheduler_runs_total"].GetMetric())
				if leader == 1 && committed > 0 && runs > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 20 s: leader %v, events committed %v, %d series of runs; want 1, some, some", leader, committed, runs)
				}
				time.Sleep(50 * time.Millisecond) // the scheduler's goroutines; nothing to wait on from here
			}
		})

		t.Run("apart from the API", func(t *testing.T) {
			for _, url := range []string{base + "/metrics", strings.TrimSuffix(metricsURL, "/metrics") + "/graphql"} {
				resp, err := http.Get(url)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "obsqra_") {
					t.Errorf("GET %s = %d %.80q, want 404", url, resp.StatusCode, body)
				}
			}
		})
	})
}

// TestMetricsAddrTaken: a metrics address that cannot be listened on stops
// the start, naming METRICS_ADDR.
func TestMetricsAddrTaken(t *testing.T) {
	env(t)
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("API_PORT", strconv.Itoa(freePort(t)))
	t.Setenv("METRICS_ADDR", ln.Addr().String())
	var out strings.Builder
	err = run(t.Context(), []string{"serve"}, strings.NewReader(""), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") {
		t.Errorf("run(serve) with METRICS_ADDR taken = %v, want an error naming METRICS_ADDR", err)
	}
}

// postRaw POSTs body as is to base's /graphql and returns the answer.
func postRaw(t *testing.T, base, body string) []byte {
	t.Helper()
	resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}
