package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// createSession stores a live session of user for a day, in its own unit of
// work.
func createSession(t *testing.T, db *store.DB, id string, userID int64) *obsqra.Session {
	t.Helper()
	s := &obsqra.Session{ID: id, UserID: userID, ExpiresAt: db.Now().Add(24 * time.Hour)}
	if err := db.WithTx(context.Background(), func(tx *store.Tx) error { return tx.CreateSession(context.Background(), s) }); err != nil {
		t.Fatalf("CreateSession(%q) = %v, want nil", id, err)
	}
	return s
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func TestSessions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "lovelace@example.com")

		s := &obsqra.Session{ID: "sess-1", UserID: u.ID, ExpiresAt: testTime.Add(30 * 24 * time.Hour)}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateSession(ctx, s) }); err != nil {
			t.Fatalf("CreateSession = %v, want nil", err)
		}
		if want := stampUTC(testTime); s.CreatedAt != want {
			t.Errorf("CreateSession stamped CreatedAt = %v, want %v", s.CreatedAt, want)
		}
		if want := stampUTC(testTime.Add(30 * 24 * time.Hour)); s.ExpiresAt != want {
			t.Errorf("CreateSession kept ExpiresAt = %v, want %v", s.ExpiresAt, want)
		}

		got, err := db.SessionByID(ctx, "sess-1")
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Errorf("SessionByID(%q) = %+v, %v, want %+v", "sess-1", got, err, s)
		}
		gotS, gotU, err := db.SessionUser(ctx, "sess-1")
		if err != nil || !reflect.DeepEqual(gotS, s) || !reflect.DeepEqual(gotU, u) {
			t.Errorf("SessionUser(%q) = %+v, %+v, %v, want %+v, %+v", "sess-1", gotS, gotU, err, s, u)
		}

		_, err = db.SessionByID(ctx, "missing")
		wantCode(t, `SessionByID("missing")`, err, obsqra.ENOTFOUND)
		_, _, err = db.SessionUser(ctx, "missing")
		wantCode(t, `SessionUser("missing")`, err, obsqra.ENOTFOUND)

		err = db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateSession(ctx, &obsqra.Session{ID: "sess-1", UserID: u.ID}) })
		wantCode(t, `CreateSession(duplicate "sess-1")`, err, obsqra.ECONFLICT)

		// Revoking twice keeps the first time and reason.
		db.Now = fixedClock(testTime.Add(time.Hour))
		revoke := func(id, reason string) error {
			return db.WithTx(ctx, func(tx *store.Tx) error { return tx.RevokeSession(ctx, id, reason) })
		}
		if err := revoke("sess-1", obsqra.RevokeLogout); err != nil {
			t.Fatalf("RevokeSession(%q) = %v, want nil", "sess-1", err)
		}
		db.Now = fixedClock(testTime.Add(2 * time.Hour))
		if err := revoke("sess-1", obsqra.RevokeReuse); err != nil {
			t.Fatalf("second RevokeSession(%q) = %v, want nil", "sess-1", err)
		}
		got, err = db.SessionByID(ctx, "sess-1")
		wantRevoked := stampUTC(testTime.Add(time.Hour))
		if err != nil || !got.Revoked() || *got.RevokedAt != wantRevoked || got.RevokeReason != obsqra.RevokeLogout {
			t.Errorf("SessionByID(%q) after two revocations = %+v, %v, want revoked at %v for %q", "sess-1", got, err, wantRevoked, obsqra.RevokeLogout)
		}
		wantCode(t, `RevokeSession("missing")`, revoke("missing", obsqra.RevokeLogout), obsqra.ENOTFOUND)
		// The first revocation said so through the outbox; the second,
		// which changed nothing, did not.
		wantAccountChanges(t, db, []obsqra.AccountChange{{UserID: u.ID, Reason: obsqra.RevokeLogout}})
	})
}

