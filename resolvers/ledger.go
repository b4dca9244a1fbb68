package resolvers

import (
	"context"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/graph"
)

// Transactions resolves Query.transactions.
func (r *queryResolver) Transactions(ctx context.Context, filter *obsqra.TransactionFilter, first *int, after *string) (*graph.TransactionConnection, error) {
	var f obsqra.TransactionFilter
	if filter != nil {
		f = *filter
	}
	page, _, err := historyPage(first, after, f.From, f.To)
	if err != nil {
		return nil, err
	}
	rows, err := r.Ledger.Transactions(ctx, f, page.First, page.After)
	if err != nil {
		return nil, err
	}
	cursors, info := pageOf(rows, page, after, func(t *obsqra.Transaction) (time.Time, int64) { return t.CreatedAt, t.ID })
	conn := &graph.TransactionConnection{PageInfo: info, Edges: make([]*graph.TransactionEdge, len(cursors))}
	l := loadersFrom(ctx)
	for i, c := range cursors {
		conn.Edges[i] = &graph.TransactionEdge{Cursor: c, Node: &rows[i]}
		l.addTransactions(&rows[i])
	}
	return conn, nil
}

// Transaction resolves Query.transaction: null for a hash the user did not
// log.
func (r *queryResolver) Transaction(ctx context.Context, hash string) (*obsqra.Transaction, error) {
	t, err := r.Ledger.Transaction(ctx, hash)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	loadersFrom(ctx).addTransactions(t)
	return t, nil
}

// RequestWalletChallenge resolves Mutation.requestWalletChallenge.
func (r *mutationResolver) RequestWalletChallenge(ctx context.Context, address string) (*obsqra.WalletChallengePayload, error) {
	return r.Accounts.RequestWalletChallenge(ctx, address)
}

// ConnectWallet resolves Mutation.connectWallet.
func (r *mutationResolver) ConnectWallet(ctx context.Context, in graph.ConnectWalletInput) (*obsqra.User, error) {
	return r.Accounts.ConnectWallet(ctx, in.Address, in.Signature)
}

// DisconnectWallet resolves Mutation.disconnectWallet.
func (r *mutationResolver) DisconnectWallet(ctx context.Context) (*obsqra.User, error) {
	return r.Accounts.DisconnectWallet(ctx)
}

// LogTransaction resolves Mutation.logTransaction.
func (r *mutationResolver) LogTransaction(ctx context.Context, in obsqra.LogTransactionInput) (*obsqra.Transaction, error) {
	t, err := r.Ledger.LogTransaction(ctx, in)
	if err == nil {
		loadersFrom(ctx).addTransactions(t)
	}
	return t, err
}

type transactionResolver struct{ *Resolver }

// Transaction returns the resolvers of the Transaction type.
func (r *Resolver) Transaction() graph.TransactionResolver { return &transactionResolver{r} }

// BlockNumber resolves Transaction.blockNumber.
func (r *transactionResolver) BlockNumber(ctx context.Context, t *obsqra.Transaction) (*int, error) {
	if t.BlockNumber == nil {
		return nil, nil
	}
	n := int(*t.BlockNumber)
	return &n, nil
}

// History resolves Transaction.history, for every transaction of the
// operation in one statement.
func (r *transactionResolver) History(ctx context.Context, t *obsqra.Transaction) ([]*obsqra.TxStatusChange, error) {
	steps, _, err := loadAmong(ctx, "txHistory", t.ID, txSiblings, r.Ledger.History)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.TxStatusChange, len(steps))
	for i := range steps {
		out[i] = &steps[i]
	}
	return out, nil
}

// Allocation resolves Transaction.allocation: the allocation recorded
// with the transaction's hash, for every transaction of the operation in
// one statement.
func (r *transactionResolver) Allocation(ctx context.Context, t *obsqra.Transaction) (*obsqra.Allocation, error) {
	a, ok, err := loadAmong(ctx, "txAllocation", t.ID, txSiblings, func(ctx context.Context, ids []int64) (map[int64]obsqra.Allocation, error) {
		l := loadersFrom(ctx)
		l.mu.Lock()
		byHash := make(map[obsqra.Felt]int64, len(ids))
		hashes := make([]obsqra.Felt, 0, len(ids))
		for _, id := range ids {
			h, ok := l.txs[id]
			if !ok {
				h = t.TxHash
			}
			byHash[h] = id
			hashes = append(hashes, h)
		}
		l.mu.Unlock()
		found, err := r.Portfolio.AllocationsByTxHash(ctx, hashes)
		if err != nil {
			return nil, err
		}
		out := make(map[int64]obsqra.Allocation, len(found))
		for h, a := range found {
			out[byHash[h]] = a
		}
		return out, nil
	})
	if err != nil || !ok {
		return nil, err
	}
	return &a, nil
}

// TransactionUpdated resolves transactionUpdated: the viewer's own
// transactions, as of each change.
func (r *subscriptionResolver) TransactionUpdated(ctx context.Context, after *string) (<-chan *graph.TransactionEvent, error) {
	sub, err := r.subscribeOwn(ctx, true, after, topicFilter(obsqra.TopicTransactionUpdated))
	if err != nil {
		return nil, err
	}
	return stream(ctx, sub, func(e *obsqra.Event) (*graph.TransactionEvent, error) {
		v, err := obsqra.EventValue[obsqra.Transaction](e)
		if err != nil {
			return nil, err
		}
		return &graph.TransactionEvent{Cursor: obsqra.EventCursor(e.ID), Transaction: v}, nil
	}), nil
}
