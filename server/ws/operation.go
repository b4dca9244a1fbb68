package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
	"github.com/obsqra/obsqra/subscription"
)

// operation is a running operation of a connection.
type operation struct {
	id     string
	ctx    context.Context
	cancel context.CancelFunc
}

// response is a next/data message as sent, its payload marshalled in
// place; it encodes like message.
type response struct {
	ID      string `json:"id,omitempty"`
	Type    string `json:"type"`
	Payload any    `json:"payload"`
}

// startOperation starts the operation id of a subscribe or start payload.
func (c *conn) startOperation(id string, payload json.RawMessage) {
	start := graphql.Now()
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		c.fail(closeBadRequest, "Invalid message received: the payload is not a GraphQL request")
		return
	}
	params.Headers = c.headers
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx, cancel := context.WithCancel(c.opCtx)
	op := &operation{id: id, ctx: ctx, cancel: cancel}
	c.mu.Lock()
	if limit := c.t.cfg.MaxOperations; len(c.ops) >= limit {
		c.mu.Unlock()
		cancel()
		c.send(id, "error", c.marshalErrors(gqlerror.List{{
			Message:    fmt.Sprintf("at most %d operations may run on one connection", limit),
			Extensions: map[string]any{"code": "RATE_LIMITED"},
		}}))
		return
	}
	c.ops[id] = op
	c.mu.Unlock()
	c.n.Add(1)
	c.wg.Add(1)
	go c.runOperation(op, params)
}

// stopOperation cancels the operation id, if it runs; nothing more is sent
// for it.
func (c *conn) stopOperation(id string) {
	c.mu.Lock()
	op := c.ops[id]
	delete(c.ops, id)
	c.mu.Unlock()
	if op != nil {
		op.cancel()
	}
}

// runOperation has gqlgen validate and execute op and streams its results.
func (c *conn) runOperation(op *operation, params *graphql.RawParams) {
	defer c.wg.Done()
	handedOff := false // a subscription's op belongs to its stream
	defer func() {
		if !handedOff {
			op.cancel()
		}
	}()
	authCtx, ok := c.authorize(op.ctx, op)
	if !ok {
		return
	}
	ctx, end := subscription.NewContext(authCtx)
	ctx = graphql.StartOperationTrace(ctx)
	defer func() {
		// Resolvers' panics are recovered by the generated code; this is
		// for the rest (extensions, response handlers), as in gqlgen's own
		// transports.
		if v := recover(); v != nil {
			err := c.t.cfg.Recover(ctx, v)
			c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
		}
	}()
	if c.t.cfg.OperationQueued != nil {
		c.t.cfg.OperationQueued(ctx)
	}
	if op.ctx.Err() != nil {
		// Stopped, or the socket closed, before the operation's turn came:
		// parsing, validating and executing it would be for nobody.
		c.finishOperation(op, "complete", nil)
		return
	}
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		c.finishOperation(op, "error", c.marshalErrors(resp.Errors))
		return
	}
	if c.t.cfg.Charge != nil {
		if err := c.t.cfg.Charge(ctx, rc); err != nil {
			c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
			return
		}
	}

	if rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		// connection_init refuses a connection whose credentials were refused,
		// so Viewer cannot fail here; should it, the operation fails.
		viewer, err := obsqra.Viewer(authCtx)
		if err != nil {
			c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
			return
		}
		handedOff = true
		c.runSubscription(authCtx, viewer, op, params, rc)
		return
	}
	next := "next"
	if c.legacy {
		next = "data"
	}
	responses, ctx := c.exec.DispatchOperation(graphql.WithOperationContext(ctx, rc), rc)
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		// The message is marshalled in one pass, with the response in
		// place: marshalling the response and then the envelope around it
		// would encode (and validate) every event twice.
		msg, err := json.Marshal(response{ID: op.id, Type: next, Payload: resp})
		if err != nil {
			c.t.log.ErrorContext(ctx, "marshal graphql response", "request_id", c.requestID(), "error", err.Error())
			client := obsqra.ClientFromContext(c.ctx)
			msg, _ = json.Marshal(response{ID: op.id, Type: next, Payload: wire.Response(wire.Internal(client.RequestID, client.TraceID))})
		}
		c.enqueueOperation(op, msg)
	}
	if err := end.Err(); err != nil {
		// The stream ended on its own (a subscriber too slow for its
		// buffer, say): the client learns why, and from where to resume.
		c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
		return
	}
	c.finishOperation(op, "complete", nil)
}

// marshalErrors returns the payload of an error message.
func (c *conn) marshalErrors(errs gqlerror.List) json.RawMessage {
	return c.t.marshalErrors(c.ctx, errs)
}

// enqueueOperation queues msg, a message of op, unless op was stopped: the
// check and the queueing are one step, so nothing follows a stop.
func (c *conn) enqueueOperation(op *operation, msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[op.id] == op && op.ctx.Err() == nil {
		c.enqueue(msg)
	}
}

// enqueueOperationFrames is enqueueOperation of frames, which may be
// shared with other connections, without waking the writer; first is
// enqueueFrames's.
func (c *conn) enqueueOperationFrames(op *operation, frames [][]byte) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[op.id] == op && op.ctx.Err() == nil {
		return c.enqueueFrames(frames, false)
	}
	return false
}

// finishOperation queues the last message of op, unless op was stopped,
// and forgets op in the same step, so that a client may reuse the id as
// soon as it reads the message.
func (c *conn) finishOperation(op *operation, typ string, payload json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[op.id] == op {
		delete(c.ops, op.id)
		if op.ctx.Err() == nil {
			c.send(op.id, typ, payload)
		}
	}
}
