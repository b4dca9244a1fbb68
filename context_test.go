package obsqra_test

import (
	"testing"

	"github.com/obsqra/obsqra"
)

func TestClientLimitKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ address, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"", ""},
		{"pipe", "pipe"},
	} {
		if got := (&obsqra.Client{Address: tc.address}).LimitKey(); got != tc.want {
			t.Errorf("LimitKey(%q) = %q, want %q", tc.address, got, tc.want)
		}
	}
}
