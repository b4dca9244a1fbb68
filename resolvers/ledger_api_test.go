package resolvers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/ml"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/portfolio"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestStarknetJourney walks issue 6's check as a new user would, against
// the fake node: link a wallet by signing the challenge with a real key,
// log three transactions, watch one reach ACCEPTED_ON_L1, one REVERTED
// with its reason and one DROPPED, each history showing every step; a
// replayed signature and another user's reads fail clearly.
func TestStarknetJourney(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		clock := obsqratest.NewClock(time.Now().UTC().Truncate(time.Second))
		db.Now = clock.Now
		node := starknettest.NewNode(t)
		client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
		if err != nil {
			t.Fatal(err)
		}
		tokens, err := account.NewTokens(testKey, 30*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: 24 * time.Hour, BcryptCost: 4, Starknet: client})
		if err != nil {
			t.Fatal(err)
		}
		decisions := newDecisions(t, db, nil)
		markets, err := market.New(db, decisions, market.Config{})
		if err != nil {
			t.Fatal(err)
		}
		txs := ledger.New(db, ledger.StarknetNode(client), ledger.Config{Now: clock.Now})
		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions, Ledger: txs,
			Portfolio: portfolio.New(db, portfolio.Config{Now: clock.Now})})
		h := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db).Handler()
		ada := registerVia(t, h, "ada@example.com").AccessToken
		bob := registerVia(t, h, "bob@example.com").AccessToken

		const logTransaction = `mutation($in: LogTransactionInput!) { logTransaction(input: $in) { id txHash status } }`
		var ids []string
		felt := func(s string) obsqra.Felt { // of the constants below
			f, err := obsqra.ParseFelt(s)
			if err != nil {
				panic(err)
			}
			return f
		}
		fee := obsqra.Fee{Amount: obsqra.MustDecimal("21000000000000"), Unit: "FRI"}
		watch := func(t *testing.T, advance time.Duration) {
			t.Helper()
			clock.Set(clock.Now().Add(advance))
			if _, err := txs.Watch(context.Background()); err != nil {
				t.Fatalf("Watch: %v", err)
			}
		}

		obsqratest.Step(t, "link wallet", func(t *testing.T) {
			// Link a wallet: sign the challenge's typed data with the key.
			address, key := node.NewAccount(t)
			r := do(t, h, ada, `mutation($a: String!) { requestWalletChallenge(address: $a) { typedData nonce expiresAt } }`, map[string]any{"a": address.String()})
			if len(r.Errors) > 0 {
				t.Fatalf("requestWalletChallenge: %+v", r.Errors)
			}
			ch := decode[struct {
				TypedData json.RawMessage
				Nonce     string
			}](t, r.Data["requestWalletChallenge"])
			sig := key.SignTypedData(ch.TypedData, address)
			const connect = `mutation($in: ConnectWalletInput!) { connectWallet(input: $in) { walletAddress } }`
			in := map[string]any{"in": map[string]any{"address": address.String(), "signature": sig}}
			r = do(t, h, ada, connect, in)
			if len(r.Errors) > 0 || string(r.Data["connectWallet"]) != `{"walletAddress":"`+address.String()+`"}` {
				t.Fatalf("connectWallet = %s %+v", r.Data["connectWallet"], r.Errors)
			}
			r = do(t, h, ada, connect, in)
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "used already") {
				t.Fatalf("replayed connectWallet = %+v, want BAD_USER_INPUT: used already", r.Errors)
			}
			r = do(t, h, bob, connect, in)
			if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "no challenge") {
				t.Fatalf("bob replaying Ada's signature = %+v, want BAD_USER_INPUT: no challenge", r.Errors)
			}
		})

		obsqratest.Step(t, "log transactions", func(t *testing.T) {
			// Log three transactions.
			hashes := []string{"0xA1", "0xB2", "0xC3"}
			for i, hh := range hashes {
				r := do(t, h, ada, logTransaction, map[string]any{"in": map[string]any{
					"txHash": hh, "type": []string{"DEPOSIT", "ALLOCATE", "WITHDRAW"}[i], "amount": "1.5", "token": "STRK"}})
				if len(r.Errors) > 0 {
					t.Fatalf("logTransaction(%s): %+v", hh, r.Errors)
				}
				chainTx := decode[struct{ ID, TxHash, Status string }](t, r.Data["logTransaction"])
				if chainTx.Status != "PENDING" {
					t.Fatalf("logged %s: %+v, want PENDING", hh, chainTx)
				}
				ids = append(ids, chainTx.ID)
			}
		})

		obsqratest.Step(t, "watch the chain", func(t *testing.T) {
			// The first two move step by step; the node never hears of the third.
			node.SetTransaction(felt("0xA1"), starknettest.Transaction{FinalityStatus: starknet.StatusReceived})
			node.SetTransaction(felt("0xB2"), starknettest.Transaction{FinalityStatus: starknet.StatusReceived})
			watch(t, 0)
			node.SetTransaction(felt("0xA1"), starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionSucceeded,
				BlockNumber: 900, Fee: fee, Events: 3})
			node.SetTransaction(felt("0xB2"), starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL2, ExecutionStatus: starknet.ExecutionReverted,
				FailureReason: "Insufficient balance", BlockNumber: 901, Fee: fee})
			watch(t, time.Minute)
			node.SetTransaction(felt("0xA1"), starknettest.Transaction{FinalityStatus: starknet.StatusAcceptedOnL1, ExecutionStatus: starknet.ExecutionSucceeded,
				BlockNumber: 900, Fee: fee, Events: 3})
			watch(t, time.Minute)
			watch(t, 31*time.Minute)
		})

		obsqratest.Step(t, "read transactions", func(t *testing.T) {
			type change struct{ Status, Reason string }
			type txView struct {
				TxHash          string
				Status          string
				ExecutionStatus *string
				FailureReason   *string
				BlockNumber     *int
				Fee             *struct{ Amount, Unit string }
				EventsEmitted   *int
				History         []change
			}
			r := do(t, h, ada, `{ transactions { edges { node { txHash status executionStatus failureReason blockNumber fee { amount unit } eventsEmitted history { status reason } } } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("transactions: %+v", r.Errors)
			}
			conn := decode[struct{ Edges []struct{ Node txView } }](t, r.Data["transactions"])
			got := map[string]txView{}
			for _, e := range conn.Edges {
				got[e.Node.TxHash] = e.Node
			}
			statuses := func(v txView) string {
				var s []string
				for _, c := range v.History {
					s = append(s, c.Status)
				}
				return strings.Join(s, ">")
			}
			a1, b2, c3 := got[felt("0xA1").String()], got[felt("0xB2").String()], got[felt("0xC3").String()]
			if a1.Status != "ACCEPTED_ON_L1" || *a1.ExecutionStatus != "SUCCEEDED" || *a1.BlockNumber != 900 || a1.Fee.Amount != "21000000000000" ||
				a1.Fee.Unit != "FRI" || *a1.EventsEmitted != 3 || statuses(a1) != "PENDING>RECEIVED>ACCEPTED_ON_L2>ACCEPTED_ON_L1" {
				t.Errorf("0xA1 = %+v (history %s)", a1, statuses(a1))
			}
			if b2.Status != "ACCEPTED_ON_L2" || *b2.ExecutionStatus != "REVERTED" || !strings.Contains(*b2.FailureReason, "Insufficient balance") ||
				statuses(b2) != "PENDING>RECEIVED>ACCEPTED_ON_L2" {
				t.Errorf("0xB2 = %+v (history %s)", b2, statuses(b2))
			}
			if c3.Status != "DROPPED" || statuses(c3) != "PENDING>DROPPED" {
				t.Errorf("0xC3 = %+v (history %s)", c3, statuses(c3))
			}
		})

		obsqratest.Step(t, "allocation hangs off its transaction", func(t *testing.T) {
			// The allocation recorded with a transaction hangs off it.
			r := do(t, h, ada, `mutation { recordAllocation(input: {txHash: "0xa1", weights: [{protocol: "zklend", weightBps: 10000}]}) { id } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatalf("recordAllocation: %+v", r.Errors)
			}
			allocID := decode[struct{ ID string }](t, r.Data["recordAllocation"]).ID
			r = do(t, h, ada, `{ transactions { edges { node { txHash allocation { id } } } } }`, nil)
			want := map[string]string{felt("0xA1").String(): `{"id":"` + allocID + `"}`, felt("0xB2").String(): "null", felt("0xC3").String(): "null"}
			for _, e := range decode[struct {
				Edges []struct {
					Node struct {
						TxHash     string
						Allocation json.RawMessage
					}
				}
			}](t, r.Data["transactions"]).Edges {
				if string(e.Node.Allocation) != want[e.Node.TxHash] {
					t.Errorf("allocation of %s = %s, want %s", e.Node.TxHash, e.Node.Allocation, want[e.Node.TxHash])
				}
			}
		})

		obsqratest.Step(t, "bob reads none of it", func(t *testing.T) {
			// Bob reads none of it.
			r := do(t, h, bob, `query($h: String!, $id: ID!) { transaction(hash: $h) { id } node(id: $id) { id } transactions { edges { cursor } } }`,
				map[string]any{"h": "0xA1", "id": ids[0]})
			if len(r.Errors) > 0 || string(r.Data["transaction"]) != "null" || string(r.Data["node"]) != "null" || string(r.Data["transactions"]) != `{"edges":[]}` {
				t.Fatalf("bob reads %s %+v, want nothing", mustJSON(r.Data), r.Errors)
			}
			r = do(t, h, bob, logTransaction, map[string]any{"in": map[string]any{"txHash": "0xA1", "type": "DEPOSIT", "amount": "1", "token": "ETH"}})
			if r.code() != "CONFLICT" {
				t.Fatalf("bob logging Ada's hash = %+v, want CONFLICT", r.Errors)
			}
			r = do(t, h, "", `{ transactions { edges { cursor } } }`, nil)
			if r.code() != "UNAUTHENTICATED" {
				t.Fatalf("anonymous transactions = %+v, want UNAUTHENTICATED", r.Errors)
			}
		})
	})
}

