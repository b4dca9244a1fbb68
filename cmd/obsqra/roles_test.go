package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/lib/pq"

	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store/storetest"
)

// rolesScript is the init script compose.yaml mounts into the postgres
// container.
const rolesScript = "../../deploy/postgres-roles.sql"

// TestPostgresRoles runs deploy/postgres-roles.sql as the postgres image's
// entrypoint does (psql, as the superuser, in POSTGRES_DB) on a throwaway
// cluster, then `obsqra serve` as compose.yaml runs it: migrating as
// obsqra_owner, serving as obsqra_server. Every scheduler job runs once at
// start (leadership: a session advisory lock and set_config; the outbox and
// the decision log: transaction advisory locks and pg_notify), a user
// registers and a subscriber hears a live score (LISTEN), and nothing fails
// for want of a privilege. The server's role may do nothing else (no DDL,
// no TRUNCATE, no temporary table, no rewriting history), and a table the
// owner creates later is the server's to read and write at once (the
// default privileges). The cluster trusts local connections, so the
// passwords are set but not checked.
func TestPostgresRoles(t *testing.T) {
	cluster := storetest.StartCluster(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("psql: %v (REQUIRE_POSTGRES=1)", err)
		}
		t.Skipf("psql: %v", err)
	}
	super, err := sql.Open("postgres", cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	if _, err := super.Exec("CREATE DATABASE obsqra"); err != nil {
		t.Fatal(err)
	}
	clusterURL, err := url.Parse(cluster.URL())
	if err != nil {
		t.Fatal(err)
	}
	// as is the URL of the database obsqra as role (compose.yaml's
	// DATABASE_URL and MIGRATION_DATABASE_URL, on the cluster's address).
	as := func(role, password string) string {
		u := *clusterURL
		u.User = url.UserPassword(role, password)
		u.Path = "/obsqra"
		return u.String()
	}
	const ownerPassword, serverPassword = "owner0123456789abcdef", "server0123456789abcdef"
	runScript := func(env ...string) (string, error) {
		cmd := exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", as("postgres", ""), "-f", rolesScript)
		cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "OBSQRA_") }), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	obsqraRoles := func() int {
		var n int
		if err := super.QueryRow("SELECT COUNT(*) FROM pg_roles WHERE rolname LIKE 'obsqra\\_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if out, err := runScript("OBSQRA_OWNER_PASSWORD=" + ownerPassword); err == nil || !strings.Contains(out, "set OBSQRA_OWNER_PASSWORD and OBSQRA_SERVER_PASSWORD") {
		t.Fatalf("the script without OBSQRA_SERVER_PASSWORD = %v\n%s\nwant it refused", err, out)
	}
	if n := obsqraRoles(); n != 0 {
		t.Fatalf("the refused script left %d roles", n)
	}
	if out, err := runScript("OBSQRA_OWNER_PASSWORD="+ownerPassword, "OBSQRA_SERVER_PASSWORD="+serverPassword); err != nil {
		t.Fatalf("psql -f %s: %v\n%s", rolesScript, err, out)
	}
	if n := obsqraRoles(); n != 2 {
		t.Fatalf("the script made %d roles obsqra_*, want 2", n)
	}

	env(t)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for k, v := range map[string]string{
		"API_PORT":               strconv.Itoa(port),
		"DATABASE_URL":           as("obsqra_server", serverPassword),
		"MIGRATION_DATABASE_URL": as("obsqra_owner", ownerPassword),
		"MARKET_POLL_INTERVAL":   "1s",
	} {
		t.Setenv(k, v)
	}
	db := func(role, password string) *sql.DB {
		d, err := sql.Open("postgres", as(role, password))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	owner, server, watcher := db("obsqra_owner", ownerPassword), db("obsqra_server", serverPassword), db("postgres", "")

	log := new(obsqratest.Buffer)
	serveLogging(t, base, log, func() {
		body := post(t, base, "", register("roles@example.com"))
		if !strings.Contains(string(body), `"accessToken":"`) {
			t.Errorf("register as obsqra_server = %s", body)
		}
		if err := hearLiveScore(base); err != nil {
			t.Errorf("live score over a WebSocket: %v", err)
		}
		jobs := []string{"alerts", "decision-audit", "forecast-refresh", "market-ingest", "outcome-scoring", "prune", "rebalance-check"}
		if err := waitJobs(watcher, jobs); err != nil {
			t.Errorf("scheduler jobs as obsqra_server: %v", err)
		}
		var leader string
		if err := watcher.QueryRow("SELECT usename FROM pg_stat_activity WHERE application_name LIKE 'obsqra leader %'").Scan(&leader); err != nil || leader != "obsqra_server" {
			t.Errorf("the scheduler's leader session = %q, %v; want obsqra_server's", leader, err)
		}
	})
	for _, bad := range []string{"permission denied", "level=ERROR"} {
		if strings.Contains(log.String(), bad) {
			t.Errorf("serve as obsqra_server logged %q:\n%s", bad, log.String())
		}
	}

	var owners []string
	rows, err := watcher.Query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var o string
		rows.Scan(&o)
		owners = append(owners, o)
	}
	rows.Close()
	if !slices.Equal(owners, []string{"obsqra_owner"}) {
		t.Errorf("the tables' owners = %v, want obsqra_owner alone", owners)
	}

	ctx := context.Background()
	for stmt, want := range map[string]string{
		"CREATE TABLE intruder (id int)":            "permission denied for schema public",
		"CREATE TEMP TABLE scratch (id int)":        "permission denied to create temporary tables",
		"TRUNCATE users CASCADE":                    "permission denied",
		"UPDATE decisions SET output = '{}'":        "permission denied",
		"DELETE FROM risk_scores":                   "permission denied",
		"ALTER TABLE users ADD COLUMN x int":        "must be owner",
		"DROP TABLE sessions CASCADE":               "must be owner",
		"INSERT INTO goose_db_version VALUES (999)": "permission denied",
	} {
		if _, err := server.ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s as obsqra_server = %v, want %q", stmt, err, want)
		}
	}

	// A table of a later migration is the server's before any grant.
	if _, err := owner.ExecContext(ctx, "CREATE TABLE later (id bigserial PRIMARY KEY, v int NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"INSERT INTO later (v) VALUES (1)", "SELECT v FROM later", "UPDATE later SET v = 2", "DELETE FROM later",
	} {
		if _, err := server.ExecContext(ctx, stmt); err != nil {
			t.Errorf("%s as obsqra_server on a table the owner created later = %v", stmt, err)
		}
	}
}

