package account

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// ChallengeTTL is how long a wallet challenge may be signed and redeemed.
const ChallengeTTL = 5 * time.Minute

// maxSignatureFelts bounds a wallet signature (an account contract's
// signature is a few felts; multisig ones a few more).
const maxSignatureFelts = 32

// challengeOf returns the typed data of c and its message hash.
func challengeOf(c *obsqra.WalletChallenge) ([]byte, obsqra.Felt, error) {
	raw, err := hex.DecodeString(c.Nonce)
	if err != nil || len(raw) != 16 {
		return nil, obsqra.Felt{}, fmt.Errorf("wallet challenge nonce %q is not 128 bits of hex", c.Nonce)
	}
	var nonce [16]byte
	copy(nonce[:], raw)
	return starknet.WalletChallenge(c.ChainID, c.UserID, c.Address, nonce, c.IssuedAt, c.ExpiresAt)
}

// verifyOwnership asks the account contract at address whether signature
// signs hash, in the client's terms.
// Errors: EINVALID when no account is deployed there (or it is not an
// account); EFORBIDDEN when the account rejects the signature; internal
// ones when no node answers.
func (s *Service) verifyOwnership(ctx context.Context, address, hash obsqra.Felt, sig []obsqra.Felt) error {
	err := starknet.VerifyOwnership(ctx, s.cfg.Starknet, address, hash, sig)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, starknet.ErrAccountNotDeployed):
		return obsqra.Errorf(obsqra.EINVALID, "no account contract is deployed at %s on %s", address, s.cfg.Starknet.ExpectedChainID())
	case errors.Is(err, starknet.ErrNotAccount):
		return obsqra.Errorf(obsqra.EINVALID, "the contract at %s is not an account (it has no is_valid_signature)", address)
	case errors.Is(err, starknet.ErrSignatureRejected):
		return obsqra.Errorf(obsqra.EFORBIDDEN, "the account contract at %s rejected the signature: sign the challenge with that wallet", address)
	case errors.Is(err, starknet.ErrUnavailable):
		// The node's address and answers are logged with Err, not told.
		return &obsqra.Error{Code: obsqra.EUNAVAILABLE, Message: "the Starknet node did not answer: try again later", Err: err}
	}
	return fmt.Errorf("verify wallet signature: %w", err)
}

// RequestWalletChallenge returns a challenge for the signed-in user's
// wallet at address to sign: SNIP-12 revision 1 typed data with a fresh
// 128-bit nonce, valid for ChallengeTTL, stored so that connectWallet
// rebuilds it from the server's copy. It retires the user's earlier
// challenges for the address.
// Errors: EUNAUTHENTICATED; EINVALID for a bad address or when the server
// has no Starknet node.
func (s *Service) RequestWalletChallenge(ctx context.Context, address string) (*obsqra.WalletChallengePayload, error) {
	p, addr, err := s.walletRequest(ctx, address, "address")
	if err != nil {
		return nil, err
	}
	nonce, err := s.newNonce()
	if err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Second)
	c := &obsqra.WalletChallenge{
		Nonce: nonce, UserID: p.User.ID, Address: addr, ChainID: s.cfg.Starknet.ExpectedChainID(),
		IssuedAt: now, ExpiresAt: now.Add(ChallengeTTL),
	}
	typed, _, err := challengeOf(c)
	if err != nil {
		return nil, fmt.Errorf("make wallet challenge: %w", err)
	}
	// Only the newest challenge for an address can be redeemed: the
	// signature a wallet returns is for the typed data it was shown last.
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		if err := tx.RetireWalletChallenges(ctx, p.User.ID, addr, now); err != nil {
			return err
		}
		return tx.CreateWalletChallenge(ctx, c)
	})
	if err != nil {
		return nil, err
	}
	return &obsqra.WalletChallengePayload{TypedData: typed, Nonce: c.Nonce, ExpiresAt: c.ExpiresAt}, nil
}

