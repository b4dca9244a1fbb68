package account

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
	"github.com/obsqra/obsqra/store"
)

// ConstraintRequestTTL is how long a constraint approval request may be
// signed and redeemed.
const ConstraintRequestTTL = 10 * time.Minute

// constraintApprovalOf returns the typed data of r and its message hash.
func constraintApprovalOf(r *obsqra.ConstraintRequest) ([]byte, obsqra.Felt, error) {
	raw, err := hex.DecodeString(r.Nonce)
	if err != nil || len(raw) != 16 {
		return nil, obsqra.Felt{}, fmt.Errorf("constraint request nonce %q is not 128 bits of hex", r.Nonce)
	}
	var nonce [16]byte
	copy(nonce[:], raw)
	return starknet.ConstraintApproval(r.ChainID, r.UserID, r.Address, r.Set, nonce, r.IssuedAt, r.ExpiresAt)
}

// linkedWallet returns the signed-in user as stored now and their linked
// wallet, for an operation that needs the wallet to sign.
// Errors: EUNAUTHENTICATED; EINVALID when the server has no Starknet node
// or the user has no linked wallet.
func (s *Service) linkedWallet(ctx context.Context, what string) (*obsqra.User, obsqra.Felt, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, obsqra.Felt{}, err
	}
	if s.cfg.Starknet == nil {
		return nil, obsqra.Felt{}, obsqra.Errorf(obsqra.EINVALID, "%s is not available: this server has no Starknet node (STARKNET_RPC_URL)", what)
	}
	u, err := s.db.UserByID(ctx, p.User.ID)
	if err != nil {
		return nil, obsqra.Felt{}, err
	}
	if u.WalletAddress == nil {
		return nil, obsqra.Felt{}, obsqra.Errorf(obsqra.EINVALID, "%s needs a linked wallet: link one with requestWalletChallenge and connectWallet first", what)
	}
	return u, *u.WalletAddress, nil
}

// RequestConstraintApproval returns the SNIP-12 revision 1 typed data by
// which the signed-in user's linked wallet approves set as the limits of
// every allocation planned for them, with a fresh 128-bit nonce, valid
// for ConstraintRequestTTL, stored so that ApproveConstraints rebuilds it
// from the server's copy. It retires the user's earlier requests.
// Errors: EUNAUTHENTICATED; EINVALID for a limit out of range (naming
// input.<field>), no Starknet node, or no linked wallet.
func (s *Service) RequestConstraintApproval(ctx context.Context, set obsqra.ConstraintSet) (*obsqra.WalletChallengePayload, error) {
	u, wallet, err := s.linkedWallet(ctx, "constraint approval")
	if err != nil {
		return nil, err
	}
	if err := set.Validate("input."); err != nil {
		return nil, err
	}
	nonce, err := s.newNonce()
	if err != nil {
		return nil, err
	}
	now := s.now().Truncate(time.Second)
	r := &obsqra.ConstraintRequest{
		Nonce: nonce, UserID: u.ID, Address: wallet, ChainID: s.cfg.Starknet.ExpectedChainID(),
		Set: set, IssuedAt: now, ExpiresAt: now.Add(ConstraintRequestTTL),
	}
	typed, _, err := constraintApprovalOf(r)
	if err != nil {
		return nil, fmt.Errorf("make constraint approval: %w", err)
	}
	if err := s.db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateConstraintRequest(ctx, r) }); err != nil {
		return nil, err
	}
	return &obsqra.WalletChallengePayload{TypedData: typed, Nonce: r.Nonce, ExpiresAt: r.ExpiresAt}, nil
}

