package server_test

import (
	"testing"
	"time"

	"github.com/obsqra/obsqra"
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
		b.auth.setDown(false)
		c.subscribe("1", `{ role }`, nil)
		c.expect("next", "1", `{"data":{"role":"USER"}}`)
		b.auth.revoke(goodToken, reasonEnded)
		retry.fire()
		c.expectForbidden(reasonEnded)
	})
}
