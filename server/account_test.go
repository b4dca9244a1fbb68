package server_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server"
)

const reasonEnded = "the session of this access token has ended; sign in again"

// expectForbidden reads until the 4403 close with the reason of a refused
// token, after the legacy subprotocol's connection_error.
func (c *wsClient) expectForbidden(reason string) {
	c.t.Helper()
	if c.conn.Subprotocol() == "graphql-ws" {
		c.expect("connection_error", "", `{"message":"Forbidden: `+reason+`"}`)
	}
	c.expectClose(4403, "Forbidden: "+reason)
}

// TestWebSocketOperationChecksTheTokenNow: every operation on a socket is
// authorised against the session and user as they are now. After the
// session ends, the next operation closes the socket with 4403 instead of
// running, even if no event about it was heard; a new role applies to the
// next operation.
func TestWebSocketOperationChecksTheTokenNow(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto+"/ended session", func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto)
			c.init(map[string]string{"token": goodToken})
			c.subscribe("1", `mutation { noop }`, nil)
			c.expect(c.nextType(), "1", `{"data":{"noop":true}}`)
			c.expect("complete", "1", "")

			b.auth.revoke(goodToken, reasonEnded)
			c.subscribe("2", `mutation { noop }`, nil)
			c.expectForbidden(reasonEnded)
			if n := b.schema.noops.Load(); n != 1 {
				t.Errorf("noop ran %d times, want once (before the session ended)", n)
			}
		})
		t.Run(proto+"/role", func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto)
			c.init(map[string]string{"token": goodToken})
			c.subscribe("1", `{ role }`, nil)
			c.expect(c.nextType(), "1", `{"data":{"role":"USER"}}`)
			c.expect("complete", "1", "")
			b.auth.setRole(obsqra.RoleAdmin)
			c.subscribe("2", `{ role }`, nil)
			c.expect(c.nextType(), "2", `{"data":{"role":"ADMIN"}}`)
		})
	}
	t.Run("anonymous sockets check nothing", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.dial(t, "graphql-transport-ws")
		c.init(nil)
		c.subscribe("1", `{ role }`, nil)
		c.expect("next", "1", `{"data":{"role":null}}`)
		if n := b.auth.checks(); n != 0 {
			t.Errorf("tokens checked = %d, want 0", n)
		}
	})
}

// TestWebSocketClosedWhenAccountChanges: an account.changed event (heard
// from the outbox on every instance) makes the server check the user's
// sockets at once: a socket whose session ended is closed with 4403 and
// the reason, and its running subscriptions are cancelled, without the
// client sending anything; a socket signed in by the upgrade's
// Authorization header too.
func TestWebSocketClosedWhenAccountChanges(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto)
			c.init(map[string]string{"token": goodToken})
			c.subscribe("1", ticks, topicVars("private"))
			sub := b.schema.await(t, "private")
			sub.publish(t, "before")
			c.expect(c.nextType(), "1", `{"data":{"ticks":"before"}}`)

			// Another user's change and an event of another topic touch
			// nothing of ada's.
			b.srv.Observe(obsqra.AccountChangedEvent(ada.ID+1, obsqra.RevokeLogout))
			b.srv.Observe(&obsqra.Event{Topic: "allocation.recorded", OwnerID: ada.ID})
			b.auth.revoke(goodToken, reasonEnded)
			b.srv.Observe(obsqra.AccountChangedEvent(ada.ID, obsqra.RevokeLogout))
			c.expectForbidden(reasonEnded)
			sub.awaitCancelled(t)
		})
	}
	t.Run("signed in by the upgrade header", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		c := b.dial(t, "graphql-transport-ws", "Authorization", "Bearer "+goodToken)
		c.init(nil)
		b.auth.revoke(goodToken, "this account is deactivated")
		b.srv.Observe(obsqra.AccountChangedEvent(ada.ID, obsqra.RevokeDeactivated))
		c.expectForbidden("this account is deactivated")
	})
	t.Run("a check that fails is tried again", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		timers := make(chan *fakeTimer, 4)
		b.srv.SetAfterFunc(func(d time.Duration, f func()) interface{ Stop() bool } {
			ft := &fakeTimer{d: d, fire: f}
			timers <- ft
			return ft
		})
		c := b.dial(t, "graphql-transport-ws")
		c.init(map[string]string{"token": goodToken})
		b.auth.setDown(true)
		b.srv.Observe(obsqra.AccountChangedEvent(ada.ID, obsqra.RevokeLogout))
		var retry *fakeTimer
		select {
		case retry = <-timers:
		case <-time.After(wait):
			t.Fatal("no retry after a failed check")
		}
		// The socket stayed open: the session was not known to have ended.
		// An operation meanwhile is answered SERVICE_UNAVAILABLE, and a new
		// socket is told to try again later (1013), not that it is refused.
		c.subscribe("0", `{ role }`, nil)
		if m := c.expect("error", "0", ""); !strings.Contains(string(m.Payload), `"code":"SERVICE_UNAVAILABLE"`) {
			t.Fatalf("operation while the database is down = %s", m.Payload)
		}
		other := b.dial(t, "graphql-transport-ws")
		other.send(map[string]any{"type": "connection_init", "payload": map[string]string{"token": goodToken}})
		other.expectClose(1013, "the database did not answer; try again later")
		b.auth.setDown(false)
		c.subscribe("1", `{ role }`, nil)
		c.expect("next", "1", `{"data":{"role":"USER"}}`)
		b.auth.revoke(goodToken, reasonEnded)
		retry.fire()
		c.expectForbidden(reasonEnded)
	})
}

