package server

// ShuttingDown returns a channel closed once the server starts shutting
// down, so that tests wait on it instead of polling /ready.
func (s *Server) ShuttingDown() <-chan struct{} { return s.shuttingDown }
