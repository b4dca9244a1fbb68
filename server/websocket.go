package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra/server/ws"
)

// sockets is what the server needs of its WebSocket transport (*ws.Transport,
// which holds the sockets): to close them on shutdown, and to check again
// those of a user whose account changed.
type sockets interface {
	Shutdown(ctx context.Context) error
	Recheck(ctx context.Context, userID int64) bool
}

// webSocket returns the WebSocket transport of s, which s.sockets then
// stands for.
func (s *Server) webSocket() *ws.Transport {
	t := ws.New(ws.Config{
		InitTimeout:        s.cfg.WSInitTimeout,
		KeepAlive:          s.cfg.WSKeepAlive,
		SendBuffer:         s.cfg.WSSendBuffer,
		WriteTimeout:       s.cfg.WSWriteTimeout,
		MaxConnsPerAddress: s.cfg.WSMaxConnsPerAddress,
		MaxOperations:      s.cfg.WSMaxOperations,
		Logger:             s.log,
		Authenticate:       s.principalFor,
		PresentError:       s.presentError,
		Recover:            s.recoverResolver,
		CheckOrigin:        s.wsOriginAllowed,
		ShuttingDown:       s.isShuttingDown,
		// Read at each use: tests replace them after New.
		Now: func() time.Time { return s.now() },
		AfterFunc: func(d time.Duration, f func()) interface{ Stop() bool } {
			return s.afterFunc(d, f)
		},
		Charge: func(ctx context.Context, rc *graphql.OperationContext) error {
			_, err := s.charge(ctx, rc)
			return err
		},
		OperationQueued: func(ctx context.Context) {
			if s.wsOperationQueued != nil {
				s.wsOperationQueued(ctx)
			}
		},
		SlowConsumer: func(transport string) {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.SlowConsumer(transport)
			}
		},
	})
	s.sockets, s.ws = t, t
	return t
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
