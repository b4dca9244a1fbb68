package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestRevocationAcrossProcesses runs two server processes on one
// PostgreSQL database. A socket opened on the second follows the account
// as it changes through the first and through `obsqra user promote` in a
// third process: the promotion applies to its next operation, and the
// logout closes it with 4403 at once, without the client sending anything.
func TestRevocationAcrossProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts server processes")
	}
	env := serveEnv(t, postgresSchema(t))
	_, first := startServe(t, env)
	_, second := startServe(t, env)

	var reg struct {
		Data struct {
			Register struct {
				Auth struct{ AccessToken, RefreshToken string }
			}
		}
	}
	body := post(t, first, "", `mutation { register(input: {email: "ops@example.com", password: "correct horse", fullName: "Ops"}) { auth { accessToken refreshToken } } }`)
	if err := json.Unmarshal(body, &reg); err != nil || reg.Data.Register.Auth.AccessToken == "" {
		t.Fatalf("register: %s", body)
	}
	tokens := reg.Data.Register.Auth

	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"graphql-transport-ws"}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(second, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type message struct {
		ID, Type string
		Payload  json.RawMessage
	}
	read := func() (message, error) {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m message
		err := conn.ReadJSON(&m)
		return m, err
	}
	conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + tokens.AccessToken}})
	if m, err := read(); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	setParams := func(id string) string {
		t.Helper()
		conn.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{
			"query": `mutation { setRiskParams(input: {clampMin: 5}) { clampMin } }`}})
		m, err := read()
		if err != nil || m.Type != "next" {
			t.Fatalf("setRiskParams %s: %+v %v", id, m, err)
		}
		if c, err := read(); err != nil || c.Type != "complete" {
			t.Fatalf("after setRiskParams %s: %+v %v", id, c, err)
		}
		return string(m.Payload)
	}

	t.Run("promotion in another process applies to the next operation", func(t *testing.T) {
		if got := setParams("1"); !strings.Contains(got, `"code":"FORBIDDEN"`) {
			t.Fatalf("setRiskParams before the promotion = %s, want FORBIDDEN", got)
		}
		promote := exec.Command(os.Args[0], "-test.run=^TestServeHelperProcess$")
		promote.Env = append(append(os.Environ(), "OBSQRA_HELPER_SERVE=1", "OBSQRA_HELPER_ARGS=user promote ops@example.com"), env...)
		if out, err := promote.CombinedOutput(); err != nil {
			t.Fatalf("obsqra user promote: %v\n%s", err, out)
		}
		if got := setParams("2"); !strings.Contains(got, `"clampMin":5`) {
			t.Fatalf("setRiskParams after the promotion = %s", got)
		}
	})

	t.Run("logout through the first closes the socket on the second", func(t *testing.T) {
		body := post(t, first, "", `mutation { logout(refreshToken: "`+tokens.RefreshToken+`") }`)
		if !strings.Contains(string(body), `"logout":true`) {
			t.Fatalf("logout: %s", body)
		}
		loggedOut := time.Now()
		for {
			m, err := read()
			if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
				t.Logf("the second server closed the socket %v after the logout returned", time.Since(loggedOut))
				if ce.Code != 4403 || ce.Text != "Forbidden: the session of this access token has ended; sign in again" {
					t.Fatalf("close = %d %q", ce.Code, ce.Text)
				}
				return
			} else if err != nil {
				t.Fatalf("read: %v", err)
			}
			if m.Type != "ping" {
				t.Fatalf("before the close got %+v", m)
			}
		}
	})
}
