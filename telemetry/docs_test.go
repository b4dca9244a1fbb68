package telemetry_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/telemetry"
)

// everything returns metrics with one of each recorded and every Watch
// made, so that every family the server exports is there.
func everything(t *testing.T) map[string]bool {
	t.Helper()
	m := telemetry.New(telemetry.Options{OperationNames: []string{"Dashboard"}, Codes: []string{"BAD_USER_INPUT"}})
	m.GraphQL.GraphQLRequest("query", "Dashboard", "OK", time.Millisecond)
	m.GraphQL.RateLimited("anonymous")
	m.Jobs.JobRun("prune", obsqra.JobSucceeded, time.Second)
	m.Starknet.RPCCall("starknet_call", "ok", time.Millisecond)
	m.WatchDatabase(func() telemetry.Database { return telemetry.Database{} })
	m.WatchConnections(func() telemetry.Connections { return telemetry.Connections{} })
	m.WatchHub(func() telemetry.Hub { return telemetry.Hub{} })
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "obsqra_") {
			names[f.GetName()] = true
		}
	}
	return names
}

// metricName finds the obsqra_ metrics a text names; a histogram's
// series (_bucket, _sum, _count) name the histogram.
var metricName = regexp.MustCompile(`obsqra_[a-z_]+[a-z]`)

// named returns the metrics text names, as exported families.
func named(text string, exported map[string]bool) []string {
	var out []string
	for _, n := range metricName.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base := strings.TrimSuffix(n, suffix); base != n && exported[base] {
				n = base
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// TestReadmeListsTheMetrics: the README's Metrics section names every
// metric exported, and no other.
func TestReadmeListsTheMetrics(t *testing.T) {
	t.Parallel()
	exported := everything(t)
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Metrics\n")
	if start < 0 {
		t.Fatal("README has no Metrics section")
	}
	section := readme[start+1:]
	section = section[:strings.Index(section, "\n## ")]
	documented := named(section, exported)
	for name := range exported {
		if !slices.Contains(documented, name) {
			t.Errorf("README's Metrics section does not name %s", name)
		}
	}
	for _, name := range documented {
		if !exported[name] {
			t.Errorf("README's Metrics section names %s, which is not exported", name)
		}
	}
}

// TestDashboardQueriesExportedMetrics: every metric the Grafana dashboard
// queries is exported.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	t.Parallel()
	exported := everything(t)
	b, err := os.ReadFile("../ops/grafana/obsqra.json")
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dashboard); err != nil {
		t.Fatalf("ops/grafana/obsqra.json: %v", err)
	}
	queried := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			if strings.Count(target.Expr, "(") != strings.Count(target.Expr, ")") {
				t.Errorf("panel %q: unbalanced parentheses in %s", p.Title, target.Expr)
			}
			for _, name := range named(target.Expr, exported) {
				queried++
				if !exported[name] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, name)
				}
			}
		}
	}
	if queried == 0 {
		t.Error("the dashboard queries no metric")
	}
}
