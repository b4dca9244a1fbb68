package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestFrozenPostgres freezes a throwaway PostgreSQL server under a store
// with a small pool. Every call ends with its context's deadline and
// EUNAVAILABLE, whether it holds a pooled connection, waits for one or
// opens one; after the thaw the same DB works again by itself, and what
// was acknowledged before the freeze is there.
func TestFrozenPostgres(t *testing.T) {
	t.Parallel()
	cluster := storetest.StartCluster(t)
	ctx := context.Background()
	opts := store.Options{StatementTimeout: time.Second, ConnectTimeout: time.Second, MaxOpenConns: 4}
	db, err := store.OpenWith(ctx, cluster.URL(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	acked := createUser(t, db, "before@example.com")

	// bounded runs fn with a deadline of d and checks that it returns
	// EUNAVAILABLE within d and a margin; while the server is frozen, for
	// the deadline (a stopped server refuses sooner).
	const d, margin = 300 * time.Millisecond, 2 * time.Second
	bounded := func(t *testing.T, call string, fn func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		if took := time.Since(start); took > d+margin {
			t.Errorf("%s took %v on a frozen server, want at most %v", call, took, d+margin)
		}
		wantCode(t, call, err, obsqra.EUNAVAILABLE)
		if len(cluster.FrozenPIDs()) > 0 && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s = %v, want the deadline in its chain", call, err)
		}
	}

	cluster.Freeze()
	t.Run("frozen read", func(t *testing.T) {
		bounded(t, "Protocols", func(ctx context.Context) error { _, err := db.Protocols(ctx); return err })
	})
	t.Run("frozen reads beyond the pool", func(t *testing.T) {
		// 4 connections: 26 calls wait for one, and 4 more than the pool
		// holds try to open one meanwhile.
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				bounded(t, fmt.Sprintf("UserByID #%d", i), func(ctx context.Context) error { _, err := db.UserByID(ctx, acked.ID); return err })
			})
		}
		wg.Wait()
	})
	t.Run("frozen write", func(t *testing.T) {
		bounded(t, "CreateUser", func(ctx context.Context) error {
			return db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, newUser("during@example.com")) })
		})
	})
	cluster.Thaw()

	t.Run("recovers", func(t *testing.T) {
		if _, err := db.Protocols(ctx); err != nil {
			t.Fatalf("Protocols after the thaw = %v", err)
		}
		got, err := db.UserByID(ctx, acked.ID)
		if err != nil || got.Email != acked.Email {
			t.Fatalf("UserByID(acknowledged) = %+v, %v, want %s", got, err, acked.Email)
		}
		createUser(t, db, "after@example.com")
	})

	t.Run("unreachable", func(t *testing.T) {
		cluster.Stop()
		bounded(t, "Protocols", func(ctx context.Context) error { _, err := db.Protocols(ctx); return err })
		// Refused at once, before any deadline: EUNAVAILABLE all the same.
		_, err := db.Protocols(ctx)
		wantCode(t, "Protocols on a stopped server", err, obsqra.EUNAVAILABLE)
		cluster.Start()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err = db.Protocols(ctx); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatalf("Protocols after a restart = %v", err)
		}
	})
}
