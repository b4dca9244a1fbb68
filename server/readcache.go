package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
)

// ReadCache keeps the encoded answers of queries, and answers the same
// request again from its encoding until an event that can change it
// arrives. It is exact, not a time-to-live cache:
//
//   - A document is cached only when every field it selects has a
//     CacheScope (ReadCacheOptions.Fields): values that change only with
//     events of the outbox, the UTC day and, for a viewer's own fields, the
//     viewer's account row (read for every request, and changed only with
//     the viewer's own events).
//   - Every answer is stamped, before it is computed, with the
//     generations (obsqra.Generations) of what it depends on: public
//     events, the viewer's own events, the day. An answer is reused only
//     while its stamp is current, so it never reflects less than the
//     events this instance had dispatched when its request started. The
//     generations say no (and the cache is neither read nor written) while
//     the hub is behind this process's own writes, before the hub has its
//     starting position and after it stopped.
//
// The key is the viewer, the response's media type and the request body,
// compared byte for byte, so a hit is the answer that executing the same
// request would give: aliases, fragments, directives and variables
// included. Only answers without errors are kept. Their bytes are bounded
// (MaxBytes): past it, stale entries and then others are evicted, and an
// answer that does not fit is served from the database as if there were
// no cache.
type ReadCache struct {
	opts ReadCacheOptions
	seed maphash.Seed

	mu      sync.RWMutex
	entries map[uint64]*cacheEntry
	bytes   int64

	hits, misses, stores, evictions atomic.Int64
}

// ReadCacheOptions configure a ReadCache.
type ReadCacheOptions struct {
	// MaxBytes bounds the bytes of the entries (request body, answer and
	// bookkeeping); 0 keeps nothing.
	MaxBytes int64
	// Fields are the scopes of the cacheable fields, by coordinate
	// ("Type.field"; "Type.*" for every field of Type). __typename is
	// always public.
	Fields map[string]obsqra.CacheScope
	// Generations are the hub's (obsqra.Generations): nothing is kept or
	// reused while they say no. Nil keeps nothing.
	Generations *obsqra.Generations
	// Now is the clock whose UTC day stamps answers; time.Now when nil.
	Now func() time.Time
}

// NewReadCache returns a cache that keeps nothing until its Generations
// start.
func NewReadCache(opts ReadCacheOptions) *ReadCache {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &ReadCache{opts: opts, seed: maphash.MakeSeed(), entries: make(map[uint64]*cacheEntry)}
}

// Clear drops every kept answer.
func (c *ReadCache) Clear() {
	c.mu.Lock()
	clear(c.entries)
	c.bytes = 0
	c.mu.Unlock()
}

// ReadCacheStats are a ReadCache's counters.
type ReadCacheStats struct {
	Entries                         int
	Bytes                           int64
	Hits, Misses, Stores, Evictions int64
}

// Stats returns the cache's counters.
func (c *ReadCache) Stats() ReadCacheStats {
	c.mu.RLock()
	n, b := len(c.entries), c.bytes
	c.mu.RUnlock()
	return ReadCacheStats{Entries: n, Bytes: b, Hits: c.hits.Load(), Misses: c.misses.Load(), Stores: c.stores.Load(), Evictions: c.evictions.Load()}
}

// cacheStamp is what an answer depended on when its request started.
type cacheStamp struct {
	gen obsqra.Stamp
	day obsqra.Date
}

// cacheViewer identifies whom an answer was for: 0 for anonymous
// requests, else the user and a fingerprint of their account row.
type cacheViewer struct {
	user int64
	fp   uint64
}

// cacheEntry is one kept answer.
type cacheEntry struct {
	viewer cacheViewer
	media  string
	body   []byte // the request's body
	scope  obsqra.CacheScope
	stamp  cacheStamp
	// data is the answer's data, as JSON.
	data   []byte
	opName string
	// The operation's cost (see opCost): charged again at each hit.
	requested, price int64
	size             int64
}

// cacheEntryOverhead approximates an entry's bookkeeping bytes.
const cacheEntryOverhead = 256

// readRequest is one request's use of the cache.
type readRequest struct {
	c      *ReadCache
	key    uint64
	viewer cacheViewer
	media  string
	body   []byte
	stamp  cacheStamp
}

