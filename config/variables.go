package config

import (
	"strconv"
	"time"
)

// Defaults shared by Load and Variables, so that the documented default is
// the one applied.
const (
	defaultAPIHost            = "0.0.0.0"
	defaultAPIPort            = 8000
	defaultMetricsAddr        = "127.0.0.1:9090"
	defaultDatabaseURL        = "sqlite:data/obsqra.db"
	defaultAccessTokenMinutes = 30
	defaultRefreshTokenDays   = 30
	defaultDevCORSOrigins     = "http://localhost:3000,http://localhost:5173,http://localhost:8000"
	defaultBcryptCost         = 12
	defaultShutdownTimeout    = 15 * time.Second
	defaultWSInitTimeout      = 5 * time.Second
	defaultWSKeepAlive        = 15 * time.Second
	defaultWSMaxConnsPerAddr  = 100
	defaultWSMaxOperations    = 100
	defaultBatchMax           = 10
	defaultRateLimitOpCost    = 10
	defaultDataDir            = "data"
	defaultMarketSource       = "simulated"
	defaultSimulatedPoll      = 10 * time.Second
	defaultDefiLlamaPoll      = 5 * time.Minute
	defaultHistoryDays        = 400
	defaultSimSpeed           = 8640
	defaultDefiLlamaURL       = "https://yields.llama.fi"
	defaultLiquidityTiers     = "50000000,10000000,1000000"
	defaultPruneInterval      = time.Hour
	defaultEventRetention     = 24 * time.Hour
	defaultAuditInterval      = time.Hour
	defaultPredictionDays     = 7
	defaultForecastRefresh    = time.Hour
	defaultOutcomeScoring     = time.Hour
	defaultBacktestWindowDays = 90
	defaultRebalanceGasUSD    = "0.50"
	defaultSlippageBps        = 10
	defaultRebalanceHours     = 24
	defaultStarknetNetwork    = "sepolia"
	defaultTxWatchInterval    = 15 * time.Second
	defaultTxDropAfter        = 30 * time.Minute
	defaultMailFrom           = "Obsqra <noreply@localhost>"
	defaultPublicAppURL       = "http://localhost:5173"
	defaultAlertRiskDelta     = 10
	defaultAlertMinInterval   = time.Hour
)

// Defaults of the database connections and request deadlines: seconds, not
// minutes, so that a database that stops answering costs a request a few
// seconds and an error it can retry, rather than a hang.
const (
	defaultDBStatementTimeout = 5 * time.Second
	defaultDBConnectTimeout   = 5 * time.Second
	defaultDBMaxOpenConns     = 20
	defaultDBMaxIdleConns     = 10
	defaultDBConnMaxLifetime  = 30 * time.Minute
	defaultDBConnMaxIdleTime  = 5 * time.Minute
	defaultRequestTimeout     = 10 * time.Second
)

// Defaults of the cost budgets. An anonymous address may spend 30,000
// points a minute: the protocols page with 20 risk scores each costs
// about a thousand, so a few dozen such pages a minute, shared by the
// people behind one address. A user gets four times that, an admin
// twenty.
var (
	defaultRateLimitAnonymous = Budget{Points: 30000, Window: time.Minute}
	defaultRateLimitUser      = Budget{Points: 120000, Window: time.Minute}
	defaultRateLimitAdmin     = Budget{Points: 600000, Window: time.Minute}
)

// defaultAPQCacheBytes is server.DefaultPersistedQueryCacheBytes, which
// says why.
const defaultAPQCacheBytes = 8 << 20

// defaultMailRecipientInterval is account.MailRecipientInterval.
const defaultMailRecipientInterval = 10 * time.Minute

// defaultReadCacheBytes holds the answers of a few thousand distinct
// requests of a few KiB: every public dashboard shape, and the pages of
// the signed-in users of a busy hour.
const defaultReadCacheBytes = 64 << 20

// Defaults of the live hub's limits: live.Limits' defaults, which say why
// (a test in cmd/obsqra keeps them equal).
const (
	defaultLiveSubscriptionBytes    = 1 << 20
	defaultLiveConnectionBytes      = 2 << 20
	defaultLiveAddressBytes         = 16 << 20
	defaultLiveTotalBytes           = 256 << 20
	defaultLiveSubscriptionsPerUser = 200
	defaultLiveSubscriptionsPerAddr = 1000
	defaultLiveSubscriptions        = 20000
)

