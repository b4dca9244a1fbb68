package ledger_test

import (
	"context"
	"errors"
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

const interval = ledger.DefaultWatchInterval

// TestWatchToAcceptedOnL1 follows one transaction through every status to
// ACCEPTED_ON_L1, each step recorded with the node's answer and published.
func TestWatchToAcceptedOnL1(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		tr := b.logTransaction(t, b.ctx, s, 1)
		h := tr.TxHash

		// Newly logged: checked at once. The node has not seen it yet.
		if n := b.watch(t, s); n != 1 {
			t.Fatalf("Watch() checked %d, want 1", n)
		}
		got := b.reload(t, tr.ID)
		if got.Status != obsqra.TxPending || got.LastCheckedAt == nil || !got.LastCheckedAt.Equal(now0) {
			t.Errorf("after a check the node had nothing to say: %+v, want PENDING checked at %v", got, now0)
		}
		// Not due again before the interval.
		b.clock.Advance(interval - time.Second)
		if n := b.watch(t, s); n != 0 {
			t.Errorf("Watch() before the interval checked %d, want 0", n)
		}

		succeeded := "SUCCEEDED"
		for _, step := range []struct{ finality, execution, want string }{
			{"RECEIVED", "", "RECEIVED"},
			{"CANDIDATE", "", "CANDIDATE"},
			{"PRE_CONFIRMED", succeeded, "PRE_CONFIRMED/SUCCEEDED"},
			{"ACCEPTED_ON_L2", succeeded, "ACCEPTED_ON_L2/SUCCEEDED"},
			{"ACCEPTED_ON_L1", succeeded, "ACCEPTED_ON_L1/SUCCEEDED"},
		} {
			b.node.answer(h, step.finality, step.execution, "")
			if step.finality == "ACCEPTED_ON_L2" {
				b.node.setReceipt(h, ledger.NodeReceipt{BlockNumber: ptr(int64(1_234_567)), FeeAmount: "0x2386f26fc10000", FeeUnit: "FRI",
					Events: 4, Execution: succeeded, Finality: step.finality})
			}
			b.clock.Advance(interval)
			if n := b.watch(t, s); n != 1 {
				t.Fatalf("Watch() at %s checked %d, want 1", step.finality, n)
			}
			got := b.reload(t, tr.ID)
			if name := stepName(got.Status, got.ExecutionStatus); name != step.want || !got.UpdatedAt.Equal(b.clock.Now()) {
				t.Errorf("after the node said %s: %s updated %v, want %s updated %v", step.finality, name, got.UpdatedAt, step.want, b.clock.Now())
			}
		}
		got = b.reload(t, tr.ID)
		fee := &obsqra.Fee{Amount: obsqra.MustDecimal("10000000000000000"), Unit: "FRI"}
		if got.BlockNumber == nil || *got.BlockNumber != 1_234_567 || !reflect.DeepEqual(got.Fee, fee) ||
			got.EventsEmitted == nil || *got.EventsEmitted != 4 || got.FailureReason != nil {
			t.Errorf("receipt of the accepted transaction: block %v, fee %+v, events %v, failure %v; want 1234567, %+v, 4, none",
				got.BlockNumber, got.Fee, got.EventsEmitted, got.FailureReason, fee)
		}
		if n := b.node.count("receipt"); n != 1 {
			t.Errorf("receipt asked %d times, want once (once in a block, until known)", n)
		}

		want := []string{"PENDING", "RECEIVED", "CANDIDATE", "PRE_CONFIRMED/SUCCEEDED", "ACCEPTED_ON_L2/SUCCEEDED", "ACCEPTED_ON_L1/SUCCEEDED"}
		steps, hist := b.steps(t, b.ctx, s, tr.ID)
		if !slices.Equal(steps, want) {
			t.Errorf("history = %v, want %v", steps, want)
		}
		for i, c := range hist[1:] {
			if c.Reason != "reported by the node" || !strings.Contains(c.RawStatus, `"finality_status":"`+string(c.Status)+`"`) ||
				!c.At.Equal(now0.Add(interval-time.Second+time.Duration(i+1)*interval)) {
				t.Errorf("history step %d = %+v, want the node's raw answer, a reason and the time of the check", i+1, c)
			}
		}
		if got := b.published(t, tr.ID, b.ada.ID); !slices.Equal(got, want) {
			t.Errorf("events = %v, want %v", got, want)
		}
		// The last event's payload is the transaction as stored.
		events, _ := db.EventsAfter(context.Background(), 0, 1000)
		if p, err := obsqra.EventValue[obsqra.Transaction](&events[len(events)-1]); err != nil || !reflect.DeepEqual(p, withoutCheck(got)) {
			t.Errorf("last event = %+v, %v, want %+v", p, err, withoutCheck(got))
		}

		// Final: never asked again.
		calls := b.node.count("status")
		b.clock.Advance(24 * time.Hour)
		if n := b.watch(t, s); n != 0 || b.node.count("status") != calls {
			t.Errorf("Watch() after ACCEPTED_ON_L1 checked %d, want 0", n)
		}
	})
}

