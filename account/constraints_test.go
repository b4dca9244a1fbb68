package account_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// linkWallet links a new account of node to the user of ctx and returns
// its address and key.
func linkWallet(t *testing.T, svc *account.Service, ctx context.Context, sign func(*obsqra.WalletChallengePayload, obsqra.Felt) []string, addr obsqra.Felt) {
	t.Helper()
	ch, err := svc.RequestWalletChallenge(ctx, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ConnectWallet(ctx, addr.String(), sign(ch, addr)); err != nil {
		t.Fatal(err)
	}
}

// TestApproveConstraints: a constraint set is approved by a real
// Stark-curve signature of its SNIP-12 typed data, checked by the linked
// wallet's account contract on the (fake) node, recorded append-only with
// every felt of the signature, and listed newest first; every way of
// cheating is refused with its own message.
func TestApproveConstraints(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b, node := setupWallets(t, db)
		ada := as(t, svc, register(t, svc, "ada@example.com").AccessToken)
		bob := as(t, svc, register(t, svc, "bob@example.com").AccessToken)
		addr, key := node.NewAccount(t)
		other, otherKey := node.NewAccount(t)
		set := obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 1}

		_, err := svc.RequestConstraintApproval(context.Background(), set)
		wantCode(t, "RequestConstraintApproval(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.RequestConstraintApproval(ada, set)
		wantError(t, "RequestConstraintApproval(no wallet)", err, obsqra.EINVALID, "needs a linked wallet")
		_, err = svc.ApproveConstraints(ada, []string{"0x1", "0x2"})
		wantError(t, "ApproveConstraints(no wallet)", err, obsqra.EINVALID, "needs a linked wallet")

		linkWallet(t, svc, ada, func(ch *obsqra.WalletChallengePayload, a obsqra.Felt) []string { return sign(t, ch, a, key) }, addr)
		_, err = svc.ApproveConstraints(ada, []string{"0x1", "0x2"})
		wantError(t, "ApproveConstraints(no request)", err, obsqra.EINVALID, "no constraint request")
		for _, bad := range []struct {
			set     obsqra.ConstraintSet
			mention string
		}{
			{obsqra.ConstraintSet{MaxSingleBps: 999, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 1}, "input.maxSingleBps"},
			{obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 11, MaxVolatilityBps: 800, MaxLiquidityTier: 1}, "input.minDiversification"},
			{obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: -1, MaxLiquidityTier: 1}, "input.maxVolatilityBps"},
			{obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 4}, "input.maxLiquidityTier"},
		} {
			_, err := svc.RequestConstraintApproval(ada, bad.set)
			wantError(t, "RequestConstraintApproval("+bad.mention+")", err, obsqra.EINVALID, bad.mention)
		}

		req, err := svc.RequestConstraintApproval(ada, set)
		if err != nil {
			t.Fatal(err)
		}
		if len(req.Nonce) != 32 || !req.ExpiresAt.Equal(b.clock.Now().Add(account.ConstraintRequestTTL)) ||
			!strings.Contains(string(req.TypedData), `"primaryType":"ConstraintApproval"`) ||
			!strings.Contains(string(req.TypedData), `"maxVolatilityBps":"800"`) {
			t.Fatalf("request = nonce %q, expires %v, typed data %s", req.Nonce, req.ExpiresAt, req.TypedData)
		}
		// The node down: a coded error, and the request still open.
		node.FailNext(3, starknettest.HTTP500)
		_, err = svc.ApproveConstraints(ada, sign(t, req, addr, key))
		wantError(t, "ApproveConstraints(node down)", err, obsqra.EUNAVAILABLE, "did not answer")
		// Another key; a malformed signature; too many felts.
		_, err = svc.ApproveConstraints(ada, sign(t, req, addr, otherKey))
		wantError(t, "ApproveConstraints(another key)", err, obsqra.EFORBIDDEN, "rejected the signature")
		_, err = svc.ApproveConstraints(ada, []string{"0x1", "zz"})
		wantError(t, "ApproveConstraints(bad felt)", err, obsqra.EINVALID, "input.signature[1]")
		_, err = svc.ApproveConstraints(ada, make([]string, 33))
		wantError(t, "ApproveConstraints(33 felts)", err, obsqra.EINVALID, "1 to 32 felts")
		// 32 felts are taken: the account contract judges them (this one
		// wants two, and refuses).
		thirtyTwo := make([]string, 32)
		for i := range thirtyTwo {
			thirtyTwo[i] = "0x1"
		}
		_, err = svc.ApproveConstraints(ada, thirtyTwo)
		if err == nil || strings.Contains(obsqra.ErrorMessage(err), "1 to 32 felts") {
			t.Fatalf("ApproveConstraints(32 felts) = %v, want the account's refusal, not the length's", err)
		}
		// Bob has no request of his own, whoever's signature he sends.
		linkWallet(t, svc, bob, func(ch *obsqra.WalletChallengePayload, a obsqra.Felt) []string { return sign(t, ch, a, otherKey) }, other)
		_, err = svc.ApproveConstraints(bob, sign(t, req, addr, key))
		wantError(t, "ApproveConstraints(bob with ada's signature)", err, obsqra.EINVALID, "no constraint request")

		// A third felt the account does not take: refused by the node.
		_, err = svc.ApproveConstraints(ada, append(sign(t, req, addr, key), "0x7"))
		if err == nil {
			t.Fatal("ApproveConstraints(a felt too many) succeeded")
		}
		sig := sign(t, req, addr, key)
		got, err := svc.ApproveConstraints(ada, sig)
		if err != nil {
			t.Fatal(err)
		}
		if got.Set != set || got.Signer != addr || len(got.Signature) != 2 || got.ID == 0 {
			t.Fatalf("ApproveConstraints = %+v", got)
		}
		// Its message hash is the typed data's.
		if h, err := starknet.MessageHash(req.TypedData, addr); err != nil || h != got.MessageHash {
			t.Errorf("message hash %s, typed data's %s (%v)", got.MessageHash, h, err)
		}
		// Replayed: the request is spent.
		_, err = svc.ApproveConstraints(ada, sig)
		wantError(t, "ApproveConstraints(replayed)", err, obsqra.EINVALID, "used already")

		// Expired.
		b.clock.Advance(time.Second)
		stricter := obsqra.ConstraintSet{MaxSingleBps: 4000, MinDiversification: 3, MaxVolatilityBps: 500, MaxLiquidityTier: 0}
		req2, err := svc.RequestConstraintApproval(ada, stricter)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(account.ConstraintRequestTTL)
		_, err = svc.ApproveConstraints(ada, sign(t, req2, addr, key))
		wantError(t, "ApproveConstraints(expired)", err, obsqra.EINVALID, "expired")

		// A new request retires the previous one: only the newest is
		// signed.
		req3, err := svc.RequestConstraintApproval(ada, stricter)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Advance(time.Second)
		req4, err := svc.RequestConstraintApproval(ada, stricter)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ApproveConstraints(ada, sign(t, req3, addr, key))
		wantError(t, "ApproveConstraints(retired request)", err, obsqra.EFORBIDDEN, "rejected")

		// The wallet changed since the request: refused. The new one is
		// a two-owner account, whose signature is four felts: all kept.
		if _, err := svc.DisconnectWallet(ada); err != nil {
			t.Fatal(err)
		}
		k1, k2 := starknettest.NewKey(t), starknettest.NewKey(t)
		third := starknettest.NewKey(t).Public()
		node.AddMultisigAccount(third, k1.Public(), k2.Public())
		both := func(ch *obsqra.WalletChallengePayload, a obsqra.Felt) []string {
			return append(sign(t, ch, a, k1), sign(t, ch, a, k2)...)
		}
		linkWallet(t, svc, ada, both, third)
		_, err = svc.ApproveConstraints(ada, sign(t, req4, addr, key))
		wantError(t, "ApproveConstraints(another wallet)", err, obsqra.EINVALID, "your linked wallet is now")
		req5, err := svc.RequestConstraintApproval(ada, stricter)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ApproveConstraints(ada, append(sign(t, req5, third, k1), sign(t, req5, third, k1)...))
		wantError(t, "ApproveConstraints(one owner twice)", err, obsqra.EFORBIDDEN, "rejected")
		second, err := svc.ApproveConstraints(ada, both(req5, third))
		if err != nil {
			t.Fatal(err)
		}
		if len(second.Signature) != 4 || second.Signer != third {
			t.Fatalf("ApproveConstraints(multisig) = %+v", second)
		}

		// Listed newest first, a page at a time; Bob sees none of them.
		page, err := svc.SignedConstraints(ada, 1, nil)
		if err != nil || len(page) != 2 || page[0].ID != second.ID || page[1].ID != got.ID || page[0].Set != stricter {
			t.Fatalf("SignedConstraints(first 1) = %+v, %v", page, err)
		}
		rest, err := svc.SignedConstraints(ada, 1, &obsqra.HistoryKey{At: page[0].SignedAt, ID: page[0].ID})
		if err != nil || len(rest) != 1 || rest[0].ID != got.ID || len(rest[0].Signature) != 2 {
			t.Fatalf("SignedConstraints(after) = %+v, %v", rest, err)
		}
		if list, err := svc.SignedConstraints(bob, 10, nil); err != nil || len(list) != 0 {
			t.Fatalf("SignedConstraints(bob) = %+v, %v", list, err)
		}
		p, err := obsqra.RequireUser(ada)
		if err != nil {
			t.Fatal(err)
		}
		active, err := db.ActiveSignedConstraints(context.Background(), p.User.ID)
		if err != nil || active.ID != second.ID {
			t.Errorf("ActiveSignedConstraints = %+v, %v, want the newest", active, err)
		}
	})
}

