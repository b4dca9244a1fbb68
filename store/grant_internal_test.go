package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/obsqra/obsqra"
)

// openApplication creates a LOGIN role of its own for the test (the test
// server trusts local connections, so it needs no password), grants it
// the application's privileges on owner's schema with GrantApplication,
// and returns a DB connected as that role to the same schema. The role is
// dropped when the test ends.
func openApplication(t *testing.T, owner *DB) (*DB, string) {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	role := "obsqra_app_" + hex.EncodeToString(b)
	if _, err := owner.db.ExecContext(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatalf("create role %s: %v", role, err)
	}
	t.Cleanup(func() {
		// Runs before the schema is dropped (cleanups run last-in first-
		// out): DROP OWNED revokes what the role was granted.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := owner.db.ExecContext(ctx, "DROP OWNED BY "+role); err != nil {
			t.Errorf("drop owned by %s: %v", role, err)
		}
		if _, err := owner.db.ExecContext(ctx, "DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	if err := GrantApplication(ctx, owner, role); err != nil {
		t.Fatalf("GrantApplication(%s) = %v", role, err)
	}
	u, err := url.Parse(owner.dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	app, err := Open(ctx, u.String())
	if err != nil {
		t.Fatalf("open as %s: %v", role, err)
	}
	t.Cleanup(func() { app.Close() })
	return app, role
}

// TestGrantApplication: the server's role can do all the store does, and
// cannot rewrite history, whatever SQL it runs; the owner, who can, still
// meets the triggers.
func TestGrantApplication(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	owner := openPostgres(t)
	app, role := openApplication(t, owner)
	if got, err := app.CurrentRole(ctx); err != nil || got != role {
		t.Fatalf("CurrentRole() = %q, %v, want %q", got, err, role)
	}
	// Granting again (after a later migration) is harmless; granting the
	// owner its own tables does nothing.
	if err := GrantApplication(ctx, owner, role); err != nil {
		t.Errorf("GrantApplication again = %v", err)
	}
	self, _ := owner.CurrentRole(ctx)
	if err := GrantApplication(ctx, owner, self); err != nil {
		t.Errorf("GrantApplication(owner) = %v", err)
	}
	if err := GrantApplication(ctx, owner, `x"; DROP TABLE users; --`); obsqra.ErrorCode(err) != obsqra.EINVALID {
		t.Errorf("GrantApplication(bad name) = %v, want EINVALID", err)
	}

	// What the store does, the application role may do.
	u := &obsqra.User{Email: "ada@example.com", PasswordHash: "x", Role: obsqra.RoleUser, Active: true, Preferences: obsqra.DefaultPreferences()}
	var tr *obsqra.Transaction
	err := app.WithTx(ctx, func(tx *Tx) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		hash, _ := obsqra.ParseFelt("0xabc")
		var err error
		if tr, _, err = tx.InsertTransaction(ctx, &obsqra.Transaction{UserID: u.ID, TxHash: hash, Type: obsqra.TxDeposit,
			Amount: obsqra.MustDecimal("1.5"), Token: "STRK"}); err != nil {
			return err
		}
		if _, _, err := tx.InsertTransaction(ctx, tr); err != nil { // the idempotent path
			return err
		}
		if _, err := tx.RecordStatus(ctx, tr.ID, obsqra.StatusUpdate{Status: obsqra.TxReceived, Reason: "reported"}); err != nil {
			return err
		}
		if err := tx.RecordReceipt(ctx, tr.ID, obsqra.Receipt{EventsEmitted: new(int)}); err != nil {
			return err
		}
		next := time.Now().Add(time.Minute)
		if err := tx.TouchTransaction(ctx, tr.ID, time.Now(), &next, nil); err != nil {
			return err
		}
		if err := tx.AppendDecision(ctx, &obsqra.Decision{Kind: obsqra.DecisionRiskScore, Inputs: obsqra.JSONObject(`{}`),
			Output: obsqra.JSONObject(`{}`), ModelVersion: obsqra.RiskModelVersion}, testHash); err != nil {
			return err
		}
		if err := tx.CreateWalletChallenge(ctx, &obsqra.WalletChallenge{Nonce: strings.Repeat("ab", 16), UserID: u.ID, Address: hash,
			ChainID: "SN_SEPOLIA", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			return err
		}
		if _, err := tx.ConsumeWalletChallenge(ctx, strings.Repeat("ab", 16), u.ID, time.Now()); err != nil {
			return err
		}
		u.FullName = "Ada"
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		return tx.AppendEvent(ctx, &obsqra.Event{Topic: "test"})
	})
	if err != nil {
		t.Fatalf("the store's writes as the application role = %v", err)
	}
	if _, err := app.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Errorf("PruneEvents as the application role = %v", err)
	}
	if _, err := app.PruneWalletChallenges(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Errorf("PruneWalletChallenges as the application role = %v", err)
	}
	if _, err := app.DueTransactions(ctx, time.Now().Add(time.Hour), 10); err != nil {
		t.Errorf("DueTransactions as the application role = %v", err)
	}

	// History is beyond its reach: privileges refuse before any trigger.
	denied := func(db *DB, stmt, want string) {
		t.Helper()
		_, err := db.db.ExecContext(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s = %v, want refused (%s)", stmt, err, want)
		}
	}
	set := map[string]string{"metrics_samples": "apy_bps = 0", "risk_params": "w_audit = 0", "risk_scores": "score = 0",
		"decisions": "output = '{}'", "predictions": "point = 0", "prediction_outcomes": "actual = 0",
		"allocations": "reason = 'USER_INITIATED'", "transactions": "amount = 1", "transaction_events": "reason = ''",
		"signed_constraints": "max_single_bps = 10000"}
	for _, table := range historyTables {
		denied(app, "UPDATE "+table+" SET "+set[table], "permission denied")
		denied(app, "DELETE FROM "+table, "permission denied")
		denied(app, "TRUNCATE "+table+" CASCADE", "permission denied")
	}
	denied(app, "DELETE FROM transaction_state", "permission denied")
	denied(app, "TRUNCATE transaction_state CASCADE", "permission denied")
	denied(app, "TRUNCATE users CASCADE", "permission denied")
	denied(app, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)", "permission denied")
	denied(app, "ALTER TABLE transactions DISABLE TRIGGER transactions_append_only", "must be owner")
	// The state's bookkeeping is the application's to update.
	if _, err := app.db.ExecContext(ctx, "UPDATE transaction_state SET last_checked_at = updated_at"); err != nil {
		t.Errorf("UPDATE transaction_state as the application role = %v", err)
	}

	// The owner has the privileges, and meets the triggers.
	for _, table := range []string{"transactions", "transaction_events"} {
		denied(owner, "UPDATE "+table+" SET "+set[table], "append-only")
		denied(owner, "DELETE FROM "+table, "append-only")
		denied(owner, "TRUNCATE "+table+" CASCADE", "append-only")
	}
	var n int
	if err := owner.db.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM transactions) + (SELECT COUNT(*) FROM transaction_events)").Scan(&n); err != nil || n != 3 {
		t.Errorf("transactions and their events = %d rows, %v, want 3", n, err)
	}
}

