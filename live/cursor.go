package live

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/obsqra/obsqra"
)

// cursorPrefix marks a subscription cursor, so that another kind of
// opaque string (a connection cursor) is refused rather than misread.
const cursorPrefix = "ev:"

// Cursor returns the opaque cursor of the event with id: what a client
// passes back as `after` to resume after it.
func Cursor(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(id, 10)))
}

// ParseCursor returns the event id of a cursor made by Cursor.
// Errors: EINVALID for anything else.
func ParseCursor(s string) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		if rest, ok := strings.CutPrefix(string(raw), cursorPrefix); ok {
			if id, err := strconv.ParseInt(rest, 10, 64); err == nil && id >= 0 && strconv.FormatInt(id, 10) == rest {
				return id, nil
			}
		}
	}
	return 0, obsqra.Errorf(obsqra.EINVALID, "%q is not a subscription cursor", s)
}
