package config

import (
	"github.com/obsqra/obsqra"

	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv that reads m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// key32 is a secret key of exactly the minimum length.
const key32 = "0123456789abcdef0123456789abcdef"

// prod returns a valid production environment plus the given variables.
func prod(kv ...string) map[string]string {
	m := map[string]string{"ENVIRONMENT": "production", "SECRET_KEY": key32,
		"SMTP_URL": "smtp://mailer:pw@smtp.example.com", "MAIL_FROM": "Obsqra <noreply@example.com>", "PUBLIC_APP_URL": "https://app.example.com",
		"PUBLIC_API_URL": "https://api.example.com"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want *Config
	}{
		{"development", nil, &Config{
			Environment:               Development,
			APIHost:                   "0.0.0.0",
			APIPort:                   8000,
			MetricsAddr:               "127.0.0.1:9090",
			DatabaseURL:               "sqlite:data/obsqra.db",
			MigrationDatabaseURL:      "sqlite:data/obsqra.db",
			DBStatementTimeout:        5 * time.Second,
			DBConnectTimeout:          5 * time.Second,
			DBMaxOpenConns:            20,
			DBMaxIdleConns:            10,
			DBConnMaxLifetime:         30 * time.Minute,
			DBConnMaxIdleTime:         5 * time.Minute,
			RequestTimeout:            10 * time.Second,
			AccessTokenTTL:            30 * time.Minute,
			RefreshTokenTTL:           30 * 24 * time.Hour,
			CORSOrigins:               []string{"http://localhost:3000", "http://localhost:5173", "http://localhost:8000"},
			LogLevel:                  slog.LevelInfo,
			LogFormat:                 LogFormatText,
			TracesSampler:             "parentbased_always_on",
			TracesSamplerRatio:        1,
			BcryptCost:                12,
			Introspection:             true,
			APQCacheBytes:             8 << 20,
			ReadCacheBytes:            64 << 20,
			MailRecipientInterval:     10 * time.Minute,
			ShutdownTimeout:           15 * time.Second,
			WSInitTimeout:             5 * time.Second,
			WSKeepAlive:               15 * time.Second,
			WSMaxConnsPerAddress:      100,
			WSMaxOperations:           100,
			BatchMax:                  10,
			RateLimitAnonymous:        Budget{Points: 30000, Window: time.Minute},
			RateLimitUser:             Budget{Points: 120000, Window: time.Minute},
			RateLimitAdmin:            Budget{Points: 600000, Window: time.Minute},
			RateLimitMutationCost:     10,
			RateLimitSubscriptionCost: 10,
			DataDir:                   "data",
			MarketSource:              "simulated",
			MarketPollInterval:        10 * time.Second,
			MarketSeed:                1,
			MarketSimSpeed:            8640,
			MarketHistoryDays:         400,
			DefiLlamaURL:              "https://yields.llama.fi",
			LiquidityTierUSD:          [3]obsqra.Decimal{obsqra.MustDecimal("50000000"), obsqra.MustDecimal("10000000"), obsqra.MustDecimal("1000000")},
			PruneInterval:             time.Hour,
			DecisionAuditInterval:     time.Hour,
			EventRetention:            24 * time.Hour,

			PredictionWindowDays:    7,
			ForecastRefreshInterval: time.Hour,
			OutcomeScoringInterval:  time.Hour,
			BacktestWindowDays:      90,
			RebalanceGasUSD:         0.5,
			RebalanceSlippageBps:    10,
			RebalanceCheckInterval:  24 * time.Hour,
			StarknetNetwork:         "sepolia",
			TxWatchInterval:         15 * time.Second,
			TxDropAfter:             30 * time.Minute,

			LiveSubscriptionBufferBytes: 1 << 20,
			LiveConnectionBufferBytes:   2 << 20,
			LiveAddressBufferBytes:      16 << 20,
			LiveTotalBufferBytes:        256 << 20,
			LiveSubscriptionsPerUser:    200,
			LiveSubscriptionsPerAddress: 1000,
			LiveSubscriptions:           20000,

			MailFrom:         "Obsqra <noreply@localhost>",
			PublicAppURL:     "http://localhost:5173",
			PublicAPIURL:     "http://localhost:8000",
			AlertRiskDelta:   10,
			AlertMinInterval: time.Hour,
		}},
		{"empty values count as unset", map[string]string{"API_PORT": "", "ENVIRONMENT": "  "}, nil},
		{"production", prod(), &Config{
			Environment:               Production,
			APIHost:                   "0.0.0.0",
			APIPort:                   8000,
			MetricsAddr:               "127.0.0.1:9090",
			DatabaseURL:               "sqlite:data/obsqra.db",
			MigrationDatabaseURL:      "sqlite:data/obsqra.db",
			DBStatementTimeout:        5 * time.Second,
			DBConnectTimeout:          5 * time.Second,
			DBMaxOpenConns:            20,
			DBMaxIdleConns:            10,
			DBConnMaxLifetime:         30 * time.Minute,
			DBConnMaxIdleTime:         5 * time.Minute,
			RequestTimeout:            10 * time.Second,
			SecretKey:                 []byte(key32),
			AccessTokenTTL:            30 * time.Minute,
			RefreshTokenTTL:           30 * 24 * time.Hour,
			CORSOrigins:               nil,
			LogLevel:                  slog.LevelInfo,
			LogFormat:                 LogFormatJSON,
			TracesSampler:             "parentbased_always_on",
			TracesSamplerRatio:        1,
			BcryptCost:                12,
			Introspection:             false,
			RequireEmailVerification:  true,
			APQCacheBytes:             8 << 20,
			ReadCacheBytes:            64 << 20,
			MailRecipientInterval:     10 * time.Minute,
			ShutdownTimeout:           15 * time.Second,
			WSInitTimeout:             5 * time.Second,
			WSKeepAlive:               15 * time.Second,
			WSMaxConnsPerAddress:      100,
			WSMaxOperations:           100,
			BatchMax:                  10,
			RateLimitAnonymous:        Budget{Points: 30000, Window: time.Minute},
			RateLimitUser:             Budget{Points: 120000, Window: time.Minute},
			RateLimitAdmin:            Budget{Points: 600000, Window: time.Minute},
			RateLimitMutationCost:     10,
			RateLimitSubscriptionCost: 10,
			DataDir:                   "data",
			MarketSource:              "simulated",
			MarketPollInterval:        10 * time.Second,
			MarketSeed:                1,
			MarketSimSpeed:            8640,
			MarketHistoryDays:         400,
			DefiLlamaURL:              "https://yields.llama.fi",
			LiquidityTierUSD:          [3]obsqra.Decimal{obsqra.MustDecimal("50000000"), obsqra.MustDecimal("10000000"), obsqra.MustDecimal("1000000")},
			PruneInterval:             time.Hour,
			DecisionAuditInterval:     time.Hour,
			EventRetention:            24 * time.Hour,

			PredictionWindowDays:    7,
			ForecastRefreshInterval: time.Hour,
			OutcomeScoringInterval:  time.Hour,
			BacktestWindowDays:      90,
			RebalanceGasUSD:         0.5,
			RebalanceSlippageBps:    10,
			RebalanceCheckInterval:  24 * time.Hour,
			StarknetNetwork:         "sepolia",
			TxWatchInterval:         15 * time.Second,
			TxDropAfter:             30 * time.Minute,

			LiveSubscriptionBufferBytes: 1 << 20,
			LiveConnectionBufferBytes:   2 << 20,
			LiveAddressBufferBytes:      16 << 20,
			LiveTotalBufferBytes:        256 << 20,
			LiveSubscriptionsPerUser:    200,
			LiveSubscriptionsPerAddress: 1000,
			LiveSubscriptions:           20000,

			SMTP:             &SMTP{Security: SMTPStartTLS, Host: "smtp.example.com", Port: 587, Username: "mailer", Password: "pw"},
			MailFrom:         "Obsqra <noreply@example.com>",
			PublicAppURL:     "https://app.example.com",
			PublicAPIURL:     "https://api.example.com",
			AlertRiskDelta:   10,
			AlertMinInterval: time.Hour,
		}},
	}
	tests[1].want = tests[0].want
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(env(tt.env))
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadValues(t *testing.T) {
	t.Parallel()
	riskEngine, err := obsqra.ParseAddress("0xabc")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(env(map[string]string{
		"ENVIRONMENT":                    " Production ",
		"API_HOST":                       "[::1]",
		"API_PORT":                       "9090",
		"METRICS_ADDR":                   "[::1]:9100",
		"DATABASE_URL":                   "postgres://app:pw@db:5432/obsqra?sslmode=require",
		"MIGRATION_DATABASE_URL":         "postgresql://owner:pw@db:5432/obsqra",
		"SECRET_KEY":                     "  " + key32 + "xyz  ",
		"ACCESS_TOKEN_EXPIRE_MINUTES":    "15",
		"REFRESH_TOKEN_EXPIRE_DAYS":      "7",
		"CORS_ORIGINS":                   "https://App.Example.com, https://admin.example.com:8443",
		"CORS_ALLOWED_HEADERS":           "X-Tenant-ID, x-feature-flags",
		"TRUSTED_PROXIES":                "10.0.0.0/8, 192.0.2.7",
		"LOG_LEVEL":                      "DEBUG",
		"LOG_FORMAT":                     "Text",
		"OTEL_EXPORTER_OTLP_ENDPOINT":    "https://otlp.example:4318",
		"OTEL_TRACES_SAMPLER":            "TraceIDRatio",
		"OTEL_TRACES_SAMPLER_ARG":        "0.25",
		"SENTRY_DSN":                     "https://key@o1.ingest.sentry.io/42",
		"BCRYPT_COST":                    "10",
		"ADMIN_EMAILS":                   " Alice@Example.com ,, bob@example.org",
		"REQUIRE_EMAIL_VERIFICATION":     "yes",
		"MAIL_RECIPIENT_INTERVAL":        "30m",
		"GRAPHQL_INTROSPECTION":          "yes",
		"APQ_CACHE_BYTES":                "65536",
		"READ_CACHE_BYTES":               "0",
		"TRUSTED_DOCUMENTS":              "/etc/obsqra/persisted-documents.json",
		"TRUSTED_DOCUMENTS_ONLY":         "true",
		"SHUTDOWN_TIMEOUT":               "1m30s",
		"DB_STATEMENT_TIMEOUT":           "2s",
		"DB_CONNECT_TIMEOUT":             "3s",
		"DB_MAX_OPEN_CONNS":              "50",
		"DB_MAX_IDLE_CONNS":              "25",
		"DB_CONN_MAX_LIFETIME":           "1h",
		"DB_CONN_MAX_IDLE_TIME":          "1m",
		"REQUEST_TIMEOUT":                "4s",
		"WS_INIT_TIMEOUT":                "2s",
		"WS_KEEPALIVE":                   "1m",
		"WS_MAX_CONNECTIONS_PER_ADDRESS": "7",
		"WS_MAX_OPERATIONS":              "3",
		"BATCH_MAX":                      "4",
		"RATE_LIMIT_ANONYMOUS":           "50000/30s",
		"RATE_LIMIT_USER":                " 1000000 / 1h ",
		"RATE_LIMIT_ADMIN":               "10000/1s",
		"RATE_LIMIT_MUTATION_COST":       "0",
		"RATE_LIMIT_SUBSCRIPTION_COST":   "25",
		"DATA_DIR":                       "/var/lib/obsqra",
		"MARKET_SOURCE":                  "DefiLlama",
		"MARKET_SEED":                    "7",
		"MARKET_SIM_SPEED":               "1",
		"MARKET_HISTORY_DAYS":            "30",
		"DEFILLAMA_URL":                  "http://127.0.0.1:9999/",
		"LIQUIDITY_TIER_USD":             "100000000, 20000000.5, 0",
		"PRUNE_INTERVAL":                 "10m",
		"EVENT_RETENTION":                "48h",
		"PREDICTION_WINDOW_DAYS":         "14",
		"FORECAST_REFRESH_INTERVAL":      "30m",
		"OUTCOME_SCORING_INTERVAL":       "2h",
		"BACKTEST_WINDOW_DAYS":           "180",
		"REBALANCE_GAS_USD":              "1.25",
		"REBALANCE_SLIPPAGE_BPS":         "25",
		"REBALANCE_CHECK_INTERVAL_HOURS": "6",
		"STARKNET_RPC_URL":               "http://127.0.0.1:5050/rpc/v0_9, https://node.example.com/",
		"STARKNET_NETWORK":               "MAINNET",
		"RISK_ENGINE_ADDRESS":            "0x0ABC",
		"TX_WATCH_INTERVAL":              "5s",
		"TX_DROP_AFTER":                  "1h",
		"LIVE_SUBSCRIPTION_BUFFER_BYTES": "65536",
		"LIVE_CONNECTION_BUFFER_BYTES":   "131072",
		"LIVE_ADDRESS_BUFFER_BYTES":      "1048576",
		"LIVE_TOTAL_BUFFER_BYTES":        "67108864",
		"LIVE_SUBSCRIPTIONS_PER_USER":    "20",
		"LIVE_SUBSCRIPTIONS_PER_ADDRESS": "30",
		"LIVE_SUBSCRIPTIONS":             "40",
		"SMTP_URL":                       "smtps://mailer%40example.com:p%3Ass@smtp.example.com:2465/",
		"MAIL_FROM":                      "noreply@example.com",
		"PUBLIC_APP_URL":                 "https://app.example.com/obsqra/",
		"PUBLIC_API_URL":                 "https://api.example.com/",
		"ALERT_RISK_DELTA":               "15",
		"ALERT_MIN_INTERVAL":             "30m",
	}))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	want := &Config{
		Environment:               Production,
		APIHost:                   "::1",
		APIPort:                   9090,
		MetricsAddr:               "[::1]:9100",
		DatabaseURL:               "postgres://app:pw@db:5432/obsqra?sslmode=require",
		MigrationDatabaseURL:      "postgresql://owner:pw@db:5432/obsqra",
		DBStatementTimeout:        2 * time.Second,
		DBConnectTimeout:          3 * time.Second,
		DBMaxOpenConns:            50,
		DBMaxIdleConns:            25,
		DBConnMaxLifetime:         time.Hour,
		DBConnMaxIdleTime:         time.Minute,
		RequestTimeout:            4 * time.Second,
		SecretKey:                 []byte(key32 + "xyz"),
		AccessTokenTTL:            15 * time.Minute,
		RefreshTokenTTL:           7 * 24 * time.Hour,
		CORSOrigins:               []string{"https://app.example.com", "https://admin.example.com:8443"},
		CORSAllowedHeaders:        []string{"X-Tenant-ID", "x-feature-flags"},
		TrustedProxies:            []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")},
		LogLevel:                  slog.LevelDebug,
		LogFormat:                 LogFormatText,
		TracesEndpoint:            "https://otlp.example:4318/v1/traces",
		TracesSampler:             "traceidratio",
		TracesSamplerRatio:        0.25,
		SentryDSN:                 "https://key@o1.ingest.sentry.io/42",
		BcryptCost:                10,
		AdminEmails:               []string{"alice@example.com", "bob@example.org"},
		RequireEmailVerification:  true,
		MailRecipientInterval:     30 * time.Minute,
		Introspection:             true,
		APQCacheBytes:             65536,
		TrustedDocuments:          "/etc/obsqra/persisted-documents.json",
		TrustedDocumentsOnly:      true,
		ShutdownTimeout:           90 * time.Second,
		WSInitTimeout:             2 * time.Second,
		WSKeepAlive:               time.Minute,
		WSMaxConnsPerAddress:      7,
		WSMaxOperations:           3,
		BatchMax:                  4,
		RateLimitAnonymous:        Budget{Points: 50000, Window: 30 * time.Second},
		RateLimitUser:             Budget{Points: 1000000, Window: time.Hour},
		RateLimitAdmin:            Budget{Points: 10000, Window: time.Second},
		RateLimitMutationCost:     0,
		RateLimitSubscriptionCost: 25,
		DataDir:                   "/var/lib/obsqra",
		MarketSource:              "defillama",
		MarketPollInterval:        5 * time.Minute,
		MarketSeed:                7,
		MarketSimSpeed:            1,
		MarketHistoryDays:         30,
		DefiLlamaURL:              "http://127.0.0.1:9999",
		LiquidityTierUSD:          [3]obsqra.Decimal{obsqra.MustDecimal("100000000"), obsqra.MustDecimal("20000000.5"), obsqra.MustDecimal("0")},
		PruneInterval:             10 * time.Minute,
		DecisionAuditInterval:     time.Hour,
		EventRetention:            48 * time.Hour,

		PredictionWindowDays:    14,
		ForecastRefreshInterval: 30 * time.Minute,
		OutcomeScoringInterval:  2 * time.Hour,
		BacktestWindowDays:      180,
		RebalanceGasUSD:         1.25,
		RebalanceSlippageBps:    25,
		RebalanceCheckInterval:  6 * time.Hour,
		StarknetRPCURLs:         []string{"http://127.0.0.1:5050/rpc/v0_9", "https://node.example.com"},
		StarknetNetwork:         "mainnet",
		RiskEngineAddress:       &riskEngine,
		TxWatchInterval:         5 * time.Second,
		TxDropAfter:             time.Hour,

		LiveSubscriptionBufferBytes: 64 << 10,
		LiveConnectionBufferBytes:   128 << 10,
		LiveAddressBufferBytes:      1 << 20,
		LiveTotalBufferBytes:        64 << 20,
		LiveSubscriptionsPerUser:    20,
		LiveSubscriptionsPerAddress: 30,
		LiveSubscriptions:           40,

		SMTP:             &SMTP{Security: SMTPImplicitTLS, Host: "smtp.example.com", Port: 2465, Username: "mailer@example.com", Password: "p:ss"},
		MailFrom:         "noreply@example.com",
		PublicAppURL:     "https://app.example.com/obsqra",
		PublicAPIURL:     "https://api.example.com",
		AlertRiskDelta:   15,
		AlertMinInterval: 30 * time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v, want %+v", got, want)
	}
	if got, want := got.Addr(), "[::1]:9090"; got != want {
		t.Errorf("Addr() = %q, want %q", got, want)
	}
}

// TestLoadInvalid checks that each bad value is refused with a message that
// names its variable and says what is expected.
func TestLoadInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"port not a number", map[string]string{"API_PORT": "abc"}, `API_PORT: "abc" is not a port number (1-65535)`},
		{"market source", map[string]string{"MARKET_SOURCE": "coingecko"}, `MARKET_SOURCE: "coingecko" is not one of simulated, defillama, none`},
		{"market poll", map[string]string{"MARKET_POLL_INTERVAL": "10"}, `MARKET_POLL_INTERVAL: "10" is not a duration`},
		{"market history", map[string]string{"MARKET_HISTORY_DAYS": "5000"}, `MARKET_HISTORY_DAYS: "5000" is not a whole number of days from 0 to 3650`},
		{"defillama url", map[string]string{"DEFILLAMA_URL": "ftp://hunter2.example"}, `DEFILLAMA_URL: is not an http:// or https:// URL`},
		{"tiers count", map[string]string{"LIQUIDITY_TIER_USD": "5,1"}, `LIQUIDITY_TIER_USD: "5,1" must be three amounts in USD`},
		{"tiers order", map[string]string{"LIQUIDITY_TIER_USD": "1,5,0"}, `LIQUIDITY_TIER_USD: "1,5,0" must be descending`},
		{"tiers negative", map[string]string{"LIQUIDITY_TIER_USD": "5,1,-1"}, `LIQUIDITY_TIER_USD: "5,1,-1": "-1" is not an amount in USD`},
		{"mail cap too short", map[string]string{"MAIL_RECIPIENT_INTERVAL": "59s"}, `MAIL_RECIPIENT_INTERVAL: 59s is not from 1m to 24h`},
		{"mail cap too long", map[string]string{"MAIL_RECIPIENT_INTERVAL": "25h"}, `MAIL_RECIPIENT_INTERVAL: 25h0m0s is not from 1m to 24h`},
		{"read cache too small", map[string]string{"READ_CACHE_BYTES": "1023"}, `READ_CACHE_BYTES: 1023 is below 1024 bytes: 0 turns the cache off`},
		{"read cache past", map[string]string{"READ_CACHE_BYTES": "68719476737"}, `READ_CACHE_BYTES: "68719476737" is not 0 (off) or a whole number of bytes up to 68719476736`},
		{"apq cache too small", map[string]string{"APQ_CACHE_BYTES": "100"}, `APQ_CACHE_BYTES: "100" is not a whole number of bytes`},
		{"trusted only not a boolean", map[string]string{"TRUSTED_DOCUMENTS_ONLY": "maybe"}, `TRUSTED_DOCUMENTS_ONLY`},
		{"event retention", map[string]string{"EVENT_RETENTION": "0s"}, `EVENT_RETENTION: "0s" is not a positive duration`},
		{"prediction window", map[string]string{"PREDICTION_WINDOW_DAYS": "0"}, `PREDICTION_WINDOW_DAYS`},
		{"batch max zero", map[string]string{"BATCH_MAX": "0"}, `BATCH_MAX: "0" is not a whole number from 1 to 1000`},
		{"batch max past", map[string]string{"BATCH_MAX": "1001"}, `BATCH_MAX: "1001" is not a whole number from 1 to 1000`},
		{"budget below the least", map[string]string{"RATE_LIMIT_USER": "9999/1m"}, `RATE_LIMIT_USER: "9999/1m" is not points/window`},
		{"budget past the most", map[string]string{"RATE_LIMIT_USER": "1000000000001/1m"}, `RATE_LIMIT_USER: "1000000000001/1m" is not points/window`},
		{"budget window too short", map[string]string{"RATE_LIMIT_ANONYMOUS": "10000/999ms"}, `RATE_LIMIT_ANONYMOUS: "10000/999ms" is not points/window`},
		{"budget window too long", map[string]string{"RATE_LIMIT_ADMIN": "10000/25h"}, `RATE_LIMIT_ADMIN: "10000/25h" is not points/window`},
		{"budget without window", map[string]string{"RATE_LIMIT_ADMIN": "10000"}, `RATE_LIMIT_ADMIN: "10000" is not points/window`},
		{"mutation cost past", map[string]string{"RATE_LIMIT_MUTATION_COST": "5001"}, `RATE_LIMIT_MUTATION_COST: "5001" is not a whole number from 0 to 5000`},
		{"subscription cost negative", map[string]string{"RATE_LIMIT_SUBSCRIPTION_COST": "-1"}, `RATE_LIMIT_SUBSCRIPTION_COST: "-1" is not a whole number from 0 to 5000`},
		{"gas not a number", map[string]string{"REBALANCE_GAS_USD": "cheap"}, `REBALANCE_GAS_USD: "cheap" is not an amount in USD`},
		{"gas too high", map[string]string{"REBALANCE_GAS_USD": "5000"}, `REBALANCE_GAS_USD: "5000" is more than 1000 USD`},
		{"slippage", map[string]string{"REBALANCE_SLIPPAGE_BPS": "10001"}, `REBALANCE_SLIPPAGE_BPS`},
		{"rebalance hours", map[string]string{"REBALANCE_CHECK_INTERVAL_HOURS": "0"}, `REBALANCE_CHECK_INTERVAL_HOURS`},
		{"rpc url", map[string]string{"STARKNET_RPC_URL": "http://ok.example, ftp://rpc.example/v3/hunter2"}, `STARKNET_RPC_URL: entry 2 of 2 is not an http:// or https:// URL`},
		{"network", map[string]string{"STARKNET_NETWORK": "goerli"}, `STARKNET_NETWORK: "goerli" is not one of sepolia, mainnet`},
		{"risk engine", map[string]string{"RISK_ENGINE_ADDRESS": "0xZZ"}, `RISK_ENGINE_ADDRESS`},
		{"live buffer too small", map[string]string{"LIVE_SUBSCRIPTION_BUFFER_BYTES": "100"}, `LIVE_SUBSCRIPTION_BUFFER_BYTES: "100" is not a whole number of bytes from 1024`},
		{"live buffer with a unit", map[string]string{"LIVE_TOTAL_BUFFER_BYTES": "256MiB"}, `LIVE_TOTAL_BUFFER_BYTES: "256MiB" is not a whole number of bytes`},
		{"subscriptions per user", map[string]string{"LIVE_SUBSCRIPTIONS_PER_USER": "0"}, `LIVE_SUBSCRIPTIONS_PER_USER: "0" is not a whole number from 1 to 100000`},
		{"subscriptions per address", map[string]string{"LIVE_SUBSCRIPTIONS_PER_ADDRESS": "x"}, `LIVE_SUBSCRIPTIONS_PER_ADDRESS: "x" is not a whole number from 1 to 1000000`},
		{"metrics without port", map[string]string{"METRICS_ADDR": "127.0.0.1"}, `METRICS_ADDR: "127.0.0.1" is not host:port`},
		{"metrics port zero", map[string]string{"METRICS_ADDR": ":0"}, `METRICS_ADDR: ":0" is not host:port`},
		{"metrics bad host", map[string]string{"METRICS_ADDR": "a b:9090"}, `METRICS_ADDR: "a b:9090" is not host:port`},
		{"metrics on the api port", map[string]string{"METRICS_ADDR": ":8000"}, `METRICS_ADDR: ":8000" uses API_PORT 8000`},
		{"metrics default on the api port", map[string]string{"API_PORT": "9090"}, `METRICS_ADDR: "127.0.0.1:9090" uses API_PORT 9090`},
		{"port zero", map[string]string{"API_PORT": "0"}, `API_PORT: "0" is not a port number (1-65535)`},
		{"port too high", map[string]string{"API_PORT": "70000"}, `API_PORT: "70000" is not a port number (1-65535)`},
		{"environment", map[string]string{"ENVIRONMENT": "staging"}, `ENVIRONMENT: "staging" is not one of development, production`},
		{"duration word", map[string]string{"SHUTDOWN_TIMEOUT": "soon"}, `SHUTDOWN_TIMEOUT: "soon" is not a duration such as 15s or 2m`},
		{"request timeout without unit", map[string]string{"REQUEST_TIMEOUT": "10"}, `REQUEST_TIMEOUT: "10" is not a duration such as 15s or 2m`},
		{"statement timeout zero", map[string]string{"DB_STATEMENT_TIMEOUT": "0s"}, `DB_STATEMENT_TIMEOUT: "0s" is not a positive duration`},
		{"connect timeout", map[string]string{"DB_CONNECT_TIMEOUT": "-1s"}, `DB_CONNECT_TIMEOUT: "-1s" is not a positive duration`},
		{"pool size", map[string]string{"DB_MAX_OPEN_CONNS": "0"}, `DB_MAX_OPEN_CONNS: "0" is not a whole number from 1 to 10000`},
		{"duration without unit", map[string]string{"SHUTDOWN_TIMEOUT": "15"}, `SHUTDOWN_TIMEOUT: "15" is not a duration such as 15s or 2m`},
		{"duration zero", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, `SHUTDOWN_TIMEOUT: "0s" is not a positive duration`},
		{"duration negative", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, `SHUTDOWN_TIMEOUT: "-1s" is not a positive duration`},
		{"host with port", map[string]string{"API_HOST": "0.0.0.0:8000"}, `API_HOST: "0.0.0.0:8000" is not a host name or IP address`},
		{"access ttl zero", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, `ACCESS_TOKEN_EXPIRE_MINUTES: "0" is not a whole number of minutes from 1 to 1440`},
		{"access ttl too long", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "1441"}, `ACCESS_TOKEN_EXPIRE_MINUTES: "1441"`},
		{"access ttl fraction", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "1.5"}, `ACCESS_TOKEN_EXPIRE_MINUTES: "1.5"`},
		{"refresh ttl", map[string]string{"REFRESH_TOKEN_EXPIRE_DAYS": "366"}, `REFRESH_TOKEN_EXPIRE_DAYS: "366" is not a whole number of days from 1 to 365`},
		{"bcrypt too low", map[string]string{"BCRYPT_COST": "3"}, `BCRYPT_COST: "3" is not a bcrypt cost from 4 to 31`},
		{"bcrypt too high", map[string]string{"BCRYPT_COST": "32"}, `BCRYPT_COST: "32" is not a bcrypt cost from 4 to 31`},
		{"log level", map[string]string{"LOG_LEVEL": "trace"}, `LOG_LEVEL: "trace" is not one of debug, info, warn, error`},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, `LOG_FORMAT: "xml" is not one of text, json`},
		{"introspection", map[string]string{"GRAPHQL_INTROSPECTION": "maybe"}, `GRAPHQL_INTROSPECTION: "maybe" is not one of true, false, 1, 0, yes, no`},
		{"admin email", map[string]string{"ADMIN_EMAILS": "a@example.com,bob"}, `ADMIN_EMAILS: "bob" is not an email address`},
		{"admin email with name", map[string]string{"ADMIN_EMAILS": "Bob <bob@example.com>"}, `ADMIN_EMAILS: "bob <bob@example.com>" is not an email address`},
		{"database scheme", map[string]string{"DATABASE_URL": "mysql://root:hunter2@db/obsqra"}, `DATABASE_URL: does not start with postgres://, postgresql://, sqlite: or file:`},
		{"database bare path", map[string]string{"DATABASE_URL": "data/obsqra.db"}, `DATABASE_URL: does not start with`},
		{"database unparsable", map[string]string{"DATABASE_URL": "postgres://u:hunter2@db:port/x"}, `DATABASE_URL: is not a valid URL`},
		{"sqlite without file", map[string]string{"DATABASE_URL": "sqlite:"}, `DATABASE_URL: names no database file`},
		{"migration scheme", map[string]string{"MIGRATION_DATABASE_URL": "redis://db"}, `MIGRATION_DATABASE_URL: does not start with`},
		{"migration other dialect", map[string]string{"MIGRATION_DATABASE_URL": "postgres://owner@db/obsqra"}, `MIGRATION_DATABASE_URL: is a PostgreSQL database but DATABASE_URL is a SQLite database`},
		{"short key in development", map[string]string{"SECRET_KEY": "short"}, `SECRET_KEY: is 5 bytes long; it must be at least 32`},
		{"key and key file", map[string]string{"SECRET_KEY": key32, "SECRET_KEY_FILE": "/run/secrets/key"}, `SECRET_KEY_FILE: is set together with SECRET_KEY`},
		{"cors origin with path", map[string]string{"CORS_ORIGINS": "https://example.com/app"}, `CORS_ORIGINS: "https://example.com/app" is not an origin`},
		{"trusted proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,nginx"}, `TRUSTED_PROXIES: "nginx" is not a CIDR`},
		{"cors header with a colon", map[string]string{"CORS_ALLOWED_HEADERS": "X-Tenant-ID,X-Bad:"}, `CORS_ALLOWED_HEADERS: "X-Bad:" is not a header name`},
		{"cors header with a space", map[string]string{"CORS_ALLOWED_HEADERS": "X Tenant"}, `CORS_ALLOWED_HEADERS: "X Tenant" is not a header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(tt.env))
			if err == nil {
				t.Fatalf("Load() = %+v, want error containing %q", cfg, tt.want)
			}
			if cfg != nil {
				t.Errorf("Load() returned a config along with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load() error = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Load() error = %q reveals a password", err)
			}
		})
	}
}

func TestLoadProductionRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string // "" when the configuration is accepted
	}{
		{"missing secret key", map[string]string{"ENVIRONMENT": "production"}, "SECRET_KEY: is required in production"},
		{"short secret key", prod("SECRET_KEY", key32[:31]), "SECRET_KEY: is 31 bytes long; it must be at least 32"},
		{"wildcard origin", prod("CORS_ORIGINS", "https://app.example.com,*"), `CORS_ORIGINS: "*" is not allowed in production`},
		{"low bcrypt cost", prod("BCRYPT_COST", "9"), "BCRYPT_COST: 9 is below 10, the minimum in production"},
		{"bcrypt cost 10", prod("BCRYPT_COST", "10"), ""},
		{"debug logging", prod("LOG_LEVEL", "debug"), ""},
		{"introspection on purpose", prod("GRAPHQL_INTROSPECTION", "true"), ""},
		{"development allows all of it", map[string]string{"CORS_ORIGINS": "*", "BCRYPT_COST": "4"}, ""},
		{"trusted only without a manifest", prod("TRUSTED_DOCUMENTS_ONLY", "true"), "TRUSTED_DOCUMENTS_ONLY: is true but TRUSTED_DOCUMENTS names no manifest"},
		{"trusted only in production", prod("TRUSTED_DOCUMENTS_ONLY", "true", "TRUSTED_DOCUMENTS", "docs.json"), ""},
		{"trusted only with the playground", map[string]string{"TRUSTED_DOCUMENTS_ONLY": "true", "TRUSTED_DOCUMENTS": "docs.json"},
			"TRUSTED_DOCUMENTS_ONLY: is true in development with introspection on"},
		{"trusted only in development without introspection",
			map[string]string{"TRUSTED_DOCUMENTS_ONLY": "true", "TRUSTED_DOCUMENTS": "docs.json", "GRAPHQL_INTROSPECTION": "false"}, ""},
		{"trusted only, production with introspection on purpose",
			prod("TRUSTED_DOCUMENTS_ONLY", "true", "TRUSTED_DOCUMENTS", "docs.json", "GRAPHQL_INTROSPECTION", "true"), ""},
		{"no smtp server", prod("SMTP_URL", ""), "SMTP_URL: is required in production"},
		{"smtp server from a file", prod("SMTP_URL", "", "SMTP_URL_FILE", "/nonexistent/smtp_url"), "SMTP_URL_FILE: cannot read the file"},
		{"plain-text smtp", prod("SMTP_URL", "smtp+insecure://smtp.example.com:1025"), "SMTP_URL: sends mail and its password in plain text"},
		{"no mail from", prod("MAIL_FROM", ""), "MAIL_FROM: is required in production"},
		{"no public app url", prod("PUBLIC_APP_URL", ""), "PUBLIC_APP_URL: is required in production"},
		{"http public app url", prod("PUBLIC_APP_URL", "http://app.example.com"), "PUBLIC_APP_URL: is not https://"},
		{"development logs mails", map[string]string{"SMTP_URL": "", "MAIL_FROM": "", "PUBLIC_APP_URL": ""}, ""},
		{"no public api url", prod("PUBLIC_API_URL", ""), "PUBLIC_API_URL: is required in production"},
		{"http public api url", prod("PUBLIC_API_URL", "http://api.example.com"), "PUBLIC_API_URL: is not https://"},
		{"development allows plain-text smtp", map[string]string{"SMTP_URL": "smtp+insecure://localhost:1025"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tt.env))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Load() error = %v, want none", err)
			case tt.want != "" && err == nil:
				t.Errorf("Load() error = nil, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Load() error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := Load(env(map[string]string{
		"ENVIRONMENT":      "staging",
		"API_PORT":         "abc",
		"SHUTDOWN_TIMEOUT": "soon",
		"CORS_ORIGINS":     "localhost:3000",
		"SECRET_KEY":       "short",
	}))
	if err == nil {
		t.Fatal("Load() error = nil, want five problems")
	}
	want := []string{
		`ENVIRONMENT: "staging" is not one of development, production`,
		`API_PORT: "abc" is not a port number (1-65535)`,
		`SECRET_KEY: is 5 bytes long`,
		`CORS_ORIGINS: "localhost:3000" is not an origin`,
		`SHUTDOWN_TIMEOUT: "soon" is not a duration such as 15s or 2m`,
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Fatalf("Load() error = %q, want %d joined problems", err, len(want))
	}
	for i, e := range joined.Unwrap() {
		if !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, e, want[i])
		}
	}
}

func TestLoadCORSOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{"https://app.example.com", []string{"https://app.example.com"}, ""},
		{" https://a.example.com , ,http://localhost:3000,", []string{"https://a.example.com", "http://localhost:3000"}, ""},
		{"HTTPS://App.Example.COM:8443", []string{"https://app.example.com:8443"}, ""},
		{"http://[::1]:3000", []string{"http://[::1]:3000"}, ""},
		{"*", []string{"*"}, ""},
		{",", nil, ""}, // turns the development defaults off
		{"https://example.com/", nil, `"https://example.com/" is not an origin`},
		{"https://example.com/app", nil, `"https://example.com/app" is not an origin`},
		{"https://example.com?x=1", nil, `is not an origin`},
		{"https://example.com#top", nil, `is not an origin`},
		{"https://user@example.com", nil, `is not an origin`},
		{"https://example.com:0", nil, `is not an origin`},
		{"https://example.com:", nil, `is not an origin`},
		{"https://*.example.com", nil, `is not an origin`},
		{"example.com", nil, `"example.com" is not an origin`},
		{"localhost:3000", nil, `"localhost:3000" is not an origin`},
		{"https://ok.example.com,ftp//bad", nil, `"ftp//bad" is not an origin`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(map[string]string{"CORS_ORIGINS": tt.value}))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "CORS_ORIGINS: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Load(CORS_ORIGINS=%q) error = %v, want CORS_ORIGINS: …%s", tt.value, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(CORS_ORIGINS=%q) error = %v", tt.value, err)
			}
			if !reflect.DeepEqual(cfg.CORSOrigins, tt.want) {
				t.Errorf("Load(CORS_ORIGINS=%q).CORSOrigins = %q, want %q", tt.value, cfg.CORSOrigins, tt.want)
			}
		})
	}
}

func TestLoadTrustedProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value   string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{" , ", nil, ""},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, ""},
		{"192.0.2.7", []string{"192.0.2.7/32"}, ""},
		{"2001:db8::1", []string{"2001:db8::1/128"}, ""},
		{"fd00::/8, 172.16.0.0/12 ,", []string{"fd00::/8", "172.16.0.0/12"}, ""},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, ""},            // host bits cleared
		{"::ffff:192.0.2.7", []string{"192.0.2.7/32"}, ""},    // mapped address read as IPv4
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}, ""},   // mapped prefix read as IPv4
		{"0.0.0.0/0,::/0", []string{"0.0.0.0/0", "::/0"}, ""}, // everything: only behind a firewall
		{"::ffff:0.0.0.0/80", nil, `"::ffff:0.0.0.0/80" is not a CIDR`},
		{"10.0.0.0/33", nil, `"10.0.0.0/33" is not a CIDR`},
		{"10.0.0.0/", nil, `"10.0.0.0/" is not a CIDR`},
		{"10.0.0", nil, `"10.0.0" is not a CIDR`},
		{"fe80::1%eth0", nil, `"fe80::1%eth0" is not a CIDR`},
		{"[2001:db8::1]", nil, `is not a CIDR`},
		{"192.0.2.7:80", nil, `is not a CIDR`},
		{"localhost", nil, `"localhost" is not a CIDR`},
		{"10.0.0.0/8 192.168.0.0/16", nil, `is not a CIDR`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(map[string]string{"TRUSTED_PROXIES": tt.value}))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "TRUSTED_PROXIES: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Load(TRUSTED_PROXIES=%q) error = %v, want TRUSTED_PROXIES: …%s", tt.value, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(TRUSTED_PROXIES=%q) error = %v", tt.value, err)
			}
			var got []string
			for _, p := range cfg.TrustedProxies {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load(TRUSTED_PROXIES=%q).TrustedProxies = %q, want %q", tt.value, got, tt.want)
			}
		})
	}
}

func TestLoadSecretKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good", "\n  "+key32+"\n")
	short := write("short", "tooshort\n")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
		wantErr string
	}{
		{"development", map[string]string{"SECRET_KEY_FILE": good}, key32, ""},
		{"production", prod("SECRET_KEY", "", "SECRET_KEY_FILE", good), key32, ""},
		{"short key", map[string]string{"SECRET_KEY_FILE": short}, "", "SECRET_KEY (from SECRET_KEY_FILE): is 8 bytes long; it must be at least 32"},
		{"missing file", map[string]string{"SECRET_KEY_FILE": missing}, "", "SECRET_KEY_FILE: cannot read the file"},
		{"missing file in production", map[string]string{"ENVIRONMENT": "production", "SECRET_KEY_FILE": missing}, "", "SECRET_KEY_FILE: cannot read the file"},
		{"both set", map[string]string{"SECRET_KEY": key32, "SECRET_KEY_FILE": good}, "", "SECRET_KEY_FILE: is set together with SECRET_KEY; set only one of them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "tooshort") {
					t.Errorf("Load() error = %q reveals the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			if string(cfg.SecretKey) != tt.wantKey {
				t.Errorf("Load().SecretKey = %q, want %q", cfg.SecretKey, tt.wantKey)
			}
		})
	}
}

// secretSamples holds, for each variable that has a *_FILE twin, a valid
// value with a credential in it, the other variables that value needs, and
// how to read it back from the Config. TestLoadSecretFiles fails for a
// *_FILE variable missing here.
var secretSamples = map[string]struct {
	value string
	with  map[string]string
	got   func(*Config) string
}{
	"SECRET_KEY": {key32 + "-hunter2", nil, func(c *Config) string { return string(c.SecretKey) }},
	"DATABASE_URL": {"postgres://app:hunter2@db:5432/obsqra?sslmode=require", nil,
		func(c *Config) string { return c.DatabaseURL }},
	"MIGRATION_DATABASE_URL": {"postgres://owner:hunter2@db:5432/obsqra", map[string]string{"DATABASE_URL": "postgres://app@db/obsqra"},
		func(c *Config) string { return c.MigrationDatabaseURL }},
	"STARKNET_RPC_URL": {"https://rpc.example/v3/hunter2, https://backup.example/rpc?key=hunter2", nil,
		func(c *Config) string { return strings.Join(c.StarknetRPCURLs, ",") }},
	"DEFILLAMA_URL": {"https://pro-api.example/hunter2/yields", nil, func(c *Config) string { return c.DefiLlamaURL }},
	"SENTRY_DSN":    {"https://hunter2@o1.ingest.sentry.io/42", nil, func(c *Config) string { return c.SentryDSN }},
	"SMTP_URL": {"smtps://mailer:hunter2@smtp.example.com", nil,
		func(c *Config) string { return c.SMTP.Username + ":" + c.SMTP.Password + "@" + c.SMTP.Addr() }},
}

// TestLoadSecretFiles checks every *_FILE variable that Variables lists:
// the file is read and trimmed and gives the value its variable would;
// setting both, a file that cannot be read and an empty one are errors
// naming the *_FILE variable; and no error shows the file's content.
func TestLoadSecretFiles(t *testing.T) {
	t.Parallel()
	var names []string
	for _, v := range Variables() {
		if name, ok := strings.CutSuffix(v.Name, "_FILE"); ok {
			names = append(names, name)
		}
	}
	if len(names) < len(secretSamples) {
		t.Errorf("Variables() lists the *_FILE twins of %v, want at least those of every secret sampled here", names)
	}
	for _, name := range names {
		sample, ok := secretSamples[name]
		if !ok {
			t.Errorf("%s_FILE: no sample value in secretSamples; add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			write := func(file, content string) string {
				path := filepath.Join(dir, file)
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			}
			fileVar := name + "_FILE"
			with := func(kv ...string) map[string]string {
				m := map[string]string{}
				for k, v := range sample.with {
					m[k] = v
				}
				for i := 0; i+1 < len(kv); i += 2 {
					m[kv[i]] = kv[i+1]
				}
				return m
			}

			direct, err := Load(env(with(name, sample.value)))
			if err != nil {
				t.Fatalf("Load(%s) error = %v", name, err)
			}
			fromFile, err := Load(env(with(fileVar, write("secret", "\n\t "+sample.value+" \r\n\n"))))
			if err != nil {
				t.Fatalf("Load(%s) error = %v", fileVar, err)
			}
			if got, want := sample.got(fromFile), sample.got(direct); got != want || got == "" {
				t.Errorf("Load(%s).%s = %q, want %q as from %s", fileVar, name, got, want, name)
			}

			dirLike := filepath.Join(dir, "a-directory")
			if err := os.Mkdir(dirLike, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				what string
				env  map[string]string
				want string
			}{
				{"both set", with(name, sample.value, fileVar, write("both", sample.value)),
					fileVar + ": is set together with " + name + "; set only one of them"},
				{"missing file", with(fileVar, filepath.Join(dir, "missing")),
					fileVar + ": cannot read the file: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
				{"a directory", with(fileVar, dirLike), fileVar + ": cannot read the file"},
				{"empty file", with(fileVar, write("empty", "")), fileVar + `: the file "` + filepath.Join(dir, "empty") + `" is empty`},
				{"whitespace only", with(fileVar, write("blank", " \n\t\n")), fileVar + `: the file "` + filepath.Join(dir, "blank") + `" is empty`},
				{"bad value in the file", with(fileVar, write("bad", "ftp://hunter2")), name + " (from " + fileVar + "): "},
			} {
				cfg, err := Load(env(tt.env))
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: Load() = %+v, %v, want error %q", tt.what, cfg, err, tt.want)
					continue
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("%s: Load() error = %q reveals the secret", tt.what, err)
				}
			}
		})
	}
}

// TestLoadMetricsAddr: METRICS_ADDR takes a host (or none) and a port;
// off turns the metrics off.
func TestLoadMetricsAddr(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"":             "127.0.0.1:9090",
		":9100":        ":9100",
		"0.0.0.0:9100": "0.0.0.0:9100",
		"[::1]:9100":   "[::1]:9100",
		"metrics:9100": "metrics:9100",
		"off":          "",
		"OFF":          "",
	} {
		cfg, err := Load(env(map[string]string{"METRICS_ADDR": v}))
		if err != nil {
			t.Errorf("METRICS_ADDR=%q: %v", v, err)
		} else if cfg.MetricsAddr != want {
			t.Errorf("METRICS_ADDR=%q: MetricsAddr %q, want %q", v, cfg.MetricsAddr, want)
		}
	}
}

func TestAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		port int
		want string
	}{
		{"0.0.0.0", 8000, "0.0.0.0:8000"},
		{"localhost", 1, "localhost:1"},
		{"::", 65535, "[::]:65535"},
	}
	for _, tt := range tests {
		c := &Config{APIHost: tt.host, APIPort: tt.port}
		if got := c.Addr(); got != tt.want {
			t.Errorf("Config{APIHost: %q, APIPort: %d}.Addr() = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(prod(
		"DATABASE_URL", "postgres://app:hunter2@db:5432/obsqra?sslmode=require",
		"MIGRATION_DATABASE_URL", "postgres://owner@db:5432/obsqra?password=swordfish",
		"ADMIN_EMAILS", "alice@example.com",
	)))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	out := buf.String()
	for _, secret := range []string{key32, "hunter2", "swordfish", "alice@example.com"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line %s reveals %q", out, secret)
		}
	}
	for _, want := range []string{
		`"database_url":"postgres://app:xxxxx@db:5432/obsqra?sslmode=require"`,
		`"migration_database_url":"postgres://owner@db:5432/obsqra?password=xxxxx"`,
		`"secret_key_set":true`,
		`"addr":"0.0.0.0:8000"`,
		`"environment":"production"`,
		`"admin_emails":1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log line %s lacks %s", out, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"sqlite:data/obsqra.db", "sqlite:data/obsqra.db"},
		{"file:test.db?cache=shared", "file:test.db?cache=shared"},
		{"postgres://db/obsqra", "postgres://db/obsqra"},
		{"postgres://app@db/obsqra", "postgres://app@db/obsqra"},
		{"postgres://app:s3cr%40t@db/obsqra", "postgres://app:xxxxx@db/obsqra"},
		{"postgres://db/obsqra?user=app&password=s3cret", "postgres://db/obsqra?password=xxxxx&user=app"},
		{"postgres://app:s3cret@db:port/obsqra", "postgres:[unparsable, hidden]"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