// begin returns the request's use of the cache, or nil when the cache
// may not serve it: off, behind this process's writes, or credentials
// that were refused.
func (c *ReadCache) begin(ctx context.Context, media string, body []byte) *readRequest {
	if c == nil || c.opts.MaxBytes <= 0 {
		return nil
	}
	u, err := obsqra.Viewer(ctx)
	if err != nil {
		return nil
	}
	r := &readRequest{c: c, media: media, body: body}
	if u != nil {
		r.viewer = cacheViewer{user: u.ID, fp: c.fingerprint(u)}
	}
	gen, ok := c.opts.Generations.Stamp(r.viewer.user)
	if !ok {
		return nil
	}
	r.stamp = cacheStamp{gen: gen, day: obsqra.DateOf(c.opts.Now())}
	var h maphash.Hash
	h.SetSeed(c.seed)
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(r.viewer.user))
	binary.LittleEndian.PutUint64(b[8:], r.viewer.fp)
	_, _ = h.Write(b[:])
	_, _ = h.WriteString(media)
	_, _ = h.Write(body)
	r.key = h.Sum64()
	return r
}

// fingerprint hashes every field of u's account row that an answer may
// show or depend on.
func (c *ReadCache) fingerprint(u *obsqra.User) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	sep := func() { _ = h.WriteByte(0) }
	_, _ = h.WriteString(u.Email)
	sep()
	_, _ = h.WriteString(u.FullName)
	sep()
	_, _ = h.WriteString(u.PasswordHash)
	sep()
	if u.WalletAddress != nil {
		_, _ = h.WriteString(u.WalletAddress.String())
	}
	sep()
	_, _ = h.WriteString(string(u.Role))
	sep()
	p := u.Preferences
	_, _ = h.WriteString(string(p.RiskTolerance))
	var b [8 * 8]byte
	flags := uint64(0)
	for i, f := range []bool{u.EmailVerified, u.Active, p.AutoRebalance, p.EmailAlerts} {
		if f {
			flags |= 1 << i
		}
	}
	binary.LittleEndian.PutUint64(b[0:], flags)
	binary.LittleEndian.PutUint64(b[8:], uint64(p.RebalanceThresholdBps))
	binary.LittleEndian.PutUint64(b[16:], uint64(p.MaxSingleBps))
	binary.LittleEndian.PutUint64(b[24:], uint64(p.MinDiversification))
	binary.LittleEndian.PutUint64(b[32:], uint64(u.UpdatedAt.UnixNano()))
	binary.LittleEndian.PutUint64(b[40:], uint64(u.CreatedAt.UnixNano()))
	binary.LittleEndian.PutUint64(b[48:], uint64(p.MaxVolatilityBps))
	binary.LittleEndian.PutUint64(b[56:], uint64(p.MaxLiquidityTier))
	_, _ = h.Write(b[:64])
	return h.Sum64()
}

// current reports whether an answer stamped s, of scope, is still
// current for a request stamped now.
func current(s, now cacheStamp, scope obsqra.CacheScope) bool {
	return s.gen.Public == now.gen.Public && s.day == now.day && (scope != obsqra.CacheViewer || s.gen.Owner == now.gen.Owner)
}

