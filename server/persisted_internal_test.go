package server

import (
	"context"
	"strings"
	"testing"
)

// TestDocumentCacheBound fills the cache exactly to its bound, then one
// byte past it: the least recently used document goes, and the bytes held
// never exceed the bound.
func TestDocumentCacheBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	doc := func(c byte) string { return "{ " + strings.Repeat(string(c), 100) + " }" }
	hash := func(c byte) string { return sha256Hex(doc(c)) }
	per := entryBytes(hash('a'), doc('a'))
	c := newDocumentCache(3 * per)

	for _, k := range []byte("abc") {
		c.Add(ctx, hash(k), doc(k))
	}
	if got := c.Bytes(); got != 3*per {
		t.Fatalf("Bytes() at the limit = %d, want %d", got, 3*per)
	}
	for _, k := range []byte("abc") {
		if _, ok := c.Get(ctx, hash(k)); !ok {
			t.Errorf("Get(%c) at the limit = missing, want kept", k)
		}
	}
	// One byte less: the third document does not fit beside the first
	// two, and the least recently used (a) goes.
	small := newDocumentCache(3*per - 1)
	for _, k := range []byte("abc") {
		small.Add(ctx, hash(k), doc(k))
	}
	if got := small.Bytes(); got != 2*per {
		t.Errorf("Bytes() one past the limit = %d, want %d", got, 2*per)
	}
	if _, ok := small.Get(ctx, hash('a')); ok {
		t.Errorf("Get(a), the least recently used, one past the limit = kept, want evicted")
	}
	for _, k := range []byte("bc") {
		if _, ok := small.Get(ctx, hash(k)); !ok {
			t.Errorf("Get(%c) one past the limit = missing, want kept", k)
		}
	}
	// Use refreshes: after Get(b), adding a evicts c.
	small.Get(ctx, hash('b'))
	small.Add(ctx, hash('a'), doc('a'))
	if _, ok := small.Get(ctx, hash('c')); ok {
		t.Errorf("Get(c) after b was used and a added = kept, want evicted")
	}

	// A document larger than the whole cache is not kept, and evicts nothing.
	huge := strings.Repeat("x", int(3*per))
	c.Add(ctx, sha256Hex(huge), huge)
	if _, ok := c.Get(ctx, sha256Hex(huge)); ok {
		t.Error("a document over the bound was kept")
	}
	if _, ok := c.Get(ctx, hash('a')); !ok {
		t.Error("adding a document over the bound evicted others")
	}
}
