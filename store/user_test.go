package store_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func mustFelt(t *testing.T, s string) *obsqra.Felt {
	t.Helper()
	f, err := obsqra.ParseAddress(s)
	if err != nil {
		t.Fatalf("ParseAddress(%q) = %v", s, err)
	}
	return &f
}

func TestCreateAndReadUser(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)

		u := newUser("Ada.Lovelace@Example.com")
		u.WalletAddress = mustFelt(t, "0x49D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7")
		u.Role = obsqra.RoleAdmin
		u.EmailVerified = true
		u.Preferences.RiskTolerance = obsqra.RiskHigh
		u.Preferences.AutoRebalance = true
		u.Preferences.EmailAlerts = false
		u.Preferences.MaxSingleBps = 10000
		err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) })
		if err != nil {
			t.Fatalf("CreateUser(%q) = %v, want nil", u.Email, err)
		}
		if u.ID == 0 {
			t.Fatalf("CreateUser(%q) left ID 0", u.Email)
		}
		want := time.Date(2025, 11, 25, 19, 45, 1, 123456000, time.UTC)
		if u.CreatedAt != want || u.UpdatedAt != want {
			t.Errorf("CreateUser stamped CreatedAt, UpdatedAt = %v, %v, want %v", u.CreatedAt, u.UpdatedAt, want)
		}

		byID, err := db.UserByID(ctx, u.ID)
		if err != nil || !reflect.DeepEqual(byID, u) {
			t.Errorf("UserByID(%d) = %+v, %v, want %+v", u.ID, byID, err, u)
		}
		for _, email := range []string{"Ada.Lovelace@Example.com", "ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM"} {
			byEmail, err := db.UserByEmail(ctx, email)
			if err != nil || !reflect.DeepEqual(byEmail, u) {
				t.Errorf("UserByEmail(%q) = %+v, %v, want %+v", email, byEmail, err, u)
			}
		}
		if got, _ := db.UserByID(ctx, u.ID); got != nil && got.Email != "Ada.Lovelace@Example.com" {
			t.Errorf("UserByID(%d).Email = %q, want the email as entered", u.ID, got.Email)
		}

		// The same reads inside a unit of work.
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			if got, err := tx.UserByID(ctx, u.ID); err != nil || !reflect.DeepEqual(got, u) {
				t.Errorf("tx.UserByID(%d) = %+v, %v, want %+v", u.ID, got, err, u)
			}
			if got, err := tx.UserByEmail(ctx, "ADA.lovelace@example.com"); err != nil || !reflect.DeepEqual(got, u) {
				t.Errorf("tx.UserByEmail = %+v, %v, want %+v", got, err, u)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("WithTx = %v", err)
		}
	})
}

func TestUserNotFound(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		_, err := db.UserByID(ctx, 4242)
		wantCode(t, "UserByID(4242)", err, obsqra.ENOTFOUND)
		if msg := obsqra.ErrorMessage(err); msg != "user not found" {
			t.Errorf("UserByID(4242) message = %q, want %q", msg, "user not found")
		}
		_, err = db.UserByEmail(ctx, "nobody@example.com")
		wantCode(t, `UserByEmail("nobody@example.com")`, err, obsqra.ENOTFOUND)

		err = db.WithTx(ctx, func(tx *store.Tx) error {
			u := newUser("ghost@example.com")
			u.ID = 4242
			return tx.UpdateUser(ctx, u)
		})
		wantCode(t, "UpdateUser(id 4242)", err, obsqra.ENOTFOUND)
	})
}

func TestUserConflicts(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		wallet := mustFelt(t, "0x1234")
		first := newUser("grace@example.com")
		first.WalletAddress = wallet
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, first) }); err != nil {
			t.Fatalf("CreateUser(first) = %v", err)
		}

		// The same email in another case.
		err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, newUser("Grace@EXAMPLE.com")) })
		wantCode(t, `CreateUser("Grace@EXAMPLE.com")`, err, obsqra.ECONFLICT)
		if msg, want := obsqra.ErrorMessage(err), "email is already registered"; msg != want {
			t.Errorf(`CreateUser("Grace@EXAMPLE.com") message = %q, want %q`, msg, want)
		}

		// The same wallet, on create and on update.
		second := newUser("hopper@example.com")
		second.WalletAddress = mustFelt(t, "0x0000000000000000000000000000000000000000000000000000000000001234")
		err = db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, second) })
		wantCode(t, "CreateUser(same wallet)", err, obsqra.ECONFLICT)
		wantMsg := "wallet address is already linked to another user"
		if msg := obsqra.ErrorMessage(err); msg != wantMsg {
			t.Errorf("CreateUser(same wallet) message = %q, want %q", msg, wantMsg)
		}
		second.WalletAddress = nil
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, second) }); err != nil {
			t.Fatalf("CreateUser(no wallet) = %v, want nil", err)
		}
		// Many users may have no wallet.
		createUser(t, db, "third@example.com")
		second.WalletAddress = wallet
		err = db.WithTx(ctx, func(tx *store.Tx) error { return tx.UpdateUser(ctx, second) })
		wantCode(t, "UpdateUser(same wallet)", err, obsqra.ECONFLICT)
		if msg := obsqra.ErrorMessage(err); msg != wantMsg {
			t.Errorf("UpdateUser(same wallet) message = %q, want %q", msg, wantMsg)
		}
	})
}

func TestUpdateUser(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "turing@example.com")

		later := testTime.Add(90 * time.Minute)
		db.Now = fixedClock(later)
		u.FullName = "Alan Turing"
		u.PasswordHash = "new-hash"
		u.WalletAddress = mustFelt(t, "0xabc")
		u.EmailVerified = true
		u.Role = obsqra.RoleAdmin
		u.Active = false
		u.Preferences = obsqra.Preferences{
			RiskTolerance:         obsqra.RiskLow,
			AutoRebalance:         true,
			RebalanceThresholdBps: 0,
			MaxSingleBps:          1000,
			MinDiversification:    10,
			EmailAlerts:           false,
		}
		u.Email = "ignored@example.com" // not mutable
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.UpdateUser(ctx, u) }); err != nil {
			t.Fatalf("UpdateUser(%d) = %v, want nil", u.ID, err)
		}
		if want := stampUTC(later); u.UpdatedAt != want {
			t.Errorf("UpdateUser stamped UpdatedAt = %v, want %v", u.UpdatedAt, want)
		}
		u.Email = "turing@example.com"
		got, err := db.UserByID(ctx, u.ID)
		if err != nil || !reflect.DeepEqual(got, u) {
			t.Errorf("UserByID(%d) after UpdateUser = %+v, %v, want %+v", u.ID, got, err, u)
		}

		// Unlinking the wallet stores NULL again.
		u.WalletAddress = nil
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.UpdateUser(ctx, u) }); err != nil {
			t.Fatalf("UpdateUser(no wallet) = %v, want nil", err)
		}
		if got, err := db.UserByID(ctx, u.ID); err != nil || got.WalletAddress != nil {
			t.Errorf("UserByID(%d).WalletAddress = %v, %v, want nil", u.ID, got.WalletAddress, err)
		}
	})
}

// stampUTC is how the store keeps t: UTC, truncated to microseconds.
func stampUTC(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
