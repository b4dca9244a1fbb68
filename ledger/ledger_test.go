package ledger_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

func TestLogTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		in := input(1)
		in.Type, in.Amount, in.Token = obsqra.TxAllocate, obsqra.MustDecimal("123456789012345678901234567890123456789012345678901234567890.123456789012345678"), "USDC.e"
		addr, _ := obsqra.ParseAddress("0x53C91253BC9682C04929CA02ED00B3E423F6710D2EE7E0D5EBB06F3ECF368A8")
		in.TokenAddress = &addr
		in.Details = obsqra.JSONObject(`{ "protocol": "vesu", "weights": [6000, 4000] }`)
		tr, err := s.LogTransaction(b.ctx, in)
		if err != nil {
			t.Fatalf("LogTransaction = %v", err)
		}
		want := &obsqra.Transaction{ID: tr.ID, UserID: b.ada.ID, TxHash: in.TxHash, Type: in.Type, Amount: in.Amount, Token: "USDC.e",
			TokenAddress: &addr, Details: obsqra.JSONObject(`{"protocol":"vesu","weights":[6000,4000]}`),
			CreatedAt: now0, Status: obsqra.TxPending, UpdatedAt: now0}
		if !reflect.DeepEqual(tr, want) {
			t.Errorf("LogTransaction = %+v, want %+v", tr, want)
		}
		if got := b.published(t, tr.ID, b.ada.ID); !slices.Equal(got, []string{"PENDING"}) {
			t.Errorf("events = %v, want one PENDING", got)
		}
		steps, hist := b.steps(t, b.ctx, s, tr.ID)
		if !slices.Equal(steps, []string{"PENDING"}) || hist[0].Reason != "logged" || !hist[0].At.Equal(now0) {
			t.Errorf("history = %+v, want PENDING logged at %v", hist, now0)
		}

		// The same hash again, in another spelling and with other values:
		// the transaction as logged, and nothing new.
		b.clock.Advance(time.Minute)
		again := input(1)
		again.TxHash, _ = obsqra.ParseFelt("0x0000" + strings.ToUpper(strings.TrimPrefix(in.TxHash.String(), "0x00000000")))
		got, err := s.LogTransaction(b.ctx, again)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LogTransaction(same hash) = %+v, %v, want %+v", got, err, want)
		}
		if got := b.published(t, tr.ID, b.ada.ID); len(got) != 1 {
			t.Errorf("events after logging again = %v, want still one", got)
		}
		// Another user's hash is a conflict, and records nothing.
		_, err = s.LogTransaction(b.bobCtx, input(1))
		checkErr(t, "LogTransaction(another user's hash)", err, obsqra.ECONFLICT, "input.txHash", "another user")
		if got := b.published(t, tr.ID, b.ada.ID); len(got) != 1 {
			t.Errorf("events after the conflict = %v, want still one", got)
		}

		_, err = s.LogTransaction(context.Background(), input(2))
		checkErr(t, "LogTransaction(anonymous)", err, obsqra.EUNAUTHENTICATED)
	})
}

func TestLogTransactionValidation(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	addr0 := obsqra.Felt{}
	bigAddr, _ := obsqra.ParseFelt("0x7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00")
	for _, tc := range []struct {
		name  string
		edit  func(*obsqra.LogTransactionInput)
		field string
	}{
		{"zero hash", func(in *obsqra.LogTransactionInput) { in.TxHash = obsqra.Felt{} }, "input.txHash"},
		{"type", func(in *obsqra.LogTransactionInput) { in.Type = "STAKE" }, "input.type"},
		{"no type", func(in *obsqra.LogTransactionInput) { in.Type = "" }, "input.type"},
		{"zero amount", func(in *obsqra.LogTransactionInput) { in.Amount = obsqra.MustDecimal("0.000") }, "input.amount"},
		{"unset amount", func(in *obsqra.LogTransactionInput) { in.Amount = obsqra.Decimal{} }, "input.amount"},
		{"negative amount", func(in *obsqra.LogTransactionInput) { in.Amount = obsqra.MustDecimal("-1") }, "input.amount"},
		{"empty token", func(in *obsqra.LogTransactionInput) { in.Token = "" }, "input.token"},
		{"long token", func(in *obsqra.LogTransactionInput) { in.Token = strings.Repeat("A", 17) }, "input.token"},
		{"token with space", func(in *obsqra.LogTransactionInput) { in.Token = "US DC" }, "input.token"},
		{"token not ASCII", func(in *obsqra.LogTransactionInput) { in.Token = "ÉTH" }, "input.token"},
		{"zero token address", func(in *obsqra.LogTransactionInput) { in.TokenAddress = &addr0 }, "input.tokenAddress"},
		{"token address beyond addresses", func(in *obsqra.LogTransactionInput) { in.TokenAddress = &bigAddr }, "input.tokenAddress"},
		{"details array", func(in *obsqra.LogTransactionInput) { in.Details = obsqra.JSONObject(`[1]`) }, "input.details"},
		{"details not JSON", func(in *obsqra.LogTransactionInput) { in.Details = obsqra.JSONObject(`{"a":`) }, "input.details"},
		{"details too big", func(in *obsqra.LogTransactionInput) {
			in.Details = obsqra.JSONObject(`{"a":"` + strings.Repeat("x", ledger.MaxDetailsBytes) + `"}`)
		}, "input.details"},
	} {
		in := input(1)
		tc.edit(&in)
		_, err := s.LogTransaction(b.ctx, in)
		checkErr(t, "LogTransaction("+tc.name+")", err, obsqra.EINVALID, tc.field)
	}
	if page, err := s.Transactions(b.ctx, obsqra.TransactionFilter{}, 10, nil); err != nil || len(page) != 0 {
		t.Errorf("Transactions after refused inputs = %+v, %v, want none", page, err)
	}
	// The limits themselves are fine.
	in := input(2)
	in.Token = strings.Repeat("A", 16)
	details, _ := json.Marshal(map[string]string{"a": strings.Repeat("x", ledger.MaxDetailsBytes-8)})
	in.Details = details
	if _, err := s.LogTransaction(b.ctx, in); err != nil {
		t.Errorf("LogTransaction(at the limits) = %v", err)
	}
}

