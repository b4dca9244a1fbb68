package server

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/obsqra/obsqra"
)

// BenchmarkReadCacheEntryHeap compares what the read cache accounts for
// a kept answer (the bytes READ_CACHE_BYTES bounds) with what the heap
// holds for it: 2,000 answers of 600 bytes to requests of about 90, the
// heap measured with them and after Stop dropped them.
func BenchmarkReadCacheEntryHeap(b *testing.B) {
	var accounted, heap float64
	for b.Loop() {
		accounted, heap = entryHeap(b)
	}
	b.ReportMetric(accounted, "accounted-B/answer")
	b.ReportMetric(heap, "heap-B/answer")
}

func entryHeap(t testing.TB) (accounted, heap float64) {
	gens := obsqra.NewGenerations(nil)
	gens.Start()
	c := NewReadCache(ReadCacheOptions{MaxBytes: 1 << 30, Fields: map[string]obsqra.CacheScope{"Query.x": obsqra.CachePublic}, Generations: gens})
	op := &ast.OperationDefinition{Operation: ast.Query, SelectionSet: ast.SelectionSet{&ast.Field{Name: "x", ObjectDefinition: &ast.Definition{Name: "Query"}}}}
	rc := &graphql.OperationContext{Doc: &ast.QueryDocument{}, Operation: op}
	data := bytes.Repeat([]byte("a"), 600)
	var with, without runtime.MemStats
	for i := range 2000 {
		body := fmt.Appendf(nil, `{"query":"{ p%d: protocols { slug name category latestRisk { score observedAt } } }"}`, i)
		r := c.begin(t.Context(), mediaJSON, body)
		r.store(rc, &graphql.Response{Data: data})
	}
	st := c.Stats()
	runtime.GC()
	runtime.ReadMemStats(&with)
	c.Clear()
	runtime.GC()
	runtime.ReadMemStats(&without)
	n := float64(st.Entries)
	return float64(st.Bytes) / n, float64(int64(with.HeapAlloc)-int64(without.HeapAlloc)) / n
}
