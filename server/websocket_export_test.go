package server

import (
	"context"
	"time"
)

// SetClock replaces the server's clock; call it before serving.
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// SetAfterFunc replaces the server's timers (time.AfterFunc); call it
// before serving.
func (s *Server) SetAfterFunc(afterFunc func(d time.Duration, f func()) interface{ Stop() bool }) {
	s.afterFunc = func(d time.Duration, f func()) stopper { return afterFunc(d, f) }
}

// SetHTTPTimeouts replaces the read and write timeouts of the http.Server
// that Serve runs; call it before Serve.
func (s *Server) SetHTTPTimeouts(read, write time.Duration) {
	s.readTimeout, s.writeTimeout = read, write
}

// CloseWebSockets closes every WebSocket with 1001 and waits for their
// goroutines, as Serve does on shutdown.
func (s *Server) CloseWebSockets(ctx context.Context) error { return s.sockets.Shutdown(ctx) }

// SetWSOperationQueued sets a function that each WebSocket operation calls
// before it starts work; call it before serving.
func (s *Server) SetWSOperationQueued(f func(ctx context.Context)) { s.wsOperationQueued = f }