// lookup returns the kept answer to r, or nil.
func (r *readRequest) lookup() *cacheEntry {
	c := r.c
	c.mu.RLock()
	e := c.entries[r.key]
	c.mu.RUnlock()
	if e == nil || e.viewer != r.viewer || e.media != r.media || !bytes.Equal(e.body, r.body) || !current(e.stamp, r.stamp, e.scope) {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e
}

// store keeps the answer resp to r's operation rc, when its document is
// cacheable, it has no errors and nothing newer has been observed since r
// began.
func (r *readRequest) store(rc *graphql.OperationContext, resp *graphql.Response) {
	c := r.c
	if rc == nil || rc.Operation == nil || rc.Operation.Operation != ast.Query || resp == nil ||
		len(resp.Errors) > 0 || resp.Data == nil || resp.HasNext != nil || resp.Label != "" || resp.Path != nil {
		return
	}
	scope := c.scopeOf(rc.Doc, rc.Operation)
	if scope == obsqra.CacheNever || scope == obsqra.CacheViewer && r.viewer.user == 0 {
		return
	}
	if !c.opts.Generations.Running() {
		return
	}
	e := &cacheEntry{viewer: r.viewer, media: r.media, body: bytes.Clone(r.body), scope: scope, stamp: r.stamp,
		data: bytes.Clone(resp.Data), opName: rc.Operation.Name}
	if oc := costOf(rc); oc != nil {
		e.requested, e.price = oc.requested, oc.price
	}
	e.size = int64(len(e.body)+len(e.data)+len(e.opName)+len(e.media)) + cacheEntryOverhead
	if e.size > c.opts.MaxBytes/8 {
		return
	}
	// Stale already: an event arrived while it was computed.
	if !current(r.stamp, cacheStamp{gen: c.opts.Generations.Peek(r.viewer.user), day: obsqra.DateOf(c.opts.Now())}, scope) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[r.key]; old != nil {
		c.bytes -= old.size
		delete(c.entries, r.key)
	}
	if c.bytes+e.size > c.opts.MaxBytes {
		c.evict(e.size)
		if c.bytes+e.size > c.opts.MaxBytes {
			return
		}
	}
	c.entries[r.key] = e
	c.bytes += e.size
	c.stores.Add(1)
}

// evictScan bounds the entries evict looks at for stale ones.
const evictScan = 64

// evict makes room for need bytes (with c.mu held): stale entries first
// among a sample, then any (map order is random).
func (c *ReadCache) evict(need int64) {
	now := cacheStamp{gen: c.opts.Generations.Peek(0), day: obsqra.DateOf(c.opts.Now())}
	n := 0
	for k, e := range c.entries {
		if n++; n > evictScan || c.bytes+need <= c.opts.MaxBytes {
			break
		}
		// An owner's stamp is compared only for viewer scope, and a
		// public stamp that moved makes any entry stale.
		if e.stamp.gen.Public != now.gen.Public || e.stamp.day != now.day {
			c.drop(k, e)
		}
	}
	for k, e := range c.entries {
		if c.bytes+need <= c.opts.MaxBytes {
			return
		}
		c.drop(k, e)
	}
}

func (c *ReadCache) drop(k uint64, e *cacheEntry) {
	delete(c.entries, k)
	c.bytes -= e.size
	c.evictions.Add(1)
}

// maxScopeDepth bounds the fragments scopeOf follows (validation refuses
// cycles; the document limits bound depth already).
const maxScopeDepth = 64

// scopeOf returns the widest scope of the fields op selects, or
// CacheNever when one has none or a directive other than @skip and
// @include is used.
func (c *ReadCache) scopeOf(doc *ast.QueryDocument, op *ast.OperationDefinition) obsqra.CacheScope {
	if !plainDirectives(op.Directives) {
		return obsqra.CacheNever
	}
	return c.selectionScope(doc, op.SelectionSet, obsqra.CachePublic, 0)
}

func (c *ReadCache) selectionScope(doc *ast.QueryDocument, sel ast.SelectionSet, scope obsqra.CacheScope, depth int) obsqra.CacheScope {
	if depth > maxScopeDepth {
		return obsqra.CacheNever
	}
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			if !plainDirectives(s.Directives) {
				return obsqra.CacheNever
			}
			if s.Name == "__typename" {
				continue
			}
			if s.ObjectDefinition == nil {
				return obsqra.CacheNever
			}
			f, ok := c.opts.Fields[s.ObjectDefinition.Name+"."+s.Name]
			if !ok {
				f = c.opts.Fields[s.ObjectDefinition.Name+".*"]
			}
			if f == obsqra.CacheNever {
				return obsqra.CacheNever
			}
			scope = max(scope, f)
			if scope = c.selectionScope(doc, s.SelectionSet, scope, depth+1); scope == obsqra.CacheNever {
				return scope
			}
		case *ast.InlineFragment:
			if !plainDirectives(s.Directives) {
				return obsqra.CacheNever
			}
			if scope = c.selectionScope(doc, s.SelectionSet, scope, depth+1); scope == obsqra.CacheNever {
				return scope
			}
		case *ast.FragmentSpread:
			f := doc.Fragments.ForName(s.Name)
			if f == nil || !plainDirectives(s.Directives) || !plainDirectives(f.Directives) {
				return obsqra.CacheNever
			}
			if scope = c.selectionScope(doc, f.SelectionSet, scope, depth+1); scope == obsqra.CacheNever {
				return scope
			}
		default:
			return obsqra.CacheNever
		}
	}
	return scope
}

// plainDirectives reports whether ds holds only @skip and @include, whose
// outcome the request's body (its variables) fixes.
func plainDirectives(ds ast.DirectiveList) bool {
	for _, d := range ds {
		if d.Name != "skip" && d.Name != "include" {
			return false
		}
	}
	return true
}
