package resolvers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// wsClient is a client of either GraphQL-over-WebSocket subprotocol.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	legacy bool
}

// dialWS opens a socket in proto signed in with token ("" for none) and
// waits for connection_ack.
func (s *liveServer) dialWS(t *testing.T, proto, token string) *wsClient {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{proto}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(s.srv.URL, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: t, conn: conn, legacy: proto == "graphql-ws"}
	init := wsMessage{Type: "connection_init"}
	if token != "" {
		init.Payload, _ = json.Marshal(map[string]string{"Authorization": "Bearer " + token})
	}
	c.send(init)
	if m := c.read(); m.Type != "connection_ack" {
		t.Fatalf("after connection_init got %s %s", m.Type, m.Payload)
	}
	return c
}

func (c *wsClient) send(m wsMessage) {
	c.t.Helper()
	if err := c.conn.WriteJSON(m); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message other than the legacy keep-alive.
func (c *wsClient) read() wsMessage {
	c.t.Helper()
	for {
		m, err := c.readErr()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if m.Type != "ka" {
			return m
		}
	}
}

func (c *wsClient) readErr() (wsMessage, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m wsMessage
	err := c.conn.ReadJSON(&m)
	return m, err
}

// start starts operation id.
func (c *wsClient) start(id, query string, vars map[string]any) {
	c.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.legacy {
		typ = "start"
	}
	c.send(wsMessage{ID: id, Type: typ, Payload: payload})
}

// result reads the next result of an operation: its payload.
func (c *wsClient) result() gqlResponse {
	c.t.Helper()
	m := c.read()
	if m.Type != "next" && m.Type != "data" {
		c.t.Fatalf("got %s %s, want a result", m.Type, m.Payload)
	}
	var r gqlResponse
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		c.t.Fatal(err)
	}
	return r
}

// closed reads until the server closes the socket and returns the close
// frame; every message read meanwhile must be allowed by ok.
func (c *wsClient) closed(ok func(wsMessage) bool) *websocket.CloseError {
	c.t.Helper()
	for {
		m, err := c.readErr()
		if ce, isClose := errors.AsType[*websocket.CloseError](err); isClose {
			return ce
		} else if err != nil {
			c.t.Fatalf("read until close: %v", err)
		}
		if m.Type != "ka" && !ok(m) {
			c.t.Fatalf("before the close got %s %s", m.Type, m.Payload)
		}
	}
}

// allocationSubscription starts from the beginning, so that no event can
// slip past while the subscription starts.
const allocationSubscription = `subscription($after: String) { allocationRecorded(after: $after) { cursor allocation { id } } }`

const recordVesu = `mutation { recordAllocation(input: {weights: [{protocol: "vesu", weightBps: 10000}]}) { id } }`

