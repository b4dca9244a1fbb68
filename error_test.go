package obsqra_test

import (
	"testing"

	"github.com/obsqra/obsqra"
)

// TestPublicCode: every code a client may see has its public name, the
// one GraphQL's extensions.code and the REST API's code carry; an
// internal error has none.
func TestPublicCode(t *testing.T) {
	for code, want := range map[string]string{
		obsqra.EINVALID: "BAD_USER_INPUT", obsqra.ENOTFOUND: "NOT_FOUND", obsqra.ECONFLICT: "CONFLICT",
		obsqra.EUNAUTHENTICATED: "UNAUTHENTICATED", obsqra.EFORBIDDEN: "FORBIDDEN", obsqra.ERATELIMIT: "RATE_LIMITED",
		obsqra.EUNAVAILABLE: "SERVICE_UNAVAILABLE", obsqra.EINTERNAL: "", "nonsense": "",
	} {
		if got := obsqra.PublicCode(code); got != want {
			t.Errorf("PublicCode(%q) = %q, want %q", code, got, want)
		}
	}
}
