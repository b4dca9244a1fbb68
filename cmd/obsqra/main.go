// Command obsqra is the Obsqra backend: a GraphQL server for yield
// allocation on Starknet.
//
// Usage:
//
//	obsqra [serve]              start the server (the default)
//	obsqra migrate              apply pending database migrations and exit
//	obsqra user promote EMAIL   make a registered user an admin
//	obsqra import metrics FILE  import metrics from a CSV file (generic or Aave V3 format)
//	obsqra ml COMMAND           check the numbers: score, allocate, verify, optimize,
//	                            forecast, backtest (obsqra ml help)
//	obsqra schema               print the GraphQL schema (SDL) for codegen tools
//	obsqra healthcheck [-ready] ask the local server whether it is alive (or ready); exit 1 if not
//	obsqra version              print the version
//
// Configuration comes from the environment and an optional .env file in
// the working directory; see .env.example.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	// Time zone data in the binary (about 450 KB): a TZ such as
	// Europe/Paris resolves in an image without /usr/share/zoneinfo
	// (distroless static, scratch); scripts/check-container checks it.
	_ "time/tzdata"

	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/ml/mlcli"
	"github.com/obsqra/obsqra/ratelimit"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/rest"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "obsqra:", userMessage(err))
		os.Exit(1)
	}
}

// userMessage is err's text for a person at a terminal: an *obsqra.Error
// in the chain reads as its message, without the code= and message= of
// its log form.
func userMessage(err error) string {
	var e *obsqra.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	return strings.Replace(err.Error(), e.Error(), e.Message, 1)
}

// run is main with its inputs and outputs as arguments, so tests can call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "ml":
		return mlcli.Run(ctx, args, stdin, stdout)
	case "schema":
		// The schema's SDL needs no configuration and no database.
		fmt.Fprint(stdout, server.SDL(resolvers.NewExecutableSchema(&resolvers.Resolver{}).Schema()))
		return nil
	case "healthcheck":
		// The configuration serve reads, for its port, without the secret
		// key: a probe must never create one.
		cfg, err := readConfig()
		if err != nil {
			return err
		}
		return runHealthcheck(ctx, cfg, args, stdout)
	case "serve", "migrate", "user", "import":
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}

	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	switch cmd {
	case "migrate":
		if err := store.MigrateWith(ctx, cfg.MigrationDatabaseURL, storeOptions(cfg)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		logger.Info("migrations applied")
		return nil
	case "user":
		return runUser(ctx, cfg, args, stdout)
	case "import":
		return runImport(ctx, cfg, logger, args, stdin, stdout)
	}
	return serve(ctx, cfg, logger)
}

const usage = `usage:
  obsqra [serve]              start the server (the default)
  obsqra migrate              apply pending database migrations and exit
  obsqra user promote EMAIL   make a registered user an admin
  obsqra import metrics FILE  import metrics from a CSV file (generic or Aave V3 format)
  obsqra ml COMMAND           check the numbers: score, allocate, verify, optimize,
                              forecast, backtest (obsqra ml help)
  obsqra schema               print the GraphQL schema (SDL) for codegen tools
  obsqra healthcheck [-ready] ask the local server whether it is alive (or ready); exit 1 if not
  obsqra version              print the version
Configuration: environment variables or a .env file; see .env.example.
`

// readConfig reads the configuration from the environment and the .env
// file of the working directory, and checks it.
func readConfig() (*config.Config, error) {
	if err := config.LoadDotEnv(".env", os.Setenv, os.LookupEnv); err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	return cfg, nil
}

// loadConfig is readConfig, then the secret key made sure of (in
// development, generated into DATA_DIR when there is none): the
// configuration of the commands that sign or verify.
func loadConfig() (*config.Config, error) {
	cfg, err := readConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.EnsureSecretKey(); err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(logHandler(cfg, slog.NewJSONHandler(w, opts)))
	}
	return slog.New(logHandler(cfg, slog.NewTextHandler(w, opts)))
}

