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
			MaxVolatilityBps:      250,
			MaxLiquidityTier:      0,
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

// TestUsers lists users by filter and page, newest first, each page in one
// statement; the email prefix is case-insensitive and literal (LIKE's %, _
// and the escape character \ match only themselves).
func TestUsers(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		byEmail := map[string]*obsqra.User{}
		for _, email := range []string{
			"ada@example.com", "Ada.Byron@Example.com", `a%b@example.com`, "abc@example.com",
			"a_b@example.com", "axb@example.com", `a\b@example.com`, "bob@example.com", "carol@example.com",
		} {
			u := newUser(email)
			switch email {
			case "Ada.Byron@Example.com":
				u.Role, u.EmailVerified = obsqra.RoleAdmin, true
			case "bob@example.com":
				u.Active = false
			case "carol@example.com":
				u.Active, u.EmailVerified = false, true
			case "ada@example.com":
				u.EmailVerified = true
			}
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
				t.Fatalf("CreateUser(%q) = %v", email, err)
			}
			byEmail[email] = u
		}
		yes, no := true, false
		admin := obsqra.RoleAdmin
		str := func(s string) *string { return &s }

		tests := []struct {
			name   string
			filter obsqra.UserFilter
			want   []string // newest first
		}{
			{"no filter", obsqra.UserFilter{}, []string{"carol@example.com", "bob@example.com", `a\b@example.com`, "axb@example.com",
				"a_b@example.com", "abc@example.com", `a%b@example.com`, "Ada.Byron@Example.com", "ada@example.com"}},
			{"empty prefix", obsqra.UserFilter{EmailPrefix: str("")}, []string{"carol@example.com", "bob@example.com", `a\b@example.com`,
				"axb@example.com", "a_b@example.com", "abc@example.com", `a%b@example.com`, "Ada.Byron@Example.com", "ada@example.com"}},
			{"prefix in another case", obsqra.UserFilter{EmailPrefix: str("ADA")}, []string{"Ada.Byron@Example.com", "ada@example.com"}},
			{"prefix that is a whole email", obsqra.UserFilter{EmailPrefix: str("Ada@Example.COM")}, []string{"ada@example.com"}},
			{"percent is literal", obsqra.UserFilter{EmailPrefix: str("a%")}, []string{`a%b@example.com`}},
			{"underscore is literal", obsqra.UserFilter{EmailPrefix: str("a_")}, []string{"a_b@example.com"}},
			{"backslash is literal", obsqra.UserFilter{EmailPrefix: str(`a\`)}, []string{`a\b@example.com`}},
			{"backslash before a percent", obsqra.UserFilter{EmailPrefix: str(`a\%`)}, nil},
			{"no match", obsqra.UserFilter{EmailPrefix: str("zed")}, nil},
			{"role", obsqra.UserFilter{Role: &admin}, []string{"Ada.Byron@Example.com"}},
			{"inactive", obsqra.UserFilter{Active: &no}, []string{"carol@example.com", "bob@example.com"}},
			{"verified", obsqra.UserFilter{EmailVerified: &yes}, []string{"carol@example.com", "Ada.Byron@Example.com", "ada@example.com"}},
			{"active and verified", obsqra.UserFilter{Active: &yes, EmailVerified: &yes}, []string{"Ada.Byron@Example.com", "ada@example.com"}},
			{"every field", obsqra.UserFilter{EmailPrefix: str("ada"), Role: &admin, Active: &yes, EmailVerified: &yes}, []string{"Ada.Byron@Example.com"}},
		}
		for _, tt := range tests {
			before := db.Statements()
			got, err := db.Users(ctx, tt.filter, 0, 100)
			if ran := db.Statements() - before; err != nil || ran != 1 {
				t.Fatalf("%s: Users() = %v in %d statements, want 1", tt.name, err, ran)
			}
			var emails []string
			for _, u := range got {
				emails = append(emails, u.Email)
			}
			if !reflect.DeepEqual(emails, tt.want) {
				t.Errorf("%s: Users() = %q, want %q", tt.name, emails, tt.want)
			}
		}

		// Whole rows, as UserByID reads them.
		got, err := db.Users(ctx, obsqra.UserFilter{EmailPrefix: str("carol")}, 0, 1)
		if want := byEmail["carol@example.com"]; err != nil || len(got) != 1 || !reflect.DeepEqual(&got[0], want) {
			t.Errorf("Users(carol) = %+v, %v, want %+v", got, err, want)
		}

		// Pages: limit rows after the cursor's id, newest first, until none
		// are left; a page of exactly the rows left, and one past them.
		var walked []string
		var after int64
		for page := 0; ; page++ {
			rows, err := db.Users(ctx, obsqra.UserFilter{}, after, 4)
			if err != nil {
				t.Fatalf("Users(after %d, 4) = %v", after, err)
			}
			for _, u := range rows {
				walked = append(walked, u.Email)
			}
			if len(rows) < 4 {
				if page != 2 || len(rows) != 1 {
					t.Errorf("the walk ended at page %d with %d rows, want page 2 with 1", page, len(rows))
				}
				break
			}
			after = rows[len(rows)-1].ID
		}
		if want := tests[0].want; !reflect.DeepEqual(walked, want) {
			t.Errorf("walking pages of 4 gave %q, want %q", walked, want)
		}
		oldest := byEmail["ada@example.com"].ID
		if rows, err := db.Users(ctx, obsqra.UserFilter{}, oldest, 4); err != nil || len(rows) != 0 {
			t.Errorf("Users(after the oldest) = %+v, %v, want none", rows, err)
		}
		second := byEmail["Ada.Byron@Example.com"].ID
		if rows, err := db.Users(ctx, obsqra.UserFilter{EmailPrefix: str("ada")}, second, 1); err != nil || len(rows) != 1 || rows[0].ID != oldest {
			t.Errorf("Users(ada, after Ada.Byron, 1) = %+v, %v, want ada@example.com", rows, err)
		}
		if n := len(tests[0].want); n != 9 {
			t.Fatalf("%d users, want 9", n)
		}
		for _, limit := range []int{9, 10} {
			rows, err := db.Users(ctx, obsqra.UserFilter{}, 0, limit)
			if err != nil || len(rows) != 9 {
				t.Errorf("Users(limit %d) = %d rows, %v, want all 9", limit, len(rows), err)
			}
		}
		if rows, err := db.Users(ctx, obsqra.UserFilter{}, 0, 8); err != nil || len(rows) != 8 {
			t.Errorf("Users(limit 8) = %d rows, %v, want 8", len(rows), err)
		}

		_, err = db.Users(ctx, obsqra.UserFilter{}, 0, 0)
		wantCode(t, "Users(limit 0)", err, obsqra.EINVALID)
	})
}