// TestEndedSessionClosesItsSockets ends sessions every way there is, on
// both subprotocols: each socket the session signed in is closed with 4403
// and the reason, its private events stop, and a mutation sent on it after
// the end does not run.
func TestEndedSessionClosesItsSockets(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		s.ingest(t, time.Now().UTC().Add(-time.Hour).Truncate(time.Second), 400, "vesu")
		mutate := func(t *testing.T, token, query string, vars map[string]any) {
			t.Helper()
			if r := do(t, h, token, query, vars); len(r.Errors) > 0 {
				t.Fatalf("%s: %+v", query, r.Errors)
			}
		}
		for i, tc := range []struct {
			name   string
			reason string // in the close reason
			end    func(t *testing.T, u authPayload)
		}{
			{"logout with the refresh token", "session of this access token has ended", func(t *testing.T, u authPayload) {
				mutate(t, "", `mutation($r: String) { logout(refreshToken: $r) }`, map[string]any{"r": u.RefreshToken})
			}},
			{"logout of the signed-in session", "session of this access token has ended", func(t *testing.T, u authPayload) {
				mutate(t, u.AccessToken, `mutation { logout }`, nil)
			}},
			{"refresh token reused", "session of this access token has ended", func(t *testing.T, u authPayload) {
				q := `mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }`
				mutate(t, "", q, map[string]any{"r": u.RefreshToken})
				if r := do(t, h, "", q, map[string]any{"r": u.RefreshToken}); r.code() != "UNAUTHENTICATED" {
					t.Fatalf("reused refresh token: %+v", r.Errors)
				}
			}},
			{"password changed", "session of this access token has ended", func(t *testing.T, u authPayload) {
				mutate(t, u.AccessToken, `mutation { changePassword(input: {currentPassword: "correct horse", newPassword: "battery staple"}) }`, nil)
			}},
			{"account deactivated by its user", "deactivated", func(t *testing.T, u authPayload) {
				mutate(t, u.AccessToken, `mutation { deactivateAccount(password: "correct horse") }`, nil)
			}},
			{"user deactivated by an admin", "deactivated", func(t *testing.T, u authPayload) {
				mutate(t, s.admin, `mutation($id: ID!) { setUserActive(userId: $id, active: false) { id } }`, map[string]any{"id": u.User.ID})
			}},
		} {
			for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
				t.Run(tc.name+"/"+proto, func(t *testing.T) {
					u := s.newUser(t, fmt.Sprintf("user%d-%s@example.com", i, proto))
					c := s.dialWS(t, proto, u.AccessToken)
					c.start("sub", allocationSubscription, map[string]any{"after": obsqra.EventCursor(0)})
					// A first private event flows (the subscription is live).
					mutate(t, u.AccessToken, recordVesu, nil)
					if r := c.result(); len(r.Errors) > 0 || !strings.Contains(string(r.Data["allocationRecorded"]), "allocation") {
						t.Fatalf("first allocation event = %+v", r)
					}
					ended := time.Now()
					tc.end(t, u)
					if c.legacy {
						// At once, on the socket: a mutation that must not
						// run (the check of the operation or the event,
						// whichever comes first, closes the socket). On the
						// other subprotocol the client sends nothing: the
						// event alone closes it.
						c.start("mut", recordVesu, nil)
					}
					// Only the legacy subprotocol's connection_error, which
					// says the same as the close frame, may come first.
					ce := c.closed(func(m wsMessage) bool { return m.Type == "connection_error" })
					t.Logf("closed %v after the end", time.Since(ended))
					if ce.Code != 4403 || !strings.HasPrefix(ce.Text, "Forbidden: ") || !strings.Contains(ce.Text, tc.reason) {
						t.Fatalf("close = %d %q, want 4403 Forbidden: …%s…", ce.Code, ce.Text, tc.reason)
					}
					id := userID(t, u)
					allocs, err := db.AllocationsSince(context.Background(), id, time.Time{})
					if err != nil || len(allocs) != 1 {
						t.Fatalf("allocations of the user = %d (%v), want only the one before the end", len(allocs), err)
					}
				})
			}
		}
	})
}

// newUser registers a user through the account service, from an address
// of its own (registrations are throttled per address), and returns the
// payload as the API would.
func (s *liveServer) newUser(t *testing.T, email string) authPayload {
	t.Helper()
	s.users++
	ctx := obsqra.NewContextWithClient(context.Background(), &obsqra.Client{Address: fmt.Sprintf("198.51.100.%d", s.users)})
	r, err := s.accounts.Register(ctx, account.RegisterInput{Email: email, Password: "correct horse", FullName: "Ada"})
	if err != nil {
		t.Fatalf("Register(%s): %v", email, err)
	}
	p := r.Auth
	var u authPayload
	u.AccessToken, u.RefreshToken = p.AccessToken, p.RefreshToken
	u.User.ID, u.User.Email, u.User.Role = obsqra.NodeID("User", p.User.ID), p.User.Email, string(p.User.Role)
	return u
}

// userID decodes the user id of an auth payload.
func userID(t *testing.T, u authPayload) int64 {
	t.Helper()
	typ, id, err := obsqra.ParseNodeID(u.User.ID)
	if err != nil || typ != "User" {
		t.Fatalf("user id %q: %s %v", u.User.ID, typ, err)
	}
	return id
}

