package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/server/ws"
	"github.com/obsqra/obsqra/subscription"
)

// wait bounds every wait of these tests: long enough never to trip on a
// loaded machine, short enough to fail rather than hang.
const wait = 10 * time.Second

// wsSchema is a small executable schema for the WebSocket tests:
//
//	whoami reports the operation's user and request id;
//	fail fails with an internal error;
//	ticks(topic) is a subscription whose events the test sends; the
//	event clientGone makes its resolver wait until the operation's context
//	is cancelled and then fail as a resolver reading the database would
//	(two fields, then the stream, each with the context's error).
type wsSchema struct {
	schema *ast.Schema

	mu      sync.Mutex
	started map[string]chan *wsSub
	// held, when a topic is in it, holds that topic's resolver until the
	// channel is closed (a subscription that is slow to start).
	held map[string]chan struct{}
	// noops counts the noop mutations run.
	noops atomic.Int64
	// execs counts the operations executed.
	execs atomic.Int64
}

// wsSub is a running ticks subscription: its context and the channel the
// test publishes on (closing it ends the subscription).
type wsSub struct {
	ctx    context.Context
	events chan string
}

func newWSSchema() *wsSchema {
	return &wsSchema{
		schema: gqlparser.MustLoadSchema(&ast.Source{Name: "ws.graphqls", Input: `
			type Query { whoami: String! fail: String role: String }
			type Mutation { noop: Boolean! }
			type Subscription { ticks(topic: String!): String! }
		`}),
		started: map[string]chan *wsSub{},
	}
}

func (s *wsSchema) Schema() *ast.Schema { return s.schema }

func (*wsSchema) Complexity(context.Context, string, string, int, map[string]any) (int, bool) {
	return 0, false
}

func (s *wsSchema) topic(name string) chan *wsSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.started[name]
	if !ok {
		ch = make(chan *wsSub, 4)
		s.started[name] = ch
	}
	return ch
}

// await returns the next ticks subscription started on topic.
func (s *wsSchema) await(t *testing.T, topic string) *wsSub {
	t.Helper()
	select {
	case sub := <-s.topic(topic):
		return sub
	case <-time.After(wait):
		t.Fatalf("no subscription to %q started", topic)
		return nil
	}
}

func jsonData(field string, v any) json.RawMessage {
	b, err := json.Marshal(map[string]any{field: v})
	if err != nil {
		panic(err)
	}
	return b
}

func (s *wsSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	s.execs.Add(1)
	opCtx := graphql.GetOperationContext(ctx)
	field := opCtx.Operation.SelectionSet[0].(*ast.Field)
	switch field.Name {
	case "whoami":
		who := "anonymous"
		switch u, err := obsqra.Viewer(ctx); {
		case err != nil:
			who = "auth error: " + obsqra.ErrorMessage(err)
		case u != nil:
			who = fmt.Sprintf("user:%d", u.ID)
		}
		return graphql.OneShot(&graphql.Response{Data: jsonData(field.Alias, who+" request:"+obsqra.ClientFromContext(ctx).RequestID)})
	case "fail":
		graphql.AddError(ctx, errors.New("query risk: pq: password hunter2 refused"))
		return graphql.OneShot(&graphql.Response{Data: jsonData(field.Alias, nil)})
	case "noop":
		s.noops.Add(1)
		return graphql.OneShot(&graphql.Response{Data: jsonData(field.Alias, true)})
	case "role":
		var role any
		if u, _ := obsqra.Viewer(ctx); u != nil { // the refusal: a null role
			role = string(u.Role)
		}
		return graphql.OneShot(&graphql.Response{Data: jsonData(field.Alias, role)})
	case "ticks":
		topic, _ := field.Arguments.ForName("topic").Value.Value(opCtx.Variables)
		s.mu.Lock()
		hold := s.held[topic.(string)]
		s.mu.Unlock()
		if hold != nil {
			<-hold
		}
		switch {
		case strings.HasPrefix(topic.(string), "shared-"):
			subscription.Share(ctx)
		case strings.HasPrefix(topic.(string), "public-"):
			subscription.SharePublic(ctx)
		}
		sub := &wsSub{ctx: ctx, events: make(chan string)}
		if strings.HasPrefix(topic.(string), "burst-") {
			// Events published together wait in the channel, and the
			// stream says so, as the resolvers' streams do.
			subscription.Share(ctx)
			sub.events = make(chan string, 512)
			subscription.SetBacklog(ctx, func() bool { return len(sub.events) > 0 })
		}
		s.topic(topic.(string)) <- sub
		return func(ctx context.Context) *graphql.Response {
			select {
			case <-ctx.Done():
				return nil
			case e, ok := <-sub.events:
				if !ok {
					return nil
				}
				if e == slowConsumer {
					subscription.End(ctx, &obsqra.Error{Code: obsqra.ERATELIMIT, Message: "too slow: resume after cursor 41"})
					return nil
				}
				if e == clientGone {
					select {
					case <-ctx.Done():
					case <-time.After(wait):
					}
					graphql.AddError(ctx, fmt.Errorf("list protocols: %w", ctx.Err()))
					graphql.AddError(ctx, fmt.Errorf("list protocols: %w", ctx.Err()))
					subscription.End(ctx, fmt.Errorf("read dashboard: %w", ctx.Err()))
					return &graphql.Response{Data: jsonData(field.Alias, nil)}
				}
				return &graphql.Response{Data: jsonData(field.Alias, e)}
			}
		}
	}
	panic("unknown field " + field.Name)
}

// clientGone is the ticks event whose resolver fails once the client is
// gone (see wsSchema).
const clientGone = "client-gone"

// slowConsumer is the ticks event that ends the subscription as the live
// streams end a subscriber too slow for its buffer (subscription.End).
const slowConsumer = "slow-consumer"

// publish sends e to sub, failing if the transport does not take it.
func (sub *wsSub) publish(t *testing.T, e string) {
	t.Helper()
	select {
	case sub.events <- e:
	case <-sub.ctx.Done():
		t.Fatalf("publish %q: the subscription ended", e)
	case <-time.After(wait):
		t.Fatalf("publish %q: blocked", e)
	}
}

// awaitCancelled waits until the subscription's context is cancelled.
func (sub *wsSub) awaitCancelled(t *testing.T) {
	t.Helper()
	select {
	case <-sub.ctx.Done():
	case <-time.After(wait):
		t.Fatal("the subscription's context was not cancelled")
	}
}

const (
	expiringToken = "expiring-token"
	internalToken = "internal-token"
	// blockingToken's check waits until its context ends, then fails
	// with the context's error, as a database read would.
	blockingToken = "blocking-token"
)

