package obsqra_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/obsqra/obsqra"
)

func TestCheckText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, message string // message "" when in is taken
	}{
		{"", ""},
		{"Ada Lovelace", ""},
		{"é☃😀\u00ff\ufffd\t\n", ""},
		{"a\x00b", "name must not contain the NUL character (U+0000)"},
		{"\x00", "name must not contain the NUL character (U+0000)"},
		{"zk\xfflend", "name must be valid UTF-8 text"},
		{"\xed\xa0\x80", "name must be valid UTF-8 text"}, // a surrogate, U+D800
		{"\xc0\x80", "name must be valid UTF-8 text"},     // NUL in modified UTF-8
	} {
		err := obsqra.CheckText("name", tt.in)
		if tt.message == "" && err != nil || tt.message != "" && (obsqra.ErrorCode(err) != obsqra.EINVALID || obsqra.ErrorMessage(err) != tt.message) {
			t.Errorf("CheckText(%q) = %v, want %q", tt.in, err, tt.message)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	t.Parallel()
	const nul = "must not contain the NUL character (U+0000)"
	for _, tt := range []struct {
		name    string
		in      any
		message string // "" when in is taken
	}{
		{"object", map[string]any{"a": []any{"b", json.Number("1.5"), 2.5, int64(3), true, nil, map[string]any{"é": "☃"}}}, ""},
		{"value", map[string]any{"a": "\x00"}, "details " + nul},
		{"key", map[string]any{"\x00": "a"}, "a key of details " + nul},
		{"deep value", map[string]any{"a": []any{[]any{map[string]any{"b": "x\x00y"}}}}, "details " + nul},
		{"deep key", map[string]any{"a": []any{map[string]any{"b\x00": 1}}}, "a key of details " + nul},
		{"not UTF-8", map[string]any{"a": "\xff"}, "details must be valid UTF-8 text"},
		{"infinite float", map[string]any{"a": []any{json.Number("1e309")}}, `details holds the number "1e309", which is out of range`},
	} {
		err := obsqra.CheckJSON("details", tt.in)
		if tt.message == "" && err != nil || tt.message != "" && (obsqra.ErrorCode(err) != obsqra.EINVALID || obsqra.ErrorMessage(err) != tt.message) {
			t.Errorf("CheckJSON(%s) = %v, want %q", tt.name, err, tt.message)
		}
	}
}

// TestCheckJSONNumbers: a number in a JSON input must be one a float64
// holds, written in at most 100 characters; PostgreSQL's jsonb refuses
// some others ("value overflows numeric format").
func TestCheckJSONNumbers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n  string
		ok bool
	}{
		{"0", true}, {"-0", true}, {"1.5e308", true}, {"-1.5E+308", true}, {"4.9e-324", true}, {"0.000e-999", true},
		{"12345678901234567890123", true}, {"1." + strings.Repeat("1", 98), true},
		{"1e309", false}, {"1e999999", false}, {"1e-400", false}, {"-0.1e-147483648", false}, {"1." + strings.Repeat("1", 99), false},
	} {
		err := obsqra.CheckJSON("details", map[string]any{"n": json.Number(tt.n)})
		if ok := err == nil; ok != tt.ok || (!ok && obsqra.ErrorCode(err) != obsqra.EINVALID) {
			t.Errorf("CheckJSON(%s) = %v, want ok %v", tt.n, err, tt.ok)
		}
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456…"},
		{"bad \xff byte", 64, "bad \uFFFD byte"},
		{"ééééé", 8, "éé…"}, // 10 bytes; the cut at byte 5 falls inside an é
	} {
		if got := obsqra.Clip(tt.in, tt.n); got != tt.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	long := strings.Repeat("é", 3000) // 6000 bytes
	if got := obsqra.Clip(long, 4096); len(got) > 4096 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("Clip(6000 bytes, 4096) = %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestQuoteInput(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
	}{
		{"", `""`},
		{"0xabc", `"0xabc"`},
		{`say "hi"`, `"say \"hi\""`},
		{"line\nbreak", `"line\nbreak"`},
		{strings.Repeat("a", 80), `"` + strings.Repeat("a", 80) + `"`},
		{strings.Repeat("a", 81), `"` + strings.Repeat("a", 77) + `…"`},
		{strings.Repeat("é", 41), `"` + strings.Repeat("é", 38) + `…"`}, // 82 bytes, cut to 76 + 3
	} {
		if got := obsqra.QuoteInput(tt.in); got != tt.want {
			t.Errorf("QuoteInput(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
