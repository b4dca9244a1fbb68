package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
)

// now0 is the injected clock's start.
var now0 = time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)

// errOutage is what the fake node fails with while it is down.
var errOutage = fmt.Errorf("%w: dial tcp 127.0.0.1:9545: connect: connection refused", ledger.ErrUnavailable)

// fakeNode is a Starknet node the test scripts: it answers each hash with
// the status and receipt set for it, error 29 for a hash it has no status
// (or receipt) for, and fails every call while down is set.
type fakeNode struct {
	mu       sync.Mutex
	statuses map[obsqra.Felt]ledger.NodeStatus
	receipts map[obsqra.Felt]ledger.NodeReceipt
	// down fails every call; receiptDown fails receipt calls only.
	down, receiptDown error
	// calls counts the calls by method.
	calls map[string]int
}

func newFakeNode() *fakeNode {
	return &fakeNode{statuses: map[obsqra.Felt]ledger.NodeStatus{}, receipts: map[obsqra.Felt]ledger.NodeReceipt{}, calls: map[string]int{}}
}

func (n *fakeNode) TransactionStatus(ctx context.Context, hash obsqra.Felt) (ledger.NodeStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["status"]++
	if n.down != nil {
		return ledger.NodeStatus{}, n.down
	}
	st, ok := n.statuses[hash]
	if !ok {
		return ledger.NodeStatus{}, fmt.Errorf("starknet_getTransactionStatus: rpc error 29: %w", ledger.ErrNotFound)
	}
	return st, nil
}

func (n *fakeNode) TransactionReceipt(ctx context.Context, hash obsqra.Felt) (ledger.NodeReceipt, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["receipt"]++
	if n.down != nil {
		return ledger.NodeReceipt{}, n.down
	}
	if n.receiptDown != nil {
		return ledger.NodeReceipt{}, n.receiptDown
	}
	r, ok := n.receipts[hash]
	if !ok {
		return ledger.NodeReceipt{}, fmt.Errorf("starknet_getTransactionReceipt: rpc error 29: %w", ledger.ErrNotFound)
	}
	return r, nil
}

// answer makes the node report hash at finality and execution (with a
// failure reason when reverted), as a node would put it in JSON.
func (n *fakeNode) answer(hash obsqra.Felt, finality, execution, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	raw := map[string]string{"finality_status": finality}
	if execution != "" {
		raw["execution_status"] = execution
	}
	if reason != "" {
		raw["failure_reason"] = reason
	}
	b, _ := json.Marshal(raw)
	n.statuses[hash] = ledger.NodeStatus{Finality: finality, Execution: execution, FailureReason: reason, Raw: b}
}

func (n *fakeNode) setReceipt(hash obsqra.Felt, r ledger.NodeReceipt) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.receipts[hash] = r
}

func (n *fakeNode) setDown(err, receiptErr error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down, n.receiptDown = err, receiptErr
}

func (n *fakeNode) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[method]
}

// testBundle holds what a ledger test works with besides the service.
type testBundle struct {
	db    *store.DB
	clock *obsqratest.Clock
	node  *fakeNode
	log   *obsqratest.Buffer
	// ada and bob are signed-in users; ctx and bobCtx their contexts.
	ada, bob    *obsqra.User
	ctx, bobCtx context.Context
}

