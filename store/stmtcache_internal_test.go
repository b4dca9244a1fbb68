package store

import (
	"context"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestStatementCache(t *testing.T) {
	t.Parallel()
	db := openSQLite(t)
	ctx := context.Background()
	cached := func() int {
		db.stmts.mu.RLock()
		defer db.stmts.mu.RUnlock()
		return len(db.stmts.stmts)
	}
	for range 3 {
		if _, err := db.UserByEmail(ctx, "nobody@example.com"); obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
			t.Fatalf("UserByEmail = %v, want ENOTFOUND", err)
		}
	}
	if n := cached(); n != 1 {
		t.Fatalf("after three reads of one query the cache holds %d statements, want 1", n)
	}
	// A transaction uses the statement prepared on the pool, and prepares
	// nothing new in the cache.
	err := db.WithTx(ctx, func(tx *Tx) error {
		_, err := tx.UserByEmail(ctx, "nobody@example.com")
		return err
	})
	if obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
		t.Fatalf("tx.UserByEmail = %v, want ENOTFOUND", err)
	}
	if st, ok := db.stmts.lookup(db.dialect.rebind("SELECT nonsense FROM nowhere")); ok || st != nil {
		t.Fatal("lookup of an unknown query found a statement")
	}
	// A query that cannot be prepared is not cached; the unprepared path
	// reports its error.
	if st := db.stmts.get(ctx, "SELECT nonsense FROM nowhere"); st != nil {
		t.Fatal("get(invalid query) returned a statement")
	}
	if n := cached(); n != 1 {
		t.Fatalf("cache holds %d statements after an invalid query, want 1", n)
	}
	db.stmts.close()
	if st := db.stmts.get(ctx, "SELECT 1"); st != nil {
		t.Fatal("get after close prepared a statement")
	}
}
