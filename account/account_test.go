package account_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// sleeper stands in for Service.Sleep: it records each wait and moves the
// clock on by it, so that tests see the slowdown without waiting.
type sleeper struct {
	mu    sync.Mutex
	clock *obsqratest.Clock
	slept []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	s.slept = append(s.slept, d)
	s.mu.Unlock()
	s.clock.Advance(d)
	return nil
}

// take returns the waits recorded since the last call, and forgets them.
func (s *sleeper) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	slept := s.slept
	s.slept = nil
	return slept
}

type testBundle struct {
	db    *store.DB
	clock *obsqratest.Clock
	sleep *sleeper
}

func setup(t *testing.T, db *store.DB) (*account.Service, *testBundle) {
	t.Helper()
	return setupWith(t, db, account.ThrottlePolicy{})
}

// setupWith is setup with a throttle policy (zero fields take the defaults).
func setupWith(t *testing.T, db *store.DB, policy account.ThrottlePolicy) (*account.Service, *testBundle) {
	t.Helper()
	clk := obsqratest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	db.Now = clk.Now
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tokens.Now = clk.Now
	svc, err := account.New(db, account.Config{
		Tokens:      tokens,
		RefreshTTL:  30 * 24 * time.Hour,
		BcryptCost:  4,
		AdminEmails: []string{"Boss@Example.com"},
		Throttle:    policy,
	})
	if err != nil {
		t.Fatal(err)
	}
	svc.Now = clk.Now
	sl := &sleeper{clock: clk}
	svc.Sleep = sl.Sleep
	return svc, &testBundle{db: db, clock: clk, sleep: sl}
}

// as returns a context signed in with the access token, as the server's
// middleware would make it.
func as(t *testing.T, svc *account.Service, accessToken string) context.Context {
	t.Helper()
	ctx := obsqra.NewContextWithClient(context.Background(), &obsqra.Client{Address: "192.0.2.1"})
	p, err := svc.Authenticate(ctx, accessToken)
	if err != nil {
		return obsqra.NewContextWithAuthError(ctx, err)
	}
	return obsqra.NewContextWithPrincipal(ctx, p)
}

func from(addr string) context.Context {
	return obsqra.NewContextWithClient(context.Background(), &obsqra.Client{Address: addr})
}

func register(t *testing.T, svc *account.Service, email string) *obsqra.AuthPayload {
	t.Helper()
	p, err := svc.Register(from("192.0.2.1"), account.RegisterInput{Email: email, Password: "correct horse", FullName: "Ada Lovelace"})
	if err != nil {
		t.Fatalf("Register(%q) error: %v", email, err)
	}
	if !p.SignedIn() {
		t.Fatalf("Register(%q) signed nobody in", email)
	}
	return p.Auth
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := obsqra.ErrorCode(err); got != code {
		t.Fatalf("%s error = %v (code %q), want code %q", what, err, got, code)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		p := register(t, svc, "  Ada@Example.com ")
		if p.User.Email != "Ada@Example.com" || p.User.Role != obsqra.RoleUser || !p.User.Active || p.TokenType != "Bearer" || p.ExpiresIn != 1800 {
			t.Fatalf("Register() = %+v, user %+v", p, p.User)
		}
		if p.User.Preferences != obsqra.DefaultPreferences() {
			t.Fatalf("new user preferences = %+v, want defaults", p.User.Preferences)
		}
		_, err := svc.Register(context.Background(), account.RegisterInput{Email: "ada@EXAMPLE.com", Password: "another pass", FullName: "X"})
		wantCode(t, "Register(same email, other case)", err, obsqra.ECONFLICT)

		boss := register(t, svc, "boss@example.com")
		if boss.User.Role != obsqra.RoleAdmin {
			t.Fatalf("Register(admin email).Role = %s, want ADMIN", boss.User.Role)
		}
		for _, in := range []account.RegisterInput{
			{Email: "not an email", Password: "correct horse", FullName: "X"},
			{Email: "Ada <x@example.com>", Password: "correct horse", FullName: "X"},
			{Email: "x@localhost", Password: "correct horse", FullName: "X"},
			{Email: "x@example.com", Password: "short", FullName: "X"},
			{Email: "x@example.com", Password: strings.Repeat("a", 73), FullName: "X"},
			{Email: "x@example.com", Password: "correct horse", FullName: strings.Repeat("é", account.MaxFullNameChars+1)},
		} {
			_, err := svc.Register(context.Background(), in)
			wantCode(t, "Register("+in.Email+")", err, obsqra.EINVALID)
		}
		// 72 bytes is bcrypt's limit and allowed; 73 is refused with a message.
		if _, err := svc.Register(context.Background(), account.RegisterInput{Email: "long@example.com", Password: strings.Repeat("é", 36), FullName: "X"}); err != nil {
			t.Fatalf("Register(72-byte password) error: %v", err)
		}
		_, err = svc.Register(context.Background(), account.RegisterInput{Email: "long2@example.com", Password: strings.Repeat("a", 73), FullName: "X"})
		if !strings.Contains(obsqra.ErrorMessage(err), "72 bytes") {
			t.Fatalf("Register(73-byte password) message = %q, want it to name the 72-byte limit", obsqra.ErrorMessage(err))
		}
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		register(t, svc, "ada@example.com")
		p, err := svc.Login(from("192.0.2.1"), "ADA@example.com ", "correct horse")
		if err != nil {
			t.Fatalf("Login() error: %v", err)
		}
		if me, _ := obsqra.Viewer(as(t, svc, p.AccessToken)); me == nil || me.Email != "ada@example.com" {
			t.Fatalf("Authenticate(login token) user = %v", me)
		}
		// The credentials end with the access token (the session lives longer).
		pr, err := svc.Authenticate(context.Background(), p.AccessToken)
		if want := svc.Now().Add(time.Duration(p.ExpiresIn) * time.Second); err != nil || !pr.ExpiresAt.Equal(want.Truncate(time.Second)) {
			t.Fatalf("Authenticate(login token) expires at %v (%v), want %v", pr.ExpiresAt, err, want)
		}
		_, wrongPw := svc.Login(from("192.0.2.1"), "ada@example.com", "wrong horse")
		_, noUser := svc.Login(from("192.0.2.1"), "nobody@example.com", "correct horse")
		wantCode(t, "Login(wrong password)", wrongPw, obsqra.EUNAUTHENTICATED)
		wantCode(t, "Login(unknown email)", noUser, obsqra.EUNAUTHENTICATED)
		if wrongPw.Error() != noUser.Error() {
			t.Fatalf("Login errors differ: %q vs %q; they must not reveal whether the email exists", wrongPw, noUser)
		}
	})
}

