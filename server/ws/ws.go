// Package ws is GraphQL subscriptions over long-lived connections: the
// gqlgen transport that speaks graphql-transport-ws and the legacy
// graphql-ws subprotocol over WebSocket, and subscriptions over HTTP
// streams (ServeHTTPStream: server-sent events, multipart), with their
// limits (connections per client address, operations per socket, send
// buffer, keep-alive, credentials' expiry), the shared streams that run a
// subscription once for all its subscribers on either, and the frame
// writer behind them. The server mounts it on /graphql (Transport), hands
// it the subscriptions its HTTP transport streams, closes its connections
// on shutdown (Shutdown) and has it check them again when an account
// changes (Recheck).
//
// A connection's parts, one file each: conn.go its life (the read loop,
// teardown, the log line); writer.go its one writer and the bounded queue
// it drains; protocol.go the messages of both subprotocols and
// connection_init; auth.go the checks of its token; operation.go an
// operation from start to its last message; shared.go the streams shared
// between connections; httpstream.go a subscription over an HTTP
// response; frame.go and writev_*.go the frames as written.
package ws

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/wire"
)

// Defaults of the Config settings.
const (
	// DefaultInitTimeout is how long a client has to send connection_init.
	DefaultInitTimeout = 5 * time.Second
	// DefaultKeepAlive is the interval of pings (and legacy "ka" messages).
	DefaultKeepAlive = 15 * time.Second
	// DefaultSendBuffer is how many bytes of outgoing messages may wait
	// per connection: a backfill's burst of a few thousand events, at a few
	// hundred bytes each. It costs nothing while the queue is empty.
	DefaultSendBuffer = 1 << 20
	// DefaultWriteTimeout bounds a write that waits for the peer.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxConnsPerAddress bounds the sockets of one client address: a
	// browser opens one per tab, so an office behind one NAT address fits,
	// while one client cannot hold thousands.
	DefaultMaxConnsPerAddress = 100
	// DefaultMaxOperations bounds the operations running on one socket: a
	// subscription costs memory and, with a cursor, a replay.
	DefaultMaxOperations = 100
)

// Config is what a Transport needs of the server that mounts it. Zero
// durations and limits take their defaults; the functions without a
// default must be set.
type Config struct {
	// InitTimeout is how long a client has, from the upgrade, to send
	// connection_init; then it is closed with 4408. Default 5s.
	InitTimeout time.Duration
	// KeepAlive is the interval between the ping frames the transport sends
	// (and, on graphql-ws, its "ka" messages). A peer from which nothing
	// arrives, not even a pong, for two intervals is closed as dead.
	// Default 15s.
	KeepAlive time.Duration
	// SendBuffer is how many bytes of messages may wait to be written to
	// one connection; a client that falls further behind is closed with
	// 1013 (try again later). Default 1 MiB; an idle connection holds none.
	SendBuffer int
	// WriteTimeout bounds each write that must wait for the peer. Default
	// 10s.
	WriteTimeout time.Duration
	// MaxConnsPerAddress bounds the sockets open at once from one client
	// address (obsqra.Client.LimitKey of the upgrade request); one more is
	// refused before the upgrade with HTTP 429 and RATE_LIMITED. Default
	// 100.
	MaxConnsPerAddress int
	// MaxOperations bounds the operations running at once on one socket;
	// one more is answered with an error message with RATE_LIMITED (the
	// socket stays open). Default 100.
	MaxOperations int
	// Logger receives one line per connection and the errors hidden from
	// clients. Default slog.Default().
	Logger *slog.Logger

	// Authenticate turns an access token (of connection_init, of the
	// upgrade, or checked again) into the principal it stands for; its
	// errors' codes decide whether the token was refused (EUNAUTHENTICATED,
	// EFORBIDDEN) or could not be checked. Required.
	Authenticate func(ctx context.Context, token string) (*obsqra.Principal, error)
	// PresentError turns an error into what the client sees (the server's
	// error presenter). Required.
	PresentError func(ctx context.Context, err error) *gqlerror.Error
	// Recover turns a panic recovered outside the resolvers into the error
	// PresentError shows, logging it. Required.
	Recover func(ctx context.Context, v any) error
	// CheckOrigin reports whether r, a browser's upgrade, may proceed;
	// one that may not is answered 403 FORBIDDEN. Required.
	CheckOrigin func(r *http.Request) bool
	// ShuttingDown reports whether the server is going away: a shared
	// stream that ends then sends its subscribers no complete, since their
	// sockets are about to close with 1001. Default never.
	ShuttingDown func() bool
	// Now is the clock, and AfterFunc its timers, for the expiry of access
	// tokens. Default time.Now and time.AfterFunc.
	Now       func() time.Time
	AfterFunc func(d time.Duration, f func()) interface{ Stop() bool }
	// Charge, when set, charges a validated operation's cost before it
	// runs; its error (a refusal, RATE_LIMITED) is the operation's error
	// message instead. Default nil: nothing is charged.
	Charge func(ctx context.Context, rc *graphql.OperationContext) error
	// OperationQueued, when set, is called by each operation's goroutine
	// before it starts work; tests hold operations there. Default nil.
	OperationQueued func(ctx context.Context)
	// SlowConsumer is called once for each subscriber cut for falling
	// behind its send buffer (a socket closed with 1013, an HTTP stream
	// cut), with its transport (TransportWebSocket, TransportSSE,
	// TransportMultipart), for metrics. Default: nothing.
	SlowConsumer func(transport string)
}