// wantAccountChanges checks the account.changed events of the outbox.
func wantAccountChanges(t *testing.T, db *store.DB, want []obsqra.AccountChange) {
	t.Helper()
	events, err := db.EventsAfter(context.Background(), 0, 1000)
	if err != nil {
		t.Fatalf("EventsAfter(0) = %v", err)
	}
	var got []obsqra.AccountChange
	for _, e := range events {
		if e.Topic != obsqra.TopicAccountChanged {
			continue
		}
		var c obsqra.AccountChange
		if err := json.Unmarshal(e.Payload, &c); err != nil || e.OwnerID != c.UserID {
			t.Fatalf("account event %d = owner %d, %s (%v), want the user as owner", e.ID, e.OwnerID, e.Payload, err)
		}
		got = append(got, c)
	}
	if !slices.Equal(got, want) {
		t.Errorf("account.changed events = %+v, want %+v", got, want)
	}
}

func TestRevokeUserSessions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "knuth@example.com")
		other := createUser(t, db, "dijkstra@example.com")
		createSession(t, db, "live-1", u.ID)
		createSession(t, db, "live-2", u.ID)
		createSession(t, db, "revoked", u.ID)
		createSession(t, db, "other", other.ID)
		expired := &obsqra.Session{ID: "expired", UserID: u.ID, ExpiresAt: testTime.Add(-time.Second)}
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			if err := tx.CreateSession(ctx, expired); err != nil {
				return err
			}
			return tx.RevokeSession(ctx, "revoked", obsqra.RevokeLogout)
		})
		if err != nil {
			t.Fatalf("setup = %v", err)
		}

		var n int
		err = db.WithTx(ctx, func(tx *store.Tx) (err error) {
			n, err = tx.RevokeUserSessions(ctx, u.ID, obsqra.RevokePasswordChanged)
			return err
		})
		if err != nil || n != 2 {
			t.Fatalf("RevokeUserSessions(%d) = %d, %v, want 2, nil", u.ID, n, err)
		}
		// Again: nothing left to end, nothing to say.
		err = db.WithTx(ctx, func(tx *store.Tx) (err error) {
			n, err = tx.RevokeUserSessions(ctx, u.ID, obsqra.RevokePasswordChanged)
			return err
		})
		if err != nil || n != 0 {
			t.Fatalf("second RevokeUserSessions(%d) = %d, %v, want 0, nil", u.ID, n, err)
		}
		wantAccountChanges(t, db, []obsqra.AccountChange{
			{UserID: u.ID, Reason: obsqra.RevokeLogout},
			{UserID: u.ID, Reason: obsqra.RevokePasswordChanged},
		})
		for id, want := range map[string]string{
			"live-1":  obsqra.RevokePasswordChanged,
			"live-2":  obsqra.RevokePasswordChanged,
			"revoked": obsqra.RevokeLogout,
			"expired": "",
			"other":   "",
		} {
			s, err := db.SessionByID(ctx, id)
			if err != nil || s.RevokeReason != want || s.Revoked() != (want != "") {
				t.Errorf("SessionByID(%q) = %+v, %v, want revoke reason %q", id, s, err, want)
			}
		}
	})
}