// TestLoginThrottle checks the strict limit, on one account from one
// address: five failures, then refusal before the password is checked, with
// a retry-after; a window that ended over the limit doubles the next.
func TestLoginThrottle(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b := setup(t, db)
		register(t, svc, "ada@example.com")
		for i := range 5 {
			_, err := svc.Login(from("192.0.2.10"), "ada@example.com", "wrong horse")
			wantCode(t, fmt.Sprintf("Login(failure %d)", i+1), err, obsqra.EUNAUTHENTICATED)
		}
		// The sixth attempt from that address is refused before the
		// password is checked: even the right password does not get in.
		_, err := svc.Login(from("192.0.2.10"), "ADA@example.com", "correct horse")
		wantCode(t, "Login(6th attempt)", err, obsqra.ERATELIMIT)
		var e *obsqra.Error
		if !errors.As(err, &e) || e.RetryAfterSeconds <= 0 || e.RetryAfterSeconds > 15*60 {
			t.Fatalf("Login(6th attempt) = %#v, want a retry-after within 15 minutes", err)
		}
		if msg := obsqra.ErrorMessage(err); !strings.Contains(msg, "too many failed sign-in attempts for this account from your address; try again in ") {
			t.Fatalf("Login(6th attempt) message = %q, want it to say what is limited and when to try again", msg)
		}
		// Unknown emails are throttled the same way, so throttling does not
		// reveal which accounts exist.
		for range 5 {
			_, _ = svc.Login(from("192.0.2.12"), "ghost@example.com", "x")
		}
		_, err = svc.Login(from("192.0.2.12"), "ghost@example.com", "x")
		wantCode(t, "Login(unknown email, 6th)", err, obsqra.ERATELIMIT)

		// After the window the address may try again; it got in, so its
		// slate is clean.
		b.clock.Advance(15*time.Minute + time.Second)
		if _, err := svc.Login(from("192.0.2.10"), "ada@example.com", "correct horse"); err != nil {
			t.Fatalf("Login after the window: %v", err)
		}

		// Backoff: a window that ended over the limit doubles the next.
		for range 6 {
			_, _ = svc.Login(from("192.0.2.13"), "ada@example.com", "wrong")
		}
		b.clock.Advance(15*time.Minute + time.Second)
		for range 5 {
			_, _ = svc.Login(from("192.0.2.13"), "ada@example.com", "wrong")
		}
		_, err = svc.Login(from("192.0.2.13"), "ada@example.com", "correct horse")
		wantCode(t, "Login(second lockout)", err, obsqra.ERATELIMIT)
		if !errors.As(err, &e) || e.RetryAfterSeconds <= 15*60 {
			t.Fatalf("second lockout retry-after = %d s, want more than 15 minutes", e.RetryAfterSeconds)
		}
		if slept := b.sleep.take(); len(slept) != 0 {
			t.Fatalf("sign-ins below the account's ceiling waited %v, want no wait", slept)
		}
	})
}

