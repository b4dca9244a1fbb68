package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"

	"github.com/obsqra/obsqra"
)

// Defaults of the Config WebSocket settings.
const (
	// DefaultWSInitTimeout is how long a client has to send connection_init.
	DefaultWSInitTimeout = 5 * time.Second
	// DefaultWSKeepAlive is the interval of pings (and legacy "ka" messages).
	DefaultWSKeepAlive = 15 * time.Second
	// DefaultWSSendBuffer is how many bytes of outgoing messages may wait
	// per connection: a backfill's burst of a few thousand events, at a few
	// hundred bytes each. It costs nothing while the queue is empty.
	DefaultWSSendBuffer = 1 << 20
	// DefaultWSWriteTimeout bounds a write that waits for the peer.
	DefaultWSWriteTimeout = 10 * time.Second
	// DefaultWSMaxConnsPerAddress bounds the sockets of one client
	// address: a browser opens one per tab, so an office behind one NAT
	// address fits, while one client cannot hold thousands.
	DefaultWSMaxConnsPerAddress = 100
	// DefaultWSMaxOperations bounds the operations running on one socket:
	// a subscription costs memory and, with a cursor, a replay.
	DefaultWSMaxOperations = 100
)

// wsReadBufferSize is the read buffer of a WebSocket connection, in bytes.
const wsReadBufferSize = 1024

// The two subprotocols of GraphQL over WebSocket.
const (
	// protoTransportWS is graphql-transport-ws, spoken by the graphql-ws
	// library (Apollo Client's GraphQLWsLink, GraphiQL).
	protoTransportWS = "graphql-transport-ws"
	// protoLegacyWS is graphql-ws, the subprotocol of the deprecated
	// subscriptions-transport-ws (older Apollo clients, the old playground).
	protoLegacyWS = "graphql-ws"
)

// Limits and deadlines of a WebSocket connection.
const (
	// wsReadLimit bounds an incoming message, in bytes: an operation
	// document with its variables fits many times over. A connection that
	// sends more is closed with 1009.
	wsReadLimit = 64 << 10
	// wsCloseGrace is how long a connection waits, after its close frame,
	// for the peer's close frame before dropping the TCP connection.
	// Dropping it at once, with the peer's data unread, would reset the
	// connection and could destroy the close frame in flight.
	wsCloseGrace = time.Second
	// wsMaxCloseReason is the longest close reason, in bytes, that fits a
	// control frame (125 bytes less the 2 of the code).
	wsMaxCloseReason = 123
)

// Close codes. The 44xx codes are those of graphql-transport-ws; the others
// are RFC 6455's.
const (
	closeNormal        = websocket.CloseNormalClosure   // 1000
	closeGoingAway     = websocket.CloseGoingAway       // 1001: shutdown, dead peer
	closeAbnormal      = websocket.CloseAbnormalClosure // 1006: never sent, only logged
	closeTooBig        = websocket.CloseMessageTooBig   // 1009: a message over wsReadLimit
	closeTryAgainLater = websocket.CloseTryAgainLater   // 1013: slow consumer
	closeBadRequest    = 4400                           // an invalid message
	closeUnauthorized  = 4401                           // an operation before connection_ack
	closeForbidden     = 4403                           // credentials refused or expired
	closeInitTimeout   = 4408                           // no connection_init in time
	closeSubscriberDup = 4409                           // an operation id already running
	closeTooManyInits  = 4429                           // a second connection_init
	closeInternalError = 4500                           // the server failed
)

// Reasons of the close codes that carry a fixed one.
const (
	reasonInitTimeout  = "Connection initialisation timeout"
	reasonTooManyInits = "Too many initialisation requests"
	reasonUnauthorized = "Unauthorized"
	reasonExpired      = "Forbidden: access token expired"
	reasonInternal     = "Internal server error"
	reasonUnavailable  = "the database did not answer; try again later"
	reasonShutdown     = "server shutting down"
	reasonTooBig       = "message too big: at most 64 KiB"
	// reasonSlowConsumer is the reason of 1013. 1013 (try again later) and
	// not 4499: graphql-ws clients retry after 1013, which is what a slow
	// consumer should do (resuming from its last cursor), while 4499 is the
	// code the graphql-ws client gives a connection it terminated itself.
	reasonSlowConsumer = "slow consumer: reconnect and resume from your last cursor"
	// reasonKeepAlive is the reason of 1001 for a peer that stopped
	// answering pings. 1001 rather than 1008 or 1011, which graphql-ws
	// clients take as fatal and would not reconnect after.
	reasonKeepAlive = "keep-alive timeout: no pong"
)

