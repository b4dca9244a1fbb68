package rest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/ledger"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// protected are the routes that need a token, each with a request that
// succeeds for a signed-in user with data (body nil: none).
var protected = []struct {
	method, path string
	body         any
}{
	{http.MethodGet, "/api/v1/auth/me", nil},
	{http.MethodPost, "/api/v1/auth/wallet-challenge", map[string]any{"wallet_address": "0x1234"}},
	{http.MethodPost, "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0x1234", "signature": []string{"0x1", "0x2"}}},
	{http.MethodGet, "/api/v1/users/profile", nil},
	{http.MethodPut, "/api/v1/users/preferences", map[string]any{"risk_tolerance": "high"}},
	{http.MethodGet, "/api/v1/analytics/risk-history", nil},
	{http.MethodGet, "/api/v1/analytics/allocation-history", nil},
	{http.MethodGet, "/api/v1/analytics/dashboard", nil},
	{http.MethodGet, "/api/v1/predictions/risk-forecast", nil},
	{http.MethodGet, "/api/v1/predictions/yield-forecast", nil},
	{http.MethodGet, "/api/v1/predictions/rebalance-suggestions", nil},
	{http.MethodPost, "/api/v1/predictions/run-optimization", nil},
	{http.MethodPost, "/api/v1/transactions/", map[string]any{"tx_hash": "0x77", "tx_type": "deposit", "amount": 1, "token": "STRK"}},
	{http.MethodGet, "/api/v1/transactions/", nil},
	{http.MethodGet, "/api/v1/transactions/0x77", nil},
}

// withToken adds token to path's query.
func withToken(path, token string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "token=" + token
}

// TestTokens tries every protected route without a token, with a bad one,
// with one whose session ended, with a bearer header, and with both.
func TestTokens(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, envOptions{})
		e.ingestDays(t, 30)
		reg := e.do(t, http.MethodPost, "/api/v1/auth/register", map[string]any{"email": "ada@example.com", "password": "c0rrect-Horse-battery"})
		token := reg.object(t)["access_token"].(string)
		refresh := reg.object(t)["refresh_token"].(string)
		e.recordAllocation(t, e.signedIn(t, token), obsqra.ReasonUserInitiated, map[string]int{"nostra": 5000, "zklend": 5000}, nil)
		for _, p := range protected {
			t.Run(p.method+" "+p.path, func(t *testing.T) {
				if got := e.do(t, p.method, p.path, p.body).problems(t); !slices.Equal(got, []string{"query.token"}) {
					t.Fatalf("no token: problems %v, want [query.token]", got)
				}
				for _, bad := range []string{"garbage", token + "x", ""} {
					r := e.do(t, p.method, withToken(p.path, bad), p.body)
					if r.status != http.StatusUnauthorized || string(r.body) != `{"detail":"Unauthorized","code":"UNAUTHENTICATED"}` {
						t.Fatalf("token %q: %d %s, want 401 Unauthorized", bad, r.status, r.body)
					}
				}
				if r := e.do(t, p.method, p.path, p.body, "Authorization", "Basic "+token); r.status != http.StatusUnauthorized {
					t.Fatalf("Basic credentials: %d %s, want 401", r.status, r.body)
				}
				// The query wins over the header.
				if r := e.do(t, p.method, withToken(p.path, "garbage"), p.body, "Authorization", "Bearer "+token); r.status != http.StatusUnauthorized {
					t.Fatalf("bad query token with a good header: %d %s, want 401", r.status, r.body)
				}
				byHeader := e.do(t, p.method, p.path, p.body, "Authorization", "Bearer "+token)
				byQuery := e.do(t, p.method, withToken(p.path, token), p.body)
				if byHeader.status == http.StatusUnauthorized || byHeader.status == http.StatusUnprocessableEntity && byHeader.problems(t)[0] == "query.token" {
					t.Fatalf("bearer header: %d %s", byHeader.status, byHeader.body)
				}
				if byQuery.status != byHeader.status {
					t.Fatalf("query token: %d %s; bearer header: %d %s", byQuery.status, byQuery.body, byHeader.status, byHeader.body)
				}
			})
		}
		// A session that ended takes its access tokens with it.
		if r := e.do(t, http.MethodPost, "/api/v1/auth/logout", map[string]any{"refresh_token": refresh}); r.status != http.StatusOK {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		if r := e.do(t, http.MethodGet, withToken("/api/v1/auth/me", token), nil); r.status != http.StatusUnauthorized {
			t.Fatalf("after logout: %d %s, want 401", r.status, r.body)
		}
	})
}

