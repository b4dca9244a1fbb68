package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// addAlert adds a in its own unit of work and returns whether it did.
func addAlert(t *testing.T, db *store.DB, a store.Alert, quiet time.Duration) bool {
	t.Helper()
	var added bool
	err := db.WithTx(context.Background(), func(tx *store.Tx) (err error) {
		added, err = tx.AddAlert(context.Background(), &a, quiet)
		return err
	})
	if err != nil {
		t.Fatalf("AddAlert(%+v) = %v, want nil", a, err)
	}
	return added
}

func TestAlertCursor(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		if id, err := db.AlertCursor(ctx, 7); err != nil || id != 7 {
			t.Fatalf("AlertCursor(7) = %d, %v, want 7, nil", id, err)
		}
		// The start applies once: the stored cursor wins.
		if id, err := db.AlertCursor(ctx, 9); err != nil || id != 7 {
			t.Fatalf("AlertCursor(9) = %d, %v, want 7, nil", id, err)
		}
		if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.MoveAlertCursor(ctx, 7, 12) }); err != nil {
			t.Fatalf("MoveAlertCursor(7, 12) = %v, want nil", err)
		}
		err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.MoveAlertCursor(ctx, 7, 15) })
		wantCode(t, "MoveAlertCursor(7, 15) after another run", err, obsqra.ECONFLICT)
		if id, err := db.AlertCursor(ctx, 0); err != nil || id != 12 {
			t.Fatalf("AlertCursor() = %d, %v, want 12, nil", id, err)
		}
	})
}

func TestAddAlert(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		db.Now = func() time.Time { return now }
		user := func(email string, verified, alerts bool) *obsqra.User {
			u := newUser(email)
			u.EmailVerified, u.Preferences.EmailAlerts = verified, alerts
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
				t.Fatalf("CreateUser(%s) = %v", email, err)
			}
			return u
		}
		on := user("on@example.com", true, true)
		unverified := user("unverified@example.com", false, true)
		off := user("off@example.com", true, false)
		ps, err := db.Protocols(ctx)
		if err != nil || len(ps) == 0 {
			t.Fatalf("Protocols() = %d, %v, want some", len(ps), err)
		}
		p := ps[0].ID

		err = db.WithTx(ctx, func(tx *store.Tx) error {
			_, err := tx.AddAlert(ctx, &store.Alert{UserID: on.ID, Kind: "k"}, 0)
			return err
		})
		wantCode(t, "AddAlert(no subject)", err, obsqra.EINVALID)

		a := store.Alert{UserID: on.ID, Kind: "transaction_failed", SubjectKey: "5:DROPPED", Detail: "dropped"}
		if !addAlert(t, db, a, 0) {
			t.Errorf("AddAlert(verified, alerts on) = false, want true")
		}
		if addAlert(t, db, a, 0) {
			t.Errorf("AddAlert(same kind and subject again) = true, want false")
		}
		for _, u := range []*obsqra.User{unverified, off} {
			a.UserID = u.ID
			if addAlert(t, db, a, 0) {
				t.Errorf("AddAlert(%s) = true, want false", u.Email)
			}
		}

		rise := store.Alert{UserID: on.ID, Kind: "risk_rise", SubjectKey: "score 1", ProtocolID: p, Detail: "up"}
		if !addAlert(t, db, rise, 24*time.Hour) {
			t.Errorf("AddAlert(first rise) = false, want true")
		}
		now = now.Add(23 * time.Hour)
		rise.SubjectKey = "score 2"
		if addAlert(t, db, rise, 24*time.Hour) {
			t.Errorf("AddAlert(rise 23 h later) = true, want false")
		}
		now = now.Add(2 * time.Hour)
		rise.SubjectKey = "score 3"
		if !addAlert(t, db, rise, 24*time.Hour) {
			t.Errorf("AddAlert(rise 25 h later) = false, want true")
		}

		t.Run("digest", func(t *testing.T) {
			users, err := db.DigestUsers(ctx, now)
			if err != nil || !slices.Equal(users, []int64{on.ID}) {
				t.Fatalf("DigestUsers() = %v, %v, want [%d]", users, err, on.ID)
			}
			var alerts []store.Alert
			err = db.WithTx(ctx, func(tx *store.Tx) error {
				var err error
				if alerts, err = tx.UnmailedAlerts(ctx, on.ID); err != nil {
					return err
				}
				ids := make([]int64, len(alerts))
				for i, a := range alerts {
					ids[i] = a.ID
				}
				return tx.MarkAlertsMailed(ctx, ids)
			})
			if err != nil || len(alerts) != 3 {
				t.Fatalf("UnmailedAlerts, MarkAlertsMailed = %d alerts, %v, want 3, nil", len(alerts), err)
			}
			if alerts[0].Kind != "transaction_failed" || alerts[1].ProtocolID != p || alerts[0].MailedAt != nil {
				t.Errorf("UnmailedAlerts() = %+v, want the transaction then the rises, unmailed", alerts)
			}
			err = db.WithTx(ctx, func(tx *store.Tx) error { return tx.MarkAlertsMailed(ctx, []int64{alerts[0].ID}) })
			wantCode(t, "MarkAlertsMailed(mailed already)", err, obsqra.ECONFLICT)

			now = now.Add(time.Minute)
			rise.SubjectKey = "other"
			rise.Kind = "other"
			addAlert(t, db, rise, 0)
			// The last mail was a minute ago: not due with an hour's interval.
			if users, err := db.DigestUsers(ctx, now.Add(-time.Hour)); err != nil || len(users) != 0 {
				t.Errorf("DigestUsers(an hour ago) = %v, %v, want none", users, err)
			}
			if users, err := db.DigestUsers(ctx, now.Add(-time.Minute)); err != nil || len(users) != 1 {
				t.Errorf("DigestUsers(a minute ago) = %v, %v, want [%d]", users, err, on.ID)
			}
		})

		t.Run("prune", func(t *testing.T) {
			// Three alerts were mailed a minute before now, one is unmailed.
			if n, err := db.PruneAlerts(ctx, now.Add(-2*time.Minute)); err != nil || n != 0 {
				t.Errorf("PruneAlerts(before they were mailed) = %d, %v, want 0, nil", n, err)
			}
			if n, err := db.PruneAlerts(ctx, now.Add(time.Hour)); err != nil || n != 3 {
				t.Errorf("PruneAlerts(after) = %d, %v, want 3 (not the unmailed one), nil", n, err)
			}
		})

		t.Run("drop unwanted", func(t *testing.T) {
			on.Preferences.EmailAlerts = false
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.UpdateUser(ctx, on) }); err != nil {
				t.Fatalf("UpdateUser() = %v", err)
			}
			if n, err := db.DropUnwantedAlerts(ctx); err != nil || n != 1 {
				t.Errorf("DropUnwantedAlerts() = %d, %v, want 1, nil", n, err)
			}
			if users, err := db.DigestUsers(ctx, now); err != nil || len(users) != 0 {
				t.Errorf("DigestUsers() after alerts off = %v, %v, want none", users, err)
			}
		})
	})
}
