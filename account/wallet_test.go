package account_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// setupWallets returns an account service whose wallet links are checked
// on a fake node, and the node.
func setupWallets(t *testing.T, db *store.DB) (*account.Service, *testBundle, *starknettest.Node) {
	t.Helper()
	node := starknettest.NewNode(t)
	client, err := starknet.New(starknet.Config{URLs: []string{node.URL}, Network: starknet.NetworkSepolia})
	if err != nil {
		t.Fatal(err)
	}
	clk := obsqratest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	db.Now = clk.Now
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tokens.Now = clk.Now
	svc, err := account.New(db, account.Config{Tokens: tokens, RefreshTTL: 30 * 24 * time.Hour, BcryptCost: 4, Starknet: client})
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = clk.Now
	return svc, &testBundle{db: db, clock: clk}, node
}

// sign signs the typed data of ch for address with key, as a wallet's
// signTypedData would.
func sign(t *testing.T, ch *obsqra.WalletChallengePayload, address obsqra.Felt, key starknettest.Key) []string {
	t.Helper()
	return key.SignTypedData(ch.TypedData, address)
}

func wantError(t *testing.T, what string, err error, code, mention string) {
	t.Helper()
	if obsqra.ErrorCode(err) != code || !strings.Contains(obsqra.ErrorMessage(err), mention) {
		t.Fatalf("%s = %v, want %s mentioning %q", what, err, code, mention)
	}
}

// TestConnectWallet links a wallet by a real Stark-curve signature of the
// challenge, verified by the account contract on the (fake) node, and
// refuses every way of cheating with a distinct error.
func TestConnectWallet(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b, node := setupWallets(t, db)
		ada := as(t, svc, register(t, svc, "ada@example.com").AccessToken)
		bob := as(t, svc, register(t, svc, "bob@example.com").AccessToken)
		addr, key := node.NewAccount(t)
		other, otherKey := node.NewAccount(t)

		_, err := svc.RequestWalletChallenge(context.Background(), addr.String())
		wantCode(t, "RequestWalletChallenge(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.RequestWalletChallenge(ada, "0xnot-an-address")
		wantError(t, "RequestWalletChallenge(bad address)", err, obsqra.EINVALID, "address")

		ch, err := svc.RequestWalletChallenge(ada, "0x"+strings.ToUpper(strings.TrimLeft(addr.String()[2:], "0")))
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.Nonce) != 32 || !ch.ExpiresAt.Equal(b.clock.Now().Add(account.ChallengeTTL)) ||
			!strings.Contains(string(ch.TypedData), `"Obsqra"`) || !strings.Contains(string(ch.TypedData), `"SN_SEPOLIA"`) {
			t.Fatalf("challenge = nonce %q, expires %v, typed data %s", ch.Nonce, ch.ExpiresAt, ch.TypedData)
		}

		// Another address without a challenge of its own; the right
		// address with another key's signature; an undeployed account.
		_, err = svc.ConnectWallet(ada, other.String(), sign(t, ch, addr, key))
		wantError(t, "ConnectWallet(another address)", err, obsqra.EINVALID, "no challenge")
		_, err = svc.ConnectWallet(ada, addr.String(), sign(t, ch, addr, otherKey))
		wantError(t, "ConnectWallet(another key)", err, obsqra.EFORBIDDEN, "rejected the signature")
		_, err = svc.ConnectWallet(ada, addr.String(), []string{"0x1", "zz"})
		wantError(t, "ConnectWallet(bad signature)", err, obsqra.EINVALID, "input.signature[1]")

		u, err := svc.ConnectWallet(ada, addr.String(), sign(t, ch, addr, key))
		if err != nil || u.WalletAddress == nil || *u.WalletAddress != addr {
			t.Fatalf("ConnectWallet = %+v, %v, want wallet %s", u, err, addr)
		}
		// The same signature again: the challenge is spent.
		_, err = svc.ConnectWallet(ada, addr.String(), sign(t, ch, addr, key))
		wantError(t, "ConnectWallet(replayed)", err, obsqra.EINVALID, "used already")

		// A signature of other's challenge hash by other's key, sent for
		// addr: the account at addr rejects it.
		chOther, err := svc.RequestWalletChallenge(ada, other.String())
		if err != nil {
			t.Fatal(err)
		}
		chAddr, err := svc.RequestWalletChallenge(ada, addr.String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ConnectWallet(ada, addr.String(), sign(t, chOther, other, otherKey))
		wantError(t, "ConnectWallet(signature for another address)", err, obsqra.EFORBIDDEN, "rejected")

		// Expired.
		b.clock.Advance(account.ChallengeTTL + time.Second)
		_, err = svc.ConnectWallet(ada, addr.String(), sign(t, chAddr, addr, key))
		wantError(t, "ConnectWallet(expired)", err, obsqra.EINVALID, "expired")

		// Not deployed.
		ghost := starknettest.NewKey(t).Public()
		chGhost, err := svc.RequestWalletChallenge(ada, ghost.String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ConnectWallet(ada, ghost.String(), sign(t, chGhost, ghost, key))
		wantError(t, "ConnectWallet(undeployed)", err, obsqra.EINVALID, "no account contract is deployed")

		// Another user proving the same wallet: it is Ada's.
		chBob, err := svc.RequestWalletChallenge(bob, addr.String())
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.ConnectWallet(bob, addr.String(), sign(t, chBob, addr, key))
		wantError(t, "ConnectWallet(linked to another user)", err, obsqra.ECONFLICT, "another account")

		// Unlinked, it is free for Bob, with a fresh challenge.
		if u, err := svc.DisconnectWallet(ada); err != nil || u.WalletAddress != nil {
			t.Fatalf("DisconnectWallet = %+v, %v", u, err)
		}
		chBob, err = svc.RequestWalletChallenge(bob, addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if u, err := svc.ConnectWallet(bob, addr.String(), sign(t, chBob, addr, key)); err != nil || *u.WalletAddress != addr {
			t.Fatalf("ConnectWallet(bob after ada unlinked) = %+v, %v", u, err)
		}
	})
}

// TestWalletsNeedANode: without a Starknet node, linking says so.
func TestWalletsNeedANode(t *testing.T) {
	t.Parallel()
	svc, _ := setup(t, storetest.SQLite(t))
	ada := as(t, svc, register(t, svc, "ada@example.com").AccessToken)
	_, err := svc.RequestWalletChallenge(ada, "0xabc")
	wantError(t, "RequestWalletChallenge(no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
	_, err = svc.ConnectWallet(ada, "0xabc", []string{"0x1"})
	wantError(t, "ConnectWallet(no node)", err, obsqra.EINVALID, "STARKNET_RPC_URL")
}