// hearLiveScore subscribes to riskScoreUpdated over graphql-transport-ws
// at base and waits up to 20 s for one score, published by the simulated
// market's next poll.
func hearLiveScore(base string) error {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"graphql-transport-ws"}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/graphql", nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"type": "connection_init"})
	conn.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription { riskScoreUpdated { cursor riskScore { score } } }`,
	}})
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var m struct {
			Type    string
			Payload struct {
				Data struct {
					RiskScoreUpdated struct{ Cursor string }
				}
				Errors []struct{ Message string }
			}
		}
		if err := conn.ReadJSON(&m); err != nil {
			return err
		}
		switch {
		case m.Type == "next" && len(m.Payload.Errors) > 0:
			return errorsOf(m.Payload.Errors)
		case m.Type == "next" && m.Payload.Data.RiskScoreUpdated.Cursor != "":
			return nil
		case m.Type == "connection_ack", m.Type == "ping", m.Type == "pong":
		default:
			return fmt.Errorf("unexpected message %q", m.Type)
		}
	}
}

// errorsOf joins GraphQL error messages into one error.
func errorsOf(errs []struct{ Message string }) error {
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Message)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// waitJobs waits up to 60 s until each of jobs has finished a run recorded
// in job_runs, and returns an error naming any run that failed, or the jobs
// that have not finished one.
func waitJobs(db *sql.DB, jobs []string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		rows, err := db.Query("SELECT job, outcome, error FROM job_runs WHERE outcome <> 'RUNNING'")
		if err != nil {
			return err
		}
		done := map[string]bool{}
		var failed []string
		for rows.Next() {
			var job, outcome, msg string
			if err := rows.Scan(&job, &outcome, &msg); err != nil {
				rows.Close()
				return err
			}
			done[job] = true
			if outcome != "SUCCEEDED" {
				failed = append(failed, job+": "+outcome+" "+msg)
			}
		}
		rows.Close()
		if len(failed) > 0 {
			return fmt.Errorf("runs failed: %s", strings.Join(failed, "; "))
		}
		missing := slices.DeleteFunc(slices.Clone(jobs), func(j string) bool { return done[j] })
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no finished run of %s", strings.Join(missing, ", "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
