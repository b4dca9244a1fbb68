package resolvers_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestSignedConstraintsAPI: through the API, a user links a wallet, asks
// for a constraint set's typed data, signs it with the wallet's real key,
// and approves it; the set is listed with its whole signature and its
// calldata in the RiskEngine's ConstraintSignature layout; a replay,
// another user and bad input are refused with their codes.
func TestSignedConstraintsAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
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
		schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts})
		h := server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, schema, accounts, db).Handler()
		ada := registerVia(t, h, "ada@example.com").AccessToken
		bob := registerVia(t, h, "bob@example.com").AccessToken
		address, key := node.NewAccount(t)

		const request = `mutation($in: ConstraintApprovalInput!) { requestConstraintApproval(input: $in) { typedData nonce expiresAt } }`
		set := map[string]any{"in": map[string]any{"maxSingleBps": 5000, "minDiversification": 2, "maxVolatilityBps": 900, "maxLiquidityTier": 1}}
		if r := do(t, h, ada, request, set); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "linked wallet") {
			t.Fatalf("requestConstraintApproval without a wallet = %+v", r.Errors)
		}
		if r := do(t, h, "", request, set); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("requestConstraintApproval signed out = %+v", r.Errors)
		}

		// Link the wallet.
		r := do(t, h, ada, `mutation($a: String!) { requestWalletChallenge(address: $a) { typedData } }`, map[string]any{"a": address.String()})
		ch := decode[struct{ TypedData json.RawMessage }](t, r.Data["requestWalletChallenge"])
		if r := do(t, h, ada, `mutation($in: ConnectWalletInput!) { connectWallet(input: $in) { walletAddress } }`,
			map[string]any{"in": map[string]any{"address": address.String(), "signature": key.SignTypedData(ch.TypedData, address)}}); len(r.Errors) > 0 {
			t.Fatalf("connectWallet: %+v", r.Errors)
		}

		bad := map[string]any{"in": map[string]any{"maxSingleBps": 5000, "minDiversification": 2, "maxVolatilityBps": 900, "maxLiquidityTier": 4}}
		if r := do(t, h, ada, request, bad); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "input.maxLiquidityTier") {
			t.Fatalf("requestConstraintApproval(tier 4) = %+v", r.Errors)
		}
		r = do(t, h, ada, request, set)
		if len(r.Errors) > 0 {
			t.Fatalf("requestConstraintApproval: %+v", r.Errors)
		}
		req := decode[struct{ TypedData json.RawMessage }](t, r.Data["requestConstraintApproval"])
		sig := key.SignTypedData(req.TypedData, address)

		const approve = `mutation($in: ApproveConstraintsInput!) { approveConstraints(input: $in) {
			id signer maxSingleBps minDiversification maxVolatilityBps maxLiquidityTier signature messageHash issuedAt signedAt calldata } }`
		in := map[string]any{"in": map[string]any{"signature": sig}}
		if r := do(t, h, bob, approve, in); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "linked wallet") {
			t.Fatalf("bob approving with Ada's signature = %+v", r.Errors)
		}
		if r := do(t, h, ada, approve, map[string]any{"in": map[string]any{"signature": []string{"0x1", "0x2"}}}); r.code() != "FORBIDDEN" {
			t.Fatalf("approveConstraints(a made-up signature) = %+v, want FORBIDDEN", r.Errors)
		}
		r = do(t, h, ada, approve, in)
		if len(r.Errors) > 0 {
			t.Fatalf("approveConstraints: %+v", r.Errors)
		}
		type setJSON struct {
			ID, Signer, MessageHash                                              string
			MaxSingleBps, MinDiversification, MaxVolatilityBps, MaxLiquidityTier int
			Signature, Calldata                                                  []string
			IssuedAt                                                             time.Time
		}
		got := decode[setJSON](t, r.Data["approveConstraints"])
		if got.Signer != address.String() || got.MaxSingleBps != 5000 || got.MinDiversification != 2 || got.MaxVolatilityBps != 900 ||
			got.MaxLiquidityTier != 1 || len(got.Signature) != 2 {
			t.Fatalf("approveConstraints = %+v", got)
		}
		felt := func(v uint64) string { return obsqra.FeltFromUint64(v).String() }
		want := []string{address.String(), felt(5000), felt(2), felt(900), felt(1), got.Signature[0], got.Signature[1], felt(uint64(got.IssuedAt.Unix()))}
		if strings.Join(got.Calldata, ",") != strings.Join(want, ",") {
			t.Errorf("calldata %v, want %v", got.Calldata, want)
		}
		if r := do(t, h, ada, approve, in); r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "used already") {
			t.Fatalf("replayed approveConstraints = %+v", r.Errors)
		}

		const list = `{ signedConstraints(first: 5) { edges { node { id maxVolatilityBps } } pageInfo { hasNextPage } } }`
		if r := do(t, h, ada, list, nil); string(r.Data["signedConstraints"]) != `{"edges":[{"node":{"id":"`+got.ID+`","maxVolatilityBps":900}}],"pageInfo":{"hasNextPage":false}}` {
			t.Errorf("signedConstraints = %s %+v", r.Data["signedConstraints"], r.Errors)
		}
		if r := do(t, h, bob, list, nil); string(r.Data["signedConstraints"]) != `{"edges":[],"pageInfo":{"hasNextPage":false}}` {
			t.Errorf("bob's signedConstraints = %s %+v", r.Data["signedConstraints"], r.Errors)
		}
		if r := do(t, h, "", list, nil); r.code() != "UNAUTHENTICATED" {
			t.Errorf("signedConstraints signed out = %+v", r.Errors)
		}
		if r := do(t, h, ada, `{ signedConstraints(first: 0) { pageInfo { hasNextPage } } }`, nil); r.code() != "BAD_USER_INPUT" {
			t.Errorf("signedConstraints(first: 0) = %+v", r.Errors)
		}
	})
}