// TestAccountRoutes covers registration (with and without verification
// required), login, refresh and the profile.
func TestAccountRoutes(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, envOptions{})
		reg := e.do(t, http.MethodPost, "/api/v1/auth/register", map[string]any{"email": "Ada@Example.com", "password": "c0rrect-Horse-battery"})
		if reg.status != http.StatusOK {
			t.Fatalf("register without full_name: %d %s", reg.status, reg.body)
		}
		m := reg.object(t)
		if m["token_type"] != "bearer" || m["expires_in"] != json.Number("1800") || m["user"].(map[string]any)["full_name"] != "" {
			t.Fatalf("register answer %s", reg.body)
		}
		again := e.do(t, http.MethodPost, "/api/v1/auth/register", map[string]any{"email": "Ada@Example.com", "password": "another-password", "full_name": "A"})
		if again.status != http.StatusBadRequest || string(again.body) != `{"detail":"Email already registered","code":"CONFLICT"}` {
			t.Fatalf("register again: %d %s", again.status, again.body)
		}
		login := e.do(t, http.MethodPost, "/api/v1/auth/login", map[string]any{"email": "Ada@Example.com", "password": "c0rrect-Horse-battery"})
		if login.status != http.StatusOK {
			t.Fatalf("login: %d %s", login.status, login.body)
		}
		for _, pw := range []string{"wrong-password-1", ""} {
			if r := e.do(t, http.MethodPost, "/api/v1/auth/login", map[string]any{"email": "Ada@Example.com", "password": pw}); r.status != http.StatusUnauthorized ||
				string(r.body) != `{"detail":"Invalid credentials","code":"UNAUTHENTICATED"}` {
				t.Fatalf("login with %q: %d %s", pw, r.status, r.body)
			}
		}
		if r := e.do(t, http.MethodPost, "/api/v1/auth/login", map[string]any{"email": "nobody@example.com", "password": "c0rrect-Horse-battery"}); r.status != http.StatusUnauthorized {
			t.Fatalf("login of an unknown email: %d %s", r.status, r.body)
		}
		refresh := login.object(t)["refresh_token"].(string)
		r := e.do(t, http.MethodPost, "/api/v1/auth/refresh", map[string]any{"refresh_token": refresh})
		if r.status != http.StatusOK {
			t.Fatalf("refresh: %d %s", r.status, r.body)
		}
		// A refresh token works once; the second time ends the session.
		if r2 := e.do(t, http.MethodPost, "/api/v1/auth/refresh", map[string]any{"refresh_token": refresh}); r2.status != http.StatusUnauthorized {
			t.Fatalf("refresh again: %d %s", r2.status, r2.body)
		}
		if me := e.do(t, http.MethodGet, withToken("/api/v1/auth/me", r.object(t)["access_token"].(string)), nil); me.status != http.StatusUnauthorized {
			t.Fatalf("me after a replayed refresh: %d %s", me.status, me.body)
		}

		token := e.register(t, "bob@example.com")
		put := e.do(t, http.MethodPut, withToken("/api/v1/users/preferences", token), map[string]any{
			"risk_tolerance": "HIGH", "auto_rebalance_enabled": "true", "rebalance_threshold": "2.5", "email_alerts_enabled": 0, "max_single_bps": 7000})
		if put.status != http.StatusOK || string(put.body) != `{"message":"Preferences updated"}` {
			t.Fatalf("preferences: %d %s", put.status, put.body)
		}
		// {} changes nothing.
		if r := e.do(t, http.MethodPut, withToken("/api/v1/users/preferences", token), map[string]any{}); r.status != http.StatusOK {
			t.Fatalf("preferences {}: %d %s", r.status, r.body)
		}
		prof := e.do(t, http.MethodGet, withToken("/api/v1/users/profile", token), nil)
		want := `"preferences":{"risk_tolerance":"high","auto_rebalance_enabled":true,"rebalance_threshold":2.5,"email_alerts_enabled":false,` +
			`"max_single_bps":7000,"min_diversification":2,"max_volatility_bps":1000000,"max_liquidity_tier":3}`
		if !strings.Contains(string(prof.body), want) {
			t.Fatalf("profile %s, want %s", prof.body, want)
		}
	})
}

