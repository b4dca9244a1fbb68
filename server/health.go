package server

import (
	"context"
	"net/http"
	"time"

	"github.com/obsqra/obsqra/server/wire"
)

// serviceName is how /health names this service.
const serviceName = "obsqra-backend"

// readyTimeout bounds the database ping of /ready: a database that takes
// longer is as good as down for a load balancer.
const readyTimeout = 2 * time.Second

// health answers that the process is up. It touches nothing else, so that
// a slow database never gets a healthy process restarted.
func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	wire.WriteJSON(w, http.StatusOK, struct {
		Status  string `json:"status"`
		Service string `json:"service"`
		Version string `json:"version"`
	}{"healthy", serviceName, s.cfg.Version})
}

// ready answers 200 while the server takes new requests: the database
// answers a ping within readyTimeout and no shutdown has begun. The reason
// of a 503 names the cause, never its details; those go to the log.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.isShuttingDown() {
		writeUnavailable(w, "shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readiness check: database ping failed", "request_id", requestIDOf(r), "error", err.Error())
		writeUnavailable(w, "database unavailable")
		return
	}
	wire.WriteJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
	}{"ready"})
}

func writeUnavailable(w http.ResponseWriter, reason string) {
	wire.WriteJSON(w, http.StatusServiceUnavailable, struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}{"unavailable", reason})
}