// TestWebSocketLimitsPerAddressAndSocket: an address may hold
// WSMaxConnsPerAddress sockets, and the next upgrade is refused with 429
// and RATE_LIMITED until one closes; a socket may run WSMaxOperations
// operations, and the next is answered with RATE_LIMITED while the socket
// stays open.
func TestWebSocketLimitsPerAddressAndSocket(t *testing.T) {
	t.Parallel()
	b := setupWS(t, func(cfg *server.Config) {
		cfg.WSMaxConnsPerAddress = 2
		cfg.WSMaxOperations = 2
	})
	first := b.dial(t, "graphql-transport-ws")
	first.init(nil)
	second := b.dial(t, "graphql-transport-ws")
	second.init(nil)
	c, err := b.tryDial(t, "graphql-transport-ws")
	if err == nil || c.resp == nil || c.resp.StatusCode != http.StatusTooManyRequests || c.resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("third socket from one address: %v %+v, want 429 with Retry-After 5", err, c.resp)
	}

	// Operations: two run, the third is refused, the socket stays usable.
	for _, id := range []string{"a", "b"} {
		second.subscribe(id, ticks, topicVars("limit-"+id))
		b.schema.await(t, "limit-"+id)
	}
	second.subscribe("c", ticks, topicVars("limit-c"))
	m := second.expect("error", "c", "")
	if !strings.Contains(string(m.Payload), `"code":"RATE_LIMITED"`) || !strings.Contains(string(m.Payload), "at most 2 operations") {
		t.Fatalf("third operation = %s", m.Payload)
	}
	second.send(map[string]any{"id": "a", "type": "complete"})
	// Once a stops, c may run (the server forgets a when it reads the
	// complete, before it reads the next subscribe).
	second.subscribe("c", ticks, topicVars("limit-c"))
	b.schema.await(t, "limit-c")

	// A socket that ends frees its place: the next upgrade succeeds once
	// the server has seen the first one go.
	first.conn.Close()
	deadline := time.Now().Add(wait)
	for {
		c, err := b.tryDial(t, "graphql-transport-ws")
		if err == nil {
			c.init(nil)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // the server notices the close
	}
}

// TestWebSocketLimitPerIPv6Network: the sockets of one address are those
// of its /64 when it is IPv6 (a host may take any address of its /64).
func TestWebSocketLimitPerIPv6Network(t *testing.T) {
	t.Parallel()
	b := setupWS(t, func(cfg *server.Config) {
		cfg.WSMaxConnsPerAddress = 2
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	for _, addr := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"} {
		b.dial(t, "graphql-transport-ws", "X-Forwarded-For", addr).init(nil)
	}
	c, err := b.tryDial(t, "graphql-transport-ws", "X-Forwarded-For", "2001:db8:1:2::3")
	if err == nil || c.resp == nil || c.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third socket from one /64: %v, want 429", err)
	}
	b.dial(t, "graphql-transport-ws", "X-Forwarded-For", "2001:db8:1:3::1").init(nil)
}

// TestWebSocketRecheckOncePerToken: the sockets of one session are checked
// with one look at the session, however many there are.
func TestWebSocketRecheckOncePerToken(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	var clients []*wsClient
	for range 5 {
		c := b.dial(t, "graphql-transport-ws")
		c.init(map[string]string{"token": goodToken})
		clients = append(clients, c)
	}
	before := b.auth.checks()
	b.auth.revoke(goodToken, reasonEnded)
	b.srv.Observe(obsqra.AccountChangedEvent(ada.ID, obsqra.RevokeLogout))
	for _, c := range clients {
		c.expectForbidden(reasonEnded)
	}
	if n := b.auth.checks() - before; n != 1 {
		t.Errorf("tokens checked for 5 sockets of one session = %d, want 1", n)
	}
}