// Transports of subscribers, as Stats and Config.SlowConsumer name them.
const (
	TransportWebSocket = "websocket"
	TransportSSE       = "sse"
	TransportMultipart = "multipart"
)

// transportOf is the transport of an HTTP stream in format: an event
// stream, or one of the multipart formats.
func transportOf(format *wire.StreamFormat) string {
	if format == &wire.SSE || format.Name == wire.SSE.Name {
		return TransportSSE
	}
	return TransportMultipart
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.SendBuffer <= 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxConnsPerAddress <= 0 {
		cfg.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if cfg.MaxOperations <= 0 {
		cfg.MaxOperations = DefaultMaxOperations
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShuttingDown == nil {
		cfg.ShuttingDown = func() bool { return false }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) interface{ Stop() bool } { return time.AfterFunc(d, f) }
	}
	if cfg.SlowConsumer == nil {
		cfg.SlowConsumer = func(string) {}
	}
	return cfg
}

// readBufferSize is the read buffer of a WebSocket connection, in bytes.
const readBufferSize = 1024

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
	// readLimit bounds an incoming message, in bytes: an operation
	// document with its variables fits many times over. A connection that
	// sends more is closed with 1009.
	readLimit = 64 << 10
	// closeGrace is how long a connection waits, after its close frame,
	// for the peer's close frame before dropping the TCP connection.
	// Dropping it at once, with the peer's data unread, would reset the
	// connection and could destroy the close frame in flight.
	closeGrace = time.Second
	// maxCloseReason is the longest close reason, in bytes, that fits a
	// control frame (125 bytes less the 2 of the code).
	maxCloseReason = 123
)

// Close codes. The 44xx codes are those of graphql-transport-ws; the others
// are RFC 6455's.
const (
	closeNormal        = websocket.CloseNormalClosure   // 1000
	closeGoingAway     = websocket.CloseGoingAway       // 1001: shutdown, dead peer
	closeAbnormal      = websocket.CloseAbnormalClosure // 1006: never sent, only logged
	closeTooBig        = websocket.CloseMessageTooBig   // 1009: a message over readLimit
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

// Transport is the gqlgen transport of GraphQL over WebSocket: it upgrades
// the connection, speaks one of the two subprotocols, and has gqlgen
// parse, validate and execute the operations with all the handler's
// extensions. It holds the live connections (per client address, and
// whom they are signed in as) and the shared streams.
type Transport struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	// sockets holds the live connections, for shutdown and rechecks.
	sockets registry
	// streams are the subscriptions running once for all their subscribers.
	streams sharedStreams
}

var _ graphql.Transport = (*Transport)(nil)

// New returns a transport with cfg.
func New(cfg Config) *Transport {
	cfg = cfg.withDefaults()
	return &Transport{
		cfg: cfg,
		log: cfg.Logger,
		upgrader: websocket.Upgrader{
			// Clients send little (init, subscribe, pong), so a small read
			// buffer does (larger messages are read in pieces); write
			// buffers are pooled, so an idle connection holds none.
			ReadBufferSize:  readBufferSize,
			WriteBufferPool: &sync.Pool{},
			// Do checks the origin before it upgrades; this is the second
			// line.
			CheckOrigin: cfg.CheckOrigin,
			Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
				wire.WriteJSON(w, status, wire.Response(wire.Error{Message: reason.Error()}))
			},
		},
	}
}

