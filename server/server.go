// Package server is the HTTP face of Obsqra: /graphql (POST and GET, and
// WebSocket through server/ws, which it mounts), the GraphiQL playground,
// the REST API's reference page, /health, /ready and /favicon.ico, and the middleware every request passes
// through (request id, panic recovery, access log, CORS, CSRF prevention,
// body limit, authentication).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/server/ws"
)

// Authenticator turns a bearer access token into the principal it stands for.
type Authenticator interface {
	Authenticate(ctx context.Context, accessToken string) (*obsqra.Principal, error)
}

// Pinger answers when the database does.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Defaults of the Config limits.
const (
	// DefaultMaxBodyBytes bounds a request body: 1 MiB holds any sensible
	// GraphQL document with its variables many times over.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxDepth bounds how deeply fields nest in an operation.
	DefaultMaxDepth = 12
	// DefaultMaxAliases bounds the aliased fields of an operation, which
	// otherwise let one request run the same resolver hundreds of times.
	DefaultMaxAliases = 30
	// DefaultComplexityLimit is the gqlgen complexity budget of an operation.
	// At gqlgen's default costs a field costs 1 plus what it selects (and
	// introspection under __schema is free), so a screen's query of a few
	// dozen fields uses a few percent of it. History connections charge
	// first × what each edge selects, so one page of 100 risk scores with
	// every field (components and inputs included) fits, and so does the
	// dashboard of every protocol with 20 rows of each history, while pages
	// nested in pages do not (resolvers/hostile_test.go runs each). The
	// budget is fixed rather than per user so that the same document always
	// costs the same and refusals are predictable.
	DefaultComplexityLimit = 5000
	// DefaultMaxTokens bounds the lexical tokens of a GraphQL document
	// (names, punctuation, values). GraphiQL's full introspection query has
	// 184; a limit far below what the body limit allows bounds the work of
	// the parser, and of everything linear in the document's size.
	DefaultMaxTokens = 15000
	// DefaultMaxValidationCost bounds validationCost, the estimated work
	// of validating a document, in steps of about 0.1 µs. GraphiQL's full
	// introspection query costs 5,862 and the largest query of the
	// resolvers' tests a few hundred; the slowest document at the limit
	// validates in a few milliseconds (README, Limits).
	DefaultMaxValidationCost = 100000
)

