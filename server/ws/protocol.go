package ws

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// message is a message of either subprotocol.
type message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// handle handles one client message.
func (c *conn) handle(data []byte) {
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		c.fail(closeBadRequest, "Invalid message received: not a JSON object with a type")
		return
	}
	if len(m.Payload) > 0 && string(m.Payload) == "null" {
		m.Payload = nil
	}
	if c.legacy {
		c.handleLegacy(m)
	} else {
		c.handleTransportWS(m)
	}
}

// handleTransportWS handles a graphql-transport-ws message.
func (c *conn) handleTransportWS(m message) {
	switch m.Type {
	case "connection_init":
		c.init(m.Payload)
	case "ping":
		c.send("", "pong", nil)
	case "pong":
	case "subscribe":
		if !c.acked.Load() {
			c.fail(closeUnauthorized, reasonUnauthorized)
			return
		}
		if m.ID == "" || m.Payload == nil {
			c.fail(closeBadRequest, "Invalid message received: subscribe needs an id and a payload")
			return
		}
		c.mu.Lock()
		_, running := c.ops[m.ID]
		c.mu.Unlock()
		if running {
			c.fail(closeSubscriberDup, "Subscriber for "+m.ID+" already exists")
			return
		}
		c.startOperation(m.ID, m.Payload)
	case "complete":
		if m.ID == "" {
			c.fail(closeBadRequest, "Invalid message received: complete needs an id")
			return
		}
		c.stopOperation(m.ID)
	default:
		c.fail(closeBadRequest, fmt.Sprintf("Invalid message received: unexpected type %.40q", m.Type))
	}
}

// handleLegacy handles a graphql-ws message.
func (c *conn) handleLegacy(m message) {
	switch m.Type {
	case "connection_init":
		c.init(m.Payload)
	case "start":
		if !c.acked.Load() {
			c.fail(closeUnauthorized, reasonUnauthorized)
			return
		}
		if m.ID == "" || m.Payload == nil {
			c.fail(closeBadRequest, "Invalid message received: start needs an id and a payload")
			return
		}
		// subscriptions-transport-ws replaces an operation whose id is
		// reused.
		c.stopOperation(m.ID)
		c.startOperation(m.ID, m.Payload)
	case "stop":
		if m.ID == "" {
			c.fail(closeBadRequest, "Invalid message received: stop needs an id")
			return
		}
		c.stopOperation(m.ID)
	case "connection_terminate":
		c.terminate(closeInfo{code: closeNormal, reason: "connection terminated", flush: true, byPeer: true})
	default:
		c.fail(closeBadRequest, fmt.Sprintf("Invalid message received: unexpected type %.40q", m.Type))
	}
}

// init answers connection_init, the same in both subprotocols: a second
// one is refused; the first authenticates the connection and acknowledges
// it.
func (c *conn) init(payload json.RawMessage) {
	if c.initReceived.Swap(true) {
		c.fail(closeTooManyInits, reasonTooManyInits)
		return
	}
	token, present, err := initToken(payload)
	if err != nil {
		c.fail(closeBadRequest, "Invalid message received: "+err.Error())
		return
	}
	ctx := c.ctx
	var p *obsqra.Principal
	switch {
	case present && token == "":
		c.refuse(obsqra.Errorf(obsqra.EUNAUTHENTICATED, "the Authorization value must be Bearer followed by an access token"))
		return
	case present:
		if p, err = c.authenticate(token); err != nil {
			c.refuse(err)
			return
		}
		ctx = obsqra.NewContextWithPrincipal(obsqra.NewContextWithAuthError(ctx, nil), p)
	default:
		// Signed in by the upgrade's Authorization header, if at all.
		viewer, err := obsqra.Viewer(ctx)
		if err != nil {
			c.refuse(err)
			return
		}
		if viewer != nil {
			p, _ = obsqra.RequireUser(ctx) // cannot fail: there is a viewer
			token, _ = wire.BearerToken(c.headers.Get("Authorization"))
		}
	}
	var left time.Duration
	if p != nil && !p.ExpiresAt.IsZero() {
		if left = p.ExpiresAt.Sub(c.t.cfg.Now()); left <= 0 {
			c.fail(closeForbidden, reasonExpired)
			return
		}
	}
	c.principal.Store(p)
	c.token, c.opCtx = token, ctx
	c.acked.Store(true)
	c.send("", "connection_ack", nil)
	if c.legacy {
		c.enqueue(legacyKeepAlive)
	}
	// Armed after the ack is queued, so that the ack always precedes the
	// close (fail flushes the queue).
	if left > 0 {
		c.expiry = c.t.cfg.AfterFunc(left, func() { c.fail(closeForbidden, reasonExpired) })
	}
}

// initToken returns the access token of a connection_init payload:
// Authorization or authorization ("Bearer …"), or token. An empty value is
// no token.
func initToken(payload json.RawMessage) (token string, present bool, err error) {
	if payload == nil {
		return "", false, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return "", false, errors.New("connection_init payload must be an object")
	}
	for _, key := range []string{"Authorization", "authorization", "token"} {
		raw, ok := fields[key]
		if !ok || string(raw) == "null" {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, fmt.Errorf("connection_init payload %s must be a string", key)
		}
		if v == "" {
			continue
		}
		if key == "token" {
			return v, true, nil
		}
		t, ok := wire.BearerToken(v)
		if !ok {
			// Present but unusable: refused like a bad token, not ignored.
			return "", true, nil
		}
		return t, true, nil
	}
	return "", false, nil
}
