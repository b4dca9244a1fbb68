package obsqra_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

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
