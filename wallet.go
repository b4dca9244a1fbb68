package obsqra

import "time"

// WalletChallenge is what a user signs to prove that a Starknet wallet is
// theirs: the server issues it for one address, rebuilds the SNIP-12
// typed data from it (never from the client's copy) when the signature
// comes back, and consumes it once.
type WalletChallenge struct {
	// Nonce is 128 random bits as 32 lowercase hexadecimal digits.
	Nonce  string
	UserID int64
	// Address is the account contract that must sign.
	Address Felt
	// ChainID is the chain id of the typed data's domain, as the server
	// wrote it (e.g. "SN_SEPOLIA" or its felt), at most 66 characters.
	ChainID   string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// UsedAt is when the challenge was consumed; nil while it is unused.
	UsedAt *time.Time
}

// WalletChallengePayload is what requestWalletChallenge returns: the
// challenge's SNIP-12 revision 1 typed data, ready for a wallet's
// signTypedData, with its nonce and expiry.
type WalletChallengePayload struct {
	TypedData JSONObject
	// Nonce is the challenge's nonce, as in WalletChallenge.
	Nonce     string
	ExpiresAt time.Time
}
