package obsqra

import (
	"fmt"
	"time"
)

// ConstraintSet is what a user's wallet signs to bind their plans: the
// limits of the RiskEngine contract's ConstraintSignature (max_single,
// min_diversification, max_volatility, min_liquidity) in our units.
type ConstraintSet struct {
	MaxSingleBps       int
	MinDiversification int
	MaxVolatilityBps   int
	// MaxLiquidityTier is the contract's min_liquidity: the shallowest
	// tier (0, deepest, to 3) a protocol may be in to get weight.
	MaxLiquidityTier int
}

// Validate checks the set's ranges, as Preferences does, naming the field
// under prefix ("input." for an operation's input). Errors: EINVALID.
func (c ConstraintSet) Validate(prefix string) error {
	switch {
	case c.MaxSingleBps < 1000 || c.MaxSingleBps > 10000:
		return Errorf(EINVALID, "%smaxSingleBps must be between 1000 and 10000 basis points, got %d", prefix, c.MaxSingleBps)
	case c.MinDiversification < 1 || c.MinDiversification > MaxDiversification:
		return Errorf(EINVALID, "%sminDiversification must be between 1 and %d, got %d", prefix, MaxDiversification, c.MinDiversification)
	case c.MaxVolatilityBps < 0 || c.MaxVolatilityBps > MaxVolatility:
		return Errorf(EINVALID, "%smaxVolatilityBps must be between 0 and %d basis points, got %d", prefix, MaxVolatility, c.MaxVolatilityBps)
	case c.MaxLiquidityTier < 0 || c.MaxLiquidityTier > MaxLiquidityTier:
		return Errorf(EINVALID, "%smaxLiquidityTier must be between 0 (deepest) and %d, got %d", prefix, MaxLiquidityTier, c.MaxLiquidityTier)
	}
	return nil
}

// String is the set as its fields read, for messages.
func (c ConstraintSet) String() string {
	return fmt.Sprintf("maxSingleBps %d, minDiversification %d, maxVolatilityBps %d, maxLiquidityTier %d",
		c.MaxSingleBps, c.MinDiversification, c.MaxVolatilityBps, c.MaxLiquidityTier)
}

// ConstraintRequest is a constraint set waiting for the user's wallet to
// sign it: like a WalletChallenge, the server rebuilds the SNIP-12 typed
// data from it (never from the client's copy) when the signature comes
// back, and consumes it once.
type ConstraintRequest struct {
	// Nonce is 128 random bits as 32 lowercase hexadecimal digits.
	Nonce  string
	UserID int64
	// Address is the wallet that must sign: the user's linked wallet when
	// the request was made.
	Address   Felt
	ChainID   string
	Set       ConstraintSet
	IssuedAt  time.Time
	ExpiresAt time.Time
	// UsedAt is when the request was consumed or retired; nil while open.
	UsedAt *time.Time
}

// SignedConstraints is a constraint set a user's wallet signed, recorded
// append-only: the user's newest is their active set.
type SignedConstraints struct {
	ID     int64
	UserID int64
	// Signer is the wallet (account contract) that signed.
	Signer  Felt
	ChainID string
	Nonce   string
	Set     ConstraintSet
	// Signature is every felt the wallet returned (an account contract's
	// signature may hold more than r and s).
	Signature []Felt
	// MessageHash is the SNIP-12 hash the signature signs.
	MessageHash Felt
	// IssuedAt and ExpiresAt are the times in the signed message (with the
	// rest they rebuild its hash); SignedAt is when the server verified
	// the signature and recorded the set.
	IssuedAt  time.Time
	ExpiresAt time.Time
	SignedAt  time.Time
}

// NodeID returns the set's global id.
func (s *SignedConstraints) NodeID() string { return NodeID(NodeSignedConstraints, s.ID) }

// Calldata is the set in the layout of the RiskEngine contract's
// ConstraintSignature, in its fields' order, as felts a frontend passes to
// propose_and_execute_allocation unchanged: signer, max_single (bps),
// min_diversification, max_volatility (bps), min_liquidity (the liquidity
// tier), signature_r and signature_s (the signature's first two felts; 0
// for a missing one) and timestamp (IssuedAt, Unix seconds: the time the
// wallet signed into the message). A signature of more than two felts (a
// multisig or guardian account) does not fit the struct: the contract
// receives its first two only, and the whole signature stays here, where
// is_valid_signature checks it.
func (s *SignedConstraints) Calldata() []Felt {
	sig := func(i int) Felt {
		if i < len(s.Signature) {
			return s.Signature[i]
		}
		return Felt{}
	}
	return []Felt{
		s.Signer,
		FeltFromUint64(uint64(s.Set.MaxSingleBps)),
		FeltFromUint64(uint64(s.Set.MinDiversification)),
		FeltFromUint64(uint64(s.Set.MaxVolatilityBps)),
		FeltFromUint64(uint64(s.Set.MaxLiquidityTier)),
		sig(0), sig(1),
		FeltFromUint64(uint64(s.IssuedAt.Unix())),
	}
}
