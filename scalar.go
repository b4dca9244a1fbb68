package obsqra

import (
	"bytes"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Date is a calendar day in UTC, counted from 1970-01-01 (day 0): the day of
// the store, the API and ml's daily series alike. On the wire it is YYYY-MM-DD.
type Date int32

const secondsPerDay = 24 * 60 * 60

// DateOf returns the UTC calendar day of t.
func DateOf(t time.Time) Date {
	s := t.Unix()
	d := s / secondsPerDay
	if s%secondsPerDay < 0 {
		d--
	}
	return Date(d)
}

// ParseDate parses a YYYY-MM-DD date. Errors: EINVALID.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, Errorf(EINVALID, "date %s is not a YYYY-MM-DD date", QuoteInput(s))
	}
	return DateOf(t), nil
}

// Time returns midnight UTC at the start of d.
func (d Date) Time() time.Time { return time.Unix(int64(d)*secondsPerDay, 0).UTC() }

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return d.Time().Format(time.DateOnly) }

// MarshalText writes d as YYYY-MM-DD (so JSON holds it as a string).
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d from YYYY-MM-DD.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalGQL writes d as a GraphQL string.
func (d Date) MarshalGQL(w io.Writer) { io.WriteString(w, `"`+d.String()+`"`) }

// UnmarshalGQL reads d from a YYYY-MM-DD string.
func (d *Date) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return Errorf(EINVALID, "a Date must be a YYYY-MM-DD string")
	}
	p, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Limits of a Decimal: amounts of any token fit (uint256 has 78 digits) and
// 18 decimals are the finest unit of an ERC-20 token.
const (
	MaxDecimalDigits   = 78
	MaxDecimalFraction = 18
)

// Decimal is an exact decimal number, such as a token amount or a value in
// USD. It is kept as its canonical text: an optional minus sign, the
// integer digits without leading zeros, and the fraction digits without
// trailing zeros ("0012.500" is "12.5", "-0" is "0"). Equal numbers have
// equal text, so it compares with == and stores as TEXT (SQLite) or NUMERIC
// (PostgreSQL) without ever passing through a float. The zero value is 0.
type Decimal struct{ s string }

// ParseDecimal parses a decimal number in plain notation (no exponent, no
// plus sign, no thousands separators), with at most MaxDecimalDigits
// significant digits and MaxDecimalFraction fraction digits.
// Errors: EINVALID saying what is wrong.
func ParseDecimal(s string) (Decimal, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		return Decimal{}, Errorf(EINVALID, "%s is not a decimal number such as 12.5", QuoteInput(orig))
	}
	if len(frac) > MaxDecimalFraction {
		return Decimal{}, Errorf(EINVALID, "%s has more than %d decimal places", QuoteInput(orig), MaxDecimalFraction)
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	digits := len(intPart) + len(frac)
	if intPart == "" {
		digits = len(strings.TrimLeft(frac, "0"))
	}
	if digits > MaxDecimalDigits {
		return Decimal{}, Errorf(EINVALID, "%s has more than %d significant digits", QuoteInput(orig), MaxDecimalDigits)
	}
	if intPart == "" {
		intPart = "0"
	}
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return Decimal{s: out}, nil
}

// MustDecimal is ParseDecimal for constants in code and tests; it panics on
// a malformed number.
func MustDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns d's canonical text.
func (d Decimal) String() string {
	if d.s == "" {
		return "0"
	}
	return d.s
}

// IsNegative reports whether d < 0.
func (d Decimal) IsNegative() bool { return strings.HasPrefix(d.s, "-") }

// IsZero reports whether d = 0.
func (d Decimal) IsZero() bool { return d.s == "" || d.s == "0" }

// Rat returns d as an exact rational number.
func (d Decimal) Rat() *big.Rat {
	r, _ := new(big.Rat).SetString(d.String())
	return r
}

// Cmp compares d and e: -1, 0 or +1.
func (d Decimal) Cmp(e Decimal) int { return d.Rat().Cmp(e.Rat()) }

// MarshalGQL writes d as a GraphQL string, so no client parses it as a
// float.
func (d Decimal) MarshalGQL(w io.Writer) { io.WriteString(w, `"`+d.String()+`"`) }

// UnmarshalGQL reads d from a string or an integer. A float is refused: it
// has already lost the digits a Decimal exists to keep.
func (d *Decimal) UnmarshalGQL(v any) error {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case json.Number:
		// A JSON number is exact text, but a client that wrote 12.5 as a
		// number has most likely been through a float already: only whole
		// numbers are taken unquoted.
		if strings.ContainsAny(v.String(), ".eE") {
			return Errorf(EINVALID, "a Decimal with a fraction must be a string such as \"12.5\", got the number %s", v)
		}
		s = v.String()
	default:
		return Errorf(EINVALID, "a Decimal must be a string such as \"12.5\"")
	}
	p, err := ParseDecimal(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// MarshalJSON writes d as a JSON string.
func (d Decimal) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads d from a JSON string or number.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	p, err := ParseDecimal(s)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Value stores d as its canonical text.
func (d Decimal) Value() (driver.Value, error) { return d.String(), nil }

// Scan reads d from text or a NUMERIC column.
func (d *Decimal) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		return fmt.Errorf("scan decimal from %T", src)
	}
	p, err := ParseDecimal(s)
	if err != nil {
		return fmt.Errorf("scan decimal %q: %w", s, err)
	}
	*d = p
	return nil
}

// JSONObject is a JSON object, such as a decision's recorded inputs. It holds the
// object's compact text.
type JSONObject json.RawMessage

// MarshalGQL writes the object as it is. Bytes that are not JSON (a
// decision tampered with in the database, say) are written as a JSON
// string of their text: written raw they would break the whole response,
// and the client could not see what is stored.
func (j JSONObject) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		io.WriteString(w, "null")
		return
	}
	if !json.Valid(j) {
		// json.Marshal of a string cannot fail; invalid UTF-8 becomes U+FFFD.
		b, _ := json.Marshal(string(j))
		w.Write(b)
		return
	}
	w.Write(j)
}

// UnmarshalGQL reads a JSON object from a GraphQL input value.
func (j *JSONObject) UnmarshalGQL(v any) error {
	if _, ok := v.(map[string]any); !ok {
		return Errorf(EINVALID, "a JSON value must be an object")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Errorf(EINVALID, "a JSON value must be an object")
	}
	*j = b
	return nil
}

// MarshalJSON writes the object as it is.
func (j JSONObject) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps a copy of the object's compact text.
func (j *JSONObject) UnmarshalJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return err
	}
	*j = buf.Bytes()
	return nil
}
