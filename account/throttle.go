package account

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// ThrottlePolicy limits failed sign-in attempts per key (an account, a
// client address). Within a window a key may try Limit times; a window
// starts at the first attempt after the previous one has run out. A window
// that ended over the limit doubles the next window (up to MaxPenalty
// doublings), so an attacker who keeps trying waits 15 minutes, then 30, then
// an hour…; a window that ends within the limit, or a successful sign-in,
// forgives everything.
type ThrottlePolicy struct {
	// AccountLimit is the number of attempts per account per window. Default 5.
	AccountLimit int
	// AddressLimit is the number of failed attempts per client address per
	// window; higher because many users may share one address. Default 20.
	AddressLimit int
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
	return ThrottlePolicy{AccountLimit: 5, AddressLimit: 20, RegisterLimit: 10, Window: 15 * time.Minute, MaxPenalty: 5}
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

// throttleKey is one key with its limit.
type throttleKey struct {
	key   string
	limit int
	// refusal is what a refused client is told, before "try again in …".
	refusal string
}

const (
	signInRefusal   = "too many failed sign-in attempts"
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
// sorted so that concurrent transactions lock them in the same order.
func (p ThrottlePolicy) keysFor(email, address string) []throttleKey {
	keys := []throttleKey{{key: "account:" + strings.ToLower(email), limit: p.AccountLimit, refusal: signInRefusal}}
	if address != "" {
		keys = append(keys, throttleKey{key: "address:" + address, limit: p.AddressLimit, refusal: signInRefusal})
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
// counted. When a key is over its limit it returns the ERATELIMIT error to
// give the client as refusal, with a nil err so that the caller commits the
// bookkeeping of the refusal.
func (p ThrottlePolicy) admit(ctx context.Context, tx *store.Tx, keys []throttleKey, now time.Time) (refusal, err error) {
	states := make([]store.Throttle, len(keys))
	for i, k := range keys {
		t, err := tx.LockThrottle(ctx, k.key)
		if err != nil {
			return nil, err
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
		if t.Failures >= k.limit {
			// Remember that this window was exceeded, so the next one doubles.
			if t.Failures == k.limit {
				t.Failures++
				if err := tx.SaveThrottle(ctx, t); err != nil {
					return nil, err
				}
			}
			wait := t.WindowStart.Add(p.window(t.Penalty)).Sub(now)
			return &obsqra.Error{
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
			return nil, err
		}
	}
	return nil, nil
}

// forgive undoes the presumed failure of a successful attempt: the account
// starts afresh, and the address gets its attempt back.
func (p ThrottlePolicy) forgive(ctx context.Context, tx *store.Tx, keys []throttleKey) error {
	for _, k := range keys {
		if strings.HasPrefix(k.key, "account:") {
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
