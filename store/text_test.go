package store_test

import (
	"context"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestTextPostgresRefuses: text PostgreSQL will not store is EINVALID, not
// an internal error, should it ever get past the API's own check (which
// refuses it on every database before it reaches the store).
func TestTextPostgresRefuses(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	for _, name := range []string{"a\x00b", "zk\xfflend"} {
		u := newUser("ada@example.com")
		u.FullName = name
		err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) })
		if obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("CreateUser(fullName %q) = %v, want EINVALID", name, err)
		}
	}
	ada := createUser(t, db, "ada@example.com")
	for i, details := range []string{`{"a":"\u0000"}`, `{"\u0000":1}`} {
		tr := newTransaction(ada.ID, i)
		tr.Details = obsqra.JSONObject(details)
		err := db.WithTx(ctx, func(tx *store.Tx) error {
			_, _, err := tx.InsertTransaction(ctx, tr)
			return err
		})
		if obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("InsertTransaction(details %s) = %v, want EINVALID", details, err)
		}
	}
}
