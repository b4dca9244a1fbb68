package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// fixedClock returns a clock stuck at t, for db.Now.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// testTime has nanoseconds and a zone, to show that the store keeps times in
// UTC at microsecond resolution.
var testTime = time.Date(2025, 11, 25, 20, 45, 1, 123456789, time.FixedZone("CET", 3600))

// newUser returns a valid user that is not stored yet.
func newUser(email string) *obsqra.User {
	return &obsqra.User{
		Email:        email,
		FullName:     "Ada Lovelace",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
		Role:         obsqra.RoleUser,
		Active:       true,
		Preferences:  obsqra.DefaultPreferences(),
	}
}

// createUser stores a new user with the given email in its own unit of work.
func createUser(t *testing.T, db *store.DB, email string) *obsqra.User {
	t.Helper()
	u := newUser(email)
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.CreateUser(context.Background(), u) }); err != nil {
		t.Fatalf("CreateUser(%q) = %v, want nil", email, err)
	}
	return u
}

// wantCode fails the test unless err carries the error code want.
func wantCode(t *testing.T, call string, err error, want string) {
	t.Helper()
	if got := obsqra.ErrorCode(err); got != want {
		t.Fatalf("%s = %v (code %q), want code %q", call, err, got, want)
	}
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"mysql://root@localhost/db",
		"data/obsqra.sqlite",
		"",
		"sqlite:",
		"sqlite::memory:",
		"sqlite:data/x.db?mode=ro",
	} {
		_, err := store.Open(context.Background(), url)
		wantCode(t, fmt.Sprintf("Open(%q)", url), err, obsqra.EINVALID)
	}
	_, err := store.Open(context.Background(), "mysql://root:secret@localhost/db")
	if msg := obsqra.ErrorMessage(err); msg == "" || strings.Contains(msg, "secret") || !strings.Contains(msg, "DATABASE_URL") {
		t.Errorf("Open(mysql URL) message = %q, want one naming DATABASE_URL's forms and hiding the password", msg)
	}
}

func TestOpenSQLiteURLForms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ url, file string }{
		{"sqlite:" + filepath.Join(dir, "a", "one.db"), filepath.Join(dir, "a", "one.db")},
		{"sqlite://" + filepath.Join(dir, "b", "two.db"), filepath.Join(dir, "b", "two.db")},
		{"file:" + filepath.Join(dir, "c", "three.sqlite"), filepath.Join(dir, "c", "three.sqlite")},
		{filepath.Join(dir, "d", "e", "four.db"), filepath.Join(dir, "d", "e", "four.db")},
	} {
		ctx := context.Background()
		if err := store.Migrate(ctx, tc.url); err != nil {
			t.Fatalf("Migrate(%q) = %v, want nil", tc.url, err)
		}
		if _, err := os.Stat(tc.file); err != nil {
			t.Fatalf("after Migrate(%q): %v", tc.url, err)
		}
		db, err := store.Open(ctx, tc.url)
		if err != nil {
			t.Fatalf("Open(%q) = %v, want nil", tc.url, err)
		}
		if got := db.Dialect(); got != store.DialectSQLite {
			t.Errorf("Open(%q).Dialect() = %q, want %q", tc.url, got, store.DialectSQLite)
		}
		// Migrate left the schema in place: the tables are there.
		_, err = db.UserByID(ctx, 1)
		wantCode(t, fmt.Sprintf("Open(%q).UserByID(1)", tc.url), err, obsqra.ENOTFOUND)
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}
}

func TestDialectAndPing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		if err := db.Ping(context.Background()); err != nil {
			t.Fatalf("Ping() = %v, want nil", err)
		}
		if !strings.HasSuffix(t.Name(), "/"+db.Dialect()) {
			t.Errorf("Dialect() = %q in subtest %s", db.Dialect(), t.Name())
		}
	})
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		// storetest has migrated once already.
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatalf("second Migrate() = %v, want nil", err)
		}
		createUser(t, db, "again@example.com")
	})
}

func TestWithTxCommitsAndRollsBack(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()

		// An error from fn comes back unchanged, and nothing of the unit of
		// work stays: neither the change nor its event.
		fnErr := obsqra.Errorf(obsqra.EFORBIDDEN, "no")
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			u := newUser("rollback@example.com")
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			if err := tx.AppendEvent(ctx, &obsqra.Event{Topic: "user.updated", OwnerID: u.ID}); err != nil {
				return err
			}
			return fnErr
		})
		if err != fnErr {
			t.Fatalf("WithTx(fn returning %v) = %v, want the same error", fnErr, err)
		}
		_, err = db.UserByEmail(ctx, "rollback@example.com")
		wantCode(t, `after rollback, UserByEmail("rollback@example.com")`, err, obsqra.ENOTFOUND)
		if events, err := db.EventsAfter(ctx, 0, 10); err != nil || len(events) != 0 {
			t.Fatalf("after rollback, EventsAfter(0, 10) = %v, %v, want no events", events, err)
		}

		// A panic rolls back and goes on.
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("WithTx(fn panicking) recovered %v, want boom", r)
				}
			}()
			db.WithTx(ctx, func(tx *store.Tx) error {
				if err := tx.CreateUser(ctx, newUser("panic@example.com")); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		_, err = db.UserByEmail(ctx, "panic@example.com")
		wantCode(t, `after panic, UserByEmail("panic@example.com")`, err, obsqra.ENOTFOUND)

		// A nil error commits both.
		var u *obsqra.User
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			u = newUser("commit@example.com")
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			// The unit of work sees its own change.
			if _, err := tx.UserByID(ctx, u.ID); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, &obsqra.Event{Topic: "user.updated", OwnerID: u.ID})
		})
		if err != nil {
			t.Fatalf("WithTx(fn returning nil) = %v, want nil", err)
		}
		if _, err := db.UserByID(ctx, u.ID); err != nil {
			t.Fatalf("after commit, UserByID(%d) = %v, want the user", u.ID, err)
		}
		if events, err := db.EventsAfter(ctx, 0, 10); err != nil || len(events) != 1 || events[0].OwnerID != u.ID {
			t.Fatalf("after commit, EventsAfter(0, 10) = %v, %v, want one event of user %d", events, err, u.ID)
		}
	})
}

func TestWithTxEndsWithContext(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := db.WithTx(ctx, func(tx *store.Tx) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("WithTx(canceled context) = %v, want context.Canceled", err)
		}
	})
}
