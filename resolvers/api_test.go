package resolvers_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/client"
	"github.com/golang-jwt/jwt/v5"

	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/advisor"
	"github.com/obsqra/obsqra/decision"
	"github.com/obsqra/obsqra/market"
	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/resolvers"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// newHandler returns the real HTTP handler of the server over db, as
// `obsqra serve` builds it, with the account settings of cfg (tokens and
// refresh lifetime are filled in). Options change the server's config.
func newHandler(tb testing.TB, db *store.DB, cfg account.Config, opts ...func(*server.Config)) (http.Handler, *account.Service) {
	tb.Helper()
	tokens, err := account.NewTokens(testKey, 30*time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Tokens, cfg.RefreshTTL = tokens, 24*time.Hour
	accounts, err := account.New(db, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	decisions := newDecisions(tb, db, nil)
	markets, err := market.New(db, decisions, market.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	schema := resolvers.NewExecutableSchema(&resolvers.Resolver{Accounts: accounts, Market: markets, Decisions: decisions})
	scfg := server.Config{
		Version:       "test",
		Introspection: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, opt := range opts {
		opt(&scfg)
	}
	srv := server.New(scfg, schema, accounts, db)
	return srv.Handler(), accounts
}

// setup returns the handler of newHandler with a low bcrypt cost and
// admin@example.com as an admin email.
func setup(t *testing.T, db *store.DB) http.Handler {
	t.Helper()
	h, _ := newHandler(t, db, account.Config{BcryptCost: 4, AdminEmails: []string{"admin@example.com"}})
	return h
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// do posts a GraphQL request through the real handler, from 203.0.113.5.
func do(t testing.TB, h http.Handler, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	return doFrom(t, h, "203.0.113.5:4321", nil, token, query, vars)
}

// doFrom is do from the TCP peer peer, with headers (name, value pairs).
func doFrom(t testing.TB, h http.Handler, peer string, headers []string, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = peer
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var resp gqlResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("POST /graphql %s: status %d, body %q: %v", query, rec.Code, rec.Body.String(), err)
	}
	return resp
}

type authPayload struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	TokenType    string `json:"tokenType"`
	ExpiresIn    int    `json:"expiresIn"`
	User         struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Role  string `json:"role"`
	} `json:"user"`
}

const authFields = `accessToken refreshToken tokenType expiresIn user { id email role }`

func registerVia(t testing.TB, h http.Handler, email string) authPayload {
	t.Helper()
	r := do(t, h, "", `mutation($in: RegisterInput!) { register(input: $in) { signedIn auth { `+authFields+` } } }`,
		map[string]any{"in": map[string]any{"email": email, "password": "correct horse", "fullName": "Ada"}})
	if len(r.Errors) > 0 {
		t.Fatalf("register(%s) errors: %+v", email, r.Errors)
	}
	var reg struct {
		SignedIn bool
		Auth     authPayload
	}
	if err := json.Unmarshal(r.Data["register"], &reg); err != nil {
		t.Fatal(err)
	}
	if !reg.SignedIn {
		t.Fatalf("register(%s) signed nobody in", email)
	}
	return reg.Auth
}

// TestNewUserJourney walks the path a new user takes through the public API:
// register, me, preferences, refresh, logout — through gqlgen's client.
func TestNewUserJourney(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := setup(t, db)
		c := client.New(h, client.Path("/graphql"))
		bearer := func(tok string) client.Option { return client.AddHeader("Authorization", "Bearer "+tok) }

		var reg struct {
			Register struct {
				SignedIn bool
				Auth     authPayload
			}
		}
		obsqratest.Step(t, "register", func(t *testing.T) {
			c.MustPost(`mutation { register(input: {email: "ada@example.com", password: "correct horse", fullName: "Ada Lovelace"}) { signedIn auth { `+authFields+` } } }`, &reg)
			if a := reg.Register.Auth; !reg.Register.SignedIn || a.TokenType != "Bearer" || a.ExpiresIn != 1800 || a.User.Role != "USER" || a.RefreshToken == "" {
				t.Fatalf("register = %+v", reg.Register)
			}
		})

		var login struct{ Login authPayload }
		var me struct {
			Me struct {
				ID          string
				Email       string
				FullName    string
				CreatedAt   string
				Preferences struct {
					RiskTolerance         string
					MaxSingleBps          int
					RebalanceThresholdBps int
					MinDiversification    int
				}
			}
		}
		obsqratest.Step(t, "sign in", func(t *testing.T) {
			c.MustPost(`mutation { login(input: {email: "ADA@example.com", password: "correct horse"}) { `+authFields+` } }`, &login)
			c.MustPost(`{ me { id email fullName createdAt preferences { riskTolerance maxSingleBps rebalanceThresholdBps minDiversification } } }`, &me, bearer(login.Login.AccessToken))
			if me.Me.Email != "ada@example.com" || me.Me.ID != reg.Register.Auth.User.ID || me.Me.Preferences.RiskTolerance != "MEDIUM" ||
				me.Me.Preferences.MaxSingleBps != 6000 || me.Me.Preferences.RebalanceThresholdBps != 500 || me.Me.Preferences.MinDiversification != 2 {
				t.Fatalf("me = %+v", me.Me)
			}
			if ts, err := time.Parse(time.RFC3339, me.Me.CreatedAt); err != nil || !strings.HasSuffix(me.Me.CreatedAt, "Z") || ts.IsZero() {
				t.Fatalf("createdAt = %q, want RFC 3339 in UTC", me.Me.CreatedAt)
			}
		})

		obsqratest.Step(t, "update preferences", func(t *testing.T) {
			var upd struct {
				UpdatePreferences struct {
					Preferences struct {
						RiskTolerance string
						AutoRebalance bool
					}
				}
			}
			c.MustPost(`mutation { updatePreferences(input: {riskTolerance: HIGH, autoRebalance: true}) { preferences { riskTolerance autoRebalance } } }`, &upd, bearer(login.Login.AccessToken))
			if upd.UpdatePreferences.Preferences.RiskTolerance != "HIGH" || !upd.UpdatePreferences.Preferences.AutoRebalance {
				t.Fatalf("updatePreferences = %+v", upd)
			}
		})

		var ref struct{ RefreshSession authPayload }
		obsqratest.Step(t, "refresh session", func(t *testing.T) {
			c.MustPost(`mutation($t: String!) { refreshSession(refreshToken: $t) { `+authFields+` } }`, &ref, client.Var("t", login.Login.RefreshToken))
			c.MustPost(`{ me { id email } }`, &me, bearer(ref.RefreshSession.AccessToken))
		})

		obsqratest.Step(t, "refetch by node id", func(t *testing.T) {
			// node(id:) refetches the user by its global id.
			var node struct{ Node struct{ Email string } }
			c.MustPost(`query($id: ID!) { node(id: $id) { ... on User { email } } }`, &node, client.Var("id", me.Me.ID), bearer(ref.RefreshSession.AccessToken))
			if node.Node.Email != "ada@example.com" {
				t.Fatalf("node(id) = %+v", node)
			}
		})

		obsqratest.Step(t, "sign out", func(t *testing.T) {
			var out struct{ Logout bool }
			c.MustPost(`mutation($t: String) { logout(refreshToken: $t) }`, &out, client.Var("t", ref.RefreshSession.RefreshToken))
			if !out.Logout {
				t.Fatal("logout = false")
			}
			r := do(t, h, ref.RefreshSession.AccessToken, `{ me { id } }`, nil)
			if r.code() != "UNAUTHENTICATED" {
				t.Fatalf("me after logout: %+v, want UNAUTHENTICATED", r.Errors)
			}
		})

		obsqratest.Step(t, "anonymous me", func(t *testing.T) {
			// Anonymous me is null, not an error.
			r := do(t, h, "", `{ me { id } }`, nil)
			if len(r.Errors) != 0 || string(r.Data["me"]) != "null" {
				t.Fatalf("anonymous me = %s %+v, want null", r.Data["me"], r.Errors)
			}
		})
	})
}