// ConnectWallet links the wallet at address to the signed-in user when its
// account contract accepts signature for the user's latest challenge for
// that address. The typed data is rebuilt from the stored challenge, never
// from the client's copy, and the challenge is consumed atomically with the
// link: a signature links a wallet once.
// Errors: EUNAUTHENTICATED; EINVALID for a bad address or signature, no
// challenge for the address, an expired or used challenge, an account that
// is not deployed; EFORBIDDEN when the account contract rejects the
// signature; ECONFLICT when the wallet is linked to another user.
func (s *Service) ConnectWallet(ctx context.Context, address string, signature []string) (*obsqra.User, error) {
	p, addr, err := s.walletRequest(ctx, address, "input.address")
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(signature)
	if err != nil {
		return nil, err
	}
	c, err := s.db.LatestWalletChallenge(ctx, p.User.ID, addr)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, obsqra.Errorf(obsqra.EINVALID, "there is no challenge for %s: request one with requestWalletChallenge and sign it", addr)
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case c.UsedAt != nil:
		return nil, errChallengeUsed(addr)
	case !now.Before(c.ExpiresAt):
		return nil, errChallengeExpired(addr, c.ExpiresAt)
	case c.ChainID != s.cfg.Starknet.ExpectedChainID():
		return nil, obsqra.Errorf(obsqra.EINVALID, "the challenge for %s was made for %s, this server serves %s: request a new one", addr, c.ChainID, s.cfg.Starknet.ExpectedChainID())
	}
	_, hash, err := challengeOf(c)
	if err != nil {
		return nil, fmt.Errorf("rebuild wallet challenge: %w", err)
	}
	if err := s.verifyOwnership(ctx, addr, hash, sig); err != nil {
		return nil, err
	}
	// The node may have taken a while: the challenge must still be valid
	// when it is redeemed, not only when the request came.
	if now = s.now(); !now.Before(c.ExpiresAt) {
		return nil, errChallengeExpired(addr, c.ExpiresAt)
	}
	var u *obsqra.User
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ConsumeWalletChallenge(ctx, c.Nonce, p.User.ID, now); err != nil {
			if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
				return errChallengeUsed(addr)
			}
			return err
		}
		if u, err = tx.SetUserWallet(ctx, p.User.ID, &addr); err != nil {
			if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
				return obsqra.Errorf(obsqra.ECONFLICT, "the wallet %s is linked to another account", addr)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// walletRequest checks what both wallet operations need: a signed-in user,
// a Starknet node, and an address (field names it in the error).
// Errors: EUNAUTHENTICATED; EINVALID.
func (s *Service) walletRequest(ctx context.Context, address, field string) (*obsqra.Principal, obsqra.Felt, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, obsqra.Felt{}, err
	}
	if s.cfg.Starknet == nil {
		return nil, obsqra.Felt{}, obsqra.Errorf(obsqra.EINVALID, "wallet linking is not available: this server has no Starknet node (STARKNET_RPC_URL)")
	}
	addr, err := obsqra.ParseAddress(address)
	if err != nil {
		return nil, obsqra.Felt{}, obsqra.Errorf(obsqra.EINVALID, "%s: %s", field, obsqra.ErrorMessage(err))
	}
	return p, addr, nil
}

func errChallengeUsed(addr obsqra.Felt) error {
	return obsqra.Errorf(obsqra.EINVALID, "the challenge for %s was used already: a signature links a wallet once; request a new challenge", addr)
}

func errChallengeExpired(addr obsqra.Felt, at time.Time) error {
	return obsqra.Errorf(obsqra.EINVALID, "the challenge for %s expired at %s: request a new one", addr, at.Format(time.RFC3339))
}

// DisconnectWallet unlinks the signed-in user's wallet.
// Errors: EUNAUTHENTICATED.
func (s *Service) DisconnectWallet(ctx context.Context) (*obsqra.User, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	var u *obsqra.User
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		u, err = tx.SetUserWallet(ctx, p.User.ID, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// PruneWalletChallenges deletes the challenges, used or not, that expired
// before before, and returns how many it deleted. Errors: only internal
// ones.
func (s *Service) PruneWalletChallenges(ctx context.Context, before time.Time) (int64, error) {
	return s.db.PruneWalletChallenges(ctx, before)
}

// newNonce returns 128 random bits in hex: the nonce of a challenge or a
// constraint request, a u128 of the typed data the wallet signs.
func (s *Service) newNonce() (string, error) {
	var nonce [16]byte
	if _, err := io.ReadFull(s.Rand, nonce[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(nonce[:]), nil
}