// setup returns a ledger on db with the default intervals, the clock at
// now0 and a fake node that knows nothing yet.
func setup(t *testing.T, db *store.DB) (*ledger.Service, *testBundle) {
	t.Helper()
	b := &testBundle{db: db, clock: obsqratest.NewClock(now0), node: newFakeNode(), log: &obsqratest.Buffer{}}
	db.Now = b.clock.Now
	b.ada, b.ctx = b.user(t, "ada@example.com")
	b.bob, b.bobCtx = b.user(t, "bob@example.com")
	s := ledger.New(db, b.node, ledger.Config{
		Now:    b.clock.Now,
		Logger: slog.New(slog.NewTextHandler(b.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	return s, b
}

// user stores an active user and returns them with a context they are
// signed in on.
func (b *testBundle) user(t *testing.T, email string) (*obsqra.User, context.Context) {
	t.Helper()
	ctx := context.Background()
	u := &obsqra.User{Email: email, PasswordHash: "x", Role: obsqra.RoleUser, Active: true, Preferences: obsqra.DefaultPreferences()}
	if err := b.db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
		t.Fatalf("CreateUser(%s) = %v", email, err)
	}
	c := *u
	return u, obsqra.NewContextWithPrincipal(context.Background(), &obsqra.Principal{User: &c})
}

// hash returns the hash of test transaction n.
func hash(n int) obsqra.Felt {
	f, err := obsqra.ParseFelt(fmt.Sprintf("0x%x", 0x5eed000+n))
	if err != nil {
		panic(err)
	}
	return f
}

// input returns a valid input for test transaction n.
func input(n int) obsqra.LogTransactionInput {
	return obsqra.LogTransactionInput{TxHash: hash(n), Type: obsqra.TxDeposit, Amount: obsqra.MustDecimal("1.5"), Token: "STRK"}
}

// log logs input(n) as ctx's user.
func (b *testBundle) logTransaction(t *testing.T, ctx context.Context, s *ledger.Service, n int) *obsqra.Transaction {
	t.Helper()
	tr, err := s.LogTransaction(ctx, input(n))
	if err != nil {
		t.Fatalf("LogTransaction(%d) = %v", n, err)
	}
	return tr
}

// watch runs the watch job, which must succeed, and returns how many
// transactions it checked.
func (b *testBundle) watch(t *testing.T, s *ledger.Service) int {
	t.Helper()
	n, err := s.Watch(context.Background())
	if err != nil {
		t.Fatalf("Watch() = %d, %v", n, err)
	}
	return n
}

// reload returns the transaction as stored now.
func (b *testBundle) reload(t *testing.T, id int64) *obsqra.Transaction {
	t.Helper()
	tr, err := b.db.Transaction(context.Background(), id)
	if err != nil {
		t.Fatalf("Transaction(%d) = %v", id, err)
	}
	return tr
}

// steps returns the transaction's history as STATUS/EXECUTION strings.
func (b *testBundle) steps(t *testing.T, ctx context.Context, s *ledger.Service, id int64) ([]string, []obsqra.TxStatusChange) {
	t.Helper()
	h, err := s.History(ctx, []int64{id})
	if err != nil {
		t.Fatalf("History(%d) = %v", id, err)
	}
	var out []string
	for _, c := range h[id] {
		out = append(out, stepName(c.Status, c.ExecutionStatus))
	}
	return out, h[id]
}

func stepName(s obsqra.TxStatus, e *obsqra.ExecutionStatus) string {
	if e == nil {
		return string(s)
	}
	return string(s) + "/" + string(*e)
}

// published returns the transaction.updated events of transaction id, in
// order, as STATUS/EXECUTION strings, checking that each belongs to owner.
func (b *testBundle) published(t *testing.T, id, owner int64) []string {
	t.Helper()
	events, err := b.db.EventsAfter(context.Background(), 0, 10_000)
	if err != nil {
		t.Fatalf("EventsAfter = %v", err)
	}
	var out []string
	for _, e := range events {
		if e.Topic != obsqra.TopicTransactionUpdated {
			continue
		}
		p, err := obsqra.EventValue[obsqra.Transaction](&e)
		if err != nil {
			t.Fatalf("decode %s: %v", e.Payload, err)
		}
		if p.ID != id {
			continue
		}
		if e.OwnerID != owner || p.UserID != owner {
			t.Errorf("event %d of transaction %d is owned by %d (payload user %d), want %d", e.ID, id, e.OwnerID, p.UserID, owner)
		}
		out = append(out, stepName(p.Status, p.ExecutionStatus))
	}
	return out
}

// checkErr is the shared obsqratest.CheckErr.
var checkErr = obsqratest.CheckErr

func ptr[T any](v T) *T { return &v }