// Config is what New needs besides its collaborators. Zero limits take
// their defaults.
type Config struct {
	// Version is reported by /health, e.g. the git describe of the build.
	Version string
	// ReadCache, when set, answers repeated queries over HTTP POST from
	// their kept answers until an event changes them (readcache.go). Its
	// owner starts it once the hub follows the outbox, and feeds it the
	// hub's events. Default nil: none.
	ReadCache *ReadCache
	// CORSOrigins lists the browser origins allowed to call the API, e.g.
	// "https://app.obsqra.fi". "*" allows every origin. Default none.
	CORSOrigins []string
	// CORSAllowedHeaders are request headers those origins may send besides
	// the ones always allowed (corsAllowHeaders: Content-Type,
	// Authorization, X-Request-ID, Apollo's and the tracing headers).
	// Default none (CORS_ALLOWED_HEADERS).
	CORSAllowedHeaders []string
	// TrustedProxies are the reverse proxies whose forwarding headers are
	// believed: a request whose TCP peer is inside one of them takes its
	// client address from Forwarded or X-Forwarded-For and its scheme from
	// X-Forwarded-Proto (see clientOf); any other request's headers are
	// ignored. Default none (TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// Introspection allows __schema and __type queries, and serves the
	// GraphiQL playground at / and /playground, which cannot work without
	// them. Default false (GRAPHQL_INTROSPECTION turns it on; it is on in
	// development).
	Introspection bool
	// Logger receives the access log and every error the server hides from
	// clients. Default slog.Default().
	Logger *slog.Logger
	// TracerProvider, when set, traces every request and GraphQL
	// operation (see trace.go). Default nil: none.
	TracerProvider trace.TracerProvider
	// Reporter, when set, is told of every internal error and recovered
	// panic (SENTRY_DSN). Default nil: none.
	Reporter Reporter

	// MaxBodyBytes bounds a request body, in bytes. Default 1 MiB.
	MaxBodyBytes int64
	// MaxDepth bounds field nesting in an operation; introspection fields
	// do not count. Default 12.
	MaxDepth int
	// MaxAliases bounds the aliased fields of an operation, counted once per
	// use of the fragment they are in. Default 30.
	MaxAliases int
	// RateLimits, when set, are the cost budgets every operation is
	// charged to (see RateLimits); nil charges nothing.
	RateLimits *RateLimits
	// ComplexityLimit is the gqlgen complexity budget of an operation.
	// Default 5000.
	ComplexityLimit int
	// MaxTokens bounds the lexical tokens of a GraphQL document; a
	// document over it is refused before it is validated. Default 15,000.
	MaxTokens int
	// MaxValidationCost bounds the estimated work of validating a GraphQL
	// document, in steps (see README, Limits); a document over it is
	// refused before it is validated. Default 100,000.
	MaxValidationCost int

	// WSInitTimeout is how long a WebSocket client has, from the upgrade,
	// to send connection_init; then it is closed with 4408. Default 5s.
	WSInitTimeout time.Duration
	// WSKeepAlive is the interval between the WebSocket ping frames the
	// server sends (and, on the legacy graphql-ws subprotocol, its "ka"
	// messages). A peer from which nothing arrives, not even a pong, for
	// two intervals is closed as dead. Default 15s.
	WSKeepAlive time.Duration
	// WSSendBuffer is how many bytes of messages may wait to be written to
	// one WebSocket connection. A client that falls further behind is
	// closed with 1013 (try again later) rather than slowing anyone else
	// down. Default 1 MiB; an idle connection holds none of it.
	WSSendBuffer int
	// WSWriteTimeout bounds each write to a WebSocket connection that must
	// wait for the peer, and each write to an event stream (SSE): a peer
	// that does not take a message in that time is gone or hopelessly
	// behind. Default 10s.
	WSWriteTimeout time.Duration
	// WSMaxConnsPerAddress bounds the WebSockets and subscription streams
	// over HTTP open at once from one client address (as the proxy
	// settings determine it), counted together; one more is refused before
	// the upgrade or the stream with HTTP 429 and RATE_LIMITED. With the
	// per-connection send buffer it bounds what one address can make the
	// server hold for its connections. Default 100.
	WSMaxConnsPerAddress int
	// WSMaxOperations bounds the operations running at once on one
	// WebSocket; one more is answered with an error message with
	// RATE_LIMITED (the socket stays open). Default 100.
	WSMaxOperations int

	// SSEHeartbeat is the interval between the comments (":") an event
	// stream (Accept: text/event-stream) sends, so that proxies do not
	// close it as idle. Default 12s.
	SSEHeartbeat time.Duration

	// BatchMax bounds the operations of one batched POST (a JSON array of
	// requests); a larger batch is refused with HTTP 400 and
	// BATCH_TOO_LARGE. Default 10 (BATCH_MAX).
	BatchMax int

	// RequestTimeout bounds each query and mutation, from the start of its
	// execution, over any transport (a WebSocket's operations each get
	// their own), and separately the check of a request's access token;
	// subscriptions are not bounded. Past it, the store's calls end and
	// report SERVICE_UNAVAILABLE. Default 10s (REQUEST_TIMEOUT).
	RequestTimeout time.Duration

	// PersistedQueryCacheBytes bounds the documents registered by
	// automatic persisted queries, in bytes (each costs its text, its hash
	// and 128 bytes); the least recently used go first. Default 8 MiB
	// (APQ_CACHE_BYTES).
	PersistedQueryCacheBytes int64
	// PersistedQueryMaxAge is the max-age of an anonymous GET of a query
	// sent by its hash alone, which is "Cache-Control: public" so that a
	// CDN may keep it. Default 5s; rounded down to whole seconds.
	PersistedQueryMaxAge time.Duration
	// TrustedDocuments may be sent by their hash alone (TRUSTED_DOCUMENTS).
	// Default none.
	TrustedDocuments *TrustedDocuments
	// TrustedDocumentsOnly refuses every document that is not one of
	// TrustedDocuments, over HTTP and WebSocket, with
	// PERSISTED_QUERY_NOT_TRUSTED (TRUSTED_DOCUMENTS_ONLY). Default false.
	TrustedDocumentsOnly bool

	// REST, when set, serves the original REST API under /api/v1
	// (rest.API), behind the same middleware as /graphql: request ids,
	// access log, CORS, body limit, compression. It charges the budgets
	// through the server's ChargeRequest. The server itself then serves the
	// API's reference page at /api/v1/docs (and /api/v1/docs/), Redoc
	// rendering REST's /api/v1/openapi.json, with its assets under
	// /api/v1/docs/assets/ (apidocs.go), whether or not Introspection is
	// on. Default nil: no such routes.
	REST http.Handler

	// Unsubscriber, when set, serves /unsubscribe, the one-click
	// unsubscribe link of alert mails (unsubscribe.go). Default nil: no
	// such route.
	Unsubscriber Unsubscriber

	// Metrics, when set, receives the measures of the GraphQL requests
	// over HTTP, of rate limit refusals and of slow consumers. Default
	// nil: nothing is measured.
	Metrics Metrics
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.MaxAliases <= 0 {
		cfg.MaxAliases = DefaultMaxAliases
	}
	if cfg.ComplexityLimit <= 0 {
		cfg.ComplexityLimit = DefaultComplexityLimit
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	if cfg.MaxValidationCost <= 0 {
		cfg.MaxValidationCost = DefaultMaxValidationCost
	}
	if cfg.WSInitTimeout <= 0 {
		cfg.WSInitTimeout = ws.DefaultInitTimeout
	}
	if cfg.WSKeepAlive <= 0 {
		cfg.WSKeepAlive = ws.DefaultKeepAlive
	}
	if cfg.WSSendBuffer <= 0 {
		cfg.WSSendBuffer = ws.DefaultSendBuffer
	}
	if cfg.WSWriteTimeout <= 0 {
		cfg.WSWriteTimeout = ws.DefaultWriteTimeout
	}
	if cfg.WSMaxConnsPerAddress <= 0 {
		cfg.WSMaxConnsPerAddress = ws.DefaultMaxConnsPerAddress
	}
	if cfg.WSMaxOperations <= 0 {
		cfg.WSMaxOperations = ws.DefaultMaxOperations
	}
	if cfg.SSEHeartbeat <= 0 {
		cfg.SSEHeartbeat = DefaultSSEHeartbeat
	}
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = DefaultBatchMax
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.PersistedQueryCacheBytes <= 0 {
		cfg.PersistedQueryCacheBytes = DefaultPersistedQueryCacheBytes
	}
	if cfg.PersistedQueryMaxAge <= 0 {
		cfg.PersistedQueryMaxAge = DefaultPersistedQueryMaxAge
	}
	origins := make([]string, 0, len(cfg.CORSOrigins))
	for _, o := range cfg.CORSOrigins {
		if o = strings.TrimSuffix(strings.TrimSpace(o), "/"); o != "" {
			origins = append(origins, o)
		}
	}
	cfg.CORSOrigins = origins
	cfg.TrustedProxies = normalisePrefixes(cfg.TrustedProxies)
	return cfg
}

// Timeouts of the http.Server that Serve runs. They do not cut WebSocket
// subscriptions short: gorilla's Upgrade clears the deadlines of the
// hijacked connection, which then sets its own before each read and write.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// stopper is a timer that can be stopped, such as a *time.Timer.
type stopper interface{ Stop() bool }

// Server serves the Obsqra API over HTTP.
type Server struct {
	cfg     Config
	log     *slog.Logger
	auth    Authenticator
	db      Pinger
	handler http.Handler
	// now is the clock and afterFunc its timers (time.AfterFunc); tests
	// replace them.
	now       func() time.Time
	afterFunc func(d time.Duration, f func()) stopper
	// wsOperationQueued, when set, is called by a WebSocket operation's
	// goroutine before it starts work; tests hold operations there.
	wsOperationQueued func(ctx context.Context)
	// readTimeout and writeTimeout are those of the http.Server that Serve
	// runs; tests shorten them.
	readTimeout, writeTimeout time.Duration
	// sockets are the live WebSocket connections, held by the WebSocket
	// transport ws (both set by webSocket).
	sockets sockets
	ws      *ws.Transport
	// eventStreams streams the results of operations over HTTP (set by
	// graphQL).
	eventStreams *eventStreams
	// rechecks are the checks of sockets after account changes.
	rechecks accountRechecks

	// shuttingDown is done once SetShuttingDown (setShuttingDown) has
	// been called; /ready answers 503 from then on, and event streams end.
	shuttingDown    context.Context
	setShuttingDown context.CancelFunc

	// tracer traces requests and operations (TracerProvider), or is nil.
	tracer trace.Tracer
}

// New returns a server for schema that authenticates bearer tokens with auth
// and reports ready while db answers. None of them may be nil.
func New(cfg Config, schema graphql.ExecutableSchema, auth Authenticator, db Pinger) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:          cfg,
		log:          cfg.Logger,
		auth:         auth,
		db:           db,
		now:          time.Now,
		afterFunc:    func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) },
		readTimeout:  readTimeout,
		writeTimeout: writeTimeout,
	}
	s.shuttingDown, s.setShuttingDown = context.WithCancel(context.Background())
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}

	mux := http.NewServeMux()
	// CSRF prevention first: a request a browser sends cross-origin without
	// a preflight runs nothing (and is answered no-store).
	gql := cacheControl(cfg.PersistedQueryMaxAge, s.preventCSRF(s.authenticate(s.graphQL(schema))))
	// Every method: httpTransport answers those other than GET and POST
	// with a GraphQL error (405).
	mux.Handle("/graphql", gql)
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("GET /favicon.ico", serveFavicon)
	if cfg.REST != nil {
		// The reference page documents a public API, so it is served
		// whenever the API is, with introspection or without (unlike the
		// playground, which needs it). Its patterns are more specific than
		// /api/v1/, so the mux picks them; REST answers the rest, the
		// /api/v1/openapi.json the page renders included.
		apiDocs.mount(mux, "/api/v1/docs", "/api/v1/docs/{$}")
		mux.Handle("/api/v1/", cfg.REST)
	}
	if cfg.Unsubscriber != nil {
		mux.HandleFunc("GET /unsubscribe", s.serveUnsubscribePage)
		mux.HandleFunc("POST /unsubscribe", s.unsubscribe)
	}
	if cfg.Introspection {
		playground.mount(mux, "/{$}", "/playground")
		mux.HandleFunc("GET /graphql/schema.graphql", s.serveSchema(SDL(schema.Schema())))
	}

	// Outermost first: every later layer is in the request's span and can
	// log with the request id, and a panic anywhere below is answered and
	// logged; the access log counts the bytes sent, compressed.
	s.handler = s.traceRequests(s.requestID(s.recoverPanic(s.accessLog(s.compress(s.cors(s.limitBody(mux)))))))
	return s
}

