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

func TestViewerAndRequireUser(t *testing.T) {
	t.Parallel()
	ada := &obsqra.User{ID: 7, Role: obsqra.RoleUser}
	root := &obsqra.User{ID: 1, Role: obsqra.RoleAdmin}
	refused := obsqra.Errorf(obsqra.EUNAUTHENTICATED, "the access token has expired")
	anon := context.Background()
	signedIn := func(u *obsqra.User) context.Context {
		return obsqra.NewContextWithPrincipal(anon, &obsqra.Principal{User: u, SessionID: "s"})
	}
	for _, tt := range []struct {
		name                    string
		ctx                     context.Context
		viewer                  *obsqra.User
		viewerCode, requireCode string
		adminCode               string
	}{
		{"anonymous", anon, nil, "", obsqra.EUNAUTHENTICATED, obsqra.EUNAUTHENTICATED},
		{"user", signedIn(ada), ada, "", "", obsqra.EFORBIDDEN},
		{"admin", signedIn(root), root, "", "", ""},
		{"refused token", obsqra.NewContextWithAuthError(anon, refused), nil, obsqra.EUNAUTHENTICATED, obsqra.EUNAUTHENTICATED, obsqra.EUNAUTHENTICATED},
		// A refusal wins over a principal an outer layer left behind.
		{"refused over a principal", obsqra.NewContextWithAuthError(signedIn(ada), refused), nil, obsqra.EUNAUTHENTICATED, obsqra.EUNAUTHENTICATED, obsqra.EUNAUTHENTICATED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if u, err := obsqra.Viewer(tt.ctx); u != tt.viewer || obsqra.ErrorCode(err) != tt.viewerCode {
				t.Errorf("Viewer() = %v, %v, want %v, code %q", u, err, tt.viewer, tt.viewerCode)
			}
			p, err := obsqra.RequireUser(tt.ctx)
			if obsqra.ErrorCode(err) != tt.requireCode || (err == nil) != (p != nil) || (p != nil && p.User != tt.viewer) {
				t.Errorf("RequireUser() = %v, %v, want code %q", p, err, tt.requireCode)
			}
			if _, err := obsqra.RequireAdmin(tt.ctx, "test"); obsqra.ErrorCode(err) != tt.adminCode {
				t.Errorf("RequireAdmin() error = %v, want code %q", err, tt.adminCode)
			}
		})
	}
}