// wsAuth accepts goodToken, and expiringToken until expiresAt; it fails
// internally on internalToken and refuses any other token. A test may
// revoke a token (refused from then on with the reason), make every check
// fail internally (down), or change ada's role.
type wsAuth struct {
	expiresAt time.Time

	mu      sync.Mutex
	revoked map[string]string
	down    bool
	role    obsqra.Role
	calls   int
	// blocked receives when a check of blockingToken starts waiting.
	blocked chan struct{}
}

// revoke refuses token from now on with reason.
func (a *wsAuth) revoke(token, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked == nil {
		a.revoked = map[string]string{}
	}
	a.revoked[token] = reason
}

// setDown makes every check fail as with the database not answering
// (EUNAVAILABLE).
func (a *wsAuth) setDown(down bool) { a.mu.Lock(); a.down = down; a.mu.Unlock() }

// setRole gives ada role from now on.
func (a *wsAuth) setRole(role obsqra.Role) { a.mu.Lock(); a.role = role; a.mu.Unlock() }

// checks returns how many tokens were checked.
func (a *wsAuth) checks() int { a.mu.Lock(); defer a.mu.Unlock(); return a.calls }

func (a *wsAuth) Authenticate(ctx context.Context, token string) (*obsqra.Principal, error) {
	if token == blockingToken {
		a.blocked <- struct{}{}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		return nil, fmt.Errorf("load session: %w", ctx.Err())
	}
	a.mu.Lock()
	reason, revoked := a.revoked[token]
	down, role := a.down, a.role
	a.calls++
	a.mu.Unlock()
	switch {
	case down:
		return nil, &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: "the database did not answer in time; try again",
			Err: errors.New("load session: context deadline exceeded")}
	case revoked:
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "%s", reason)
	}
	switch token {
	case goodToken:
		u := ada
		if role != "" {
			copied := *ada
			copied.Role = role
			u = &copied
		}
		return &obsqra.Principal{User: u, SessionID: "session-1"}, nil
	case expiringToken:
		return &obsqra.Principal{User: ada, SessionID: "session-2", ExpiresAt: a.expiresAt}, nil
	case internalToken:
		return nil, errors.New("load session: connection refused to db with password hunter2")
	default:
		return nil, obsqra.Errorf(obsqra.EUNAUTHENTICATED, "access token is invalid")
	}
}

// wsBundle is a server with the WebSocket test schema behind an httptest
// server.
type wsBundle struct {
	srv    *server.Server
	schema *wsSchema
	auth   *wsAuth
	logs   *syncBuffer
	url    string // ws://…/graphql
	host   string
}

// setupWS returns a server over wsSchema. Options change the config, and
// the bundle before the server starts (the clock, the authenticator).
func setupWS(t *testing.T, opts ...func(*server.Config)) *wsBundle {
	t.Helper()
	b := newWSBundle(t, opts...)
	ts := httptest.NewServer(b.srv.Handler())
	t.Cleanup(func() {
		b.closeAll(t)
		ts.Close()
	})
	b.host = ts.Listener.Addr().String()
	b.url = "ws://" + b.host + "/graphql"
	return b
}

func newWSBundle(t *testing.T, opts ...func(*server.Config)) *wsBundle {
	t.Helper()
	logs := &syncBuffer{}
	cfg := server.Config{
		CORSOrigins: []string{"https://app.example.com"},
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, opt := range opts {
		opt(&cfg)
	}
	b := &wsBundle{schema: newWSSchema(), auth: &wsAuth{blocked: make(chan struct{}, 1)}, logs: logs}
	b.srv = server.New(cfg, b.schema, b.auth, &fakePinger{})
	return b
}

// closeAll closes the server's sockets and waits for their goroutines, so
// that a test leaves nothing running and its logs are complete.
func (b *wsBundle) closeAll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.srv.CloseWebSockets(ctx); err != nil {
		t.Errorf("CloseWebSockets = %v", err)
	}
}

// wsClient is a test's end of a WebSocket.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	resp *http.Response
}

// wsMsg is a message of either subprotocol, as the client reads it.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dial opens a WebSocket to b with the subprotocol proto and headers (name,
// value pairs), failing the test if the upgrade fails.
func (b *wsBundle) dial(t *testing.T, proto string, headers ...string) *wsClient {
	t.Helper()
	c, err := b.tryDial(t, proto, headers...)
	if err != nil {
		t.Fatalf("dial %s: %v", proto, err)
	}
	return c
}

func (b *wsBundle) tryDial(t *testing.T, proto string, headers ...string) (*wsClient, error) {
	t.Helper()
	return dialURL(t, b.url, proto, headers...)
}

func dialURL(t *testing.T, url, proto string, headers ...string) (*wsClient, error) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	d := websocket.Dialer{HandshakeTimeout: wait}
	if proto != "" {
		d.Subprotocols = strings.Split(proto, ",")
	}
	conn, resp, err := d.Dial(url, h)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return &wsClient{t: t, resp: resp}, err
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn, resp: resp}, nil
}

// send writes v as JSON, or a string as is.
func (c *wsClient) send(v any) {
	c.t.Helper()
	var b []byte
	if s, ok := v.(string); ok {
		b = []byte(s)
	} else {
		var err error
		if b, err = json.Marshal(v); err != nil {
			c.t.Fatal(err)
		}
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(wait))
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write %s: %v", b, err)
	}
}

// read returns the next message.
func (c *wsClient) read() wsMsg {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m wsMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("message %s is not JSON: %v", b, err)
	}
	return m
}

// expect reads the next message and checks its type, id and payload (a
// payload of "" is not checked).
func (c *wsClient) expect(typ, id, payload string) wsMsg {
	c.t.Helper()
	m := c.read()
	if m.Type != typ || m.ID != id || (payload != "" && string(m.Payload) != payload) {
		c.t.Fatalf("message = %s %q %s, want %s %q %s", m.Type, m.ID, m.Payload, typ, id, payload)
	}
	return m
}

