package obsqra

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CheckText says whether s is text that every database stores as it is:
// valid UTF-8 without the NUL character (U+0000). PostgreSQL's text and
// jsonb refuse both (SQLite would store them), so input that holds either
// is refused where it enters, the same way on every database.
// Errors: EINVALID naming field (such as "input.fullName").
func CheckText(field, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(EINVALID, "%s must not contain the NUL character (U+0000)", field)
	}
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s must be valid UTF-8 text", field)
	}
	return nil
}

// maxJSONNumberLength bounds the text of a number in a JSON input: longer
// numbers are no number a client means, and PostgreSQL's jsonb refuses some
// (over 16383 fraction digits).
const maxJSONNumberLength = 100

// CheckJSON says whether v, a JSON value as a GraphQL input decodes it
// (maps, slices, strings, json.Number, float64, int64, bool, nil), is JSON
// that every database stores as it is: CheckText holds for every key and
// string at any depth, and every number is one a float64 holds (finite and
// not so small that it rounds to 0) written in at most 100 characters.
// PostgreSQL's jsonb refuses "\u0000" and numbers beyond its numeric range.
// Errors: EINVALID naming field.
func CheckJSON(field string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := CheckText("a key of "+field, k); err != nil {
				return err
			}
			if err := CheckJSON(field, e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := CheckJSON(field, e); err != nil {
				return err
			}
		}
	case string:
		return CheckText(field, v)
	case json.Number:
		if !storableNumber(string(v)) {
			return Errorf(EINVALID, "%s holds the number %s, which is out of range", field, QuoteInput(string(v)))
		}
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return Errorf(EINVALID, "%s holds a number that is out of range", field)
		}
	}
	return nil
}

// storableNumber reports whether the JSON number s is finite as a float64,
// is not a non-zero number that rounds to 0, and is at most
// maxJSONNumberLength characters long.
func storableNumber(s string) bool {
	if len(s) > maxJSONNumberLength {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return false
	}
	mantissa, _, _ := strings.Cut(strings.ToLower(s), "e")
	return f != 0 || !strings.ContainsAny(mantissa, "123456789")
}

// maxQuoted is how many bytes of a client's string an error message
// repeats: a message names the value, it need not repeat a whole corrupt
// field or a megabyte of input.
const maxQuoted = 80

// QuoteInput quotes s for an error message, cut to 80 bytes: the one way
// the services quote what a client (or a feed, or a node) sent. The cut
// falls on a rune boundary and ends in "…" inside the quotes.
func QuoteInput(s string) string { return strconv.Quote(Clip(s, maxQuoted)) }

// Clip returns s cut to at most n bytes, on a rune boundary, ending in "…"
// when it was cut, with invalid UTF-8 replaced by U+FFFD: text from outside
// (a node's status, a feed's message) kept within a column's or a log
// line's bounds. n below len("…") (3) yields "…" alone for a longer s.
func Clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := max(n-len("…"), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
