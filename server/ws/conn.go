package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/subscription"
)

// conn is one WebSocket connection. Three kinds of goroutines share it:
//
//   - serve, the handler's goroutine, reads and handles client messages,
//     and at the end tears everything down;
//   - writeLoop, the only writer, takes messages from the bounded queue out,
//     sends pings, and finally the close frame;
//   - one goroutine per running operation, which never blocks on the
//     client: a message that does not fit the queue closes the connection.
//
// Whoever decides that the connection ends calls terminate, which records
// the close code and cancels ctx; everything else follows from ctx.
type conn struct {
	t       *Transport
	ws      *websocket.Conn
	proto   string
	legacy  bool // proto is protoLegacyWS
	exec    graphql.GraphExecutor
	headers http.Header
	start   time.Time
	// addr is the client address the socket is counted for.
	addr string

	// ctx is the connection's: it carries the upgrade request's values
	// (request id, client address) and ends when the connection does.
	ctx    context.Context
	cancel context.CancelFunc

	// queue holds the outgoing frames, queued the bytes in it; wake
	// tells writeLoop there is something to write. Bounded in bytes, not
	// messages: an idle connection holds no queue at all, and a burst (a
	// backfill's hundreds of events) fits as long as the client keeps up.
	// A frame may be shared with other connections (a shared stream's
	// event) and is never modified.
	qmu        sync.Mutex
	queue      [][]byte
	queued     int
	wake       chan struct{}
	writerDone chan struct{} // closed when writeLoop has returned

	// wmu is held by whoever writes to the socket: writeLoop, or a shared
	// stream writing its burst without waiting (writeNow). Frames are
	// taken from the front of the queue, and what was not written goes
	// back before wmu is released, so they go out in order.
	wmu sync.Mutex
	// partial is the tail of a frame that writeNow began and could not
	// finish: whoever writes next writes it first (under wmu).
	partial []byte
	// raw is the socket, for writes that must not wait; nil when the
	// connection is not a socket.
	raw syscall.RawConn

	closeOnce sync.Once
	closed    closeInfo // set once, before ctx is cancelled

	// initReceived is set when connection_init arrives, acked when it is
	// answered; the init timer and writeLoop read them.
	initReceived atomic.Bool
	acked        atomic.Bool
	// expiry closes the connection when its credentials expire; armed by
	// init and stopped by serve, both on the reading goroutine.
	expiry stopper
	// opCtx is ctx with the authentication error cleared when
	// connection_init brought a token, the parent of every operation's
	// context; set by init before acked.
	opCtx context.Context
	// token is the access token the connection signed in with (from
	// connection_init or the upgrade's Authorization header), "" for an
	// anonymous one; set by init before acked. Every operation, and every
	// change of the user's account the server hears of, checks it again.
	token string
	// principal is who the token stood for when last checked; nil for an
	// anonymous connection.
	principal atomic.Pointer[obsqra.Principal]

	// deadlineMu orders serve's extensions of the read deadline with
	// writeLoop's last one, set when the close frame is out.
	deadlineMu sync.Mutex
	closing    bool

	mu  sync.Mutex
	ops map[string]*operation // running operations by id
	wg  sync.WaitGroup        // the operations' goroutines
	n   atomic.Int64          // operations started, for the log
}

// closeInfo says how and why a connection ended.
type closeInfo struct {
	code   int
	reason string
	// flush writes what is queued before the close frame (the error that
	// explains it); otherwise the close frame goes out at once.
	flush bool
	// byPeer: the peer closed or vanished first.
	byPeer bool
	// echo: the close frame answers the peer's, with its code and no
	// reason.
	echo bool
	// noFrame: no close frame is to be written (gorilla sent 1009 itself,
	// or the connection is dead).
	noFrame bool
	// err is what ended the connection, for the log only.
	err error
}

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

// message is a message of either subprotocol.
type message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func newConn(t *Transport, ws *websocket.Conn, r *http.Request, proto string, exec graphql.GraphExecutor) *conn {
	// The request's values (request id, client address, principal) stay;
	// its cancellation, which comes when the handler returns, does not.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	var raw syscall.RawConn
	if sc, ok := ws.NetConn().(syscall.Conn); ok && canWriteNoWait {
		raw, _ = sc.SyscallConn()
	}
	return &conn{
		t:          t,
		ws:         ws,
		raw:        raw,
		proto:      proto,
		legacy:     proto == protoLegacyWS,
		exec:       exec,
		headers:    r.Header,
		start:      time.Now(),
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
		ops:        make(map[string]*operation),
	}
}