// grantApplication gives the role of db the privileges of the server's
// role, connected as the owner (MIGRATION_DATABASE_URL).
func grantApplication(ctx context.Context, cfg *config.Config, db *store.DB) error {
	ownerURL := cfg.MigrationDatabaseURL
	role, err := db.CurrentRole(ctx)
	if err != nil {
		return fmt.Errorf("read the server's database role: %w", err)
	}
	owner, err := store.OpenWith(ctx, ownerURL, storeOptions(cfg))
	if err != nil {
		return fmt.Errorf("open database as its owner: %w", err)
	}
	defer owner.Close()
	if err := store.GrantApplication(ctx, owner, role); err != nil {
		return fmt.Errorf("grant the server's role %s its privileges: %w", role, err)
	}
	return nil
}

// storeOptions are the database connections' settings from cfg.
func storeOptions(cfg *config.Config) store.Options {
	return store.Options{
		StatementTimeout: cfg.DBStatementTimeout,
		ConnectTimeout:   cfg.DBConnectTimeout,
		MaxOpenConns:     cfg.DBMaxOpenConns,
		MaxIdleConns:     cfg.DBMaxIdleConns,
		ConnMaxLifetime:  cfg.DBConnMaxLifetime,
		ConnMaxIdleTime:  cfg.DBConnMaxIdleTime,
	}
}

