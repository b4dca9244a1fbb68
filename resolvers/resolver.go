// Package resolvers connects the GraphQL schema to the domain services:
// arguments in, service calls out. It holds no SQL and no maths; the
// services decide and authorise, so the same rules hold for every caller.
package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/graph"
)

// Resolver is the root of all resolvers; its fields are the services they
// call. It is the one place where dependencies are injected.
type Resolver struct {
	Accounts *account.Service
}

// NewExecutableSchema returns the GraphQL schema backed by r.
func NewExecutableSchema(r *Resolver) graphql.ExecutableSchema {
	return graph.NewExecutableSchema(graph.Config{Resolvers: r})
}

// Query returns the resolvers of the Query type.
func (r *Resolver) Query() graph.QueryResolver { return &queryResolver{r} }

// Mutation returns the resolvers of the Mutation type.
func (r *Resolver) Mutation() graph.MutationResolver { return &mutationResolver{r} }

type queryResolver struct{ *Resolver }

type mutationResolver struct{ *Resolver }

// Node resolves node(id:): the object when the caller may see it, else null.
func (r *queryResolver) Node(ctx context.Context, id string) (obsqra.Node, error) {
	typ, n, err := obsqra.ParseNodeID(id)
	if err != nil {
		return nil, err
	}
	switch typ {
	case obsqra.NodeUser:
		u, err := r.Accounts.User(ctx, n)
		if err != nil || u == nil {
			// A typed nil pointer would not be a nil interface.
			return nil, err
		}
		return u, nil
	}
	return nil, nil
}