// terminate ends the connection with ci; the first call wins. It never
// blocks, so anyone may call it: an operation, a timer, shutdown.
func (c *conn) terminate(ci closeInfo) {
	c.closeOnce.Do(func() {
		c.closed = ci
		c.cancel()
	})
}

// serve runs the connection until it ends, and then waits for every
// goroutine it started.
func (c *conn) serve() {
	defer c.t.sockets.release(c.addr)
	defer c.cancel()
	if !c.t.sockets.add(c) {
		// The server began shutting down while this upgrade was in flight.
		c.terminate(closeInfo{code: closeGoingAway, reason: reasonShutdown})
	} else {
		defer c.t.sockets.remove(c)
	}

	// No read limit of gorilla's: it would answer a message over it with a
	// close frame of its own, from this goroutine, past wmu; readLoop
	// enforces readLimit and closes through writeLoop.
	c.ws.SetReadLimit(0)
	c.ws.SetPongHandler(func(string) error { c.extendReadDeadline(); return nil })
	// Only writeLoop writes frames: the pong of a ping is queued for it,
	// and the peer's close frame is answered by it (readFailed), not by
	// gorilla from the reading goroutine.
	c.ws.SetPingHandler(func(data string) error {
		c.extendReadDeadline()
		c.enqueueFrame(newFrame(opPong, []byte(data)), true)
		return nil
	})
	c.ws.SetCloseHandler(func(int, string) error { return nil })
	c.extendReadDeadline()
	initTimer := time.AfterFunc(c.t.cfg.InitTimeout, func() {
		if !c.initReceived.Load() {
			c.fail(closeInitTimeout, reasonInitTimeout)
		}
	})
	defer initTimer.Stop()
	defer func() {
		if c.expiry != nil {
			c.expiry.Stop()
		}
	}()

	go c.writeLoop()
	c.readLoop()

	<-c.writerDone
	_ = c.ws.Close()
	c.mu.Lock()
	for _, op := range c.ops {
		op.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.logEnd()
}

// readLoop reads and handles messages until the connection ends.
func (c *conn) readLoop() {
	defer func() {
		if v := recover(); v != nil {
			c.t.log.ErrorContext(c.ctx, "panic serving websocket", "request_id", c.requestID(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			c.terminate(closeInfo{code: closeInternalError, reason: reasonInternal})
		}
	}()
	for {
		_, r, err := c.ws.NextReader()
		var data []byte
		if err == nil {
			// At most one byte over the limit is read: a message over it
			// is refused here, and its rest skipped by the next read.
			data, err = io.ReadAll(io.LimitReader(r, readLimit+1))
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.ctx.Err() != nil {
			// Closing: only the peer's close frame matters now.
			continue
		}
		if len(data) > readLimit {
			// Reading goes on until the peer answers the close frame, so
			// that closing does not reset the connection under it.
			c.terminate(closeInfo{code: closeTooBig, reason: reasonTooBig})
			continue
		}
		c.extendReadDeadline()
		c.handle(data)
	}
}

// readFailed ends the connection after a read error.
func (c *conn) readFailed(err error) {
	if c.ctx.Err() != nil {
		// The server closed first; this is the peer's answer or the grace
		// deadline.
		return
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		c.terminate(closeInfo{code: closeGoingAway, reason: reasonKeepAlive, err: err})
		return
	}
	code, reason := closeCodeOf(err)
	switch code {
	case closeAbnormal:
		c.terminate(closeInfo{code: code, byPeer: true, noFrame: true, err: err})
	default:
		// The peer closed: its code is echoed, as RFC 6455 asks.
		c.terminate(closeInfo{code: code, reason: reason, byPeer: true, echo: true})
	}
}

// extendReadDeadline gives the peer two keep-alive intervals to send
// something: a message or the pong of the ping it is about to get.
func (c *conn) extendReadDeadline() {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if !c.closing {
		_ = c.ws.SetReadDeadline(time.Now().Add(2 * c.t.cfg.KeepAlive))
	}
}

// writeLoop is the connection's only writer. It writes whatever is queued
// when woken, all of it in one system call, sends pings, and ends once ctx
// is done and the close frame is out (or cannot go out).
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	ping := time.NewTicker(c.t.cfg.KeepAlive)
	defer ping.Stop()
	failed := false
	for {
		// A closed connection takes priority over queued messages.
		select {
		case <-c.ctx.Done():
			c.writeClose(failed)
			return
		default:
		}
		var err error
		select {
		case <-c.ctx.Done():
			continue
		case <-c.wake:
			c.wmu.Lock()
			q := c.takeQueue()
			if c.ctx.Err() != nil {
				// Closing: the close frame goes next, not the backlog. The
				// backlog goes back, for a close that flushes the message
				// explaining it.
				c.requeue(q)
			} else if q = c.withPartial(q); len(q) > 0 {
				err = writeFrames(c.ctx, c.ws.NetConn(), q, c.t.cfg.WriteTimeout)
			}
			c.wmu.Unlock()
		case <-ping.C:
			frames := [][]byte{pingFrame}
			if c.legacy && c.acked.Load() {
				frames = append(frames, legacyKeepAliveFrame)
			}
			c.wmu.Lock()
			err = writeFrames(c.ctx, c.ws.NetConn(), c.withPartial(frames), c.t.cfg.WriteTimeout)
			c.wmu.Unlock()
		}
		if err != nil {
			failed = true
			c.terminate(closeInfo{code: closeAbnormal, reason: "write failed", err: err})
		}
	}
}

// legacyKeepAlive is graphql-ws's keep-alive message.
var (
	legacyKeepAlive      = []byte(`{"type":"ka"}`)
	legacyKeepAliveFrame = newFrame(opText, legacyKeepAlive)
)

// writeClose writes what must precede the close frame and the close frame,
// in one system call, and then gives the peer closeGrace to answer it.
func (c *conn) writeClose(writeFailed bool) {
	ci := c.closed
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !ci.noFrame && !writeFailed {
		frames := c.withPartial(nil)
		if ci.flush {
			frames = append(frames, c.takeQueue()...)
		}
		if ci.echo {
			frames = append(frames, closeFrame(ci.code, ""))
		} else {
			frames = append(frames, closeFrame(ci.code, ci.reason))
		}
		// ctx is done: the close gets one timeout, whatever the peer takes.
		_ = writeFrames(c.ctx, c.ws.NetConn(), frames, c.t.cfg.WriteTimeout)
	}
	c.deadlineMu.Lock()
	c.closing = true
	_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
	c.deadlineMu.Unlock()
}

// enqueue queues the text message msg for the writer without ever
// blocking (see enqueueFrame).
func (c *conn) enqueue(msg []byte) { c.enqueueFrame(newFrame(opText, msg), true) }

// enqueueFrame queues frame for the writer without ever blocking (see
// enqueueFrames).
func (c *conn) enqueueFrame(frame []byte, wake bool) (first bool) {
	return c.enqueueFrames([][]byte{frame}, wake)
}

// enqueueFrames queues frames for the writer without ever blocking: a
// client whose queue would pass WSSendBuffer bytes is too slow and is
// closed (frames larger than that still go, alone). With wake the writer is
// woken; without, the caller must wake it (wakeWriter) when it reports
// first: the frames are the first in the queue, so no one else will. A
// caller queueing to many connections wakes each writer once at the end,
// and each writes its whole queue in one system call.
func (c *conn) enqueueFrames(frames [][]byte, wake bool) (first bool) {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	c.qmu.Lock()
	if c.ctx.Err() != nil {
		c.qmu.Unlock()
		return false
	}
	if c.queued > 0 && c.queued+size > c.t.cfg.SendBuffer {
		c.qmu.Unlock()
		c.terminate(closeInfo{code: closeTryAgainLater, reason: reasonSlowConsumer})
		return false
	}
	first = len(c.queue) == 0
	c.queue = append(c.queue, frames...)
	c.queued += size
	c.qmu.Unlock()
	if wake {
		c.wakeWriter()
	}
	return first
}

// writeNow writes the queue from the calling goroutine when that takes no
// waiting: the writer is idle and the socket takes it all. Whatever is
// left, the writer is woken to write. A shared stream's burst goes out
// this way: one goroutine writing to thousands of sockets costs far less
// than waking thousands of writers.
func (c *conn) writeNow() {
	if c.raw == nil || !c.wmu.TryLock() {
		c.wakeWriter()
		return
	}
	q := c.takeQueue()
	if len(q) == 0 && c.partial == nil {
		c.wmu.Unlock()
		return
	}
	if c.ctx.Err() != nil {
		c.requeue(q)
		c.wmu.Unlock()
		c.wakeWriter() // it writes the close
		return
	}
	// writeFrames leaves no deadline behind that would refuse this write.
	headCut := c.partial != nil
	rest, cut, err := writeNoWait(c.raw, c.withPartial(q), headCut)
	if err == nil {
		if cut {
			c.partial, rest = rest[0], rest[1:]
		}
		c.requeue(rest)
	}
	c.wmu.Unlock()
	switch {
	case err != nil:
		// The socket is broken: no close frame can follow.
		c.terminate(closeInfo{code: closeAbnormal, reason: "write failed", noFrame: true, err: err})
	case cut || len(rest) > 0:
		c.wakeWriter()
	}
}

// withPartial returns frames preceded by the tail of a frame begun, if
// any, which it forgets. The caller holds wmu and writes what it returns.
func (c *conn) withPartial(frames [][]byte) [][]byte {
	if c.partial == nil {
		return frames
	}
	p := c.partial
	c.partial = nil
	return append([][]byte{p}, frames...)
}

// wakeWriter tells writeLoop there is something queued.
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default: // the writer is awake already
	}
}

// requeue puts messages the writer took back at the front of the queue.
func (c *conn) requeue(frames [][]byte) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	for _, f := range frames {
		c.queued += len(f)
	}
	c.queue = append(frames, c.queue...)
}