// TestReadTransactions: a user reads their own transactions, by page, by
// hash, by id, with their histories, and nobody else's.
func TestReadTransactions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		var mine []*obsqra.Transaction
		for i := range 5 {
			b.clock.Advance(time.Second)
			mine = append(mine, b.logTransaction(t, b.ctx, s, i))
		}
		theirs := b.logTransaction(t, b.bobCtx, s, 100)

		page, err := s.Transactions(b.ctx, obsqra.TransactionFilter{}, 2, nil)
		if err != nil || len(page) != 3 || page[0].ID != mine[4].ID || page[1].ID != mine[3].ID {
			t.Fatalf("Transactions(first 2) = %+v, %v, want the 2 newest and one more", page, err)
		}
		page, err = s.Transactions(b.ctx, obsqra.TransactionFilter{}, 2, &obsqra.HistoryKey{At: page[1].CreatedAt, ID: page[1].ID})
		if err != nil || len(page) != 3 || page[0].ID != mine[2].ID {
			t.Errorf("Transactions(next page) = %+v, %v", page, err)
		}
		from, to := mine[1].CreatedAt, mine[3].CreatedAt
		page, err = s.Transactions(b.ctx, obsqra.TransactionFilter{From: &from, To: &to, Type: ptr(obsqra.TxDeposit), Status: ptr(obsqra.TxPending)}, 10, nil)
		if err != nil || len(page) != 3 || page[0].ID != mine[3].ID || page[2].ID != mine[1].ID {
			t.Errorf("Transactions(window) = %+v, %v, want 3", page, err)
		}
		page, err = s.Transactions(b.ctx, obsqra.TransactionFilter{Status: ptr(obsqra.TxDropped)}, 10, nil)
		if err != nil || len(page) != 0 {
			t.Errorf("Transactions(DROPPED) = %+v, %v, want none", page, err)
		}
		for name, f := range map[string]obsqra.TransactionFilter{
			"filter.type":   {Type: ptr(obsqra.TxType("STAKE"))},
			"filter.status": {Status: ptr(obsqra.TxStatus("LOST"))},
			"filter.from":   {From: &to, To: &from},
		} {
			_, err := s.Transactions(b.ctx, f, 10, nil)
			checkErr(t, "Transactions("+name+")", err, obsqra.EINVALID, name)
		}
		_, err = s.Transactions(b.ctx, obsqra.TransactionFilter{}, 0, nil)
		checkErr(t, "Transactions(first 0)", err, obsqra.EINVALID, "first")

		// By hash, in any spelling.
		got, err := s.Transaction(b.ctx, strings.ToUpper(strings.TrimLeft(strings.TrimPrefix(mine[0].TxHash.String(), "0x"), "0")))
		if err != nil || !reflect.DeepEqual(got, mine[0]) {
			t.Errorf("Transaction(hash) = %+v, %v, want %+v", got, err, mine[0])
		}
		_, err = s.Transaction(b.ctx, "0xnothex")
		checkErr(t, "Transaction(not a felt)", err, obsqra.EINVALID, "hash")
		_, err = s.Transaction(b.ctx, hash(999).String())
		checkErr(t, "Transaction(unknown)", err, obsqra.ENOTFOUND)
		if got, err := s.TransactionByID(b.ctx, mine[0].ID); err != nil || got.ID != mine[0].ID {
			t.Errorf("TransactionByID(own) = %+v, %v", got, err)
		}

		// Another user, or nobody, sees none of it.
		_, err = s.Transaction(b.bobCtx, mine[0].TxHash.String())
		checkErr(t, "Transaction(another user's)", err, obsqra.ENOTFOUND)
		_, err = s.TransactionByID(b.bobCtx, mine[0].ID)
		checkErr(t, "TransactionByID(another user's)", err, obsqra.ENOTFOUND)
		_, err = s.TransactionByID(context.Background(), mine[0].ID)
		checkErr(t, "TransactionByID(anonymous)", err, obsqra.ENOTFOUND)
		page, err = s.Transactions(b.bobCtx, obsqra.TransactionFilter{}, 10, nil)
		if err != nil || len(page) != 1 || page[0].ID != theirs.ID {
			t.Errorf("Transactions(bob) = %+v, %v, want only his", page, err)
		}
		h, err := s.History(b.bobCtx, []int64{mine[0].ID, theirs.ID})
		if err != nil || len(h) != 1 || len(h[theirs.ID]) != 1 {
			t.Errorf("History(bob, ada's and his) = %+v, %v, want only his", h, err)
		}
		_, err = s.Transactions(context.Background(), obsqra.TransactionFilter{}, 10, nil)
		checkErr(t, "Transactions(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.Transaction(context.Background(), mine[0].TxHash.String())
		checkErr(t, "Transaction(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = s.History(context.Background(), []int64{mine[0].ID})
		checkErr(t, "History(anonymous)", err, obsqra.EUNAUTHENTICATED)
	})
}