// TestStrangersCannotLockOutTheOwner is issue 15, item 3: five wrong
// passwords for someone's email, from anywhere, used to lock its owner out.
// Now attackers from several addresses each use up their own limit, and
// stay throttled, while the owner, from another address, signs in, and the
// owner's existing session works throughout.
func TestStrangersCannotLockOutTheOwner(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b := setup(t, db)
		ctx := context.Background()
		ada := register(t, svc, "ada@example.com")
		session := ada.RefreshToken
		// sessionWorks checks that the owner's session still authenticates
		// and refreshes (rotating its refresh token).
		sessionWorks := func(step string) {
			t.Helper()
			if _, err := svc.Authenticate(ctx, ada.AccessToken); err != nil {
				t.Fatalf("%s: Authenticate(owner's session) error: %v", step, err)
			}
			p, err := svc.Refresh(ctx, session)
			if err != nil {
				t.Fatalf("%s: Refresh(owner's session) error: %v", step, err)
			}
			session = p.RefreshToken
			if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
				t.Fatalf("%s: Authenticate(refreshed access token) error: %v", step, err)
			}
		}
		// 2001:db8:1::1 and 2001:db8:1::2 are one /64: one attacker.
		attackers := []string{"198.51.100.1", "198.51.100.2", "2001:db8:1::1", "203.0.113.77"}
		limit := account.DefaultThrottlePolicy().AccountLimit

		t.Run("attackers use up their limits", func(t *testing.T) {
			for _, a := range attackers {
				for i := range limit {
					_, err := svc.Login(from(a), "ada@example.com", fmt.Sprintf("guess %d", i))
					wantCode(t, fmt.Sprintf("Login(guess %d from %s)", i+1, a), err, obsqra.EUNAUTHENTICATED)
				}
				_, err := svc.Login(from(a), "ada@example.com", "one more guess")
				wantCode(t, "Login(one past the limit from "+a+")", err, obsqra.ERATELIMIT)
			}
			_, err := svc.Login(from("2001:db8:1::2"), "ada@example.com", "guess")
			wantCode(t, "Login(from the same /64)", err, obsqra.ERATELIMIT)
			sessionWorks("under attack")
		})
		t.Run("the owner signs in from another address", func(t *testing.T) {
			p, err := svc.Login(from("192.0.2.50"), "ada@example.com", "correct horse")
			if err != nil {
				t.Fatalf("Login(owner) error: %v, want a session", err)
			}
			if _, err := svc.Authenticate(ctx, p.AccessToken); err != nil {
				t.Fatalf("Authenticate(owner's new session) error: %v", err)
			}
			sessionWorks("after the owner's sign-in")
		})
		t.Run("the attackers stay throttled", func(t *testing.T) {
			for _, a := range attackers {
				// Even guessing right does not get through.
				_, err := svc.Login(from(a), "ada@example.com", "correct horse")
				wantCode(t, "Login(from "+a+" after the owner's sign-in)", err, obsqra.ERATELIMIT)
			}
			sessionWorks("after the attackers' last tries")
		})
		t.Run("a signed-in attacker's guesses count against the same limit", func(t *testing.T) {
			// The owner's session used from an attacker's address (a stolen
			// token): checking the password there is refused too.
			mctx := obsqra.NewContextWithClient(ctx, &obsqra.Client{Address: attackers[0]})
			p, err := svc.Authenticate(mctx, ada.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			err = svc.DeactivateAccount(obsqra.NewContextWithPrincipal(mctx, p), "correct horse")
			wantCode(t, "DeactivateAccount(from an attacker's address)", err, obsqra.ERATELIMIT)
		})
		if slept := b.sleep.take(); len(slept) != 0 {
			t.Fatalf("attempts below the account's ceiling waited %v, want no wait", slept)
		}
	})
}

