package obsqra_test

import (
	"context"
	"errors"
	"testing"
	"time"

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

// TestSleepEndsWithItsContext: a caller that has gone away is not kept
// waiting (a slowed sign-in, a retry's backoff).
func TestSleepEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := obsqra.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(cancelled context, 1h) = %v, want context.Canceled", err)
	}
	if err := obsqra.Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
}