// withoutCheck is tr without the watcher's bookkeeping, which events do
// not carry.
func withoutCheck(tr *obsqra.Transaction) *obsqra.Transaction {
	c := *tr
	c.LastCheckedAt = nil
	return &c
}

// TestWatchReverted: a reverted transaction keeps its reason, in its state
// and in its history.
func TestWatchReverted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		tr := b.logTransaction(t, b.ctx, s, 1)
		reason := "Transaction execution has failed:\n0: Error in the called contract (0x0123): Error at pc=0:4573: u256_sub Overflow"
		b.node.answer(tr.TxHash, "ACCEPTED_ON_L2", "REVERTED", reason)
		// The receipt has the revert reason too; the fee is decimal here.
		b.node.setReceipt(tr.TxHash, ledger.NodeReceipt{BlockNumber: ptr(int64(900)), FeeAmount: "21000000000000", FeeUnit: "WEI",
			Execution: "REVERTED", RevertReason: reason, Finality: "ACCEPTED_ON_L2"})
		b.watch(t, s)
		got := b.reload(t, tr.ID)
		if got.Status != obsqra.TxAcceptedOnL2 || got.ExecutionStatus == nil || *got.ExecutionStatus != obsqra.ExecReverted ||
			got.FailureReason == nil || *got.FailureReason != reason || got.Fee == nil || got.Fee.Amount.String() != "21000000000000" {
			t.Errorf("reverted transaction = %+v", got)
		}
		steps, hist := b.steps(t, b.ctx, s, tr.ID)
		if !slices.Equal(steps, []string{"PENDING", "ACCEPTED_ON_L2/REVERTED"}) || hist[1].Reason != "reverted: "+reason {
			t.Errorf("history = %v, last reason %q, want the revert with its reason", steps, hist[len(hist)-1].Reason)
		}

		// A node that now says SUCCEEDED contradicts the record: ignored.
		b.node.answer(tr.TxHash, "ACCEPTED_ON_L1", "SUCCEEDED", "")
		b.clock.Advance(interval)
		b.watch(t, s)
		got = b.reload(t, tr.ID)
		if got.Status != obsqra.TxAcceptedOnL1 || *got.ExecutionStatus != obsqra.ExecReverted || *got.FailureReason != reason {
			t.Errorf("after a contradicting node: %+v, want ACCEPTED_ON_L1, still REVERTED with its reason", got)
		}
		if !strings.Contains(b.log.String(), "contradicts the recorded execution status") {
			t.Errorf("log = %s, want the contradiction noted", b.log)
		}
	})
}

