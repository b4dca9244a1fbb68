// Package config reads the server's configuration from the environment (and,
// through LoadDotEnv, from a .env file), checks all of it at once and refuses
// unsafe settings in production. Variables lists every variable with its
// default; .env.example and the README are written from that list.
package config

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
)

// Environment says whether the server runs for development or production.
type Environment string

// The two environments. Production turns on the safety checks of Load and
// changes a few defaults (no CORS origins, JSON logs, no introspection).
const (
	Development Environment = "development"
	Production  Environment = "production"
)

// LogFormat is the format of the server's log lines.
type LogFormat string

// The log formats: text for a person at a terminal, JSON for a log collector.
const (
	LogFormatText LogFormat = "text"
	LogFormatJSON LogFormat = "json"
)

// MinSecretKeyLen is the shortest SECRET_KEY accepted, in bytes: 256 bits
// for the HMAC that signs tokens.
const MinSecretKeyLen = 32

// minProductionBcryptCost is the lowest BCRYPT_COST accepted in production.
const minProductionBcryptCost = 10

// Config is the configuration of the server. Load fills it from the
// environment; each field names its variable, default and unit.
type Config struct {
	// Environment is "development" or "production" (ENVIRONMENT, default
	// development). Production refuses unsafe settings and changes the
	// defaults of CORSOrigins, LogFormat and Introspection.
	Environment Environment

	// APIHost is the interface the HTTP server listens on (API_HOST,
	// default "0.0.0.0", i.e. all IPv4 interfaces).
	APIHost string
	// APIPort is the TCP port of the HTTP server (API_PORT, default 8000,
	// 1-65535).
	APIPort int
	// MetricsAddr is the address, host:port, of the listener that serves
	// the Prometheus metrics at /metrics (METRICS_ADDR, default
	// "127.0.0.1:9090": this machine only; ":9090" lets a scraper on
	// another host in). "" when METRICS_ADDR is off: no metrics are
	// served. Its port is never API_PORT: the metrics are not the API's.
	MetricsAddr string

	// DatabaseURL is the database the server uses (DATABASE_URL, or the
	// trimmed content of the file named by DATABASE_URL_FILE; default
	// "sqlite:data/obsqra.db"): postgres:// or postgresql:// for PostgreSQL,
	// sqlite: or file: for the embedded SQLite database.
	DatabaseURL string
	// MigrationDatabaseURL is the database URL used to run migrations, as
	// the role that owns the tables (MIGRATION_DATABASE_URL, or the file
	// named by MIGRATION_DATABASE_URL_FILE; default: the value of
	// DatabaseURL). It must be the same kind of database.
	MigrationDatabaseURL string

	// DBStatementTimeout bounds each SQL statement on the database server
	// (DB_STATEMENT_TIMEOUT, Go duration, default 5s): PostgreSQL's
	// statement_timeout, SQLite's busy timeout. Scheduler jobs run their
	// statements under their own timeout instead; migrations under none.
	DBStatementTimeout time.Duration
	// DBConnectTimeout bounds opening a PostgreSQL connection, TCP and
	// handshake (DB_CONNECT_TIMEOUT, Go duration, default 5s).
	DBConnectTimeout time.Duration
	// DBMaxOpenConns bounds the PostgreSQL connections of the server's pool
	// (DB_MAX_OPEN_CONNS, 1-10000, default 20); DBMaxIdleConns are kept open
	// when idle (DB_MAX_IDLE_CONNS, 1-10000, default 10); a connection is
	// replaced after DBConnMaxLifetime (DB_CONN_MAX_LIFETIME, Go duration,
	// default 30m) and closed after DBConnMaxIdleTime unused
	// (DB_CONN_MAX_IDLE_TIME, Go duration, default 5m). SQLite's pool is
	// fixed.
	DBMaxOpenConns    int
	DBMaxIdleConns    int
	DBConnMaxLifetime time.Duration
	DBConnMaxIdleTime time.Duration
	// RequestTimeout bounds each GraphQL query and mutation, and the check
	// of a request's access token (REQUEST_TIMEOUT, Go duration, default
	// 10s); subscriptions are not bounded. Past it, a request waiting for
	// the database fails with SERVICE_UNAVAILABLE.
	RequestTimeout time.Duration

	// SecretKey signs access and refresh tokens (SECRET_KEY, or the trimmed
	// content of the file named by SECRET_KEY_FILE; no default; at least 32
	// bytes). Required in production; in development EnsureSecretKey fills
	// it from DataDir/secret_key when it is empty.
	SecretKey []byte

	// AccessTokenTTL is the lifetime of an access token
	// (ACCESS_TOKEN_EXPIRE_MINUTES, whole minutes, default 30, 1-1440).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a refresh token
	// (REFRESH_TOKEN_EXPIRE_DAYS, whole days, default 30, 1-365).
	RefreshTokenTTL time.Duration

	// CORSOrigins are the origins allowed to call the API from a browser
	// (CORS_ORIGINS, comma-separated; each "scheme://host[:port]" in lower
	// case, or "*" outside production; default in development
	// http://localhost:3000, http://localhost:5173 and
	// http://localhost:8000, in production none).
	CORSOrigins []string
	// CORSAllowedHeaders are request headers that browsers may send from
	// those origins besides the ones the server always allows (Content-Type,
	// Authorization, Apollo's and the tracing headers; see the server's
	// corsAllowHeaders) (CORS_ALLOWED_HEADERS, comma-separated header
	// names, default none).
	CORSAllowedHeaders []string
	// TrustedProxies are the reverse proxies whose forwarding headers are
	// believed (TRUSTED_PROXIES, comma-separated CIDRs such as 10.0.0.0/8
	// or fd00::/8; a bare IP address stands for itself, /32 or /128;
	// default none). Only a request whose TCP peer is inside one of them
	// takes its client address from Forwarded or X-Forwarded-For and its
	// scheme from X-Forwarded-Proto; list only proxies that set those
	// headers themselves.
	TrustedProxies []netip.Prefix

	// LogLevel is the lowest level logged (LOG_LEVEL, debug, info, warn or
	// error, case-insensitive, default info).
	LogLevel slog.Level
	// LogFormat is the format of log lines (LOG_FORMAT, text or json,
	// default text in development and json in production).
	LogFormat LogFormat

	// TracesEndpoint is the URL the server sends its spans to over
	// OTLP/HTTP with protobuf: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it
	// is, or OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended to its
	// path (http(s) URLs, default none). "" turns tracing off, and so does
	// OTEL_SDK_DISABLED=true.
	TracesEndpoint string
	// TracesSampler decides which traces are kept (OTEL_TRACES_SAMPLER:
	// always_on, always_off, traceidratio, parentbased_always_on,
	// parentbased_always_off or parentbased_traceidratio; default
	// parentbased_always_on); TracesSamplerRatio is the share of traces
	// the ratio samplers keep (OTEL_TRACES_SAMPLER_ARG, 0-1, default 1).
	TracesSampler      string
	TracesSamplerRatio float64
	// SentryDSN is the Sentry project that internal errors and panics are
	// reported to (SENTRY_DSN, or the trimmed content of the file named by
	// SENTRY_DSN_FILE; https://KEY@HOST/PROJECT; default none: no
	// reports).
	SentryDSN string

	// BcryptCost is the bcrypt work factor of password hashes (BCRYPT_COST,
	// default 12, 4-31; at least 10 in production). Each step doubles the
	// time a hash takes.
	BcryptCost int

	// AdminEmails are the email addresses of the administrators
	// (ADMIN_EMAILS, comma-separated, lower-cased, default none).
	AdminEmails []string
	// RequireEmailVerification makes registration reveal nothing and
	// refuses signing in before the address is verified
	// (REQUIRE_EMAIL_VERIFICATION, true/false/1/0/yes/no, default false in
	// development and true in production).
	RequireEmailVerification bool
	// MailRecipientInterval is the least time between two mails of one
	// kind a stranger can trigger to one address: verification resends,
	// sign-up notices, password resets, email-change links
	// (MAIL_RECIPIENT_INTERVAL, default 10m, 1m-24h).
	MailRecipientInterval time.Duration

	// Introspection turns GraphQL introspection on (GRAPHQL_INTROSPECTION,
	// true/false/1/0/yes/no, default true in development and false in
	// production).
	Introspection bool

	// APQCacheBytes bounds the documents registered by automatic persisted
	// queries, in bytes (APQ_CACHE_BYTES, default 8 MiB, 1024-2^36).
	APQCacheBytes int64
	// ReadCacheBytes bounds the read cache's kept answers, in bytes
	// (READ_CACHE_BYTES, default 64 MiB, 0 turns it off, else
	// 1024-2^36): past it the server executes queries as if there were no
	// cache.
	ReadCacheBytes int64
	// TrustedDocuments is the path of the manifest of trusted documents
	// (TRUSTED_DOCUMENTS, default none); serve loads it.
	TrustedDocuments string
	// TrustedDocumentsOnly refuses every document that is not trusted
	// (TRUSTED_DOCUMENTS_ONLY, default false). It needs TrustedDocuments,
	// and production or introspection off: the playground sends documents
	// of its own.
	TrustedDocumentsOnly bool

	// ShutdownTimeout is how long a graceful shutdown waits for in-flight
	// requests to finish (SHUTDOWN_TIMEOUT, Go duration, default 15s, > 0);
	// a running scheduler job is waited for up to its own timeout.
	ShutdownTimeout time.Duration

	// WSInitTimeout is how long a WebSocket client may take to send
	// connection_init (WS_INIT_TIMEOUT, Go duration, default 5s, > 0).
	WSInitTimeout time.Duration
	// WSKeepAlive is the interval of WebSocket keep-alive pings
	// (WS_KEEPALIVE, Go duration, default 15s, > 0).
	WSKeepAlive time.Duration
	// WSMaxConnsPerAddress bounds the WebSockets and subscription streams
	// over HTTP open at once from one client address, counted together
	// (WS_MAX_CONNECTIONS_PER_ADDRESS, default 100, 1-100000).
	WSMaxConnsPerAddress int
	// WSMaxOperations bounds the operations running at once on one
	// WebSocket (WS_MAX_OPERATIONS, default 100, 1-10000).
	WSMaxOperations int
	// BatchMax bounds the operations of one batched POST /graphql
	// (BATCH_MAX, default 10, 1-1000).
	BatchMax int
	// RateLimitAnonymous, RateLimitUser and RateLimitAdmin are the cost
	// budgets of a client address (anonymous requests) and of a user by
	// role (RATE_LIMIT_ANONYMOUS, _USER, _ADMIN: points/window, such as
	// 30000/1m; defaults 30000/1m, 120000/1m, 600000/1m).
	RateLimitAnonymous, RateLimitUser, RateLimitAdmin Budget
	// RateLimitMutationCost and RateLimitSubscriptionCost are added to a
	// mutation's and a subscription's complexity
	// (RATE_LIMIT_MUTATION_COST, RATE_LIMIT_SUBSCRIPTION_COST, default 10,
	// 0-5000).
	RateLimitMutationCost, RateLimitSubscriptionCost int

	// DataDir is the directory of the development secret key file
	// DataDir/secret_key (DATA_DIR, default "data").
	DataDir string

	// MarketSource is the live market feed (MARKET_SOURCE, simulated,
	// defillama or none, default simulated).
	MarketSource string
	// MarketPollInterval is how often the feed is polled
	// (MARKET_POLL_INTERVAL, Go duration, default 10s for simulated and 5m
	// for defillama).
	MarketPollInterval time.Duration
	// MarketSeed seeds the simulated feed (MARKET_SEED, default 1): the same
	// seed gives the same market.
	MarketSeed uint64
	// MarketSimSpeed is how many times faster than the clock the simulated
	// market moves between polls (MARKET_SIM_SPEED, 1-100000, default 8640:
	// a market day per ten-second poll, so lending scores move within a
	// minute).
	MarketSimSpeed int
	// MarketHistoryDays is how many days of daily history the feed loads
	// into a database that has none (MARKET_HISTORY_DAYS, default 400,
	// 0-3650; 0 loads none).
	MarketHistoryDays int
	// DefiLlamaURL is the base URL of the DefiLlama yields API
	// (DEFILLAMA_URL, or the file named by DEFILLAMA_URL_FILE, since a paid
	// plan's URL carries its API key; default https://yields.llama.fi).
	DefiLlamaURL string
	// LiquidityTierUSD are the TVLs in USD from which a protocol's
	// liquidity tier is 0, 1 and 2 (LIQUIDITY_TIER_USD, three descending
	// decimals, default 50000000,10000000,1000000).
	LiquidityTierUSD [3]obsqra.Decimal

	// PruneInterval is how often the prune job removes expired events and
	// old job runs (PRUNE_INTERVAL, Go duration, default 1h).
	PruneInterval time.Duration
	// DecisionAuditInterval is how often the decision-audit job re-verifies
	// the whole decision log (DECISION_AUDIT_INTERVAL, Go duration, default
	// 1h).
	DecisionAuditInterval time.Duration
	// EventRetention is how long outbox events are kept for subscribers
	// resuming from a cursor (EVENT_RETENTION, Go duration, default 24h).
	EventRetention time.Duration

	// PredictionWindowDays is the default forecast horizon
	// (PREDICTION_WINDOW_DAYS, whole days, 1-365, default 7).
	PredictionWindowDays int
	// ForecastRefreshInterval is how often the forecast job runs
	// (FORECAST_REFRESH_INTERVAL, Go duration, default 1h).
	ForecastRefreshInterval time.Duration
	// OutcomeScoringInterval is how often the outcome job runs
	// (OUTCOME_SCORING_INTERVAL, Go duration, default 1h).
	OutcomeScoringInterval time.Duration
	// BacktestWindowDays is the default and largest backtest window
	// (BACKTEST_WINDOW_DAYS, whole days, 1-3650, default 90).
	BacktestWindowDays int
	// RebalanceGasUSD is the gas cost of one rebalance trade in USD
	// (REBALANCE_GAS_USD, 0-1000, default 0.50).
	RebalanceGasUSD float64
	// RebalanceSlippageBps is the trading cost in bps of each traded amount
	// (REBALANCE_SLIPPAGE_BPS, 0-10000, default 10).
	RebalanceSlippageBps int
	// RebalanceCheckInterval is how often the rebalance job runs
	// (REBALANCE_CHECK_INTERVAL_HOURS, whole hours, 1-8760, default 24).
	RebalanceCheckInterval time.Duration

	// StarknetRPCURLs are the Starknet JSON-RPC endpoints, in failover
	// order (STARKNET_RPC_URL, or the file named by STARKNET_RPC_URL_FILE,
	// since a provider's URL often carries its API key; comma-separated
	// http(s) URLs, default none).
	StarknetRPCURLs []string
	// StarknetNetwork is sepolia or mainnet (STARKNET_NETWORK, default
	// sepolia).
	StarknetNetwork string
	// RiskEngineAddress is the deployed RiskEngine contract, or nil
	// (RISK_ENGINE_ADDRESS, a Starknet address, default none).
	RiskEngineAddress *obsqra.Felt
	// TxWatchInterval is how often the watcher polls (TX_WATCH_INTERVAL,
	// Go duration, default 15s).
	TxWatchInterval time.Duration
	// TxDropAfter is how long an unknown transaction is waited for
	// (TX_DROP_AFTER, Go duration, default 30m).
	TxDropAfter time.Duration

	// LiveSubscriptionBufferBytes is how many bytes of events may wait for
	// one subscriber (LIVE_SUBSCRIPTION_BUFFER_BYTES, bytes, 1024-2^36,
	// default 1048576); LiveConnectionBufferBytes for one connection
	// (LIVE_CONNECTION_BUFFER_BYTES, default 2097152),
	// LiveAddressBufferBytes for one client address
	// (LIVE_ADDRESS_BUFFER_BYTES, default 16777216), and
	// LiveTotalBufferBytes for the whole server (LIVE_TOTAL_BUFFER_BYTES,
	// default 268435456). See live.Limits.
	LiveSubscriptionBufferBytes int64
	LiveConnectionBufferBytes   int64
	LiveAddressBufferBytes      int64
	LiveTotalBufferBytes        int64
	// LiveSubscriptionsPerUser is how many subscriptions one signed-in user
	// may hold (LIVE_SUBSCRIPTIONS_PER_USER, 1-100000, default 200).
	LiveSubscriptionsPerUser int
	// LiveSubscriptionsPerAddress is how many subscriptions may be held
	// for one client address (LIVE_SUBSCRIPTIONS_PER_ADDRESS, 1-1000000,
	// default 1000).
	LiveSubscriptionsPerAddress int
	// LiveSubscriptions is how many subscriptions the server holds
	// (LIVE_SUBSCRIPTIONS, 1-1000000, default 20000).
	LiveSubscriptions int

	// SMTP is the server mail is sent through (SMTP_URL, or the trimmed
	// content of the file named by SMTP_URL_FILE; see the SMTP type for
	// its forms): nil when unset, and then, in development, mails are
	// written to the log instead, links and all. Required in production,
	// where smtp+insecure:// is refused.
	SMTP *SMTP
	// MailFrom is the From of every mail, "Name <address>" or an address
	// (MAIL_FROM, default "Obsqra <noreply@localhost>" in development;
	// required in production).
	MailFrom string
	// PublicAppURL is the frontend's base URL, without a trailing slash:
	// links in mails are PublicAppURL/verify-email?token=… and the like
	// (PUBLIC_APP_URL, default http://localhost:5173 in development;
	// required in production, and https there).
	PublicAppURL string
	// PublicAPIURL is this server's own public base URL, without a
	// trailing slash: the one-click unsubscribe link of alert mails is
	// PublicAPIURL/unsubscribe?token=… (PUBLIC_API_URL, default
	// http://localhost:API_PORT in development; required in production,
	// and https there).
	PublicAPIURL string
	// AlertRiskDelta is the rise of a protocol's risk score, in points,
	// over its lowest score of the previous 24 hours, that alerts its
	// holders (ALERT_RISK_DELTA, 1-100, default 10).
	AlertRiskDelta int
	// AlertMinInterval is the least time between two alert mails to one
	// user; alerts in between go out as one digest (ALERT_MIN_INTERVAL,
	// 1m-24h, default 1h).
	AlertMinInterval time.Duration
}

