package live

import (
	"encoding/base64"
	"testing"

	"github.com/obsqra/obsqra"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []int64{0, 1, 42, 1 << 62} {
		got, err := ParseCursor(Cursor(id))
		if err != nil || got != id {
			t.Errorf("ParseCursor(Cursor(%d)) = %d, %v", id, got, err)
		}
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, bad := range []string{"", "42", "ev:42", enc("ev:"), enc("ev:-1"), enc("ev:+1"), enc("ev:01"), enc("xx:1"), enc("ev:1 "), Cursor(5) + "="} {
		if _, err := ParseCursor(bad); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("ParseCursor(%q) error = %v, want EINVALID", bad, err)
		}
	}
}