// takeQueue hands the writer everything queued, leaving an empty queue
// that holds no memory.
func (c *conn) takeQueue() [][]byte {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	q := c.queue
	c.queue, c.queued = nil, 0
	return q
}

// send queues a message of type typ.
func (c *conn) send(id, typ string, payload json.RawMessage) {
	b, err := json.Marshal(message{ID: id, Type: typ, Payload: payload})
	if err != nil {
		c.t.log.ErrorContext(c.ctx, "marshal websocket message", "request_id", c.requestID(), "type", typ, "error", err.Error())
		c.terminate(closeInfo{code: closeInternalError, reason: reasonInternal, err: err})
		return
	}
	c.enqueue(b)
}

// fail closes the connection after a protocol error. On graphql-ws a
// connection_error message tells why first, as that subprotocol does.
func (c *conn) fail(code int, reason string) {
	if c.legacy {
		b, _ := json.Marshal(gqlError{Message: reason})
		c.send("", "connection_error", b)
	}
	c.terminate(closeInfo{code: code, reason: reason, flush: true})
}

// requestID is the id of the upgrade request.
func (c *conn) requestID() string { return obsqra.ClientFromContext(c.ctx).RequestID }

// logEnd writes the one log line of the connection.
func (c *conn) logEnd() {
	ci := c.closed
	closedBy := "server"
	if ci.byPeer {
		closedBy = "client"
	}
	attrs := []any{
		"request_id", c.requestID(),
		"subprotocol", c.proto,
		"duration_ms", time.Since(c.start).Milliseconds(),
		"close_code", ci.code,
		"close_reason", ci.reason,
		"closed_by", closedBy,
		"operations", c.n.Load(),
	}
	if p := c.principal.Load(); p != nil && p.User != nil {
		attrs = append(attrs, "user_id", p.User.ID)
	}
	if ci.err != nil {
		attrs = append(attrs, "error", ci.err.Error())
	}
	c.t.log.InfoContext(c.ctx, "websocket connection", attrs...)
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
			token, _ = bearerToken(c.headers.Get("Authorization"))
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

// authenticate turns token into a principal; a panic of the authenticator
// is an internal error.
func (c *conn) authenticate(token string) (p *obsqra.Principal, err error) {
	return c.authenticateCtx(c.ctx, token)
}

func (c *conn) authenticateCtx(ctx context.Context, token string) (p *obsqra.Principal, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.t.log.ErrorContext(c.ctx, "panic authenticating websocket", "request_id", c.requestID(),
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			p, err = nil, errors.New("authenticator panicked")
		}
	}()
	return c.t.cfg.Authenticate(ctx, token)
}