// TestVerifyDecisionOnChain: with a RiskEngine configured, verifyDecision
// also asks the deployed contract for the score of the recorded inputs.
func TestVerifyDecisionOnChain(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	node := starknettest.NewNode(t)
	client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	engine, _ := obsqra.ParseAddress("0xe1")
	var offset atomic.Int64
	node.SetRiskEngine(engine, func(calldata []obsqra.Felt) []obsqra.Felt {
		n := func(i int) int64 { return new(big.Int).SetBytes(calldata[i][:]).Int64() }
		s, err := ml.ScoreRisk(ml.RiskInputs{UtilizationBps: n(0), VolatilityBps: n(1), LiquidityTier: n(2), AuditScore: n(3), AgeDays: n(4)}, obsqra.DefaultRiskParams())
		if err != nil {
			t.Error(err)
		}
		var out obsqra.Felt
		big.NewInt(s.Score + offset.Load()).FillBytes(out[:])
		return []obsqra.Felt{out}
	})
	decisions := newDecisions(t, db, starknet.RiskEngine{Client: client, Address: engine})
	markets, err := market.New(db, decisions, market.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := markets.Ingest(context.Background(), obsqra.SourceImport, []obsqra.MetricsInput{{
		Protocol: "zklend", ObservedAt: time.Now().UTC().Add(-time.Hour), ApyBps: 420, UtilizationBps: 7300}})
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := account.NewTokens(testKey, 30*time.Minute)
	accounts, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: time.Hour, BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions})
	h := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db).Handler()
	const q = `query($id: ID!) { verifyDecision(id: $id) { matches onChainScore matchesOnChain } }`
	id := map[string]any{"id": obsqra.NodeID(obsqra.NodeDecision, got[0].Risk.DecisionID)}
	want := fmt.Sprintf(`{"matches":true,"onChainScore":%d,"matchesOnChain":true}`, got[0].Risk.Score)
	if r := do(t, h, "", q, id); len(r.Errors) > 0 || string(r.Data["verifyDecision"]) != want {
		t.Fatalf("verifyDecision = %s %+v, want %s", r.Data["verifyDecision"], r.Errors, want)
	}
	offset.Store(1) // the contract now disagrees
	want = fmt.Sprintf(`{"matches":true,"onChainScore":%d,"matchesOnChain":false}`, got[0].Risk.Score+1)
	if r := do(t, h, "", q, id); len(r.Errors) > 0 || string(r.Data["verifyDecision"]) != want {
		t.Fatalf("verifyDecision (disagreeing contract) = %s %+v, want %s", r.Data["verifyDecision"], r.Errors, want)
	}
	// The node down: the off-chain verdict stands, the on-chain fields
	// are null with an error of their own.
	node.FailNext(100, starknettest.HTTP500)
	r := do(t, h, "", q, id)
	if string(r.Data["verifyDecision"]) != `{"matches":true,"onChainScore":null,"matchesOnChain":null}` || len(r.Errors) == 0 {
		t.Fatalf("verifyDecision (node down) = %s %+v", r.Data["verifyDecision"], r.Errors)
	}
}