// expectClose reads until the server closes, and checks the close code and
// reason.
func (c *wsClient) expectClose(code int, reason string) {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		_, _, err := c.conn.ReadMessage()
		if err == nil {
			continue // messages queued before the close
		}
		ce, ok := errors.AsType[*websocket.CloseError](err)
		if !ok {
			c.t.Fatalf("read = %v, want close %d %q", err, code, reason)
		}
		if ce.Code != code || ce.Text != reason {
			c.t.Fatalf("close = %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// init sends connection_init with payload (nil for none) and expects the
// ack (and, on graphql-ws, the first keep-alive).
func (c *wsClient) init(payload any) {
	c.t.Helper()
	m := map[string]any{"type": "connection_init"}
	if payload != nil {
		m["payload"] = payload
	}
	c.send(m)
	c.expect("connection_ack", "", "")
	if c.conn.Subprotocol() == "graphql-ws" {
		c.expect("ka", "", "")
	}
}

// subscribe starts operation id with query.
func (c *wsClient) subscribe(id, query string, variables map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.conn.Subprotocol() == "graphql-ws" {
		typ = "start"
	}
	c.send(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": variables}})
}

// nextType is the type of result messages on c's subprotocol.
func (c *wsClient) nextType() string {
	if c.conn.Subprotocol() == "graphql-ws" {
		return "data"
	}
	return "next"
}

const ticks = `subscription($topic: String!) { ticks(topic: $topic) }`

func topicVars(topic string) map[string]any { return map[string]any{"topic": topic} }

var bothProtocols = []string{"graphql-transport-ws", "graphql-ws"}

func TestWebSocketSubscription(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto)
			if c.conn.Subprotocol() != proto {
				t.Fatalf("subprotocol = %q, want %q", c.conn.Subprotocol(), proto)
			}
			c.init(nil)

			// The server ends the stream: next×3, then complete.
			c.subscribe("1", ticks, topicVars("a"))
			sub := b.schema.await(t, "a")
			for i := range 3 {
				e := fmt.Sprintf("tick %d", i)
				sub.publish(t, e)
				c.expect(c.nextType(), "1", `{"data":{"ticks":"`+e+`"}}`)
			}
			close(sub.events)
			c.expect("complete", "1", "")

			// The client ends the stream: the operation's context is
			// cancelled and nothing more is sent for it.
			c.subscribe("2", ticks, topicVars("b"))
			sub = b.schema.await(t, "b")
			sub.publish(t, "only")
			c.expect(c.nextType(), "2", `{"data":{"ticks":"only"}}`)
			if proto == "graphql-ws" {
				c.send(`{"type":"stop","id":"2"}`)
			} else {
				c.send(`{"type":"complete","id":"2"}`)
			}
			sub.awaitCancelled(t)

			// An id may be reused once its operation ended; the next message
			// is the new operation's, so no complete came for the stopped one.
			c.subscribe("2", ticks, topicVars("c"))
			sub = b.schema.await(t, "c")
			sub.publish(t, "again")
			c.expect(c.nextType(), "2", `{"data":{"ticks":"again"}}`)

			if proto == "graphql-ws" {
				c.send(`{"type":"connection_terminate"}`)
				c.expectClose(websocket.CloseNormalClosure, "connection terminated")
				sub.awaitCancelled(t)
			}
		})
	}
}

// TestWebSocketClientGoneIsNoError: a client that disconnects while its
// subscriptions' resolvers read what their events need makes them fail
// with context.Canceled, field after field and then the stream; that is no
// error, and each operation says so in one debug line.
func TestWebSocketClientGoneIsNoError(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto, "X-Request-ID", "ws-gone-1")
			c.init(nil)
			var subs []*wsSub
			for _, id := range []string{"1", "2"} {
				c.subscribe(id, ticks, topicVars("gone-"+id))
				sub := b.schema.await(t, "gone-"+id)
				sub.publish(t, "tick")
				c.expect(c.nextType(), id, `{"data":{"ticks":"tick"}}`)
				subs = append(subs, sub)
			}
			for _, sub := range subs {
				sub.publish(t, clientGone)
			}

			c.conn.Close()
			for _, sub := range subs {
				sub.awaitCancelled(t)
			}
			b.closeAll(t) // waits for the streams: the logs are complete

			if got := b.logs.levels(t, "ERROR"); len(got) != 0 {
				t.Errorf("ERROR lines = %v, want none", got)
			}
			got := b.logs.entries(t, "graphql operation cancelled")
			if len(got) != len(subs) {
				t.Fatalf("cancellation lines = %v, want one per operation (%d)", got, len(subs))
			}
			for _, e := range got {
				if e["level"] != "DEBUG" || e["request_id"] != "ws-gone-1" {
					t.Errorf("cancellation line = %v, want DEBUG with request id ws-gone-1", e)
				}
			}
		})
	}
}

// TestWebSocketShutdownDuringInit: a socket the server closes on shutdown
// while it checks its token fails the check with context.Canceled; that is
// no authentication failure to log.
func TestWebSocketShutdownDuringInit(t *testing.T) {
	t.Parallel()
	b := newWSBundle(t)
	url, cancel, served := serveWS(t, b)
	c, err := dialURL(t, url, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"token": blockingToken}})
	select {
	case <-b.auth.blocked:
	case <-time.After(wait):
		t.Fatal("the token was not checked")
	}

	cancel()
	c.expectClose(websocket.CloseGoingAway, "server shutting down")
	if err := served(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if got := b.logs.levels(t, "ERROR"); len(got) != 0 {
		t.Errorf("ERROR lines = %v, want none", got)
	}
}

func TestWebSocketQueryAndMutation(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto, "X-Request-ID", "ws-query-1")
			c.init(nil)

			c.subscribe("q", `{ whoami }`, nil)
			c.expect(c.nextType(), "q", `{"data":{"whoami":"anonymous request:ws-query-1"}}`)
			c.expect("complete", "q", "")

			c.subscribe("m", `mutation { noop }`, nil)
			c.expect(c.nextType(), "m", `{"data":{"noop":true}}`)
			c.expect("complete", "m", "")
		})
	}
}

// TestWebSocketClientBehindProxy: the upgrade passes through the same
// middleware as any request, so a subscription's context carries the
// client the trusted proxy named, the same value the limits per address
// read over HTTP; an untrusted peer's headers are ignored.
func TestWebSocketClientBehindProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		trusted    []netip.Prefix
		wantAddr   string
		wantScheme string
	}{
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}, "198.51.100.1", "https"},
		{"untrusted", nil, "", "http"}, // the peer: 127.0.0.1 or ::1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t, func(cfg *server.Config) { cfg.TrustedProxies = tt.trusted })
			c := b.dial(t, "graphql-transport-ws",
				"X-Forwarded-For", "6.6.6.6, 198.51.100.1", "X-Forwarded-Proto", "https")
			c.init(nil)
			c.subscribe("1", ticks, topicVars("proxy"))
			got := obsqra.ClientFromContext(b.schema.await(t, "proxy").ctx)
			want := tt.wantAddr
			if want == "" {
				host, _, _ := net.SplitHostPort(b.host)
				want = host
			}
			if got.Address != want || got.Scheme != tt.wantScheme {
				t.Errorf("subscription's client = %+v, want address %s and scheme %s", got, want, tt.wantScheme)
			}
		})
	}
}

// wsErrors decodes the payload of an error message.
func wsErrors(t *testing.T, m wsMsg) []gqlErr {
	t.Helper()
	var errs []gqlErr
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("error payload %s is not a list of GraphQL errors: %v", m.Payload, err)
	}
	return errs
}