// TestWatchDropped: a transaction the node never sees is "not yet seen"
// for TX_DROP_AFTER after it was logged, then DROPPED, on time.
func TestWatchDropped(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		tr := b.logTransaction(t, b.ctx, s, 1)
		ctx := context.Background()
		for _, at := range []time.Duration{0, interval, 10 * time.Minute, 29*time.Minute + 55*time.Second} {
			b.clock.Advance(now0.Add(at).Sub(b.clock.Now()))
			if n := b.watch(t, s); n != 1 {
				t.Fatalf("Watch() at +%v checked %d, want 1", at, n)
			}
			if got := b.reload(t, tr.ID); got.Status != obsqra.TxPending {
				t.Fatalf("at +%v: %s, want PENDING (not yet seen)", at, got.Status)
			}
		}
		// The next check is when the grace period ends, not an interval on.
		due, err := db.DueTransactions(ctx, now0.Add(time.Hour), 10)
		if err != nil || len(due) != 1 || !due[0].NextCheckAt.Equal(now0.Add(ledger.DefaultDropAfter)) ||
			due[0].NotFoundSince == nil || !due[0].NotFoundSince.Equal(now0) {
			t.Fatalf("DueTransactions = %+v, %v, want the next check at +30m, not found since %v", due, err, now0)
		}
		b.clock.Advance(5 * time.Second)
		b.watch(t, s)
		got := b.reload(t, tr.ID)
		if got.Status != obsqra.TxDropped || got.ExecutionStatus != nil {
			t.Fatalf("at +30m: %+v, want DROPPED", got)
		}
		steps, hist := b.steps(t, b.ctx, s, tr.ID)
		if !slices.Equal(steps, []string{"PENDING", "DROPPED"}) || !strings.Contains(hist[1].Reason, "30m0s") ||
			!strings.Contains(hist[1].Reason, "not seen") || !strings.Contains(hist[1].RawStatus, "29") {
			t.Errorf("history = %v %+v, want DROPPED saying why, with the node's error", steps, hist)
		}
		if got := b.published(t, tr.ID, b.ada.ID); !slices.Equal(got, []string{"PENDING", "DROPPED"}) {
			t.Errorf("events = %v, want PENDING, DROPPED", got)
		}
		// Final: the node's later word changes nothing.
		b.node.answer(tr.TxHash, "ACCEPTED_ON_L2", "SUCCEEDED", "")
		b.clock.Advance(time.Hour)
		if n := b.watch(t, s); n != 0 {
			t.Errorf("Watch() after DROPPED checked %d, want 0", n)
		}
	})
}

// TestWatchLost: a transaction the node saw and then forgets (evicted from
// the mempool) is dropped TX_DROP_AFTER after it was first missing; one in
// a block is never dropped for a node that does not know it.
func TestWatchLost(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		seen := b.logTransaction(t, b.ctx, s, 1)
		inBlock := b.logTransaction(t, b.ctx, s, 2)
		b.node.answer(seen.TxHash, "RECEIVED", "", "")
		b.node.answer(inBlock.TxHash, "ACCEPTED_ON_L2", "SUCCEEDED", "")
		b.node.setReceipt(inBlock.TxHash, ledger.NodeReceipt{BlockNumber: ptr(int64(7)), FeeAmount: "0x1", FeeUnit: "FRI"})
		b.clock.Advance(20 * time.Minute)
		b.watch(t, s)
		// The node forgets both.
		b.node.mu.Lock()
		b.node.statuses = map[obsqra.Felt]ledger.NodeStatus{}
		b.node.mu.Unlock()
		for range 3 {
			b.clock.Advance(15 * time.Minute)
			b.watch(t, s)
		}
		if got := b.reload(t, seen.ID); got.Status != obsqra.TxDropped {
			t.Errorf("a transaction the node forgot 45 minutes ago: %s, want DROPPED", got.Status)
		}
		_, hist := b.steps(t, b.ctx, s, seen.ID)
		if last := hist[len(hist)-1]; !strings.Contains(last.Reason, "since it last reported it") {
			t.Errorf("DROPPED reason = %q", last.Reason)
		}
		if got := b.reload(t, inBlock.ID); got.Status != obsqra.TxAcceptedOnL2 {
			t.Errorf("a transaction in a block the node forgot: %s, want still ACCEPTED_ON_L2", got.Status)
		}
	})
}