// TestRegisterRevealsNoMore: with verification required, a new and a taken
// email get the same answer, as over GraphQL.
func TestRegisterRevealsNoMore(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, envOptions{accounts: func(c *account.Config) {
			c.RequireEmailVerification = true
			c.PublicAppURL = "https://app.example.com"
		}})
		var bodies []string
		for _, email := range []string{"ada@example.com", "ada@example.com", "grace@example.com"} {
			r := e.do(t, http.MethodPost, "/api/v1/auth/register", map[string]any{"email": email, "password": "c0rrect-Horse-battery"})
			if r.status != http.StatusOK {
				t.Fatalf("register %s: %d %s", email, r.status, r.body)
			}
			bodies = append(bodies, string(r.body))
		}
		if bodies[0] != bodies[1] || bodies[1] != bodies[2] || strings.Contains(bodies[0], "token") {
			t.Fatalf("answers differ or carry tokens: %q", bodies)
		}
	})
}

// TestOthersData: a user sees only their own rows, through every route
// that reads a user's data.
func TestOthersData(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, envOptions{})
		e.ingestDays(t, 30)
		alice, bob := e.register(t, "alice@example.com"), e.register(t, "bob@example.com")
		hash := "0x" + strings.Repeat("0", 60) + "abcd"
		if r := e.do(t, http.MethodPost, withToken("/api/v1/transactions/", alice), map[string]any{
			"tx_hash": hash, "tx_type": "deposit", "amount": "12.5", "details": map[string]any{"asset": "USDC"}}); r.status != http.StatusOK {
			t.Fatalf("alice logs: %d %s", r.status, r.body)
		}
		e.recordAllocation(t, e.signedIn(t, alice), obsqra.ReasonUserInitiated, map[string]int{"nostra": 6000, "zklend": 4000}, nil)
		if r := e.do(t, http.MethodGet, withToken("/api/v1/predictions/rebalance-suggestions", alice), nil); r.status != http.StatusOK || r.body[0] != '[' || len(r.json(t).([]any)) == 0 {
			t.Fatalf("alice's suggestions: %d %s", r.status, r.body)
		}
		for path, want := range map[string]string{
			"/api/v1/transactions/" + hash:              `{"detail":"Transaction not found","code":"NOT_FOUND"}`,
			"/api/v1/transactions/":                     `[]`,
			"/api/v1/analytics/allocation-history":      `[]`,
			"/api/v1/predictions/rebalance-suggestions": `[]`,
		} {
			if r := e.do(t, http.MethodGet, withToken(path, bob), nil); string(r.body) != want {
				t.Fatalf("bob GET %s: %d %s, want %s", path, r.status, r.body, want)
			}
		}
		if r := e.do(t, http.MethodGet, withToken("/api/v1/analytics/dashboard", bob), nil); !strings.HasPrefix(string(r.body), `{"latest_allocation":null,`) {
			t.Fatalf("bob's dashboard: %s", r.body)
		}
		// Bob cannot log alice's hash, and learns only that it is taken.
		r := e.do(t, http.MethodPost, withToken("/api/v1/transactions/", bob), map[string]any{"tx_hash": hash, "tx_type": "deposit", "amount": 1, "token": "STRK"})
		if r.status != http.StatusBadRequest || string(r.body) != `{"detail":"Transaction already logged by another account","code":"CONFLICT"}` {
			t.Fatalf("bob logs alice's hash: %d %s", r.status, r.body)
		}
		// Alice again: the same record (idempotent).
		r1 := e.do(t, http.MethodPost, withToken("/api/v1/transactions/", alice), map[string]any{"tx_hash": hash, "tx_type": "deposit", "amount": "12.5", "token": "USDC"})
		list := e.do(t, http.MethodGet, withToken("/api/v1/transactions/", alice), nil)
		rows := list.json(t).([]any)
		if r1.status != http.StatusOK || len(rows) != 1 || rows[0].(map[string]any)["id"] != r1.object(t)["id"] {
			t.Fatalf("alice logs again: %d %s; list %s", r1.status, r1.body, list.body)
		}
		row := rows[0].(map[string]any)
		if row["amount"] != json.Number("12.5") || row["amount_exact"] != "12.5" || row["token"] != "USDC" || row["status"] != "pending" || row["tx_type"] != "deposit" {
			t.Fatalf("alice's transaction %s", list.body)
		}
	})
}

