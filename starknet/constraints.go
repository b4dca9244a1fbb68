package starknet

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/obsqra/obsqra"
)

// What a constraint approval says. Changing any of these changes every
// approval's hash: a request issued before the change no longer verifies
// after it.
const (
	// ConstraintApprovalType is the primary type of the approval's typed
	// data.
	ConstraintApprovalType = "ConstraintApproval"
	// ConstraintApprovalStatement is the sentence the wallet shows the
	// user (a SNIP-12 revision 1 "string").
	ConstraintApprovalStatement = "Every allocation Obsqra plans for your account must obey these limits"
)

// constraintMessageJSON is the message, with its members in the order
// wallets show them. The limits are u128 as decimal strings, as wallets
// accept them.
type constraintMessageJSON struct {
	Statement          string `json:"statement"`
	User               string `json:"user"`
	MaxSingleBps       string `json:"maxSingleBps"`
	MinDiversification string `json:"minDiversification"`
	MaxVolatilityBps   string `json:"maxVolatilityBps"`
	MaxLiquidityTier   string `json:"maxLiquidityTier"`
	Nonce              string `json:"nonce"`
	IssuedAt           int64  `json:"issuedAt"`
	ExpiresAt          int64  `json:"expiresAt"`
}

var constraintApprovalTypes = map[string][]typeMemberJSON{
	"StarknetDomain": walletLinkTypes["StarknetDomain"],
	ConstraintApprovalType: {
		{Name: "statement", Type: "string"},
		{Name: "user", Type: "felt"},
		{Name: "maxSingleBps", Type: "u128"},
		{Name: "minDiversification", Type: "u128"},
		{Name: "maxVolatilityBps", Type: "u128"},
		{Name: "maxLiquidityTier", Type: "u128"},
		{Name: "nonce", Type: "u128"},
		{Name: "issuedAt", Type: "timestamp"},
		{Name: "expiresAt", Type: "timestamp"},
	},
}

// ConstraintApproval returns the SNIP-12 revision 1 typed data by which
// the wallet at address approves set as the limits of every allocation
// planned for user, and the message hash its account contract's
// is_valid_signature checks the signature against. The domain is the
// wallet challenge's (see WalletChallenge); the message, ConstraintApproval,
// is {statement, user (felt, decimal), maxSingleBps, minDiversification,
// maxVolatilityBps, maxLiquidityTier (u128, decimal), nonce (u128, 0x and
// 32 hex digits), issuedAt and expiresAt (timestamps, Unix seconds)}. The
// same arguments always give the same bytes and hash.
//
// Errors are EINVALID: a chain id that is not a short string, a user id
// below 1, a negative limit, times before 1970 or an expiry not after the
// issue.
func ConstraintApproval(chainID string, user int64, address obsqra.Felt, set obsqra.ConstraintSet, nonce [16]byte, issuedAt, expiresAt time.Time) (typedDataJSON []byte, messageHash obsqra.Felt, err error) {
	if err := checkSigned("constraint approval", chainID, user, issuedAt, expiresAt); err != nil {
		return nil, obsqra.Felt{}, err
	}
	for _, v := range []int{set.MaxSingleBps, set.MinDiversification, set.MaxVolatilityBps, set.MaxLiquidityTier} {
		if v < 0 {
			return nil, obsqra.Felt{}, obsqra.Errorf(obsqra.EINVALID, "constraint approval: a limit is negative: %s", set)
		}
	}
	td := typedData[constraintMessageJSON]{
		Types:       constraintApprovalTypes,
		PrimaryType: ConstraintApprovalType,
		Domain:      domainJSON{Name: DomainName, Version: DomainVersion, ChainID: chainID, Revision: "1"},
		Message: constraintMessageJSON{
			Statement:          ConstraintApprovalStatement,
			User:               strconv.FormatInt(user, 10),
			MaxSingleBps:       strconv.Itoa(set.MaxSingleBps),
			MinDiversification: strconv.Itoa(set.MinDiversification),
			MaxVolatilityBps:   strconv.Itoa(set.MaxVolatilityBps),
			MaxLiquidityTier:   strconv.Itoa(set.MaxLiquidityTier),
			Nonce:              "0x" + hex.EncodeToString(nonce[:]),
			IssuedAt:           issuedAt.Unix(),
			ExpiresAt:          expiresAt.Unix(),
		},
	}
	typedDataJSON, err = json.Marshal(td)
	if err != nil {
		return nil, obsqra.Felt{}, fmt.Errorf("constraint approval: encode typed data: %w", err)
	}
	messageHash, err = MessageHash(typedDataJSON, address)
	if err != nil {
		return nil, obsqra.Felt{}, fmt.Errorf("constraint approval: %w", err)
	}
	return typedDataJSON, messageHash, nil
}

// checkSigned checks what every message the server has a wallet sign
// needs: a short-string chain id, a user, and an expiry after the issue.
// Errors: EINVALID, prefixed with what.
func checkSigned(what, chainID string, user int64, issuedAt, expiresAt time.Time) error {
	if chainID == "" {
		return obsqra.Errorf(obsqra.EINVALID, "%s: no chain id", what)
	}
	if _, err := ShortString(chainID); err != nil {
		return obsqra.Errorf(obsqra.EINVALID, "%s: chain id: %s", what, err)
	}
	if user < 1 {
		return obsqra.Errorf(obsqra.EINVALID, "%s: user id %d is not positive", what, user)
	}
	if issuedAt.Unix() < 0 || !expiresAt.After(issuedAt) {
		return obsqra.Errorf(obsqra.EINVALID, "%s: want 1970 ≤ issuedAt < expiresAt, have %s and %s", what,
			issuedAt.UTC().Format(time.RFC3339), expiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