func forge(t *testing.T, key []byte, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestForgedTokensAreRefused: every one of these must fail for the suite to
// pass; each is a way an attacker could try to be someone.
func TestForgedTokensAreRefused(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := setup(t, db)
		victim := registerVia(t, h, "victim@example.com")
		// Learn the session id from a genuine token, as an attacker holding
		// an old token could.
		parts := strings.Split(victim.AccessToken, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var genuine map[string]any
		_ = json.Unmarshal(raw, &genuine)
		now := time.Now()
		claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
			c := jwt.MapClaims{"iss": "obsqra", "aud": "obsqra-api", "sub": genuine["sub"], "sid": genuine["sid"], "jti": "x",
				"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
			if mod != nil {
				mod(c)
			}
			return c
		}
		// The forger's recipe with the real key is accepted: the refusals
		// below are down to what each forgery changes.
		if r := do(t, h, forge(t, testKey, jwt.SigningMethodHS256, claims(nil)), `{ me { email } }`, nil); len(r.Errors) != 0 {
			t.Fatalf("control token refused: %+v", r.Errors)
		}
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

		deact := registerVia(t, h, "deact@example.com")
		admin := registerVia(t, h, "admin@example.com")
		if r := do(t, h, admin.AccessToken, `mutation($id: ID!) { setUserActive(userId: $id, active: false) { active } }`, map[string]any{"id": deact.User.ID}); len(r.Errors) != 0 {
			t.Fatalf("setUserActive: %+v", r.Errors)
		}

		// A reused refresh token revokes its family, access tokens included.
		fam := registerVia(t, h, "family@example.com")
		rot := do(t, h, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { `+authFields+` } }`, map[string]any{"t": fam.RefreshToken})
		var rotated authPayload
		_ = json.Unmarshal(rot.Data["refreshSession"], &rotated)
		if rotated.AccessToken == "" {
			t.Fatalf("refreshSession: %+v", rot.Errors)
		}
		reuse := do(t, h, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }`, map[string]any{"t": fam.RefreshToken})
		if reuse.code() != "UNAUTHENTICATED" {
			t.Fatalf("reused refresh token: %+v, want UNAUTHENTICATED", reuse.Errors)
		}
		again := do(t, h, "", `mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }`, map[string]any{"t": rotated.RefreshToken})
		if again.code() != "UNAUTHENTICATED" {
			t.Fatalf("latest refresh token of a revoked family: %+v, want UNAUTHENTICATED", again.Errors)
		}

		tests := []struct{ name, token string }{
			{"alg none", none},
			{"HS256 signed with another key", forge(t, []byte("not the server key, not the key!"), jwt.SigningMethodHS256, claims(nil))},
			{"expired", forge(t, testKey, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))},
			{"no exp", forge(t, testKey, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
			{"other user's sub with this sid", forge(t, testKey, jwt.SigningMethodHS256, claims(func(c jwt.MapClaims) { c["sub"] = "999" }))},
			{"refresh token used as access token", victim.RefreshToken},
			{"reused refresh family: first access token", fam.AccessToken},
			{"reused refresh family: rotated access token", rotated.AccessToken},
			{"deactivated user's token", deact.AccessToken},
		}
		for _, tt := range tests {
			r := do(t, h, tt.token, `{ me { email } }`, nil)
			if r.code() != "UNAUTHENTICATED" || string(r.Data["me"]) == `{"email":"victim@example.com"}` {
				t.Errorf("%s: me = %s %+v, want UNAUTHENTICATED", tt.name, r.Data["me"], r.Errors)
			}
		}
	})
}