// open migrates the database as its owner, then opens it as the server's
// role (the same URL unless MIGRATION_DATABASE_URL says otherwise), its
// statements traced into tp when it is not nil.
func open(ctx context.Context, cfg *config.Config, tp trace.TracerProvider) (*store.DB, error) {
	if err := store.MigrateWith(ctx, cfg.MigrationDatabaseURL, storeOptions(cfg)); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	opts := storeOptions(cfg)
	opts.TracerProvider = tp
	db, err := store.OpenWith(ctx, cfg.DatabaseURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if cfg.MigrationDatabaseURL != cfg.DatabaseURL {
		// The server's role may write what it must and no more: history
		// takes no UPDATE, DELETE or TRUNCATE from it.
		if err := grantApplication(ctx, cfg, db); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

func newAccounts(db *store.DB, cfg *config.Config, node *starknet.Client, gens *obsqra.Generations, logger *slog.Logger) (*account.Service, error) {
	tokens, err := account.NewTokens(cfg.SecretKey, cfg.AccessTokenTTL)
	if err != nil {
		return nil, err
	}
	return account.New(db, account.Config{
		Tokens:      tokens,
		RefreshTTL:  cfg.RefreshTokenTTL,
		BcryptCost:  cfg.BcryptCost,
		AdminEmails: cfg.AdminEmails,
		Starknet:    node,

		RequireEmailVerification: cfg.RequireEmailVerification,
		MailRecipientInterval:    cfg.MailRecipientInterval,
		Logger:                   logger,
		Generations:              gens,
		// Mails go to the store's queue (Config.Mail nil), which the
		// mail sender delivers.
		PublicAppURL: cfg.PublicAppURL,
	})
}

func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	logger.Info("starting obsqra", "version", version, "config", cfg)
	var trusted *server.TrustedDocuments
	if cfg.TrustedDocuments != "" {
		var err error
		if trusted, err = server.LoadTrustedDocuments(cfg.TrustedDocuments); err != nil {
			return fmt.Errorf("TRUSTED_DOCUMENTS: %w", err)
		}
		logger.Info("trusted documents loaded", "documents", trusted.Len(), "only", cfg.TrustedDocumentsOnly)
	}
	// The metrics listener starts first, so that a taken port stops the
	// start at once, and stops last, so that the shutdown can be watched.
	metrics, obs := newMetrics(cfg, trusted)
	if metrics != nil {
		stopMetrics, err := serveMetrics(ctx, cfg.MetricsAddr, metrics, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	// Started first and stopped last, so that the last requests' spans
	// and reports are sent.
	tr, err := startTraces(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer tr.stop(ctx, logger)
	db, err := open(ctx, cfg, tr.tracerProvider())
	if err != nil {
		return err
	}
	defer db.Close()

	node, err := newStarknet(ctx, cfg, logger, obs.starknet, tr.tracerProvider())
	if err != nil {
		return err
	}
	// The generations of the outbox as this instance's hub dispatches it:
	// the read models (sessions, the read cache) keep what they read
	// until an event changes it.
	gens := obsqra.NewGenerations(db.LastLocalEventID)
	accounts, err := newAccounts(db, cfg, node, gens, logger)
	if err != nil {
		return err
	}
	transactions := newLedger(db, cfg, logger, node)
	decisions, err := newDecisions(db, cfg, logger, node, accounts)
	if err != nil {
		return err
	}
	markets, err := newMarket(db, cfg, logger, decisions, node)
	if err != nil {
		return err
	}
	// The active risk parameters against the deployed RiskEngine's model
	// version they are mapped to: a mismatch is logged, on every instance
	// (the decision-audit job checks again on the leader).
	checkCtx, cancelCheck := context.WithTimeout(ctx, 10*time.Second)
	if _, err := markets.CheckDeployedParams(checkCtx); err != nil {
		logger.Error("compare risk parameters with the deployed RiskEngine", "error", err)
	}
	cancelCheck()
	advice, err := newAdvisor(db, cfg, logger, markets, decisions)
	if err != nil {
		return err
	}
	mailer, err := newMailSender(db, cfg, logger)
	if err != nil {
		return err
	}
	alerts, err := newAlerts(db, cfg)
	if err != nil {
		return err
	}
	hubOptions := liveOptions(cfg, logger)
	hubOptions.Observer = obs.live
	hubOptions.Tracer = tr.hubTracer()
	hub := live.NewHub(db, hubOptions)
	hub.OnEvent(gens.Observe)
	jobs, err := newScheduler(db, cfg, logger, obs.jobs, hub, accounts, markets, advice, decisions,
		append(ledgerJobs(cfg, node, transactions), alertJob(alerts))...)
	if err != nil {
		return err
	}
	folio := newPortfolio(db, cfg, node)
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{
		Accounts: accounts, Market: markets, Decisions: decisions, Advisor: advice, Portfolio: folio, Ledger: transactions,
		Scheduler: jobs, Live: resolvers.HubFunc[*live.Subscription](hub.Subscribe),
	})
	// The original REST API, over the same services; it charges the
	// server's budgets once the server exists.
	restAPI := &rest.API{Accounts: accounts, Market: markets, Advisor: advice, Portfolio: folio, Ledger: transactions,
		Log: logger, Timeout: cfg.RequestTimeout, Version: version}
	// The read cache follows the hub's generations: every event it
	// dispatches ends the answers it may change.
	var readCache *server.ReadCache
	if cfg.ReadCacheBytes > 0 {
		readCache = server.NewReadCache(server.ReadCacheOptions{MaxBytes: cfg.ReadCacheBytes,
			Fields: resolvers.CacheScopes, Generations: gens})
	}
	srv := server.New(server.Config{
		Version:              version,
		ReadCache:            readCache,
		CORSOrigins:          cfg.CORSOrigins,
		CORSAllowedHeaders:   cfg.CORSAllowedHeaders,
		TrustedProxies:       cfg.TrustedProxies,
		Introspection:        cfg.Introspection,
		Logger:               logger,
		TracerProvider:       tr.tracerProvider(),
		Reporter:             tr.reporter(),
		WSInitTimeout:        cfg.WSInitTimeout,
		WSKeepAlive:          cfg.WSKeepAlive,
		WSMaxConnsPerAddress: cfg.WSMaxConnsPerAddress,
		WSMaxOperations:      cfg.WSMaxOperations,
		BatchMax:             cfg.BatchMax,
		RequestTimeout:       cfg.RequestTimeout,
		RateLimits:           rateLimits(db, cfg),
		Unsubscriber:         alerts,
		REST:                 restAPI,

		PersistedQueryCacheBytes: cfg.APQCacheBytes,
		TrustedDocuments:         trusted,
		TrustedDocumentsOnly:     cfg.TrustedDocumentsOnly,

		Metrics: obs.graphQL,
	}, schema, accounts, db)
	restAPI.Budget = srv
	if metrics != nil {
		watch(metrics, db, srv, hub)
	}
	// A session that ends, or a user whose standing changes, on any
	// instance: this one checks the user's sockets again.
	hub.OnEvent(srv.Observe)

	// The scheduler runs until ctx ends (a signal), then waits for a
	// running job up to its timeout; the database closes after both.
	jobsDone := make(chan error, 1)
	go func() { jobsDone <- jobs.Run(ctx) }()
	// The mail sender runs on every instance until ctx ends, then records
	// the attempt under way (at most mailSendTimeout).
	// Links asked for without signing in (password resets, verification
	// links) are worked after their answer, by every instance (see
	// account.Service.RequestPasswordReset).
	resetsDone := make(chan struct{})
	go func() {
		defer close(resetsDone)
		accounts.RunEmailRequests(ctx)
	}()
	mailDone := make(chan struct{})
	go func() {
		defer close(mailDone)
		mailer.Run(ctx)
	}()
	// The hub follows the outbox (LISTEN on PostgreSQL, in-process signals
	// on SQLite). It stops only after the server has closed every socket
	// with 1001: stopped first, it would end every subscription, and a
	// client told its subscription is complete does not resubscribe when it
	// reconnects.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	hubDone := make(chan error, 1)
	// The generations count nothing until the hub has its starting
	// position (every later commit will be dispatched), nor after it
	// stops.
	go func() {
		select {
		case <-hub.Ready():
			if hubCtx.Err() == nil {
				gens.Start()
			}
		case <-hubCtx.Done():
		}
	}()
	go func() {
		err := hub.Run(hubCtx)
		gens.Stop()
		if err != nil && hubCtx.Err() == nil {
			// Without the hub no subscriber hears anything: stop rather
			// than serve half a product.
			logger.Error("live hub stopped", "error", err.Error())
			stop()
		}
		hubDone <- err
	}()
	logger.Info("listening", "addr", cfg.Addr(), "playground", playgroundURL(cfg),
		"market_source", markets.SourceName(), "poll_interval", cfg.MarketPollInterval)
	serveErr := srv.ListenAndServe(ctx, cfg.Addr(), cfg.ShutdownTimeout)
	if serveErr != nil {
		// The server could not start or stop cleanly: stop the jobs too.
		stop()
	}
	stop() // ends the scheduler and the mail sender, whatever ended the server
	stopHub()
	<-mailDone
	<-resetsDone
	if err := <-jobsDone; err != nil && serveErr == nil {
		serveErr = fmt.Errorf("scheduler: %w", err)
	}
	if err := <-hubDone; err != nil && !errors.Is(err, context.Canceled) && serveErr == nil {
		serveErr = fmt.Errorf("live: %w", err)
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

func runUser(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "promote" {
		return errors.New("usage: obsqra user promote EMAIL")
	}
	db, err := open(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	accounts, err := newAccounts(db, cfg, nil, nil, nil)
	if err != nil {
		return err
	}
	u, err := accounts.Promote(ctx, args[1])
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return fmt.Errorf("no user is registered with email %q", args[1])
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is now an admin\n", u.Email)
	return nil
}

// playgroundURL is where a browser on this machine finds the playground.
func playgroundURL(cfg *config.Config) string {
	host := cfg.APIHost
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(cfg.APIPort)) + "/"
}

// liveOptions are the hub's options from cfg.
func liveOptions(cfg *config.Config, logger *slog.Logger) live.Options {
	return live.Options{Logger: logger, Limits: live.Limits{
		Subscription:         cfg.LiveSubscriptionBufferBytes,
		Connection:           cfg.LiveConnectionBufferBytes,
		Address:              cfg.LiveAddressBufferBytes,
		Total:                cfg.LiveTotalBufferBytes,
		SubscriptionsPerUser: cfg.LiveSubscriptionsPerUser,

		SubscriptionsPerAddress: cfg.LiveSubscriptionsPerAddress,
		Subscriptions:           cfg.LiveSubscriptions,
	}}
}

// rateLimits returns the cost budgets of cfg, shared with the other
// instances through db.
func rateLimits(db *store.DB, cfg *config.Config) *server.RateLimits {
	policy := func(name string, b config.Budget) *ratelimit.Policy {
		return &ratelimit.Policy{Name: name, Capacity: b.Points, Window: b.Window}
	}
	return &server.RateLimits{
		Limiter:          ratelimit.New(db, nil),
		Anonymous:        policy("anonymous", cfg.RateLimitAnonymous),
		User:             policy("user", cfg.RateLimitUser),
		Admin:            policy("admin", cfg.RateLimitAdmin),
		MutationCost:     int64(cfg.RateLimitMutationCost),
		SubscriptionCost: int64(cfg.RateLimitSubscriptionCost),
	}
}
