package account

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// ThrottlePolicy limits failed sign-in attempts (and password checks of a
// signed-in user) and registrations.
//
// Sign-in counts every attempt under three keys, each with a window: a window
// starts at the first attempt after the previous one has run out; a window
// that ended over its limit doubles the next (up to MaxPenalty doublings), so
// a guesser who keeps trying waits 15 minutes, then 30, then an hour…; a
// window that ends within the limit forgives the doublings.
//
//   - one account from one client address: AccountLimit attempts, then
//     refused. This is the strict limit on guessing. It is keyed on the
//     address as well as the account because a limit on the account alone
//     let anyone lock its owner out with five wrong passwords.
//   - one client address, over all accounts: AddressLimit attempts, then
//     refused; one address spraying many accounts.
//   - one account, over all addresses: AccountCeiling attempts, then every
//     further attempt on the account waits Slowdown before its password is
//     checked, whoever makes it. Never refused: a refusal here would be the
//     lockout again, reachable by anyone with enough addresses.
//
// The trade-off of the ceiling: without a second factor the server cannot
// tell the owner's attempt from an attacker's, so it can either cap the
// guesses an account receives over all addresses (and then attackers can
// spend the cap and lock the owner out) or keep the owner able to sign in
// (and then a botnet's guesses are bounded only per address). This policy
// keeps the owner in: a botnet of N addresses gets at most AccountLimit
// guesses per address per window (fewer as windows double), each slowed
// once the ceiling is reached, while the owner, from an address of their
// own, is slowed by Slowdown and never refused. Slowed attempts are delayed
// after the throttle's unit of work has committed, and only attempts that
// passed the per-address limits wait, so the connections an address can
// hold waiting are bounded by those limits too.
type ThrottlePolicy struct {
	// AccountLimit is the number of sign-in attempts on one account from
	// one client address per window. Default 5.
	AccountLimit int
	// AddressLimit is the number of failed attempts per client address per
	// window, over all accounts; higher because many users may share one
	// address. Default 20.
	AddressLimit int
	// AccountCeiling is the number of failed attempts on one account from
	// all addresses per window past which every attempt on it is slowed by
	// Slowdown (not refused). Default 100.
	AccountCeiling int
	// Slowdown is how long an attempt on an account past its ceiling waits
	// before its password is checked. Default 5 seconds; it must stay well
	// below the server's write timeout (60 s).
	Slowdown time.Duration
	// Window is the base window. Default 15 minutes.
	Window time.Duration
	// RegisterLimit is the number of registrations per client address per
	// window: each costs a bcrypt hash, so unbounded registration would be
	// a way to burn the server's CPU. Default 10.
	RegisterLimit int
	// MaxPenalty caps the doublings of the window. Default 5 (8 hours).
	MaxPenalty int
}

// DefaultThrottlePolicy returns the policy described on ThrottlePolicy.
func DefaultThrottlePolicy() ThrottlePolicy {
	return ThrottlePolicy{
		AccountLimit: 5, AddressLimit: 20, AccountCeiling: 100, Slowdown: 5 * time.Second,
		RegisterLimit: 10, Window: 15 * time.Minute, MaxPenalty: 5,
	}
}

// withDefaults returns p with every zero field set from the default policy.
func (p ThrottlePolicy) withDefaults() ThrottlePolicy {
	d := DefaultThrottlePolicy()
	if p.AccountLimit <= 0 {
		p.AccountLimit = d.AccountLimit
	}
	if p.AddressLimit <= 0 {
		p.AddressLimit = d.AddressLimit
	}
	if p.AccountCeiling <= 0 {
		p.AccountCeiling = d.AccountCeiling
	}
	if p.Slowdown <= 0 {
		p.Slowdown = d.Slowdown
	}
	if p.RegisterLimit <= 0 {
		p.RegisterLimit = d.RegisterLimit
	}
	if p.Window <= 0 {
		p.Window = d.Window
	}
	if p.MaxPenalty <= 0 {
		p.MaxPenalty = d.MaxPenalty
	}
	return p
}

// throttleKey is one key with its limit and what passing it means.
type throttleKey struct {
	key   string
	limit int
	// refusal is what a refused client is told, before "try again in …".
	refusal string
	// slow makes an attempt past the limit wait rather than be refused.
	slow bool
	// reset makes a successful attempt forget the key altogether (its
	// failures and doublings) rather than only take back its own attempt.
	reset bool
}

const (
	pairRefusal     = "too many failed sign-in attempts for this account from your address"
	addressRefusal  = "too many failed sign-in attempts from your address"
	registerRefusal = "too many registrations from this address"
)

