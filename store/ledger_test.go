package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// txHash returns the hash of test transaction n.
func txHash(n int) obsqra.Felt {
	f, err := obsqra.ParseFelt(fmt.Sprintf("0x%x", 0xabc000+n))
	if err != nil {
		panic(err)
	}
	return f
}

// newTransaction returns a transaction of userID to log, told apart by n.
func newTransaction(userID int64, n int) *obsqra.Transaction {
	return &obsqra.Transaction{
		UserID: userID, TxHash: txHash(n), Type: obsqra.TxDeposit,
		Amount: obsqra.MustDecimal("123456789012345678901234567890.123456789012345678"), Token: "STRK",
	}
}

// logTransaction logs t in its own unit of work and returns it as stored.
func logTransaction(t *testing.T, db *store.DB, tr *obsqra.Transaction) *obsqra.Transaction {
	t.Helper()
	var out *obsqra.Transaction
	inTx(t, db, func(tx *store.Tx) {
		got, created, err := tx.InsertTransaction(context.Background(), tr)
		if err != nil || !created {
			t.Fatalf("InsertTransaction(%s) = %v, created %v, want a new one", tr.TxHash, err, created)
		}
		out = got
	})
	return out
}

// recordStatus records u for transaction id in its own unit of work.
func recordStatus(t *testing.T, db *store.DB, id int64, u obsqra.StatusUpdate) (*obsqra.TxStatusChange, error) {
	t.Helper()
	var step *obsqra.TxStatusChange
	err := db.WithTx(context.Background(), func(tx *store.Tx) error {
		var err error
		step, err = tx.RecordStatus(context.Background(), id, u)
		return err
	})
	return step, err
}

func ptr[T any](v T) *T { return &v }

func TestLogTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		in := newTransaction(ada.ID, 1)
		in.TokenAddress = mustFelt(t, "0x4718F5A0FC34CC1AF16A1CDEE98FFB20C31F5CD61D6AB07201858F4287C938D")
		in.Details = obsqra.JSONObject(`{"protocol": "nostra", "n": [1, 2]}`)
		got := logTransaction(t, db, in)
		want := &obsqra.Transaction{
			ID: got.ID, UserID: ada.ID, TxHash: in.TxHash, Type: obsqra.TxDeposit, Amount: in.Amount, Token: "STRK",
			TokenAddress: in.TokenAddress, Details: in.Details, CreatedAt: stampUTC(testTime),
			Status: obsqra.TxPending, UpdatedAt: stampUTC(testTime),
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("InsertTransaction = %+v, want %+v", got, want)
		}
		for name, read := range map[string]func() (*obsqra.Transaction, error){
			"Transaction":       func() (*obsqra.Transaction, error) { return db.Transaction(ctx, got.ID) },
			"TransactionByHash": func() (*obsqra.Transaction, error) { return db.TransactionByHash(ctx, in.TxHash) },
		} {
			if r, err := read(); err != nil || !reflect.DeepEqual(r, want) {
				t.Errorf("%s = %+v, %v, want %+v", name, r, err, want)
			}
		}
		_, err := db.Transaction(ctx, got.ID+100)
		wantCode(t, "Transaction(unknown)", err, obsqra.ENOTFOUND)
		_, err = db.TransactionByHash(ctx, txHash(99))
		wantCode(t, "TransactionByHash(unknown)", err, obsqra.ENOTFOUND)

		// The hash is the key, whoever logs it again and whatever they say.
		for _, u := range []*obsqra.User{ada, bob} {
			again := newTransaction(u.ID, 1)
			again.Type, again.Amount = obsqra.TxWithdraw, obsqra.MustDecimal("1")
			inTx(t, db, func(tx *store.Tx) {
				r, created, err := tx.InsertTransaction(ctx, again)
				if err != nil || created || !reflect.DeepEqual(r, want) {
					t.Errorf("InsertTransaction(same hash, user %d) = %+v, created %v, %v; want the first, not created", u.ID, r, created, err)
				}
			})
		}

		hist, err := db.TransactionHistory(ctx, ada.ID, []int64{got.ID, got.ID, 12345})
		wantHist := map[int64][]obsqra.TxStatusChange{got.ID: {{ID: hist[got.ID][0].ID, TransactionID: got.ID,
			Status: obsqra.TxPending, Reason: store.LoggedReason, At: stampUTC(testTime)}}}
		if err != nil || !reflect.DeepEqual(hist, wantHist) {
			t.Errorf("TransactionHistory = %+v, %v, want %+v", hist, err, wantHist)
		}
		if hist, err := db.TransactionHistory(ctx, bob.ID, []int64{got.ID}); err != nil || len(hist) != 0 {
			t.Errorf("TransactionHistory(another user's) = %+v, %v, want none", hist, err)
		}

		// Due at once.
		due, err := db.DueTransactions(ctx, testTime, 10)
		if err != nil || len(due) != 1 || !reflect.DeepEqual(&due[0].Transaction, want) ||
			!due[0].NextCheckAt.Equal(stampUTC(testTime)) || due[0].NotFoundSince != nil {
			t.Errorf("DueTransactions = %+v, %v, want the new transaction due now", due, err)
		}
		if due, err := db.DueTransactions(ctx, testTime.Add(-time.Second), 10); err != nil || len(due) != 0 {
			t.Errorf("DueTransactions(before) = %+v, %v, want none", due, err)
		}
		_, err = db.DueTransactions(ctx, testTime, 0)
		wantCode(t, "DueTransactions(limit 0)", err, obsqra.EINVALID)
	})
}