// Variable describes one environment variable read by Load.
type Variable struct {
	// Name is the variable's name, e.g. "API_PORT".
	Name string
	// Default is the value used when the variable is unset or empty, as it
	// would be written in a .env file, in development. It is "" when there is
	// none or when it is derived from another variable; Description then
	// says so, and also gives any production default that differs.
	Default string
	// Description is one line saying what the variable means, its accepted
	// values and unit.
	Description string
}

// Variables returns every variable that Load reads, in the order of Config's
// fields. It is the one list that the README and .env.example are written
// from; a test keeps .env.example in step with it.
func Variables() []Variable {
	return []Variable{
		{"ENVIRONMENT", string(Development),
			"development or production; production refuses unsafe settings and changes the defaults marked below."},
		{"API_HOST", defaultAPIHost,
			"Interface the HTTP server listens on (host name or IP address)."},
		{"API_PORT", strconv.Itoa(defaultAPIPort),
			"TCP port of the HTTP server, 1-65535."},
		{"METRICS_ADDR", defaultMetricsAddr,
			"host:port of the listener that serves Prometheus metrics at /metrics, apart from the API (never on API_PORT); the default answers this machine only, :9090 any host; off: no metrics."},
		{"DATABASE_URL", defaultDatabaseURL,
			"postgres://user:password@host:5432/db?sslmode=require for PostgreSQL, or sqlite:/file: and a path for the embedded SQLite database."},
		{"MIGRATION_DATABASE_URL", "",
			"Database URL of the role that owns the tables, used only to run migrations; defaults to DATABASE_URL."},
		{"DATABASE_URL_FILE", "",
			"File that holds DATABASE_URL (surrounding whitespace trimmed); set this or DATABASE_URL, not both."},
		{"MIGRATION_DATABASE_URL_FILE", "",
			"File that holds MIGRATION_DATABASE_URL (surrounding whitespace trimmed); set this or MIGRATION_DATABASE_URL, not both."},
		{"DB_STATEMENT_TIMEOUT", defaultDBStatementTimeout.String(),
			"Longest a SQL statement may run on the database server (PostgreSQL statement_timeout; SQLite: how long a statement waits for a lock held by another process), Go duration; scheduler jobs use their own timeout, migrations none."},
		{"DB_CONNECT_TIMEOUT", defaultDBConnectTimeout.String(),
			"Longest opening a PostgreSQL connection (TCP and handshake) may take, Go duration."},
		{"DB_MAX_OPEN_CONNS", strconv.Itoa(defaultDBMaxOpenConns),
			"PostgreSQL connections the server holds at most, 1-10000; a request waiting for one waits at most REQUEST_TIMEOUT. SQLite's pool is fixed."},
		{"DB_MAX_IDLE_CONNS", strconv.Itoa(defaultDBMaxIdleConns),
			"Idle PostgreSQL connections kept open, 1-10000 (at most DB_MAX_OPEN_CONNS)."},
		{"DB_CONN_MAX_LIFETIME", "30m",
			"PostgreSQL connections are replaced after this long (Go duration), so that a failover or a changed DNS name is followed."},
		{"DB_CONN_MAX_IDLE_TIME", "5m",
			"An idle PostgreSQL connection is closed after this long (Go duration)."},
		{"REQUEST_TIMEOUT", defaultRequestTimeout.String(),
			"Longest a GraphQL query or mutation (each operation on a WebSocket too), and the check of an access token, may take (Go duration); past it the request fails with SERVICE_UNAVAILABLE. Subscriptions are not bounded."},
		{"SECRET_KEY", "",
			"Key that signs tokens, at least 32 bytes; required in production; in development, generated once into DATA_DIR/secret_key when unset."},
		{"SECRET_KEY_FILE", "",
			"File that holds SECRET_KEY (surrounding whitespace trimmed); set this or SECRET_KEY, not both."},
		{"ACCESS_TOKEN_EXPIRE_MINUTES", strconv.Itoa(defaultAccessTokenMinutes),
			"Lifetime of an access token in whole minutes, 1-1440."},
		{"REFRESH_TOKEN_EXPIRE_DAYS", strconv.Itoa(defaultRefreshTokenDays),
			"Lifetime of a refresh token in whole days, 1-365."},
		{"CORS_ORIGINS", defaultDevCORSOrigins,
			`Comma-separated origins (scheme://host[:port]) allowed to call the API from a browser, or "*"; production: no default, and "*" is refused.`},
		{"CORS_ALLOWED_HEADERS", "",
			"Comma-separated request header names browsers may send besides those always allowed (Content-Type, Authorization, X-Request-ID, Apollo's and the tracing headers)."},
		{"TRUSTED_PROXIES", "",
			"Comma-separated CIDRs (a bare IP: that address) of the reverse proxies in front of the server; only requests from them take the client address from Forwarded/X-Forwarded-For and the scheme from X-Forwarded-Proto. Empty: headers ignored."},
		{"LOG_LEVEL", "info",
			"Lowest level logged: debug, info, warn or error."},
		{"LOG_FORMAT", string(LogFormatText),
			"Log line format, text or json; production default: json."},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "",
			"Base URL of an OpenTelemetry collector (http://collector:4318): spans go to its /v1/traces over OTLP/HTTP. Empty (with the next one empty too): no traces, at no cost."},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "",
			"Full URL the spans are sent to, used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT."},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", defaultOTLPProtocol,
			"OTLP protocol; only http/protobuf is supported (a gRPC collector listens on 4317, OTLP/HTTP on 4318)."},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", defaultOTLPProtocol,
			"OTLP protocol of traces; only http/protobuf is supported."},
		{"OTEL_TRACES_SAMPLER", defaultTracesSampler,
			"Which traces are kept: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio (parentbased_*: a request whose traceparent is sampled is kept)."},
		{"OTEL_TRACES_SAMPLER_ARG", "",
			"Share of traces the ratio samplers keep, 0-1 (default 1)."},
		{"OTEL_SDK_DISABLED", "false",
			"true turns tracing off whatever the endpoints say."},
		{"SENTRY_DSN", "",
			"DSN of the Sentry project (https://KEY@o0.ingest.sentry.io/PROJECT) that internal errors and recovered panics are reported to; empty: none."},
		{"SENTRY_DSN_FILE", "",
			"File that holds SENTRY_DSN (surrounding whitespace trimmed); set this or SENTRY_DSN, not both."},
		{"BCRYPT_COST", strconv.Itoa(defaultBcryptCost),
			"bcrypt work factor of password hashes, 4-31 (each step doubles the time); at least 10 in production."},
		{"ADMIN_EMAILS", "",
			"Comma-separated email addresses of the administrators."},
		{"REQUIRE_EMAIL_VERIFICATION", "false",
			"true: register answers the same for new and registered emails (no tokens, one mail either way) and sign-in waits for a verified address (FORBIDDEN, reason EMAIL_NOT_VERIFIED); production default: true."},
		{"MAIL_RECIPIENT_INTERVAL", defaultMailRecipientInterval.String(),
			"The least time between two mails of one kind that a stranger can trigger to one address (verification resends, sign-up notices, password resets, email-change links), 1m-24h: nobody can flood an inbox through the server."},
		{"GRAPHQL_INTROSPECTION", "true",
			"GraphQL introspection on or off (true/false/1/0/yes/no); production default: false."},
		{"APQ_CACHE_BYTES", strconv.Itoa(defaultAPQCacheBytes),
			"Bytes of documents registered by automatic persisted queries (an LRU; each costs its text, its hash and 128 bytes), 1024-68719476736."},
		{"READ_CACHE_BYTES", strconv.Itoa(defaultReadCacheBytes),
			"Bytes of query answers kept by the read cache until an event changes them (0 turns it off, else 1024-68719476736); past it, queries execute as without it."},
		{"TRUSTED_DOCUMENTS", "",
			"Path of a persisted-document manifest (Apollo's persisted-query manifest or GraphQL Codegen's persisted-documents.json) whose documents may be sent by hash alone; a bad manifest stops the start."},
		{"TRUSTED_DOCUMENTS_ONLY", "false",
			"true: refuse every other document with PERSISTED_QUERY_NOT_TRUSTED; needs TRUSTED_DOCUMENTS, and production or GRAPHQL_INTROSPECTION=false."},
		{"SHUTDOWN_TIMEOUT", defaultShutdownTimeout.String(),
			"How long a graceful shutdown waits for in-flight requests, as a Go duration (15s, 2m); a running scheduler job gets its own timeout."},
		{"WS_INIT_TIMEOUT", defaultWSInitTimeout.String(),
			"How long a WebSocket client may take to send connection_init before it is closed with 4408 (Go duration)."},
		{"WS_KEEPALIVE", defaultWSKeepAlive.String(),
			"Interval of WebSocket pings (and graphql-ws ka messages); a peer silent for two intervals is closed (Go duration)."},
		{"WS_MAX_CONNECTIONS_PER_ADDRESS", strconv.Itoa(defaultWSMaxConnsPerAddr),
			"WebSockets and subscription streams over HTTP open at once from one client address, counted together (1-100000); one more is refused with HTTP 429 and RATE_LIMITED."},
		{"WS_MAX_OPERATIONS", strconv.Itoa(defaultWSMaxOperations),
			"Operations running at once on one WebSocket (1-10000); one more is answered with an error with RATE_LIMITED."},
		{"BATCH_MAX", strconv.Itoa(defaultBatchMax),
			"Operations in one batched POST /graphql (a JSON array, 1-1000); a larger batch is refused with HTTP 400 and BATCH_TOO_LARGE."},
		{"RATE_LIMIT_ANONYMOUS", defaultRateLimitAnonymous.String(),
			"Cost budget of one client address for anonymous requests: points/window (points 10000-10^12, window 1s-24h), such as 30000/1m: spend the points at once, then that many per window. An operation costs its complexity; a refused one gets HTTP 429, Retry-After and RATE_LIMITED."},
		{"RATE_LIMIT_USER", defaultRateLimitUser.String(),
			"Cost budget of each signed-in user (points/window)."},
		{"RATE_LIMIT_ADMIN", defaultRateLimitAdmin.String(),
			"Cost budget of each signed-in admin (points/window)."},
		{"RATE_LIMIT_MUTATION_COST", strconv.Itoa(defaultRateLimitOpCost),
			"Points a mutation costs beyond its complexity (0-5000)."},
		{"RATE_LIMIT_SUBSCRIPTION_COST", strconv.Itoa(defaultRateLimitOpCost),
			"Points a subscription costs beyond its complexity, charged when it starts (0-5000)."},
		{"DATA_DIR", defaultDataDir,
			"Directory of the development secret key file DATA_DIR/secret_key (DATABASE_URL's default does not follow it)."},
		{"MARKET_SOURCE", defaultMarketSource,
			"Live market feed: simulated (a seeded offline market), defillama (the DefiLlama yields API) or none (only pushed and imported data)."},
		{"MARKET_POLL_INTERVAL", "",
			"How often the feed is polled (Go duration); default 10s for simulated, 5m for defillama."},
		{"MARKET_SEED", "1",
			"Seed of the simulated feed, 0-2147483647: the same seed gives the same market."},
		{"MARKET_SIM_SPEED", strconv.Itoa(defaultSimSpeed),
			"How many times faster than the clock the simulated market moves between polls, 1-100000 (8640: a market day per 10s poll, so scores visibly move; 1: real time)."},
		{"MARKET_HISTORY_DAYS", strconv.Itoa(defaultHistoryDays),
			"Days of daily history the feed loads into a database that has no metrics yet, 0-3650."},
		{"DEFILLAMA_URL", defaultDefiLlamaURL,
			"Base URL of the DefiLlama yields API (for MARKET_SOURCE=defillama)."},
		{"DEFILLAMA_URL_FILE", "",
			"File that holds DEFILLAMA_URL (surrounding whitespace trimmed), for a URL with an API key in it; set this or DEFILLAMA_URL, not both."},
		{"LIQUIDITY_TIER_USD", defaultLiquidityTiers,
			"TVLs in USD from which a protocol's liquidity tier is 0, 1 and 2 (descending); below the last it is 3; unknown TVL is tier 2."},
		{"PRUNE_INTERVAL", "1h",
			"How often the prune job removes expired outbox events, old scheduler runs, expired wallet challenges and email tokens, refilled rate budgets, and old sent or failed mails (Go duration)."},
		{"DECISION_AUDIT_INTERVAL", "1h",
			"How often the decision-audit job re-verifies the whole hash-chained decision log (Go duration)."},
		{"EVENT_RETENTION", "24h",
			"How long outbox events are kept for subscribers resuming from a cursor (Go duration); an older cursor must refetch."},
		{"PREDICTION_WINDOW_DAYS", strconv.Itoa(defaultPredictionDays),
			"Horizon in whole days, 1-365, of the scheduled forecasts, of yieldForecast/riskForecast without an argument, and of the forecasts plans weigh."},
		{"FORECAST_REFRESH_INTERVAL", "1h",
			"How often the forecast job forecasts every enabled protocol's yield and risk and records the forecasts that changed (Go duration)."},
		{"OUTCOME_SCORING_INTERVAL", "1h",
			"How often the outcome job records the actual value and error of predictions whose target day has passed (Go duration)."},
		{"BACKTEST_WINDOW_DAYS", strconv.Itoa(defaultBacktestWindowDays),
			"Default and largest window of the backtest query, in whole days, 1-3650."},
		{"REBALANCE_GAS_USD", defaultRebalanceGasUSD,
			"Gas cost in USD of one rebalance trade, 0-1000, in suggestions' costs."},
		{"REBALANCE_SLIPPAGE_BPS", strconv.Itoa(defaultSlippageBps),
			"Trading cost in bps of each traded amount, 0-10000, in suggestions' costs."},
		{"REBALANCE_CHECK_INTERVAL_HOURS", strconv.Itoa(defaultRebalanceHours),
			"How often, in whole hours (1-8760), the rebalance job checks the users with autoRebalance and records suggestions that clear their threshold."},
		{"STARKNET_RPC_URL", "",
			"Comma-separated Starknet JSON-RPC endpoints (spec 0.9), tried in order with failover; empty: no node (transactions stay PENDING, wallets cannot be linked)."},
		{"STARKNET_RPC_URL_FILE", "",
			"File that holds STARKNET_RPC_URL (surrounding whitespace trimmed), for provider URLs with API keys in them; set this or STARKNET_RPC_URL, not both."},
		{"STARKNET_NETWORK", defaultStarknetNetwork,
			"sepolia or mainnet: the chain id every node must report (SN_SEPOLIA, SN_MAIN) and the one wallet challenges are signed for."},
		{"RISK_ENGINE_ADDRESS", "",
			"Address of the deployed RiskEngine contract; when set, verifyDecision also asks it for the score (onChainScore, matchesOnChain)."},
		{"TX_WATCH_INTERVAL", "15s",
			"How often the watcher polls the node for transactions that are not final (Go duration); older transactions are polled less often."},
		{"TX_DROP_AFTER", "30m",
			"How long a logged transaction the node does not know (error 29) is waited for before it is marked DROPPED (Go duration)."},
		{"LIVE_SUBSCRIPTION_BUFFER_BYTES", strconv.Itoa(defaultLiveSubscriptionBytes),
			"Bytes of events that may wait for one subscriber; a live event past it ends the subscription with RATE_LIMITED and a cursor to resume from."},
		{"LIVE_CONNECTION_BUFFER_BYTES", strconv.Itoa(defaultLiveConnectionBytes),
			"Bytes of events that may wait for all the subscriptions of one connection (WebSocket or HTTP request)."},
		{"LIVE_ADDRESS_BUFFER_BYTES", strconv.Itoa(defaultLiveAddressBytes),
			"Bytes of events that may wait for all the connections of one client address."},
		{"LIVE_TOTAL_BUFFER_BYTES", strconv.Itoa(defaultLiveTotalBytes),
			"Bytes of events that may wait for all subscribers of this server; replays fill at most half of each budget."},
		{"LIVE_SUBSCRIPTIONS_PER_USER", strconv.Itoa(defaultLiveSubscriptionsPerUser),
			"Subscriptions one signed-in user may hold at once, 1-100000; one more is refused with RATE_LIMITED."},
		{"LIVE_SUBSCRIPTIONS_PER_ADDRESS", strconv.Itoa(defaultLiveSubscriptionsPerAddr),
			"Subscriptions that may be held at once for one client address, signed in or not, 1-1000000; one more is refused with RATE_LIMITED."},
		{"LIVE_SUBSCRIPTIONS", strconv.Itoa(defaultLiveSubscriptions),
			"Subscriptions this server holds at once, 1-1000000; one more is refused with RATE_LIMITED."},
		{"SMTP_URL", "",
			"SMTP server mail goes through: smtp://USER:PASS@HOST:587 (STARTTLS required), smtps://USER:PASS@HOST:465 (implicit TLS), or smtp+insecure://HOST:PORT (plain text, refused in production). Unset: in development mails are logged, links and all; production requires it."},
		{"SMTP_URL_FILE", "",
			"File that holds SMTP_URL (surrounding whitespace trimmed), for its password; set this or SMTP_URL, not both."},
		{"MAIL_FROM", defaultMailFrom,
			"From of every mail, \"Name <address>\" or an address; required in production."},
		{"PUBLIC_APP_URL", defaultPublicAppURL,
			"The frontend's base URL, which links in mails lead to (PUBLIC_APP_URL/verify-email?token=…); required in production, and https there."},
		{"PUBLIC_API_URL", "http://localhost:" + strconv.Itoa(defaultAPIPort),
			"This server's own public base URL, which the one-click unsubscribe link of alert mails leads to (PUBLIC_API_URL/unsubscribe?token=…); default http://localhost:API_PORT in development; required in production, and https there."},
		{"ALERT_RISK_DELTA", strconv.Itoa(defaultAlertRiskDelta),
			"Rise of a protocol's risk score, in points (1-100), over its lowest score of the previous 24 hours, that mails an alert to its holders (once per protocol and user in 24 hours)."},
		{"ALERT_MIN_INTERVAL", "1h", // defaultAlertMinInterval
			"Least time between two alert mails to one user, 1m-24h; the alerts in between go out as one digest."},
	}
}