// TestWatchLaggingNode: a node that answers an older status than the one
// recorded is ignored, and said so in the log.
func TestWatchLaggingNode(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		tr := b.logTransaction(t, b.ctx, s, 1)
		b.node.answer(tr.TxHash, "PRE_CONFIRMED", "SUCCEEDED", "")
		b.watch(t, s)
		before := b.reload(t, tr.ID)
		b.node.answer(tr.TxHash, "RECEIVED", "", "")
		b.clock.Advance(interval)
		if n := b.watch(t, s); n != 1 {
			t.Fatalf("Watch() checked %d, want 1", n)
		}
		got := b.reload(t, tr.ID)
		if got.Status != obsqra.TxPreConfirmed || !got.UpdatedAt.Equal(before.UpdatedAt) || !got.LastCheckedAt.Equal(b.clock.Now()) {
			t.Errorf("after a lagging answer: %+v, want PRE_CONFIRMED as before, checked now", got)
		}
		if steps, _ := b.steps(t, b.ctx, s, tr.ID); !slices.Equal(steps, []string{"PENDING", "PRE_CONFIRMED/SUCCEEDED"}) {
			t.Errorf("history = %v, want no step for the lagging answer", steps)
		}
		if got := b.published(t, tr.ID, b.ada.ID); len(got) != 2 {
			t.Errorf("events = %v, want none for the lagging answer", got)
		}
		if !strings.Contains(b.log.String(), "older status than recorded; ignored") {
			t.Errorf("log = %s, want the lagging answer noted", b.log)
		}
	})
}

// TestWatchOutage: while the node cannot be reached, Watch fails (the
// scheduler records it) and nothing changes, not even half a check; then
// it catches up.
func TestWatchOutage(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		s, b := setup(t, db)
		ctx := context.Background()
		a := b.logTransaction(t, b.ctx, s, 1)
		c := b.logTransaction(t, b.ctx, s, 2)
		b.node.answer(a.TxHash, "ACCEPTED_ON_L2", "SUCCEEDED", "")
		b.node.answer(c.TxHash, "RECEIVED", "", "")
		b.node.setReceipt(a.TxHash, ledger.NodeReceipt{BlockNumber: ptr(int64(5)), FeeAmount: "0x10", FeeUnit: "FRI", Events: 1})
		lastEvent, _ := db.LastEventID(ctx)

		for name, down := range map[string][2]error{
			"node down":    {errOutage, nil},
			"receipt down": {nil, errOutage},
		} {
			b.node.setDown(down[0], down[1])
			n, err := s.Watch(ctx)
			if !errors.Is(err, errOutage) || !strings.Contains(err.Error(), a.TxHash.String()) {
				t.Errorf("%s: Watch() = %d, %v, want the outage naming the transaction", name, n, err)
			}
			for _, tr := range []*obsqra.Transaction{a, c} {
				if got := b.reload(t, tr.ID); !reflect.DeepEqual(got, tr) {
					t.Errorf("%s: transaction %d = %+v, want unchanged %+v", name, tr.ID, got, tr)
				}
				if steps, _ := b.steps(t, b.ctx, s, tr.ID); len(steps) != 1 {
					t.Errorf("%s: history = %v, want the first step only", name, steps)
				}
			}
			if last, _ := db.LastEventID(ctx); last != lastEvent {
				t.Errorf("%s: events appended during the outage", name)
			}
			if due, err := db.DueTransactions(ctx, b.clock.Now(), 10); err != nil || len(due) != 2 {
				t.Errorf("%s: due = %d, %v, want both still due", name, len(due), err)
			}
		}

		b.node.setDown(nil, nil)
		b.clock.Advance(time.Minute)
		if n := b.watch(t, s); n != 2 {
			t.Errorf("Watch() after the outage checked %d, want 2", n)
		}
		if got := b.reload(t, a.ID); got.Status != obsqra.TxAcceptedOnL2 || got.BlockNumber == nil || *got.BlockNumber != 5 {
			t.Errorf("after the outage: %+v, want ACCEPTED_ON_L2 in block 5", got)
		}
		if got := b.reload(t, c.ID); got.Status != obsqra.TxReceived {
			t.Errorf("after the outage: %+v, want RECEIVED", got)
		}
	})
}

