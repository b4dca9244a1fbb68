package ws

import (
	"context"
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

	"github.com/obsqra/obsqra"
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

// terminate ends the connection with ci; the first call wins, and only it
// reports true. It never blocks, so anyone may call it: an operation, a
// timer, shutdown.
func (c *conn) terminate(ci closeInfo) (won bool) {
	c.closeOnce.Do(func() {
		won = true
		c.closed = ci
		c.cancel()
	})
	return won
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
