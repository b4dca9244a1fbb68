package store_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func createChallenge(t *testing.T, db *store.DB, w *obsqra.WalletChallenge) {
	t.Helper()
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.CreateWalletChallenge(context.Background(), w) }); err != nil {
		t.Fatalf("CreateWalletChallenge(%s) = %v", w.Nonce, err)
	}
}

func consumeChallenge(db *store.DB, nonce string, userID int64, now time.Time) (*obsqra.WalletChallenge, error) {
	var w *obsqra.WalletChallenge
	err := db.WithTx(context.Background(), func(tx *store.Tx) error {
		var err error
		w, err = tx.ConsumeWalletChallenge(context.Background(), nonce, userID, now)
		return err
	})
	return w, err
}

func TestWalletChallenges(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		w := &obsqra.WalletChallenge{
			Nonce: "0123456789abcdef0123456789abcdef", UserID: ada.ID,
			Address: *mustFelt(t, "0x49D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7"),
			ChainID: "SN_SEPOLIA", IssuedAt: testTime, ExpiresAt: testTime.Add(5 * time.Minute),
		}
		createChallenge(t, db, w)
		if w.IssuedAt != stampUTC(testTime) {
			t.Errorf("CreateWalletChallenge set IssuedAt %v, want %v in UTC", w.IssuedAt, testTime)
		}
		err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateWalletChallenge(ctx, w) })
		wantCode(t, "CreateWalletChallenge(same nonce)", err, obsqra.ECONFLICT)

		_, err = consumeChallenge(db, w.Nonce, bob.ID, testTime)
		wantCode(t, "ConsumeWalletChallenge(another user's)", err, obsqra.ENOTFOUND)
		_, err = consumeChallenge(db, "ffffffffffffffffffffffffffffffff", ada.ID, testTime)
		wantCode(t, "ConsumeWalletChallenge(unknown)", err, obsqra.ENOTFOUND)

		// Of many attempts at once, one consumes it; the others are told
		// it is used.
		used := testTime.Add(time.Minute)
		var wg sync.WaitGroup
		results := make([]error, 8)
		var got *obsqra.WalletChallenge
		var mu sync.Mutex
		for i := range results {
			wg.Go(func() {
				c, err := consumeChallenge(db, w.Nonce, ada.ID, used)
				results[i] = err
				if err == nil {
					mu.Lock()
					got = c
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		ok := 0
		for i, err := range results {
			switch obsqra.ErrorCode(err) {
			case "":
				ok++
			case obsqra.ECONFLICT:
			default:
				t.Errorf("ConsumeWalletChallenge attempt %d = %v, want nil or ECONFLICT", i, err)
			}
		}
		want := *w
		want.UsedAt = ptr(stampUTC(used))
		if ok != 1 || !reflect.DeepEqual(got, &want) {
			t.Errorf("ConsumeWalletChallenge succeeded %d times with %+v, want once with %+v", ok, got, &want)
		}

		// The latest challenge of a user for an address, used or not.
		newer := &obsqra.WalletChallenge{Nonce: "00000000000000000000000000000001", UserID: ada.ID, Address: w.Address,
			ChainID: "SN_SEPOLIA", IssuedAt: testTime.Add(2 * time.Minute), ExpiresAt: testTime.Add(7 * time.Minute)}
		createChallenge(t, db, newer)
		if c, err := db.LatestWalletChallenge(ctx, ada.ID, w.Address); err != nil || c.Nonce != newer.Nonce || c.UsedAt != nil {
			t.Errorf("LatestWalletChallenge(ada) = %+v, %v, want %s unused", c, err, newer.Nonce)
		}
		_, err = db.LatestWalletChallenge(ctx, bob.ID, w.Address)
		wantCode(t, "LatestWalletChallenge(bob, none)", err, obsqra.ENOTFOUND)
		if _, err := consumeChallenge(db, newer.Nonce, ada.ID, used); err != nil {
			t.Fatal(err)
		}
		if c, err := db.LatestWalletChallenge(ctx, ada.ID, w.Address); err != nil || c.UsedAt == nil {
			t.Errorf("LatestWalletChallenge(after use) = %+v, %v, want it used", c, err)
		}

		// Retiring marks the user's unused challenges for the address used.
		spare := &obsqra.WalletChallenge{Nonce: "00000000000000000000000000000002", UserID: bob.ID, Address: w.Address,
			ChainID: "SN_SEPOLIA", IssuedAt: testTime, ExpiresAt: testTime.Add(5 * time.Minute)}
		createChallenge(t, db, spare)
		inTx(t, db, func(tx *store.Tx) {
			if err := tx.RetireWalletChallenges(ctx, bob.ID, w.Address, used); err != nil {
				t.Fatal(err)
			}
		})
		if c, err := db.LatestWalletChallenge(ctx, bob.ID, w.Address); err != nil || c.UsedAt == nil {
			t.Errorf("LatestWalletChallenge(after retiring) = %+v, %v, want it used", c, err)
		}

		// Expired challenges go; live ones stay.
		live := &obsqra.WalletChallenge{Nonce: "abcdefabcdefabcdefabcdefabcdefab", UserID: bob.ID, Address: w.Address,
			ChainID: "0x534e5f5345504f4c4941", IssuedAt: testTime.Add(time.Hour), ExpiresAt: testTime.Add(time.Hour + 5*time.Minute)}
		createChallenge(t, db, live)
		if n, err := db.PruneWalletChallenges(ctx, testTime.Add(10*time.Minute)); err != nil || n != 3 {
			t.Errorf("PruneWalletChallenges = %d, %v, want 3", n, err)
		}
		_, err = consumeChallenge(db, w.Nonce, ada.ID, used)
		wantCode(t, "ConsumeWalletChallenge(pruned)", err, obsqra.ENOTFOUND)
		if c, err := consumeChallenge(db, live.Nonce, bob.ID, used); err != nil || c.Nonce != live.Nonce {
			t.Errorf("ConsumeWalletChallenge(live) = %+v, %v", c, err)
		}

		bad := *live
		bad.Nonce = "ABCDEFABCDEFABCDEFABCDEFABCDEFAB"
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateWalletChallenge(ctx, &bad) }); err == nil {
			t.Error("CreateWalletChallenge(upper-case nonce) = nil, want refused")
		}
	})
}