// TestTransactionStatusSteps follows one transaction through the watcher's
// steps as the store records them.
func TestTransactionStatusSteps(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now
		u := createUser(t, db, "ada@example.com")
		tr := logTransaction(t, db, newTransaction(u.ID, 1))
		succeeded, reverted := obsqra.ExecSucceeded, obsqra.ExecReverted

		var steps []obsqra.TxStatusChange
		step := func(u obsqra.StatusUpdate) {
			t.Helper()
			clock.Advance(time.Minute)
			s, err := recordStatus(t, db, tr.ID, u)
			if err != nil {
				t.Fatalf("RecordStatus(%s) = %v", u.Status, err)
			}
			steps = append(steps, *s)
		}
		refused := func(u obsqra.StatusUpdate, code string) {
			t.Helper()
			_, err := recordStatus(t, db, tr.ID, u)
			wantCode(t, fmt.Sprintf("RecordStatus(%s)", u.Status), err, code)
		}
		step(obsqra.StatusUpdate{Status: obsqra.TxReceived, RawStatus: `{"finality_status":"RECEIVED"}`, Reason: "reported"})
		refused(obsqra.StatusUpdate{Status: obsqra.TxPending}, obsqra.ECONFLICT)  // back
		refused(obsqra.StatusUpdate{Status: obsqra.TxReceived}, obsqra.ECONFLICT) // nothing new
		refused(obsqra.StatusUpdate{Status: "LOST"}, obsqra.EINVALID)
		step(obsqra.StatusUpdate{Status: obsqra.TxPreConfirmed, Reason: "reported"})
		// The execution status at the same status is a step.
		step(obsqra.StatusUpdate{Status: obsqra.TxPreConfirmed, ExecutionStatus: &succeeded, Reason: "executed"})
		refused(obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL2, ExecutionStatus: &reverted}, obsqra.ECONFLICT)
		// nil keeps the known execution status.
		step(obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL2, Reason: "in a block"})

		clock.Advance(time.Minute)
		checked, next := clock.Now(), clock.Now().Add(15*time.Second)
		inTx(t, db, func(tx *store.Tx) {
			if err := tx.RecordReceipt(ctx, tr.ID, obsqra.Receipt{BlockNumber: ptr(int64(812345)),
				Fee: &obsqra.Fee{Amount: obsqra.MustDecimal("1234567890123456789012"), Unit: "FRI"}, EventsEmitted: ptr(3)}); err != nil {
				t.Fatalf("RecordReceipt = %v", err)
			}
			if err := tx.TouchTransaction(ctx, tr.ID, checked, &next, nil); err != nil {
				t.Fatalf("TouchTransaction = %v", err)
			}
			wantCode(t, "RecordReceipt(unknown)", tx.RecordReceipt(ctx, tr.ID+100, obsqra.Receipt{}), obsqra.ENOTFOUND)
			wantCode(t, "TouchTransaction(unknown)", tx.TouchTransaction(ctx, tr.ID+100, checked, &next, nil), obsqra.ENOTFOUND)
		})
		got, err := db.Transaction(ctx, tr.ID)
		want := *tr
		want.Status, want.ExecutionStatus, want.BlockNumber, want.EventsEmitted = obsqra.TxAcceptedOnL2, &succeeded, ptr(int64(812345)), ptr(3)
		want.Fee = &obsqra.Fee{Amount: obsqra.MustDecimal("1234567890123456789012"), Unit: "FRI"}
		want.UpdatedAt, want.LastCheckedAt = stampUTC(checked), ptr(stampUTC(checked))
		if err != nil || !reflect.DeepEqual(got, &want) {
			t.Errorf("Transaction after the receipt = %+v, %v, want %+v", got, err, &want)
		}
		if due, err := db.DueTransactions(ctx, next, 10); err != nil || len(due) != 1 || !due[0].NextCheckAt.Equal(stampUTC(next)) {
			t.Errorf("DueTransactions(next) = %+v, %v, want it due at %v", due, err, next)
		}

		// A final status ends the watch.
		step(obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL1, Reason: "proven"})
		if due, err := db.DueTransactions(ctx, next.Add(time.Hour), 10); err != nil || len(due) != 0 {
			t.Errorf("DueTransactions after ACCEPTED_ON_L1 = %+v, %v, want none", due, err)
		}
		refused(obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL1}, obsqra.ECONFLICT)
		// The database refuses a schedule for a final status.
		err = db.WithTx(ctx, func(tx *store.Tx) error { return tx.TouchTransaction(ctx, tr.ID, checked, &next, nil) })
		if err == nil {
			t.Error("TouchTransaction(next check of a final status) = nil, want refused")
		}

		hist, err := db.TransactionHistory(ctx, u.ID, []int64{tr.ID})
		if err != nil || len(hist[tr.ID]) != 1+len(steps) || !reflect.DeepEqual(hist[tr.ID][1:], steps) {
			t.Fatalf("TransactionHistory = %+v, %v, want logged then %+v", hist, err, steps)
		}
		var names []string
		for _, s := range hist[tr.ID] {
			e := "-"
			if s.ExecutionStatus != nil {
				e = string(*s.ExecutionStatus)
			}
			names = append(names, string(s.Status)+"/"+e)
		}
		wantNames := []string{"PENDING/-", "RECEIVED/-", "PRE_CONFIRMED/-", "PRE_CONFIRMED/SUCCEEDED", "ACCEPTED_ON_L2/SUCCEEDED", "ACCEPTED_ON_L1/SUCCEEDED"}
		if !slices.Equal(names, wantNames) {
			t.Errorf("history = %v, want %v", names, wantNames)
		}
	})
}

