package obsqra_test

import (
	"math/big"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestParseFelt(t *testing.T) {
	t.Parallel()
	zero64 := strings.Repeat("0", 64)
	tests := []struct {
		in      string
		want    string // canonical form, "" when the input must be refused
		address bool   // parse with ParseAddress
	}{
		{in: "0x1", want: "0x" + zero64[:63] + "1"},
		{in: "1", want: "0x" + zero64[:63] + "1"},
		{in: "0XABC", want: "0x" + zero64[:61] + "abc"},
		{in: "0x0ABc", want: "0x" + zero64[:61] + "abc"},
		{in: "0x" + zero64, want: "0x" + zero64},
		{in: "0x0", want: "0x" + zero64},
		// The prime minus one is the largest felt; the prime itself is not one.
		{in: "0x800000000000011000000000000000000000000000000000000000000000000", want: "0x0800000000000011000000000000000000000000000000000000000000000000"},
		{in: "0x800000000000011000000000000000000000000000000000000000000000001", want: ""},
		{in: "0x800000000000011000000000000000000000000000000000000000000000000", want: "0x0800000000000011000000000000000000000000000000000000000000000000"},
		{in: "0x7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00", want: "0x07ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00"},
		// 2^251 − 256 is the first value that is not an address.
		{in: "0x7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00", want: "", address: true},
		{in: "0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeff", want: "0x07fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeff", address: true},
		{in: "0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7", want: "0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7", address: true},
		{in: "", want: ""},
		{in: "0x", want: ""},
		{in: "0x" + strings.Repeat("0", 65), want: ""},
		{in: "0xg", want: ""},
		{in: " 0x1", want: ""},
		{in: "-1", want: ""},
		{in: "0x+1", want: ""},
		{in: "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", want: ""},
	}
	for _, tt := range tests {
		parse := obsqra.ParseFelt
		if tt.address {
			parse = obsqra.ParseAddress
		}
		got, err := parse(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parse(%q, address=%v) = %s, want an error", tt.in, tt.address, got)
			} else if code := obsqra.ErrorCode(err); code != obsqra.EINVALID {
				t.Errorf("parse(%q) error code = %s, want %s", tt.in, code, obsqra.EINVALID)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%q, address=%v) error: %v", tt.in, tt.address, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("parse(%q, address=%v) = %s, want %s", tt.in, tt.address, got, tt.want)
		}
	}
}

func TestFeltScanValue(t *testing.T) {
	t.Parallel()
	f, err := obsqra.ParseAddress("0xABC")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := f.Value()
	var back obsqra.Felt
	if err := back.Scan(v); err != nil || back != f {
		t.Fatalf("Scan(Value(%s)) = %s, %v", f, back, err)
	}
	if err := back.Scan([]byte(f.String())); err != nil || back != f {
		t.Fatalf("Scan([]byte) = %s, %v", back, err)
	}
	if err := back.Scan(42); err == nil {
		t.Fatal("Scan(42) succeeded, want an error")
	}
}

var (
	prime        = new(big.Int).Add(new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 251), new(big.Int).Lsh(big.NewInt(17), 192)), big.NewInt(1))
	addressLimit = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 251), big.NewInt(256))
)

// FuzzParseFelt checks ParseFelt and ParseAddress against math/big: an input
// is accepted exactly when it is 1–64 hex digits (optionally behind 0x or
// 0X) whose value is in range, and the canonical form round-trips.
func FuzzParseFelt(f *testing.F) {
	for _, s := range []string{"0x1", "ABC", "0x", "", "0x800000000000011000000000000000000000000000000000000000000000001",
		"0x7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00", "0x0x1", "0X" + strings.Repeat("f", 64), "12 3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		digits := s
		if strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X") {
			digits = digits[2:]
		}
		n, ok := new(big.Int).SetString(digits, 16)
		valid := ok && len(digits) >= 1 && len(digits) <= 64 && !strings.ContainsAny(digits, "+-_xX") && n.Sign() >= 0
		for _, c := range []struct {
			parse func(string) (obsqra.Felt, error)
			limit *big.Int
		}{{obsqra.ParseFelt, prime}, {obsqra.ParseAddress, addressLimit}} {
			got, err := c.parse(s)
			want := valid && n.Cmp(c.limit) < 0
			if (err == nil) != want {
				t.Fatalf("parse(%q) error = %v, want accepted=%v", s, err, want)
			}
			if err != nil {
				if obsqra.ErrorCode(err) != obsqra.EINVALID {
					t.Fatalf("parse(%q) error code = %s", s, obsqra.ErrorCode(err))
				}
				continue
			}
			canon := got.String()
			if len(canon) != 66 || canon != strings.ToLower(canon) || !strings.HasPrefix(canon, "0x") {
				t.Fatalf("parse(%q).String() = %q, not canonical", s, canon)
			}
			if m, _ := new(big.Int).SetString(canon[2:], 16); m.Cmp(n) != 0 {
				t.Fatalf("parse(%q) = %s, want value %x", s, canon, n)
			}
			again, err := c.parse(canon)
			if err != nil || again != got {
				t.Fatalf("parse(canonical %q) = %s, %v; want %s", canon, again, err, got)
			}
		}
	})
}
