package server

import (
	"github.com/obsqra/obsqra/server/ws"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// ShuttingDown returns a channel closed once the server starts shutting
// down, so that tests wait on it instead of polling /ready.
func (s *Server) ShuttingDown() <-chan struct{} { return s.shuttingDown.Done() }

// SharedSubscribers returns how many subscribers the shared streams have,
// so that tests wait for subscribers to join before publishing.
func (s *Server) SharedSubscribers() int { return s.sockets.(*ws.Transport).SharedSubscribers() }

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
