package obsqra_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
)

// TestJSONObjectMarshalGQL: stored bytes that are JSON are written as they
// are; bytes that are not (a tampered decision) become a JSON string of
// their text, so the response stays JSON and the client sees what is
// stored.
func TestJSONObjectMarshalGQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stored string
		want         string // the exact output
	}{
		{"object", `{"score":42,"inputs":[1,2]}`, `{"score":42,"inputs":[1,2]}`},
		{"empty", ``, `null`},
		{"truncated", `{"score":4`, `"{\"score\":4"`},
		{"not JSON", `score=42`, `"score=42"`},
		{"trailing garbage", `{"a":1}}`, `"{\"a\":1}}"`},
		{"control characters", "{\"a\":\x00\n}", `"{\"a\":\u0000\n}"`},
		{"HTML and separators", "{<&>\u2028", `"{\u003c\u0026\u003e\u2028"`},
		{"invalid UTF-8", "{\xff", `"{\ufffd"`},
	}
	for _, tt := range tests {
		var b strings.Builder
		obsqra.JSONObject(tt.stored).MarshalGQL(&b)
		if got := b.String(); got != tt.want || !json.Valid([]byte(got)) {
			t.Errorf("%s: MarshalGQL(%q) = %s, want %s", tt.name, tt.stored, got, tt.want)
		}
	}

	// What the client decodes is the stored text.
	stored := "{\"score\": 1\x00 \"x\"\t}"
	var b strings.Builder
	obsqra.JSONObject(stored).MarshalGQL(&b)
	var got any
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil || !reflect.DeepEqual(got, stored) {
		t.Errorf("MarshalGQL(%q) decodes to %#v, %v; want the stored text", stored, got, err)
	}
}

func TestDateOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), "1970-01-01"},
		{time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC), "1969-12-31"},
		{time.Date(2025, 7, 22, 23, 59, 59, 999, time.UTC), "2025-07-22"},
		{time.Date(2025, 7, 23, 1, 0, 0, 0, time.FixedZone("x", 3*3600)), "2025-07-22"},
	}
	for _, tt := range tests {
		if got := obsqra.DateOf(tt.in).String(); got != tt.want {
			t.Errorf("DateOf(%v) = %s, want %s", tt.in, got, tt.want)
		}
		d, err := obsqra.ParseDate(tt.want)
		if err != nil || d != obsqra.DateOf(tt.in) {
			t.Errorf("ParseDate(%s) = %v, %v; want %v", tt.want, d, err, obsqra.DateOf(tt.in))
		}
	}
	if _, err := obsqra.ParseDate("2025-13-01"); err == nil {
		t.Error("ParseDate accepted month 13")
	}
}
