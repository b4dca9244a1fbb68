package server

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Codes (extensions.code) of the persisted-query errors. The first two are
// those Apollo's persisted-query link and Apollo Server use: on either the
// link sends the document again in full.
const (
	codePersistedQueryNotFound     = "PERSISTED_QUERY_NOT_FOUND"
	codePersistedQueryNotSupported = "PERSISTED_QUERY_NOT_SUPPORTED"
	// codePersistedQueryHashMismatch: the document sent does not hash to
	// the sha256Hash sent with it; it is neither run nor registered.
	codePersistedQueryHashMismatch = "PERSISTED_QUERY_HASH_MISMATCH"
	// codePersistedQueryNotTrusted: TrustedOnly, and the document is not
	// one of the trusted documents.
	codePersistedQueryNotTrusted = "PERSISTED_QUERY_NOT_TRUSTED"
)

// Defaults of the persisted queries.
const (
	// DefaultPersistedQueryCacheBytes bounds the documents registered by
	// automatic persisted queries: 8 MiB holds a frontend's few hundred
	// documents of a few KB many times over.
	DefaultPersistedQueryCacheBytes = 8 << 20
	// DefaultPersistedQueryMaxAge is the max-age of a cacheable answer (an
	// anonymous GET of a persisted query): short, so that a CDN absorbs a
	// burst of identical requests while the market data stays fresh.
	DefaultPersistedQueryMaxAge = 5 * time.Second
)

// persistedEntryOverhead is what the cache charges for an entry besides
// its hash and document: the list element, the map entry, two string
// headers. It keeps a cache of many tiny documents bounded too.
const persistedEntryOverhead = 128

// TrustedDocuments are the documents a frontend's build registered ahead of
// time (TRUSTED_DOCUMENTS), by the hex SHA-256 of their text. A client may
// send one by its hash alone, and with TrustedOnly nothing else runs.
type TrustedDocuments struct {
	byHash map[string]string
}