// TestSignedConstraintsCalldata: the calldata is the RiskEngine
// contract's ConstraintSignature in its fields' order.
func TestSignedConstraintsCalldata(t *testing.T) {
	t.Parallel()
	signer, _ := obsqra.ParseAddress("0x49d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7")
	s := obsqra.SignedConstraints{
		Signer: signer, Set: obsqra.ConstraintSet{MaxSingleBps: 6000, MinDiversification: 3, MaxVolatilityBps: 1200, MaxLiquidityTier: 2},
		Signature: []obsqra.Felt{obsqra.FeltFromUint64(0xaa), obsqra.FeltFromUint64(0xbb), obsqra.FeltFromUint64(0xcc)},
		IssuedAt:  time.Unix(1_764_000_000, 0),
	}
	// struct ConstraintSignature { signer, max_single, min_diversification,
	// max_volatility, min_liquidity, signature_r, signature_s, timestamp }
	want := []obsqra.Felt{signer, obsqra.FeltFromUint64(6000), obsqra.FeltFromUint64(3), obsqra.FeltFromUint64(1200),
		obsqra.FeltFromUint64(2), obsqra.FeltFromUint64(0xaa), obsqra.FeltFromUint64(0xbb), obsqra.FeltFromUint64(1_764_000_000)}
	got := s.Calldata()
	if len(got) != len(want) {
		t.Fatalf("calldata has %d felts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("calldata[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	// A one-felt signature: signature_s is 0.
	s.Signature = s.Signature[:1]
	if c := s.Calldata(); c[6] != (obsqra.Felt{}) || c[5] != obsqra.FeltFromUint64(0xaa) {
		t.Errorf("one-felt signature: calldata %v", c)
	}
	if f := obsqra.FeltFromUint64(1_764_000_000); f.String() != "0x"+strings.Repeat("0", 56)+"69248100" {
		t.Errorf("FeltFromUint64 = %s", f)
	}
}

// TestConstraintsNeedANode: without a Starknet node, approval says so.
func TestConstraintsNeedANode(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t, storetest.SQLite(t))
	ada := as(t, svc, register(t, svc, "ada@example.com").AccessToken)
	_, err := svc.RequestConstraintApproval(ada, obsqra.ConstraintSet{MaxSingleBps: 5000, MinDiversification: 2, MaxVolatilityBps: 800, MaxLiquidityTier: 1})
	wantError(t, "RequestConstraintApproval(no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
	_, err = svc.ApproveConstraints(ada, []string{"0x1"})
	wantError(t, "ApproveConstraints(no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
}