func TestDroppedAndReverted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "ada@example.com")
		dropped := logTransaction(t, db, newTransaction(u.ID, 1))
		reverted := logTransaction(t, db, newTransaction(u.ID, 2))
		since := testTime.Add(-time.Hour)
		inTx(t, db, func(tx *store.Tx) {
			if err := tx.TouchTransaction(ctx, dropped.ID, testTime, ptr(testTime.Add(time.Minute)), &since); err != nil {
				t.Fatal(err)
			}
		})
		due, err := db.DueTransactions(ctx, testTime.Add(time.Hour), 10)
		if err != nil || len(due) != 2 || due[0].ID != reverted.ID || due[1].ID != dropped.ID ||
			due[1].NotFoundSince == nil || !due[1].NotFoundSince.Equal(stampUTC(since)) {
			t.Errorf("DueTransactions = %+v, %v, want the reverted one (due first), then the one not found since %v", due, err, since)
		}
		if _, err := recordStatus(t, db, dropped.ID, obsqra.StatusUpdate{Status: obsqra.TxDropped, RawStatus: "error 29", Reason: "dropped"}); err != nil {
			t.Fatalf("RecordStatus(DROPPED) = %v", err)
		}
		rev := obsqra.ExecReverted
		if _, err := recordStatus(t, db, reverted.ID, obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL2, ExecutionStatus: &rev,
			FailureReason: ptr("u256_sub Overflow"), Reason: "reverted: u256_sub Overflow"}); err != nil {
			t.Fatalf("RecordStatus(REVERTED) = %v", err)
		}
		d, err := db.Transaction(ctx, dropped.ID)
		if err != nil || d.Status != obsqra.TxDropped || d.ExecutionStatus != nil {
			t.Errorf("dropped transaction = %+v, %v", d, err)
		}
		r, err := db.Transaction(ctx, reverted.ID)
		if err != nil || r.Status != obsqra.TxAcceptedOnL2 || r.ExecutionStatus == nil || *r.ExecutionStatus != rev ||
			r.FailureReason == nil || *r.FailureReason != "u256_sub Overflow" {
			t.Errorf("reverted transaction = %+v, %v", r, err)
		}
		if due, err := db.DueTransactions(ctx, testTime.Add(time.Hour), 10); err != nil || len(due) != 1 || due[0].ID != reverted.ID {
			t.Errorf("DueTransactions = %+v, %v, want only the reverted one (ACCEPTED_ON_L2 is not final)", due, err)
		}
	})
}