// registerKeys returns the throttle key of a registration from address, or
// none when the address is unknown (a call from inside the server).
func (p ThrottlePolicy) registerKeys(address string) []throttleKey {
	if address == "" {
		return nil
	}
	return []throttleKey{{key: "register:" + address, limit: p.RegisterLimit, refusal: registerRefusal}}
}

// keysFor returns the throttle keys of an attempt on email from address,
// sorted so that concurrent transactions lock them in the same order. An
// unknown address (a call from inside the server) keeps the strict key, under
// the empty address, so such calls are still limited per account.
//
// The strict key names the address first: a LimitKey holds no space, so
// "address:A account:E" splits one way only, whatever E holds.
func (p ThrottlePolicy) keysFor(email, address string) []throttleKey {
	email = strings.ToLower(email)
	keys := []throttleKey{
		{key: "address:" + address + " account:" + email, limit: p.AccountLimit, refusal: pairRefusal, reset: true},
		// "account:" held the old per-account limit; its rows carry over
		// as counts under the far higher ceiling.
		{key: "account:" + email, limit: p.AccountCeiling, slow: true},
	}
	if address != "" {
		keys = append(keys, throttleKey{key: "address:" + address, limit: p.AddressLimit, refusal: addressRefusal})
	}
	slices.SortFunc(keys, func(a, b throttleKey) int { return strings.Compare(a.key, b.key) })
	return keys
}

func (p ThrottlePolicy) window(penalty int) time.Duration {
	return p.Window << min(penalty, p.MaxPenalty)
}

// admit counts an attempt against every key, in tx, before any password is
// checked: the attempt is presumed to fail until forgive says otherwise, so
// concurrent attempts (say, one query aliasing login fifty times) are all
// counted. When a key that refuses is over its limit it returns the
// ERATELIMIT error to give the client as refusal, with a nil err so that the
// caller commits the bookkeeping of the refusal; a refused attempt counts
// against no key. When a slow key is over its limit the attempt is admitted
// and counted, and delay is how long the caller waits — after committing,
// never holding the keys' locks — before checking the password.
func (p ThrottlePolicy) admit(ctx context.Context, tx *store.Tx, keys []throttleKey, now time.Time) (delay time.Duration, refusal, err error) {
	states := make([]store.Throttle, len(keys))
	for i, k := range keys {
		t, err := tx.LockThrottle(ctx, k.key)
		if err != nil {
			return 0, nil, err
		}
		if !t.WindowStart.IsZero() && !now.Before(t.WindowStart.Add(p.window(t.Penalty))) {
			// The window has run out: start a new one, longer if the
			// last one ended over the limit.
			if t.Failures > k.limit {
				t.Penalty = min(t.Penalty+1, p.MaxPenalty)
			} else {
				t.Penalty = 0
			}
			t.Failures, t.WindowStart = 0, time.Time{}
		}
		switch {
		case t.Failures >= k.limit && k.slow:
			// Counted below like any admitted attempt, so Failures
			// passes the limit and the next window doubles.
			delay = p.Slowdown
		case t.Failures >= k.limit:
			// Remember that this window was exceeded, so the next one doubles.
			if t.Failures == k.limit {
				t.Failures++
				if err := tx.SaveThrottle(ctx, t); err != nil {
					return 0, nil, err
				}
			}
			wait := t.WindowStart.Add(p.window(t.Penalty)).Sub(now)
			return 0, &obsqra.Error{
				Code:              obsqra.ERATELIMIT,
				Message:           k.refusal + "; try again in " + roundUp(wait).String(),
				RetryAfterSeconds: int(roundUp(wait) / time.Second),
			}, nil
		}
		states[i] = t
	}
	for _, t := range states {
		if t.WindowStart.IsZero() {
			t.WindowStart = now
		}
		t.Failures++
		if err := tx.SaveThrottle(ctx, t); err != nil {
			return 0, nil, err
		}
	}
	return delay, nil, nil
}

// forgive undoes the presumed failure of a successful attempt: the strict
// key of this account from this address starts afresh, and the address and
// the account each get this attempt back. Nothing else is forgiven: the
// strict keys of other addresses (an attacker's) stay as they are, and the
// account's count keeps the other addresses' failures, so the owner signing
// in neither frees the attackers nor lifts the slowdown they caused.
func (p ThrottlePolicy) forgive(ctx context.Context, tx *store.Tx, keys []throttleKey) error {
	for _, k := range keys {
		if k.reset {
			if err := tx.DeleteThrottle(ctx, k.key); err != nil {
				return err
			}
			continue
		}
		t, err := tx.LockThrottle(ctx, k.key)
		if err != nil {
			return err
		}
		if t.Failures > 0 {
			t.Failures--
			if err := tx.SaveThrottle(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return d.Round(time.Second)
}
