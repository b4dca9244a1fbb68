package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestLiveAcrossProcesses runs two server processes on one PostgreSQL
// database: a score ingested through the first reaches a subscriber of the
// second (NOTIFY between processes); the second is killed mid-stream, more
// scores are ingested, and a new second process replays them to the
// subscriber resuming from its last cursor, exactly once and in order.
func TestLiveAcrossProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts server processes")
	}
	env := serveEnv(t, postgresSchema(t))
	start := func() (*exec.Cmd, string) { return startServe(t, env) }
	_, writer := start()
	reader, readerBase := start()

	var reg struct {
		Data struct {
			Register struct{ Auth struct{ AccessToken string } }
		}
	}
	body := post(t, writer, "", `mutation { register(input: {email: "admin@example.com", password: "correct horse", fullName: "Admin"}) { auth { accessToken } } }`)
	if err := json.Unmarshal(body, &reg); err != nil || reg.Data.Register.Auth.AccessToken == "" {
		t.Fatalf("register: %s", body)
	}
	admin := reg.Data.Register.Auth.AccessToken
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	ingest := func(i int) {
		t.Helper()
		q := fmt.Sprintf(`mutation { ingestMetrics(input: [{protocol: "zklend", observedAt: %q, apyBps: %d, utilizationBps: 5000}]) { id } }`,
			base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), 300+i)
		if b := post(t, writer, admin, q); strings.Contains(string(b), "errors") {
			t.Fatalf("ingest %d: %s", i, b)
		}
	}

	type event struct{ cursor, observedAt string }
	subscribe := func(base, after string) (*websocket.Conn, func() event) {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"graphql-transport-ws"}}
		conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.WriteJSON(map[string]any{"type": "connection_init"})
		vars := map[string]any{"after": after}
		conn.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
			"query":     `subscription($after: String) { riskScoreUpdated(protocols: ["zklend"], after: $after) { cursor riskScore { observedAt } } }`,
			"variables": vars,
		}})
		return conn, func() event {
			t.Helper()
			for {
				conn.SetReadDeadline(time.Now().Add(15 * time.Second))
				var m struct {
					Type    string
					Payload struct {
						Data struct {
							RiskScoreUpdated struct {
								Cursor    string
								RiskScore struct{ ObservedAt string }
							}
						}
						Errors []any
					}
				}
				if err := conn.ReadJSON(&m); err != nil {
					t.Fatalf("read: %v", err)
				}
				switch m.Type {
				case "connection_ack", "ping", "pong":
					continue
				case "next":
					if len(m.Payload.Errors) > 0 {
						t.Fatalf("errors: %v", m.Payload.Errors)
					}
					e := m.Payload.Data.RiskScoreUpdated
					return event{e.Cursor, e.RiskScore.ObservedAt}
				default:
					t.Fatalf("got %s", m.Type)
				}
			}
		}
	}

	// From the start of the outbox (cursor of event 0), so nothing can slip
	// by while the subscription starts on the reader.
	_, next := subscribe(readerBase, "ZXY6MA") // live.Cursor(0)
	ingest(0)
	e := next()
	if e.observedAt != base.Format(time.RFC3339) {
		t.Fatalf("first event = %+v", e)
	}
	ingest(1)
	last := next()

	// The reader dies mid-stream; three scores are ingested meanwhile.
	reader.Process.Kill()
	reader.Wait()
	for i := 2; i <= 4; i++ {
		ingest(i)
	}
	_, readerBase = start()
	_, next = subscribe(readerBase, last.cursor)
	for i := 2; i <= 4; i++ {
		if e := next(); e.observedAt != base.Add(time.Duration(i)*time.Second).Format(time.RFC3339) {
			t.Fatalf("replayed event %d = %+v", i, e)
		}
	}
	ingest(5)
	if e := next(); e.observedAt != base.Add(5*time.Second).Format(time.RFC3339) {
		t.Fatalf("live event after the replay = %+v", e)
	}
}

// serveEnv is the environment of server processes on the PostgreSQL
// database dbURL.
func serveEnv(t *testing.T, dbURL string) []string {
	return []string{
		"DATABASE_URL=" + dbURL,
		"API_HOST=127.0.0.1",
		"SECRET_KEY=" + strings.Repeat("k", 32),
		"MARKET_SOURCE=none",
		"LOG_LEVEL=warn",
		"METRICS_ADDR=off", // several processes: none takes the default port
		"BCRYPT_COST=4",
		"ADMIN_EMAILS=admin@example.com",
		"DATA_DIR=" + t.TempDir(),
	}
}

// startServe starts `obsqra serve` in a process of its own with env, on a
// free port, and returns it once it is ready, with its base URL. The
// process is killed when the test ends.
func startServe(t *testing.T, env []string) (*exec.Cmd, string) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
	cmd.Env = append(append(os.Environ(), "OBSQRA_HELPER_SERVE=1", "API_PORT="+strconv.Itoa(port)), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s not ready", base)
		}
		time.Sleep(20 * time.Millisecond) // another process starting
	}
}
