package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/obsqra/obsqra/config"
	"github.com/obsqra/obsqra/live"
	"github.com/obsqra/obsqra/scheduler"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/telemetry"
)

// observers are what the services report their measures to: the
// recorders of the metrics, or all nil (each service's default: nobody)
// when no metrics are served.
type observers struct {
	graphQL  server.Metrics
	live     live.Observer
	jobs     scheduler.Observer
	starknet starknet.Observer
}

// newMetrics returns the metrics of this process and their recorders as
// observers, or nil and no observers when METRICS_ADDR is off. Operations
// are counted by name for the trusted documents' names only.
func newMetrics(cfg *config.Config, trusted *server.TrustedDocuments) (*telemetry.Metrics, observers) {
	if cfg.MetricsAddr == "" {
		return nil, observers{}
	}
	m := telemetry.New(telemetry.Options{
		Version:        version,
		OperationNames: trusted.OperationNames(),
		Codes:          server.ErrorCodes(),
	})
	return m, observers{graphQL: m.GraphQL, live: m.Live, jobs: m.Jobs, starknet: m.Starknet}
}

// watch has m read, at each scrape, the state of the database pool, of
// the server's connections and of the hub.
func watch(m *telemetry.Metrics, db *store.DB, srv *server.Server, hub *live.Hub) {
	m.WatchDatabase(func() telemetry.Database {
		st := db.Stats()
		return telemetry.Database{Pool: st.Pool, EventsCommitted: st.EventsCommitted, ListenReconnects: st.ListenReconnects}
	})
	m.WatchConnections(func() telemetry.Connections {
		st := srv.Stats()
		return telemetry.Connections{
			Open:          telemetry.Transports(st.Connections),
			Subscriptions: telemetry.Transports(st.Subscriptions),
			SharedStreams: st.SharedStreams,
		}
	})
	m.WatchHub(func() telemetry.Hub {
		st := hub.Stats()
		return telemetry.Hub{Subscriptions: st.Subscriptions, QueuedBytes: st.Queued}
	})
}

// Timeouts of the metrics listener: a scrape is one small GET.
const (
	metricsReadTimeout     = 10 * time.Second
	metricsWriteTimeout    = 30 * time.Second
	metricsIdleTimeout     = 2 * time.Minute
	metricsShutdownTimeout = 5 * time.Second
)

// serveMetrics listens on addr and serves m at GET /metrics, and nothing
// else, until the returned stop is called, which lets a scrape in flight
// finish (for at most 5 s). An address that cannot be listened on is an
// error at once.
func serveMetrics(ctx context.Context, addr string, m *telemetry.Metrics, logger *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "addr", ln.Addr().String(), "error", err.Error())
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String(), "path", "/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metricsShutdownTimeout)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		<-done
	}, nil
}