// stopper is a timer that can be stopped, such as a *time.Timer.
type stopper interface{ Stop() bool }

// wsTransport is the gqlgen transport of GraphQL over WebSocket: it
// upgrades the connection, speaks one of the two subprotocols, and has
// gqlgen parse, validate and execute the operations with all the handler's
// extensions.
type wsTransport struct {
	s        *Server
	upgrader websocket.Upgrader
}

var _ graphql.Transport = (*wsTransport)(nil)

// webSocket returns the WebSocket transport of s.
func (s *Server) webSocket() *wsTransport {
	return &wsTransport{
		s: s,
		upgrader: websocket.Upgrader{
			// Clients send little (init, subscribe, pong), so a small read
			// buffer does (larger messages are read in pieces); write
			// buffers are pooled, so an idle connection holds none.
			ReadBufferSize:  wsReadBufferSize,
			WriteBufferPool: &sync.Pool{},
			// Do checks the origin before it upgrades; this is the second
			// line.
			CheckOrigin: s.wsOriginAllowed,
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				writeJSON(w, status, errorResponse(gqlError{Message: reason.Error()}))
			},
		},
	}
}

// Supports reports whether r asks for a WebSocket upgrade.
func (t *wsTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && websocket.IsWebSocketUpgrade(r)
}

// Do upgrades the connection and serves it until it ends. The request's
// context carries the request id and, when the upgrade had an Authorization
// header, the principal or the authentication error of the authenticate
// middleware.
func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	s := t.s
	if !s.wsOriginAllowed(r) {
		writeJSON(w, http.StatusForbidden, errorResponse(gqlError{
			Message:    "websocket origin not allowed",
			Extensions: map[string]any{"code": "FORBIDDEN"},
		}))
		return
	}
	proto := selectSubprotocol(websocket.Subprotocols(r))
	if proto == "" {
		writeJSON(w, http.StatusBadRequest, errorResponse(gqlError{
			Message: "websocket subprotocol must be " + protoTransportWS + " or " + protoLegacyWS,
		}))
		return
	}
	addr := obsqra.ClientFromContext(r.Context()).LimitKey()
	if !s.sockets.reserve(addr, s.cfg.WSMaxConnsPerAddress) {
		w.Header().Set("Retry-After", strconv.Itoa(wsRetryAfterSeconds))
		writeJSON(w, http.StatusTooManyRequests, errorResponse(gqlError{
			Message:    fmt.Sprintf("at most %d WebSockets may be open from one address; close one first", s.cfg.WSMaxConnsPerAddress),
			Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfter": wsRetryAfterSeconds},
		}))
		return
	}

	// The http.Server's read and write timeouts need no lifting here:
	// gorilla's Upgrade clears the hijacked connection's deadlines, and the
	// connection then sets its own before every read and write.
	header := http.Header{}
	header.Set("Sec-WebSocket-Protocol", proto)
	header.Set("X-Request-ID", requestIDOf(r))
	ws, err := t.upgrader.Upgrade(hijacker{w}, r, header)
	if err != nil {
		s.sockets.release(addr)
		// Upgrade has answered the client.
		s.log.InfoContext(r.Context(), "websocket upgrade failed", "request_id", requestIDOf(r), "error", err.Error())
		return
	}
	c := newWSConn(s, ws, r, proto, exec)
	c.addr = addr // released by serve
	// The connection runs on a goroutine of its own and the handler
	// returns: the handler's goroutine has grown its stack through the
	// middleware, gqlgen's handler and the upgrade, and would keep it for
	// the connection's whole life, the largest part of what an idle
	// connection costs. The registry, not the handler, tracks it until it
	// ends (see closeWebSockets).
	go c.serve()
}

