package resolvers

import (
	"context"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
)

// WalletPositions resolves Query.walletPositions.
func (r *queryResolver) WalletPositions(ctx context.Context) (*obsqra.WalletPositions, error) {
	return r.Portfolio.WalletPositions(ctx)
}

// WalletPositions returns the resolver of WalletPositions' fields.
func (r *Resolver) WalletPositions() graph.WalletPositionsResolver { return walletPositionsResolver{} }

type walletPositionsResolver struct{}

// BlockNumber resolves WalletPositions.blockNumber.
func (walletPositionsResolver) BlockNumber(_ context.Context, w *obsqra.WalletPositions) (int, error) {
	return int(w.BlockNumber), nil
}

// WalletPosition returns the resolver of WalletPosition's fields.
func (r *Resolver) WalletPosition() graph.WalletPositionResolver { return walletPositionResolver{r} }

type walletPositionResolver struct{ *Resolver }

// Protocol resolves WalletPosition.protocol.
func (r walletPositionResolver) Protocol(ctx context.Context, p *obsqra.WalletPosition) (*obsqra.Protocol, error) {
	return loadersFrom(ctx).protocolByID(ctx, r.Resolver, p.ProtocolID)
}

// WalletBlock resolves Allocation.walletBlock.
func (r *allocationResolver) WalletBlock(_ context.Context, a *obsqra.Allocation) (*int, error) {
	if a.WalletBlock == 0 {
		return nil, nil
	}
	b := int(a.WalletBlock)
	return &b, nil
}