// TestInvalidInputs: each invalid input is a 422 that names its field,
// each limit is taken at its bound and refused one past it.
func TestInvalidInputs(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, envOptions{})
		e.ingestDays(t, 5)
		token := e.register(t, "ada@example.com")
		felt := "0x" + strings.Repeat("0", 62) + "42"
		tx := func(kv ...any) map[string]any {
			m := map[string]any{"tx_hash": felt, "tx_type": "deposit", "amount": 1, "token": "STRK"}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] == nil {
					delete(m, kv[i].(string))
					continue
				}
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		sig := func(n int) []string {
			s := make([]string, n)
			for i := range s {
				s[i] = fmt.Sprintf("0x%x", i+1)
			}
			return s
		}
		for _, c := range []struct {
			name, method, path string
			body               any
			want               []string // problem locations; nil: accepted
		}{
			{"days at 1", "GET", "/api/v1/analytics/risk-history?days=1", nil, nil},
			{"days at 90", "GET", "/api/v1/analytics/risk-history?days=90", nil, nil},
			{"days 0", "GET", "/api/v1/analytics/risk-history?days=0", nil, []string{"query.days"}},
			{"days 91", "GET", "/api/v1/analytics/allocation-history?days=91", nil, []string{"query.days"}},
			{"days week", "GET", "/api/v1/analytics/dashboard?days=week", nil, []string{"query.days"}},
			{"limit at 1", "GET", "/api/v1/transactions/?limit=1", nil, nil},
			{"limit at 100", "GET", "/api/v1/transactions/?limit=100", nil, nil},
			{"limit 0", "GET", "/api/v1/transactions/?limit=0", nil, []string{"query.limit"}},
			{"limit 101", "GET", "/api/v1/transactions/?limit=101", nil, []string{"query.limit"}},
			{"protocol too long", "GET", "/api/v1/analytics/risk-history?protocol=" + strings.Repeat("x", 65), nil, []string{"query.protocol"}},
			{"bad hash", "GET", "/api/v1/transactions/0xzz", nil, []string{"path.tx_hash"}},
			{"hash above the prime", "GET", "/api/v1/transactions/0x0aa955e55d9909f1d451d7584377204e9875e4a89b45041bac1416c16be1cf9d", nil, []string{"path.tx_hash"}},
			{"no body", "POST", "/api/v1/transactions/", nil, []string{"body"}},
			{"malformed JSON", "POST", "/api/v1/transactions/", `{"tx_hash": `, []string{"body.12"}},
			{"a list", "POST", "/api/v1/transactions/", `[1]`, []string{"body"}},
			{"tx_hash above the prime", "POST", "/api/v1/transactions/", tx("tx_hash", "0x0aa955e55d9909f1d451d7584377204e9875e4a89b45041bac1416c16be1cf9d"), []string{"body.tx_hash"}},
			{"tx_hash zero", "POST", "/api/v1/transactions/", tx("tx_hash", "0x0"), []string{"body.tx_hash"}},
			{"tx_hash a number", "POST", "/api/v1/transactions/", tx("tx_hash", 5), []string{"body.tx_hash"}},
			{"tx_type", "POST", "/api/v1/transactions/", tx("tx_type", "swap"), []string{"body.tx_type"}},
			{"tx_type missing", "POST", "/api/v1/transactions/", tx("tx_type", nil), []string{"body.tx_type"}},
			{"tx_type and tx_hash missing", "POST", "/api/v1/transactions/", tx("tx_type", nil, "tx_hash", nil), []string{"body.tx_hash", "body.tx_type"}},
			{"amount negative", "POST", "/api/v1/transactions/", tx("amount", "-1"), []string{"body.amount"}},
			{"amount missing", "POST", "/api/v1/transactions/", tx("amount", nil), []string{"body.amount"}},
			{"amount text", "POST", "/api/v1/transactions/", tx("amount", "ten"), []string{"body.amount"}},
			{"amount 19 decimals", "POST", "/api/v1/transactions/", tx("amount", "0.0000000000000000001"), []string{"body.amount"}},
			{"no token", "POST", "/api/v1/transactions/", tx("token", nil), []string{"body.token"}},
			{"details a list", "POST", "/api/v1/transactions/", tx("details", []int{1}), []string{"body.details"}},
			{"details null", "POST", "/api/v1/transactions/", tx("details", json.RawMessage("null")), []string{"body.details"}},
			{"details at the limit", "POST", "/api/v1/transactions/", tx("details", detailsOf(ledger.MaxDetailsBytes)), nil},
			{"details one byte over", "POST", "/api/v1/transactions/", tx("details", detailsOf(ledger.MaxDetailsBytes+1)), []string{"body.details"}},
			{"token with a space", "POST", "/api/v1/transactions/", tx("token", "S T"), []string{"body.token"}},
			{"email", "POST", "/api/v1/auth/register", map[string]any{"email": "not-an-email", "password": "c0rrect-Horse-battery"}, []string{"body.email"}},
			{"password short", "POST", "/api/v1/auth/register", map[string]any{"email": "x@example.com", "password": "short"}, []string{"body.password"}},
			{"password 73 bytes", "POST", "/api/v1/auth/register", map[string]any{"email": "x@example.com", "password": strings.Repeat("a", 73)}, []string{"body.password"}},
			{"full_name too long", "POST", "/api/v1/auth/register", map[string]any{"email": "x@example.com", "password": "c0rrect-Horse-battery", "full_name": strings.Repeat("n", 201)}, []string{"body.full_name"}},
			{"login missing both", "POST", "/api/v1/auth/login", map[string]any{}, []string{"body.email", "body.password"}},
			{"risk_tolerance", "PUT", "/api/v1/users/preferences", map[string]any{"risk_tolerance": "extreme"}, []string{"body.risk_tolerance"}},
			{"risk_tolerance null", "PUT", "/api/v1/users/preferences", map[string]any{"risk_tolerance": nil}, []string{"body.risk_tolerance"}},
			{"threshold at 100", "PUT", "/api/v1/users/preferences", map[string]any{"rebalance_threshold": 100}, nil},
			{"threshold 100.01", "PUT", "/api/v1/users/preferences", map[string]any{"rebalance_threshold": 100.01}, []string{"body.rebalance_threshold"}},
			{"threshold text", "PUT", "/api/v1/users/preferences", map[string]any{"rebalance_threshold": "five percent"}, []string{"body.rebalance_threshold"}},
			{"auto_rebalance text", "PUT", "/api/v1/users/preferences", map[string]any{"auto_rebalance_enabled": "sometimes"}, []string{"body.auto_rebalance_enabled"}},
			{"max_single at 1000", "PUT", "/api/v1/users/preferences", map[string]any{"max_single_bps": 1000}, nil},
			{"max_single 999", "PUT", "/api/v1/users/preferences", map[string]any{"max_single_bps": 999}, []string{"body.max_single_bps"}},
			{"liquidity tier 4", "PUT", "/api/v1/users/preferences", map[string]any{"max_liquidity_tier": 4}, []string{"body.max_liquidity_tier"}},
			{"bare address", "POST", "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0x1234"}, []string{"body.signature"}},
			{"no address", "POST", "/api/v1/auth/connect-wallet", map[string]any{"signature": sig(2)}, []string{"query.wallet_address"}},
			{"bad address", "POST", "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0xzz", "signature": sig(2)}, []string{"body.wallet_address"}},
			{"33 signature felts", "POST", "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0x1234", "signature": sig(33)}, []string{"body.signature"}},
			{"signature of numbers", "POST", "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0x1234", "signature": []int{1}}, []string{"body.signature.0"}},
			// 32 felts pass the bound; there is no challenge to verify.
			{"32 signature felts", "POST", "/api/v1/auth/connect-wallet", map[string]any{"wallet_address": "0x1234", "signature": sig(32)}, []string{"body"}},
			{"challenge without an address", "POST", "/api/v1/auth/wallet-challenge", nil, []string{"query.wallet_address"}},
			{"challenge for a bad address", "POST", "/api/v1/auth/wallet-challenge?wallet_address=0xzz", nil, []string{"body.wallet_address"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				path := c.path
				if !strings.HasPrefix(path, "/api/v1/auth/register") && !strings.HasPrefix(path, "/api/v1/auth/login") {
					path = withToken(path, token)
				}
				body := c.body
				if raw, ok := body.(json.RawMessage); ok {
					body = string(raw)
				}
				r := e.do(t, c.method, path, body)
				if c.want == nil {
					if r.status != http.StatusOK {
						t.Fatalf("%d %s, want 200", r.status, r.body)
					}
					return
				}
				if got := r.problems(t); !slices.Equal(got, c.want) {
					t.Fatalf("problems %v, want %v: %s", got, c.want, r.body)
				}
			})
		}
	})
}

// detailsOf returns a details object of exactly n bytes of compact JSON.
func detailsOf(n int) json.RawMessage {
	const frame = `{"note":""}`
	return json.RawMessage(`{"note":"` + strings.Repeat("x", n-len(frame)) + `"}`)
}
