package resolvers

import (
	"context"
	"slices"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
)

// loaders batch the per-protocol fields of one operation. A protocol list
// (protocols, protocol) registers its protocols as siblings; the first
// field that needs, say, latestRisk of one of them loads it for all of
// them in one statement, and every sibling then reads the cached result.
// So an operation runs a fixed number of statements whatever the number of
// protocols, and nothing waits for a batch window to close: the batch is
// known before the first field resolves.
type loaders struct {
	mu       sync.Mutex
	siblings []int64
	batches  map[string]any // key → *batch[V]

	protocolsOnce sync.Once
	protocols     map[int64]*obsqra.Protocol
	protocolsErr  error
	// event is set for the response to one event of a subscription:
	// protocols then come from the market's snapshot (see protocolByID).
	event bool

	// txs are the transactions of this operation, by id: the siblings
	// their history and allocation are loaded for.
	txs map[int64]obsqra.Felt

	// riskParams are the active risk parameters, read once however many
	// aliases of riskParams the operation has.
	riskParamsOnce sync.Once
	riskParams     *obsqra.RiskParams
	riskParamsErr  error
}

type loadersKey struct{}

// schemaWithLoaders gives every response its own loaders: a query or a
// mutation has one response, a subscription one per event, so no cache
// outlives the response it was made for.
type schemaWithLoaders struct{ graphql.ExecutableSchema }

func (s schemaWithLoaders) Exec(ctx context.Context) graphql.ResponseHandler {
	event := graphql.HasOperationContext(ctx) && graphql.GetOperationContext(ctx).Operation != nil &&
		graphql.GetOperationContext(ctx).Operation.Operation == ast.Subscription
	next := s.ExecutableSchema.Exec(ctx)
	return func(ctx context.Context) *graphql.Response {
		return next(context.WithValue(ctx, loadersKey{}, &loaders{batches: make(map[string]any), event: event}))
	}
}

// loadersFrom returns the operation's loaders; a context without them (a
// direct call in a test) gets fresh ones that batch nothing across calls.
func loadersFrom(ctx context.Context) *loaders {
	if l, ok := ctx.Value(loadersKey{}).(*loaders); ok {
		return l
	}
	return &loaders{batches: make(map[string]any)}
}

// addSiblings registers protocols whose fields this operation may ask for.
func (l *loaders) addSiblings(ps ...*obsqra.Protocol) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range ps {
		if !slices.Contains(l.siblings, p.ID) {
			l.siblings = append(l.siblings, p.ID)
		}
	}
}

// addSiblingIDs registers protocols by id, for lists that hold protocol ids
// (weights, dashboard rows) rather than protocols.
func (l *loaders) addSiblingIDs(ids ...int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		if !slices.Contains(l.siblings, id) {
			l.siblings = append(l.siblings, id)
		}
	}
}

// weightSiblings registers the protocols of weights as siblings.
func weightSiblings(ctx context.Context, ws []obsqra.Weight) {
	ids := make([]int64, len(ws))
	for i, w := range ws {
		ids[i] = w.ProtocolID
	}
	loadersFrom(ctx).addSiblingIDs(ids...)
}

// batch is one load of a field for a set of protocols.
type batch[V any] struct {
	done chan struct{}
	ids  []int64
	m    map[int64]V
	err  error
}

// load returns the value of key for protocol id: from the batch loaded
// for all siblings on first use, or, for a protocol that was not a sibling
// when the batch ran, from a load of its own. ok is false when the
// protocol has no value (no samples yet, say).
func load[V any](ctx context.Context, key string, id int64, fetch func(ctx context.Context, ids []int64) (map[int64]V, error)) (v V, ok bool, err error) {
	return loadAmong(ctx, key, id, func(l *loaders) []int64 { return l.siblings }, fetch)
}

// addTransactions registers transactions whose fields this operation may
// ask for.
func (l *loaders) addTransactions(ts ...*obsqra.Transaction) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.txs == nil {
		l.txs = make(map[int64]obsqra.Felt, len(ts))
	}
	for _, t := range ts {
		l.txs[t.ID] = t.TxHash
	}
}

// txSiblings returns the registered transactions' ids, ordered.
func txSiblings(l *loaders) []int64 {
	ids := make([]int64, 0, len(l.txs))
	for id := range l.txs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// loadAmong is load with the siblings siblings returns (called with l.mu
// held).
func loadAmong[V any](ctx context.Context, key string, id int64, siblings func(l *loaders) []int64, fetch func(ctx context.Context, ids []int64) (map[int64]V, error)) (v V, ok bool, err error) {
	l := loadersFrom(ctx)
	l.mu.Lock()
	b, found := l.batches[key].(*batch[V])
	single := false
	if found && !slices.Contains(b.ids, id) {
		// id joined after the batch ran (a protocol reached through a
		// sample, say): it gets a batch of its own.
		key += "/" + strconv.FormatInt(id, 10)
		b, found = l.batches[key].(*batch[V])
		single = true
	}
	if !found {
		ids := []int64{id}
		if !single {
			ids = slices.Clone(siblings(l))
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		b = &batch[V]{done: make(chan struct{}), ids: ids}
		l.batches[key] = b
		l.mu.Unlock()
		b.m, b.err = fetch(ctx, ids)
		close(b.done)
	} else {
		l.mu.Unlock()
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
	if b.err != nil {
		return v, false, b.err
	}
	v, ok = b.m[id]
	return v, ok, nil
}

// protocolByID returns a protocol of this operation, loading the whole
// (small) protocol table once. A subscription sends one response per
// event, each with loaders of its own: there the protocols come from the
// market service's snapshot (Market.ProtocolsByID, shared by every
// subscription and at most a second old on another instance's changes),
// so that a replay of 5,000 events does not read the table 5,000 times.
// Queries and mutations read the table, so that they see every committed
// change.
func (l *loaders) protocolByID(ctx context.Context, r *Resolver, id int64) (*obsqra.Protocol, error) {
	l.protocolsOnce.Do(func() {
		if l.event {
			l.protocols, l.protocolsErr = r.Market.ProtocolsByID(ctx)
			return
		}
		ps, err := r.Market.Protocols(ctx)
		if err != nil {
			l.protocolsErr = err
			return
		}
		l.protocols = make(map[int64]*obsqra.Protocol, len(ps))
		for i := range ps {
			l.protocols[ps[i].ID] = &ps[i]
		}
	})
	if l.protocolsErr != nil {
		return nil, l.protocolsErr
	}
	if p, ok := l.protocols[id]; ok {
		return p, nil
	}
	return r.Market.ProtocolByID(ctx, id)
}