func TestWebSocketOperationErrors(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t, func(c *server.Config) { c.ComplexityLimit = 1 })
			c := b.dial(t, proto, "X-Request-ID", "ws-errors-1")
			c.init(nil)

			// Errors before execution are an error message, and end the
			// operation: no complete follows (the pong comes next).
			for _, tc := range []struct{ query, code string }{
				{`{ whoami `, "GRAPHQL_PARSE_FAILED"},
				{`{ nope }`, "GRAPHQL_VALIDATION_FAILED"},
				{`{ whoami fail }`, "COMPLEXITY_LIMIT_EXCEEDED"},
			} {
				c.subscribe("e", tc.query, nil)
				errs := wsErrors(t, c.expect("error", "e", ""))
				if errs[0].Extensions["code"] != tc.code {
					t.Errorf("%s: error = %+v, want %s", tc.query, errs, tc.code)
				}
				if proto == "graphql-transport-ws" {
					c.send(`{"type":"ping"}`)
					c.expect("pong", "", "")
				}
			}

			// An execution error goes through the error presenter: the
			// client sees an internal error with the request id, the log the
			// real one.
			c.subscribe("f", `{ fail }`, nil)
			m := c.expect(c.nextType(), "f", "")
			var res gqlResult
			if err := json.Unmarshal(m.Payload, &res); err != nil {
				t.Fatal(err)
			}
			if e := onlyError(t, res); e.Message != "internal error" || e.Extensions["code"] != "INTERNAL_SERVER_ERROR" || e.Extensions["requestId"] != "ws-errors-1" {
				t.Errorf("error = %+v, want an internal error with request id ws-errors-1", e)
			}
			if strings.Contains(string(m.Payload), "hunter2") {
				t.Errorf("the client sees the internal error: %s", m.Payload)
			}
			c.expect("complete", "f", "")
			b.closeAll(t)
			logged := b.logs.entries(t, "graphql internal error")
			if len(logged) != 1 || logged[0]["request_id"] != "ws-errors-1" || !strings.Contains(fmt.Sprint(logged[0]["error"]), "hunter2") {
				t.Errorf("internal error log = %v, want the real error with request id ws-errors-1", logged)
			}
		})
	}
}

func TestWebSocketCloseCodes(t *testing.T) {
	t.Parallel()
	subscribeMsg := `{"id":"1","type":"subscribe","payload":{"query":"{ whoami }"}}`
	tests := []struct {
		name   string
		opts   func(*server.Config)
		run    func(t *testing.T, b *wsBundle, c *wsClient)
		code   int
		reason string
	}{
		{
			name:   "no connection_init in time",
			opts:   func(c *server.Config) { c.WSInitTimeout = 50 * time.Millisecond },
			run:    func(*testing.T, *wsBundle, *wsClient) {},
			code:   4408,
			reason: "Connection initialisation timeout",
		},
		{
			name: "a second connection_init",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.init(nil)
				c.send(`{"type":"connection_init"}`)
			},
			code: 4429, reason: "Too many initialisation requests",
		},
		{
			name: "subscribe before the ack",
			run:  func(t *testing.T, _ *wsBundle, c *wsClient) { c.send(subscribeMsg) },
			code: 4401, reason: "Unauthorized",
		},
		{
			name: "bad JSON",
			run:  func(t *testing.T, _ *wsBundle, c *wsClient) { c.init(nil); c.send(`{"type":`) },
			code: 4400, reason: "Invalid message received: not a JSON object with a type",
		},
		{
			name: "unknown type",
			run:  func(t *testing.T, _ *wsBundle, c *wsClient) { c.init(nil); c.send(`{"type":"start","id":"1"}`) },
			code: 4400, reason: `Invalid message received: unexpected type "start"`,
		},
		{
			name: "subscribe without an id",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.init(nil)
				c.send(`{"type":"subscribe","payload":{"query":"{ whoami }"}}`)
			},
			code: 4400, reason: "Invalid message received: subscribe needs an id and a payload",
		},
		{
			name: "subscribe without a payload",
			run:  func(t *testing.T, _ *wsBundle, c *wsClient) { c.init(nil); c.send(`{"type":"subscribe","id":"1"}`) },
			code: 4400, reason: "Invalid message received: subscribe needs an id and a payload",
		},
		{
			name: "a connection_init payload that is not an object",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.send(`{"type":"connection_init","payload":"Bearer x"}`)
			},
			code: 4400, reason: "Invalid message received: connection_init payload must be an object",
		},
		{
			name: "a duplicate operation id",
			run: func(t *testing.T, b *wsBundle, c *wsClient) {
				c.init(nil)
				c.subscribe("7", ticks, topicVars("dup"))
				b.schema.await(t, "dup")
				c.subscribe("7", ticks, topicVars("dup"))
			},
			code: 4409, reason: "Subscriber for 7 already exists",
		},
		{
			name: "a refused token",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.send(`{"type":"connection_init","payload":{"Authorization":"Bearer stale"}}`)
			},
			code: 4403, reason: "Forbidden: access token is invalid",
		},
		{
			name: "an Authorization that is not Bearer",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.send(`{"type":"connection_init","payload":{"Authorization":"Basic YTpi"}}`)
			},
			code: 4403, reason: "Forbidden: the Authorization value must be Bearer followed by an access token",
		},
		{
			name: "the authenticator fails",
			run: func(t *testing.T, _ *wsBundle, c *wsClient) {
				c.send(`{"type":"connection_init","payload":{"token":"` + internalToken + `"}}`)
			},
			code: 4500, reason: "Internal server error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []func(*server.Config)
			if tt.opts != nil {
				opts = append(opts, tt.opts)
			}
			b := setupWS(t, opts...)
			c := b.dial(t, "graphql-transport-ws")
			tt.run(t, b, c)
			c.expectClose(tt.code, tt.reason)

			b.closeAll(t)
			logged := b.logs.entries(t, "websocket connection")
			if len(logged) != 1 || logged[0]["close_code"] != float64(tt.code) || logged[0]["closed_by"] != "server" {
				t.Errorf("connection log = %v, want close_code %d by the server", logged, tt.code)
			}
			if strings.Contains(b.logs.String(), "hunter2") != (tt.code == 4500) {
				t.Errorf("logs = %s; want the authenticator's internal error logged exactly when it fails", b.logs)
			}
		})
	}
}

func TestWebSocketLegacyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		run    func(c *wsClient)
		code   int
		reason string
	}{
		{"bad JSON", func(c *wsClient) { c.init(nil); c.send(`not json`) }, 4400, "Invalid message received: not a JSON object with a type"},
		{"unknown type", func(c *wsClient) { c.init(nil); c.send(`{"type":"subscribe","id":"1"}`) }, 4400, `Invalid message received: unexpected type "subscribe"`},
		{"start before init", func(c *wsClient) { c.send(`{"type":"start","id":"1","payload":{"query":"{ whoami }"}}`) }, 4401, "Unauthorized"},
		{"a second init", func(c *wsClient) { c.init(nil); c.send(`{"type":"connection_init"}`) }, 4429, "Too many initialisation requests"},
		{"a refused token", func(c *wsClient) { c.send(`{"type":"connection_init","payload":{"authToken":"x","token":"stale"}}`) }, 4403, "Forbidden: access token is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, "graphql-ws")
			tt.run(c)
			m := c.expect("connection_error", "", "")
			var e gqlErr
			if err := json.Unmarshal(m.Payload, &e); err != nil || e.Message != tt.reason {
				t.Errorf("connection_error payload = %s, want the message %q", m.Payload, tt.reason)
			}
			c.expectClose(tt.code, tt.reason)
		})
	}
}