func TestTransactionsPage(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		clock := obsqratest.NewClock(testTime)
		db.Now = clock.Now
		ada, bob := createUser(t, db, "ada@example.com"), createUser(t, db, "bob@example.com")
		types := []obsqra.TxType{obsqra.TxDeposit, obsqra.TxWithdraw, obsqra.TxAllocate, obsqra.TxRebalance}
		var all []*obsqra.Transaction // ada's, oldest first
		for i := range 12 {
			// Two at each time, so the id breaks ties.
			if i%2 == 0 {
				clock.Advance(time.Minute)
			}
			tr := newTransaction(ada.ID, i)
			tr.Type = types[i%4]
			all = append(all, logTransaction(t, db, tr))
			logTransaction(t, db, newTransaction(bob.ID, 100+i))
		}
		for _, tr := range all[:5] {
			if _, err := recordStatus(t, db, tr.ID, obsqra.StatusUpdate{Status: obsqra.TxReceived}); err != nil {
				t.Fatal(err)
			}
			tr.Status = obsqra.TxReceived
		}
		newest := slices.Clone(all)
		slices.Reverse(newest)
		from, to := all[2].CreatedAt, all[7].CreatedAt
		for _, tc := range []struct {
			name   string
			filter obsqra.TransactionFilter
			keep   func(*obsqra.Transaction) bool
		}{
			{"all", obsqra.TransactionFilter{}, func(*obsqra.Transaction) bool { return true }},
			{"type", obsqra.TransactionFilter{Type: ptr(obsqra.TxWithdraw)}, func(tr *obsqra.Transaction) bool { return tr.Type == obsqra.TxWithdraw }},
			{"status", obsqra.TransactionFilter{Status: ptr(obsqra.TxReceived)}, func(tr *obsqra.Transaction) bool { return tr.Status == obsqra.TxReceived }},
			{"window", obsqra.TransactionFilter{From: &from, To: &to}, func(tr *obsqra.Transaction) bool {
				return !tr.CreatedAt.Before(from) && !tr.CreatedAt.After(to)
			}},
		} {
			var want []int64
			for _, tr := range newest {
				if tc.keep(tr) {
					want = append(want, tr.ID)
				}
			}
			for _, first := range []int{1, 3, 100} {
				var got []int64
				var after *obsqra.HistoryKey
				for pages := 0; ; pages++ {
					page, err := db.Transactions(ctx, ada.ID, tc.filter, after, first)
					if err != nil || pages > 20 {
						t.Fatalf("%s: Transactions(first %d) = %v after %d pages", tc.name, first, err, pages)
					}
					for _, tr := range page {
						if tr.UserID != ada.ID {
							t.Fatalf("%s: Transactions(ada) returned %+v of user %d", tc.name, tr, tr.UserID)
						}
						got = append(got, tr.ID)
					}
					if len(page) < first {
						break
					}
					last := page[len(page)-1]
					after = &obsqra.HistoryKey{At: last.CreatedAt, ID: last.ID}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: Transactions by pages of %d = %v, want %v", tc.name, first, got, want)
				}
			}
		}
		page, err := db.Transactions(ctx, ada.ID, obsqra.TransactionFilter{}, nil, 1)
		if err != nil || len(page) != 1 || !reflect.DeepEqual(&page[0], newest[0]) {
			t.Errorf("Transactions(first 1) = %+v, %v, want %+v", page, err, newest[0])
		}
		_, err = db.Transactions(ctx, ada.ID, obsqra.TransactionFilter{}, nil, 0)
		wantCode(t, "Transactions(limit 0)", err, obsqra.EINVALID)

		// Histories of a whole page in one statement.
		ids := make([]int64, len(all))
		for i, tr := range all {
			ids[i] = tr.ID
		}
		before := db.Statements()
		hist, err := db.TransactionHistory(ctx, ada.ID, ids)
		if n := db.Statements() - before; err != nil || n != 1 || len(hist) != len(all) || len(hist[all[0].ID]) != 2 || len(hist[all[11].ID]) != 1 {
			t.Errorf("TransactionHistory(page) = %d histories, %v, in %d statements; want %d in 1", len(hist), err, n, len(all))
		}
	})
}

