package store_test

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestEmailTokens(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		ada := createUser(t, db, "ada@example.com")
		hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
		create := func(token, purpose, newEmail string, expires time.Time) *store.EmailToken {
			t.Helper()
			tok := &store.EmailToken{UserID: ada.ID, Purpose: purpose, Hash: hash(token), NewEmail: newEmail,
				CreatedAt: testTime, ExpiresAt: expires}
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateEmailToken(ctx, tok) }); err != nil {
				t.Fatalf("CreateEmailToken: %v", err)
			}
			return tok
		}
		consume := func(token, purpose string, at time.Time) (*store.EmailToken, error) {
			var got *store.EmailToken
			err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
				got, err = tx.ConsumeEmailToken(ctx, purpose, hash(token), at)
				return err
			})
			return got, err
		}
		notFound := func(what string, err error) {
			t.Helper()
			if obsqra.ErrorCode(err) != obsqra.ENOTFOUND {
				t.Errorf("%s: %v, want ENOTFOUND", what, err)
			}
		}

		day := testTime.Add(24 * time.Hour)
		created := create("verify-1", store.TokenVerifyEmail, "", day)
		if created.ID == 0 {
			t.Fatal("no id")
		}
		_, err := consume("verify-1", store.TokenResetPassword, testTime)
		notFound("another purpose", err)
		_, err = consume("verify-2", store.TokenVerifyEmail, testTime)
		notFound("an unknown token", err)
		_, err = consume("verify-1", store.TokenVerifyEmail, day)
		notFound("at its expiry", err)
		got, err := consume("verify-1", store.TokenVerifyEmail, day.Add(-time.Microsecond))
		if err != nil || got.ID != created.ID || got.UserID != ada.ID || got.UsedAt == nil || got.NewEmail != "" {
			t.Fatalf("a microsecond before its expiry: %+v, %v", got, err)
		}
		_, err = consume("verify-1", store.TokenVerifyEmail, testTime)
		notFound("used already", err)

		// An email change's token carries the new address.
		create("change", store.TokenVerifyEmail, "ada@new.example", day)
		if got, err := consume("change", store.TokenVerifyEmail, testTime); err != nil || got.NewEmail != "ada@new.example" {
			t.Errorf("email change token: %+v, %v", got, err)
		}

		// Of concurrent attempts with one token, exactly one succeeds.
		create("reset", store.TokenResetPassword, "", day)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Go(func() {
				if _, err := consume("reset", store.TokenResetPassword, testTime); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("8 concurrent uses of one token: %d succeeded, want 1", wins)
		}

		// Revoking leaves no unused token of the purpose.
		create("reset-2", store.TokenResetPassword, "", day)
		create("reset-3", store.TokenResetPassword, "", day)
		var n int64
		if err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
			n, err = tx.RevokeEmailTokens(ctx, ada.ID, store.TokenResetPassword, testTime)
			return err
		}); err != nil || n != 2 {
			t.Fatalf("RevokeEmailTokens = %d, %v; want 2", n, err)
		}
		_, err = consume("reset-2", store.TokenResetPassword, testTime)
		notFound("revoked", err)

		for purpose, want := range map[string]time.Time{store.TokenResetPassword: stampUTC(testTime), "none": {}} {
			var at time.Time
			if err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
				at, err = tx.LatestEmailTokenAt(ctx, ada.ID, purpose, "")
				return err
			}); err != nil || !at.Equal(want) {
				t.Errorf("LatestEmailTokenAt(%s) = %v, %v; want %v", purpose, at, err, want)
			}
		}
		if n, err := db.PruneEmailTokens(ctx, day.Add(time.Second)); err != nil || n != 5 {
			t.Errorf("PruneEmailTokens = %d, %v; want all 5 (expired by then)", n, err)
		}
	})
}