// TestLoginThrottleAccountCeiling checks the ceiling on one account over all
// addresses: past it every attempt waits Slowdown before its password is
// checked, the owner's included, but nobody is refused for it; the
// per-address limits still refuse, without waiting.
func TestLoginThrottleAccountCeiling(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		policy := account.ThrottlePolicy{AccountCeiling: 10, Slowdown: 3 * time.Second}
		svc, b := setupWith(t, db, policy)
		ctx := context.Background()
		ada := register(t, svc, "ada@example.com")
		limit := account.DefaultThrottlePolicy().AccountLimit
		noWait := func(step string) {
			t.Helper()
			if slept := b.sleep.take(); len(slept) != 0 {
				t.Fatalf("%s waited %v, want no wait", step, slept)
			}
		}
		waited := func(step string, n int) {
			t.Helper()
			slept := b.sleep.take()
			if len(slept) != n {
				t.Fatalf("%s waited %v, want %d waits of %s", step, slept, n, policy.Slowdown)
			}
			for _, d := range slept {
				if d != policy.Slowdown {
					t.Fatalf("%s waited %v, want %d waits of %s", step, slept, n, policy.Slowdown)
				}
			}
		}

		// Two addresses bring the account to its ceiling (2 × 5 = 10).
		for _, a := range []string{"198.51.100.1", "198.51.100.2"} {
			for range limit {
				_, err := svc.Login(from(a), "ada@example.com", "wrong horse")
				wantCode(t, "Login(up to the ceiling, from "+a+")", err, obsqra.EUNAUTHENTICATED)
			}
		}
		noWait("reaching the ceiling")

		// At the ceiling the owner is slowed, not refused.
		before := b.clock.Now()
		if _, err := svc.Login(from("192.0.2.50"), "ada@example.com", "correct horse"); err != nil {
			t.Fatalf("Login(owner, at the ceiling) error: %v, want a session", err)
		}
		waited("Login(owner, at the ceiling)", 1)
		if got := b.clock.Now().Sub(before); got != policy.Slowdown {
			t.Fatalf("Login(owner, at the ceiling) took %s, want %s", got, policy.Slowdown)
		}

		// Past it a new attacker is slowed too, for each attempt its own
		// limit allows, and then refused without waiting.
		for i := range limit {
			_, err := svc.Login(from("198.51.100.3"), "ada@example.com", "wrong horse")
			wantCode(t, fmt.Sprintf("Login(past the ceiling, guess %d)", i+1), err, obsqra.EUNAUTHENTICATED)
		}
		waited("guesses past the ceiling", limit)
		for _, a := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
			_, err := svc.Login(from(a), "ada@example.com", "correct horse")
			wantCode(t, "Login(past its limit, from "+a+")", err, obsqra.ERATELIMIT)
		}
		noWait("refused attempts")

		// Further past it, the owner is still slowed, not refused.
		if _, err := svc.Login(from("192.0.2.50"), "ada@example.com", "correct horse"); err != nil {
			t.Fatalf("Login(owner, past the ceiling) error: %v, want a session", err)
		}
		waited("Login(owner, past the ceiling)", 1)

		// The owner's session is never slowed: refresh and authentication
		// do not consult the sign-in throttle.
		if _, err := svc.Authenticate(ctx, ada.AccessToken); err != nil {
			t.Fatalf("Authenticate(owner's session) error: %v", err)
		}
		if _, err := svc.Refresh(ctx, ada.RefreshToken); err != nil {
			t.Fatalf("Refresh(owner's session) error: %v", err)
		}
		noWait("the owner's session")

		// A caller who leaves while waiting gets its context's error, and
		// no session.
		cctx, cancel := context.WithCancel(from("192.0.2.51"))
		defer cancel()
		svc.Sleep = func(ctx context.Context, d time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		p, err := svc.Login(cctx, "ada@example.com", "correct horse")
		if p != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("Login(cancelled while slowed) = %v, %v, want nil, context.Canceled", p, err)
		}
		svc.Sleep = b.sleep.Sleep

		// Once the window has run out the slowdown ends.
		b.clock.Advance(31 * time.Minute)
		if _, err := svc.Login(from("192.0.2.50"), "ada@example.com", "correct horse"); err != nil {
			t.Fatalf("Login(owner, after the window) error: %v", err)
		}
		noWait("Login(owner, after the window)")
	})
}

func TestLoginThrottlePerAddress(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		// One address spraying many accounts hits the address limit (20).
		for i := range 20 {
			_, err := svc.Login(from("198.51.100.7"), "user"+string(rune('a'+i))+"@example.com", "x")
			wantCode(t, "Login(spray)", err, obsqra.EUNAUTHENTICATED)
		}
		_, err := svc.Login(from("198.51.100.7"), "fresh@example.com", "x")
		wantCode(t, "Login(21st from one address)", err, obsqra.ERATELIMIT)
		// Another address is unaffected.
		_, err = svc.Login(from("198.51.100.8"), "fresh@example.com", "x")
		wantCode(t, "Login(other address)", err, obsqra.EUNAUTHENTICATED)
	})
}