// ApproveConstraints records the set of the signed-in user's latest
// constraint request as their active constraints when their linked
// wallet's account contract accepts signature for it (is_valid_signature
// through the node; every felt of the signature is kept). The typed data
// is rebuilt from the stored request, and the request is consumed in the
// same unit of work as the set is recorded: a signature approves once.
// Errors: EUNAUTHENTICATED; EINVALID for a malformed signature, no
// Starknet node, no linked wallet, no request, a used or expired request,
// a request made for another wallet or chain, an account that is not
// deployed; EFORBIDDEN when the account contract rejects the signature.
func (s *Service) ApproveConstraints(ctx context.Context, signature []string) (*obsqra.SignedConstraints, error) {
	u, wallet, err := s.linkedWallet(ctx, "constraint approval")
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(signature)
	if err != nil {
		return nil, err
	}
	r, err := s.db.LatestConstraintRequest(ctx, u.ID)
	if obsqra.ErrorCode(err) == obsqra.ENOTFOUND {
		return nil, obsqra.Errorf(obsqra.EINVALID, "there is no constraint request to approve: request one with requestConstraintApproval and sign it")
	} else if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case r.UsedAt != nil:
		return nil, errRequestUsed()
	case !now.Before(r.ExpiresAt):
		return nil, errRequestExpired(r.ExpiresAt)
	case r.Address != wallet:
		return nil, obsqra.Errorf(obsqra.EINVALID, "the constraint request was made for the wallet %s, and your linked wallet is now %s: request a new one", r.Address, wallet)
	case r.ChainID != s.cfg.Starknet.ExpectedChainID():
		return nil, obsqra.Errorf(obsqra.EINVALID, "the constraint request was made for %s, this server serves %s: request a new one", r.ChainID, s.cfg.Starknet.ExpectedChainID())
	}
	_, hash, err := constraintApprovalOf(r)
	if err != nil {
		return nil, fmt.Errorf("rebuild constraint approval: %w", err)
	}
	if err := s.verifyOwnership(ctx, wallet, hash, sig); err != nil {
		if obsqra.ErrorCode(err) == obsqra.EFORBIDDEN {
			return nil, obsqra.Errorf(obsqra.EFORBIDDEN, "the account contract at %s rejected the signature: sign the constraint request's typed data with that wallet", wallet)
		}
		return nil, err
	}
	// The node may have taken a while: the request must still be valid
	// when it is redeemed, not only when the signature came.
	if now = s.now(); !now.Before(r.ExpiresAt) {
		return nil, errRequestExpired(r.ExpiresAt)
	}
	signed := &obsqra.SignedConstraints{
		UserID: u.ID, Signer: wallet, ChainID: r.ChainID, Nonce: r.Nonce, Set: r.Set,
		Signature: sig, MessageHash: hash, IssuedAt: r.IssuedAt, ExpiresAt: r.ExpiresAt, SignedAt: now,
	}
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		if err := tx.ConsumeConstraintRequest(ctx, r.Nonce, u.ID, now); err != nil {
			if obsqra.ErrorCode(err) == obsqra.ECONFLICT {
				return errRequestUsed()
			}
			return err
		}
		return tx.AppendSignedConstraints(ctx, signed)
	})
	if err != nil {
		return nil, err
	}
	return signed, nil
}

// SignedConstraints returns a page of the signed-in user's signed
// constraint sets, newest (the active one) first: first+1 rows, so the
// caller can tell whether there are more.
// Errors: EUNAUTHENTICATED; internal ones.
func (s *Service) SignedConstraints(ctx context.Context, first int, after *obsqra.HistoryKey) ([]obsqra.SignedConstraints, error) {
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	return s.db.SignedConstraintsPage(ctx, p.User.ID, after, first+1)
}

// parseSignature parses a wallet's signature: 1 to maxSignatureFelts
// felts. Errors: EINVALID naming input.signature.
func parseSignature(signature []string) ([]obsqra.Felt, error) {
	if len(signature) == 0 || len(signature) > maxSignatureFelts {
		return nil, obsqra.Errorf(obsqra.EINVALID, "input.signature must hold 1 to %d felts, got %d", maxSignatureFelts, len(signature))
	}
	sig := make([]obsqra.Felt, len(signature))
	for i, v := range signature {
		var err error
		if sig[i], err = obsqra.ParseFelt(v); err != nil {
			return nil, obsqra.Errorf(obsqra.EINVALID, "input.signature[%d]: %s", i, obsqra.ErrorMessage(err))
		}
	}
	return sig, nil
}

func errRequestUsed() error {
	return obsqra.Errorf(obsqra.EINVALID, "the constraint request was used already: a signature approves a set once; request a new one")
}

func errRequestExpired(at time.Time) error {
	return obsqra.Errorf(obsqra.EINVALID, "the constraint request expired at %s: request a new one", at.Format(time.RFC3339))
}

// SignedConstraintsByID returns the signed set id, whoever's it is: for the
// verification of a decision that obeyed it, which checks the owner.
// Errors: ENOTFOUND; internal ones.
func (s *Service) SignedConstraintsByID(ctx context.Context, id int64) (*obsqra.SignedConstraints, error) {
	return s.db.SignedConstraintsByID(ctx, id)
}

// VerifySignedConstraints checks a recorded set again: its message hash
// must be the one its recorded fields give, and its signer's account
// contract must still accept its signature (is_valid_signature through the
// node). It returns nil when no node is configured (nothing to ask), else
// the verdict. Errors: internal ones (the node did not answer).
func (s *Service) VerifySignedConstraints(ctx context.Context, sc *obsqra.SignedConstraints) (*bool, error) {
	if s.cfg.Starknet == nil {
		return nil, nil
	}
	valid := false
	_, hash, err := constraintApprovalOf(&obsqra.ConstraintRequest{Nonce: sc.Nonce, UserID: sc.UserID, Address: sc.Signer,
		ChainID: sc.ChainID, Set: sc.Set, IssuedAt: sc.IssuedAt, ExpiresAt: sc.ExpiresAt})
	if err != nil || hash != sc.MessageHash {
		return &valid, nil
	}
	switch err := s.verifyOwnership(ctx, sc.Signer, hash, sc.Signature); {
	case err == nil:
		valid = true
	case obsqra.ErrorCode(err) == obsqra.EFORBIDDEN || obsqra.ErrorCode(err) == obsqra.EINVALID:
		// Rejected, or the account is gone: not valid now.
	default:
		return nil, err // EUNAVAILABLE when the node did not answer
	}
	return &valid, nil
}