// OperationNames returns the names of the documents' operations, sorted,
// each once: the operation names metrics count by name (any other is
// counted as "other", so that no client can make new series). A document
// that does not parse names none.
func (d *TrustedDocuments) OperationNames() []string {
	if d == nil {
		return nil
	}
	seen := make(map[string]bool)
	for _, body := range d.byHash {
		doc, err := parser.ParseQuery(&ast.Source{Input: body})
		if err != nil {
			continue
		}
		for _, op := range doc.Operations {
			if op.Name != "" {
				seen[op.Name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Len returns how many documents there are.
func (d *TrustedDocuments) Len() int {
	if d == nil {
		return 0
	}
	return len(d.byHash)
}

// document returns the trusted document whose SHA-256 is hash.
func (d *TrustedDocuments) document(hash string) (string, bool) {
	if d == nil {
		return "", false
	}
	q, ok := d.byHash[hash]
	return q, ok
}

// LoadTrustedDocuments reads the manifest at path (see ParseTrustedDocuments).
func LoadTrustedDocuments(path string) (*TrustedDocuments, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read trusted documents: %w", err)
	}
	d, err := ParseTrustedDocuments(b)
	if err != nil {
		return nil, fmt.Errorf("trusted documents %s: %w", path, err)
	}
	return d, nil
}

// ParseTrustedDocuments reads a persisted-document manifest in either of
// the formats the client tools write:
//
//   - Apollo's generate-persisted-query-manifest:
//     {"format":"apollo-persisted-query-manifest","version":1,
//     "operations":[{"id":"<sha256>","name":…,"type":…,"body":"<document>"}]}
//   - GraphQL Code Generator's client preset (persistedDocuments: true),
//     persisted-documents.json: {"<sha256>":"<document>"}, the hash
//     optionally prefixed with "sha256:".
//
// Every id must be the hex SHA-256 of its document's text, the hash the
// clients send; a manifest with another hash (a different algorithm, or
// an edited document) is refused, naming the operation.
func ParseTrustedDocuments(b []byte) (*TrustedDocuments, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	d := &TrustedDocuments{byHash: make(map[string]string)}
	add := func(id, body string) error {
		hash := strings.ToLower(strings.TrimPrefix(id, "sha256:"))
		if got := sha256Hex(body); got != hash {
			return fmt.Errorf("document %q: its hash is %s, not the SHA-256 of its text (%s)", id, hash, got)
		}
		d.byHash[hash] = body
		return nil
	}
	if _, ok := probe["format"]; ok {
		var m struct {
			Format     string `json:"format"`
			Version    int    `json:"version"`
			Operations []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
				Body string `json:"body"`
			} `json:"operations"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("apollo manifest: %w", err)
		}
		if m.Format != "apollo-persisted-query-manifest" || m.Version != 1 {
			return nil, fmt.Errorf("format %q version %d: want apollo-persisted-query-manifest version 1", m.Format, m.Version)
		}
		for _, op := range m.Operations {
			if err := add(op.ID, op.Body); err != nil {
				return nil, fmt.Errorf("operation %s: %w", op.Name, err)
			}
		}
		return d, nil
	}
	for id, raw := range probe {
		var body string
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, fmt.Errorf("document %q: its value is not a string (want {\"<sha256>\": \"<document>\"})", id)
		}
		if err := add(id, body); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// sha256Hex is the lowercase hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// documentCache is an LRU of documents by their hash, bounded by the bytes
// it holds: each entry costs its hash, its document and
// persistedEntryOverhead. A document that alone exceeds the bound is not
// kept. It is safe for concurrent use.
type documentCache struct {
	maxBytes int64

	mu      sync.Mutex
	bytes   int64
	order   *list.List // of *documentEntry, most recently used first
	entries map[string]*list.Element
}

type documentEntry struct {
	hash, query string
}

func newDocumentCache(maxBytes int64) *documentCache {
	return &documentCache{maxBytes: maxBytes, order: list.New(), entries: make(map[string]*list.Element)}
}

func entryBytes(hash, query string) int64 {
	return int64(len(hash) + len(query) + persistedEntryOverhead)
}

// Get returns the document registered under hash and marks it used.
func (c *documentCache) Get(_ context.Context, hash string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(e)
	return e.Value.(*documentEntry).query, true
}

// Add registers query under hash, evicting the least recently used
// documents until the cache is within its bound.
func (c *documentCache) Add(_ context.Context, hash, query string) {
	size := entryBytes(hash, query)
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[hash]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.entries[hash] = c.order.PushFront(&documentEntry{hash: hash, query: query})
	c.bytes += size
	for c.bytes > c.maxBytes {
		oldest := c.order.Back()
		old := oldest.Value.(*documentEntry)
		c.order.Remove(oldest)
		delete(c.entries, old.hash)
		c.bytes -= entryBytes(old.hash, old.query)
	}
}

// Bytes returns the bytes the cache holds.
func (c *documentCache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

var _ graphql.Cache[string] = (*documentCache)(nil)

// persistedQueries implements Apollo's automatic persisted queries
// (extensions.persistedQuery {version: 1, sha256Hash}) and trusted
// documents, over every transport. It runs before every other extension,
// so that documentLimits and gqlgen see the document a hash stands for.
//
//   - A hash alone runs the trusted document or the registered document
//     with that hash; neither: PERSISTED_QUERY_NOT_FOUND, on which the
//     client sends the document with its hash.
//   - A hash with a document registers the document, if it hashes to it
//     (else PERSISTED_QUERY_HASH_MISMATCH).
//   - With trustedOnly, a document that is not trusted (sent in full,
//     with or without a hash) is refused with PERSISTED_QUERY_NOT_TRUSTED
//     and nothing is registered.
//
// A GET of a query by hash alone is marked cacheable (see cacheControl).
type persistedQueries struct {
	cache       *documentCache
	trusted     *TrustedDocuments
	trustedOnly bool
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.ResponseInterceptor
} = (*persistedQueries)(nil)

// ExtensionName names the extension in gqlgen's stats.
func (p *persistedQueries) ExtensionName() string { return "PersistedQueries" }

// Validate accepts every schema.
func (p *persistedQueries) Validate(graphql.ExecutableSchema) error { return nil }

// persistedError is a refusal with its extensions.code.
func persistedError(code, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": code}}
}

// MutateOperationParameters puts the document a hash stands for into
// params.Query, registers documents sent with their hash, and refuses
// untrusted documents when trustedOnly.
func (p *persistedQueries) MutateOperationParameters(ctx context.Context, params *graphql.RawParams) *gqlerror.Error {
	ext, ok := params.Extensions["persistedQuery"]
	if !ok || ext == nil {
		if p.trustedOnly {
			if _, ok := p.trusted.document(sha256Hex(params.Query)); !ok {
				return persistedError(codePersistedQueryNotTrusted, "only trusted documents may run here, and this is not one of them")
			}
		}
		return nil
	}
	pq, _ := ext.(map[string]any)
	if pq == nil || !isOne(pq["version"]) {
		return persistedError(codePersistedQueryNotSupported, "extensions.persistedQuery must be {version: 1, sha256Hash}")
	}
	hash, _ := pq["sha256Hash"].(string)
	hash = strings.ToLower(hash)
	if len(hash) != sha256.Size*2 {
		return persistedError(codePersistedQueryNotSupported, "extensions.persistedQuery.sha256Hash must be 64 hexadecimal digits")
	}

	if params.Query == "" {
		if q, ok := p.trusted.document(hash); ok {
			params.Query = q
		} else if q, ok := p.cache.Get(ctx, hash); ok && !p.trustedOnly {
			params.Query = q
		} else {
			return persistedError(codePersistedQueryNotFound, "PersistedQueryNotFound")
		}
		if mark, ok := ctx.Value(cacheableKey{}).(*cacheable); ok {
			mark.byHash.Store(true)
		}
		return nil
	}
	if sha256Hex(params.Query) != hash {
		return persistedError(codePersistedQueryHashMismatch, "extensions.persistedQuery.sha256Hash is not the SHA-256 of the query")
	}
	if _, ok := p.trusted.document(hash); ok {
		return nil
	}
	if p.trustedOnly {
		return persistedError(codePersistedQueryNotTrusted, "only trusted documents may run here, and this is not one of them")
	}
	p.cache.Add(ctx, hash, params.Query)
	return nil
}

// isOne reports whether a decoded JSON value is the number 1 (the
// transports decode numbers as json.Number).
func isOne(v any) bool {
	switch n := v.(type) {
	case json.Number:
		return n.String() == "1"
	case float64:
		return n == 1
	}
	return false
}

// InterceptResponse lets a query sent by hash over a cacheable request be
// cached when it succeeded.
func (p *persistedQueries) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	mark, ok := ctx.Value(cacheableKey{}).(*cacheable)
	if !ok || !mark.byHash.Load() || resp == nil || len(resp.Errors) > 0 {
		return resp
	}
	if op := graphql.GetOperationContext(ctx); op != nil && op.Operation != nil && op.Operation.Operation == ast.Query {
		mark.ok.Store(true)
	}
	return resp
}

// cacheable is what persistedQueries learns about a request that
// cacheControl may let shared caches keep.
type cacheable struct {
	byHash atomic.Bool // the document was sent by its hash alone
	ok     atomic.Bool // and it is a query that succeeded
}

type cacheableKey struct{}

// cacheControl sets the Cache-Control of /graphql's answers. An anonymous
// GET (no Authorization, no Cookie) of a query sent by its hash alone
// that succeeded is the same for everyone: "public, max-age=maxAge", so a
// CDN may keep it (its URL names the document and the variables). Every
// other answer is "no-store": it may hold one user's data, or an error.
func cacheControl(maxAge time.Duration, next http.Handler) http.Handler {
	value := "public, max-age=" + strconv.Itoa(int(maxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" ||
			r.Header.Get("Upgrade") != "" {
			if r.Header.Get("Upgrade") == "" {
				w.Header().Set("Cache-Control", "no-store")
			}
			next.ServeHTTP(w, r)
			return
		}
		mark := &cacheable{}
		cw := &cacheWriter{ResponseWriter: w, mark: mark, value: value}
		next.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), cacheableKey{}, mark)))
	})
}

// cacheWriter sets Cache-Control when the answer's header is written,
// which is after the operation ran.
type cacheWriter struct {
	http.ResponseWriter
	mark    *cacheable
	value   string
	written bool
}

func (w *cacheWriter) setHeader(status int) {
	if w.written {
		return
	}
	w.written = true
	if status == http.StatusOK && w.mark.ok.Load() {
		w.Header().Set("Cache-Control", w.value)
		w.Header().Add("Vary", "Accept")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
}

// WriteHeader sets Cache-Control and writes the header.
func (w *cacheWriter) WriteHeader(code int) {
	w.setHeader(code)
	w.ResponseWriter.WriteHeader(code)
}

// Write sets Cache-Control if the header is not written yet, and writes.
func (w *cacheWriter) Write(b []byte) (int, error) {
	w.setHeader(http.StatusOK)
	return w.ResponseWriter.Write(b)
}

// Flush flushes the underlying writer.
func (w *cacheWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *cacheWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
