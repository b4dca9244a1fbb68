package starknet

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"

	"github.com/NethermindEth/juno/core/felt"
	"github.com/NethermindEth/starknet.go/utils"

	"github.com/obsqra/obsqra"
)

// Selector returns the entry point selector of a function name: the
// Starknet Keccak of the name (starknet.go's utils.GetSelectorFromNameFelt).
func Selector(name string) obsqra.Felt {
	return fromJuno(utils.GetSelectorFromNameFelt(name))
}

// ShortString encodes s, at most 31 ASCII characters, as a Cairo short
// string: its bytes read as a big-endian number.
func ShortString(s string) (obsqra.Felt, error) {
	if len(s) > 31 {
		return obsqra.Felt{}, fmt.Errorf("short string %q is longer than 31 characters", s)
	}
	var f obsqra.Felt
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return obsqra.Felt{}, fmt.Errorf("short string %q is not printable ASCII", s)
		}
	}
	copy(f[32-len(s):], s)
	return f, nil
}

// decodeShortString returns the printable ASCII text a felt encodes (a
// chain id), or its hex form when it is not such a text.
func decodeShortString(f obsqra.Felt) string {
	i := 0
	for i < len(f) && f[i] == 0 {
		i++
	}
	b := f[i:]
	if len(b) == 0 || len(b) > 31 {
		return rpcHex(f)
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return rpcHex(f)
		}
	}
	return string(b)
}

// rpcHex writes f as the JSON-RPC spec's FELT pattern wants it: 0x and
// the hex digits without leading zeros ("0x0" for zero). The canonical
// 64-digit form of obsqra.Felt.String does not match that pattern.
func rpcHex(f obsqra.Felt) string {
	s := strings.TrimLeft(hex.EncodeToString(f[:]), "0")
	if s == "" {
		return "0x0"
	}
	return "0x" + s
}

// rpcHexes is rpcHex over a slice; never nil, so it encodes as [].
func rpcHexes(fs []obsqra.Felt) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = rpcHex(f)
	}
	return out
}

// feltDecimal returns f as a base-10 number, as fees are shown.
func feltDecimal(f obsqra.Felt) string {
	return new(big.Int).SetBytes(f[:]).String()
}

func toJuno(f obsqra.Felt) *felt.Felt { return new(felt.Felt).SetBytes(f[:]) }

func fromJuno(f *felt.Felt) obsqra.Felt { return obsqra.Felt(f.Bytes()) }