func TestWebSocketLegacyRestartsReusedID(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	c := b.dial(t, "graphql-ws")
	c.init(nil)
	c.subscribe("1", ticks, topicVars("old"))
	old := b.schema.await(t, "old")
	// subscriptions-transport-ws replaces an operation whose id is reused.
	c.subscribe("1", ticks, topicVars("new"))
	old.awaitCancelled(t)
	sub := b.schema.await(t, "new")
	sub.publish(t, "x")
	c.expect("data", "1", `{"data":{"ticks":"x"}}`)
}

func TestWebSocketAuthentication(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		headers []string
		payload any
		want    string
	}{
		{name: "anonymous", want: "anonymous"},
		{name: "Authorization in the payload", payload: map[string]string{"Authorization": "Bearer " + goodToken}, want: "user:7"},
		{name: "authorization in the payload", payload: map[string]string{"authorization": "Bearer " + goodToken}, want: "user:7"},
		{name: "token in the payload", payload: map[string]string{"token": goodToken}, want: "user:7"},
		{name: "an empty token is none", payload: map[string]string{"Authorization": ""}, want: "anonymous"},
		{name: "the upgrade's Authorization header", headers: []string{"Authorization", "Bearer " + goodToken}, want: "user:7"},
		{
			name:    "the payload's token wins over a refused header",
			headers: []string{"Authorization", "Bearer stale"},
			payload: map[string]string{"Authorization": "Bearer " + goodToken},
			want:    "user:7",
		},
	}
	for _, tt := range tests {
		for _, proto := range bothProtocols {
			t.Run(tt.name+" "+proto, func(t *testing.T) {
				t.Parallel()
				b := setupWS(t)
				c := b.dial(t, proto, append([]string{"X-Request-ID", "ws-auth-1"}, tt.headers...)...)
				c.init(tt.payload)

				c.subscribe("1", `{ whoami }`, nil)
				c.expect(c.nextType(), "1", `{"data":{"whoami":"`+tt.want+` request:ws-auth-1"}}`)
				c.expect("complete", "1", "")
				// A subscription sees the principal too.
				c.subscribe("2", ticks, topicVars("t"))
				sub := b.schema.await(t, "t")
				if got, err := obsqra.Viewer(sub.ctx); err != nil || (got != nil && got.ID == ada.ID) != (tt.want == "user:7") {
					t.Errorf("subscription's viewer = %v, %v, want the one of %s", got, err, tt.want)
				}
				if got := obsqra.ClientFromContext(sub.ctx).RequestID; got != "ws-auth-1" {
					t.Errorf("subscription's request id = %q, want ws-auth-1", got)
				}

				if err := c.conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(wait)); err != nil {
					t.Fatal(err)
				}
				sub.awaitCancelled(t)
				b.closeAll(t)
				logged := b.logs.entries(t, "websocket connection")
				if len(logged) != 1 {
					t.Fatalf("connection log = %v, want one line", logged)
				}
				l := logged[0]
				wantUser := any(nil)
				if tt.want == "user:7" {
					wantUser = float64(ada.ID)
				}
				if l["request_id"] != "ws-auth-1" || l["subprotocol"] != proto || l["close_code"] != float64(1000) ||
					l["closed_by"] != "client" || l["user_id"] != wantUser || l["duration_ms"] == nil || l["operations"] != float64(2) {
					t.Errorf("connection log = %v, want request id, %s, 1000 by the client, user %v, a duration, 2 operations", l, proto, wantUser)
				}
			})
		}
	}
}

func TestWebSocketRefusedHeader(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto, "Authorization", "Bearer stale")
			c.send(`{"type":"connection_init"}`)
			if proto == "graphql-ws" {
				c.expect("connection_error", "", `{"message":"Forbidden: access token is invalid"}`)
			}
			c.expectClose(4403, "Forbidden: access token is invalid")
		})
	}
}

// fakeTimer is a timer that fires when the test calls fire.
type fakeTimer struct {
	d    time.Duration
	fire func()
}

func (*fakeTimer) Stop() bool { return true }

func TestWebSocketTokenExpiry(t *testing.T) {
	t.Parallel()
	// The server's clock is years from the real one: had the expiry used
	// time.Now, its timer would not be 90s.
	now := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			b.srv.SetClock(func() time.Time { return now })
			timers := make(chan *fakeTimer, 1)
			b.srv.SetAfterFunc(func(d time.Duration, f func()) interface{ Stop() bool } {
				ft := &fakeTimer{d: d, fire: f}
				timers <- ft
				return ft
			})
			b.auth.expiresAt = now.Add(90 * time.Second)

			c := b.dial(t, proto)
			c.init(map[string]string{"token": expiringToken})
			var timer *fakeTimer
			select {
			case timer = <-timers:
			case <-time.After(wait):
				t.Fatal("no expiry timer")
			}
			if timer.d != 90*time.Second {
				t.Errorf("expiry timer = %v, want 90s", timer.d)
			}
			c.subscribe("1", ticks, topicVars("t"))
			sub := b.schema.await(t, "t")
			sub.publish(t, "before expiry")
			c.expect(c.nextType(), "1", `{"data":{"ticks":"before expiry"}}`)

			timer.fire()
			if proto == "graphql-ws" {
				c.expect("connection_error", "", `{"message":"Forbidden: access token expired"}`)
			}
			c.expectClose(4403, "Forbidden: access token expired")
			sub.awaitCancelled(t)
		})
	}
	t.Run("real timer", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		b.srv.SetClock(func() time.Time { return now })
		b.auth.expiresAt = now.Add(50 * time.Millisecond)
		c := b.dial(t, "graphql-transport-ws")
		// The ack is queued before the timer can fire, and flushed before
		// the close.
		c.init(map[string]string{"token": expiringToken})
		c.expectClose(4403, "Forbidden: access token expired")
	})
	t.Run("already expired", func(t *testing.T) {
		t.Parallel()
		b := setupWS(t)
		b.srv.SetClock(func() time.Time { return now })
		b.auth.expiresAt = now
		c := b.dial(t, "graphql-transport-ws")
		c.send(`{"type":"connection_init","payload":{"token":"` + expiringToken + `"}}`)
		c.expectClose(4403, "Forbidden: access token expired")
	})
}

func TestWebSocketOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		origins []string
		origin  string // "self" is the server's own origin
		ok      bool
	}{
		{name: "no Origin", origin: "", ok: true},
		{name: "a configured origin", origin: "https://app.example.com", ok: true},
		{name: "the same origin", origin: "self", ok: true},
		{name: "another origin", origin: "https://evil.example.com"},
		{name: "another origin on the same host name", origin: "https://app.example.com.evil.example.com"},
		{name: "null", origin: "null"},
		{name: "any origin with *", origins: []string{"*"}, origin: "https://evil.example.com", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t, func(c *server.Config) {
				if tt.origins != nil {
					c.CORSOrigins = tt.origins
				}
			})
			var headers []string
			switch tt.origin {
			case "":
			case "self":
				headers = []string{"Origin", "http://" + b.host}
			default:
				headers = []string{"Origin", tt.origin}
			}
			c, err := b.tryDial(t, "graphql-transport-ws", headers...)
			if tt.ok {
				if err != nil {
					t.Fatalf("dial from %q = %v, want an upgrade", tt.origin, err)
				}
				c.init(nil)
				return
			}
			if err == nil || c.resp == nil || c.resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial from %q = %v, want 403", tt.origin, err)
			}
		})
	}
}

func TestWebSocketSubprotocolRequired(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	for _, proto := range []string{"", "graphql-sse", "graphql-transport-ws-v2"} {
		c, err := b.tryDial(t, proto)
		if err == nil || c.resp == nil || c.resp.StatusCode != http.StatusBadRequest {
			t.Errorf("dial with subprotocol %q = %v, want 400", proto, err)
		}
	}
	// Of several, the client's first that the server speaks.
	c := b.dial(t, "foo,graphql-ws,graphql-transport-ws")
	if c.conn.Subprotocol() != "graphql-ws" {
		t.Errorf("subprotocol = %q, want graphql-ws", c.conn.Subprotocol())
	}
}

func TestWebSocketReadLimit(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil)
	// A message of exactly 64 KiB is read.
	msg := func(size int) string {
		const frame = `{"type":"ping","payload":{"pad":""}}`
		return strings.Replace(frame, `""`, `"`+strings.Repeat("x", size-len(frame))+`"`, 1)
	}
	c.send(msg(64 << 10))
	c.expect("pong", "", "")
	c.send(msg(64<<10 + 1))
	c.expectClose(websocket.CloseMessageTooBig, "message too big: at most 64 KiB")
}

// pinged reads c in the background, answering pings when answer is true,
// and reports each ping and each message.
func pinged(t *testing.T, c *wsClient, answer bool) (pings <-chan struct{}, msgs <-chan wsMsg, done <-chan error) {
	t.Helper()
	p := make(chan struct{}, 1000)
	m := make(chan wsMsg, 1000)
	d := make(chan error, 1)
	c.conn.SetPingHandler(func(data string) error {
		p <- struct{}{}
		if !answer {
			return nil
		}
		return c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wait))
	})
	go func() {
		for {
			_ = c.conn.SetReadDeadline(time.Now().Add(wait))
			_, b, err := c.conn.ReadMessage()
			if err != nil {
				d <- err
				return
			}
			var msg wsMsg
			_ = json.Unmarshal(b, &msg)
			m <- msg
		}
	}()
	return p, m, d
}

func TestWebSocketKeepAlive(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			// Generous against a loaded machine: the server waits two
			// intervals for each pong.
			// 300 ms: under -race on two cores shared with other builds, a
			// client goroutine was seen to answer a ping more than 200 ms late.
			keepAlive := 300 * time.Millisecond
			b := setupWS(t, func(c *server.Config) { c.WSKeepAlive = keepAlive })
			c := b.dial(t, proto)
			c.init(nil)
			pings, msgs, done := pinged(t, c, true)

			// A peer that answers stays, well past two keep-alive intervals.
			start := time.Now()
			for n := 0; n < 6 || time.Since(start) < 6*keepAlive; {
				select {
				case <-pings:
					n++
				case m := <-msgs:
					if proto != "graphql-ws" || m.Type != "ka" {
						t.Fatalf("message %+v, want only pings", m)
					}
				case err := <-done:
					t.Fatalf("connection ended: %v", err)
				case <-time.After(wait):
					t.Fatal("no ping")
				}
			}
			if proto == "graphql-ws" {
				// ka messages arrive too.
				for n := 0; n < 2; {
					select {
					case m := <-msgs:
						if m.Type == "ka" {
							n++
						}
					case err := <-done:
						t.Fatalf("connection ended: %v", err)
					case <-time.After(wait):
						t.Fatal("no ka")
					}
				}
				return
			}
			// graphql-transport-ws's own ping is answered with a pong.
			c.send(`{"type":"ping"}`)
			select {
			case m := <-msgs:
				if m.Type != "pong" {
					t.Errorf("answer to ping = %+v, want pong", m)
				}
			case err := <-done:
				t.Fatalf("connection ended: %v", err)
			case <-time.After(wait):
				t.Fatal("no pong")
			}
		})
	}
}

// TestWebSocketPeerControlFrames: the server answers a WebSocket ping with
// a pong carrying its data, and the peer's close frame with its code.
func TestWebSocketPeerControlFrames(t *testing.T) {
	t.Parallel()
	for _, proto := range bothProtocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			b := setupWS(t)
			c := b.dial(t, proto)
			c.init(nil)
			pongs := make(chan string, 1)
			c.conn.SetPongHandler(func(data string) error { pongs <- data; return nil })
			closed := make(chan error, 1)
			go func() {
				for {
					_ = c.conn.SetReadDeadline(time.Now().Add(wait))
					if _, _, err := c.conn.ReadMessage(); err != nil {
						closed <- err
						return
					}
				}
			}()
			if err := c.conn.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(wait)); err != nil {
				t.Fatal(err)
			}
			select {
			case data := <-pongs:
				if data != "are you there" {
					t.Errorf("pong data = %q, want the ping's", data)
				}
			case err := <-closed:
				t.Fatalf("connection ended: %v", err)
			case <-time.After(wait):
				t.Fatal("no pong")
			}
			if err := c.conn.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(4000, "done here"), time.Now().Add(wait)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-closed:
				ce, ok := errors.AsType[*websocket.CloseError](err)
				if !ok || ce.Code != 4000 {
					t.Errorf("after the client's close: %v, want the close frame echoed with 4000", err)
				}
			case <-time.After(wait):
				t.Fatal("close not answered")
			}
		})
	}
}