// selectSubprotocol returns the first of the client's subprotocols that the
// server speaks, or "".
func selectSubprotocol(offered []string) string {
	for _, p := range offered {
		if p == protoTransportWS || p == protoLegacyWS {
			return p
		}
	}
	return ""
}

// wsOriginAllowed reports whether r may upgrade: requests without an Origin
// (non-browser clients, which no browser policy protects anyway) and from
// the server's own origin always may; other browser origins only when
// CORSOrigins allows them.
func (s *Server) wsOriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if s.corsAllowed(origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// hijacker lets gorilla's Upgrader, which asserts http.Hijacker, hijack
// through the middleware's response writers, which only unwrap.
type hijacker struct{ http.ResponseWriter }

// Hijack takes over the connection of the innermost response writer. The
// upgrader then answers 101 on the raw connection, which no writer sees:
// the access log's recorder is told so here.
func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		for w := h.ResponseWriter; w != nil; {
			if rec, ok := w.(*recorder); ok {
				rec.status = http.StatusSwitchingProtocols
				break
			}
			u, ok := w.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				break
			}
			w = u.Unwrap()
		}
	}
	return conn, rw, err
}

// wsRetryAfterSeconds is the Retry-After of a socket refused for its
// address's limit: sockets close all the time.
const wsRetryAfterSeconds = 5

// wsRegistry holds the live WebSocket connections of a server so that
// shutdown can close them, and counts them per client address. Its zero
// value is ready.
type wsRegistry struct {
	mu      sync.Mutex
	conns   map[*wsConn]struct{}
	closing bool
	wg      sync.WaitGroup
	// perAddress counts the sockets of each client address, from before
	// the upgrade until the connection has ended; an address with none
	// has no entry.
	perAddress map[string]int
}

// reserve counts one more socket for addr, or reports false when addr
// has limit already.
func (reg *wsRegistry) reserve(addr string, limit int) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.perAddress[addr] >= limit {
		return false
	}
	if reg.perAddress == nil {
		reg.perAddress = make(map[string]int)
	}
	reg.perAddress[addr]++
	return true
}

// release counts one socket of addr less.
func (reg *wsRegistry) release(addr string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if n := reg.perAddress[addr]; n > 1 {
		reg.perAddress[addr] = n - 1
	} else {
		delete(reg.perAddress, addr)
	}
}

// add registers c, or reports false once the server is shutting down.
func (reg *wsRegistry) add(c *wsConn) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.closing {
		return false
	}
	if reg.conns == nil {
		reg.conns = make(map[*wsConn]struct{})
	}
	reg.conns[c] = struct{}{}
	reg.wg.Add(1)
	return true
}

// remove forgets c once it has ended.
func (reg *wsRegistry) remove(c *wsConn) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.conns, c)
	reg.wg.Done()
}

// closeWebSockets closes every WebSocket with 1001, refuses new ones, and
// waits until their goroutines have ended or ctx is done.
func (s *Server) closeWebSockets(ctx context.Context) error {
	reg := &s.sockets
	reg.mu.Lock()
	reg.closing = true
	for c := range reg.conns {
		c.terminate(closeInfo{code: closeGoingAway, reason: reasonShutdown})
	}
	reg.mu.Unlock()

	done := make(chan struct{})
	go func() {
		reg.wg.Wait()
		// Their subscriptions' executions end with their last members.
		s.streams.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The waiting goroutine ends with the last connection.
		return context.Cause(ctx)
	}
}

// truncateReason cuts a close reason to what a close frame holds, on a
// UTF-8 boundary.
func truncateReason(reason string) string {
	if len(reason) <= wsMaxCloseReason {
		return reason
	}
	cut := wsMaxCloseReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

// closeCodeOf returns the close code of a read error: the peer's code, or
// 1006 for a connection that just ended.
func closeCodeOf(err error) (code int, reason string) {
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		return ce.Code, ce.Text
	}
	return closeAbnormal, ""
}