// authorize returns ctx with the connection's principal as it is now: a
// signed-in connection's token is checked again, so an operation runs for
// the user, role and session as they are, not as they were at
// connection_init. A token refused now (its session ended, its user
// deactivated) closes the connection with 4403; ok is then false, and so
// it is when the check could not be made (the operation has been answered
// with the error) or ctx ended meanwhile.
func (c *conn) authorize(ctx context.Context, op *operation) (_ context.Context, ok bool) {
	if c.token == "" {
		return ctx, true
	}
	p, err := c.authenticateCtx(ctx, c.token)
	switch {
	case ctx.Err() != nil:
		return ctx, false
	case err != nil && refusal(err):
		c.refuse(err)
		return ctx, false
	case err != nil:
		c.finishOperation(op, "error", c.marshalErrors(gqlerror.List{c.t.cfg.PresentError(ctx, err)}))
		return ctx, false
	}
	c.principal.Store(p)
	return obsqra.NewContextWithPrincipal(ctx, p), true
}

// recheck checks the connection's token again after a change of its
// user's account: a refused token closes it with 4403 and the reason; an
// accepted one updates the principal (a new role applies to the next
// operation). It reports false when the check could not be made (the
// database did not answer), so that it is tried again.
//
// checked holds the answers for tokens already checked in this pass, so
// that the sockets of one session cost one check.
func (c *conn) recheck(ctx context.Context, checked map[string]authAnswer) bool {
	if !c.acked.Load() || c.token == "" {
		return true
	}
	ans, ok := checked[c.token]
	if !ok {
		ans.p, ans.err = c.authenticateCtx(ctx, c.token)
		checked[c.token] = ans
	}
	p, err := ans.p, ans.err
	switch {
	case c.ctx.Err() != nil:
		return true // closed meanwhile
	case err != nil && refusal(err):
		c.refuse(err)
	case err != nil:
		c.t.log.WarnContext(c.ctx, "websocket recheck failed", "request_id", c.requestID(), "error", err.Error())
		return false
	default:
		c.principal.Store(p)
	}
	return true
}

