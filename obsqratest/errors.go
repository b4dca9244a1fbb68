package obsqratest

import (
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
)

// CheckErr fails the test unless err has the error code (obsqra.EINVALID,
// …) and a client message containing each of want. what names the call in
// the failure, e.g. "Deposit(-1)".
func CheckErr(t testing.TB, what string, err error, code string, want ...string) {
	t.Helper()
	if obsqra.ErrorCode(err) != code {
		t.Errorf("%s = %v, want code %s", what, err, code)
		return
	}
	for _, w := range want {
		if msg := obsqra.ErrorMessage(err); !strings.Contains(msg, w) {
			t.Errorf("%s = %q, want a message containing %q", what, msg, w)
		}
	}
}