// Concurrent attempts (as from one query aliasing login many times) are each
// counted: no more than the limit ever reach the password check.
func TestLoginThrottleConcurrent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		register(t, svc, "ada@example.com")
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		for range 30 {
			wg.Go(func() {
				_, err := svc.Login(from("192.0.2.20"), "ada@example.com", "wrong horse")
				mu.Lock()
				codes[obsqra.ErrorCode(err)]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[obsqra.EUNAUTHENTICATED] != 5 || codes[obsqra.ERATELIMIT] != 25 {
			t.Fatalf("30 concurrent failures gave %v, want 5 unauthenticated and 25 rate limited", codes)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b := setup(t, db)
		first := register(t, svc, "ada@example.com")
		b.clock.Advance(time.Minute)
		second, err := svc.Refresh(context.Background(), first.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh() error: %v", err)
		}
		if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
			t.Fatal("Refresh() returned the same tokens")
		}
		third, err := svc.Refresh(context.Background(), second.RefreshToken)
		if err != nil {
			t.Fatalf("Refresh(second) error: %v", err)
		}
		// Replaying a rotated token revokes the whole family, access
		// tokens included.
		_, err = svc.Refresh(context.Background(), first.RefreshToken)
		wantCode(t, "Refresh(reused token)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.Refresh(context.Background(), third.RefreshToken)
		wantCode(t, "Refresh(latest token after reuse)", err, obsqra.EUNAUTHENTICATED)
		for _, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
			_, err := svc.Authenticate(context.Background(), tok)
			wantCode(t, "Authenticate(token of revoked family)", err, obsqra.EUNAUTHENTICATED)
		}
		// Another session of the same user is untouched.
		other, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Authenticate(context.Background(), other.AccessToken); err != nil {
			t.Fatalf("Authenticate(other session) error: %v", err)
		}
		for _, bad := range []string{"", "garbage", other.AccessToken, "ort_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
			_, err := svc.Refresh(context.Background(), bad)
			wantCode(t, "Refresh("+bad+")", err, obsqra.EUNAUTHENTICATED)
		}
		// An expired refresh token is refused.
		b.clock.Advance(31 * 24 * time.Hour)
		_, err = svc.Refresh(context.Background(), other.RefreshToken)
		wantCode(t, "Refresh(expired)", err, obsqra.EUNAUTHENTICATED)
	})
}

func TestConcurrentRefreshOneWins(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		p := register(t, svc, "ada@example.com")
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { _, errs[i] = svc.Refresh(context.Background(), p.RefreshToken) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			}
		}
		if ok > 1 {
			t.Fatalf("%d concurrent refreshes of one token succeeded, want at most 1", ok)
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		a := register(t, svc, "ada@example.com")
		if err := svc.Logout(context.Background(), a.RefreshToken); err != nil {
			t.Fatalf("Logout(refresh) error: %v", err)
		}
		if err := svc.Logout(context.Background(), a.RefreshToken); err != nil {
			t.Fatalf("Logout(again) error: %v, want success", err)
		}
		_, err := svc.Authenticate(context.Background(), a.AccessToken)
		wantCode(t, "Authenticate(after logout)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.Refresh(context.Background(), a.RefreshToken)
		wantCode(t, "Refresh(after logout)", err, obsqra.EUNAUTHENTICATED)

		b, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.Logout(as(t, svc, b.AccessToken), ""); err != nil {
			t.Fatalf("Logout(current session) error: %v", err)
		}
		_, err = svc.Authenticate(context.Background(), b.AccessToken)
		wantCode(t, "Authenticate(after logout of current session)", err, obsqra.EUNAUTHENTICATED)
		wantCode(t, "Logout(anonymous)", svc.Logout(context.Background(), ""), obsqra.EUNAUTHENTICATED)
		wantCode(t, "Logout(unknown token)", svc.Logout(context.Background(), "ort_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), obsqra.EUNAUTHENTICATED)
	})
}

func TestPreferences(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		a := register(t, svc, "ada@example.com")
		ctx := as(t, svc, a.AccessToken)
		high, bps := obsqra.RiskHigh, 7000
		u, err := svc.UpdatePreferences(ctx, obsqra.PreferencesPatch{RiskTolerance: &high, MaxSingleBps: &bps})
		if err != nil {
			t.Fatalf("UpdatePreferences() error: %v", err)
		}
		want := obsqra.DefaultPreferences()
		want.RiskTolerance, want.MaxSingleBps = obsqra.RiskHigh, 7000
		if u.Preferences != want {
			t.Fatalf("UpdatePreferences() = %+v, want %+v", u.Preferences, want)
		}
		if got, _ := db.UserByID(context.Background(), u.ID); got.Preferences != want {
			t.Fatalf("stored preferences = %+v, want %+v", got.Preferences, want)
		}
		for _, bad := range []obsqra.PreferencesPatch{
			{MaxSingleBps: ptr(10001)}, {MaxSingleBps: ptr(999)}, {RebalanceThresholdBps: ptr(-1)},
			{MinDiversification: ptr(0)}, {MinDiversification: ptr(11)}, {RiskTolerance: ptr(obsqra.RiskTolerance("EXTREME"))},
		} {
			_, err := svc.UpdatePreferences(ctx, bad)
			wantCode(t, "UpdatePreferences(out of range)", err, obsqra.EINVALID)
		}
		_, err = svc.UpdatePreferences(context.Background(), obsqra.PreferencesPatch{})
		wantCode(t, "UpdatePreferences(anonymous)", err, obsqra.EUNAUTHENTICATED)
	})
}