// Load reads the configuration through getenv, which is os.Getenv in the
// server and a map lookup in tests. An empty value counts as unset. Every
// problem found is reported, each naming its variable, in one error; the
// configuration is returned only when there is none.
//
// Load reads the environment only through getenv; all it reads from disk
// are the files that the *_FILE variables of the secrets (SECRET_KEY_FILE,
// DATABASE_URL_FILE, MIGRATION_DATABASE_URL_FILE, STARKNET_RPC_URL_FILE,
// DEFILLAMA_URL_FILE, SENTRY_DSN_FILE, SMTP_URL_FILE) name, when they are set.
func Load(getenv func(string) string) (*Config, error) {
	return load(getenv, os.ReadFile)
}

// load is Load with the file reader injected.
func load(getenv func(string) string, readFile func(string) ([]byte, error)) (*Config, error) {
	l := &loader{getenv: getenv, readFile: readFile}
	c := &Config{}

	c.Environment = Development
	if v, ok := l.value("ENVIRONMENT"); ok {
		switch env := Environment(strings.ToLower(v)); env {
		case Development, Production:
			c.Environment = env
		default:
			l.problemf("ENVIRONMENT", "%q is not one of development, production", v)
		}
	}
	prod := c.Environment == Production

	c.APIHost = l.host("API_HOST", defaultAPIHost)
	c.APIPort = l.intRange("API_PORT", defaultAPIPort, 1, 65535, "a port number (1-65535)")
	c.MetricsAddr = l.listenAddr("METRICS_ADDR", defaultMetricsAddr)
	if _, port, err := net.SplitHostPort(c.MetricsAddr); err == nil && port == strconv.Itoa(c.APIPort) {
		l.problemf("METRICS_ADDR", "%q uses API_PORT %d: the metrics need a port of their own", c.MetricsAddr, c.APIPort)
	}

	c.DatabaseURL = l.databaseURL("DATABASE_URL", defaultDatabaseURL)
	c.MigrationDatabaseURL = l.databaseURL("MIGRATION_DATABASE_URL", c.DatabaseURL)
	if d, m := dialect(c.DatabaseURL), dialect(c.MigrationDatabaseURL); d != "" && m != "" && d != m {
		l.problemf("MIGRATION_DATABASE_URL", "is a %s database but DATABASE_URL is a %s database", m, d)
	}

	c.DBStatementTimeout = l.duration("DB_STATEMENT_TIMEOUT", defaultDBStatementTimeout)
	c.DBConnectTimeout = l.duration("DB_CONNECT_TIMEOUT", defaultDBConnectTimeout)
	c.DBMaxOpenConns = l.intRange("DB_MAX_OPEN_CONNS", defaultDBMaxOpenConns, 1, 10000, "a whole number from 1 to 10000")
	c.DBMaxIdleConns = l.intRange("DB_MAX_IDLE_CONNS", defaultDBMaxIdleConns, 1, 10000, "a whole number from 1 to 10000")
	c.DBConnMaxLifetime = l.duration("DB_CONN_MAX_LIFETIME", defaultDBConnMaxLifetime)
	c.DBConnMaxIdleTime = l.duration("DB_CONN_MAX_IDLE_TIME", defaultDBConnMaxIdleTime)
	c.RequestTimeout = l.duration("REQUEST_TIMEOUT", defaultRequestTimeout)

	c.SecretKey = l.secretKey()
	if prod && len(c.SecretKey) == 0 {
		l.problemf("SECRET_KEY", "is required in production (at least %d bytes; or set SECRET_KEY_FILE)", MinSecretKeyLen)
	}

	c.AccessTokenTTL = time.Duration(l.intRange("ACCESS_TOKEN_EXPIRE_MINUTES", defaultAccessTokenMinutes, 1, 1440,
		"a whole number of minutes from 1 to 1440")) * time.Minute
	c.RefreshTokenTTL = time.Duration(l.intRange("REFRESH_TOKEN_EXPIRE_DAYS", defaultRefreshTokenDays, 1, 365,
		"a whole number of days from 1 to 365")) * 24 * time.Hour

	corsDefault := defaultDevCORSOrigins
	if prod {
		corsDefault = ""
	}
	c.CORSOrigins = l.origins("CORS_ORIGINS", corsDefault)
	if prod && slices.Contains(c.CORSOrigins, "*") {
		l.problemf("CORS_ORIGINS", `"*" is not allowed in production; list the frontend origins`)
	}

	c.CORSAllowedHeaders = l.headerNames("CORS_ALLOWED_HEADERS")
	c.TrustedProxies = l.prefixes("TRUSTED_PROXIES")

	c.LogLevel = l.logLevel("LOG_LEVEL", slog.LevelInfo)
	formatDefault := LogFormatText
	if prod {
		formatDefault = LogFormatJSON
	}
	c.LogFormat = l.logFormat("LOG_FORMAT", formatDefault)
	c.TracesEndpoint = l.tracesEndpoint()
	c.TracesSampler, c.TracesSamplerRatio = l.tracesSampler()
	c.SentryDSN = l.sentryDSN()

	c.BcryptCost = l.intRange("BCRYPT_COST", defaultBcryptCost, 4, 31, "a bcrypt cost from 4 to 31")
	if prod && c.BcryptCost < minProductionBcryptCost {
		l.problemf("BCRYPT_COST", "%d is below %d, the minimum in production", c.BcryptCost, minProductionBcryptCost)
	}

	c.AdminEmails = l.emails("ADMIN_EMAILS")
	c.RequireEmailVerification = l.boolean("REQUIRE_EMAIL_VERIFICATION", prod)
	c.MailRecipientInterval = l.duration("MAIL_RECIPIENT_INTERVAL", defaultMailRecipientInterval)
	if c.MailRecipientInterval < time.Minute || c.MailRecipientInterval > 24*time.Hour {
		l.problemf("MAIL_RECIPIENT_INTERVAL", "%s is not from 1m to 24h", c.MailRecipientInterval)
	}
	c.Introspection = l.boolean("GRAPHQL_INTROSPECTION", !prod)
	c.APQCacheBytes = l.bufferBytes("APQ_CACHE_BYTES", defaultAPQCacheBytes)
	c.ReadCacheBytes = int64(l.intRange("READ_CACHE_BYTES", defaultReadCacheBytes, 0, 1<<36, "0 (off) or a whole number of bytes up to 68719476736"))
	if c.ReadCacheBytes > 0 && c.ReadCacheBytes < 1024 {
		l.problemf("READ_CACHE_BYTES", "%d is below 1024 bytes: 0 turns the cache off", c.ReadCacheBytes)
	}
	c.TrustedDocuments, _ = l.value("TRUSTED_DOCUMENTS")
	c.TrustedDocumentsOnly = l.boolean("TRUSTED_DOCUMENTS_ONLY", false)
	if c.TrustedDocumentsOnly && c.TrustedDocuments == "" {
		l.problemf("TRUSTED_DOCUMENTS_ONLY", "is true but TRUSTED_DOCUMENTS names no manifest")
	}
	if c.TrustedDocumentsOnly && !prod && c.Introspection {
		l.problemf("TRUSTED_DOCUMENTS_ONLY", "is true in development with introspection on: the playground sends its own documents; "+
			"set GRAPHQL_INTROSPECTION=false or ENVIRONMENT=production")
	}
	c.ShutdownTimeout = l.duration("SHUTDOWN_TIMEOUT", defaultShutdownTimeout)
	c.WSInitTimeout = l.duration("WS_INIT_TIMEOUT", defaultWSInitTimeout)
	c.WSKeepAlive = l.duration("WS_KEEPALIVE", defaultWSKeepAlive)
	c.WSMaxConnsPerAddress = l.intRange("WS_MAX_CONNECTIONS_PER_ADDRESS", defaultWSMaxConnsPerAddr, 1, 100000, "a whole number from 1 to 100000")
	c.WSMaxOperations = l.intRange("WS_MAX_OPERATIONS", defaultWSMaxOperations, 1, 10000, "a whole number from 1 to 10000")
	c.BatchMax = l.intRange("BATCH_MAX", defaultBatchMax, 1, 1000, "a whole number from 1 to 1000")
	c.RateLimitAnonymous = l.budget("RATE_LIMIT_ANONYMOUS", defaultRateLimitAnonymous)
	c.RateLimitUser = l.budget("RATE_LIMIT_USER", defaultRateLimitUser)
	c.RateLimitAdmin = l.budget("RATE_LIMIT_ADMIN", defaultRateLimitAdmin)
	c.RateLimitMutationCost = l.intRange("RATE_LIMIT_MUTATION_COST", defaultRateLimitOpCost, 0, 5000, "a whole number from 0 to 5000")
	c.RateLimitSubscriptionCost = l.intRange("RATE_LIMIT_SUBSCRIPTION_COST", defaultRateLimitOpCost, 0, 5000, "a whole number from 0 to 5000")

	c.DataDir = defaultDataDir
	if v, ok := l.value("DATA_DIR"); ok {
		c.DataDir = v
	}

	c.MarketSource = defaultMarketSource
	if v, ok := l.value("MARKET_SOURCE"); ok {
		switch v = strings.ToLower(v); v {
		case "simulated", "defillama", "none":
			c.MarketSource = v
		default:
			l.problemf("MARKET_SOURCE", "%q is not one of simulated, defillama, none", v)
		}
	}
	pollDefault := defaultSimulatedPoll
	if c.MarketSource == "defillama" {
		pollDefault = defaultDefiLlamaPoll
	}
	c.MarketPollInterval = l.duration("MARKET_POLL_INTERVAL", pollDefault)
	c.MarketSeed = uint64(l.intRange("MARKET_SEED", 1, 0, 1<<31-1, "a whole number from 0 to 2147483647"))
	c.MarketSimSpeed = l.intRange("MARKET_SIM_SPEED", defaultSimSpeed, 1, 100000, "a whole number from 1 to 100000")
	c.MarketHistoryDays = l.intRange("MARKET_HISTORY_DAYS", defaultHistoryDays, 0, 3650, "a whole number of days from 0 to 3650")
	c.DefiLlamaURL = l.httpURL("DEFILLAMA_URL", defaultDefiLlamaURL)
	c.LiquidityTierUSD = l.tiers("LIQUIDITY_TIER_USD", defaultLiquidityTiers)
	c.PruneInterval = l.duration("PRUNE_INTERVAL", defaultPruneInterval)
	c.DecisionAuditInterval = l.duration("DECISION_AUDIT_INTERVAL", defaultAuditInterval)
	c.EventRetention = l.duration("EVENT_RETENTION", defaultEventRetention)
	c.PredictionWindowDays = l.intRange("PREDICTION_WINDOW_DAYS", defaultPredictionDays, 1, 365, "a whole number of days from 1 to 365")
	c.ForecastRefreshInterval = l.duration("FORECAST_REFRESH_INTERVAL", defaultForecastRefresh)
	c.OutcomeScoringInterval = l.duration("OUTCOME_SCORING_INTERVAL", defaultOutcomeScoring)
	c.BacktestWindowDays = l.intRange("BACKTEST_WINDOW_DAYS", defaultBacktestWindowDays, 1, 3650, "a whole number of days from 1 to 3650")
	c.RebalanceGasUSD = l.usd("REBALANCE_GAS_USD", defaultRebalanceGasUSD, 1000)
	c.RebalanceSlippageBps = l.intRange("REBALANCE_SLIPPAGE_BPS", defaultSlippageBps, 0, 10000, "a whole number of bps from 0 to 10000")
	c.RebalanceCheckInterval = time.Duration(l.intRange("REBALANCE_CHECK_INTERVAL_HOURS", defaultRebalanceHours, 1, 8760,
		"a whole number of hours from 1 to 8760")) * time.Hour
	c.StarknetRPCURLs = l.httpURLs("STARKNET_RPC_URL")
	c.StarknetNetwork = defaultStarknetNetwork
	if v, ok := l.value("STARKNET_NETWORK"); ok {
		switch v = strings.ToLower(v); v {
		case "sepolia", "mainnet":
			c.StarknetNetwork = v
		default:
			l.problemf("STARKNET_NETWORK", "%q is not one of sepolia, mainnet", v)
		}
	}
	if v, ok := l.value("RISK_ENGINE_ADDRESS"); ok {
		a, err := obsqra.ParseAddress(v)
		if err != nil {
			l.problemf("RISK_ENGINE_ADDRESS", "%s", obsqra.ErrorMessage(err))
		} else {
			c.RiskEngineAddress = &a
		}
	}
	c.TxWatchInterval = l.duration("TX_WATCH_INTERVAL", defaultTxWatchInterval)
	c.TxDropAfter = l.duration("TX_DROP_AFTER", defaultTxDropAfter)
	c.LiveSubscriptionBufferBytes = l.bufferBytes("LIVE_SUBSCRIPTION_BUFFER_BYTES", defaultLiveSubscriptionBytes)
	c.LiveConnectionBufferBytes = l.bufferBytes("LIVE_CONNECTION_BUFFER_BYTES", defaultLiveConnectionBytes)
	c.LiveAddressBufferBytes = l.bufferBytes("LIVE_ADDRESS_BUFFER_BYTES", defaultLiveAddressBytes)
	c.LiveTotalBufferBytes = l.bufferBytes("LIVE_TOTAL_BUFFER_BYTES", defaultLiveTotalBytes)
	c.LiveSubscriptionsPerUser = l.intRange("LIVE_SUBSCRIPTIONS_PER_USER", defaultLiveSubscriptionsPerUser, 1, 100000,
		"a whole number from 1 to 100000")
	c.LiveSubscriptionsPerAddress = l.intRange("LIVE_SUBSCRIPTIONS_PER_ADDRESS", defaultLiveSubscriptionsPerAddr, 1, 1000000,
		"a whole number from 1 to 1000000")
	c.LiveSubscriptions = l.intRange("LIVE_SUBSCRIPTIONS", defaultLiveSubscriptions, 1, 1000000,
		"a whole number from 1 to 1000000")

	c.SMTP = l.smtp(prod)
	_, smtpSet := l.value("SMTP_URL")
	_, smtpFileSet := l.value("SMTP_URL_FILE")
	if prod && !smtpSet && !smtpFileSet {
		l.problemf("SMTP_URL", "is required in production (or set SMTP_URL_FILE): without it no mail would go out")
	}
	mailFromDefault, appURLDefault := defaultMailFrom, defaultPublicAppURL
	if prod {
		mailFromDefault, appURLDefault = "", ""
	}
	c.MailFrom = l.mailFrom("MAIL_FROM", mailFromDefault)
	if prod && c.MailFrom == "" {
		l.problemf("MAIL_FROM", "is required in production, e.g. Obsqra <noreply@example.com>")
	}
	c.PublicAppURL = l.publicAppURL("PUBLIC_APP_URL", appURLDefault)
	switch {
	case prod && c.PublicAppURL == "":
		l.problemf("PUBLIC_APP_URL", "is required in production: the frontend's https:// base URL, which links in mails lead to")
	case prod && !strings.HasPrefix(c.PublicAppURL, "https://"):
		l.problemf("PUBLIC_APP_URL", "is not https:// (production refuses links in mails over plain http)")
	}
	apiURLDefault := "http://localhost:" + strconv.Itoa(c.APIPort)
	if prod {
		apiURLDefault = ""
	}
	c.PublicAPIURL = l.publicAppURL("PUBLIC_API_URL", apiURLDefault)
	switch {
	case prod && c.PublicAPIURL == "":
		l.problemf("PUBLIC_API_URL", "is required in production: this server's https:// base URL, which the unsubscribe links of alert mails lead to")
	case prod && !strings.HasPrefix(c.PublicAPIURL, "https://"):
		l.problemf("PUBLIC_API_URL", "is not https:// (production refuses links in mails over plain http)")
	}
	c.AlertRiskDelta = l.intRange("ALERT_RISK_DELTA", defaultAlertRiskDelta, 1, 100, "a whole number of points from 1 to 100")
	c.AlertMinInterval = l.duration("ALERT_MIN_INTERVAL", defaultAlertMinInterval)
	if c.AlertMinInterval < time.Minute || c.AlertMinInterval > 24*time.Hour {
		l.problemf("ALERT_MIN_INTERVAL", "%s is not from 1m to 24h", c.AlertMinInterval)
		c.AlertMinInterval = defaultAlertMinInterval
	}

	if len(l.problems) > 0 {
		return nil, errors.Join(l.problems...)
	}
	return c, nil
}

