package starknet_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/starknet/starknettest"
)

// challengeFor returns the hash of a fixed challenge of user 42 for
// address.
func challengeFor(t *testing.T, address obsqra.Felt) obsqra.Felt {
	t.Helper()
	_, hash, err := starknet.WalletChallenge("SN_SEPOLIA", 42, address, challengeNonce, challengeIssued, challengeExpires)
	if err != nil {
		t.Fatalf("WalletChallenge: %v", err)
	}
	return hash
}

func TestVerifyOwnership(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()
	address, key := node.NewAccount(t)
	other, otherKey := node.NewAccount(t)
	hash := challengeFor(t, address)

	if err := starknet.VerifyOwnership(ctx, c, address, hash, key.Sign(hash)); err != nil {
		t.Errorf("VerifyOwnership(owner's signature) = %v, want nil", err)
	}

	t.Run("another key", func(t *testing.T) {
		err := starknet.VerifyOwnership(ctx, c, address, hash, starknettest.NewKey(t).Sign(hash))
		if !errors.Is(err, starknet.ErrSignatureRejected) {
			t.Errorf("VerifyOwnership = %v, want ErrSignatureRejected", err)
		}
		if errors.Is(err, starknet.ErrContractError) {
			t.Errorf("VerifyOwnership = %v: a wrong signature answers 0, it does not revert", err)
		}
	})

	t.Run("another account's key", func(t *testing.T) {
		err := starknet.VerifyOwnership(ctx, c, address, hash, otherKey.Sign(hash))
		if !errors.Is(err, starknet.ErrSignatureRejected) {
			t.Errorf("VerifyOwnership = %v, want ErrSignatureRejected", err)
		}
	})

	// The owner signed the challenge of another address: the server checks
	// the hash of the address claimed, which that signature is not for.
	t.Run("signature for another address", func(t *testing.T) {
		otherHash := challengeFor(t, other)
		if otherHash == hash {
			t.Fatal("two addresses share a challenge hash")
		}
		err := starknet.VerifyOwnership(ctx, c, address, hash, key.Sign(otherHash))
		if !errors.Is(err, starknet.ErrSignatureRejected) {
			t.Errorf("VerifyOwnership = %v, want ErrSignatureRejected", err)
		}
	})

	t.Run("undeployed account", func(t *testing.T) {
		nobody := mustFelt(t, "0x0badc0ffee")
		err := starknet.VerifyOwnership(ctx, c, nobody, challengeFor(t, nobody), key.Sign(challengeFor(t, nobody)))
		if !errors.Is(err, starknet.ErrAccountNotDeployed) || errors.Is(err, starknet.ErrSignatureRejected) {
			t.Errorf("VerifyOwnership = %v, want ErrAccountNotDeployed only", err)
		}
	})

	// The fake account reverts, as Argent's does, on a signature that is
	// not [r, s]; the revert data stays reachable.
	t.Run("reverted", func(t *testing.T) {
		sig := append(key.Sign(hash), obsqra.Felt{})
		err := starknet.VerifyOwnership(ctx, c, address, hash, sig)
		var rpcErr *starknet.RPCError
		if !errors.Is(err, starknet.ErrSignatureRejected) || !errors.Is(err, starknet.ErrContractError) || !errors.As(err, &rpcErr) {
			t.Fatalf("VerifyOwnership = %v, want ErrSignatureRejected from a contract error", err)
		}
		if reason := rpcErr.RevertReason(); reason == "" {
			t.Errorf("RevertReason is empty; Data %s", rpcErr.Data)
		}
	})

	t.Run("empty signature", func(t *testing.T) {
		before := node.Calls("starknet_call")
		if err := starknet.VerifyOwnership(ctx, c, address, hash, nil); !errors.Is(err, starknet.ErrSignatureRejected) {
			t.Errorf("VerifyOwnership(no signature) = %v, want ErrSignatureRejected", err)
		}
		if node.Calls("starknet_call") != before {
			t.Errorf("an empty signature was sent to the node")
		}
	})
}

// Cairo 0 accounts answer 1 for a valid signature; anything but 'VALID'
// and 1 is a rejection; a contract without is_valid_signature is not an
// account.
func TestVerifyOwnershipAnswers(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{}, node.URL)
	ctx := context.Background()
	sig := []obsqra.Felt{mustFelt(t, "0x1"), mustFelt(t, "0x2")}
	for _, tc := range []struct {
		name   string
		answer []obsqra.Felt
		want   error
	}{
		{"VALID", []obsqra.Felt{mustFelt(t, "0x56414c4944")}, nil},
		{"1", []obsqra.Felt{mustFelt(t, "0x1")}, nil},
		{"0", []obsqra.Felt{{}}, starknet.ErrSignatureRejected},
		{"other", []obsqra.Felt{mustFelt(t, "0x2")}, starknet.ErrSignatureRejected},
		{"nothing", []obsqra.Felt{}, starknet.ErrSignatureRejected},
		{"two values", []obsqra.Felt{mustFelt(t, "0x1"), mustFelt(t, "0x1")}, starknet.ErrSignatureRejected},
	} {
		address := starknet.Selector("account " + tc.name) // any distinct felt
		var got []obsqra.Felt
		node.SetFunction(address, "is_valid_signature", func(calldata []obsqra.Felt) ([]obsqra.Felt, error) {
			got = calldata
			return tc.answer, nil
		})
		err := starknet.VerifyOwnership(ctx, c, address, mustFelt(t, "0xabc"), sig)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: VerifyOwnership = %v, want %v", tc.name, err, tc.want)
		}
		// is_valid_signature(hash, signature: Span<felt252>)
		if want := []obsqra.Felt{mustFelt(t, "0xabc"), mustFelt(t, "0x2"), sig[0], sig[1]}; !equalFelts(got, want) {
			t.Errorf("%s: calldata %v, want %v", tc.name, got, want)
		}
	}

	engine := mustFelt(t, "0x7777")
	node.SetRiskEngine(engine, func([]obsqra.Felt) []obsqra.Felt { return nil })
	if err := starknet.VerifyOwnership(ctx, c, engine, mustFelt(t, "0xabc"), sig); !errors.Is(err, starknet.ErrNotAccount) {
		t.Errorf("VerifyOwnership(a RiskEngine) = %v, want ErrNotAccount", err)
	}
}

// A node outage is neither a rejection nor a missing account: the caller
// may try again.
func TestVerifyOwnershipUnavailable(t *testing.T) {
	t.Parallel()
	node := starknettest.NewNode(t)
	c, _ := setup(t, starknet.Config{Rounds: 1, Timeout: 50 * time.Millisecond}, node.URL)
	address, key := node.NewAccount(t)
	hash := challengeFor(t, address)
	node.FailNext(1, starknettest.Slow)
	err := starknet.VerifyOwnership(context.Background(), c, address, hash, key.Sign(hash))
	if !errors.Is(err, starknet.ErrUnavailable) || errors.Is(err, starknet.ErrSignatureRejected) || errors.Is(err, starknet.ErrAccountNotDeployed) {
		t.Errorf("VerifyOwnership = %v, want ErrUnavailable only", err)
	}
	if err := starknet.VerifyOwnership(context.Background(), nil, address, hash, key.Sign(hash)); err == nil {
		t.Errorf("VerifyOwnership(nil client) = nil")
	}
}

func equalFelts(a, b []obsqra.Felt) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