func ptr[T any](v T) *T { return &v }

func TestChangePasswordRevokesEverySession(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		a := register(t, svc, "ada@example.com")
		b, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		ctx := as(t, svc, a.AccessToken)
		wantCode(t, "ChangePassword(wrong current)", svc.ChangePassword(ctx, "wrong horse", "battery staple"), obsqra.EFORBIDDEN)
		wantCode(t, "ChangePassword(too short)", svc.ChangePassword(ctx, "correct horse", "short"), obsqra.EINVALID)
		if err := svc.ChangePassword(ctx, "correct horse", "battery staple"); err != nil {
			t.Fatalf("ChangePassword() error: %v", err)
		}
		for _, tok := range []string{a.AccessToken, b.AccessToken} {
			_, err := svc.Authenticate(context.Background(), tok)
			wantCode(t, "Authenticate(after password change)", err, obsqra.EUNAUTHENTICATED)
		}
		_, err = svc.Refresh(context.Background(), b.RefreshToken)
		wantCode(t, "Refresh(after password change)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		wantCode(t, "Login(old password)", err, obsqra.EUNAUTHENTICATED)
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "battery staple"); err != nil {
			t.Fatalf("Login(new password) error: %v", err)
		}
	})
}

func TestDeactivation(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		boss := register(t, svc, "boss@example.com")
		a := register(t, svc, "ada@example.com")
		adaID := a.User.ID

		_, err := svc.SetUserActive(as(t, svc, a.AccessToken), boss.User.ID, false)
		wantCode(t, "SetUserActive(by non-admin)", err, obsqra.EFORBIDDEN)
		_, err = svc.SetUserActive(as(t, svc, boss.AccessToken), boss.User.ID, false)
		wantCode(t, "SetUserActive(admin deactivates self)", err, obsqra.EINVALID)
		_, err = svc.SetUserActive(as(t, svc, boss.AccessToken), 99999, false)
		wantCode(t, "SetUserActive(unknown user)", err, obsqra.ENOTFOUND)

		u, err := svc.SetUserActive(as(t, svc, boss.AccessToken), adaID, false)
		if err != nil || u.Active {
			t.Fatalf("SetUserActive(false) = %+v, %v", u, err)
		}
		_, err = svc.Authenticate(context.Background(), a.AccessToken)
		wantCode(t, "Authenticate(deactivated user)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		wantCode(t, "Login(deactivated)", err, obsqra.EFORBIDDEN)
		_, err = svc.Refresh(context.Background(), a.RefreshToken)
		wantCode(t, "Refresh(deactivated)", err, obsqra.EUNAUTHENTICATED)

		if _, err := svc.SetUserActive(as(t, svc, boss.AccessToken), adaID, true); err != nil {
			t.Fatal(err)
		}
		c, err := svc.Login(from("192.0.2.1"), "ada@example.com", "correct horse")
		if err != nil {
			t.Fatalf("Login(reactivated) error: %v", err)
		}
		ctx := as(t, svc, c.AccessToken)
		wantCode(t, "DeactivateAccount(wrong password)", svc.DeactivateAccount(ctx, "nope nope"), obsqra.EFORBIDDEN)
		if err := svc.DeactivateAccount(ctx, "correct horse"); err != nil {
			t.Fatalf("DeactivateAccount() error: %v", err)
		}
		_, err = svc.Authenticate(context.Background(), c.AccessToken)
		wantCode(t, "Authenticate(after DeactivateAccount)", err, obsqra.EUNAUTHENTICATED)
	})
}

