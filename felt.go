package obsqra

import (
	"bytes"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"io"
)

// Felt is a Starknet field element: an address, a transaction hash, a class
// hash. It is stored big-endian in 32 bytes, so two Felts are equal exactly
// when they denote the same number, whatever case or padding they were
// written in.
type Felt [32]byte

var (
	// feltPrime is the Starknet field prime 2^251 + 17·2^192 + 1; every felt is below it.
	feltPrime = Felt{0x08, 0, 0, 0, 0, 0, 0, 0x11, 31: 0x01}
	// addressBound is 2^251 − 256; contract addresses are below it.
	addressBound = Felt{0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}
)

// ParseFelt parses 1 to 64 hexadecimal digits, with or without a 0x prefix,
// in any case, and checks that the number is below the field prime. Errors
// are EINVALID.
func ParseFelt(s string) (Felt, error) {
	f, err := parseHex32(s)
	if err != nil {
		return Felt{}, err
	}
	if bytes.Compare(f[:], feltPrime[:]) >= 0 {
		return Felt{}, Errorf(EINVALID, "%s is not a felt: it is not below the field prime 2^251 + 17·2^192 + 1", QuoteInput(s))
	}
	return f, nil
}

// ParseAddress parses a Starknet contract address as ParseFelt does and
// checks that it is below 2^251 − 256, the bound of the address space.
func ParseAddress(s string) (Felt, error) {
	f, err := parseHex32(s)
	if err != nil {
		return Felt{}, err
	}
	if bytes.Compare(f[:], addressBound[:]) >= 0 {
		return Felt{}, Errorf(EINVALID, "%s is not a Starknet address: addresses are below 2^251 - 256", QuoteInput(s))
	}
	return f, nil
}

func parseHex32(s string) (Felt, error) {
	digits := s
	if len(digits) >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X') {
		digits = digits[2:]
	}
	if len(digits) == 0 || len(digits) > 64 {
		return Felt{}, Errorf(EINVALID, "%s is not a felt: want 1 to 64 hexadecimal digits, with or without 0x", QuoteInput(s))
	}
	var buf [64]byte
	pad := 64 - len(digits)
	for i := range pad {
		buf[i] = '0'
	}
	copy(buf[pad:], digits)
	var f Felt
	if _, err := hex.Decode(f[:], buf[:]); err != nil {
		return Felt{}, Errorf(EINVALID, "%s is not a felt: want 1 to 64 hexadecimal digits, with or without 0x", QuoteInput(s))
	}
	return f, nil
}

// FeltFromUint64 returns the felt of the number v.
func FeltFromUint64(v uint64) Felt {
	var f Felt
	for i := range 8 {
		f[31-i] = byte(v >> (8 * i))
	}
	return f
}

// String returns the canonical form: 0x followed by 64 lowercase hex digits.
func (f Felt) String() string {
	var buf [66]byte
	buf[0], buf[1] = '0', 'x'
	hex.Encode(buf[2:], f[:])
	return string(buf[:])
}

// IsZero reports whether f is 0.
func (f Felt) IsZero() bool { return f == Felt{} }

// MarshalText implements encoding.TextMarshaler with the canonical form.
func (f Felt) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseFelt.
func (f *Felt) UnmarshalText(b []byte) error {
	v, err := ParseFelt(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// MarshalGQL writes f as a GraphQL string in canonical form.
func (f Felt) MarshalGQL(w io.Writer) {
	io.WriteString(w, `"`+f.String()+`"`)
}

// UnmarshalGQL reads f from a GraphQL string.
func (f *Felt) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return Errorf(EINVALID, "a felt must be a string of hexadecimal digits")
	}
	return f.UnmarshalText([]byte(s))
}

// Value stores f in its canonical text form, the same on every database.
func (f Felt) Value() (driver.Value, error) { return f.String(), nil }

// Scan reads f from its canonical text form.
func (f *Felt) Scan(src any) error {
	switch v := src.(type) {
	case string:
		return f.UnmarshalText([]byte(v))
	case []byte:
		return f.UnmarshalText(v)
	default:
		return fmt.Errorf("scan felt from %T", src)
	}
}
