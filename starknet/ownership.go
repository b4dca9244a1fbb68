package starknet

import (
	"context"
	"errors"
	"fmt"

	"github.com/obsqra/obsqra"
)

// Why a wallet's ownership was not proven. The account package turns them
// into client errors; the errors VerifyOwnership returns wrap them.
var (
	// ErrSignatureRejected is a signature the account contract does not
	// accept: is_valid_signature answered something else than 'VALID' or
	// 1, or reverted (JSON-RPC error 40; the *RPCError is wrapped too).
	ErrSignatureRejected = errors.New("starknet: the account rejected the signature")
	// ErrAccountNotDeployed is an address with no contract (JSON-RPC error
	// 20): a wallet whose account was never deployed cannot sign.
	ErrAccountNotDeployed = errors.New("starknet: no account is deployed at the address")
	// ErrNotAccount is a contract without is_valid_signature (JSON-RPC
	// error 21): not an account.
	ErrNotAccount = errors.New("starknet: the contract at the address is not an account")
)

// validShortString is 'VALID', the answer of a Cairo 1 account (SNIP-6)
// whose signature checks; Cairo 0 accounts answer 1.
var validShortString = obsqra.Felt{27: 'V', 28: 'A', 29: 'L', 30: 'I', 31: 'D'}

// maxSignatureLen bounds the signature sent on: multisig accounts need a
// few felts per signer, nothing needs thousands.
const maxSignatureLen = 256

// VerifyOwnership asks the account contract at address whether signature
// is its owner's over msgHash: it calls is_valid_signature(hash,
// signature: Span<felt252>), i.e. calldata [msgHash, len(signature),
// signature…], on the latest block, and accepts the answer 'VALID'
// (0x56414c4944) or 1. It returns nil when accepted; otherwise an error
// satisfying errors.Is with ErrSignatureRejected (any other answer, a
// revert, an empty or oversized signature), ErrAccountNotDeployed or
// ErrNotAccount; a transport error (ErrUnavailable) or another JSON-RPC
// error comes back as it is.
func VerifyOwnership(ctx context.Context, c *Client, address obsqra.Felt, msgHash obsqra.Felt, signature []obsqra.Felt) error {
	if c == nil {
		return fmt.Errorf("verify ownership of %s: no Starknet client is configured", address)
	}
	if len(signature) == 0 || len(signature) > maxSignatureLen {
		return fmt.Errorf("verify ownership of %s: %w: the signature has %d elements, want 1 to %d",
			address, ErrSignatureRejected, len(signature), maxSignatureLen)
	}
	calldata := make([]obsqra.Felt, 0, 2+len(signature))
	calldata = append(calldata, msgHash, uint64Felt(uint64(len(signature))))
	calldata = append(calldata, signature...)
	result, err := c.Call(ctx, address, "is_valid_signature", calldata)
	switch {
	case errors.Is(err, ErrContractNotFound):
		return fmt.Errorf("verify ownership of %s: %w: %w", address, ErrAccountNotDeployed, err)
	case errors.Is(err, ErrEntrypointNotFound):
		return fmt.Errorf("verify ownership of %s: %w: %w", address, ErrNotAccount, err)
	case errors.Is(err, ErrContractError):
		return fmt.Errorf("verify ownership of %s: %w: %w", address, ErrSignatureRejected, err)
	case err != nil:
		return fmt.Errorf("verify ownership of %s: %w", address, err)
	}
	if len(result) == 1 && (result[0] == validShortString || result[0] == uint64Felt(1)) {
		return nil
	}
	return fmt.Errorf("verify ownership of %s: %w: is_valid_signature answered %v", address, ErrSignatureRejected, rpcHexes(result))
}

func uint64Felt(v uint64) obsqra.Felt {
	var f obsqra.Felt
	for i := 31; v > 0; i-- {
		f[i] = byte(v)
		v >>= 8
	}
	return f
}