func TestPromoteAndNodeVisibility(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		a := register(t, svc, "ada@example.com")
		g := register(t, svc, "grace@example.com")
		if u, err := svc.User(as(t, svc, a.AccessToken), g.User.ID); err != nil || u != nil {
			t.Fatalf("User(other user) as non-admin = %v, %v; want nil, nil", u, err)
		}
		if u, err := svc.User(context.Background(), a.User.ID); err != nil || u != nil {
			t.Fatalf("User() anonymous = %v, %v; want nil, nil", u, err)
		}
		if u, err := svc.User(as(t, svc, a.AccessToken), a.User.ID); err != nil || u == nil {
			t.Fatalf("User(self) = %v, %v", u, err)
		}
		if _, err := svc.Promote(context.Background(), "ADA@example.com"); err != nil {
			t.Fatalf("Promote() error: %v", err)
		}
		if u, err := svc.User(as(t, svc, a.AccessToken), g.User.ID); err != nil || u == nil || u.ID != g.User.ID {
			t.Fatalf("User(other) as admin = %v, %v", u, err)
		}
		_, err := svc.Promote(context.Background(), "nobody@example.com")
		wantCode(t, "Promote(unknown)", err, obsqra.ENOTFOUND)
	})
}

func TestRegisterThrottlePerAddress(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b := setup(t, db)
		for i := range 10 {
			_, err := svc.Register(from("198.51.100.9"), account.RegisterInput{Email: fmt.Sprintf("u%d@example.com", i), Password: "correct horse", FullName: "U"})
			if err != nil {
				t.Fatalf("Register(#%d) error: %v", i+1, err)
			}
		}
		_, err := svc.Register(from("198.51.100.9"), account.RegisterInput{Email: "u10@example.com", Password: "correct horse", FullName: "U"})
		wantCode(t, "Register(11th from one address)", err, obsqra.ERATELIMIT)
		if !strings.Contains(obsqra.ErrorMessage(err), "registrations") {
			t.Fatalf("Register(11th) message = %q, want it to speak of registrations", obsqra.ErrorMessage(err))
		}
		if _, err := svc.Register(from("198.51.100.10"), account.RegisterInput{Email: "v@example.com", Password: "correct horse", FullName: "V"}); err != nil {
			t.Fatalf("Register(other address) error: %v", err)
		}
		b.clock.Advance(16 * time.Minute)
		if _, err := svc.Register(from("198.51.100.9"), account.RegisterInput{Email: "u10@example.com", Password: "correct horse", FullName: "U"}); err != nil {
			t.Fatalf("Register(after the window) error: %v", err)
		}
	})
}

// TestEveryEndOfASessionIsPublished checks that each way a session ends, and
// a change of role, appends an account.changed event for the user: the
// servers close the sockets the sessions signed in when they hear it.
func TestEveryEndOfASessionIsPublished(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, b := setup(t, db)
		ctx := context.Background()
		ada := register(t, svc, "ada@example.com")
		boss := register(t, svc, "boss@example.com")
		var last int64
		// want runs step and checks that it published exactly reason for
		// user (and nothing else about accounts).
		want := func(name string, user int64, reason string, step func() error) {
			t.Helper()
			if err := step(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			events, err := b.db.EventsAfter(ctx, last, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []obsqra.AccountChange
			for _, e := range events {
				last = e.ID
				if e.Topic != obsqra.TopicAccountChanged {
					continue
				}
				var c obsqra.AccountChange
				if err := json.Unmarshal(e.Payload, &c); err != nil || e.OwnerID != c.UserID {
					t.Fatalf("%s: event %s owned by %d (%v)", name, e.Payload, e.OwnerID, err)
				}
				if c.Reason == obsqra.AccountUpdated {
					continue // the user's row changed too (a password, the standing)
				}
				got = append(got, c)
			}
			if wantC := (obsqra.AccountChange{UserID: user, Reason: reason}); len(got) != 1 || got[0] != wantC {
				t.Fatalf("%s published %+v, want [%+v]", name, got, wantC)
			}
		}
		want("logout by refresh token", ada.User.ID, obsqra.RevokeLogout, func() error {
			return svc.Logout(ctx, ada.RefreshToken)
		})
		second := login(t, svc, "ada@example.com")
		want("logout of the signed-in session", ada.User.ID, obsqra.RevokeLogout, func() error {
			return svc.Logout(as(t, svc, second.AccessToken), "")
		})
		third := login(t, svc, "ada@example.com")
		if _, err := svc.Refresh(ctx, third.RefreshToken); err != nil {
			t.Fatal(err)
		}
		want("reuse of a refresh token", ada.User.ID, obsqra.RevokeReuse, func() error {
			_, err := svc.Refresh(ctx, third.RefreshToken)
			wantCode(t, "Refresh(reused)", err, obsqra.EUNAUTHENTICATED)
			return nil
		})
		fourth := login(t, svc, "ada@example.com")
		want("password change", ada.User.ID, obsqra.RevokePasswordChanged, func() error {
			return svc.ChangePassword(as(t, svc, fourth.AccessToken), "correct horse", "battery staple")
		})
		if _, err := svc.Login(from("192.0.2.1"), "ada@example.com", "battery staple"); err != nil {
			t.Fatal(err)
		}
		want("deactivation by an admin", ada.User.ID, obsqra.RevokeDeactivated, func() error {
			_, err := svc.SetUserActive(as(t, svc, boss.AccessToken), ada.User.ID, false)
			return err
		})
		if _, err := svc.SetUserActive(as(t, svc, boss.AccessToken), ada.User.ID, true); err != nil {
			t.Fatal(err)
		}
		sixth, err := svc.Login(from("192.0.2.1"), "ada@example.com", "battery staple")
		if err != nil {
			t.Fatal(err)
		}
		want("deactivation by the user", ada.User.ID, obsqra.RevokeDeactivated, func() error {
			return svc.DeactivateAccount(as(t, svc, sixth.AccessToken), "battery staple")
		})
		want("promotion", boss.User.ID, obsqra.AccountRoleChanged, func() error {
			// Already an admin: a promotion that changes nothing says nothing,
			// so demote first through the store, then promote.
			if err := b.db.WithTx(ctx, func(tx *store.Tx) error {
				u, err := tx.UserByID(ctx, boss.User.ID)
				if err != nil {
					return err
				}
				u.Role = obsqra.RoleUser
				return tx.UpdateUser(ctx, u)
			}); err != nil {
				return err
			}
			_, err := svc.Promote(ctx, "boss@example.com")
			return err
		})
	})
}

