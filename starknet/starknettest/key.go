package starknettest

import (
	"math/big"
	"testing"

	"github.com/NethermindEth/juno/core/felt"
	"github.com/NethermindEth/starknet.go/curve"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/starknet"
)

// valid is 'VALID' as a short string, what SNIP-6 accounts answer.
var valid = obsqra.Felt{27: 'V', 28: 'A', 29: 'L', 30: 'I', 31: 'D'}

// Key is a Stark-curve key pair, the owner of an account, made by
// starknet.go's curve package.
type Key struct {
	t    testing.TB
	priv *big.Int
	pub  obsqra.Felt
}

// NewKey makes a random key pair. A failure fails the test.
func NewKey(t testing.TB) Key {
	t.Helper()
	priv, x, _, err := curve.GetRandomKeys()
	if err != nil {
		t.Fatalf("starknettest: new key: %v", err)
	}
	return Key{t: t, priv: priv, pub: bigFelt(x)}
}

// Public returns the public key: the x coordinate of the key's point, as
// accounts store it.
func (k Key) Public() obsqra.Felt { return k.pub }

// Sign signs hash with ECDSA on the Stark curve and returns the signature
// as accounts take it: [r, s]. A failure fails the test.
func (k Key) Sign(hash obsqra.Felt) []obsqra.Felt {
	k.t.Helper()
	r, s, err := curve.Sign(new(big.Int).SetBytes(hash[:]), k.priv)
	if err != nil {
		k.t.Fatalf("starknettest: sign %s: %v", hash, err)
	}
	return []obsqra.Felt{bigFelt(r), bigFelt(s)}
}

// SignTypedData signs the SNIP-12 typedData for the account at address, as
// a wallet's signTypedData does, and returns the signature as the API takes
// it: [r, s] in hex. A failure fails the test.
func (k Key) SignTypedData(typedData []byte, address obsqra.Felt) []string {
	k.t.Helper()
	hash, err := starknet.MessageHash(typedData, address)
	if err != nil {
		k.t.Fatalf("starknettest: message hash: %v", err)
	}
	var out []string
	for _, f := range k.Sign(hash) {
		out = append(out, f.String())
	}
	return out
}

// verify checks the signature (r, s) of hash by the public key pub.
func verify(hash, r, s, pub obsqra.Felt) bool {
	ok, err := curve.VerifyFelts(juno(hash), juno(r), juno(s), juno(pub))
	return err == nil && ok
}

// accountAddress derives a stable address from a public key: its Poseidon
// hash, cut below 2^250 so that it is a valid contract address.
func accountAddress(pub obsqra.Felt) obsqra.Felt {
	h := curve.PoseidonArray(juno(pub))
	a := obsqra.Felt(h.Bytes())
	a[0] &= 0x03
	return a
}

func juno(f obsqra.Felt) *felt.Felt { return new(felt.Felt).SetBytes(f[:]) }

func bigFelt(v *big.Int) obsqra.Felt {
	var f obsqra.Felt
	v.FillBytes(f[:])
	return f
}