// TestHistoryTablesMatchTriggers: historyTables names exactly the tables
// the PostgreSQL migrations make append-only, so that no history table is
// granted UPDATE and no other is refused it.
func TestHistoryTablesMatchTriggers(t *testing.T) {
	t.Parallel()
	db := openPostgres(t)
	rows, err := db.db.QueryContext(context.Background(), `
		SELECT DISTINCT c.relname FROM pg_trigger g
		JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_proc p ON p.oid = g.tgfoid
		WHERE c.relnamespace = current_schema()::regnamespace AND p.proname = 'obsqra_append_only'
		ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	want := slices.Sorted(slices.Values(historyTables))
	if !slices.Equal(got, want) {
		t.Errorf("tables with append-only triggers = %v, historyTables = %v", got, want)
	}
	var notDeleted []string
	err = db.db.QueryRowContext(context.Background(), `
		SELECT array_agg(DISTINCT c.relname ORDER BY c.relname) FROM pg_trigger g
		JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_proc p ON p.oid = g.tgfoid
		WHERE c.relnamespace = current_schema()::regnamespace AND p.proname = 'obsqra_no_delete'`).Scan(pq.Array(&notDeleted))
	if err != nil || !slices.Equal(notDeleted, keptTables) {
		t.Errorf("tables with no-delete triggers = %v, %v, keptTables = %v", notDeleted, err, keptTables)
	}
}
