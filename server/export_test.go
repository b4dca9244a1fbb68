package server

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

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

// DocumentCost parses query as the document limits do, with maxTokens, and
// returns its validation cost against schema counted up to budget; ok is
// false when the query is over maxTokens or does not parse.
func DocumentCost(schema *ast.Schema, query string, maxTokens, budget int) (cost int, ok bool) {
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, maxTokens)
	if err != nil {
		return 0, false
	}
	return validationCost(schema, doc, budget), true
}
