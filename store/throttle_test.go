package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestThrottle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		lock := func(key string) (th store.Throttle, err error) {
			err = db.WithTx(ctx, func(tx *store.Tx) (err error) {
				th, err = tx.LockThrottle(ctx, key)
				return err
			})
			return th, err
		}

		if got, err := lock("ip:10.0.0.1"); err != nil || got != (store.Throttle{Key: "ip:10.0.0.1"}) {
			t.Fatalf("LockThrottle(new key) = %+v, %v, want a zero Throttle with Key set", got, err)
		}

		saved := store.Throttle{Key: "ip:10.0.0.1", Failures: 3, WindowStart: testTime, Penalty: 2}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.SaveThrottle(ctx, saved) }); err != nil {
			t.Fatalf("SaveThrottle(%+v) = %v, want nil", saved, err)
		}
		want := saved
		want.WindowStart = stampUTC(testTime)
		if got, err := lock("ip:10.0.0.1"); err != nil || got != want {
			t.Fatalf("LockThrottle after SaveThrottle = %+v, %v, want %+v", got, err, want)
		}

		// Saving again replaces the row; a zero window is stored as none.
		saved = store.Throttle{Key: "ip:10.0.0.1", Failures: 0, Penalty: 3}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.SaveThrottle(ctx, saved) }); err != nil {
			t.Fatalf("SaveThrottle(%+v) = %v, want nil", saved, err)
		}
		if got, err := lock("ip:10.0.0.1"); err != nil || got != saved {
			t.Fatalf("LockThrottle after second SaveThrottle = %+v, %v, want %+v", got, err, saved)
		}

		for range 2 { // deleting a missing key is fine too
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.DeleteThrottle(ctx, "ip:10.0.0.1") }); err != nil {
				t.Fatalf("DeleteThrottle = %v, want nil", err)
			}
		}
		if got, err := lock("ip:10.0.0.1"); err != nil || got != (store.Throttle{Key: "ip:10.0.0.1"}) {
			t.Fatalf("LockThrottle after DeleteThrottle = %+v, %v, want a zero Throttle with Key set", got, err)
		}
	})
}

// TestThrottleConcurrentIncrements has n units of work per key read,
// increment and save keys that have no row yet: none may read a stale count.
// Several keys at once make a lost update likelier to show.
func TestThrottleConcurrentIncrements(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		const n = 20
		keys := []string{"email:a@example.com", "email:b@example.com", "ip:10.0.0.1"}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, key := range keys {
			for range n {
				wg.Go(func() {
					<-start
					err := db.WithTx(ctx, func(tx *store.Tx) error {
						th, err := tx.LockThrottle(ctx, key)
						if err != nil {
							return err
						}
						if th.WindowStart.IsZero() {
							th.WindowStart = time.Now()
						}
						th.Failures++
						time.Sleep(2 * time.Millisecond) // widen the window a lost update needs
						return tx.SaveThrottle(ctx, th)
					})
					if err != nil {
						t.Errorf("WithTx(LockThrottle(%q); Failures++; SaveThrottle) = %v", key, err)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for _, key := range keys {
			var got store.Throttle
			err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
				got, err = tx.LockThrottle(ctx, key)
				return err
			})
			if err != nil || got.Failures != n {
				t.Errorf("after %d concurrent increments, LockThrottle(%q) = %+v, %v, want Failures %d", n, key, got, err, n)
			}
		}
	})
}
