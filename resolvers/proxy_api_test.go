package resolvers_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// proxyPeer is the TCP peer of every request that comes through the
// reverse proxy in these tests.
const proxyPeer = "10.0.0.1:4711"

// behindProxy trusts the proxy at 10.0.0.1, as TRUSTED_PROXIES=10.0.0.1
// does.
func behindProxy(cfg *server.Config) {
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
}

const loginMutation = `mutation($in: LoginInput!) { login(input: $in) { accessToken } }`

func loginVars(email, password string) map[string]any {
	return map[string]any{"in": map[string]any{"email": email, "password": password}}
}

func registerVars(email string) map[string]any {
	return map[string]any{"in": map[string]any{"email": email, "password": "correct horse", "fullName": "U"}}
}

const registerMutation = `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken } } }`

// TestSignInBehindTrustedProxy is the issue: behind a reverse proxy every
// request came from the proxy's address, so one client's failed sign-ins
// used up the address limit of everyone, and then a correct password for
// another account was refused, as were registrations. With the proxy
// trusted, each forwarded client has its own limit, and still has one.
func TestSignInBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h, _ := newHandler(t, db, account.Config{BcryptCost: 4}, behindProxy)
		limits := account.DefaultThrottlePolicy()
		attacker := []string{"X-Forwarded-For", "198.51.100.1", "X-Forwarded-Proto", "https"}
		ada := []string{"Forwarded", `for="[2001:db8::2]:4711";proto=https`}
		newcomer := []string{"X-Forwarded-For", "6.6.6.6, 198.51.100.3"}

		t.Run("ada registers through the proxy", func(t *testing.T) {
			if r := doFrom(t, h, proxyPeer, ada, "", registerMutation, registerVars("ada@example.com")); len(r.Errors) > 0 {
				t.Fatalf("register(ada) errors: %+v", r.Errors)
			}
		})
		t.Run("one client fails sign-ins up to the address limit", func(t *testing.T) {
			for i := range limits.AddressLimit {
				r := doFrom(t, h, proxyPeer, attacker, "", loginMutation, loginVars(fmt.Sprintf("guess%d@example.com", i), "x"))
				if r.code() != "UNAUTHENTICATED" {
					t.Fatalf("login #%d from 198.51.100.1 = %+v, want UNAUTHENTICATED", i+1, r.Errors)
				}
			}
			r := doFrom(t, h, proxyPeer, attacker, "", loginMutation, loginVars("one-more@example.com", "x"))
			if r.code() != "RATE_LIMITED" {
				t.Fatalf("login past the limit from 198.51.100.1 = %+v, want RATE_LIMITED", r.Errors)
			}
		})
		t.Run("another client signs in with the correct password", func(t *testing.T) {
			r := doFrom(t, h, proxyPeer, ada, "", loginMutation, loginVars("ada@example.com", "correct horse"))
			if len(r.Errors) > 0 {
				t.Fatalf("login(ada) from 2001:db8::2 errors: %+v, want a session", r.Errors)
			}
		})
		t.Run("one client registers up to the registration limit", func(t *testing.T) {
			for i := range limits.RegisterLimit {
				if r := doFrom(t, h, proxyPeer, attacker, "", registerMutation, registerVars(fmt.Sprintf("bulk%d@example.com", i))); len(r.Errors) > 0 {
					t.Fatalf("register #%d from 198.51.100.1 errors: %+v", i+1, r.Errors)
				}
			}
			r := doFrom(t, h, proxyPeer, attacker, "", registerMutation, registerVars("bulk-more@example.com"))
			if r.code() != "RATE_LIMITED" {
				t.Fatalf("register past the limit from 198.51.100.1 = %+v, want RATE_LIMITED", r.Errors)
			}
		})
		t.Run("another client registers", func(t *testing.T) {
			if r := doFrom(t, h, proxyPeer, newcomer, "", registerMutation, registerVars("newcomer@example.com")); len(r.Errors) > 0 {
				t.Fatalf("register from 198.51.100.3 errors: %+v, want an account", r.Errors)
			}
		})
	})
}

// TestSpoofedForwardingKeepsTheLimit: a client that sends forwarding
// headers naming a new address with every attempt still has one address
// limit, when no proxy is trusted, when it reaches the server directly
// although a proxy is trusted, and when it sends the header that its
// trusted proxy does not maintain (and so passes through).
func TestSpoofedForwardingKeepsTheLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []func(*server.Config)
		peer string
		// spoof returns the headers of attempt i.
		spoof func(i int) []string
	}{
		{"no trusted proxies", nil, "203.0.113.5:4321", func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i), "Forwarded", fmt.Sprintf("for=192.0.2.%d", i)}
		}},
		{"around the trusted proxy", []func(*server.Config){behindProxy}, "203.0.113.5:4321", func(i int) []string {
			return []string{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i), "Forwarded", fmt.Sprintf("for=192.0.2.%d", i)}
		}},
		{"Forwarded through an X-Forwarded-For proxy", []func(*server.Config){behindProxy}, proxyPeer, func(i int) []string {
			// The proxy appended the client's real address to
			// X-Forwarded-For and passed its Forwarded header along.
			return []string{"Forwarded", fmt.Sprintf("for=192.0.2.%d", i), "X-Forwarded-For", fmt.Sprintf("198.51.100.%d, 203.0.113.5", i)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				h, _ := newHandler(t, db, account.Config{BcryptCost: 4}, tt.opts...)
				limit := account.DefaultThrottlePolicy().AddressLimit
				for i := range limit {
					r := doFrom(t, h, tt.peer, tt.spoof(i), "", loginMutation, loginVars(fmt.Sprintf("guess%d@example.com", i), "x"))
					if r.code() != "UNAUTHENTICATED" {
						t.Fatalf("login #%d = %+v, want UNAUTHENTICATED", i+1, r.Errors)
					}
				}
				r := doFrom(t, h, tt.peer, tt.spoof(limit), "", loginMutation, loginVars("one-more@example.com", "x"))
				if r.code() != "RATE_LIMITED" {
					t.Fatalf("login past the limit with a new spoofed address = %+v, want RATE_LIMITED", r.Errors)
				}
			})
		})
	}
}