// Supports reports whether r asks for a WebSocket upgrade.
func (t *Transport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && websocket.IsWebSocketUpgrade(r)
}

// Do upgrades the connection and serves it until it ends. The request's
// context carries the request id and, when the upgrade had an Authorization
// header, the principal or the authentication error of the server's
// authentication.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.cfg.CheckOrigin(r) {
		wire.WriteJSON(w, http.StatusForbidden, wire.Response(wire.Error{
			Message:    "websocket origin not allowed",
			Extensions: map[string]any{"code": "FORBIDDEN"},
		}))
		return
	}
	proto := selectSubprotocol(websocket.Subprotocols(r))
	if proto == "" {
		wire.WriteJSON(w, http.StatusBadRequest, wire.Response(wire.Error{
			Message:    "websocket subprotocol must be " + protoTransportWS + " or " + protoLegacyWS,
			Extensions: map[string]any{"code": "BAD_REQUEST"},
		}))
		return
	}
	addr := obsqra.ClientFromContext(r.Context()).LimitKey()
	if !t.sockets.reserve(addr, t.cfg.MaxConnsPerAddress) {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		wire.WriteJSON(w, http.StatusTooManyRequests, wire.Response(wire.Error{
			Message:    fmt.Sprintf("at most %d WebSockets may be open from one address; close one first", t.cfg.MaxConnsPerAddress),
			Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfter": retryAfterSeconds},
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
		t.sockets.release(addr)
		// Upgrade has answered the client.
		t.log.InfoContext(r.Context(), "websocket upgrade failed", "request_id", requestIDOf(r), "error", err.Error())
		return
	}
	c := newConn(t, ws, r, proto, exec)
	c.addr = addr // released by serve
	// The connection runs on a goroutine of its own and the handler
	// returns: the handler's goroutine has grown its stack through the
	// middleware, gqlgen's handler and the upgrade, and would keep it for
	// the connection's whole life, the largest part of what an idle
	// connection costs. The registry, not the handler, tracks it until it
	// ends (see Shutdown).
	go c.serve()
}

// requestIDOf returns the request id of r (obsqra.Client).
func requestIDOf(r *http.Request) string {
	return obsqra.ClientFromContext(r.Context()).RequestID
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

// hijacker lets gorilla's Upgrader, which asserts http.Hijacker, hijack
// through the middleware's response writers, which only unwrap.
type hijacker struct{ http.ResponseWriter }

// Hijack takes over the connection of the innermost response writer. The
// upgrader then answers 101 on the raw connection, which no writer sees:
// the first writer that records its status (the server's access log) is
// told so here.
func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		for w := h.ResponseWriter; w != nil; {
			if rec, ok := w.(statusRecorder); ok {
				rec.SwitchingProtocols()
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

// retryAfterSeconds is the Retry-After of a socket refused for its
// address's limit: sockets close all the time.
const retryAfterSeconds = 5

// statusRecorder is a response writer that records the status it answered
// (the server's access log).
type statusRecorder interface {
	// SwitchingProtocols records a 101 written on the hijacked connection.
	SwitchingProtocols()
}

// registry holds the live WebSocket connections and HTTP streams of a
// server so that shutdown can close them and rechecks find them, and
// counts them per client address. Its zero value is ready.
type registry struct {
	mu      sync.Mutex
	conns   map[*conn]struct{}
	streams map[*httpStream]struct{}
	closing bool
	wg      sync.WaitGroup
	// perAddress counts the sockets of each client address, from before
	// the upgrade until the connection has ended; an address with none
	// has no entry.
	perAddress map[string]int
}

// reserve counts one more socket for addr, or reports false when addr
// has limit already.
func (reg *registry) reserve(addr string, limit int) bool {
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
func (reg *registry) release(addr string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if n := reg.perAddress[addr]; n > 1 {
		reg.perAddress[addr] = n - 1
	} else {
		delete(reg.perAddress, addr)
	}
}

// add registers c, or reports false once the server is shutting down.
func (reg *registry) add(c *conn) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.closing {
		return false
	}
	if reg.conns == nil {
		reg.conns = make(map[*conn]struct{})
	}
	reg.conns[c] = struct{}{}
	reg.wg.Add(1)
	return true
}

// addStream registers h, or reports false once the server is shutting
// down.
func (reg *registry) addStream(h *httpStream) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.closing {
		return false
	}
	if reg.streams == nil {
		reg.streams = make(map[*httpStream]struct{})
	}
	reg.streams[h] = struct{}{}
	return true
}

// removeStream forgets h.
func (reg *registry) removeStream(h *httpStream) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.streams, h)
}

// remove forgets c once it has ended.
func (reg *registry) remove(c *conn) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.conns, c)
	reg.wg.Done()
}