// TestAccountChangesApplyToOpenSockets: a role given by `obsqra user
// promote` (the account service, as that command calls it) applies to the
// next operation of a socket opened before; an admin deactivated by another
// admin loses their socket and cannot act through it.
func TestAccountChangesApplyToOpenSockets(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		const setParams = `mutation { setRiskParams(input: {clampMin: 5}) { clampMin } }`
		u := s.newUser(t, "grace@example.com")
		c := s.dialWS(t, "graphql-transport-ws", u.AccessToken)
		c.start("1", setParams, nil)
		if r := c.result(); r.code() != "FORBIDDEN" {
			t.Fatalf("setRiskParams before the promotion: %+v", r.Errors)
		}
		if m := c.read(); m.Type != "complete" {
			t.Fatalf("got %s, want complete", m.Type)
		}
		if _, err := s.accounts.Promote(context.Background(), "grace@example.com"); err != nil {
			t.Fatal(err)
		}
		c.start("2", setParams, nil)
		if r := c.result(); len(r.Errors) > 0 {
			t.Fatalf("setRiskParams after the promotion: %+v", r.Errors)
		}

		// grace, now an admin, deactivates another admin.
		other := s.newUser(t, "admin2@example.com")
		if _, err := s.accounts.Promote(context.Background(), "admin2@example.com"); err != nil {
			t.Fatal(err)
		}
		oc := s.dialWS(t, "graphql-transport-ws", other.AccessToken)
		if r := do(t, s.srv.Config.Handler, u.AccessToken, `mutation($id: ID!) { setUserActive(userId: $id, active: false) { id } }`,
			map[string]any{"id": other.User.ID}); len(r.Errors) > 0 {
			t.Fatalf("setUserActive: %+v", r.Errors)
		}
		ce := oc.closed(func(wsMessage) bool { return false })
		if ce.Code != 4403 || ce.Text != "Forbidden: this account is deactivated" {
			t.Fatalf("close of the deactivated admin's socket = %d %q", ce.Code, ce.Text)
		}
	})
}

// TestLogoutEverywhere: logout(everywhere: true) ends every session of the
// user, and the sockets of each, on either subprotocol; it cannot be given
// with a refresh token.
func TestLogoutEverywhere(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s := newLiveServer(t, db)
		h := s.srv.Config.Handler
		u := s.newUser(t, "everywhere@example.com")
		p, err := s.accounts.Login(obsqra.NewContextWithClient(context.Background(), &obsqra.Client{Address: "198.51.100.200"}),
			"everywhere@example.com", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		phone := s.dialWS(t, "graphql-transport-ws", u.AccessToken)
		laptop := s.dialWS(t, "graphql-ws", p.AccessToken)
		if r := do(t, h, u.AccessToken, `mutation($r: String) { logout(refreshToken: $r, everywhere: true) }`,
			map[string]any{"r": u.RefreshToken}); r.code() != "BAD_USER_INPUT" {
			t.Fatalf("logout with both: %+v", r.Errors)
		}
		if r := do(t, h, u.AccessToken, `mutation { logout(everywhere: true) }`, nil); len(r.Errors) > 0 {
			t.Fatalf("logout everywhere: %+v", r.Errors)
		}
		for name, c := range map[string]*wsClient{"phone": phone, "laptop": laptop} {
			ce := c.closed(func(m wsMessage) bool { return m.Type == "connection_error" })
			if ce.Code != 4403 || !strings.Contains(ce.Text, "session of this access token has ended") {
				t.Errorf("%s's socket closed %d %q, want 4403 and the session's end", name, ce.Code, ce.Text)
			}
		}
		if r := do(t, h, p.AccessToken, `{ me { id } }`, nil); r.code() != "UNAUTHENTICATED" {
			t.Errorf("the other session's token after logout everywhere: %+v", r.Errors)
		}
	})
}
