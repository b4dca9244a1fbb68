package server

// ShuttingDown returns a channel closed once the server starts shutting
// down, so that tests wait on it instead of polling /ready.
func (s *Server) ShuttingDown() <-chan struct{} { return s.shuttingDown }

// SharedSubscribers returns how many subscribers the shared streams have,
// so that tests wait for subscribers to join before publishing.
func (s *Server) SharedSubscribers() int {
	s.streams.mu.Lock()
	streams := make([]*sharedStream, 0, len(s.streams.m))
	for _, st := range s.streams.m {
		streams = append(streams, st)
	}
	s.streams.mu.Unlock()
	n := 0
	for _, st := range streams {
		n += len(st.appendMembers(nil))
	}
	return n
}