func TestWebSocketReapsDeadPeer(t *testing.T) {
	t.Parallel()
	b := setupWS(t, func(c *server.Config) { c.WSKeepAlive = 50 * time.Millisecond })
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil)
	pings, _, done := pinged(t, c, false)
	select {
	case <-pings:
	case <-time.After(5 * time.Second):
		t.Fatal("no ping within 5 s")
	}
	select {
	case err := <-done:
		ce, ok := errors.AsType[*websocket.CloseError](err)
		if !ok || ce.Code != websocket.CloseGoingAway || ce.Text != "keep-alive timeout: no pong" {
			t.Fatalf("connection ended with %v, want 1001 keep-alive timeout", err)
		}
	case <-time.After(wait):
		t.Fatal("a peer that does not answer pings was not closed")
	}
}

func TestWebSocketSlowConsumer(t *testing.T) {
	t.Parallel()
	m := &fakeMetrics{}
	b := setupWS(t, func(c *server.Config) { c.WSSendBuffer = 256 << 10 }, withMetrics(m))
	slow := b.dial(t, "graphql-transport-ws")
	slow.init(nil)
	slow.subscribe("s", ticks, topicVars("slow"))
	slowSub := b.schema.await(t, "slow")
	fast := b.dial(t, "graphql-ws")
	fast.init(nil)
	fast.subscribe("f", ticks, topicVars("fast"))
	fastSub := b.schema.await(t, "fast")

	// The slow client reads nothing: once the socket's buffers and its
	// queue are full, it is closed. Publishing to it never blocks, and the
	// fast client gets every event meanwhile.
	big := strings.Repeat("x", 60<<10)
	n := 0
publish:
	for ; ; n++ {
		if n > 10000 {
			t.Fatal("the slow consumer was never closed")
		}
		select {
		case slowSub.events <- big:
		case <-slowSub.ctx.Done():
			break publish
		case <-time.After(wait):
			t.Fatal("publishing to the slow consumer blocked")
		}
		e := fmt.Sprint(n)
		fastSub.publish(t, e)
		fast.expect("data", "f", `{"data":{"ticks":"`+e+`"}}`)
	}
	t.Logf("closed after %d events", n)
	fastSub.publish(t, "after")
	fast.expect("data", "f", `{"data":{"ticks":"after"}}`)

	slow.expectClose(websocket.CloseTryAgainLater, "slow consumer: reconnect and resume from your last cursor")
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.slow, []string{ws.TransportWebSocket}) {
		t.Errorf("slow consumers counted %q, want one websocket", m.slow)
	}
}

// serveWS runs b's server on a real listener until cancel; served waits
// for Serve's result (and may be called more than once).
func serveWS(t *testing.T, b *wsBundle) (url string, cancel context.CancelFunc, served func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.srv.Serve(ctx, ln, wait) }()
	served = sync.OnceValue(func() error { return <-errc })
	t.Cleanup(func() {
		cancel()
		_ = served()
	})
	return "ws://" + ln.Addr().String() + "/graphql", cancel, served
}

func TestWebSocketShutdown(t *testing.T) {
	t.Parallel()
	b := newWSBundle(t)
	url, cancel, served := serveWS(t, b)
	var clients []*wsClient
	var subs []*wsSub
	for i, proto := range bothProtocols {
		c, err := dialURL(t, url, proto)
		if err != nil {
			t.Fatal(err)
		}
		c.init(nil)
		topic := fmt.Sprint("t", i)
		c.subscribe("1", ticks, topicVars(topic))
		subs = append(subs, b.schema.await(t, topic))
		clients = append(clients, c)
	}

	cancel()
	for _, c := range clients {
		c.expectClose(websocket.CloseGoingAway, "server shutting down")
	}
	for _, sub := range subs {
		sub.awaitCancelled(t)
	}
	if err := served(); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	// Serve waited for the connections: their log lines are written.
	logged := b.logs.entries(t, "websocket connection")
	if len(logged) != 2 || logged[0]["close_code"] != float64(1001) || logged[1]["close_code"] != float64(1001) {
		t.Errorf("connection logs = %v, want two closed with 1001", logged)
	}
}

// TestWebSocketOutlivesHTTPTimeouts guards a behaviour the transport relies
// on rather than code of its own: that gorilla's Upgrade clears the
// http.Server's deadlines on the hijacked connection (a gorilla upgrade that
// stopped doing so would cut every subscription at the server's timeouts).
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	t.Parallel()
	b := newWSBundle(t)
	const timeout = 100 * time.Millisecond
	b.srv.SetHTTPTimeouts(timeout, timeout)
	url, _, _ := serveWS(t, b)
	c, err := dialURL(t, url, "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	c.init(nil)
	c.subscribe("1", ticks, topicVars("t"))
	sub := b.schema.await(t, "t")

	// The socket must outlive the server's read and write timeouts, so time
	// has to pass here: this wait is what is tested, not a synchronisation.
	<-time.After(4 * timeout)

	sub.publish(t, "late")
	c.expect("next", "1", `{"data":{"ticks":"late"}}`)
	c.send(`{"type":"ping"}`)
	c.expect("pong", "", "")
}

// TestWebSocketSharedSubscription: subscribers of the same shareable
// subscription (same document, variables and viewer), on any connection
// and either subprotocol, share one execution: each event is executed and
// encoded once and reaches all of them; the execution goes on while any
// subscriber remains and stops with the last.
func TestWebSocketSharedSubscription(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	first := b.dial(t, "graphql-transport-ws")
	first.init(nil)
	first.subscribe("a", ticks, topicVars("shared-risk"))
	sub := b.schema.await(t, "shared-risk")
	sub.publish(t, "one")
	first.expect("next", "a", `{"data":{"ticks":"one"}}`)

	// A second and a third subscriber join the running execution.
	second := b.dial(t, "graphql-ws")
	second.init(nil)
	second.subscribe("b", ticks, topicVars("shared-risk"))
	third := b.dial(t, "graphql-transport-ws")
	third.init(nil)
	third.subscribe("c", ticks, topicVars("shared-risk"))
	// Joining happens on the connections' own goroutines: wait for it.
	deadline := time.Now().Add(wait)
	for b.srv.SharedSubscribers() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers joined, want 3", b.srv.SharedSubscribers())
		}
		time.Sleep(5 * time.Millisecond) // another goroutine's progress, no signal to wait on
	}
	// Not sharing would have started another execution, which would wait
	// on the topic and never see what sub publishes.
	sub.publish(t, "two")
	first.expect("next", "a", `{"data":{"ticks":"two"}}`)
	second.expect("data", "b", `{"data":{"ticks":"two"}}`)
	third.expect("next", "c", `{"data":{"ticks":"two"}}`)
	select {
	case extra := <-b.schema.topic("shared-risk"):
		t.Fatalf("a second execution started: %v", extra)
	default:
	}

	// The first leaves; the execution goes on for the others.
	first.send(`{"type":"complete","id":"a"}`)
	sub.publish(t, "three")
	second.expect("data", "b", `{"data":{"ticks":"three"}}`)
	third.expect("next", "c", `{"data":{"ticks":"three"}}`)
	select {
	case <-sub.ctx.Done():
		t.Fatal("the execution stopped while subscribers remained")
	default:
	}
	// The stream ends: every subscriber gets complete.
	close(sub.events)
	second.expect("complete", "b", "")
	third.expect("complete", "c", "")

	// A subscription that does not declare itself shareable is executed
	// per subscriber.
	first.subscribe("d", ticks, topicVars("private"))
	third.subscribe("e", ticks, topicVars("private"))
	p1, p2 := b.schema.await(t, "private"), b.schema.await(t, "private")
	p1.publish(t, "x")
	p2.publish(t, "y")
	// Each execution's event reaches its own subscriber only.
	got := map[string]string{}
	for _, c := range []*wsClient{first, third} {
		m := c.read()
		got[m.ID] = string(m.Payload)
	}
	if len(got) != 2 || got["d"] == got["e"] {
		t.Errorf("private subscriptions got %v, want one event each", got)
	}
}