// TestWatchOneBadTransaction: an error about one transaction (a malformed
// answer, an error for its hash) puts that one off and the others are
// still checked, run after run.
func TestWatchOneBadTransaction(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	ctx := context.Background()
	a := b.logTransaction(t, b.ctx, s, 1)
	c := b.logTransaction(t, b.ctx, s, 2)
	b.node.answer(a.TxHash, "ACCEPTED_ON_L2", "SUCCEEDED", "")
	b.node.answer(c.TxHash, "RECEIVED", "", "")
	// Every receipt fails: only a, in a block, needs one.
	b.node.setDown(nil, errors.New("receipt answer without actual_fee"))
	if _, err := s.Watch(ctx); err != nil {
		t.Fatalf("Watch() = %v, want the bad transaction put off, not the run failed", err)
	}
	if got := b.reload(t, c.ID); got.Status != obsqra.TxReceived {
		t.Errorf("the other transaction = %s, want RECEIVED despite the first one's error", got.Status)
	}
	if got := b.reload(t, a.ID); got.Status != obsqra.TxPending {
		t.Errorf("the bad transaction = %s, want PENDING (nothing half-written)", got.Status)
	}
	if !strings.Contains(b.log.String(), "could not check transaction") {
		t.Errorf("log = %s, want the bad transaction noted", b.log)
	}
}

// TestWatchNeverDropsWhatIsInABlock: a node answering REJECTED for a
// transaction in a block is wrong; nothing changes.
func TestWatchNeverDropsWhatIsInABlock(t *testing.T) {
	t.Parallel()
	s, b := setup(t, storetest.SQLite(t))
	ctx := context.Background()
	a := b.logTransaction(t, b.ctx, s, 1)
	b.node.answer(a.TxHash, "ACCEPTED_ON_L2", "SUCCEEDED", "")
	b.node.setReceipt(a.TxHash, ledger.NodeReceipt{BlockNumber: ptr(int64(3)), FeeAmount: "0x10", FeeUnit: "FRI", Events: 1})
	if _, err := s.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	b.node.answer(a.TxHash, "REJECTED", "", "")
	b.clock.Advance(time.Hour)
	if _, err := s.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.reload(t, a.ID); got.Status != obsqra.TxAcceptedOnL2 {
		t.Errorf("after a REJECTED answer = %s, want ACCEPTED_ON_L2", got.Status)
	}
}

// TestWatchBackoff: a transaction is checked every interval while young,
// then less and less often as it ages, up to every ten minutes.
func TestWatchBackoff(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	s, b := setup(t, db)
	tr := b.logTransaction(t, b.ctx, s, 1)
	b.node.answer(tr.TxHash, "RECEIVED", "", "")
	ctx := context.Background()
	for _, tc := range []struct{ age, wait time.Duration }{
		{0, interval},
		{59 * time.Minute, interval},
		{time.Hour, 2 * interval},
		{3*time.Hour + 30*time.Minute, 8 * interval},
		{5 * time.Hour, 32 * interval},
		{6 * time.Hour, ledger.MaxCheckInterval},
		{72 * time.Hour, ledger.MaxCheckInterval},
	} {
		b.clock.Advance(now0.Add(tc.age).Sub(b.clock.Now()))
		b.watch(t, s)
		due, err := db.DueTransactions(ctx, now0.Add(1000*time.Hour), 1)
		if err != nil || len(due) != 1 {
			t.Fatalf("DueTransactions = %v, %v", due, err)
		}
		if got := due[0].NextCheckAt.Sub(b.clock.Now()); got != tc.wait {
			t.Errorf("next check of a transaction %v old: in %v, want %v", tc.age, got, tc.wait)
		}
	}
}

// TestWatchBatches: more transactions due than a batch holds are all
// checked in one run.
func TestWatchBatches(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	_, b := setup(t, db)
	s := ledger.New(db, b.node, ledger.Config{Now: b.clock.Now, BatchSize: 2})
	for i := range 5 {
		tr := b.logTransaction(t, b.ctx, s, i)
		b.node.answer(tr.TxHash, "CANDIDATE", "", "")
	}
	if n := b.watch(t, s); n != 5 {
		t.Errorf("Watch() checked %d, want 5", n)
	}
	page, err := s.Transactions(b.ctx, obsqra.TransactionFilter{Status: ptr(obsqra.TxCandidate)}, 10, nil)
	if err != nil || len(page) != 5 {
		t.Errorf("CANDIDATE transactions = %d, %v, want 5", len(page), err)
	}
}