// authAnswer is what checking a token answered.
type authAnswer struct {
	p   *obsqra.Principal
	err error
}

// refuse closes the connection whose credentials were refused with 4403 and
// the error's message; an internal error is logged and closes it with 4500.
// A check cancelled because the connection closed meanwhile (the server is
// shutting down) refuses nothing and is no error.
func (c *conn) refuse(err error) {
	if cancelled(c.ctx, err) {
		return
	}
	switch {
	case refusal(err):
		c.fail(closeForbidden, "Forbidden: "+obsqra.ErrorMessage(err))
	case obsqra.ErrorCode(err) == obsqra.EUNAVAILABLE:
		// The token could not be checked, not refused: the client tries
		// again later (1013), as after a slow consumer.
		c.t.log.WarnContext(c.ctx, "websocket authentication unavailable", "request_id", c.requestID(), "error", err.Error())
		c.fail(closeTryAgainLater, reasonUnavailable)
	default:
		c.t.log.ErrorContext(c.ctx, "websocket authentication failed", "request_id", c.requestID(), "error", err.Error())
		c.fail(closeInternalError, reasonInternal)
	}
}

// refusal reports whether err refuses the credentials (the token is bad,
// its session ended, its user is deactivated), as opposed to a check that
// could not be made (the database did not answer, an internal error).
func refusal(err error) bool {
	switch obsqra.ErrorCode(err) {
	case obsqra.EUNAUTHENTICATED, obsqra.EFORBIDDEN:
		return true
	}
	return false
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
		t, ok := bearerToken(v)
		if !ok {
			// Present but unusable: refused like a bad token, not ignored.
			return "", true, nil
		}
		return t, true, nil
	}
	return "", false, nil
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
			msg, _ = json.Marshal(response{ID: op.id, Type: next, Payload: errorResponse(internalError(c.requestID()))})
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
