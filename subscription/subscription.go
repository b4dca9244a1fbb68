// Package subscription is what a subscription resolver tells the transport
// that runs it: why its stream ended before its client stopped it, whether
// the stream may be shared by other subscribers, and whether more events
// are ready to follow at once. Resolvers say it through their context; the
// transport (server/ws) puts the State there and reads it. It imports the
// standard library only, so that both sides can import it.
package subscription

import (
	"context"
	"sync"
)

// contextKey is the type of the context key of a State.
type contextKey struct{}

// State is what a subscription tells the transport that runs it: why its
// stream ended before its client stopped it (a subscriber too slow for its
// buffer, say), sent as the operation's last message instead of a plain
// completion; and whether the stream may be shared.
type State struct {
	mu        sync.Mutex
	err       error
	shareable bool
	public    bool
	backlog   func() bool
}

// NewContext returns a copy of ctx in which a subscription can report on
// its stream (End, Share), and the state the transport reads.
func NewContext(ctx context.Context) (context.Context, *State) {
	st := new(State)
	return context.WithValue(ctx, contextKey{}, st), st
}

// End records err as why the subscription of ctx ended; the first error
// recorded wins. Without a State in ctx it does nothing.
func End(ctx context.Context, err error) {
	if st, ok := ctx.Value(contextKey{}).(*State); ok && err != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.err == nil {
			st.err = err
		}
	}
}

// Share declares that the subscription of ctx streams only events from now
// on, the same for every subscriber with the same operation, variables and
// viewer: a transport may run it once and send its events to all of them,
// including subscribers that join later. A subscription that replays
// history or sends a snapshot first must not call it.
func Share(ctx context.Context) {
	if st, ok := ctx.Value(contextKey{}).(*State); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.shareable = true
	}
}

// SharePublic is Share for a subscription whose events are the same for
// every viewer (market data): subscribers share it whoever they are, signed
// in or not.
func SharePublic(ctx context.Context) {
	if st, ok := ctx.Value(contextKey{}).(*State); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.shareable, st.public = true, true
	}
}

// SetBacklog gives the transport of the subscription of ctx a way to ask
// whether more events are ready to follow at once (a commit of several):
// it then sends them together. backlog must be quick, safe for concurrent
// use, and may report false when in doubt, never true unless the
// subscription's channel will yield a value or close without waiting.
func SetBacklog(ctx context.Context, backlog func() bool) {
	if st, ok := ctx.Value(contextKey{}).(*State); ok {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.backlog = backlog
	}
}

// Backlog reports whether the subscription said more events are ready
// (SetBacklog); false when it said nothing.
func (st *State) Backlog() bool {
	st.mu.Lock()
	f := st.backlog
	st.mu.Unlock()
	return f != nil && f()
}

// Public reports whether SharePublic was called.
func (st *State) Public() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.public
}

// Err returns the error recorded by End, or nil.
func (st *State) Err() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// Shareable reports whether Share or SharePublic was called.
func (st *State) Shareable() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.shareable
}