func login(t *testing.T, svc *account.Service, email string) *obsqra.AuthPayload {
	t.Helper()
	p, err := svc.Login(from("192.0.2.1"), email, "correct horse")
	if err != nil {
		t.Fatalf("Login(%q) error: %v", email, err)
	}
	return p
}

// TestUsers: only admins list users, and the page's bounds are checked
// before the database is asked.
func TestUsers(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		svc, _ := setup(t, db)
		boss := register(t, svc, "boss@example.com")
		ada := register(t, svc, "ada@example.com")
		register(t, svc, "a%da@example.com")
		asBoss := as(t, svc, boss.AccessToken)

		_, err := svc.Users(from("192.0.2.1"), obsqra.UserFilter{}, 20, 0)
		wantCode(t, "Users(anonymous)", err, obsqra.EUNAUTHENTICATED)
		_, err = svc.Users(as(t, svc, ada.AccessToken), obsqra.UserFilter{}, 20, 0)
		wantCode(t, "Users(not an admin)", err, obsqra.EFORBIDDEN)

		for _, first := range []int{0, account.MaxFirst + 1} {
			_, err = svc.Users(asBoss, obsqra.UserFilter{}, first, 0)
			wantCode(t, fmt.Sprintf("Users(first %d)", first), err, obsqra.EINVALID)
		}
		role := obsqra.Role("ROOT")
		_, err = svc.Users(asBoss, obsqra.UserFilter{Role: &role}, 20, 0)
		wantCode(t, "Users(role ROOT)", err, obsqra.EINVALID)
		long := strings.Repeat("a", account.MaxEmailBytes+1)
		_, err = svc.Users(asBoss, obsqra.UserFilter{EmailPrefix: &long}, 20, 0)
		wantCode(t, "Users(prefix longer than an email)", err, obsqra.EINVALID)
		_, err = svc.Users(asBoss, obsqra.UserFilter{}, 20, -1)
		wantCode(t, "Users(after -1)", err, obsqra.EINVALID)

		// first+1 rows: the caller learns that there is a next page.
		for _, tt := range []struct{ first, want int }{{1, 2}, {2, 3}, {3, 3}, {account.MaxFirst, 3}} {
			got, err := svc.Users(asBoss, obsqra.UserFilter{}, tt.first, 0)
			if err != nil || len(got) != tt.want {
				t.Errorf("Users(first %d) = %d users, %v, want %d", tt.first, len(got), err, tt.want)
			}
		}
		prefix := "A%"
		got, err := svc.Users(asBoss, obsqra.UserFilter{EmailPrefix: &prefix}, 20, 0)
		if err != nil || len(got) != 1 || got[0].Email != "a%da@example.com" {
			t.Errorf("Users(prefix %q) = %+v, %v, want a%%da@example.com alone", prefix, got, err)
		}
	})
}