// Addr returns the address the HTTP server listens on, host:port (with
// brackets around an IPv6 host).
func (c *Config) Addr() string {
	return net.JoinHostPort(c.APIHost, strconv.Itoa(c.APIPort))
}

// LogValue implements slog.LogValuer: a summary for the startup log line. It
// never includes the secret key, the admin addresses, nor passwords inside
// the database URLs.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("environment", string(c.Environment)),
		slog.String("addr", c.Addr()),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("migration_database_url", redactURL(c.MigrationDatabaseURL)),
		slog.Duration("db_statement_timeout", c.DBStatementTimeout),
		slog.Duration("db_connect_timeout", c.DBConnectTimeout),
		slog.Int("db_max_open_conns", c.DBMaxOpenConns),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Bool("secret_key_set", len(c.SecretKey) > 0),
		slog.Duration("access_token_ttl", c.AccessTokenTTL),
		slog.Duration("refresh_token_ttl", c.RefreshTokenTTL),
		slog.Any("cors_origins", c.CORSOrigins),
		slog.Any("cors_allowed_headers", c.CORSAllowedHeaders),
		slog.Any("trusted_proxies", c.TrustedProxies),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", string(c.LogFormat)),
		slog.Bool("traces", c.TracesEndpoint != ""),
		slog.String("traces_sampler", c.TracesSampler),
		slog.Bool("sentry", c.SentryDSN != ""),
		slog.Int("bcrypt_cost", c.BcryptCost),
		slog.Int("admin_emails", len(c.AdminEmails)),
		slog.Bool("require_email_verification", c.RequireEmailVerification),
		slog.Bool("introspection", c.Introspection),
		slog.Int64("apq_cache_bytes", c.APQCacheBytes),
		slog.Int64("read_cache_bytes", c.ReadCacheBytes),
		slog.String("trusted_documents", c.TrustedDocuments),
		slog.Bool("trusted_documents_only", c.TrustedDocumentsOnly),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("ws_init_timeout", c.WSInitTimeout),
		slog.Duration("ws_keepalive", c.WSKeepAlive),
		slog.Int("ws_max_connections_per_address", c.WSMaxConnsPerAddress),
		slog.Int("ws_max_operations", c.WSMaxOperations),
		slog.Int("batch_max", c.BatchMax),
		slog.String("data_dir", c.DataDir),
		slog.String("market_source", c.MarketSource),
		slog.Duration("market_poll_interval", c.MarketPollInterval),
		slog.Int("market_history_days", c.MarketHistoryDays),
		slog.Duration("prune_interval", c.PruneInterval),
		slog.Duration("event_retention", c.EventRetention),
		slog.String("smtp", c.SMTP.summary()),
		slog.String("mail_from", c.MailFrom),
		slog.String("public_app_url", c.PublicAppURL),
		slog.String("public_api_url", c.PublicAPIURL),
		slog.Int("alert_risk_delta", c.AlertRiskDelta),
		slog.Duration("alert_min_interval", c.AlertMinInterval),
	)
}

// redactURL returns the database URL s with the password of its user info
// and any "password" query parameter replaced by "xxxxx". A URL that does
// not parse is reduced to its scheme, since where its password starts is
// unknown.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		scheme, _, _ := strings.Cut(s, ":")
		return scheme + ":[unparsable, hidden]"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