func TestPasswordLimitsThroughAPI(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := setup(t, db)
		r := do(t, h, "", `mutation($in: RegisterInput!) { register(input: $in) { auth { accessToken } } }`,
			map[string]any{"in": map[string]any{"email": "x@example.com", "password": strings.Repeat("a", 73), "fullName": "X"}})
		if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "72 bytes") {
			t.Fatalf("register(73-byte password) = %+v, want BAD_USER_INPUT naming 72 bytes", r.Errors)
		}
		registerVia(t, h, "dup@example.com")
		r = do(t, h, "", `mutation { register(input: {email: "DUP@example.com", password: "correct horse", fullName: "X"}) { auth { accessToken } } }`, nil)
		if r.code() != "CONFLICT" {
			t.Fatalf("register(duplicate) = %+v, want CONFLICT", r.Errors)
		}
	})
}

// TestAliasedLoginsCountEveryAttempt: one request that aliases login many
// times gets no more guesses than separate requests would.
func TestAliasedLoginsCountEveryAttempt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := setup(t, db)
		registerVia(t, h, "ada@example.com")
		var q strings.Builder
		q.WriteString("mutation {")
		for i := range 12 {
			fmt.Fprintf(&q, ` a%d: login(input: {email: "ada@example.com", password: "guess %d"}) { accessToken }`, i, i)
		}
		q.WriteString(" }")
		r := do(t, h, "", q.String(), nil)
		codes := map[string]int{}
		for _, e := range r.Errors {
			codes[e.Extensions["code"].(string)]++
		}
		if codes["UNAUTHENTICATED"] != 5 || codes["RATE_LIMITED"] != 7 {
			t.Fatalf("12 aliased logins gave %v, want 5 UNAUTHENTICATED and 7 RATE_LIMITED", codes)
		}
		// And the right password is refused now too.
		r = do(t, h, "", `mutation { login(input: {email: "ada@example.com", password: "correct horse"}) { accessToken } }`, nil)
		if r.code() != "RATE_LIMITED" {
			t.Fatalf("login after aliased guesses = %+v, want RATE_LIMITED", r.Errors)
		}
	})
}

