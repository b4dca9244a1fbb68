package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/obsqra/obsqra/store/storetest"
)

// RequireClientsEnv makes the client-library tests required: set to 1, as
// .ci/run does after `npm ci --prefix clients`, a missing node or
// node_modules fails TestClients instead of skipping it.
const requireClientsEnv = "REQUIRE_CLIENTS"

// TestClients runs the tests in clients/ (node --test) with the client
// libraries a frontend uses (Apollo Client, graphql-http, graphql-ws, graphql-sse, at
// the versions package-lock.json pins) against `obsqra serve` on each
// database. The server's URL is in OBSQRA_URL, the database's name in
// OBSQRA_DIALECT.
func TestClients(t *testing.T) {
	dir, err := filepath.Abs("../../clients")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@apollo", "client"))
	}
	if err != nil {
		if os.Getenv(requireClientsEnv) == "1" {
			t.Fatalf("client tests: %v (%s=1; run npm ci --prefix clients)", err, requireClientsEnv)
		}
		t.Skipf("client tests: %v (run npm ci --prefix clients; %s=1 fails instead of skipping)", err, requireClientsEnv)
	}
	dialects := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return storetest.URL(t, storetest.SQLite(t)) },
		"postgres": func(t *testing.T) string {
			return storetest.URL(t, storetest.Postgres(t))
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			env(t)
			// Live events every second for the subscriptions' tests
			// (sse.test.mjs), not every 10 s.
			t.Setenv("MARKET_POLL_INTERVAL", "1s")
			t.Setenv("DATABASE_URL", dialects[name](t))
			port := freePort(t)
			t.Setenv("API_PORT", strconv.Itoa(port))
			base := "http://127.0.0.1:" + strconv.Itoa(port)
			serveWhile(t, base, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec")
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "OBSQRA_URL="+base, "OBSQRA_DIALECT="+name)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Run(); err != nil {
					t.Fatalf("node --test in clients/: %v\n%s", err, out.String())
				}
				t.Logf("node --test in clients/:\n%s", out.String())
			})
		})
	}
}