// Shutdown closes every socket with 1001 and cuts every HTTP stream
// (without complete, so that its client reconnects), refuses new ones, and waits
// until their goroutines and their shared streams' executions have ended
// or ctx is done; then it returns ctx's cause.
func (t *Transport) Shutdown(ctx context.Context) error {
	reg := &t.sockets
	reg.mu.Lock()
	reg.closing = true
	for c := range reg.conns {
		c.terminate(closeInfo{code: closeGoingAway, reason: reasonShutdown})
	}
	for h := range reg.streams {
		h.cancel()
	}
	reg.mu.Unlock()

	done := make(chan struct{})
	go func() {
		reg.wg.Wait()
		// Their subscriptions' executions end with their last members.
		t.streams.wg.Wait()
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

// Recheck checks again the access token of every socket and HTTP stream
// signed in as userID, after a change of the user's account, each token
// once however many share it: a refused token closes its sockets with 4403
// and the reason, and ends its streams with the refusal as their last
// result; an accepted one updates their principal (a new role applies to a
// socket's next operation). It reports false when a check could not be
// made (the database did not answer), so that the caller tries again.
func (t *Transport) Recheck(ctx context.Context, userID int64) bool {
	done := true
	checked := make(map[string]authAnswer)
	conns, streams := t.sockets.ofUser(userID)
	for _, c := range conns {
		if !c.recheck(ctx, checked) {
			done = false
		}
	}
	for _, h := range streams {
		if !h.recheck(ctx, checked) {
			done = false
		}
	}
	return done
}

// ofUser returns the connections and streams signed in as userID.
func (reg *registry) ofUser(userID int64) ([]*conn, []*httpStream) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	var conns []*conn
	for c := range reg.conns {
		if p := c.principal.Load(); p != nil && p.User != nil && p.User.ID == userID {
			conns = append(conns, c)
		}
	}
	var streams []*httpStream
	for h := range reg.streams {
		if p := h.principal.Load(); p != nil && p.User != nil && p.User.ID == userID {
			streams = append(streams, h)
		}
	}
	return conns, streams
}

// Counts are numbers by transport.
type Counts struct {
	WebSocket, SSE, Multipart int
}

// add counts n more of transport.
func (c *Counts) add(transport string, n int) {
	switch transport {
	case TransportWebSocket:
		c.WebSocket += n
	case TransportSSE:
		c.SSE += n
	default:
		c.Multipart += n
	}
}

// Stats are what a Transport holds at one moment.
type Stats struct {
	// Connections are the open WebSockets and subscription streams over
	// HTTP.
	Connections Counts
	// Subscriptions are the running subscriptions, by the transport of
	// their subscriber.
	Subscriptions Counts
	// SharedStreams are the running subscription executions, each shared
	// by all its subscribers.
	SharedStreams int
}

// Stats returns what t holds now: counted on the spot for the
// connections, kept as they come and go for the subscriptions.
func (t *Transport) Stats() Stats {
	var st Stats
	reg := &t.sockets
	reg.mu.Lock()
	st.Connections.WebSocket = len(reg.conns)
	for h := range reg.streams {
		st.Connections.add(transportOf(h.format), 1)
	}
	reg.mu.Unlock()
	ss := &t.streams
	st.Subscriptions = Counts{
		WebSocket: int(ss.members[webSocketMember].Load()),
		SSE:       int(ss.members[sseMember].Load()),
		Multipart: int(ss.members[multipartMember].Load()),
	}
	st.SharedStreams = int(ss.running.Load())
	return st
}

// SharedSubscribers returns how many operations are subscribed to shared
// streams now, so that tests and benchmarks wait for subscribers to join
// before publishing.
func (t *Transport) SharedSubscribers() int {
	ss := &t.streams
	ss.mu.Lock()
	streams := make([]*sharedStream, 0, len(ss.m))
	for _, st := range ss.m {
		streams = append(streams, st)
	}
	ss.mu.Unlock()
	n := 0
	for _, st := range streams {
		n += len(st.appendMembers(nil))
	}
	return n
}

// truncateReason cuts a close reason to what a close frame holds, on a
// UTF-8 boundary.
func truncateReason(reason string) string {
	if len(reason) <= maxCloseReason {
		return reason
	}
	cut := maxCloseReason
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