// Handler returns the server's routes wrapped in its middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// SetShuttingDown makes /ready answer 503 from now on, so that load
// balancers stop sending new requests while in-flight ones finish, and
// ends the event streams (without complete, so that their clients
// reconnect elsewhere). It is safe to call more than once and from any
// goroutine.
func (s *Server) SetShuttingDown() {
	s.setShuttingDown()
}

// isShuttingDown reports whether SetShuttingDown has been called.
func (s *Server) isShuttingDown() bool { return s.shuttingDown.Err() != nil }

// ListenAndServe listens on the TCP address addr (e.g. ":8080") and calls
// Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string, shutdownTimeout time.Duration) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln, shutdownTimeout)
}

// Serve answers requests on ln until ctx is cancelled, then shuts down
// gracefully: /ready turns 503, ln stops accepting, every WebSocket is
// closed with 1001 (going away), and in-flight requests get up to
// shutdownTimeout to finish before their connections are closed. It
// returns nil after a clean shutdown, and an error when serving fails or
// the timeout cuts requests off. Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, shutdownTimeout time.Duration) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      s.writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	s.SetShuttingDown()
	s.log.Info("shutting down http server", "addr", ln.Addr().String(), "timeout", shutdownTimeout.String())
	// The shutdown has its own deadline: ctx is already done.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// http.Server.Shutdown neither closes nor waits for hijacked
	// connections: the WebSockets are closed beside it.
	socketsClosed := make(chan error, 1)
	go func() { socketsClosed <- s.sockets.Shutdown(shutdownCtx) }()
	err := hs.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		s.log.Warn("http server stopped with an error", "error", serveErr)
	}
	wsErr := <-socketsClosed
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("shut down http server: %w", err)
	}
	if wsErr != nil {
		return fmt.Errorf("close websockets: %w", wsErr)
	}
	return nil
}
