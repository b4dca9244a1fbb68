package resolvers

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
)

// RequestConstraintApproval resolves Mutation.requestConstraintApproval.
func (r *mutationResolver) RequestConstraintApproval(ctx context.Context, in obsqra.ConstraintSet) (*obsqra.WalletChallengePayload, error) {
	return r.Accounts.RequestConstraintApproval(ctx, in)
}

// ApproveConstraints resolves Mutation.approveConstraints.
func (r *mutationResolver) ApproveConstraints(ctx context.Context, in graph.ApproveConstraintsInput) (*obsqra.SignedConstraints, error) {
	return r.Accounts.ApproveConstraints(ctx, in.Signature)
}

// SignedConstraints resolves Query.signedConstraints.
func (r *queryResolver) SignedConstraints(ctx context.Context, first *int, after *string) (*graph.SignedConstraintSetConnection, error) {
	page, _, err := historyPage(first, after, nil, nil)
	if err != nil {
		return nil, err
	}
	rows, err := r.Accounts.SignedConstraints(ctx, page.First, page.After)
	if err != nil {
		return nil, err
	}
	cursors, info := pageOf(rows, page, after, func(s *obsqra.SignedConstraints) (time.Time, int64) { return s.SignedAt, s.ID })
	conn := &graph.SignedConstraintSetConnection{PageInfo: info, Edges: make([]*graph.SignedConstraintSetEdge, len(cursors))}
	for i, c := range cursors {
		conn.Edges[i] = &graph.SignedConstraintSetEdge{Cursor: c, Node: &rows[i]}
	}
	return conn, nil
}

// SignedConstraintSet returns the resolver of SignedConstraintSet's
// fields.
func (r *Resolver) SignedConstraintSet() graph.SignedConstraintSetResolver {
	return signedConstraintSetResolver{}
}

type signedConstraintSetResolver struct{}

func (signedConstraintSetResolver) MaxSingleBps(_ context.Context, s *obsqra.SignedConstraints) (int, error) {
	return s.Set.MaxSingleBps, nil
}

func (signedConstraintSetResolver) MinDiversification(_ context.Context, s *obsqra.SignedConstraints) (int, error) {
	return s.Set.MinDiversification, nil
}

func (signedConstraintSetResolver) MaxVolatilityBps(_ context.Context, s *obsqra.SignedConstraints) (int, error) {
	return s.Set.MaxVolatilityBps, nil
}

func (signedConstraintSetResolver) MaxLiquidityTier(_ context.Context, s *obsqra.SignedConstraints) (int, error) {
	return s.Set.MaxLiquidityTier, nil
}