func TestAdminOperations(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com")
		user := registerVia(t, h, "user@example.com")
		if admin.User.Role != "ADMIN" {
			t.Fatalf("ADMIN_EMAILS user role = %s", admin.User.Role)
		}
		q := `mutation($id: ID!, $a: Boolean!) { setUserActive(userId: $id, active: $a) { id active } }`
		if r := do(t, h, user.AccessToken, q, map[string]any{"id": admin.User.ID, "a": false}); r.code() != "FORBIDDEN" {
			t.Fatalf("setUserActive by user = %+v, want FORBIDDEN", r.Errors)
		}
		if r := do(t, h, "", q, map[string]any{"id": admin.User.ID, "a": false}); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("setUserActive anonymous = %+v, want UNAUTHENTICATED", r.Errors)
		}
		if r := do(t, h, admin.AccessToken, q, map[string]any{"id": "bogus", "a": false}); r.code() != "BAD_USER_INPUT" {
			t.Fatalf("setUserActive(bogus id) = %+v, want BAD_USER_INPUT", r.Errors)
		}
		// A node id of a user the caller may not see reads as null.
		r := do(t, h, user.AccessToken, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": admin.User.ID})
		if len(r.Errors) != 0 || string(r.Data["node"]) != "null" {
			t.Fatalf("node(other user) = %s %+v, want null", r.Data["node"], r.Errors)
		}
	})
}

// newDecisions returns a decision log on db that knows the server's kinds
// of decision, risk scores checked against engine (nil for none) and
// optimisation runs, as cmd/obsqra registers them.
func newDecisions(tb testing.TB, db *store.DB, engine market.RiskEngine) *decision.Log {
	tb.Helper()
	return newDecisionsChecking(tb, db, engine, nil)
}

// newDecisionsChecking is newDecisions whose plans' signed constraints
// signatures checks again (nil: none).
func newDecisionsChecking(tb testing.TB, db *store.DB, engine market.RiskEngine, signatures advisor.SignatureChecker) *decision.Log {
	tb.Helper()
	l, err := decision.New(db, decision.Key(testKey), market.NewRiskScores(db, engine, nil), advisor.Optimizations{Signatures: signatures})
	if err != nil {
		tb.Fatalf("decision.New() = %v", err)
	}
	return l
}
