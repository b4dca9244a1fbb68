package starknet

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/NethermindEth/starknet.go/typeddata"

	"github.com/obsqra/obsqra"
)

// What a wallet link challenge says. Changing any of these changes every
// challenge's hash: a challenge issued before the change no longer
// verifies after it.
const (
	// WalletLinkType is the primary type of the challenge's typed data.
	WalletLinkType = "WalletLink"
	// WalletLinkStatement is the sentence the wallet shows the user. It is
	// longer than 31 characters, so it is a SNIP-12 revision 1 "string"
	// (a ByteArray), not a "shortstring".
	WalletLinkStatement = "Link this wallet to your Obsqra account"
	// DomainName and DomainVersion are the challenge's SNIP-12 domain.
	DomainName    = "Obsqra"
	DomainVersion = "1"
)

// The typed data JSON, with its members in the order wallets show them.
// Numbers that may exceed 2^53 (the user id, the nonce) are strings, as
// JavaScript wallets would lose their low digits; the timestamps (Unix
// seconds) are JSON numbers.
type (
	// typedData is the typed data of a message M: a wallet link's, a
	// constraint approval's.
	typedData[M any] struct {
		Types       map[string][]typeMemberJSON `json:"types"`
		PrimaryType string                      `json:"primaryType"`
		Domain      domainJSON                  `json:"domain"`
		Message     M                           `json:"message"`
	}
	typeMemberJSON struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	domainJSON struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		ChainID  string `json:"chainId"`
		Revision string `json:"revision"`
	}
	walletLinkJSON struct {
		Statement string `json:"statement"`
		User      string `json:"user"`
		Nonce     string `json:"nonce"`
		IssuedAt  int64  `json:"issuedAt"`
		ExpiresAt int64  `json:"expiresAt"`
	}
)

var walletLinkTypes = map[string][]typeMemberJSON{
	// The revision 1 domain: every member a shortstring.
	"StarknetDomain": {
		{Name: "name", Type: "shortstring"},
		{Name: "version", Type: "shortstring"},
		{Name: "chainId", Type: "shortstring"},
		{Name: "revision", Type: "shortstring"},
	},
	WalletLinkType: {
		{Name: "statement", Type: "string"},
		{Name: "user", Type: "felt"},
		{Name: "nonce", Type: "u128"},
		{Name: "issuedAt", Type: "timestamp"},
		{Name: "expiresAt", Type: "timestamp"},
	},
}

// WalletChallenge returns the SNIP-12 revision 1 typed data that proves,
// once signed by the wallet at address, that its owner links it to the
// account user, and the message hash that the account contract's
// is_valid_signature checks the signature against.
//
// The typed data is {types, primaryType, domain, message}, as a wallet's
// signTypedData takes it: domain {name "Obsqra", version "1", chainId
// (e.g. "SN_SEPOLIA"), revision "1"}; message WalletLink {statement, user
// (felt, decimal), nonce (u128, 0x and 32 hex digits), issuedAt and
// expiresAt (timestamps, Unix seconds)}. The same arguments always give
// the same bytes and hash, so a challenge is verified by rebuilding it
// from what the server stored, never from the client's copy. The hash is
// starknet.go's TypedData.GetMessageHash of exactly these bytes: Poseidon
// over "StarkNet Message", the domain's hash, the address and the
// message's hash.
//
// Errors are EINVALID: a chain id that is not a short string, a user id
// below 1, times before 1970 or an expiry not after the issue.
func WalletChallenge(chainID string, user int64, address obsqra.Felt, nonce [16]byte, issuedAt, expiresAt time.Time) (typedDataJSON []byte, messageHash obsqra.Felt, err error) {
	if err := checkSigned("wallet challenge", chainID, user, issuedAt, expiresAt); err != nil {
		return nil, obsqra.Felt{}, err
	}
	td := typedData[walletLinkJSON]{
		Types:       walletLinkTypes,
		PrimaryType: WalletLinkType,
		Domain:      domainJSON{Name: DomainName, Version: DomainVersion, ChainID: chainID, Revision: "1"},
		Message: walletLinkJSON{
			Statement: WalletLinkStatement,
			User:      strconv.FormatInt(user, 10),
			Nonce:     "0x" + hex.EncodeToString(nonce[:]),
			IssuedAt:  issuedAt.Unix(),
			ExpiresAt: expiresAt.Unix(),
		},
	}
	typedDataJSON, err = json.Marshal(td)
	if err != nil {
		return nil, obsqra.Felt{}, fmt.Errorf("wallet challenge: encode typed data: %w", err)
	}
	messageHash, err = MessageHash(typedDataJSON, address)
	if err != nil {
		return nil, obsqra.Felt{}, fmt.Errorf("wallet challenge: %w", err)
	}
	return typedDataJSON, messageHash, nil
}

// MessageHash returns the SNIP-12 message hash of any typed data JSON for
// the account address, as starknet.go computes it (revision 0 or 1, from
// the domain's revision).
func MessageHash(typedData []byte, address obsqra.Felt) (obsqra.Felt, error) {
	var td typeddata.TypedData
	if err := json.Unmarshal(typedData, &td); err != nil {
		return obsqra.Felt{}, fmt.Errorf("parse typed data: %w", err)
	}
	h, err := td.GetMessageHash(address.String())
	if err != nil {
		return obsqra.Felt{}, fmt.Errorf("hash typed data: %w", err)
	}
	return fromJuno(h), nil
}