// TestWebSocketBurst: events ready together (a commit of many) are sent
// together, in bursts of bounded size, and every subscriber receives each
// of them once, in order.
func TestWebSocketBurst(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	var clients []*wsClient
	for i, proto := range []string{"graphql-transport-ws", "graphql-ws", "graphql-transport-ws"} {
		c := b.dial(t, proto)
		c.init(nil)
		c.subscribe(strconv.Itoa(i%2), ticks, topicVars("burst-commit"))
		clients = append(clients, c)
	}
	sub := b.schema.await(t, "burst-commit")
	deadline := time.Now().Add(wait)
	for b.srv.SharedSubscribers() < len(clients) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers joined, want %d", b.srv.SharedSubscribers(), len(clients))
		}
		time.Sleep(5 * time.Millisecond) // another goroutine's progress, no signal to wait on
	}
	const n = 300 // several bursts' worth
	for i := range n {
		sub.publish(t, "e"+strconv.Itoa(i))
	}
	for i, c := range clients {
		for j := range n {
			c.expect(c.nextType(), strconv.Itoa(i%2), `{"data":{"ticks":"e`+strconv.Itoa(j)+`"}}`)
		}
	}
}

// TestWebSocketWritesAfterDeadline: a write that had to wait leaves a
// deadline behind; events written later, long after it passed, still go
// out.
func TestWebSocketWritesAfterDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	b := setupWS(t, func(c *server.Config) { c.WSWriteTimeout = timeout })
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil) // the ack is written with a deadline
	c.subscribe("1", ticks, topicVars("after-deadline"))
	sub := b.schema.await(t, "after-deadline")
	time.Sleep(2 * timeout) // the time passing is what is tested
	sub.publish(t, "late")
	c.expect("next", "1", `{"data":{"ticks":"late"}}`)
	sub.publish(t, "later")
	c.expect("next", "1", `{"data":{"ticks":"later"}}`)
}

// TestWebSocketPublicSubscription: a subscription its resolver declares the
// same for every viewer is shared by anonymous and signed-in subscribers
// alike, while a merely shareable one is shared only by the same viewer.
func TestWebSocketPublicSubscription(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	anon := b.dial(t, "graphql-transport-ws")
	anon.init(nil)
	anon.subscribe("1", ticks, topicVars("public-risk"))
	sub := b.schema.await(t, "public-risk")
	sub.publish(t, "one")
	anon.expect("next", "1", `{"data":{"ticks":"one"}}`)

	ada := b.dial(t, "graphql-transport-ws")
	ada.init(map[string]string{"Authorization": "Bearer " + goodToken})
	ada.subscribe("1", ticks, topicVars("public-risk"))
	deadline := time.Now().Add(wait)
	for b.srv.SharedSubscribers() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers share the public stream, want 2", b.srv.SharedSubscribers())
		}
		time.Sleep(5 * time.Millisecond) // another goroutine's progress, no signal to wait on
	}
	sub.publish(t, "two")
	anon.expect("next", "1", `{"data":{"ticks":"two"}}`)
	ada.expect("next", "1", `{"data":{"ticks":"two"}}`)

	// Shareable but not public: a signed-in viewer gets an execution of
	// its own.
	anon.subscribe("2", ticks, topicVars("shared-own"))
	first := b.schema.await(t, "shared-own")
	first.publish(t, "x")
	anon.expect("next", "2", `{"data":{"ticks":"x"}}`)
	ada.subscribe("2", ticks, topicVars("shared-own"))
	second := b.schema.await(t, "shared-own")
	second.publish(t, "y")
	ada.expect("next", "2", `{"data":{"ticks":"y"}}`)
}

// TestWebSocketJoinWhileStarting: subscribers asking the same while the
// first execution is still starting wait for it and share it, instead of
// each running an execution of its own for life.
func TestWebSocketJoinWhileStarting(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	hold := make(chan struct{})
	b.schema.mu.Lock()
	b.schema.held = map[string]chan struct{}{"shared-slow": hold}
	b.schema.mu.Unlock()
	var clients []*wsClient
	for range 3 {
		c := b.dial(t, "graphql-transport-ws")
		c.init(nil)
		c.subscribe("1", ticks, topicVars("shared-slow"))
		clients = append(clients, c)
	}
	close(hold)
	sub := b.schema.await(t, "shared-slow")
	deadline := time.Now().Add(wait)
	for b.srv.SharedSubscribers() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers share the stream, want 3", b.srv.SharedSubscribers())
		}
		time.Sleep(5 * time.Millisecond) // another goroutine's progress, no signal to wait on
	}
	select {
	case extra := <-b.schema.topic("shared-slow"):
		t.Fatalf("a second execution started: %v", extra)
	default:
	}
	sub.publish(t, "one")
	for _, c := range clients {
		c.expect("next", "1", `{"data":{"ticks":"one"}}`)
	}
}

// TestWebSocketAccessLog: an upgrade is logged as the 101 it answered,
// not as a 200 no one sent.
func TestWebSocketAccessLog(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	c := b.dial(t, "graphql-transport-ws")
	c.conn.Close()
	b.closeAll(t)
	// The line is written when the handler returns, which the client's
	// 101 may precede: no connection the server tracks waits for it.
	var statuses []any
	for deadline := time.Now().Add(wait); len(statuses) == 0 && time.Now().Before(deadline); {
		for _, e := range b.logs.entries(t, "http request") {
			if e["path"] == "/graphql" {
				statuses = append(statuses, e["status"])
			}
		}
		if len(statuses) == 0 {
			time.Sleep(5 * time.Millisecond) // another goroutine's progress, no signal to wait on
		}
	}
	if len(statuses) != 1 || statuses[0] != float64(http.StatusSwitchingProtocols) {
		t.Fatalf("access log statuses of the upgrade = %v, want [101]", statuses)
	}
}
