package resolvers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// TestStrangersCannotLockOutTheOwnerAPI is issue 15, item 3 through the real
// handler: attackers at several TCP peers use up their sign-in limits on
// someone's email and are told RATE_LIMITED with a retryAfter; the owner,
// from another peer, signs in; the attackers stay throttled; the owner's
// existing session answers me and refreshes throughout.
func TestStrangersCannotLockOutTheOwnerAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h, accounts := newHandler(t, db, account.Config{BcryptCost: 4})
		// Below the account's ceiling nothing is slowed.
		accounts.Sleep = func(context.Context, time.Duration) error {
			t.Error("a sign-in below the account's ceiling was slowed")
			return nil
		}
		ada := registerVia(t, h, "ada@example.com") // from 203.0.113.5
		refresh := ada.RefreshToken
		sessionWorks := func(step string) {
			t.Helper()
			if r := do(t, h, ada.AccessToken, `{ me { email } }`, nil); len(r.Errors) > 0 {
				t.Fatalf("%s: me with the owner's access token: %+v", step, r.Errors)
			}
			r := do(t, h, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { `+authFields+` } }`, map[string]any{"t": refresh})
			var p authPayload
			if len(r.Errors) > 0 || json.Unmarshal(r.Data["refreshSession"], &p) != nil {
				t.Fatalf("%s: refreshSession(owner's session) = %s %+v", step, r.Data["refreshSession"], r.Errors)
			}
			refresh = p.RefreshToken
		}
		attackers := []string{"198.51.100.1:1000", "198.51.100.2:2000", "[2001:db8:7::1]:3000"}
		limit := account.DefaultThrottlePolicy().AccountLimit

		t.Run("attackers use up their limits", func(t *testing.T) {
			for _, peer := range attackers {
				for i := range limit {
					r := doFrom(t, h, peer, nil, "", loginMutation, loginVars("ada@example.com", fmt.Sprintf("guess %d", i)))
					if r.code() != "UNAUTHENTICATED" {
						t.Fatalf("login guess %d from %s = %+v, want UNAUTHENTICATED", i+1, peer, r.Errors)
					}
				}
				r := doFrom(t, h, peer, nil, "", loginMutation, loginVars("ada@example.com", "one more"))
				if r.code() != "RATE_LIMITED" {
					t.Fatalf("login past the limit from %s = %+v, want RATE_LIMITED", peer, r.Errors)
				}
				e := r.Errors[0]
				if after, _ := e.Extensions["retryAfter"].(float64); after <= 0 || after > 15*60 ||
					!strings.Contains(e.Message, "for this account from your address; try again in") {
					t.Fatalf("login past the limit from %s = %+v, want a clear message and a retryAfter within 15 minutes", peer, e)
				}
			}
			sessionWorks("under attack")
		})
		t.Run("the owner signs in from another address", func(t *testing.T) {
			r := doFrom(t, h, "192.0.2.50:4000", nil, "", loginMutation, loginVars("ada@example.com", "correct horse"))
			if len(r.Errors) > 0 {
				t.Fatalf("login(owner) from 192.0.2.50 = %+v, want a session", r.Errors)
			}
			sessionWorks("after the owner's sign-in")
		})
		t.Run("the attackers stay throttled", func(t *testing.T) {
			for _, peer := range attackers {
				r := doFrom(t, h, peer, nil, "", loginMutation, loginVars("ada@example.com", "correct horse"))
				if r.code() != "RATE_LIMITED" {
					t.Fatalf("login from %s after the owner's sign-in = %+v, want RATE_LIMITED", peer, r.Errors)
				}
			}
			sessionWorks("after the attackers' last tries")
		})
	})
}