func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "hamilton@example.com")
		s := createSession(t, db, "sess", u.ID)

		tok := &obsqra.RefreshToken{Hash: tokenHash("one"), SessionID: s.ID, ExpiresAt: testTime.Add(7 * 24 * time.Hour)}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateRefreshToken(ctx, tok) }); err != nil {
			t.Fatalf("CreateRefreshToken = %v, want nil", err)
		}
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			return tx.CreateRefreshToken(ctx, &obsqra.RefreshToken{Hash: tok.Hash, SessionID: s.ID, ExpiresAt: tok.ExpiresAt})
		})
		wantCode(t, "CreateRefreshToken(duplicate hash)", err, obsqra.ECONFLICT)

		consume := func(hash string) (got *obsqra.RefreshToken, fresh bool, err error) {
			err = db.WithTx(ctx, func(tx *store.Tx) error {
				got, fresh, err = tx.ConsumeRefreshToken(ctx, hash)
				return err
			})
			return got, fresh, err
		}

		db.Now = fixedClock(testTime.Add(time.Minute))
		used := stampUTC(testTime.Add(time.Minute))
		want := *tok
		want.UsedAt = &used
		got, fresh, err := consume(tok.Hash)
		if err != nil || !fresh || !reflect.DeepEqual(got, &want) {
			t.Fatalf("ConsumeRefreshToken(first) = %+v, %v, %v, want %+v, true, nil", got, fresh, err, &want)
		}
		// A replay returns the token as first used.
		db.Now = fixedClock(testTime.Add(time.Hour))
		got, fresh, err = consume(tok.Hash)
		if err != nil || fresh || !reflect.DeepEqual(got, &want) {
			t.Fatalf("ConsumeRefreshToken(replay) = %+v, %v, %v, want %+v, false, nil", got, fresh, err, &want)
		}
		_, _, err = consume(tokenHash("unknown"))
		wantCode(t, "ConsumeRefreshToken(unknown)", err, obsqra.ENOTFOUND)
	})
}

func TestConsumeRefreshTokenConcurrently(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u := createUser(t, db, "race@example.com")
		s := createSession(t, db, "sess", u.ID)
		const tokens, callers = 5, 8
		for i := range tokens {
			tok := &obsqra.RefreshToken{Hash: tokenHash(string(rune('a' + i))), SessionID: s.ID, ExpiresAt: time.Now().Add(time.Hour)}
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateRefreshToken(ctx, tok) }); err != nil {
				t.Fatalf("CreateRefreshToken = %v", err)
			}
		}
		for i := range tokens {
			hash := tokenHash(string(rune('a' + i)))
			var wg sync.WaitGroup
			var mu sync.Mutex
			freshCount := 0
			start := make(chan struct{})
			for range callers {
				wg.Go(func() {
					<-start
					var fresh bool
					err := db.WithTx(ctx, func(tx *store.Tx) (err error) {
						_, fresh, err = tx.ConsumeRefreshToken(ctx, hash)
						return err
					})
					if err != nil {
						t.Errorf("ConsumeRefreshToken(%s) = %v", hash, err)
					}
					mu.Lock()
					if fresh {
						freshCount++
					}
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			if freshCount != 1 {
				t.Errorf("%d concurrent ConsumeRefreshToken(%s): %d fresh, want exactly 1", callers, hash, freshCount)
			}
		}
	})
}

// TestTimesRoundTrip checks that both dialects give back the same instants:
// UTC, at microsecond resolution, whatever zone and precision went in.
func TestTimesRoundTrip(t *testing.T) {
	t.Parallel()
	dbs := []*store.DB{storetest.SQLite(t), storetest.Postgres(t)}
	ctx := context.Background()
	expires := time.Date(2026, 3, 29, 1, 59, 59, 999999999, time.FixedZone("PDT", -7*3600))
	var got []*obsqra.Session
	for _, db := range dbs {
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "clock@example.com")
		s := &obsqra.Session{ID: "s", UserID: u.ID, ExpiresAt: expires}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateSession(ctx, s) }); err != nil {
			t.Fatalf("%s: CreateSession = %v", db.Dialect(), err)
		}
		read, err := db.SessionByID(ctx, "s")
		if err != nil {
			t.Fatalf("%s: SessionByID = %v", db.Dialect(), err)
		}
		if want := time.Date(2026, 3, 29, 8, 59, 59, 999999000, time.UTC); read.ExpiresAt != want || read.ExpiresAt.Location() != time.UTC {
			t.Errorf("%s: SessionByID(%q).ExpiresAt = %v, want %v", db.Dialect(), "s", read.ExpiresAt, want)
		}
		if want := stampUTC(testTime); read.CreatedAt != want {
			t.Errorf("%s: SessionByID(%q).CreatedAt = %v, want %v", db.Dialect(), "s", read.CreatedAt, want)
		}
		got = append(got, read)
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Errorf("sessions read back differ: sqlite %+v, postgres %+v", got[0], got[1])
	}
}
