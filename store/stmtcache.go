package store

import (
	"context"
	"sync"

	"github.com/jmoiron/sqlx"
)

// maxCachedStatements bounds the cache: the store's queries are constants
// (plus a few variants built from filters), so the bound is only a guard
// against a query builder that would make endless distinct texts.
const maxCachedStatements = 512

// stmtCache prepares each query text once per pool. Preparing is most of
// the cost of a small SQLite query (parsing and planning), and on
// PostgreSQL lib/pq spends a round trip preparing every unprepared query
// that has arguments; database/sql then keeps one prepared copy per
// connection and re-prepares on new connections by itself.
type stmtCache struct {
	db *sqlx.DB

	mu     sync.RWMutex
	stmts  map[string]*sqlx.Stmt
	closed bool
}

// get returns the prepared statement of query, preparing it on first use,
// or nil when it cannot be prepared or the cache is full or closed.
func (c *stmtCache) get(ctx context.Context, query string) *sqlx.Stmt {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	st, ok := c.stmts[query]
	full := c.closed || len(c.stmts) >= maxCachedStatements
	c.mu.RUnlock()
	if ok || full {
		return st
	}
	// Prepare without holding the lock, within the caller's deadline: the
	// statement outlives the request that first needs it, but a database
	// that does not answer must not hold that request past its deadline.
	// A prepare the context ends is not cached, and the query runs
	// unprepared, meeting the same deadline.
	st, err := c.db.PreparexContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts[query]; ok {
		_ = st.Close()
		return prev
	}
	if c.closed || len(c.stmts) >= maxCachedStatements {
		_ = st.Close()
		return nil
	}
	if c.stmts == nil {
		c.stmts = make(map[string]*sqlx.Stmt)
	}
	c.stmts[query] = st
	return st
}

// lookup returns the cached statement of query without preparing anything.
func (c *stmtCache) lookup(query string) (*sqlx.Stmt, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, ok := c.stmts[query]
	return st, ok
}

// close closes every prepared statement; later gets prepare nothing.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.stmts {
		_ = st.Close()
	}
	c.stmts, c.closed = nil, true
}