// TestSignedConstraintsObeyedAPI: after a user's wallet signed a set,
// runOptimization's plan obeys it however loose the preferences, and
// verifyDecision reports the set signed, its signature valid (asked of the
// account contract again) and the constraints met.
func TestSignedConstraintsObeyedAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		node := starknettest.NewNode(t)
		client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
		if err != nil {
			t.Fatal(err)
		}
		e := newAdviceEnvOn(t, db, client)
		e.ingestDays(t, 40, calm)
		ada := registerVia(t, e.h, "ada@example.com").AccessToken
		address, key := node.NewAccount(t)
		r := do(t, e.h, ada, `mutation($a: String!) { requestWalletChallenge(address: $a) { typedData } }`, map[string]any{"a": address.String()})
		ch := decode[struct{ TypedData json.RawMessage }](t, r.Data["requestWalletChallenge"])
		if r := do(t, e.h, ada, `mutation($in: ConnectWalletInput!) { connectWallet(input: $in) { walletAddress } }`,
			map[string]any{"in": map[string]any{"address": address.String(), "signature": key.SignTypedData(ch.TypedData, address)}}); len(r.Errors) > 0 {
			t.Fatalf("connectWallet: %+v", r.Errors)
		}
		r = do(t, e.h, ada, `mutation { requestConstraintApproval(input: {maxSingleBps: 4000, minDiversification: 3, maxVolatilityBps: 1000000, maxLiquidityTier: 3}) { typedData } }`, nil)
		req := decode[struct{ TypedData json.RawMessage }](t, r.Data["requestConstraintApproval"])
		if r := do(t, e.h, ada, `mutation($in: ApproveConstraintsInput!) { approveConstraints(input: $in) { id } }`,
			map[string]any{"in": map[string]any{"signature": key.SignTypedData(req.TypedData, address)}}); len(r.Errors) > 0 {
			t.Fatalf("approveConstraints: %+v", r.Errors)
		}

		r = do(t, e.h, ada, `mutation { runOptimization { decisionId plan { maxSingleBps minDiversification weights { weightBps } } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("runOptimization: %+v", r.Errors)
		}
		run := decode[struct {
			DecisionID string
			Plan       struct {
				MaxSingleBps, MinDiversification int
				Weights                          []struct{ WeightBps int }
			}
		}](t, r.Data["runOptimization"])
		if run.Plan.MaxSingleBps != 4000 || run.Plan.MinDiversification != 3 {
			t.Errorf("plan limits %d %d, want the signed 4000 and 3", run.Plan.MaxSingleBps, run.Plan.MinDiversification)
		}
		for _, w := range run.Plan.Weights {
			if w.WeightBps > 4000 {
				t.Errorf("weight %d above the signed 4000", w.WeightBps)
			}
		}
		const verify = `query($id: ID!) { verifyDecision(id: $id) { matches constraintsSigned signatureValid constraintsMet } }`
		r = do(t, e.h, ada, verify, map[string]any{"id": run.DecisionID})
		if got := string(r.Data["verifyDecision"]); len(r.Errors) > 0 || got != `{"matches":true,"constraintsSigned":true,"signatureValid":true,"constraintsMet":true}` {
			t.Errorf("verifyDecision = %s %+v", got, r.Errors)
		}
		// The account's owner changes its key: the recorded signature no
		// longer verifies.
		node.AddAccount(address, starknettest.NewKey(t).Public())
		r = do(t, e.h, ada, verify, map[string]any{"id": run.DecisionID})
		if got := string(r.Data["verifyDecision"]); len(r.Errors) > 0 || got != `{"matches":true,"constraintsSigned":true,"signatureValid":false,"constraintsMet":true}` {
			t.Errorf("verifyDecision after a key change = %s %+v", got, r.Errors)
		}
		// The node down: the signature is unchecked, that field's error
		// says why, and the rest of the verification stands.
		node.FailNext(3, starknettest.HTTP500) // every try of the client's
		r = do(t, e.h, ada, verify, map[string]any{"id": run.DecisionID})
		if got := string(r.Data["verifyDecision"]); got != `{"matches":true,"constraintsSigned":true,"signatureValid":null,"constraintsMet":true}` ||
			r.code() != "SERVICE_UNAVAILABLE" || fmt.Sprint(r.Errors[0].Path) != "[verifyDecision signatureValid]" || strings.Contains(r.Errors[0].Message, "127.0.0.1") {
			t.Errorf("verifyDecision with the node down = %s %+v", got, r.Errors)
		}
	})
}