// TestTransactionLogIsAppendOnly: the database itself refuses to change or
// remove a logged transaction or a step of its history, to move a status
// back or to show one without its step, whatever SQL is run.
func TestTransactionLogIsAppendOnly(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "ada@example.com")
		tr := logTransaction(t, db, newTransaction(u.ID, 1))
		if _, err := recordStatus(t, db, tr.ID, obsqra.StatusUpdate{Status: obsqra.TxAcceptedOnL2, ExecutionStatus: ptr(obsqra.ExecSucceeded)}); err != nil {
			t.Fatal(err)
		}
		before, err := db.Transaction(ctx, tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		refused := func(stmt, want string) {
			t.Helper()
			if err := storetest.Exec(t, db, stmt); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s = %v, want refused (%s)", stmt, err, want)
			}
		}
		for _, stmt := range []string{
			"UPDATE transactions SET amount = '1'",
			"UPDATE transactions SET user_id = user_id",
			"DELETE FROM transactions WHERE 1 = 1",
			"DELETE FROM transactions",
			"UPDATE transaction_events SET reason = 'rewritten'",
			"DELETE FROM transaction_events WHERE 1 = 1",
			"DELETE FROM transaction_events",
		} {
			refused(stmt, "append-only")
		}
		refused("DELETE FROM transaction_state", "never deleted")
		if db.Dialect() == store.DialectPostgres {
			refused("TRUNCATE transactions CASCADE", "append-only")
			refused("TRUNCATE transaction_events", "append-only")
			refused("TRUNCATE transaction_state", "never deleted")
		}
		refused("UPDATE transaction_state SET status = 'RECEIVED'", "only moves forward")
		refused("UPDATE transaction_state SET execution_status = 'REVERTED'", "only moves forward")
		refused("UPDATE transaction_state SET execution_status = NULL", "only moves forward")
		refused("UPDATE transaction_state SET status = 'ACCEPTED_ON_L1', next_check_at = NULL", "transaction_events first")
		if got, err := db.Transaction(ctx, tr.ID); err != nil || !reflect.DeepEqual(got, before) {
			t.Errorf("Transaction after tampering = %+v, %v, want %+v", got, err, before)
		}
		if hist, err := db.TransactionHistory(ctx, u.ID, []int64{tr.ID}); err != nil || len(hist[tr.ID]) != 2 {
			t.Errorf("TransactionHistory after tampering = %+v, %v, want its 2 steps", hist, err)
		}
		// The watcher's bookkeeping may change.
		if err := storetest.Exec(t, db, "UPDATE transaction_state SET last_checked_at = updated_at"); err != nil {
			t.Errorf("UPDATE transaction_state SET last_checked_at = %v, want nil", err)
		}
	})
}

// TestTransactionChecks: the database refuses values the service would
// never write: a core column out of form.
func TestTransactionChecks(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		u := createUser(t, db, "ada@example.com")
		n := 0
		insert := func(amount, token, details string) error {
			n++
			return storetest.Exec(t, db, fmt.Sprintf(
				"INSERT INTO transactions (user_id, tx_hash, type, amount, token, details, created_at) VALUES (%d, '%s', 'DEPOSIT', '%s', '%s', %s, '2025-01-01T00:00:00.000000Z')",
				u.ID, txHash(n), amount, token, details))
		}
		for _, amount := range []string{"1", "0.5", "12.345", "100", strings.Repeat("9", 60) + "." + strings.Repeat("9", 18)} {
			if err := insert(amount, "STRK", "NULL"); err != nil {
				t.Errorf("insert amount %s = %v, want nil", amount, err)
			}
		}
		bad := []string{"0", "-1", "0.0", "1." + strings.Repeat("1", 19)}
		if db.Dialect() == store.DialectSQLite {
			// PostgreSQL's numeric takes any spelling of a number and keeps
			// its value; SQLite's text must be the canonical one.
			bad = append(bad, "01", "1.50", ".5", "1.", "1e5", "1..2", "abc")
		}
		for _, amount := range bad {
			if err := insert(amount, "STRK", "NULL"); err == nil {
				t.Errorf("insert amount %q = nil, want refused", amount)
			}
		}
		for _, token := range []string{"", "STRK!", strings.Repeat("A", 17), "US DC"} {
			if err := insert("1", token, "NULL"); err == nil {
				t.Errorf("insert token %q = nil, want refused", token)
			}
		}
		for _, details := range []string{`'[1]'`, `'"x"'`, `'{"a":"` + strings.Repeat("x", 16384) + `"}'`} {
			if err := insert("1", "STRK", details); err == nil {
				t.Errorf("insert details %.40s = nil, want refused", details)
			}
		}
		if err := insert("1", "USDC.e", `'{"a": 1}'`); err != nil {
			t.Errorf("insert USDC.e with details = %v, want nil", err)
		}
		err := storetest.Exec(t, db, fmt.Sprintf(
			"INSERT INTO transactions (user_id, tx_hash, type, amount, token, created_at) VALUES (%d, '0xABC', 'DEPOSIT', '1', 'STRK', '2025-01-01T00:00:00.000000Z')", u.ID))
		if err == nil {
			t.Error("insert a hash out of canonical form = nil, want refused")
		}
	})
}
